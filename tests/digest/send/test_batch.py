"""Batching is pure: every recipient in exactly one batch of one segment, none too big."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from digest.send.batch import plan_batches

SEGMENTS = ["a", "b", "a+b", "c", "a+b+c"]


@given(
    segments=st.lists(st.sampled_from(SEGMENTS), max_size=400),
    batch_size=st.integers(min_value=1, max_value=50),
)
def test_each_recipient_once_one_segment_per_batch(segments: list[str], batch_size: int) -> None:
    assignments = list(enumerate(segments))
    batches = plan_batches(assignments, batch_size)
    placed = [(sid, segment) for segment, ids in batches for sid in ids]
    assert sorted(placed) == sorted(assignments)
    assert all(0 < len(ids) <= batch_size for _, ids in batches)
    per_segment = {s: segments.count(s) for s in set(segments)}
    assert len(batches) == sum(-(-n // batch_size) for n in per_segment.values())
