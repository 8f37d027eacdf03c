"""An in-memory store of item quantities."""


class Store:
    def __init__(self) -> None:
        self._items: dict[str, int] = {}

    def add(self, name: str, quantity: int = 1) -> int:
        """Add `quantity` of `name`; return the new quantity."""
        if quantity <= 0:
            raise ValueError(f"quantity must be positive, not {quantity}")
        self._items[name] = self._items.get(name, 0) + quantity
        return self._items[name]

    def quantity(self, name: str) -> int:
        return self._items.get(name, 0)
