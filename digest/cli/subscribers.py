"""``digest subscribers``: import, export, add, remove, list and count subscribers."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from digest.app import people, subscribers
from digest.app.wiring import Project
from digest.cli.options import ConfigOption, open_project
from digest.cli.output import err, out, print_whole
from digest.errors import DigestError
from subscribers.importer import ParsedFile
from subscribers.models import Status, Subscriber

subscribers_app = typer.Typer(
    help="Add, remove, import, export, find and erase subscribers.", no_args_is_help=True
)


def import_with_report(
    project: Project, parsed: ParsedFile, dry_run: bool, source: str, reactivate: bool = False
) -> None:
    """Name each bad row by line, import the good ones, and show what changed."""
    for problem in parsed.problems:
        err.print(
            f"[red]{source}:{problem.line}:[/] {problem.reason}", highlight=False, soft_wrap=True
        )
    summary = subscribers.import_file(project, parsed, source, dry_run, reactivate)
    table = Table(
        title="Import" + (" (dry run: nothing changed)" if dry_run else ""), title_justify="left"
    )
    table.add_column("Result")
    table.add_column("Rows", justify="right")
    for label, count in subscribers.report_rows(summary, len(parsed.problems)):
        table.add_row(label, str(count))
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
            help="the file is fresh consent: make the unsubscribed addresses it lists as "
            "active (or without a status) active again; bounced and complained ones stay "
            "suppressed",
        ),
    ] = False,
    topics: Annotated[
        str,
        typer.Option(
            "--topics",
            "-t",
            help="topics of every row, for a file without a topics column (another tool's "
            "export); names or slugs separated by ';'",
        ),
    ] = "",
    topics_column: Annotated[
        str,
        typer.Option(
            "--topics-column",
            help="the column another tool keeps each reader's interests in (a Mailchimp "
            "group, named as in the header), its values separated by commas; with --topics, "
            "the topics of readers whose cell is empty",
        ),
    ] = "",
    encoding: Annotated[
        str | None,
        typer.Option(
            "--encoding",
            help="the file's encoding when it is not UTF-8 or UTF-16 with its mark, e.g. "
            'cp1252 for Excel\'s "CSV (Comma delimited)" on Windows',
        ),
    ] = None,
) -> None:
    """Import subscribers from CSV (columns email, name, topics; topics separated by ';' or '|',
    names or slugs, any case) or JSON Lines (objects with email, name, topics).

    Another tool's CSV export imports as it is, with --topics: its "Email Address" (or
    "E-mail Address") column is the address, "First Name" and "Last Name" the name, and a
    Mailchimp file of unsubscribed or cleaned members (its UNSUB_TIME or CLEAN_TIME column)
    adds them unsubscribed or bounced, never as readers to mail; the zone Mailchimp guessed
    (TIMEZONE) is given to readers who have none. In Ghost's members export, members whose
    subscribed_to_emails is false are added unsubscribed. --topics-column reads each reader's
    topics from the column of the file's own interest groups (topic names or slugs).

    Upsert: new addresses are added with the file's status (an export's status column:
    active, pending, unsubscribed, bounced, complained; active when there is none), dates and
    source; known addresses take the file's name and topics, and are suppressed when the file
    says so. No import makes a suppressed address active, except --reactivate for unsubscribed
    ones (the editor has their fresh consent); bounced and complained people come back only by
    confirming from their own mailbox. Addresses erased on request are never added again.
    Bad rows (bad address, unknown topic or status, duplicate in the file) are reported by line
    and skipped; the good rows are imported. Exit code 1 when any row was bad.
    """
    project = open_project(config)
    parsed = subscribers.read_file(project, file, topics, encoding, topics_column)
    import_with_report(project, parsed, dry_run, str(file), reactivate)
    if parsed.problems:
        raise typer.Exit(1)


@subscribers_app.command("export")
def subscribers_export(
    file: Annotated[Path, typer.Argument(help="where to write; .jsonl for JSON Lines, else CSV")],
    config: ConfigOption = None,
) -> None:
    """Write every subscriber (status, topics, dates) to CSV or JSON Lines; re-importable."""
    count = subscribers.export(open_project(config), file)
    out.print(f"Exported {count} subscribers to {file}")


@subscribers_app.command("add")
def subscribers_add(
    email: str,
    topics: Annotated[str, typer.Option("--topics", "-t", help="names or slugs, ';' separated")],
    name: Annotated[str, typer.Option("--name", "-n")] = "",
    cadence: Annotated[
        str,
        typer.Option(
            "--cadence",
            help="how often: a cadence name (every digest offering it), or digest:cadence "
            "pairs separated by spaces; default: each digest's default",
        ),
    ] = "",
    time_zone: Annotated[
        str,
        typer.Option("--time-zone", help="IANA name, e.g. Europe/Berlin; default: the digest's"),
    ] = "",
    config: ConfigOption = None,
) -> None:
    """Add one active subscriber."""
    added = subscribers.add(open_project(config), email, name, topics, cadence, time_zone)
    out.print(f"Added {added.email}: {', '.join(sorted(added.topics))}")


@subscribers_app.command("remove")
def subscribers_remove(email: str, config: ConfigOption = None) -> None:
    """Unsubscribe an address. It stays on file as unsubscribed, so no import brings it back."""
    found = subscribers.unsubscribe(open_project(config), email)
    out.print(f"Unsubscribed {found.email}")


@subscribers_app.command("list")
def subscribers_list(
    config: ConfigOption = None,
    status: Annotated[Status | None, typer.Option(help="only this status")] = None,
    topic: Annotated[
        str | None, typer.Option(help="only followers of this topic (slug or name)")
    ] = None,
) -> None:
    """List subscribers with their status (paused ones with the day they come back) and
    topics. Addresses are never cut: on a narrow terminal the rows run past its edge."""
    project = open_project(config)
    now = project.clock()
    table = _people_table("Email", "Name", "Status", "Topics")
    for s in subscribers.listing(project, status, topic):
        table.add_row(s.email, s.name, _status(s, now), ", ".join(sorted(s.topics)))
    print_whole(table)


def _people_table(*columns: str) -> Table:
    """Addresses and statuses whole; names and topics wrap."""
    table = Table()
    for column in columns:
        whole = column in ("Id", "Email", "Status")
        table.add_column(column, no_wrap=whole, overflow="ellipsis" if whole else "fold")
    return table


def _status(s: Subscriber, now: datetime) -> str:
    """The status, or "paused until <day>" for an active reader who paused their mail."""
    if s.status is Status.ACTIVE and s.paused(now) and s.paused_until is not None:
        return f"paused until {s.paused_until:%Y-%m-%d}"
    return s.status.value


@subscribers_app.command("stats")
def subscribers_stats(config: ConfigOption = None) -> None:
    """Counts per status and active readers per topic."""
    project = open_project(config)
    per_status, per_topic = subscribers.stats(project)
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
    cadences = Table(title="Active readers by cadence", title_justify="left")
    cadences.add_column("Digest")
    cadences.add_column("Cadence")
    cadences.add_column("Readers", justify="right")
    for digest, counts in subscribers.cadence_counts(project).items():
        offered = project.config.digest(digest)
        for name, count in counts:
            shown = name or "(its schedule)"
            if name == offered.default:
                shown += " (default)"
            elif name not in offered.schedules:
                shown += " (no longer offered)"
            cadences.add_row(digest, shown, str(count))
    out.print(cadences)


# one person ----------------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


@subscribers_app.command("find")
def subscribers_find(
    text: Annotated[str, typer.Argument(help="part of an address or name; 'ada@' for addresses")],
    config: ConfigOption = None,
    status: Annotated[Status | None, typer.Option(help="only this status")] = None,
    topic: Annotated[str | None, typer.Option(help="only followers of this topic")] = None,
    after: Annotated[int, typer.Option(help="the next page: the id the last page ended at")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="people a page")] = 50,
) -> None:
    """Find subscribers by part of their address or name, a page at a time."""
    project = open_project(config)
    found = people.find(project, text, status, topic, after, limit)
    if found.erased:
        out.print(f"{text} was erased on request: it stays suppressed, nothing else is held.")
        return
    now = project.clock()
    table = _people_table("Id", "Email", "Name", "Status", "Topics")
    for s in found.people:
        table.add_row(str(s.id), s.email, s.name, _status(s, now), ", ".join(sorted(s.topics)))
    print_whole(table)
    if found.next_after is not None:
        out.print(f"More: --after {found.next_after}")


@subscribers_app.command("show")
def subscribers_show(email: str, config: ConfigOption = None) -> None:
    """One subscriber: status, topics, dates, the issues they were sent and the events."""
    project = open_project(config)
    found = people.person(project, people.id_of(project, email))
    assert found is not None
    s = found.subscriber
    out.print(f"[bold]{s.email}[/]  {s.name}", highlight=False)
    out.print(f"status {s.status.value}; topics {', '.join(sorted(s.topics)) or '(none)'}")
    chosen = " ".join(f"{d}:{c}" for d, c in found.cadences.items()) or "each digest's default"
    zone = s.time_zone or "the digest's"
    out.print(f"cadence {chosen}; time zone {zone}", highlight=False)
    out.print(
        f"source {found.source or '-'}; subscribed {_when(found.created_at)}; confirmed "
        f"{_when(found.confirmed_at)}; unsubscribed {_when(found.unsubscribed_at)}; paused "
        f"until {_when(s.paused_until)}",
        highlight=False,
    )
    sent = Table(title="Issues", title_justify="left")
    for column in ("Issue", "State", "Recorded", "Error"):
        sent.add_column(column)
    for d in found.sent:
        sent.add_row(f"{d.digest} #{d.number}", d.state, _when(d.recorded_at), d.error or "")
    out.print(sent)
    events = Table(title="Events", title_justify="left")
    for column in ("Event", "Issue", "When"):
        events.add_column(column)
    for e in found.events:
        events.add_row(e.kind, e.issue or "", _when(e.occurred_at))
    out.print(events)


@subscribers_app.command("topics")
def subscribers_topics(
    email: str,
    topics: Annotated[str, typer.Argument(help="names or slugs, ';' separated")],
    config: ConfigOption = None,
) -> None:
    """Set the topics a subscriber follows."""
    project = open_project(config)
    changed = people.change_topics(project, people.id_of(project, email), [topics])
    out.print(f"{changed.email}: {', '.join(sorted(changed.topics))}")


@subscribers_app.command("suppress")
def subscribers_suppress(
    email: str,
    config: ConfigOption = None,
    reason: Annotated[
        Status,
        typer.Option("--as", help="unsubscribed (asked us), bounced or complained"),
    ] = Status.UNSUBSCRIBED,
) -> None:
    """Never mail an address again (it stays on file, so no import brings it back). A
    complaint or bounce already recorded is not softened into an unsubscription."""
    project = open_project(config)
    changed, did = people.suppress(project, people.id_of(project, email), reason)
    if did:
        out.print(f"{changed.email} is now {changed.status.value}")
    else:
        out.print(f"{changed.email} stays {changed.status.value}")


@subscribers_app.command("export-person")
def subscribers_export_person(
    email: str,
    file: Annotated[Path, typer.Argument(help="where to write the JSON")],
    config: ConfigOption = None,
) -> None:
    """Everything held on one subscriber, as JSON (an access request, or before erasing)."""
    project = open_project(config)
    data = people.personal_data(project, people.id_of(project, email))
    try:
        file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as e:
        raise DigestError(f"cannot write: {e.strerror}", where=str(file)) from None
    out.print(
        f"Wrote {file}: {len(data['deliveries'])} deliveries, {len(data['events'])} events, "
        f"{len(data['outbox_files'])} outbox files"
    )


@subscribers_app.command("erase")
def subscribers_erase(
    email: str,
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="erase without asking")] = False,
) -> None:
    """Erase a subscriber on request: their address and name go from the list, the ledger,
    the events and the outbox; a keyed hash of the address stays, so they stay suppressed.
    Cannot be undone: run export-person first if they asked for their data too."""
    project = open_project(config)
    subscriber_id = people.id_of(project, email)
    if not yes and not typer.confirm(f"Erase {email} for good?", default=False):
        err.print("Nothing erased.")
        raise typer.Exit(1)
    done = people.erase(project, subscriber_id)
    out.print(
        f"Erased {email}: {done.deliveries} deliveries and {done.events} events blanked, "
        f"{done.files} outbox files deleted; the address is kept only as a hash, suppressed"
    )


@subscribers_app.command("forget-lost-erasures")
def subscribers_forget_lost_erasures(
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="go on without asking")] = False,
) -> None:
    """After the secret key was changed without DIGEST_PREVIOUS_SECRET_KEY, and the old key
    is lost for good: drop the keys of the erased addresses' hashes that no key set opens.
    The people erased under them are no longer recognised: an import may add them again."""
    project = open_project(config)
    question = "Forget which addresses were erased under a lost secret key?"
    if not yes and not typer.confirm(question, default=False):
        err.print("Nothing changed.")
        raise typer.Exit(1)
    dropped = people.forget_unopened_erasures(project)
    out.print(
        f"Dropped {dropped} key(s) no secret key set opens"
        + (": the people erased under them are no longer recognised" if dropped else "")
    )
