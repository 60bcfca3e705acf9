"""A variant shows what its segment is owed: the issue's posts released after the watermark,
in the owed topics, each topic capped at the issue's ``per_topic`` (the rest in "more")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.models import Issue, IssueSection, Owed, Post, StoredPost, Topic
from digest.render.layout import owed_posts

NOW = datetime(2026, 11, 23, tzinfo=UTC)
BACKEND, DATA = Topic("backend", "Backend"), Topic("data", "Data")


def post(n: int, *topics: str) -> StoredPost:
    published = NOW - timedelta(hours=20 - n)
    return StoredPost(
        n, Post(f"p{n}", f"https://b.example/{n}", f"P{n}", "x", published, topics), published
    )


def issue() -> Issue:
    """Releases 11 to 16 (post n has release 10 + n), newest first; readers without a
    watermark of their own stand at 13."""
    backend = tuple(post(n, "backend") for n in (6, 5, 3, 2, 1))
    data = (post(4, "data"), post(3, "backend", "data"))
    return Issue(
        "news",
        7,
        (IssueSection(BACKEND, backend), IssueSection(DATA, data)),
        NOW,
        release_from=10,
        release_to=16,
        release_base=13,
        per_topic=2,
        releases={n: 10 + n for n in range(1, 7)},
    )


def shown(key: Owed) -> dict[str, tuple[list[int], int]]:
    return {
        t: ([p.id for p in posts], more) for t, (posts, more) in owed_posts(issue(), key).items()
    }


def test_readers_at_the_base_get_the_releases_after_it_capped() -> None:
    assert shown(Owed(frozenset({"backend", "data"}))) == {"backend": ([6, 5], 0), "data": ([4], 0)}


def test_a_switched_reader_gets_from_their_own_watermark() -> None:
    assert shown(Owed(frozenset({"backend"}), 10)) == {"backend": ([6, 5], 3)}
    assert shown(Owed(frozenset({"data"}), 12)) == {"data": ([4, 3], 0)}
    assert shown(Owed(frozenset({"data"}), 14)) == {"data": ([], 0)}


def test_an_issue_from_before_cadences_is_shown_as_stored() -> None:
    old = Issue("news", 1, issue().sections, NOW)
    assert {t: len(p) for t, (p, _) in owed_posts(old, frozenset({"backend"})).items()} == {
        "backend": 5
    }
