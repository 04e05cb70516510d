"""The shells: command line, daemon, warm process."""
