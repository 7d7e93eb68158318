"""The version of reqcc, in a module of its own so that any layer may read it."""

__version__ = "0.3.0"
