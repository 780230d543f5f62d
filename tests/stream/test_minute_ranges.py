"""Refilled minutes as merged ranges (what a checkpoint stores instead of one number per minute)."""

from __future__ import annotations

import numpy as np

from ingestion.stream import minute_ranges

M = 60_000


def test_adjacent_minutes_merge_and_a_hole_stays_a_hole() -> None:
    ranges = minute_ranges.add([], [0, M, 2 * M, 5 * M])
    assert ranges == [[0, 2 * M], [5 * M, 5 * M]]
    assert minute_ranges.add(ranges, [3 * M, 4 * M]) == [[0, 5 * M]]
    assert minute_ranges.add(ranges, []) == ranges


def test_covered_marks_the_minutes_inside_a_range() -> None:
    ranges = [[0, 2 * M], [5 * M, 5 * M]]
    minutes = np.array([0, M, 3 * M, 5 * M, 6 * M], dtype=np.int64)
    assert minute_ranges.covered(ranges, minutes).tolist() == [True, True, False, True, False]
