from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from subscribers.models import Status, Subscriber
from subscribers.segments import assign, decode_key, encode_key, segment_sizes

TOPICS = ["backend", "ai-ml", "data", "frontend", "security"]
NOW = datetime(2026, 11, 23, tzinfo=UTC)

subscriber_lists = st.lists(
    st.builds(
        Subscriber,
        id=st.integers(1, 10_000),
        email=st.just("x@example.com"),
        name=st.just(""),
        status=st.sampled_from(list(Status)),
        topics=st.frozensets(st.sampled_from(TOPICS)),
        paused_until=st.none()
        | st.sampled_from([NOW - timedelta(days=1), NOW + timedelta(days=1)]),
    ),
    max_size=60,
)


@given(subscriber_lists, st.frozensets(st.sampled_from(TOPICS)))
def test_every_active_unpaused_reader_with_news_is_in_exactly_one_segment(
    people: list[Subscriber], issue_topics: frozenset[str]
) -> None:
    assigned = list(assign(people, issue_topics, NOW))
    assert [s for s, _ in assigned] == [
        s
        for s in people
        if s.status is Status.ACTIVE
        and not (s.paused_until and s.paused_until > NOW)
        and s.topics & issue_topics
    ]
    assert not any(s.status.suppressed or s.status is Status.PENDING for s, _ in assigned)
    for subscriber, key in assigned:
        assert key == subscriber.topics & issue_topics
        assert key and key <= issue_topics
    assert sum(segment_sizes(people, issue_topics, NOW).values()) == len(assigned)


@given(st.frozensets(st.sampled_from(TOPICS), min_size=1))
def test_keys_round_trip_through_the_ledger_text(key: frozenset[str]) -> None:
    assert decode_key(encode_key(key)) == key
