"""The scheduled job's use case: what runs for one digest and one slot (gather, plan, gate,
then send, notify, wait, skip or hold), the approval request mailed to editors, and what the
scheduler records about slots it could not run.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from functools import partial
from zoneinfo import ZoneInfo

from digest.app import issues as issue_cases
from digest.app.gathering import gather_sources
from digest.app.sending import deliver
from digest.app.wiring import Project
from digest.config import DigestConfig
from digest.errors import DigestError, NoReaders
from digest.lifecycle import Approval, IssueStatus
from digest.schedule.gate import Action, gate
from digest.schedule.slots import is_repeat
from digest.schedule.waves import Wave, due_zones, wall_time, waves
from digest.segment import in_zones
from digest.send import reporting
from digest.send.message import compose, mailbox
from digest.send.worker import SendReport
from digest.stores import issues
from digest.stores import waves as waves_store
from digest.stores.issues import IssueRow, ScheduleLogRow
from digest.stores.waves import WaveRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlotOutcome:
    """What one run of a slot did; also written to ``schedule_log`` (``kind`` and ``detail``)."""

    digest: str
    slot: datetime
    kind: str
    """ran, notified, waiting, skipped, held, nothing, failed"""
    detail: str
    issue_id: int | None = None
    issue_number: int | None = None
    report: SendReport | None = None
    cadence: str = ""
    next_wave: datetime | None = None
    """With local-time waves: when the slot's next wave (or its first) is due, for the
    scheduler to come back then; None when nothing is left to do for the slot."""

    @property
    def submitted(self) -> int:
        return self.report.submitted if self.report else 0


def run_slot(
    project: Project, digest_slug: str, slot: datetime, cadence: str | None = None
) -> SlotOutcome:
    """One scheduled run of a digest's cadence (None: its default) for ``slot``: gather →
    plan → approval gate → act.

    Idempotent per (digest, cadence, slot): the slot's issue is planned once (unique in the
    database) and a rerun of a slot whose issue was sent or skipped does nothing. Called at
    the slot by the run job, and ``approval_lead_hours`` before it by a ``require`` digest's
    request job (the gate tells the two apart by the time). Tests and the editor app call it
    directly. With ``local_delivery`` the slot goes out in waves (:func:`_send_waves`), and
    each wave's job calls this again: the outcome's ``next_wave`` says when.
    """
    digest = project.config.digest(digest_slug)
    cadence = project.config.cadence(digest, cadence)
    slot = slot.astimezone(UTC)
    outcome = replace(_run_slot(project, digest, slot, cadence), cadence=cadence)
    if digest.local_delivery and outcome.next_wave is None and outcome.issue_id is not None:
        outcome = replace(outcome, next_wave=_next_wave(project, outcome.issue_id))
    log_slot(project, digest.slug, slot, outcome.kind, outcome.detail, cadence=cadence)
    log.info(
        "%s%s %s: %s: %s",
        digest.slug,
        f" ({cadence})" if cadence else "",
        _slot_label(digest, slot),
        outcome.kind,
        outcome.detail,
    )
    return outcome


def _outcome(
    digest: DigestConfig,
    slot: datetime,
    kind: str,
    detail: str,
    row: IssueRow | None = None,
    next_wave: datetime | None = None,
) -> SlotOutcome:
    return SlotOutcome(
        digest.slug,
        slot,
        kind,
        detail,
        row.id if row else None,
        row.number if row else None,
        next_wave=next_wave,
    )


def _slot_label(digest: DigestConfig, slot: datetime) -> str:
    if digest.local_delivery:
        return f"{wall_time(slot):%a %Y-%m-%d %H:%M} in each reader's zone"
    return _both(slot, digest.zone)


def _run_slot(project: Project, digest: DigestConfig, slot: datetime, cadence: str) -> SlotOutcome:
    if not digest.local_delivery and is_repeat(slot, digest.zone):
        local = slot.astimezone(digest.zone)
        return _outcome(
            digest,
            slot,
            "nothing",
            f"{local:%H:%M} happened twice (clocks went back); this is the repeat",
        )
    with project.reading() as conn:
        mine = issues.issue_for_slot(conn, digest.slug, slot, cadence)
        later = issues.latest_slot_with_issue(conn, digest.slug, cadence)
    if mine is not None and IssueStatus(mine.status).finished:
        detail = f"issue {mine.number} of this slot was {mine.status} already"
        return _outcome(digest, slot, "nothing", detail)
    if mine is None and later is not None and later > slot:
        detail = f"a later slot ({later:%Y-%m-%d %H:%M} UTC) has its issue"
        return _outcome(digest, slot, "nothing", detail)
    if digest.local_delivery and mine is None:
        first = _slot_waves(project, digest, slot)[0].at
        lead = digest.approval_lead if digest.approval == "require" else timedelta()
        if project.clock() < first - lead:
            detail = f"its first wave is at {first:%a %Y-%m-%d %H:%M} UTC" + (
                " (editors are asked before)" if lead else ""
            )
            return _outcome(digest, slot, "waiting", detail, next_wave=first - lead)
    resumed = _settle_earlier(project, digest, slot, cadence)
    if mine is None:
        gathered = gather_sources(project)
        failed = ", ".join(s.job.name for s in gathered.failed)
        if failed:
            log.warning("%s: sources failed: %s", digest.slug, failed)
    try:
        planned = issue_cases.plan(project, digest.slug, slot=slot, cadence=cadence)
    except NoReaders as refused:
        return _outcome(digest, slot, "nothing", refused.message + resumed)
    if planned is None:
        return _outcome(digest, slot, "nothing", "nothing new since the last issue" + resumed)
    assert planned.issue.id is not None
    with project.transaction() as conn:
        row = issues.issue_row(conn, planned.issue.id)
        if row.slot is None and issues.attach_slot(conn, row.id, slot):
            row = issues.issue_row(conn, row.id)  # made by hand: now this slot's issue
    if digest.local_delivery and row.slot == slot:
        found = _slot_waves(project, digest, slot)
        with project.transaction() as conn:
            waves_store.add_waves(conn, row.id, [(w.at, w.zones) for w in found])
    return _act(project, digest, slot, planned, row, resumed)


def _slot_waves(project: Project, digest: DigestConfig, slot: datetime) -> list[Wave]:
    """The slot's waves for the zones readers have now."""
    with project.reading() as conn:
        zones = waves_store.reader_zones(conn)
    return waves(wall_time(slot), zones, digest.timezone)


def _next_wave(project: Project, issue_id: int) -> datetime | None:
    """When the issue's next wave is due: None once every wave is done, or when the issue
    will not be sent by the scheduler (held, skipped, finished)."""
    with project.reading() as conn:
        row = issues.issue_row(conn, issue_id)
        rows = waves_store.waves_of(conn, issue_id)
    if IssueStatus(row.status).finished or row.approval in (Approval.HELD, Approval.SKIPPED):
        return None
    left = [w.wave_at for w in rows if not w.done]
    return left[0] if left else None


def _send_waves(
    project: Project, digest: DigestConfig, planned: issue_cases.Planned, row: IssueRow
) -> tuple[SendReport | None, str]:
    """Send the waves of the issue that are due and not done, as one recording of the
    readers of every zone whose wall time has come and who have no delivery in the issue yet
    (a reader who moved from a done wave's zone has one; one who moved into it is due now).
    The last wave takes everyone left and ends the recording (watermarks settle then)."""
    now = project.clock()
    with project.reading() as conn:
        rows = waves_store.waves_of(conn, row.id)
        zones = waves_store.reader_zones(conn) | {z for w in rows for z in w.zones}
    due = [w for w in rows if not w.done and w.wave_at <= now]
    if not due:
        return None, ""
    final = rows[-1].wave_at <= now
    narrow = None
    if not final:
        zone_names = due_zones(wall_time(row.slot or now), zones, digest.timezone, now)
        narrow = partial(in_zones, zones=zone_names, default_zone=digest.timezone)
    report = deliver(project, planned, narrow=narrow, final=final)
    with project.transaction() as conn:
        ats = [w.wave_at for w in due]
        waves_store.mark_recorded(conn, row.id, ats, report.recorded, project.clock())
        if not reporting.open_batches(conn, row.id):
            waves_store.mark_sent(conn, row.id, ats, project.clock())
    names = [f"{w.wave_at:%H:%M} UTC ({_offsets(w)})" for w in due]
    what = f"wave{'s' if len(due) > 1 else ''} {', '.join(names)} of {len(rows)}"
    return report, what + (" (the last)" if final else "")


def _offsets(wave: WaveRow) -> str:
    labels = sorted({Wave(wave.wave_at, (z,)).offset_label() for z in wave.zones})
    return ", ".join(labels)


def _act(
    project: Project,
    digest: DigestConfig,
    slot: datetime,
    planned: issue_cases.Planned,
    row: IssueRow,
    resumed: str,
) -> SlotOutcome:
    """Do what the approval gate says for this slot's issue."""
    deadline = row.slot or slot
    if digest.local_delivery and row.slot is not None:
        with project.reading() as conn:
            stored = waves_store.waves_of(conn, row.id)
        deadline = stored[0].wave_at if stored else deadline  # approval covers every wave
    action = gate(digest.approval, row.approval, project.clock(), deadline, digest.approval_lead)
    number = row.number
    if action is Action.SEND and digest.local_delivery and row.slot is not None:
        sent, waved = _send_waves(project, digest, planned, row)
        if sent is None:
            return _outcome(digest, slot, "waiting", f"issue {number}: no wave is due yet", row)
        detail = f"issue {number}, {waved}: {sent.submitted} submitted, {sent.failed} failed"
        result = _outcome(digest, slot, "ran", detail + resumed, row)
        return SlotOutcome(**{**result.__dict__, "report": sent})
    if action is Action.SEND:
        report = deliver(project, planned)
        detail = f"issue {number}: {report.submitted} submitted, {report.failed} failed"
        if report.ambiguous:
            detail += f", {report.ambiguous} ambiguous (not re-sent)"
        if not report.finished:
            detail += " (unfinished: the next run resumes it)"
        result = _outcome(digest, slot, "ran", detail + resumed, row)
        return SlotOutcome(**{**result.__dict__, "report": report})
    if action is Action.NOTIFY:
        return _notify(project, digest, planned, deadline, row)
    if action is Action.WAIT:
        local = deadline.astimezone(digest.zone)
        why = "approval" if row.approval == Approval.PENDING else "its slot"
        detail = f"issue {number} waits for {why} (until {local:%a %H:%M %Z})"
        return _outcome(digest, slot, "waiting", detail, row)
    if action is Action.SKIP:
        if row.approval != Approval.SKIPPED:
            asked = row.approval == Approval.PENDING
            note = "not approved by its slot" + ("" if asked else " (no editor was asked in time)")
            with project.transaction() as conn:
                issues.set_approval(conn, row.id, Approval.SKIPPED, None, project.clock(), note)
        detail = f"issue {number} was not approved by its slot; its posts go into the next"
        return _outcome(digest, slot, "skipped", detail, row)
    if row.approval != Approval.HELD:
        note = f"approval policy {digest.approval!r}: an editor sends it"
        with project.transaction() as conn:
            issues.set_approval(conn, row.id, Approval.HELD, None, project.clock(), note)
    detail = (
        f"issue {number} is held: an editor sends it (approve it in the editor app, "
        "or `digest send --force`)"
    )
    return _outcome(digest, slot, "held", detail, row)


def _settle_earlier(
    project: Project, digest: DigestConfig, slot: datetime, cadence: str = ""
) -> str:
    """Deal with an unfinished issue from before this slot, so the slot can have its own.

    A send a crash left half done is resumed (it was allowed to start, and the ledger makes the
    rest exactly once). An issue of an earlier slot that never went out is skipped: its slot
    passed, and this slot's issue takes its posts. A held or hand-made issue stays: an editor
    decides about those, and the slot gets it back from ``plan``.
    """
    with project.reading() as conn:
        earlier = issues.unfinished_issue(conn, digest.slug, cadence)
    if earlier is None or earlier.slot == slot:
        return ""
    if earlier.status == IssueStatus.SENDING:
        # An issue still in its waves when the next slot's first wave comes (a daily slot's
        # waves span 26 hours) ends now: its last zones get it early rather than the next
        # issue holding its posts again.
        planned = issue_cases.Planned(
            issue_cases.load(project, earlier.id), False, dict, earlier.approval, earlier.slot
        )
        report = deliver(project, planned)
        with project.transaction() as conn:
            left = [w.wave_at for w in waves_store.waves_of(conn, earlier.id) if not w.done]
            if left:
                waves_store.mark_recorded(conn, earlier.id, left, report.recorded, project.clock())
                if not reporting.open_batches(conn, earlier.id):
                    waves_store.mark_sent(conn, earlier.id, left, project.clock())
        ended = f", its {len(left)} wave(s) left sent early" if left else ""
        return f"; resumed issue {earlier.number}{ended}: {report.submitted} more submitted"
    if earlier.slot is not None and earlier.slot < slot:
        if earlier.approval == Approval.HELD:
            return ""
        note = f"its slot passed without a send; the slot of {slot:%Y-%m-%d %H:%M} UTC replans"
        with project.transaction() as conn:
            issues.set_approval(conn, earlier.id, Approval.SKIPPED, None, project.clock(), note)
            issues.log_schedule(
                conn,
                digest.slug,
                earlier.slot,
                "skipped",
                f"issue {earlier.number}: {note}",
                project.clock(),
            )
    return ""


def editor_url(public_url: str, issue_id: int) -> str:
    """The editor app's page of one issue (served by the editor web app)."""
    return f"{public_url}/editor/issues/{issue_id}"


def _notify(
    project: Project,
    digest: DigestConfig,
    planned: issue_cases.Planned,
    slot: datetime,
    row: IssueRow,
) -> SlotOutcome:
    """Email each editor on ``notify`` a link to the issue, then mark it pending.

    Pending is set even when mail fails: the issue then waits in the editor app, and the
    failure is in the outcome, so the dashboard says why nobody heard of it."""
    config = project.config
    issue = planned.issue
    link = editor_url(config.site.public_url, row.id)
    when = _both(slot, digest.zone)
    subject = f"Please approve {digest.name}, issue {issue.number}, before {when}"
    topics = ", ".join(s.topic.name for s in issue.sections)
    lines = [
        f"Issue {issue.number} of {digest.name} is planned for {when}:",
        f"{issue.post_count} post{'' if issue.post_count == 1 else 's'} in {topics}, for "
        f"{planned.recipients} reader{'' if planned.recipients == 1 else 's'}.",
        "",
        f"Review and approve it: {link}",
        "",
        "If nobody approves it by then, it is skipped and its posts go into the next issue.",
    ]
    body = "\n".join(lines)
    page = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line and link not in line)
    page += f'<p><a href="{html.escape(link)}">Review and approve issue {issue.number}</a></p>'
    sending = config.sending
    sender = mailbox(sending.from_name, sending.from_email)
    mailer = project.mailer()
    failed: list[str] = []
    for editor in digest.notify:
        name, address = parseaddr(editor)
        try:
            mailer(compose(sender, mailbox(name, address), subject, body, page, project.clock()))
        except (DigestError, OSError, ValueError) as err:  # ValueError: a message not built
            failed.append(f"{address}: {err}")
    with project.transaction() as conn:
        issues.set_approval(
            conn,
            row.id,
            Approval.PENDING,
            None,
            project.clock(),
            f"approval requested from {', '.join(digest.notify)}",
        )
    asked = len(digest.notify) - len(failed)
    if asked == 0:
        detail = f"issue {issue.number} waits for approval, but no editor could be emailed: "
        return SlotOutcome(
            digest.slug, slot, "failed", detail + "; ".join(failed), row.id, issue.number
        )
    detail = f"issue {issue.number}: asked {asked} editor(s) to approve by {when}"
    if failed:
        detail += f"; could not email {'; '.join(failed)}"
    return SlotOutcome(digest.slug, slot, "notified", detail, row.id, issue.number)


def _both(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M %Z} ({moment.astimezone(UTC):%H:%M} UTC)"


def log_slot(
    project: Project,
    digest_slug: str,
    slot: datetime | None,
    kind: str,
    detail: str,
    at: datetime | None = None,
    cadence: str = "",
) -> None:
    """Record in ``schedule_log`` what happened to a slot of a cadence (run, missed, …) at
    ``at`` (default now), for `digest schedule list` and the editor app."""
    with project.transaction() as conn:
        issues.log_schedule(conn, digest_slug, slot, kind, detail, at or project.clock(), cadence)


@dataclass(frozen=True)
class WaveView:
    """One wave of a slot as `digest schedule list` and the editor app show it."""

    at: datetime
    zones: tuple[str, ...]
    offsets: str
    """The UTC offsets the slot's wall time has in the wave's zones, e.g. ``+05:45``."""
    readers: int
    """Recorded by the wave, once it ran; else the readers in its zones now."""
    done: bool


def slot_waves(
    project: Project, digest_slug: str, slot: datetime, cadence: str | None = None
) -> list[WaveView]:
    """The waves of a local-delivery slot: as stored once its issue is planned (with what
    each recorded and whether it is done), else as the readers' zones stand now."""
    digest = project.config.digest(digest_slug)
    cadence = project.config.cadence(digest, cadence)
    with project.reading() as conn:
        row = issues.issue_for_slot(conn, digest.slug, slot.astimezone(UTC), cadence)
        stored = waves_store.waves_of(conn, row.id) if row is not None else []
        counts = waves_store.readers_per_zone(conn, digest.timezone)
    if stored:
        return [
            WaveView(
                w.wave_at,
                w.zones,
                _offsets(w),
                w.readers if w.readers is not None else sum(counts.get(z, 0) for z in w.zones),
                w.done,
            )
            for w in stored
        ]
    found = waves(wall_time(slot), counts, digest.timezone)
    return [
        WaveView(
            w.at,
            w.zones,
            _offsets(WaveRow(0, w.at, w.zones, None, None, None)),
            sum(counts.get(z, 0) for z in w.zones),
            False,
        )
        for w in found
    ]


def slots_with_waves_left(project: Project) -> list[tuple[int, str, str, datetime, datetime]]:
    """(issue id, digest, cadence, slot, next wave) of every slot whose issue has waves left:
    what a scheduler coming back resumes (after closing the waves a death left open in an
    issue that was sent)."""
    with project.transaction() as conn:
        waves_store.close_waves_of_sent_issues(conn, project.clock())
        return waves_store.issues_with_waves_left(conn)


TROUBLE_KINDS = ("missed", "skipped", "failed")


def recent_trouble(
    project: Project, digest_slugs: Sequence[str], scanned: int = 50, shown: int = 10
) -> dict[str, list[ScheduleLogRow]]:
    """Per digest, the newest slots that were missed, skipped or failed (at most ``shown``,
    among its newest ``scanned`` log entries), for `digest schedule list`."""
    trouble: dict[str, list[ScheduleLogRow]] = {}
    with project.reading() as conn:
        for slug in digest_slugs:
            newest = issues.schedule_log(conn, slug, limit=scanned)
            trouble[slug] = [row for row in newest if row.kind in TROUBLE_KINDS][:shown]
    return trouble
