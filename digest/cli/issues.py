"""``digest plan``, ``preview``, ``send``, ``worker`` and ``run``: one issue from planned to sent,
by hand."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, Task, TextColumn
from rich.table import Table
from rich.text import Text

from digest.app import issues, previews, sending
from digest.app.issues import Planned
from digest.app.previews import PreviewResult
from digest.app.wiring import Project
from digest.cli.gather import gather_with_progress
from digest.cli.options import CadenceOption, ConfigOption, DigestOption, open_project
from digest.cli.output import err, out
from digest.errors import DigestError
from digest.models import Issue
from digest.render.size import HTML_BUDGET_BYTES
from digest.send.worker import AmbiguousPolicy, SendReport

WithoutReaders = Annotated[
    bool,
    typer.Option(
        "--without-readers",
        help="plan the issue even if no active subscriber would get it (its posts are used up)",
    ),
]


def plan(
    config: ConfigOption = None,
    digest: DigestOption = None,
    without_readers: WithoutReaders = False,
    cadence: CadenceOption = None,
) -> None:
    """Plan the next issue (posts new since the last one) and show who gets what."""
    project = open_project(config)
    planned = issues.plan(project, digest, without_readers=without_readers, cadence=cadence)
    if planned is None:
        out.print(f"{issues.why_nothing(project, digest)}: no issue planned.")
        return
    _print_plan(project, planned)


def _print_plan(project: Project, planned: Planned) -> None:
    issue = planned.issue
    state = "planned now" if planned.created else "planned earlier, not yet sent"
    cadence = f" for {issue.cadence} readers" if issue.cadence else ""
    topics = Table(
        title=f"Issue {issue.number} of {issue.digest}{cadence} ({state})", title_justify="left"
    )
    topics.add_column("Topic")
    topics.add_column("New posts", justify="right")
    topics.add_column("Readers", justify="right")
    for section in issue.sections:
        readers = sum(n for key, n in planned.segments.items() if section.topic.slug in key)
        more = section.more
        count = f"{len(section.posts)}" + (f" (+{more} not shown)" if more else "")
        topics.add_row(section.topic.name, count, str(readers))
    topics.add_section()
    topics.add_row("[bold]Total[/]", str(issue.post_count), str(planned.recipients))
    out.print(topics)
    _print_segments(project, planned)


def _print_segments(project: Project, planned: Planned) -> None:
    issue = planned.issue
    names = {t.slug: t.name for t in project.topics()}
    rendered = project.render(issue)
    segments = Table(title=f"{len(planned.segments)} segments", title_justify="left")
    segments.add_column("Segment (topics in this issue)")
    segments.add_column("Recipients", justify="right")
    segments.add_column("HTML sent (max)", justify="right")
    segments.add_column("Trimmed to fit")
    segments.add_column("Collapsed to a link")
    collapsed_any: set[str] = set()
    for key, readers in planned.segments.items():
        variant = rendered.variant(key)
        trimmed = ", ".join(f"{names[s]} −{n}" for s, n in variant.trimmed.items()) or "—"
        collapsed_any.update(variant.collapsed)
        segments.add_row(
            escape(
                ", ".join(names[s] for s in issue.topic_slugs if s in key)
                + ("" if key.since is None else f" (switched: since release {key.since})")
            ),
            str(readers),
            f"{variant.sent_bytes / 1000:.1f} KB",
            escape(trimmed),
            escape(", ".join(names[s] for s in variant.collapsed) or "—"),
        )
    out.print(segments)
    if collapsed_any:
        listed = ", ".join(names[s] for s in issue.topic_slugs if s in collapsed_any)
        out.print(
            f"Collapsed to their link to the web-archive page (no room for a card within "
            f"{HTML_BUDGET_BYTES:,} bytes): {escape(listed)}",
            soft_wrap=True,
        )


def preview(
    config: ConfigOption = None,
    digest: DigestOption = None,
    folder: Annotated[
        Path | None, typer.Option("--out", "-o", help="folder for the previews")
    ] = None,
) -> None:
    """Write one HTML file per segment of the next (or latest) issue, and an index.html."""
    project = open_project(config)
    target = folder or project.config.base_dir / "preview"
    result = previews.preview(project, digest, target)
    out.print(f"Previews of {len(result.files)} segments: [bold]{escape(str(result.index))}[/]")
    warn_size(result)


def warn_size(result: PreviewResult) -> None:
    for key, size in result.over_budget.items():
        err.print(
            f"[yellow]warning: the email of segment {'+'.join(sorted(key.topics))} is "
            f"{size / 1024:.0f} KiB of HTML; Gmail clips past about 100 KiB. "
            "Lower max_posts_per_topic.[/]"
        )


def who() -> str:
    """The local user, for the record of who forced a send."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER (some containers)
        return "unknown user"


class _Rate(ProgressColumn):
    """Recipients per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "", style="progress.data.speed")


@contextmanager
def _progress() -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while an issue goes out; yields what counts each batch."""
    columns = (*Progress.get_default_columns(), TextColumn("{task.completed} recipients"), _Rate())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("Sending", total=None)
        yield lambda n: progress.update(task, advance=n)


def send_with_progress(
    project: Project,
    digest: str | None,
    policy: AmbiguousPolicy = "skip",
    force: bool = False,
    without_readers: bool = False,
    cadence: str | None = None,
) -> tuple[Planned | None, SendReport | None]:
    """Send (or resume) the next issue, a progress bar on stderr while it goes out, then its
    plan and what was submitted."""
    with _progress() as on_batch:
        planned, report = sending.send(
            project,
            digest,
            ambiguous_policy=policy,
            on_batch=on_batch,
            force=force,
            by=f"{who()} (digest send --force)",
            without_readers=without_readers,
            cadence=cadence,
        )
    if planned is None or report is None:
        out.print(f"{issues.why_nothing(project, digest)}: no email sent.")
        return planned, report
    _print_plan(project, planned)
    for finding in sending.image_findings(project, planned.issue):
        err.print(
            f"warning: {finding.message} (×{finding.count}), e.g. {finding.examples[0]}",
            style="yellow",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    print_sent(project, planned, report)
    return planned, report


def print_sent(project: Project, planned: Planned, report: SendReport) -> None:
    """What was submitted, what failed and why (the provider's reasons, most common first);
    exits 1 when any delivery failed, so a script or a cron job notices."""
    if report.ambiguous:
        err.print(
            f"[yellow]{report.ambiguous} deliveries are ambiguous: in flight when a run stopped, "
            "or sent without an answer. They were not sent again (policy: skip); see the "
            "ledger before deciding to resend.[/]"
        )
    folder = sending.outbox_folder(project, planned.issue)
    where = f" to {escape(str(folder))}" if folder is not None else ""
    out.print(
        f"Emails submitted: [bold]{report.submitted}[/]{where}; failed: {report.failed}"
        + _unfinished(project, report)
    )
    if report.failed:
        reasons = sending.failure_reasons(project, report.issue_id)
        for reason, count in reasons.most_common(3):
            err.print(f"[red]failed:[/] {count} × {escape(reason or 'no reason given')}")
        err.print(f"`digest issues ledger {planned.issue.number}` lists every failure.")
        raise typer.Exit(1)


def _unfinished(project: Project, report: SendReport) -> str:
    """What is left of the issue now: other workers may have finished it since this one
    stopped, or still be sending."""
    if report.finished:
        return ""
    left = sending.still_open(project, report.issue_id)
    if left.get("pending"):
        return " (unfinished: run again to resume)"
    if left.get("submitting"):
        n = left["submitting"]
        return f" (another worker is still sending {n} batch{'es' if n > 1 else ''})"
    return ""


def send(
    config: ConfigOption = None,
    digest: DigestOption = None,
    test_to: Annotated[
        str | None,
        typer.Option("--test-to", help="send one variant to this address only, outside the ledger"),
    ] = None,
    segment: Annotated[
        str | None,
        typer.Option(help="with --test-to: the topics of the variant, e.g. backend+data"),
    ] = None,
    as_email: Annotated[
        str | None, typer.Option("--as", help="with --test-to: the variant this subscriber gets")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show segments, batches and recipients; send nothing")
    ] = False,
    resend_ambiguous: Annotated[
        bool,
        typer.Option(
            "--resend-ambiguous",
            help="re-send deliveries whose fate is unknown (policy 'resend'; default 'skip')",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="send an issue that waits for approval or is held (records you as approver)",
        ),
    ] = False,
    number: Annotated[
        int | None,
        typer.Option(
            "--issue",
            help="with --resend-ambiguous: this issue (by number), even if it is closed",
        ),
    ] = None,
    without_readers: WithoutReaders = False,
    cadence: CadenceOption = None,
) -> None:
    """Send the next issue, or resume an unfinished one. A finished issue is never sent again.

    An issue waiting for an editor's approval, or held, is refused unless --force is given.
    Exits 1 when deliveries failed, with the provider's reasons."""
    project = open_project(config)
    if number is not None:
        if not resend_ambiguous:
            raise DigestError("--issue goes with --resend-ambiguous", where="--issue")
        _resend(project, digest, number)
    elif test_to:
        _send_test(project, digest, test_to, segment, as_email)
    elif dry_run:
        _dry_run(project, digest, cadence)
    else:
        policy: AmbiguousPolicy = "resend" if resend_ambiguous else "skip"
        send_with_progress(project, digest, policy, force, without_readers, cadence)


def send_every_cadence(project: Project, digest: str | None) -> list[Issue]:
    """Send the digest's issue of each of its cadences, each to its own readers (by hand,
    every cadence at once: what `digest run` and the demo do). Returns the issues that went
    out, in the config's order of cadences."""
    sent = []
    for cadence in project.config.digest(digest).schedules:
        planned, _ = send_with_progress(project, digest, cadence=cadence or None)
        if planned is not None:
            sent.append(planned.issue)
    return sent


def _resend(project: Project, digest: str | None, number: int) -> None:
    columns = (*Progress.get_default_columns(), TextColumn("{task.completed} recipients"), _Rate())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("Sending again", total=None)
        planned, report = sending.resend_ambiguous(
            project, digest, number, on_batch=lambda n: progress.update(task, advance=n)
        )
    print_sent(project, planned, report)


def _send_test(
    project: Project, digest: str | None, to: str, segment: str | None, as_email: str | None
) -> None:
    key = frozenset(s for s in re.split(r"[+,]", segment) if s) if segment else None
    issue, topics, subject = previews.send_test(project, to, digest, key, as_email)
    variant = "+".join(sorted(topics.topics))
    out.print(f"Test of issue {issue.number} ({variant}) sent to {to}: {subject}", markup=False)


def _dry_run(project: Project, digest: str | None, cadence: str | None) -> None:
    planned = issues.plan(project, digest, save=False, cadence=cadence)
    if planned is None:
        out.print(f"{issues.why_nothing(project, digest)}: nothing would be sent.")
        return
    _print_plan(project, planned)
    size = project.config.sending.batch_size
    batches = sum(-(-n // size) for n in planned.segments.values())
    out.print(
        f"Dry run: {planned.recipients} recipients in {batches} batches of at most {size} "
        f"through {project.config.sending.transport}; nothing was sent or stored."
    )


def worker(
    config: ConfigOption = None,
    digest: DigestOption = None,
    resend_ambiguous: Annotated[bool, typer.Option("--resend-ambiguous")] = False,
) -> None:
    """Help send the digest's unfinished issue, whatever its cadence (plans nothing). Run
    several on PostgreSQL: they claim batches with FOR UPDATE SKIP LOCKED, so no batch goes
    out twice."""
    project = open_project(config)
    with _progress() as on_batch:
        helped = sending.help_send(
            project, digest, "resend" if resend_ambiguous else "skip", on_batch
        )
    if helped is None:
        out.print("No unfinished issue: nothing to do.")
        return
    print_sent(project, *helped)


def run(config: ConfigOption = None, digest: DigestOption = None) -> None:
    """Gather, plan and send now, by hand (`digest scheduler` runs digests at their slots)."""
    project = open_project(config)
    report = gather_with_progress(project)
    send_every_cadence(project, digest)
    if report.failed:
        raise typer.Exit(1)
