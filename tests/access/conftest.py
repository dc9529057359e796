"""Fixtures of the access tests (defined beside their helper classes in access_support)."""

from access_support import make_gate, people

__all__ = ["make_gate", "people"]
