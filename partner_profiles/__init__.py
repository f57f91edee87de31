"""Partner profiles: the schema, its versioned storage and the admin API."""
