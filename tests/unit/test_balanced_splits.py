"""How the batch job sizes its input splits (no Spark needed: the arithmetic alone)."""

from __future__ import annotations

import pytest

from retail_pipeline.batch import balanced_split_bytes

MB = 2**20


@pytest.mark.parametrize(
    ("total_mb", "slots", "expected_splits"),
    [
        (456, 2, 4),  # Spark alone: 128 + 128 + 128 + 72 MB; here 4 x 114 MB
        (45, 2, 2),  # small input: one split per slot
        (1, 8, 8),
        (1000, 16, 16),  # 62.5 MB each, under the 128 MB cap
        (5000, 16, 48),  # 3 rounds of 16 splits of ~104 MB
    ],
)
def test_splits_are_a_multiple_of_the_slots_and_equal(
    total_mb: int, slots: int, expected_splits: int
) -> None:
    total = total_mb * MB
    size = balanced_split_bytes(total, slots=slots, max_split_bytes=128 * MB)
    splits = -(-total // size)  # how Spark cuts a file of `total` bytes
    assert splits == expected_splits
    assert splits % slots == 0
    assert size <= 128 * MB
    # Equal splits: the last one is at most a few bytes shorter than the others.
    assert total - (splits - 1) * size >= size - splits
