"""The HTTP API (v1): app factory, error envelope, authentication and the routers."""
