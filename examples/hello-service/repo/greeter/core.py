def greet(name: str) -> str:
    """Greet someone by name."""
    if not name.strip():
        raise ValueError("name must not be empty")
    return f"Hello, {name.strip()}!"
