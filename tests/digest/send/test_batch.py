"""Batching is pure: every recipient in exactly one batch of one segment, none too big."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from digest.send.batch import plan_batches

SEGMENTS = ["a", "b", "a+b", "c", "a+b+c"]


@given(
    runs=st.lists(
        st.tuples(st.sampled_from(SEGMENTS), st.integers(min_value=0, max_value=400)),
        max_size=6,
    ),
    first=st.integers(min_value=1, max_value=10),
    batch_size=st.integers(min_value=1, max_value=50),
)
def test_each_place_once_one_segment_per_batch(
    runs: list[tuple[str, int]], first: int, batch_size: int
) -> None:
    # Segments as the ledger places them: runs of consecutive places, one after the other
    # (a key may come back in a later run, when the database wrote its topics another way).
    segments = []
    place = first
    for key, n in runs:
        segments.append((key, place, n))
        place += n
    batches = plan_batches(segments, batch_size)

    covered = [p for _, start, size in batches for p in range(start, start + size)]
    assert covered == list(range(first, place))
    for key, start, n in segments:
        own = [(k, s, size) for k, s, size in batches if start <= s < start + n]
        assert all(k == key for k, _, _ in own)
        assert all(size == batch_size for _, _, size in own[:-1])
        assert sum(size for _, _, size in own) == n
    assert all(0 < size <= batch_size for _, _, size in batches)
