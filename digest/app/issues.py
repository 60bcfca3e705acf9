"""Use cases of an issue before it is sent: plan it, look it up, and the editors' decisions
(approve, hold, skip) and changes (leave a post out, reorder). Each owns its transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, partial

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from digest.app.wiring import Project
from digest.config import Config, DigestConfig
from digest.errors import DigestError, NoReaders
from digest.events import issue_counts
from digest.lifecycle import EDITOR_DECISIONS, Approval, why_no_decision
from digest.models import Issue, Owed, Topic
from digest.plan import (
    LATE_POST_WINDOW,
    issue_range,
    number_releases,
    plan_cadence_issue,
    to_release,
)
from digest.schedule.slots import ONE_MICROSECOND, slots_between
from digest.segment import Owing, decode_key, has_readers, segment_members
from digest.send import reporting
from digest.stores import issue_posts, issues, posts, releases
from subscribers.store import CadenceSwitch, SubscriberStore

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
    count_segments: Callable[[], dict[Owed, int]] = field(repr=False, compare=False)
    """Counted on first use: at a million readers counting takes seconds, and sending
    (which segments as it records) does not need the count."""
    approval: str = Approval.NONE
    """The editor gate (see :mod:`digest.lifecycle`): none, pending, approved, held."""
    slot: datetime | None = None

    @cached_property
    def segments(self) -> dict[Owed, int]:
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
    issue takes only the posts of ``[gather] backfill_days`` (:func:`to_release`).

    ``slot`` makes planning idempotent per scheduled run: the unique (digest, slot)
    constraint means a second scheduler, or a rerun of the slot, gets the same issue back.
    ``save`` False plans without storing anything (``digest send --dry-run``). ``cadence``:
    which of the digest's cadences (None: its default)."""
    digest = project.config.digest(digest_slug)
    cadence = project.config.cadence(digest, cadence)
    topics = project.topics(digest)
    now = project.clock()
    try:
        with project.transaction() as conn:
            found = issues.issue_for_slot(conn, digest.slug, slot, cadence) if slot else None
            found = found or issues.unfinished_issue(conn, digest.slug, cadence)
            if found is not None:
                issue = issues.load_issue(conn, found.id, topics)
                return Planned(
                    issue, False, partial(segments, project, issue), found.approval, found.slot
                )
            planned = _plan_new(project, conn, digest, cadence, topics, now, slot, save)
            if planned is None:
                return None
            if not save:
                return Planned(planned, True, partial(segments, project, planned), approval, slot)
            if not without_readers and not has_readers(
                conn, planned.topic_slugs, now, Owing.of(planned)
            ):
                raise NoReaders(
                    f"issue {planned.number} would go to nobody: no active subscriber follows "
                    f"{_topic_list(planned)}. Its {_posts(planned.post_count)} stay new for "
                    "the next issue; import subscribers (`digest subscribers import FILE`) or "
                    "plan it anyway with --without-readers",
                    where=digest.slug,
                )
            try:
                with conn.begin_nested():
                    issue = issues.save_issue(
                        conn, planned, posts.topic_ids(conn), now, slot, approval
                    )
            except IntegrityError:
                pass  # another process planned this slot (or this number) first: theirs stands
            else:
                return Planned(issue, True, partial(segments, project, issue), approval, slot)
    except _Raced:  # another cadence's planning released the same posts first
        return plan(project, digest_slug, save, slot, approval, without_readers, cadence)
    if slot is None:
        raise DigestError("another process planned an issue at the same moment; run again")
    return plan(project, digest_slug, save, slot, approval, without_readers, cadence)


class _Raced(Exception):
    """Another cadence's planning released the same posts at the same moment."""


def _plan_new(
    project: Project,
    conn: Connection,
    digest: DigestConfig,
    cadence: str,
    topics: list[Topic],
    now: datetime,
    slot: datetime | None,
    save: bool,
) -> Issue | None:
    """Release the digest's new posts (stored only when ``save``), then the cadence's next
    issue: the releases its readers are owed (see docs/cadence.md)."""
    if save:
        rehome_readers(conn, project.config, digest, now)
    slugs = [t.slug for t in topics]
    last = issues.last_issue(conn, digest.slug)
    since = last.cutoff - LATE_POST_WINDOW if last else None
    candidates = posts.candidate_posts(conn, slugs, since, now)
    done = releases.released_among(conn, digest.slug, [p.id for p in candidates])
    fresh = to_release(
        candidates,
        done | issues.posts_in_issues(conn, digest.slug),
        last.cutoff if last else None,
        now,
        timedelta(days=project.config.gather.backfill_days),
    )
    before = releases.latest(conn, digest.slug)
    numbered = number_releases(fresh, before)
    if save:
        # No savepoint: on SQLite, one taken before the transaction's first write commits
        # when released. A race lost rolls the whole planning back, and plan() plans again.
        try:
            releases.release(conn, digest.slug, numbered, now)
        except IntegrityError:
            raise _Raced from None  # an issue of another cadence released them first
    latest = max(numbered.values(), default=before)
    base = cadence_start(conn, digest, cadence, slot or now)
    if cadence == digest.default:
        base = where_non_choosers_stand(conn, digest, base, save)
    release_from, release_to = issue_range(
        base, releases.lowest_own_watermark(conn, digest.slug, cadence, now), latest
    )
    if release_from >= release_to:
        return None
    held = releases.held_posts(conn, digest.slug, slugs, release_from, release_to)
    if not save:
        by_id = {p.id: p for p in fresh}
        held += [(by_id[i], r) for i, r in numbered.items()]
    return plan_cadence_issue(
        digest=digest.slug,
        cadence=cadence,
        topics=topics,
        held=held,
        number=issues.last_number(conn, digest.slug) + 1,
        release_from=release_from,
        release_to=release_to,
        release_base=base,
        max_posts_per_topic=digest.max_posts_per_topic,
        takes_default=cadence == digest.default,
        now=now,
    )


def switch_in(conn: Connection, config: Config, now: datetime) -> CadenceSwitch:
    """The watermarks readers take from the cadence they leave, read in ``conn``: their
    own, or where the cadence stands; where its first issue would start when it has sent
    none (no watermark at all would leave them at the new cadence's horizon, owed less).
    Readers who never chose, leaving the default, take where they stand
    (:func:`previous_default_base` when the default changed since its last issue).
    A cadence the config no longer offers has no schedule to say where its first issue would
    have started: readers it never sent anything, never placed anywhere else either, stand
    where the digest was when they subscribed."""

    def switch(subscriber_ids: Collection[int], digest: str, leaving: str) -> dict[int, int | None]:
        offered = config.digest(digest)
        start = partial(cadence_start, conn, offered, leaving, now)
        unchosen_at = None
        if leaving == offered.default:
            unchosen_at = previous_default_base(conn, offered, start())
        found = releases.watermarks_at_switch(conn, subscriber_ids, digest, leaving, unchosen_at)
        unplaced = [reader for reader, mark in found.items() if mark is None]
        if not unplaced:
            return found
        if leaving in offered.schedules:
            begin = start()
            return {reader: begin if mark is None else mark for reader, mark in found.items()}
        joined = releases.released_when_they_joined(conn, digest, unplaced)
        return {reader: joined.get(reader, mark) for reader, mark in found.items()}

    return switch


REHOMED_PER_STATEMENT = 500
"""Readers re-homed together (their rows locked, read and written in one go)."""


def rehome_readers(conn: Connection, config: Config, digest: DigestConfig, now: datetime) -> int:
    """Readers who chose a cadence the digest no longer offers (the config withdrew it, or
    turned cadences off) switch to its default, as if they had chosen it there and then:
    each takes where the cadence they leave stood for them, so that the default's next issue
    holds what they were owed and nothing they got. Without this they got nothing at all,
    from any cadence. Returns how many moved."""
    store = SubscriberStore(conn)
    strays = store.readers_of_other_cadences(digest.slug, list(digest.schedules))
    switch = switch_in(conn, config, now)
    defaults = {d.slug: d.default for d in config.digests}
    for start in range(0, len(strays), REHOMED_PER_STATEMENT):
        chunk = strays[start : start + REHOMED_PER_STATEMENT]
        store.lock_many(chunk)
        store.choose_cadences_of(
            {reader: {digest.slug: digest.default} for reader in chunk}, defaults, switch, now
        )
    return len(strays)


def where_non_choosers_stand(conn: Connection, digest: DigestConfig, base: int, save: bool) -> int:
    """Where the readers who never chose a cadence stand, for the issue of the digest's
    default cadence whose own readers stand at ``base``.

    They follow the default, so they stand at its horizon, unless the default changed since
    its last issue (:func:`previous_default_base`). The new default's own readers at its
    horizon are then written down there first (``save``), so that both groups are owed
    exactly their own part of this issue; after it, both stand at its end and agree again."""
    stands = previous_default_base(conn, digest, base)
    if stands is None:
        return base
    if save:
        releases.write_down_horizon(conn, digest.slug, digest.default, base)
    return stands


def previous_default_base(conn: Connection, digest: DigestConfig, start: int) -> int | None:
    """Where the readers who never chose stand when the default changed since its last issue
    for them (``default_cadence`` edited, the default withdrawn, cadences turned on or off):
    where the previous default left them, since that is what they last got (``start`` if it
    has no issue but skipped ones). None when the default is still that issue's cadence, or
    before the digest's first issue for them (not known then: a limit, docs/cadence.md)."""
    previous = issues.last_default_cadence(conn, digest.slug)
    if previous is None or previous == digest.default:
        return None
    return releases.cadence_base(conn, digest.slug, previous, start)


def cadence_start(conn: Connection, digest: DigestConfig, cadence: str, moment: datetime) -> int:
    """Where the cadence's readers without a watermark of their own stand at ``moment`` (its
    horizon, or where its first issue would start): the base of its next issue, and what a
    reader leaving a cadence that has not sent an issue yet was owed from."""
    start = releases.last_released_by(conn, digest.slug, _previous_slot(digest, cadence, moment))
    return releases.cadence_base(conn, digest.slug, cadence, start)


def _previous_slot(digest: DigestConfig, cadence: str, moment: datetime) -> datetime:
    """The cadence's last slot before ``moment``: a cadence's first issue holds what was
    released since (a new monthly cadence starts with the last month)."""
    trigger = CronTrigger.from_crontab(digest.schedules[cadence], timezone=digest.zone)
    for days in (40, 400):
        found = slots_between(trigger, moment - timedelta(days=days), moment - ONE_MICROSECOND)
        if found:
            return found[-1]
    return moment - timedelta(days=400)


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


def segments(project: Project, issue: Issue) -> dict[Owed, int]:
    """Readers per segment, largest first: as recorded for sending once the issue is
    being sent (cheap, and what it goes out to), else as the subscribers stand now."""
    with project.reading() as conn:
        recorded = reporting.segment_sizes(conn, issue.id) if issue.id is not None else {}
        if recorded:
            sizes = Counter({decode_key(key): n for key, n in recorded.items()})
        else:
            members = segment_members(conn, issue.topic_slugs, project.clock(), Owing.of(issue))
            sizes = Counter(key for _, key in members)
    order = {slug: i for i, slug in enumerate(issue.topic_slugs)}
    return dict(
        sorted(
            sizes.items(),
            key=lambda kv: (
                -kv[1],
                sorted(order.get(s, len(order)) for s in kv[0].topics),
                kv[0].since or 0,
            ),
        )
    )


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
