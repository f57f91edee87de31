"""Pure X12 translation: read, validate, acknowledge and map to and from canonical JSON.

No I/O beyond the stream it is handed, and no imports from the server packages, so it can be
used as a library and tested in microseconds.
"""
