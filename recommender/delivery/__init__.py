"""Sending digests: the SMTP transport."""
