"""A tiny greeting service: the repository the demo plan works on."""

from greeter.core import greet

__all__ = ["greet"]
