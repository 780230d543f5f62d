"""Sets of minute starts (epoch ms) kept as sorted, merged ``[first, last]`` ranges: what a symbol's minutes already
refilled from REST look like in an aggregator checkpoint (a seed window is one range, not up to 390 numbers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

MINUTE_MS = 60_000

Ranges = list[list[int]]


def add(ranges: Sequence[Sequence[int]], minutes: Iterable[int]) -> Ranges:
    """``ranges`` with ``minutes`` added: sorted, adjacent minutes merged into one range."""
    points = sorted({int(m) for m in minutes})
    spans = sorted([[int(lo), int(hi)] for lo, hi in ranges] + [[m, m] for m in points])
    merged: Ranges = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + MINUTE_MS:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


def covered(ranges: Sequence[Sequence[int]], minutes: np.ndarray) -> np.ndarray:
    """A boolean mask: which of ``minutes`` lie in one of ``ranges``."""
    mask = np.zeros(len(minutes), dtype=bool)
    for lo, hi in ranges:
        mask |= (minutes >= lo) & (minutes <= hi)
    return mask


__all__ = ["Ranges", "add", "covered"]
