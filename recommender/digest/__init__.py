"""A digest: the entries chosen for a reader, rendered (HTML and text) and built into a MIME message."""
