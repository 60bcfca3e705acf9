"""Batching is pure: every recipient in exactly one batch of one segment, none too big."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from digest.send.batch import plan_batches

SEGMENTS = ["a", "b", "a+b", "c", "a+b+c"]


@given(
    sizes=st.dictionaries(st.sampled_from(SEGMENTS), st.integers(min_value=0, max_value=400)),
    batch_size=st.integers(min_value=1, max_value=50),
)
def test_each_recipient_once_one_segment_per_batch(sizes: dict[str, int], batch_size: int) -> None:
    batches = plan_batches(sizes, batch_size)
    for segment, n in sizes.items():
        chunks = [(chunk, size) for s, chunk, size in batches if s == segment]
        # Chunk k holds positions k * batch_size … : numbered from 0 without gaps, every one
        # full but the last, together exactly the segment.
        assert [chunk for chunk, _ in chunks] == list(range(len(chunks)))
        assert all(size == batch_size for _, size in chunks[:-1])
        assert sum(size for _, size in chunks) == n
    assert all(0 < size <= batch_size for _, _, size in batches)
