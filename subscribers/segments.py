"""segment: subscribers × the topics of an issue → segments. Pure and streaming.

A segment is keyed by the set of topics its readers get *in this issue*: a reader of
{backend, security} and a reader of {backend} get the same email when security has nothing new.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime

from digest.models import TopicSet
from subscribers.models import Status, Subscriber


def segment_key(
    subscriber: Subscriber, issue_topics: frozenset[str], now: datetime
) -> TopicSet | None:
    """The segment of one subscriber, or None when they get nothing from this issue: not
    active (pending, suppressed), paused, or none of their topics has news."""
    if subscriber.status is not Status.ACTIVE or subscriber.paused(now):
        return None
    key = subscriber.topics & issue_topics
    return key or None


def assign(
    subscribers: Iterable[Subscriber], issue_topics: Iterable[str], now: datetime
) -> Iterator[tuple[Subscriber, TopicSet]]:
    topics = frozenset(issue_topics)
    for subscriber in subscribers:
        key = segment_key(subscriber, topics, now)
        if key is not None:
            yield subscriber, key


def segment_sizes(
    subscribers: Iterable[Subscriber], issue_topics: Iterable[str], now: datetime
) -> Counter[TopicSet]:
    return Counter(key for _, key in assign(subscribers, issue_topics, now))


def encode_key(key: TopicSet) -> str:
    """A stable text form for the ledger: slugs sorted, joined by '+'."""
    return "+".join(sorted(key))


def decode_key(text: str) -> TopicSet:
    return frozenset(text.split("+")) if text else frozenset()
