"""``digest editors``: accounts of the editor web app kept in the database, and password hashes
for the config file."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from digest.app import editors
from digest.cli.options import ConfigOption, open_project
from digest.cli.output import out
from digest.errors import DigestError
from digest.passwords import check_new_password, hash_password

editors_app = typer.Typer(
    help="Accounts of the editor web app (`digest serve`, /editor/).", no_args_is_help=True
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
    project = open_project(config)
    added = editors.add(project, email, name, _new_password)
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
    project = open_project(config)
    table = Table()
    for column in ("Email", "Name", "Defined in", "Last login"):
        table.add_column(column)
    for editor in editors.listing(project):
        last = editor.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if editor.last_login_at else "-"
        table.add_row(editor.email, editor.name, editor.origin, last)
    out.print(table)


@editors_app.command("remove")
def editors_remove(email: str, config: ConfigOption = None) -> None:
    """Remove a database editor (editors in the config file are removed by editing it)."""
    editors.remove(open_project(config), email)
    out.print(f"Removed editor {escape(email)}; their sessions end with their next request")
