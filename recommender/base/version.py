"""The package's version, in a module of its own so that stages can name it (a User-Agent, a
Message-ID) without importing the package's root, which lazily reaches the whole API."""

__version__ = "0.1.0"
