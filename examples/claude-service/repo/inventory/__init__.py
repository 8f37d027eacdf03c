"""A tiny inventory: items with quantities."""

from inventory.store import Store

__all__ = ["Store"]
