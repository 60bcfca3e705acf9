from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.models import Post, StoredPost, Topic
from digest.plan import plan_issue

NOW = datetime(2026, 11, 23, 7, tzinfo=UTC)
BACKEND, FRONTEND = Topic("backend", "Backend"), Topic("frontend", "Frontend")


def post(
    post_id: int, *topics: str, days_ago: float = 1, seen_days_ago: float | None = None
) -> StoredPost:
    published = NOW - timedelta(days=days_ago)
    seen = NOW - timedelta(days=days_ago if seen_days_ago is None else seen_days_ago)
    return StoredPost(
        post_id,
        Post(
            f"uid-{post_id}", f"https://x.test/{post_id}", f"Post {post_id}", "", published, topics
        ),
        seen,
    )


def plan(  # type: ignore[no-untyped-def]
    candidates: list[StoredPost],
    already_sent: set[int] | None = None,
    cap: int = 3,
    last_cutoff: datetime | None = None,
):
    return plan_issue(
        digest="weekly",
        topics=[BACKEND, FRONTEND],
        candidates=candidates,
        already_sent=already_sent or set(),
        last_number=4,
        last_cutoff=last_cutoff,
        max_posts_per_topic=cap,
        now=NOW,
    )


def test_nothing_new_means_no_issue() -> None:
    assert plan([]) is None
    assert plan([post(1, "backend")], already_sent={1}) is None


def test_sections_follow_digest_order_newest_first_capped() -> None:
    issue = plan(
        [
            post(1, "frontend"),
            post(2, "backend", days_ago=3),
            post(3, "backend", days_ago=2),
            post(4, "backend", days_ago=1),
            post(5, "backend", days_ago=4),
        ]
    )
    assert issue is not None
    assert issue.number == 5 and issue.cutoff == NOW
    assert issue.topic_slugs == ("backend", "frontend")
    assert [p.id for p in issue.section("backend").posts] == [4, 3, 2]
    assert [s.more for s in issue.sections] == [1, 0]


def test_a_post_in_two_topics_is_in_both_sections_but_counted_once() -> None:
    issue = plan([post(1, "backend", "frontend")])
    assert issue is not None
    assert [len(s.posts) for s in issue.sections] == [1, 1]
    assert issue.post_count == 1


def test_future_posts_wait_for_their_date() -> None:
    issue = plan([post(1, "backend", days_ago=-1)])
    assert issue is None


def test_posts_first_seen_after_the_last_issue_are_new_within_a_week() -> None:
    last = NOW - timedelta(days=7)
    late = post(1, "backend", days_ago=9, seen_days_ago=1)  # dated before the issue, seen after
    old = post(2, "backend", days_ago=30, seen_days_ago=1)  # an archive just added
    sent_era = post(3, "backend", days_ago=9)  # seen before the last issue: it had its chance
    fresh = post(4, "backend", days_ago=2)
    issue = plan([late, old, sent_era, fresh], last_cutoff=last)
    assert issue is not None
    assert [p.id for p in issue.section("backend").posts] == [4, 1]
