"""Use cases of sending: send an issue by hand (refused while it waits for approval or is held,
unless forced), send the approved next issue now, and run gather → plan → send in one go."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import httpx

from digest.app import feedback, previews
from digest.app import issues as issue_cases
from digest.app.gathering import gather_sources
from digest.app.wiring import Project
from digest.errors import ApprovalError, DigestError
from digest.gather import GatherReport
from digest.lifecycle import Approval, IssueStatus, why_not_sendable
from digest.models import Issue
from digest.render.preflight import Finding, preflight
from digest.send import reporting
from digest.send.message import Envelope, feedback_id, feedback_sender_id, list_id
from digest.send.outbox import OutboxTransport
from digest.send.reporting import LedgerView
from digest.send.sender import Links
from digest.send.transport import Transport
from digest.send.worker import AmbiguousPolicy, Narrow, SendReport, send_issue
from digest.stores import issues, waves
from digest.stores.issues import IssueRow


@dataclass(frozen=True)
class RunResult:
    gathered: GatherReport
    planned: issue_cases.Planned | None
    sent: SendReport | None


def send(
    project: Project,
    digest_slug: str | None = None,
    transport: Transport | None = None,
    ambiguous_policy: AmbiguousPolicy = "skip",
    on_batch: Callable[[int], None] | None = None,
    force: bool = False,
    by: str = "digest send --force",
    without_readers: bool = False,
    cadence: str | None = None,
) -> tuple[issue_cases.Planned | None, SendReport | None]:
    """Send the unfinished issue (planning one if there is none): an editor's explicit act.

    Whether it may go is :func:`digest.lifecycle.why_not_sendable`'s to say; a refusal is an
    :class:`ApprovalError`. ``force`` records the approval (``by``) before sending, so the
    record says who decided.
    """
    project.config.secrets.require_secret_key()  # before planning: a weak key plans nothing
    planned = issue_cases.plan(
        project, digest_slug, without_readers=without_readers, cadence=cadence
    )
    if planned is None:
        return None, None
    issue = planned.issue
    assert issue.id is not None
    with project.reading() as conn:
        status = issues.issue_row(conn, issue.id).status
    policy = project.config.digest(issue.digest).approval
    refusal = why_not_sendable(policy, status, planned.approval)
    if refusal:
        if not force:
            raise _not_approved(issue.number, issue.digest, refusal)
        with project.transaction() as conn:
            issues.set_approval(conn, issue.id, Approval.APPROVED, by, project.clock())
        planned = replace(planned, approval=Approval.APPROVED)
    return planned, deliver(project, planned, transport, ambiguous_policy, on_batch)


def help_send(
    project: Project,
    digest_slug: str | None = None,
    ambiguous_policy: AmbiguousPolicy = "skip",
    on_batch: Callable[[int], None] | None = None,
) -> tuple[issue_cases.Planned, SendReport] | None:
    """Join the send of the digest's unfinished issue, whatever its cadence (``digest
    worker``); None when there is none. Plans nothing: planning here would start the default
    cadence's next issue beside the one being sent.

    An issue sent in local-time waves is only helped with: its recording is the scheduler's,
    wave by wave, and a worker that recorded it would send every reader now."""
    project.config.secrets.require_secret_key()
    digest = project.config.digest(digest_slug)
    with project.reading() as conn:
        row = issues.unfinished_issue(conn, digest.slug)
        in_waves = row is not None and bool(waves.waves_of(conn, row.id))
    if row is None:
        return None
    refusal = why_not_sendable(digest.approval, row.status, row.approval)
    if refusal:
        raise _not_approved(row.number, row.digest, refusal)
    planned = _planned_again(project, row)
    report = deliver(project, planned, None, ambiguous_policy, on_batch, may_record=not in_waves)
    return planned, report


def send_now(project: Project, digest_slug: str) -> None:
    """Send the digest's next issue (the one an editor just approved); resumable like
    `digest send`."""
    send(project, digest_slug)


def deliver(
    project: Project,
    planned: issue_cases.Planned,
    transport: Transport | None = None,
    ambiguous_policy: AmbiguousPolicy = "skip",
    on_batch: Callable[[int], None] | None = None,
    *,
    narrow: Narrow | None = None,
    final: bool = True,
    may_record: bool = True,
) -> SendReport:
    """Send (or resume) this issue, no questions asked: callers decide whether it may go
    (:func:`send` for editors, the scheduled job through its approval gate). ``narrow`` and
    ``final``: one local-time wave of it; ``may_record`` False only sends what others record
    (:func:`digest.send.worker.send_issue`)."""
    issue = planned.issue
    _refuse_unloadable_images(project, issue)
    # A staged bounce, complaint or unsubscribe suppresses its reader before the recipients
    # are read.
    feedback.drain(project)
    digest = project.config.digest(issue.digest)
    sending = project.config.sending
    with project.reading() as conn:
        key = issues.issue_row(conn, issue.id).message_key if issue.id is not None else None
    envelope = Envelope(
        from_name=sending.from_name,
        from_email=sending.from_email,
        reply_to=sending.reply_to,
        list_id=list_id(digest.name, digest.slug, sending.from_email),
        unsubscribe_mailto=sending.unsubscribe_mailto,
        feedback_id=feedback_id(
            digest.slug,
            issue.number,
            sending.feedback_sender_id or feedback_sender_id(sending.from_email),
        ),
        message_key=key,
    )
    transport = transport or project.transport(issue)
    return send_issue(
        project.engine,
        project.render(issue),
        transport,
        envelope,
        Links(project.config.site.public_url, project.signer()),
        project.clock,
        batch_size=sending.batch_size,
        in_flight=sending.in_flight,
        lease=timedelta(minutes=sending.lease_minutes),
        ambiguous_policy=ambiguous_policy,
        on_batch=on_batch,
        # An outbox tells which messages it has: what a dead send wrote is never ambiguous.
        written=transport.written if isinstance(transport, OutboxTransport) else None,
        narrow=narrow,
        final=final,
        may_record=may_record,
    )


def image_findings(project: Project, issue: Issue) -> list[Finding]:
    """What preflight says of the issue's images (every topic's email, as the archive shows
    it): errors for those no reader can load, warnings for those only this machine can."""
    report = preflight(previews.archive_html(project, issue), project.render(issue).budget)
    return [f for f in report.findings if f.check == "images"]


def _refuse_unloadable_images(project: Project, issue: Issue) -> None:
    """Preflight's gate before an issue first goes out: an image no reader's mail program can
    load (a ``file:`` URL outside the project, ``data:``, a relative URL) is a broken email
    for every reader, so the send is refused, naming the images. An issue already sending is
    resumed as it started."""
    assert issue.id is not None
    with project.reading() as conn:
        if issues.issue_row(conn, issue.id).status != IssueStatus.PLANNED:
            return
    broken = [f for f in image_findings(project, issue) if f.level == "error"]
    if broken:
        count = sum(f.count for f in broken)
        public = project.images().issue(issue)
        named = [
            f"{p.post.title!r} ({p.post.image.url[:80]})"
            for s in public.sections
            for p in s.posts
            if p.post.image and not p.post.image.url.lower().startswith(("http://", "https://"))
        ]
        which = "; ".join(dict.fromkeys(named)) or "; ".join(e for f in broken for e in f.examples)
        raise DigestError(
            f"issue {issue.number} has {count} image{'s' if count > 1 else ''} no reader can "
            f"load: {which}. Give those posts an http(s) image or leave them out "
            f"(`digest issues preflight {issue.number}` shows the report)",
            where=issue.digest,
        )


def run(
    project: Project,
    digest_slug: str | None = None,
    client: httpx.Client | None = None,
    transport: Transport | None = None,
) -> RunResult:
    """Gather, plan, send, by hand (``digest run``). The scheduler runs its slot job instead,
    which plans per slot and adds the approval gate; this refuses a held or pending issue
    like :func:`send`."""
    gathered = gather_sources(project, client)
    planned, sent = send(project, digest_slug, transport)
    return RunResult(gathered, planned, sent)


def outbox_folder(project: Project, issue: Issue) -> Path | None:
    """Where the outbox transport writes this issue's emails; None for other transports."""
    if project.config.sending.transport != "outbox":
        return None
    return OutboxTransport.issue_folder(project.config.outbox_dir, issue.digest, issue.number)


def issue_by_number(project: Project, digest_slug: str | None, number: int) -> IssueRow:
    """Issue ``number`` of the digest; a DigestError naming it when there is none."""
    digest = project.config.digest(digest_slug)
    with project.reading() as conn:
        row = issues.issue_by_number(conn, digest.slug, number)
    if row is None:
        raise DigestError(f"{digest.slug} has no issue {number}", where="issue")
    return row


def ledger(project: Project, digest_slug: str | None, number: int) -> tuple[IssueRow, LedgerView]:
    """An issue's ledger as people read it: deliveries per state, the ambiguous and failed
    batches with why and when, the failed deliveries with their reasons."""
    row = issue_by_number(project, digest_slug, number)
    with project.reading() as conn:
        return row, reporting.ledger_view(conn, row.id)


def failure_reasons(project: Project, issue_id: int) -> Counter[str]:
    """Why deliveries of the issue failed, with how many each reason cost."""
    with project.reading() as conn:
        return reporting.failure_reasons(conn, issue_id)


def resendable(project: Project, digest_slug: str | None, number: int) -> IssueRow:
    """Issue ``number``, if it can have ambiguous deliveries to send again (it went out:
    sending or sent); a DigestError saying why not otherwise."""
    row = issue_by_number(project, digest_slug, number)
    if row.status not in (IssueStatus.SENDING, IssueStatus.SENT):
        raise DigestError(
            f"issue {number} of {row.digest} is {row.status}: only an issue that went out has "
            "ambiguous deliveries",
            where="issue",
        )
    return row


def resend_ambiguous(
    project: Project,
    digest_slug: str | None,
    number: int,
    transport: Transport | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[issue_cases.Planned, SendReport]:
    """Send again the ambiguous batches of issue ``number``, closed or not: their readers may
    never have got it. Only an issue that went out (sending or sent) has any; the ledger's
    ``ambiguities`` keeps the count of what a resend may duplicate."""
    row = resendable(project, digest_slug, number)
    planned = _planned_again(project, row)
    return planned, deliver(project, planned, transport, "resend", on_batch)


def _planned_again(project: Project, row: IssueRow) -> issue_cases.Planned:
    """An issue planned earlier, as a send that resumes or helps with it takes it."""
    return issue_cases.Planned(
        issue_cases.load(project, row.id), False, dict, row.approval, row.slot
    )


def _not_approved(number: int, digest: str, refusal: str) -> ApprovalError:
    return ApprovalError(
        f"issue {number} of {digest} {refusal}: approve it in the editor app, or send it "
        "anyway with `digest send --force`",
        where=digest,
    )


def still_open(project: Project, issue_id: int) -> Counter[str]:
    """The issue's batches still pending or in flight now (none once it is sent): what a
    worker that stopped should say, since other workers may have finished meanwhile."""
    with project.reading() as conn:
        return reporting.open_batches(conn, issue_id)
