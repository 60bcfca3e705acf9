"""``digest inspect`` (one source, nothing stored) and ``digest gather`` (every source)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from digest.app.gathering import gather_sources, inspect_source
from digest.app.wiring import Project
from digest.cli.options import ConfigOption, given_before, open_project
from digest.cli.output import err, out
from digest.config import load_config, resolve_config_path
from digest.errors import DigestError
from digest.gather import GatherReport, SourceOutcome, source_jobs
from digest.models import Post

KINDS = ("auto", "feed", "jsonfeed", "wordpress", "markdown")


def inspect(
    source: Annotated[str, typer.Argument(help="feed URL, file, or folder of Markdown files")],
    kind: Annotated[str, typer.Option(help="auto, feed, jsonfeed, wordpress or markdown")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list of posts")] = False,
    config: ConfigOption = None,
) -> None:
    """Show what gather would make of one source, storing nothing."""
    if kind not in KINDS:
        raise DigestError("expected auto, feed, jsonfeed, wordpress or markdown", where="--kind")
    config = config or given_before()
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
    count = f"{len(posts)} post{'' if len(posts) == 1 else 's'}"
    out.print(f"{count} from {escape(source)} ({outcome.kind}){unmapped}.")


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
    out.print(f"[bold]{number}. {escape(post.title)}[/]", highlight=False)
    out.print(grid, highlight=False)
    out.print()


def gather(config: ConfigOption = None) -> None:
    """Fetch every source and store new and changed posts. Exit code 1 when any source failed."""
    report = gather_with_progress(open_project(config))
    if report.failed:
        raise typer.Exit(1)


def gather_with_progress(project: Project) -> GatherReport:
    """Gather every source, a progress bar on stderr while it runs, then a table of sources
    and the count of new posts."""
    jobs = source_jobs(project.config)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("Gathering", total=len(jobs))

        def advance(outcome: SourceOutcome) -> None:
            progress.update(task, advance=1, description=f"Gathering {outcome.job.name}")

        report = gather_sources(project, on_source=advance)
    _print_sources(report)
    return report


def _print_sources(report: GatherReport) -> None:
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
        why = escape(failed.error or "")
        err.print(f"[red]Source {escape(repr(failed.job.name))} failed:[/] {why}")
