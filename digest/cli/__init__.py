"""The ``digest`` command. Thin: parse options, call the use cases of :mod:`digest.app`, print.

One module per noun (:mod:`.gather`, :mod:`.issues`, :mod:`.schedule`, :mod:`.subscribers`,
:mod:`.editors`, :mod:`.project`); this one assembles them into one Typer app, in the order
``digest --help`` lists them.
"""

from __future__ import annotations

import sys

import typer

from digest.app.wiring import check_runtime, limit_malloc_arenas
from digest.cli import gather, issue_desk, issues, project, schedule
from digest.cli.bounces import bounces_app
from digest.cli.editors import editors_app
from digest.cli.events import events_app
from digest.cli.ledger import issues_app
from digest.cli.options import ConfigOption, remember_before
from digest.cli.output import print_error
from digest.cli.subscribers import subscribers_app
from digest.errors import DigestError

app = typer.Typer(
    help="Topic-segmented newsletter digests: gather, plan, preview, send.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help text is plain text: `[[editor.users]]` stays as written
)


@app.callback()
def _options(config: ConfigOption = None) -> None:
    """Topic-segmented newsletter digests: gather, plan, preview, send.

    --config goes before the command or after it: `digest --config site/digest.toml run` and
    `digest run --config site/digest.toml` are the same."""
    remember_before(config)


app.add_typer(subscribers_app, name="subscribers")
app.add_typer(project.db_app, name="db")
app.add_typer(schedule.schedule_app, name="schedule")
app.add_typer(editors_app, name="editors")
app.add_typer(issues_app, name="issues")
for name, command in issue_desk.COMMANDS.items():
    issues_app.command(name)(command)
app.add_typer(bounces_app, name="bounces")
app.add_typer(events_app, name="events")
for command in (
    gather.inspect,
    gather.gather,
    issues.plan,
    issues.preview,
    issues.send,
    issues.worker,
    issues.run,
    schedule.scheduler,
    project.init,
    project.demo,
    project.serve,
):
    app.command()(command)


def main() -> None:
    """The console script: a :class:`DigestError` is one line on stderr and exit code 2.
    Nothing runs on a Python whose email package could write a header it was not asked to."""
    try:
        check_runtime()
        limit_malloc_arenas()
        app()
    except DigestError as error:
        print_error(error)
        sys.exit(2)
