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


def test_a_first_issue_takes_only_the_backfill_window_before_the_newest_post() -> None:
    """A feed's whole history is not news: '100 new posts', some from years ago, was what a
    new project's first issue used to be."""
    history = [post(i, "backend", days_ago=3 + 40 * i) for i in range(1, 40)]
    history.append(post(100, "frontend", days_ago=10))
    issue = plan_issue(
        digest="weekly",
        topics=[BACKEND, FRONTEND],
        candidates=history,
        already_sent=set(),
        last_number=0,
        last_cutoff=None,
        max_posts_per_topic=50,
        now=NOW,
        backfill=timedelta(days=30),
    )
    assert issue is not None
    assert {p.id for s in issue.sections for p in s.posts} == {100}  # 10 days ago; 43 is out
    # Counted from the newest post: a site quiet for a year still starts with its latest.
    quiet = [post(1, "backend", days_ago=400), post(2, "backend", days_ago=420)]
    quiet.append(post(3, "backend", days_ago=500))
    issue = plan_issue(
        digest="weekly",
        topics=[BACKEND],
        candidates=quiet,
        already_sent=set(),
        last_number=0,
        last_cutoff=None,
        max_posts_per_topic=50,
        now=NOW,
        backfill=timedelta(days=30),
    )
    assert issue is not None and [p.id for p in issue.sections[0].posts] == [1, 2]
    # A post dated in the future does not move the window.
    future = [post(1, "backend", days_ago=-5), post(2, "backend", days_ago=20)]
    issue = plan_issue(
        digest="weekly",
        topics=[BACKEND],
        candidates=future,
        already_sent=set(),
        last_number=0,
        last_cutoff=None,
        max_posts_per_topic=50,
        now=NOW,
        backfill=timedelta(days=1),
    )
    assert issue is not None and [p.id for p in issue.sections[0].posts] == [2]
    # Later issues are not windowed: a post first seen late still counts (LATE_POST_WINDOW).
    assert plan([post(7, "backend", days_ago=50)], last_cutoff=NOW - timedelta(days=60))
