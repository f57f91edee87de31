"""The edigate server: API, transports, store, archive, settings and the command line."""
