"""Use cases of an issue before it is sent: plan it, look it up, and the editors' decisions
(approve, hold, skip) and changes (leave a post out, reorder). Each owns its transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property, partial

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from digest.app.wiring import Project
from digest.errors import DigestError, NoReaders
from digest.events import issue_counts
from digest.lifecycle import EDITOR_DECISIONS, Approval, why_no_decision
from digest.models import Issue, TopicSet
from digest.plan import LATE_POST_WINDOW, plan_issue
from digest.segment import decode_key, has_readers, segment_members
from digest.send import reporting
from digest.stores import issue_posts, issues, posts

DELIVERY_FIGURES = ("submitted", "failed", "ambiguous")
EVENT_FIGURES = {
    "delivered": ("delivered",),
    "bounced": ("bounce", "dropped"),
    "complained": ("spamreport",),
    "opened": ("open",),
    "clicked": ("click",),
}
"""Figure → webhook event kinds. Opens and clicks count events, not distinct readers."""


@dataclass(frozen=True)
class Planned:
    """The issue waiting to be sent (just planned, or planned earlier and not finished)."""

    issue: Issue
    created: bool
    count_segments: Callable[[], dict[TopicSet, int]] = field(repr=False, compare=False)
    """Counted on first use: at a million readers counting takes seconds, and sending
    (which segments as it records) does not need the count."""
    approval: str = Approval.NONE
    """The editor gate (see :mod:`digest.lifecycle`): none, pending, approved, held."""
    slot: datetime | None = None

    @cached_property
    def segments(self) -> dict[TopicSet, int]:
        return self.count_segments()

    @property
    def recipients(self) -> int:
        return sum(self.segments.values())


@dataclass(frozen=True)
class Figures:
    """One issue's ledger (submitted, failed, ambiguous) and webhook events (delivered, …)."""

    recipients: int
    counts: dict[str, int]


def plan(
    project: Project,
    digest_slug: str | None = None,
    save: bool = True,
    slot: datetime | None = None,
    approval: str = Approval.NONE,
    without_readers: bool = False,
    cadence: str | None = None,
) -> Planned | None:
    """The issue made for ``slot`` if there is one, else the unfinished issue of the
    digest, else a newly planned one (stored with ``slot`` and ``approval``), else None.

    A new issue nobody would get (no active reader follows its topics) is refused with
    :class:`NoReaders` and its posts stay new, unless ``without_readers``. A digest's first
    issue takes only the posts of ``[gather] backfill_days`` (:func:`plan_issue`).

    ``slot`` makes planning idempotent per scheduled run: the unique (digest, slot)
    constraint means a second scheduler, or a rerun of the slot, gets the same issue back.
    ``save`` False plans without storing anything (``digest send --dry-run``). ``cadence``:
    which of the digest's cadences (None: its default)."""
    digest = project.config.digest(digest_slug)
    cadence = project.config.cadence(digest, cadence)
    topics = project.topics(digest)
    now = project.clock()
    with project.transaction() as conn:
        found = issues.issue_for_slot(conn, digest.slug, slot, cadence) if slot else None
        found = found or issues.unfinished_issue(conn, digest.slug, cadence)
        if found is not None:
            issue = issues.load_issue(conn, found.id, topics)
            return Planned(
                issue, False, partial(segments, project, issue), found.approval, found.slot
            )
        last = issues.last_issue(conn, digest.slug)
        since = last.cutoff - LATE_POST_WINDOW if last else None
        planned = plan_issue(
            digest=digest.slug,
            topics=topics,
            candidates=posts.candidate_posts(conn, [t.slug for t in topics], since, now),
            already_sent=issues.posts_in_issues(conn, digest.slug),
            last_number=issues.last_number(conn, digest.slug),
            last_cutoff=last.cutoff if last else None,
            max_posts_per_topic=digest.max_posts_per_topic,
            now=now,
            backfill=timedelta(days=project.config.gather.backfill_days),
        )
        if planned is None:
            return None
        planned = replace(planned, cadence=cadence)
        if not save:
            return Planned(planned, True, partial(segments, project, planned), approval, slot)
        if not without_readers and not has_readers(conn, planned.topic_slugs, now):
            raise NoReaders(
                f"issue {planned.number} would go to nobody: no active subscriber follows "
                f"{_topic_list(planned)}. Its {_posts(planned.post_count)} stay new for the "
                "next issue; import subscribers (`digest subscribers import FILE`) or plan "
                "it anyway with --without-readers",
                where=digest.slug,
            )
        try:
            with conn.begin_nested():
                issue = issues.save_issue(conn, planned, posts.topic_ids(conn), now, slot, approval)
        except IntegrityError:
            pass  # another process planned this slot (or this number) first: theirs stands
        else:
            return Planned(issue, True, partial(segments, project, issue), approval, slot)
    if slot is None:
        raise DigestError("another process planned an issue at the same moment; run again")
    return plan(project, digest_slug, save, slot, approval, without_readers, cadence)


def _topic_list(issue: Issue) -> str:
    names = [s.topic.name for s in issue.sections]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _posts(count: int) -> str:
    return f"{count} post" + ("" if count == 1 else "s")


def why_nothing(project: Project, digest_slug: str | None = None) -> str:
    """Why planning found nothing: gather never stored a post of the digest's topics, or
    nothing is new since its last issue."""
    digest = project.config.digest(digest_slug)
    with project.reading() as conn:
        gathered = posts.any_posts(conn, [t.slug for t in project.topics(digest)])
    if not gathered:
        return "Nothing gathered yet for this digest (run `digest gather` first, or `digest run`)"
    return "Nothing new since the last issue"


def unfinished(project: Project, digest_slug: str | None = None) -> Issue | None:
    digest = project.config.digest(digest_slug)
    with project.reading() as conn:
        row = issues.unfinished_issue(conn, digest.slug)
        return issues.load_issue(conn, row.id, project.topics(digest)) if row else None


def load(project: Project, issue_id: int) -> Issue:
    with project.reading() as conn:
        digest = issues.issue_row(conn, issue_id).digest
        return issues.load_issue(conn, issue_id, project.topics(project.config.digest(digest)))


def latest(project: Project, digest_slug: str | None = None) -> Issue | None:
    digest = project.config.digest(digest_slug)
    with project.reading() as conn:
        last = issues.last_issue(conn, digest.slug)
        return issues.load_issue(conn, last.id, project.topics(digest)) if last else None


def row(project: Project, issue_id: int) -> issues.IssueRow | None:
    with project.reading() as conn:
        return issues.find_issue_row(conn, issue_id)


def segments(project: Project, issue: Issue) -> dict[TopicSet, int]:
    """Readers per segment, largest first: as recorded for sending once the issue is
    being sent (cheap, and what it goes out to), else as the subscribers stand now."""
    with project.reading() as conn:
        recorded = reporting.segment_sizes(conn, issue.id) if issue.id is not None else {}
        if recorded:
            sizes = Counter({decode_key(key): n for key, n in recorded.items()})
        else:
            members = segment_members(conn, issue.topic_slugs, project.clock())
            sizes = Counter(key for _, key in members)
    order = {slug: i for i, slug in enumerate(issue.topic_slugs)}
    return dict(sorted(sizes.items(), key=lambda kv: (-kv[1], sorted(order[s] for s in kv[0]))))


def decide(
    project: Project, issue_id: int, action: str, by: str, note: str | None = None
) -> str | None:
    """Record an editor's approve / hold / skip (or approve for sending now); the digest to
    send now, if any. Only the digest's next unsent issue can be sent now."""
    approval = EDITOR_DECISIONS.get(action)
    if approval is None:
        raise DigestError(f"unknown action {action!r}")
    with project.transaction() as conn:
        found = issues.issue_row(conn, issue_id)
        refusal = why_no_decision(found.status)
        if refusal:
            raise DigestError(refusal)
        if action == "send-now":
            upcoming = issues.unfinished_issue(conn, found.digest)
            if upcoming is None or upcoming.id != issue_id:
                raise DigestError("only the digest's next issue can be sent now")
        issues.set_approval(conn, issue_id, approval, by, project.clock(), note or None)
    return found.digest if action == "send-now" else None


def edit(project: Project, issue_id: int, action: str, post_id: int, topic: str) -> None:
    """Leave a post out of a planned issue, take it back, or move it up or down its topic."""
    with project.transaction() as conn:
        if action in ("exclude", "include"):
            issue_posts.set_excluded(conn, issue_id, post_id, action == "exclude")
        elif action in ("up", "down"):
            issue_posts.move(conn, issue_id, topic, post_id, -1 if action == "up" else 1)
        else:
            raise DigestError(f"unknown action {action!r}")


NOTE_LIMIT = 600
"""An editor's note is a short intro, not an article: a few sentences."""


def set_note(project: Project, issue_id: int, note: str) -> str | None:
    """Set (or, empty, remove) the editor's note of an issue that can still change; the note
    as stored. Line breaks are kept, other control characters refused."""
    # Pages show "%%" broken by a zero-width space (the token guard): a note saved again from
    # its form comes back as it was typed.
    note = note.replace("%\u200b%", "%%")
    text = "\n".join(line.rstrip() for line in note.strip().splitlines()).strip()
    if len(text) > NOTE_LIMIT:
        raise DigestError(f"the note is {len(text)} characters; keep it under {NOTE_LIMIT}")
    if any((ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text):
        raise DigestError("the note may not hold control characters")
    with project.transaction() as conn:
        issues.set_note(conn, issue_id, text or None)
    return text or None


def figures(conn: Connection, issue_id: int) -> Figures:
    """The issue's figures on an open connection (pages read several issues' at once)."""
    deliveries = reporting.counts(conn, issue_id)
    events = issue_counts(conn, issue_id)
    counts = {name: deliveries.get(name, 0) for name in DELIVERY_FIGURES}
    for name, kinds in EVENT_FIGURES.items():
        counts[name] = sum(events.get(kind, 0) for kind in kinds)
    return Figures(sum(deliveries.values()), counts)
