"""``digest issues list|show|approve|hold|skip|exclude|include|preflight``: what an editor does
on an issue's page in the editor app, from the shell. (``digest issues ledger`` is in
:mod:`.ledger`.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from digest.app import issues, sending
from digest.app.editorial import Editorial, SegmentRow
from digest.app.wiring import Project
from digest.cli.issues import who
from digest.cli.options import ConfigOption, DigestOption, open_project
from digest.cli.output import out
from digest.lifecycle import approval_shown

Number = Annotated[int, typer.Argument(help="the issue's number")]
Note = Annotated[str | None, typer.Option("--note", help="why (kept with the decision)")]


def issues_list(
    config: ConfigOption = None,
    digest: DigestOption = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 20,
) -> None:
    """The digest's issues, newest first: status, approval and the figures of each."""
    project = open_project(config)
    found = Editorial(project).history(project.config.digest(digest).slug)[0]
    table = Table(title=f"Issues of {escape(found.digest.name)}", title_justify="left")
    for column in ("No.", "Status", "Approval", "Planned", "Sent", "Recipients", "Failed"):
        table.add_column(column, justify="right" if column in ("No.", "Recipients") else "left")
    for row, figures in found.issues[:limit]:
        _, approval = approval_shown(row.status, row.approval, found.digest.approval)
        table.add_row(
            str(row.number),
            row.status,
            approval,
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.sent_at:%Y-%m-%d %H:%M}" if row.sent_at else "",
            str(figures.recipients),
            str(figures.counts["failed"]),
        )
    if not found.issues:
        out.print(f"{found.digest.slug} has no issues yet: `digest plan` makes the first.")
        return
    out.print(table)


def show(number: Number, config: ConfigOption = None, digest: DigestOption = None) -> None:
    """One issue: its status and approval, its posts per topic (with the ids `exclude` takes),
    its segments and the preflight summary."""
    project = open_project(config)
    row = sending.issue_by_number(project, digest, number)
    page = Editorial(project).issue_page(row.id, None, None)
    digest_config = page.digest
    _, approval = approval_shown(row.status, row.approval, digest_config.approval)
    lines = [
        f"Issue {row.number} of {digest_config.name} ({digest_config.slug})",
        f"Status: {row.status}; approval: {approval}"
        + (f" by {row.approval_by}" if row.approval_by else "")
        + (f" ({row.approval_note})" if row.approval_note else ""),
        f"Planned {row.created_at:%Y-%m-%d %H:%M} UTC"
        + (f" for the slot {row.slot:%Y-%m-%d %H:%M} UTC" if row.slot else "")
        + (f"; sent {row.sent_at:%Y-%m-%d %H:%M} UTC" if row.sent_at else ""),
    ]
    if row.editor_note:
        lines.append(f"Editor's note: {row.editor_note}")
    if page.locked:
        lines.append(f"Posts can no longer change: {page.locked}.")
    for line in lines:
        out.print(line, markup=False, highlight=False)
    posts = Table(title="Posts", title_justify="left")
    for column in ("Topic", "Post", "Title", "Published", ""):
        posts.add_column(column, overflow="fold")
    for topic, entries in page.topics:
        for entry in entries:
            posts.add_row(
                escape(topic.name),
                str(entry.post_id),
                escape(entry.title),
                f"{entry.published_at:%Y-%m-%d}",
                "left out" if entry.excluded else "",
            )
    out.print(posts)
    _print_segments(page.segments)


def _print_segments(segments: list[SegmentRow]) -> None:
    if not segments:
        return
    table = Table(title="Segments", title_justify="left")
    for column in ("Segment", "Readers", "HTML KiB", "Preflight"):
        table.add_column(column)
    for segment in segments:
        table.add_row(
            escape(segment.label),
            str(segment.readers),
            segment.kib,
            f"{segment.errors} errors, {segment.warnings} warnings",
        )
    out.print(table)


def _decide(
    project: Project, digest: str | None, number: int, action: str, note: str | None
) -> None:
    row = sending.issue_by_number(project, digest, number)
    issues.decide(project, row.id, action, f"{who()} (digest issues {action})", note)


def approve(
    number: Number, config: ConfigOption = None, digest: DigestOption = None, note: Note = None
) -> None:
    """Approve the issue: the scheduler sends it at its slot (`digest send` sends it now)."""
    project = open_project(config)
    _decide(project, digest, number, "approve", note)
    out.print(f"Approved issue {number}: the scheduler sends it at its slot.")


def hold(
    number: Number, config: ConfigOption = None, digest: DigestOption = None, note: Note = None
) -> None:
    """Hold the issue: nothing sends it until someone approves it."""
    project = open_project(config)
    _decide(project, digest, number, "hold", note)
    out.print(f"Held issue {number}: it will not be sent until someone approves it.")


def skip(
    number: Number, config: ConfigOption = None, digest: DigestOption = None, note: Note = None
) -> None:
    """Skip the issue: it is never sent, and its posts go into the next one."""
    project = open_project(config)
    _decide(project, digest, number, "skip", note)
    out.print(f"Skipped issue {number}: its posts go into the next issue.")


def exclude(
    number: Number,
    post: Annotated[int, typer.Argument(help="the post's id, as `digest issues show` lists it")],
    config: ConfigOption = None,
    digest: DigestOption = None,
) -> None:
    """Leave a post out of an issue that can still change."""
    project = open_project(config)
    row = sending.issue_by_number(project, digest, number)
    issues.edit(project, row.id, "exclude", post, "")
    out.print(f"Post {post} is left out of issue {number}.")


def include(
    number: Number,
    post: Annotated[int, typer.Argument(help="the post's id")],
    config: ConfigOption = None,
    digest: DigestOption = None,
) -> None:
    """Take a post that was left out back into the issue."""
    project = open_project(config)
    row = sending.issue_by_number(project, digest, number)
    issues.edit(project, row.id, "include", post, "")
    out.print(f"Post {post} is back in issue {number}.")


def note(
    number: Number,
    text: Annotated[str, typer.Argument(help="the note; an empty string removes it")],
    config: ConfigOption = None,
    digest: DigestOption = None,
) -> None:
    """Set the editor's note: a few words shown above the posts in every reader's email
    (while the issue can still change)."""
    project = open_project(config)
    row = sending.issue_by_number(project, digest, number)
    stored = issues.set_note(project, row.id, text)
    out.print(f"Issue {number} {'has its note' if stored else 'has no note'} now.")


def preflight(
    number: Number,
    config: ConfigOption = None,
    digest: DigestOption = None,
    segment: Annotated[
        str | None, typer.Option(help="the variant of these topics, e.g. backend+data")
    ] = None,
    as_email: Annotated[
        str | None, typer.Option("--as", help="the variant this reader gets")
    ] = None,
) -> None:
    """The preflight report of one variant (default: every topic): size against Gmail's
    clip, images, links, unfilled tokens. Exits 1 when it finds an error."""
    project = open_project(config)
    row = sending.issue_by_number(project, digest, number)
    editorial = Editorial(project)
    shown = editorial.choose(issues.load(project, row.id), segment, as_email)
    if shown is None:
        out.print(f"Issue {number} has no posts left: nothing to check.")
        return
    report = shown.report
    out.print(
        f"Preflight of issue {number}, {shown.label}: {report.html_bytes / 1024:.1f} KiB of "
        f"{report.budget / 1024:.0f} KiB; {len(report.errors)} errors, "
        f"{len(report.warnings)} warnings",
        markup=False,
        highlight=False,
    )
    for finding in report.findings:
        count = f" (×{finding.count})" if finding.count > 1 else ""
        examples = "; ".join(finding.examples)
        out.print(
            f"{finding.level}: {finding.check}: {finding.message}{count}"
            + (f": {examples}" if examples else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if report.errors:
        raise typer.Exit(1)


COMMANDS: dict[str, Callable[..., None]] = {
    "list": issues_list,
    "show": show,
    "approve": approve,
    "hold": hold,
    "skip": skip,
    "exclude": exclude,
    "include": include,
    "note": note,
    "preflight": preflight,
}
