"""What editors learn after a send: each issue's funnel (submitted, delivered, bounced,
complained, unique clicks, unique opens, unsubscribes), its clicks per topic and per post, the
trend over a digest's last issues, and the same figures as CSV.

Everything is read from the rollups (:mod:`digest.stores.engagement`) and the ledger's batch
sizes, never from the raw events, which are kept only ``[events] keep_days``: the figures of an
issue from two years ago are as readable as last week's. Clicks come before opens everywhere:
Apple Mail Privacy Protection fetches every email's images, so an open is no proof of a reader.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from digest.app import feedback
from digest.app.wiring import Project
from digest.errors import DigestError
from digest.lifecycle import IssueStatus
from digest.send import reporting
from digest.stores import engagement, issues
from digest.stores.engagement import PostClicks
from digest.stores.issues import IssueRow
from subscribers.cells import guard

TREND_ISSUES = 12
OPENS_CAVEAT = (
    "Clicks come first: Apple Mail Privacy Protection loads the images of every email it "
    "receives, so opens count machines as well as readers."
)
FUNNEL_STEPS = (
    ("submitted", "Submitted"),
    ("delivered", "Delivered"),
    ("bounced", "Bounced"),
    ("complained", "Complained"),
    ("unique_clicks", "Clicked"),
    ("unique_opens", "Opened"),
    ("unsubscribed", "Unsubscribed"),
)
"""The funnel's figures in the order shown, with their labels."""


@dataclass(frozen=True)
class Funnel:
    """One issue's figures. ``unique_*`` are readers; ``clicks`` and ``opens`` are events."""

    issue_id: int
    number: int
    sent_at: datetime | None
    submitted: int
    delivered: int
    bounced: int
    complained: int
    unique_clicks: int
    clicks: int
    unique_opens: int
    opens: int
    unsubscribed: int

    def value(self, name: str) -> int:
        return int(getattr(self, name))

    def share(self, name: str) -> float:
        """The figure as a share of the delivered (of the submitted, for delivered and
        bounced), 0 when there is nothing to divide by."""
        base = self.submitted if name in ("submitted", "delivered", "bounced") else self.delivered
        return self.value(name) / base if base else 0.0

    @property
    def click_rate(self) -> float:
        return self.share("unique_clicks")

    @property
    def open_rate(self) -> float:
        return self.share("unique_opens")


@dataclass(frozen=True)
class TopicClicks:
    slug: str
    name: str
    clicks: int
    posts: int


@dataclass(frozen=True)
class IssueEngagement:
    funnel: Funnel
    topics: list[TopicClicks]
    posts: list[PostClicks]
    trend: list[Funnel] = field(default_factory=list)
    """The digest's sent issues up to this one, oldest first (at most ``TREND_ISSUES``)."""
    digest: str = ""
    caveat: str = OPENS_CAVEAT
    steps: tuple[tuple[str, str], ...] = FUNNEL_STEPS


def _funnels(conn: Connection, rows: list[IssueRow]) -> list[Funnel]:
    ids = [row.id for row in rows]
    counted = engagement.counts(conn, ids)
    submitted = reporting.submitted_of(conn, ids)
    out = []
    for row in rows:
        c: Counter[str] = counted[row.id]
        out.append(
            Funnel(
                issue_id=row.id,
                number=row.number,
                sent_at=row.sent_at,
                submitted=submitted[row.id],
                delivered=c["delivered"],
                bounced=c["bounce"] + c["bounce_blocked"] + c["dropped"],
                complained=c["spamreport"],
                unique_clicks=c["unique_click"],
                clicks=c["click"],
                unique_opens=c["unique_open"],
                opens=c["open"],
                unsubscribed=c["unsubscribe"] + c["group_unsubscribe"],
            )
        )
    return out


def _trend_rows(conn: Connection, digest: str, upto: int | None = None) -> list[IssueRow]:
    rows = [
        row
        for row in issues.issues_of(conn, digest, limit=TREND_ISSUES * 4)
        if row.status == IssueStatus.SENT and (upto is None or row.number <= upto)
    ]
    return list(reversed(rows[:TREND_ISSUES]))


def issue_engagement(
    conn: Connection, row: IssueRow, topic_names: dict[str, str]
) -> IssueEngagement:
    """The issue's funnel, clicks per topic and post, and its digest's trend up to it."""
    trend = _funnels(conn, _trend_rows(conn, row.digest, row.number))
    funnel = next((f for f in trend if f.issue_id == row.id), None) or _funnels(conn, [row])[0]
    posts = engagement.post_clicks(conn, row.id)
    by_topic: Counter[str] = Counter()
    shown: Counter[str] = Counter()
    for post in posts:
        for slug in post.topics:
            by_topic[slug] += post.clicks
            shown[slug] += 1
    topics = [
        TopicClicks(slug, topic_names.get(slug, slug), by_topic[slug], shown[slug])
        for slug in sorted(shown, key=lambda s: (-by_topic[s], topic_names.get(s, s)))
    ]
    return IssueEngagement(funnel, topics, posts, trend, row.digest)


def digest_trend(conn: Connection, digest: str) -> list[Funnel]:
    """The funnels of the digest's last sent issues, oldest first."""
    return _funnels(conn, _trend_rows(conn, digest))


# CSV -----------------------------------------------------------------------------------------

FUNNEL_COLUMNS: list[object] = [
    "digest",
    "issue",
    "sent_at",
    "submitted",
    "delivered",
    "bounced",
    "complained",
    "unique_clicks",
    "clicks",
    "unique_opens",
    "opens",
    "unsubscribed",
]


def _csv(rows: list[list[object]]) -> str:
    """Rows as CSV, every text cell guarded against spreadsheet formulas."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([guard(v) if isinstance(v, str) else v for v in row])
    return out.getvalue()


def _funnel_row(digest: str, f: Funnel) -> list[object]:
    return [
        digest,
        f.number,
        f.sent_at.isoformat() if f.sent_at else "",
        f.submitted,
        f.delivered,
        f.bounced,
        f.complained,
        f.unique_clicks,
        f.clicks,
        f.unique_opens,
        f.opens,
        f.unsubscribed,
    ]


def digest_csv(project: Project, digest_slug: str) -> str:
    """The funnel of each of the digest's sent issues (all of them), oldest first."""
    digest = project.config.digest(digest_slug)
    feedback.drain(project)
    with project.reading() as conn:
        rows = [r for r in issues.issues_of(conn, digest.slug, limit=10_000) if r.sent_at]
        funnels = _funnels(conn, list(reversed(rows)))
    return _csv([FUNNEL_COLUMNS, *(_funnel_row(digest.slug, f) for f in funnels)])


def issue_csv(project: Project, issue_id: int) -> tuple[str, str]:
    """(file name, CSV): the issue's funnel, then its clicks per post."""
    feedback.drain(project)
    with project.reading() as conn:
        row = issues.find_issue_row(conn, issue_id)
        if row is None:
            raise DigestError(f"there is no issue {issue_id}")
        funnel = _funnels(conn, [row])[0]
        posts = engagement.post_clicks(conn, issue_id)
    rows: list[list[object]] = [FUNNEL_COLUMNS, _funnel_row(row.digest, funnel), []]
    rows.append(["post", "url", "topics", "clicks", "readers"])
    rows.extend([p.title, p.url, " ".join(p.topics), p.clicks, p.readers] for p in posts)
    return f"{row.digest}-issue-{row.number}-figures.csv", _csv(rows)
