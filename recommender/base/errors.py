"""Errors meant for the user: each carries a one-line message and an exit code.

The CLI prints ``Error: <message>`` and exits with ``exit_code``; nothing here
should ever reach the user as a traceback.
"""


class RecommenderError(Exception):
    """Base class: a failure the user can act on."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(RecommenderError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 2


class InputError(RecommenderError):
    """An input file is not in a known format or has a bad line."""

    def __init__(self, path: str, message: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class NotFoundError(RecommenderError):
    """A paper, user, batch or delivery that was asked for does not exist."""


class AmbiguousError(RecommenderError):
    """The request matches several things; the message lists them."""


class SchemaError(RecommenderError):
    """The database schema is missing, or newer than this code."""


class DeliveryError(RecommenderError):
    """Sending a digest failed."""
