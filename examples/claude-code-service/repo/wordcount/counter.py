"""Word counts of a text."""

import re
from collections import Counter

WORD = re.compile(r"[a-z']+")


def count_words(text: str) -> dict[str, int]:
    """How often each lowercase word occurs in `text`."""
    return dict(Counter(WORD.findall(text.lower())))
