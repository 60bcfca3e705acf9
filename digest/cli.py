"""The ``digest`` command. Thin: parse options, call :mod:`digest.pipeline`, print tables."""

from __future__ import annotations

import getpass
import logging
import os
import re
import secrets
import signal
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task, TextColumn
from rich.table import Table
from rich.text import Text

from digest import db, repository, schedule
from digest.config import SECRET_KEY_ENV, Config, load_config, resolve_config_path
from digest.editors import EditorStore
from digest.errors import DigestError
from digest.gather import GatherReport, SourceOutcome, source_jobs
from digest.models import Post
from digest.passwords import check_new_password, hash_password
from digest.pipeline import Planned, PreviewResult, Project, inspect_source
from digest.render.size import html_bytes
from digest.scaffold import scaffold
from digest.send.worker import AmbiguousPolicy, SendReport
from subscribers.exporter import records, write_csv, write_jsonl
from subscribers.importer import (
    ParsedFile,
    normalize_email,
    parse_csv,
    parse_jsonl,
    split_topics,
    topic_resolver,
)
from subscribers.models import Status
from subscribers.store import SubscriberStore

app = typer.Typer(
    help="Topic-segmented newsletter digests: gather, plan, preview, send.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
subscribers_app = typer.Typer(
    help="Add, remove, import and list subscribers.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
schedule_app = typer.Typer(help="When each digest runs.", no_args_is_help=True)
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(db_app, name="db")
app.add_typer(schedule_app, name="schedule")
editors_app = typer.Typer(
    help="Accounts of the editor web app (`digest serve`, /editor/).", no_args_is_help=True
)
app.add_typer(editors_app, name="editors")

out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="digest.toml to use (else $DIGEST_CONFIG, else ./digest.toml)"
    ),
]
DigestOption = Annotated[
    str | None, typer.Option("--digest", "-d", help="digest slug (default: the first one)")
]


def _config(path: Path | None) -> Config:
    return load_config(resolve_config_path(path, os.environ), os.environ)


def _project(path: Path | None) -> Project:
    return Project.open(_config(path))


# gather -------------------------------------------------------------------------------------


def _gather(project: Project) -> GatherReport:
    jobs = source_jobs(project.config)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("Gathering", total=len(jobs))

        def advance(outcome: SourceOutcome) -> None:
            progress.update(task, advance=1, description=f"Gathering {outcome.job.name}")

        report = project.gather(on_source=advance)
    table = Table(title="Sources", title_justify="left")
    for column in ("Source", "Kind", "Topic", "Posts", "Result"):
        table.add_column(column, justify="right" if column == "Posts" else "left")
    for s in report.sources:
        if not s.ok:
            result = f"[red]failed: {s.error}[/]"
        elif s.not_modified:
            result = "[cyan]not modified[/]"
        else:
            result = "[green]ok[/]" + (f" ({s.unmapped} without a topic)" if s.unmapped else "")
        table.add_row(s.job.name, s.kind or "-", s.job.topic, str(s.posts), result)
    out.print(table)
    out.print(
        f"Posts: [bold]{report.new}[/] new, {report.updated} updated, {report.unchanged} unchanged."
    )
    for failed in report.failed:
        err.print(f"[red]Source {failed.job.name!r} failed:[/] {failed.error}")
    return report


@app.command()
def inspect(
    source: Annotated[str, typer.Argument(help="feed URL, file, or folder of Markdown files")],
    kind: Annotated[str, typer.Option(help="auto, feed, jsonfeed, wordpress or markdown")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list of posts")] = False,
    config: ConfigOption = None,
) -> None:
    """Show what gather would make of one source, storing nothing."""
    if kind not in ("auto", "feed", "jsonfeed", "wordpress", "markdown"):
        raise DigestError("expected auto, feed, jsonfeed, wordpress or markdown", where="--kind")
    path = resolve_config_path(config, os.environ)
    cfg = load_config(path, os.environ) if config or path.exists() else None
    location = (
        source
        if urlsplit(source).scheme in ("http", "https", "file")
        else Path(source).resolve().as_uri()
    )
    outcome, posts = inspect_source(location, kind, cfg)
    if outcome.error is not None:
        raise DigestError(outcome.error, where=source)
    if as_json:
        out.print_json(data=[post_as_json(p) for p in posts])
        return
    for number, post in enumerate(posts, 1):
        _print_post(number, post)
    unmapped = f", {outcome.unmapped} without a matching topic" if outcome.unmapped else ""
    out.print(f"{len(posts)} posts from {source} ({outcome.kind}){unmapped}.")


def post_as_json(post: Post) -> dict[str, object]:
    image = post.image
    return {
        "title": post.title,
        "url": post.url,
        "uid": post.uid,
        "topics": list(post.topics),
        "published_at": post.published_at.isoformat(),
        "author": post.author,
        "reading_minutes": post.reading_minutes,
        "image": None
        if image is None
        else {"url": image.url, "alt": image.alt, "width": image.width, "height": image.height},
        "excerpt": post.excerpt,
    }


def _print_post(number: int, post: Post) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.add_row("url", post.url)
    grid.add_row("topics", ", ".join(post.topics))
    published = post.published_at.strftime("%Y-%m-%d %H:%M UTC")
    grid.add_row("published", f"{published} · {post.reading_minutes} min read")
    if post.author:
        grid.add_row("author", post.author)
    if post.image:
        size = f" ({post.image.width}×{post.image.height})" if post.image.width else ""
        grid.add_row("image", f"{post.image.url}{size}")
        grid.add_row("alt", post.image.alt)
    else:
        grid.add_row("image", "[yellow]none[/]")
    grid.add_row("excerpt", post.excerpt)
    out.print(f"[bold]{number}. {post.title}[/]", highlight=False)
    out.print(grid, highlight=False)
    out.print()


@app.command()
def gather(config: ConfigOption = None) -> None:
    """Fetch every source and store new and changed posts. Exit code 1 when any source failed."""
    report = _gather(_project(config))
    if report.failed:
        raise typer.Exit(1)


# plan ---------------------------------------------------------------------------------------


def _print_plan(project: Project, planned: Planned) -> None:
    issue = planned.issue
    state = "planned now" if planned.created else "planned earlier, not yet sent"
    names = {t.slug: t.name for t in project.topics()}
    topics = Table(title=f"Issue {issue.number} of {issue.digest} ({state})", title_justify="left")
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
    rendered = project.render(issue)
    segments = Table(title=f"{len(planned.segments)} segments", title_justify="left")
    segments.add_column("Segment (topics in this issue)")
    segments.add_column("Recipients", justify="right")
    segments.add_column("HTML", justify="right")
    segments.add_column("Trimmed to fit")
    for key, readers in planned.segments.items():
        variant = rendered.variant(key)
        trimmed = ", ".join(f"{names[s]} −{n}" for s, n in variant.trimmed.items()) or "—"
        segments.add_row(
            ", ".join(names[s] for s in issue.topic_slugs if s in key),
            str(readers),
            f"{html_bytes(variant.html) / 1024:.0f} KiB",
            trimmed,
        )
    out.print(segments)


@app.command()
def plan(config: ConfigOption = None, digest: DigestOption = None) -> None:
    """Plan the next issue (posts new since the last one) and show who gets what."""
    project = _project(config)
    planned = project.plan(digest)
    if planned is None:
        out.print("Nothing new since the last issue: no issue planned.")
        return
    _print_plan(project, planned)


# preview ------------------------------------------------------------------------------------


@app.command()
def preview(
    config: ConfigOption = None,
    digest: DigestOption = None,
    folder: Annotated[
        Path | None, typer.Option("--out", "-o", help="folder for the previews")
    ] = None,
) -> None:
    """Write one HTML file per segment of the next (or latest) issue, and an index.html."""
    project = _project(config)
    target = folder or project.config.base_dir / "preview"
    result = project.preview(digest, target)
    out.print(f"Previews of {len(result.files)} segments: [bold]{result.index}[/]")
    _warn_size(result)


def _warn_size(result: PreviewResult) -> None:
    for key, size in result.over_budget.items():
        err.print(
            f"[yellow]warning: the email of segment {'+'.join(sorted(key))} is {size / 1024:.0f} "
            "KiB of HTML; Gmail clips past about 100 KiB. Lower max_posts_per_topic.[/]"
        )


# send / run ---------------------------------------------------------------------------------


def _who() -> str:
    """The local user, for the record of who forced a send."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER (some containers)
        return "unknown user"


class _Rate(ProgressColumn):
    """Recipients per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "", style="progress.data.speed")


def _send(
    project: Project, digest: str | None, policy: AmbiguousPolicy = "skip", force: bool = False
) -> tuple[Planned | None, SendReport | None]:
    columns = (*Progress.get_default_columns(), TextColumn("{task.completed} recipients"), _Rate())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("Sending", total=None)
        planned, report = project.send(
            digest,
            ambiguous_policy=policy,
            on_batch=lambda n: progress.update(task, advance=n),
            force=force,
            by=f"{_who()} (digest send --force)",
        )
    if planned is None or report is None:
        out.print("Nothing new since the last issue: no email sent.")
        return planned, report
    _print_plan(project, planned)
    if report.ambiguous:
        err.print(
            f"[yellow]{report.ambiguous} deliveries are ambiguous: in flight when a run stopped, "
            "or sent without an answer. They were not sent again (policy: skip); see the "
            "ledger before deciding to resend.[/]"
        )
    where = (
        f" to {project.transport(planned.issue).folder}"  # type: ignore[attr-defined]
        if project.config.sending.transport == "outbox"
        else ""
    )
    out.print(
        f"Emails submitted: [bold]{report.submitted}[/]{where}; failed: {report.failed}"
        + ("" if report.finished else " (unfinished: run again to resume)")
    )
    return planned, report


@app.command()
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
) -> None:
    """Send the next issue, or resume an unfinished one. A finished issue is never sent again.

    An issue waiting for an editor's approval, or held, is refused unless --force is given."""
    project = _project(config)
    if test_to:
        key = frozenset(s for s in re.split(r"[+,]", segment) if s) if segment else None
        issue, topics, subject = project.send_test(test_to, digest, key, as_email)
        variant = "+".join(sorted(topics))
        out.print(f"Test of issue {issue.number} ({variant}) sent to {test_to}: {subject}")
        return
    if dry_run:
        planned = project.plan(digest, save=False)
        if planned is None:
            out.print("Nothing new since the last issue: nothing would be sent.")
            return
        _print_plan(project, planned)
        size = project.config.sending.batch_size
        batches = sum(-(-n // size) for n in planned.segments.values())
        out.print(
            f"Dry run: {planned.recipients} recipients in {batches} batches of at most {size} "
            f"through {project.config.sending.transport}; nothing was sent or stored."
        )
        return
    _send(project, digest, "resend" if resend_ambiguous else "skip", force)


@app.command()
def worker(
    config: ConfigOption = None,
    digest: DigestOption = None,
    resend_ambiguous: Annotated[bool, typer.Option("--resend-ambiguous")] = False,
) -> None:
    """Help send the digest's unfinished issue (plans nothing). Run several on PostgreSQL: they
    claim batches with FOR UPDATE SKIP LOCKED, so no batch goes out twice."""
    project = _project(config)
    if project.unfinished(digest) is None:
        out.print("No unfinished issue: nothing to do.")
        return
    _send(project, digest, "resend" if resend_ambiguous else "skip")


@app.command()
def run(config: ConfigOption = None, digest: DigestOption = None) -> None:
    """Gather, plan and send now, by hand (`digest scheduler` runs digests at their slots)."""
    project = _project(config)
    report = _gather(project)
    _send(project, digest)
    if report.failed:
        raise typer.Exit(1)


# scheduler ----------------------------------------------------------------------------------


@app.command()
def scheduler(
    config: ConfigOption = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="when another scheduler runs, wait to take over instead of exiting"
        ),
    ] = False,
    poll: Annotated[float, typer.Option(help="with --wait: seconds between tries")] = 30.0,
) -> None:
    """Run every digest on its schedule until Ctrl-C (or SIGTERM). Only one per database.

    Each digest runs gather → plan → approval gate → send at its slots; `require` digests
    also ask their editors approval_lead_hours before. A slot missed while no scheduler ran
    runs once when it comes back within misfire_grace_hours; older ones are recorded as
    missed (`digest schedule list` shows them)."""
    project = _project(config)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        lock = _scheduler_lock(project, wait, poll)
    except KeyboardInterrupt:
        err.print("Stopped while waiting for the other scheduler.")
        return
    service = schedule.SchedulerService(project)
    try:
        for note in service.start():
            err.print(f"[yellow]{note}[/]", highlight=False)
        for run in schedule.next_runs(project.config, project.clock()):
            out.print(f"{run.digest}: next run {_when(run.at, run.timezone)} ({run.policy})")
        out.print("Scheduler running; Ctrl-C stops it.")
        service.wait(lock)
    except KeyboardInterrupt:
        err.print("Stopping (a send in progress finishes first)…")
    finally:
        service.stop()
        lock.release()
    out.print("Scheduler stopped.")


def _scheduler_lock(project: Project, wait: bool, poll: float) -> schedule.SchedulerLock:
    told = False
    while True:
        try:
            return schedule.acquire_lock(project.engine)
        except schedule.SchedulerBusy as busy:
            if not wait:
                err.print(f"[red]error:[/] {busy}", highlight=False, soft_wrap=True)
                err.print("Use --wait to take over when it stops.")
                raise typer.Exit(3) from None
            if not told:
                err.print(f"{busy}; waiting to take over (Ctrl-C to give up)", highlight=False)
                told = True
            time.sleep(poll)


def _when(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return "never"
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a %Y-%m-%d %H:%M %Z} = {moment.astimezone(UTC):%H:%M} UTC"


@schedule_app.command("list")
def schedule_list(config: ConfigOption = None) -> None:
    """Each digest's next run in its time zone and in UTC, its approval policy, the slots
    recently missed or skipped, and schedule times that DST skips or repeats within a year."""
    project = _project(config)
    runs = schedule.next_runs(project.config, project.clock())
    table = Table(title="Schedules", title_justify="left")
    for column in ("Digest", "Schedule", "Next run (local)", "Next run (UTC)", "Approval"):
        table.add_column(column)
    for run in runs:
        local = run.local
        approval = run.policy
        if run.ask_at is not None:
            approval += f" (editors asked {_when(run.ask_at, run.timezone)})"
        table.add_row(
            run.digest,
            f"{run.schedule} ({run.timezone})",
            f"{local:%a %Y-%m-%d %H:%M %Z}" if local else "never",
            f"{run.at:%Y-%m-%d %H:%M} UTC" if run.at else "never",
            approval,
        )
    out.print(table)
    if not schedule.scheduler_running(project.engine):
        err.print(
            "[yellow]No `digest scheduler` is running on this database: slots pass unsent "
            "(recorded as missed when it starts, or run once within the misfire grace).[/]"
        )
    with project.engine.connect() as conn:
        for run in runs:
            shown = [
                row
                for row in repository.schedule_log(conn, run.digest, limit=50)
                if row.kind in ("missed", "skipped", "failed")
            ][:10]
            for row in shown:
                slot = _when(row.slot, run.timezone) if row.slot else "-"
                err.print(
                    f"[yellow]{run.digest} {row.kind}:[/] slot {slot}: {row.detail}",
                    highlight=False,
                    soft_wrap=True,
                )
    for run in runs:
        for edge in run.edges:
            err.print(
                f"[yellow]warning: {run.digest}:[/] {edge.message()}",
                highlight=False,
                soft_wrap=True,
            )


@app.command()
def init(folder: Annotated[Path, typer.Argument(help="new folder for the project")]) -> None:
    """Create a working project from the bundled example site (feeds, images, subscribers)."""
    config = scaffold(folder)
    out.print(f"Created {config}. Next: digest --config {config} run")


@app.command()
def demo(folder: Annotated[Path, typer.Argument()] = Path(".demo")) -> None:
    """The example site end to end: init (once), import subscribers, run, preview."""
    config_path = folder / "digest.toml"
    if not config_path.exists():
        scaffold(folder)
        out.print(f"Created the example project in {folder}")
    config = load_config(config_path, os.environ)
    if not config.secrets.secret_key:
        config = replace(
            config, secrets=replace(config.secrets, secret_key=secrets.token_urlsafe(32))
        )
        err.print(
            f"[yellow]{SECRET_KEY_ENV} is not set: using a throwaway signing secret for this demo; "
            "links in these emails will not verify later.[/]"
        )
    project = Project.open(config)
    parsed = _read_subscribers(project, folder / "subscribers.csv")
    _import(project, parsed, dry_run=False, source=str(folder / "subscribers.csv"))
    _gather(project)
    _send(project, None)
    result = project.preview(None, (folder / "preview").resolve())
    out.print(f"Outbox: [bold]{config.outbox_dir}[/]")
    out.print(f"Previews: [bold]{result.index}[/]")
    _warn_size(result)


# subscribers --------------------------------------------------------------------------------


def _read_subscribers(project: Project, path: Path) -> ParsedFile:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            resolver = topic_resolver((t.slug, t.name) for t in project.topics())
            if path.suffix.lower() in (".jsonl", ".ndjson"):
                return parse_jsonl(handle, resolver)
            return parse_csv(handle, resolver)
    except FileNotFoundError:
        raise DigestError("no such file", where=str(path)) from None
    except UnicodeDecodeError as e:
        raise DigestError(
            f"not UTF-8 text ({e.reason} at byte {e.start})", where=str(path)
        ) from None


def _import(
    project: Project, parsed: ParsedFile, dry_run: bool, source: str, reactivate: bool = False
) -> None:
    for problem in parsed.problems:
        err.print(
            f"[red]{source}:{problem.line}:[/] {problem.reason}", highlight=False, soft_wrap=True
        )
    with project.engine.begin() as conn:
        summary = SubscriberStore(conn).upsert(
            parsed.rows,
            project.clock(),
            source=f"import:{Path(source).name}",
            dry_run=dry_run,
            reactivate=reactivate,
        )
    table = Table(
        title="Import" + (" (dry run: nothing changed)" if dry_run else ""), title_justify="left"
    )
    table.add_column("Result")
    table.add_column("Rows", justify="right")
    table.add_row("added", str(summary.added))
    table.add_row("updated", str(summary.updated))
    table.add_row("unchanged", str(summary.unchanged))
    table.add_row("reactivated", str(summary.reactivated))
    table.add_row("suppressed, left alone", str(len(summary.suppressed)))
    table.add_row("rejected", str(len(parsed.problems)))
    out.print(table)


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="CSV (email, name, topics) or .jsonl")],
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show, change nothing")] = False,
    reactivate: Annotated[
        bool,
        typer.Option(
            "--reactivate",
            help="the file is fresh consent: make unsubscribed, bounced and complained "
            "addresses in it active again",
        ),
    ] = False,
) -> None:
    """Import subscribers from CSV (columns email, name, topics; topics separated by ';' or '|',
    names or slugs, any case) or JSON Lines (objects with email, name, topics).

    Upsert: new addresses are added as active; known addresses take the file's name and topics.
    Unsubscribed, bounced and complained addresses are left exactly as they are unless
    --reactivate is given. Bad rows (bad address, unknown topic, duplicate in the file) are
    reported by line and skipped; the good rows are imported. Exit code 1 when any row was bad.
    """
    project = _project(config)
    parsed = _read_subscribers(project, file)
    _import(project, parsed, dry_run, str(file), reactivate)
    if parsed.problems:
        raise typer.Exit(1)


@subscribers_app.command("export")
def subscribers_export(
    file: Annotated[Path, typer.Argument(help="where to write; .jsonl for JSON Lines, else CSV")],
    config: ConfigOption = None,
) -> None:
    """Write every subscriber (status, topics, dates) to CSV or JSON Lines; re-importable."""
    project = _project(config)
    with project.engine.connect() as conn, file.open("w", encoding="utf-8", newline="") as handle:
        items = records(SubscriberStore(conn))
        jsonl = file.suffix.lower() in (".jsonl", ".ndjson")
        count = write_jsonl(items, handle) if jsonl else write_csv(items, handle)
    out.print(f"Exported {count} subscribers to {file}")


@subscribers_app.command("add")
def subscribers_add(
    email: str,
    topics: Annotated[str, typer.Option("--topics", "-t", help="names or slugs, ';' separated")],
    name: Annotated[str, typer.Option("--name", "-n")] = "",
    config: ConfigOption = None,
) -> None:
    """Add one active subscriber."""
    project = _project(config)
    resolve = topic_resolver((t.slug, t.name) for t in project.topics())
    wanted = split_topics(topics)
    unknown = [t for t in wanted if resolve(t) is None]
    if unknown or not wanted:
        known = ", ".join(t.slug for t in project.topics())
        raise DigestError(
            f"unknown topic(s) {', '.join(unknown) or '(none given)'}; known: {known}",
            where="--topics",
        )
    try:
        address = normalize_email(email)
    except ValueError as e:
        raise DigestError(str(e), where=email) from None
    with project.engine.begin() as conn:
        store = SubscriberStore(conn)
        if store.get(address) is not None:
            raise DigestError("is already a subscriber", where=address)
        slugs = frozenset(s for s in map(resolve, wanted) if s)
        store.add(address, name, slugs, project.clock())
    out.print(f"Added {address}: {', '.join(sorted(slugs))}")


@subscribers_app.command("remove")
def subscribers_remove(email: str, config: ConfigOption = None) -> None:
    """Unsubscribe an address. It stays on file as unsubscribed, so no import brings it back."""
    project = _project(config)
    with project.engine.begin() as conn:
        found = SubscriberStore(conn).set_status(email, Status.UNSUBSCRIBED, project.clock())
    if found is None:
        raise DigestError("is not a subscriber", where=email)
    out.print(f"Unsubscribed {found.email}")


@subscribers_app.command("list")
def subscribers_list(
    config: ConfigOption = None,
    status: Annotated[Status | None, typer.Option(help="only this status")] = None,
    topic: Annotated[str | None, typer.Option(help="only followers of this topic slug")] = None,
) -> None:
    """List subscribers with their status and topics."""
    project = _project(config)
    table = Table()
    for column in ("Email", "Name", "Status", "Topics"):
        table.add_column(column)
    with project.engine.connect() as conn:
        for s in SubscriberStore(conn).iterate(status=status):
            if topic is None or topic in s.topics:
                table.add_row(s.email, s.name, s.status.value, ", ".join(sorted(s.topics)))
    out.print(table)


@subscribers_app.command("stats")
def subscribers_stats(config: ConfigOption = None) -> None:
    """Counts per status and active readers per topic."""
    project = _project(config)
    with project.engine.connect() as conn:
        per_status, per_topic = SubscriberStore(conn).stats()
    statuses = Table(title="Subscribers by status", title_justify="left")
    statuses.add_column("Status")
    statuses.add_column("Count", justify="right")
    for st in Status:
        statuses.add_row(st.value, str(per_status.get(st.value, 0)))
    out.print(statuses)
    topics = Table(title="Active readers by topic", title_justify="left")
    topics.add_column("Topic")
    topics.add_column("Readers", justify="right")
    for t in project.topics():
        topics.add_row(t.name, str(per_topic.get(t.slug, 0)))
    out.print(topics)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="reverse proxies whose X-Forwarded-For names the client (comma-separated "
            "addresses); rate limits then count the reader's address, not the proxy's"
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve the subscriber pages, one-click unsubscribe, the web archive and the editor app."""
    import uvicorn

    from digest.web import create_app

    project = _project(config)
    out.print(f"Serving {project.config.site.public_url} on http://{host}:{port}")
    uvicorn.run(
        create_app(project, project.mailer()),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def _new_password() -> str:
    """Asked twice, never echoed, never taken from an argument (it would land in the shell's
    history and in the process list)."""
    password = str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    problem = check_new_password(password)
    if problem:
        raise DigestError(problem, where="password")
    return password


@editors_app.command("add")
def editors_add(
    email: str,
    name: Annotated[str, typer.Option("--name", "-n")] = "",
    config: ConfigOption = None,
) -> None:
    """Add an editor to the database (prompts for the password; only its hash is stored)."""
    project = _project(config)
    try:
        address = normalize_email(email)
    except ValueError as e:
        raise DigestError(str(e), where=email) from None
    password = _new_password()
    with project.engine.begin() as conn:
        added = EditorStore(conn, project.config.file.editor.users).add(
            address, name, hash_password(password), project.clock()
        )
    out.print(
        f"Added editor {added.email}; they log in at {project.config.site.public_url}/editor/"
    )


@editors_app.command("hash")
def editors_hash() -> None:
    """Print a password hash for `[[editor.users]]` in digest.toml (prompts for the password)."""
    print(hash_password(_new_password()))


@editors_app.command("list")
def editors_list(config: ConfigOption = None) -> None:
    """Editors from the config file and the database."""
    project = _project(config)
    table = Table()
    for column in ("Email", "Name", "Defined in", "Last login"):
        table.add_column(column)
    with project.engine.connect() as conn:
        for editor in EditorStore(conn, project.config.file.editor.users).all():
            last = (
                editor.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if editor.last_login_at else "-"
            )
            table.add_row(editor.email, editor.name, editor.origin, last)
    out.print(table)


@editors_app.command("remove")
def editors_remove(email: str, config: ConfigOption = None) -> None:
    """Remove a database editor (editors in the config file are removed by editing it)."""
    project = _project(config)
    with project.engine.begin() as conn:
        removed = EditorStore(conn, project.config.file.editor.users).remove(email)
    if not removed:
        raise DigestError("is not an editor in the database", where=email)
    out.print(f"Removed editor {email}; their sessions end with their next request")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply database migrations (other commands do this on their own)."""
    cfg = _config(config)
    engine = db.make_engine(cfg.database_url)
    db.upgrade(engine)
    out.print(f"Database is up to date: {engine.url.render_as_string(hide_password=True)}")


def main() -> None:
    try:
        app()
    except DigestError as error:
        err.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
