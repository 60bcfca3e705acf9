"""Issues: planning's record, the editors' decisions and changes, and the schedule log.

Every query of the ``issues``, ``issue_posts``, ``issue_topics`` and ``schedule_log`` tables
outside the send ledger lives here. The rules over an issue's status and approval are in
:mod:`digest.lifecycle`; this module stores what they decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from digest import db
from digest.errors import ApprovalError, DigestError
from digest.lifecycle import Approval, IssueStatus, approval_of, status_after, why_not_editable
from digest.models import Issue, IssueSection, StoredPost, Topic
from digest.stores.posts import stored_post
from subscribers.tables import UtcDateTime


def posts_in_issues(conn: Connection, digest: str) -> set[int]:
    """Posts an issue of this digest already holds (those of issues planned before cadences
    have no release: planning releases none of these). A skipped issue never reached anyone,
    so its posts are not counted: they are candidates for the next issue again."""
    query = (
        select(db.issue_posts.c.post_id)
        .join(db.issues, db.issues.c.id == db.issue_posts.c.issue_id)
        .where(
            db.issues.c.digest == digest,
            db.issues.c.status != IssueStatus.SKIPPED,
        )
    )
    return set(conn.execute(query).scalars())


@dataclass(frozen=True)
class IssueRow:
    id: int
    digest: str
    number: int
    status: str
    cutoff: datetime
    created_at: datetime
    sent_at: datetime | None
    slot: datetime | None = None
    """The scheduled instant (UTC) this issue was made for; None when made by hand."""
    approval: str = "none"
    approval_by: str | None = None
    approval_at: datetime | None = None
    approval_note: str | None = None
    recorded_at: datetime | None = None
    """When every delivery was recorded (see :func:`digest.send.recording.record`)."""
    recorder: str | None = None
    recorder_until: datetime | None = None
    message_key: str | None = None
    """Random, in the issue's Message-IDs (see :data:`digest.db.issues`)."""
    editor_note: str | None = None
    cadence: str = ""
    """Which of the digest's cadences it is for ('' when the digest has one schedule)."""
    release_from: int | None = None
    release_to: int | None = None
    """It holds the digest's releases in (release_from, release_to]; NULL before cadences."""
    release_base: int | None = None
    per_topic: int | None = None
    takes_default: bool = True


def last_issue(conn: Connection, digest: str) -> IssueRow | None:
    """The newest issue that counts: skipped issues are left out, because the next issue's
    posts are those new since the last issue readers could have got (its cutoff)."""
    row = conn.execute(
        select(db.issues)
        .where(db.issues.c.digest == digest, db.issues.c.status != IssueStatus.SKIPPED)
        .order_by(db.issues.c.number.desc())
    ).first()
    return IssueRow(**row._mapping) if row else None


def last_default_cadence(conn: Connection, digest: str) -> str | None:
    """The cadence of the digest's newest issue for the readers who never chose one (skipped
    ones too: it says what the default was then); None before its first."""
    i = db.issues.c
    return conn.execute(
        select(i.cadence)
        .where(i.digest == digest, i.takes_default.is_(True))
        .order_by(i.number.desc())
        .limit(1)
    ).scalar_one_or_none()


def last_number(conn: Connection, digest: str) -> int:
    """The highest issue number used, skipped issues included: numbers are never reused (the
    skipped issue keeps its row for the record), so readers may see a gap."""
    found = conn.execute(
        select(func.max(db.issues.c.number)).where(db.issues.c.digest == digest)
    ).scalar_one()
    return int(found or 0)


def issue_for_slot(
    conn: Connection, digest: str, slot: datetime, cadence: str = ""
) -> IssueRow | None:
    i = db.issues.c
    row = conn.execute(
        select(db.issues).where(i.digest == digest, i.cadence == cadence, i.slot == slot)
    ).first()
    return IssueRow(**row._mapping) if row else None


def issue_by_number(conn: Connection, digest: str, number: int) -> IssueRow | None:
    row = conn.execute(
        select(db.issues).where(db.issues.c.digest == digest, db.issues.c.number == number)
    ).first()
    return IssueRow(**row._mapping) if row else None


def issue_row(conn: Connection, issue_id: int) -> IssueRow:
    row = conn.execute(select(db.issues).where(db.issues.c.id == issue_id)).one()
    return IssueRow(**row._mapping)


def save_issue(
    conn: Connection,
    issue: Issue,
    topic_id: dict[str, int],
    now: datetime,
    slot: datetime | None = None,
    approval: str = Approval.NONE,
) -> Issue:
    """Store a planned issue. With a ``slot``, a second issue for the same (digest, cadence,
    slot) is refused by the unique constraint (IntegrityError), whoever tries."""
    approval_of(approval)
    issue_id = conn.execute(
        insert(db.issues)
        .values(
            digest=issue.digest,
            number=issue.number,
            status=IssueStatus.PLANNED,
            cutoff=issue.cutoff,
            created_at=now,
            slot=slot,
            approval=approval,
            cadence=issue.cadence,
            release_from=issue.release_from,
            release_to=issue.release_to,
            release_base=issue.release_base,
            per_topic=issue.per_topic,
            takes_default=issue.takes_default,
        )
        .returning(db.issues.c.id)
    ).scalar_one()
    rows = [
        {"issue_id": issue_id, "topic_id": topic_id[s.topic.slug], "post_id": p.id, "position": i}
        for s in issue.sections
        for i, p in enumerate(s.posts)
    ]
    if rows:
        conn.execute(insert(db.issue_posts), rows)
    conn.execute(
        insert(db.issue_topics),
        [
            {"issue_id": issue_id, "topic_id": topic_id[s.topic.slug], "more": s.more}
            for s in issue.sections
        ],
    )
    return replace(issue, id=issue_id, created_at=now)


def load_issue(conn: Connection, issue_id: int, topics: Sequence[Topic]) -> Issue:
    """The issue as it will be sent, sections in the order of ``topics`` (the digest's order),
    posts in each section by their ``position`` (editors may reorder them). Posts an editor
    excluded are left out; a topic whose posts are all excluded has no section."""
    head = issue_row(conn, issue_id)
    query = (
        select(db.posts, db.topics.c.slug.label("section"), db.issue_posts.c.position)
        .join(db.issue_posts, db.issue_posts.c.post_id == db.posts.c.id)
        .join(db.topics, db.topics.c.id == db.issue_posts.c.topic_id)
        .where(db.issue_posts.c.issue_id == issue_id, db.issue_posts.c.excluded.is_(False))
        .order_by(db.issue_posts.c.topic_id, db.issue_posts.c.position, db.posts.c.id)
    )
    rows = list(conn.execute(query))
    post_topics: dict[int, list[str]] = {}
    for row in rows:
        post_topics.setdefault(row.id, []).append(row.section)
    by_section: dict[str, list[StoredPost]] = {}
    for row in rows:
        by_section.setdefault(row.section, []).append(stored_post(row, tuple(post_topics[row.id])))
    more = dict(
        conn.execute(
            select(db.topics.c.slug, db.issue_topics.c.more)
            .join(db.topics, db.topics.c.id == db.issue_topics.c.topic_id)
            .where(db.issue_topics.c.issue_id == issue_id)
        ).all()
    )
    sections = tuple(
        IssueSection(topic, tuple(by_section[topic.slug]), more.get(topic.slug, 0))
        for topic in topics
        if topic.slug in by_section
    )
    released = releases_of(conn, head.digest, post_topics) if head.release_to is not None else {}
    return Issue(
        head.digest,
        head.number,
        sections,
        head.cutoff,
        head.id,
        head.created_at,
        head.editor_note,
        head.cadence,
        head.release_from,
        head.release_to,
        head.release_base,
        head.per_topic,
        released,
        bool(head.takes_default),
    )


def releases_of(conn: Connection, digest: str, post_ids: Iterable[int]) -> dict[int, int]:
    """Post id → its release in the digest."""
    r = db.post_releases.c
    ids = list(post_ids)
    found: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        query = select(r.post_id, r.release).where(
            r.digest == digest, r.post_id.in_(ids[start : start + 500])
        )
        found.update((int(p), int(n)) for p, n in conn.execute(query))
    return found


def set_note(conn: Connection, issue_id: int, note: str | None) -> None:
    """Store the editor's note of an issue whose content may still change
    (:func:`digest.lifecycle.why_not_editable`): what readers get must be what was approved."""
    row = issue_row(conn, issue_id)
    reason = why_not_editable(row.status, row.approval)
    if reason:
        raise DigestError(f"this issue can no longer change: {reason}")
    conn.execute(update(db.issues).where(db.issues.c.id == issue_id).values(editor_note=note))


def set_issue_status(conn: Connection, issue_id: int, status: str, now: datetime) -> None:
    values: dict[str, object] = {"status": status}
    if status == IssueStatus.SENT:
        values["sent_at"] = now
    conn.execute(update(db.issues).where(db.issues.c.id == issue_id).values(**values))


def unfinished_issue(conn: Connection, digest: str, cadence: str | None = None) -> IssueRow | None:
    """The oldest issue not sent yet (planned, or sending), of one cadence or (None) of any.
    Skipped issues are finished."""
    query = select(db.issues).where(
        db.issues.c.digest == digest,
        db.issues.c.status.not_in((IssueStatus.SENT, IssueStatus.SKIPPED)),
    )
    if cadence is not None:
        query = query.where(db.issues.c.cadence == cadence)
    row = conn.execute(query.order_by(db.issues.c.number)).first()
    return IssueRow(**row._mapping) if row else None


def attach_slot(conn: Connection, issue_id: int, slot: datetime) -> bool:
    """Give a hand-made issue the slot the scheduler takes it for, so a rerun of that slot
    finds it instead of planning another. False when it already has a slot."""
    changed = conn.execute(
        update(db.issues)
        .where(db.issues.c.id == issue_id, db.issues.c.slot.is_(None))
        .values(slot=slot)
    ).rowcount
    return bool(changed)


def set_approval(
    conn: Connection,
    issue_id: int,
    approval: str,
    by: str | None,
    now: datetime,
    note: str | None = None,
) -> None:
    """Record an editor's (or the scheduler's) decision on a planned issue.

    Only a planned issue can change: once sending has begun the decision was acted on, and a
    skipped issue's posts may already be in a newer issue. ``skipped`` also finishes the issue
    (status ``skipped``), which frees its posts for the next issue. The update is conditional
    on the status, so a decision racing a send or a skip fails loudly instead of being lost.
    """
    decided = approval_of(approval)
    values: dict[str, object] = {
        "approval": decided,
        "approval_by": by,
        "approval_at": now,
        "approval_note": note,
        "status": status_after(decided),
    }
    changed = conn.execute(
        update(db.issues)
        .where(db.issues.c.id == issue_id, db.issues.c.status == IssueStatus.PLANNED)
        .values(**values)
    ).rowcount
    if not changed:
        row = conn.execute(
            select(db.issues.c.number, db.issues.c.status).where(db.issues.c.id == issue_id)
        ).first()
        if row is None:
            raise ApprovalError(f"no issue with id {issue_id}", where="approval")
        raise ApprovalError(
            f"issue {row.number} is {row.status}: only a planned issue's approval can change",
            where="approval",
        )


@dataclass(frozen=True)
class ScheduleLogRow:
    id: int
    digest: str
    slot: datetime | None
    kind: str
    """ran, missed, skipped, notified, nothing, held, waiting, failed …"""
    detail: str
    at: datetime
    cadence: str = ""
    """Which of the digest's cadences the slot is of ('' for a digest with one schedule)."""


def log_schedule(
    conn: Connection,
    digest: str,
    slot: datetime | None,
    kind: str,
    detail: str,
    at: datetime,
    cadence: str = "",
) -> None:
    conn.execute(
        insert(db.schedule_log).values(
            digest=digest, slot=slot, kind=kind, detail=detail, at=at, cadence=cadence
        )
    )


def schedule_log(conn: Connection, digest: str, limit: int = 20) -> list[ScheduleLogRow]:
    """The newest entries first."""
    rows = conn.execute(
        select(db.schedule_log)
        .where(db.schedule_log.c.digest == digest)
        .order_by(db.schedule_log.c.at.desc(), db.schedule_log.c.id.desc())
        .limit(limit)
    )
    return [ScheduleLogRow(**row._mapping) for row in rows]


def issues_of(conn: Connection, digest: str, limit: int = 100) -> list[IssueRow]:
    """The digest's issues, newest first."""
    rows = conn.execute(
        select(db.issues)
        .where(db.issues.c.digest == digest)
        .order_by(db.issues.c.number.desc())
        .limit(limit)
    )
    return [IssueRow(**row._mapping) for row in rows]


def last_sent(conn: Connection, digest: str) -> IssueRow | None:
    """The digest's newest issue that went out (skipped and unsent ones are passed over)."""
    row = conn.execute(
        select(db.issues)
        .where(db.issues.c.digest == digest, db.issues.c.status == IssueStatus.SENT)
        .order_by(db.issues.c.number.desc())
        .limit(1)
    ).first()
    return IssueRow(**row._mapping) if row else None


def latest_slot_with_issue(conn: Connection, digest: str, cadence: str = "") -> datetime | None:
    i = db.issues.c
    found = conn.execute(
        select(func.max(i.slot)).where(i.digest == digest, i.cadence == cadence)
    ).scalar_one()
    return UtcDateTime().process_result_value(found, conn.dialect) if found else None


def find_issue_row(conn: Connection, issue_id: int) -> IssueRow | None:
    row = conn.execute(select(db.issues).where(db.issues.c.id == issue_id)).first()
    return IssueRow(**row._mapping) if row else None


def public_issues(conn: Connection, digest: str, limit: int = 100) -> list[IssueRow]:
    """The digest's issues that went out (sending or sent), newest first: the web archive.
    Planned, held and skipped issues never reached a reader and are not public."""
    rows = conn.execute(
        select(db.issues)
        .where(
            db.issues.c.digest == digest,
            db.issues.c.status.in_([IssueStatus.SENDING, IssueStatus.SENT]),
        )
        .order_by(db.issues.c.number.desc())
        .limit(limit)
    )
    return [IssueRow(**row._mapping) for row in rows]


def issues_ending_at(conn: Connection, digest: str, ends: Iterable[int]) -> dict[int, int]:
    """Release → the number of the newest issue of the digest that went out and ended there:
    where a reader whose watermark it is was last sent to ("owed since issue 12")."""
    i = db.issues.c
    wanted = sorted(set(ends))
    if not wanted:
        return {}
    rows = conn.execute(
        select(i.release_to, func.max(i.number))
        .where(
            i.digest == digest,
            i.release_to.in_(wanted),
            i.status.in_([IssueStatus.SENDING, IssueStatus.SENT]),
        )
        .group_by(i.release_to)
    )
    return {int(end): int(number) for end, number in rows}
