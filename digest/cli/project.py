"""``digest init``, ``demo``, ``serve`` and ``db upgrade``: a project's folder, its end-to-end
demo, its web app and its database schema."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from digest.app import previews, subscribers
from digest.app.wiring import Project, upgrade_database
from digest.cli.gather import gather_with_progress
from digest.cli.issues import send_every_cadence, warn_size
from digest.cli.options import ConfigOption, config_at, open_project
from digest.cli.output import err, out
from digest.cli.subscribers import import_with_report
from digest.config import MAKE_SECRET, SECRET_KEY_ENV, Config, load_config
from digest.scaffold import enclosing_checkout, scaffold

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def init(folder: Annotated[Path, typer.Argument(help="new folder for the project")]) -> None:
    """Create a working project from the bundled example site (feeds, images, subscribers)."""
    config = scaffold(folder)
    checkout = enclosing_checkout(folder)
    if checkout is not None:
        err.print(
            f"note: {folder} is inside the git checkout {checkout}, as a new untracked folder; "
            "move it out, or commit it (its .gitignore keeps the database and the outbox out).",
            markup=False,
            highlight=False,
        )
    steps = (
        f'export {SECRET_KEY_ENV}="$({MAKE_SECRET})"',
        f"digest --config {config} subscribers import {folder / 'subscribers.csv'}",
        f"digest --config {config} run",
    )
    out.print(f"Created {config} from the example site. Next:", markup=False, highlight=False)
    for step in steps:
        out.print(f"  {step}", markup=False, highlight=False, soft_wrap=True)


def demo(folder: Annotated[Path, typer.Argument()] = Path(".demo")) -> None:
    """The example site end to end: init (once), import subscribers, run, preview what went
    out."""
    config_path = folder / "digest.toml"
    if not config_path.exists():
        scaffold(folder)
        out.print(f"Created the example project in {folder}", markup=False)
    config = _with_signing_secret(load_config(config_path, os.environ))
    project = Project.open(config)
    parsed = subscribers.read_file(project, folder / "subscribers.csv")
    import_with_report(project, parsed, dry_run=False, source=str(folder / "subscribers.csv"))
    gather_with_progress(project)
    sent = send_every_cadence(project, None)
    target = (folder / "preview").resolve()
    # Each issue that went out (one per cadence with readers owed something), else the next.
    results = [previews.preview(project, None, target, issue) for issue in sent] or [
        previews.preview(project, None, target)
    ]
    out.print(f"Outbox: [bold]{escape(str(config.outbox_dir))}[/]")
    for result in results:
        out.print(f"Previews: [bold]{escape(str(result.index))}[/]")
        warn_size(result)


def _with_signing_secret(config: Config) -> Config:
    """The config as it is if it has a signing secret, else with a throwaway one (and a
    warning): the demo should run without setting one up first."""
    if config.secrets.secret_key:
        return config
    err.print(
        f"[yellow]{SECRET_KEY_ENV} is not set: using a throwaway signing secret for this demo; "
        "links in these emails will not verify later.[/]"
    )
    return replace(config, secrets=replace(config.secrets, secret_key=secrets.token_urlsafe(32)))


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
    from digest.web.head_limit import HeadLimitedProtocol

    project = open_project(config)
    out.print(f"Serving {project.config.site.public_url} on http://{host}:{port}")
    uvicorn.run(
        create_app(project, project.mailer()),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        http=HeadLimitedProtocol,
    )


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply database migrations (other commands do this on their own)."""
    url = upgrade_database(config_at(config))
    out.print(f"Database is up to date: {url}", markup=False)
