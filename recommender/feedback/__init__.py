"""Readers' clicks: the click service, the HTTP app and the limits around it."""
