"""Numbers as the benchmark tables print them: medians, ranges, durations."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable


def seconds(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    size = abs(value)
    if size >= 10:
        return f"{value:.1f} s"
    if size >= 1:
        return f"{value:.2f} s"
    if size >= 0.01:
        return f"{value * 1000:.0f} ms"
    if size >= 0.001:
        return f"{value * 1000:.1f} ms"
    return f"{value * 1e6:.0f} us"


def median(values: Iterable[float]) -> float:
    data = [v for v in values if not math.isnan(v)]
    return statistics.median(data) if data else float("nan")


def spread(values: list[float], fmt: Callable[[float], str] = seconds) -> str:
    """The median, and the range when there are several samples."""
    if len(values) < 2:
        return fmt(median(values))
    return f"{fmt(median(values))} [{fmt(min(values))}..{fmt(max(values))}]"
