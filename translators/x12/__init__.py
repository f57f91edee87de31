"""X12 syntax: delimiters, the streaming reader, envelopes and the writer."""
