"""Reading subscriber files. Every bad row is reported with its line number and reason; the good
rows are kept. Pure apart from reading the text it is handed."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from email_validator import EmailNotValidError, validate_email

from subscribers.cadences import Offered, read_cadences
from subscribers.cells import unguard
from subscribers.models import Status
from subscribers.names import ENCODED_WORD, name_problem
from subscribers.zones import canonical_zone, zone_problem

TOPIC_SEPARATORS = (";", "|")
REQUIRED_COLUMNS = ("email", "topics")
DATE_COLUMNS = ("created_at", "confirmed_at", "changed_at", "unsubscribed_at", "paused_until")
"""Dates an export writes and an import keeps for the addresses it adds (ISO 8601 with an
offset; an empty cell is no date)."""
KEPT_COLUMNS = ("status", "source", *DATE_COLUMNS, "cadence", "time_zone")
OTHER_NAMES = {
    "email address": "email",
    "e-mail address": "email",
    "e-mail": "email",
    "email_address": "email",
}
"""What other tools call our columns (Mailchimp's and Outlook's exports: "Email Address",
"E-mail Address"), so that their exports import as they are."""
FIRST_AND_LAST = ("first name", "last name")
"""Another tool's name in two columns, joined when the file has no ``name`` column."""
SUPPRESSED_SINCE = {"unsub_time": Status.UNSUBSCRIBED, "clean_time": Status.BOUNCED}
"""Mailchimp exports its unsubscribed and its cleaned (bounced) members each in a file of
their own, marked by a column of when: their rows are imported as what they are, not as
readers to mail, when the file has no status column of its own."""
SUBSCRIBED_FLAG = "subscribed_to_emails"
"""Ghost's members export says here whether each member gets its emails (``true`` or
``false``): a member who does not is imported unsubscribed, never as a reader to mail, when
the file has no status column; any other value is refused, as an unknown status is."""
MAILCHIMP_MARKS = ("leid", "euid")
"""Columns only a Mailchimp export has: its ``TIMEZONE`` is then the zone Mailchimp guessed
from where the reader signed up (an IANA name), taken as a guess (:attr:`Kept.zone_guessed`)."""
GUESSED_ZONE = "timezone"


@dataclass(frozen=True)
class Kept:
    """What a row says beyond address, name and topics, as our exports write it: the status
    (None when the file has no status column or the cell is empty), where the address came
    from, and its dates. An import keeps them for the addresses it adds."""

    status: Status | None = None
    source: str = ""
    dates: Mapping[str, datetime] = field(default_factory=dict)
    cadences: Mapping[str, str] = field(default_factory=dict)
    """Digest → cadence the row names (:mod:`subscribers.cadences`); empty: says nothing."""
    time_zone: str | None = None
    """The reader's IANA zone; ``""``: the digest's own; None: the file says nothing."""
    zone_guessed: bool = False
    """``time_zone`` is another tool's guess, not the reader's word: it is given to readers
    with no zone, and never replaces one they have."""


NOTHING_KEPT = Kept()


@dataclass(frozen=True)
class ImportRow:
    line: int
    email: str
    name: str
    topics: frozenset[str]
    kept: Kept = NOTHING_KEPT


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str
    email: str = ""


@dataclass(frozen=True)
class ParsedFile:
    rows: tuple[ImportRow, ...]
    problems: tuple[RowProblem, ...]


TopicResolver = Callable[[str], str | None]
"""A topic name or slug, as written by a person → its slug, or None when unknown."""


def normalize_email(address: str) -> str:
    """The address as email-validator normalizes it (no DNS look-ups); raises ValueError.

    A local part (before the @) that is not ASCII is refused: only servers offering SMTPUTF8
    carry it, and neither SendGrid nor every SMTP relay does. A domain that is not ASCII is
    kept; mail carries it in its ASCII form."""
    try:
        normalized = validate_email(
            address.strip(), check_deliverability=False, allow_smtputf8=False
        ).normalized
    except EmailNotValidError as err:
        raise ValueError(str(err)) from None
    if ENCODED_WORD.search(normalized):  # valid characters, but mail programs decode it
        raise ValueError("it contains an RFC 2047 encoded word (=?…?=)")
    return normalized


def email_key(address: str) -> str:
    """Addresses are unique case-insensitively."""
    return address.lower()


def read_kept(cells: Mapping[str, str], offered: Offered | None = None) -> Kept | str:
    """The status, source and dates among ``cells`` (column → text, unguarded), or why they
    cannot be read. A status the list does not know is refused, not taken as active: a file
    that says "Unsubscribed " or "bounce" means someone who must not be mailed."""
    status_text = cells.get("status", "").strip().lower()
    status: Status | None = None
    if status_text:
        try:
            status = Status(status_text)
        except ValueError:
            known = ", ".join(s.value for s in Status if s is not Status.ERASED)
            return f"unknown status {cells['status']!r}; known: {known}"
        if status is Status.ERASED:
            return "an erased entry holds no address and is not imported"
    dates: dict[str, datetime] = {}
    for column in DATE_COLUMNS:
        text = cells.get(column, "").strip()
        if not text:
            continue
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return f"{column} {text!r} is not an ISO 8601 date"
        if moment.tzinfo is None:
            return f"{column} {text!r} has no UTC offset"
        dates[column] = moment
    cadences = read_cadences(cells.get("cadence", ""), offered or {})
    if isinstance(cadences, str):
        return cadences
    zone: str | None = None
    if "time_zone" in cells:
        problem = zone_problem(cells["time_zone"])
        if problem:
            return f"time_zone {problem}"
        zone = canonical_zone(cells["time_zone"]) or ""
    return Kept(status, cells.get("source", "").strip()[:100], dates, cadences, zone)


GROUP_SEPARATOR = ","
"""How another tool lists the interests a reader picked in one cell (Mailchimp's groups)."""


def split_topics(value: str, separators: Sequence[str] = TOPIC_SEPARATORS) -> list[str]:
    for separator in separators[1:]:
        value = value.replace(separator, separators[0])
    return [part.strip() for part in value.split(separators[0]) if part.strip()]


DELIMITERS = (",", ";", "\t")
"""What separates the cells: a comma, or what a spreadsheet writes where the comma is the
decimal mark (a semicolon: Excel in German, French, Dutch…), or a tab (Excel's "Unicode
text")."""


def _column_names(cells: list[str]) -> list[str]:
    names = [h.strip().lower().lstrip("\ufeff") for h in cells]
    return [OTHER_NAMES.get(n, n) for n in names]


def _header_cells(line: str, delimiter: str) -> list[str]:
    return _column_names(next(csv.reader([line], delimiter=delimiter)))


def _delimiter(header: str) -> str:
    """The delimiter under which ``header`` names the email column (else a comma, for the
    error that names the columns)."""
    for delimiter in DELIMITERS:
        if "email" in _header_cells(header, delimiter):
            return delimiter
    return DELIMITERS[0]


def _can_delimit(char: str) -> bool:
    return char == "\t" or not (char.isalnum() or char.isspace() or char in "\"'")


def parse_csv(
    lines: Iterable[str],
    resolve_topic: TopicResolver,
    offered: Offered | None = None,
    topics: Sequence[str] = (),
    topics_column: str = "",
) -> ParsedFile:
    """``offered``: the digests offering a choice of cadence and their cadences, for the
    ``cadence`` column (see :mod:`subscribers.cadences`). ``topics``: those of every row of a
    file without a topics column (another tool's export); a file with one names its own.
    ``topics_column``: the column another tool keeps each reader's interests in (a Mailchimp
    group), read as the topics column, its cells separated by commas too; ``topics`` then go
    to the rows whose cell is empty (readers who picked none).
    The delimiter is the one under which the header names the email column, or the one a
    first line ``sep=;`` names (Excel's)."""
    rest = iter(lines)
    first = next(rest, None)
    hint = (first or "").rstrip("\r\n").lstrip("\ufeff")
    skipped = 0
    if hint.lower().startswith("sep=") and len(hint) == 5 and _can_delimit(hint[4]):
        delimiter, skipped = hint[4], 1
        first = next(rest, None)
    if first is None:
        return ParsedFile(
            (), (RowProblem(1 + skipped, "the file is empty; expected a header row"),)
        )
    if not skipped:
        delimiter = _delimiter(first)
    reader = csv.reader(itertools.chain([first], rest), delimiter=delimiter)
    named = next(reader)
    header = _column_names(named)
    interests = _column_names([topics_column])[0] if topics_column else "topics"
    if interests not in header and topics_column:
        shown = ", ".join(repr(n.strip().lstrip("\ufeff")) for n in named)
        return ParsedFile(
            (), (RowProblem(1 + skipped, f"no column {topics_column!r}; the header has {shown}"),)
        )
    if topics and "topics" in header and not topics_column:
        return ParsedFile(
            (),
            (
                RowProblem(
                    1 + skipped,
                    "the file has a topics column of its own; topics for every row are for a "
                    "file without one",
                ),
            ),
        )
    missing = [
        c
        for c in REQUIRED_COLUMNS
        if c not in header and not (c == "topics" and (topics or topics_column))
    ]
    if missing:
        return ParsedFile(
            (),
            (
                RowProblem(
                    1 + skipped,
                    f"header lacks column(s) {', '.join(missing)}; "
                    "expected columns email, name, topics",
                ),
            ),
        )
    index = {name: header.index(name) for name in header}
    separators = (*TOPIC_SEPARATORS, GROUP_SEPARATOR) if topics_column else TOPIC_SEPARATORS
    guesses_zone = (
        all(c in index for c in (*MAILCHIMP_MARKS, GUESSED_ZONE)) and "time_zone" not in index
    )
    rows = _Rows(resolve_topic)
    start = reader.line_num + 1 + skipped
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # a field over csv's size limit (a 900 KB name, say)
            rows.problems.append(RowProblem(start, f"cannot be read as CSV ({err})"))
            start = reader.line_num + 1 + skipped
            continue
        line, start = start, reader.line_num + 1 + skipped
        if not any(field.strip() for field in record):
            continue
        if len(record) != len(header):
            rows.problems.append(
                RowProblem(line, f"has {len(record)} fields, the header has {len(header)}")
            )
            continue
        # Our own exports guard cells a spreadsheet would run; the guard comes off here.
        email = unguard(record[index["email"]].strip())
        cells = {c: unguard(record[index[c]]) for c in KEPT_COLUMNS if c in index}
        for column, status in SUPPRESSED_SINCE.items():
            if "status" not in cells and column in index and record[index[column]].strip():
                cells["status"] = status.value
        if "status" not in cells and SUBSCRIBED_FLAG in index:
            flag = record[index[SUBSCRIBED_FLAG]].strip().lower()
            if flag not in ("true", "false"):
                reason = f"{SUBSCRIBED_FLAG} {flag!r} is neither true nor false"
                rows.problems.append(RowProblem(line, reason, email))
                continue
            if flag == "false":
                cells["status"] = Status.UNSUBSCRIBED.value
        wanted = (
            split_topics(unguard(record[index[interests]]), separators)
            if interests in index
            else []
        )
        kept = read_kept(cells, offered)
        if guesses_zone and isinstance(kept, Kept):
            kept = _with_guessed_zone(kept, record[index[GUESSED_ZONE]])
        rows.add(line, email, _name_in(record, index), wanted or list(topics), kept)
    return rows.result()


def _with_guessed_zone(kept: Kept, cell: str) -> Kept:
    """A zone another tool guessed, when it is one we know; any other value is no guess at
    all, never a reason to refuse the reader (they get the digest's zone)."""
    zone = canonical_zone(unguard(cell))
    return replace(kept, time_zone=zone, zone_guessed=True) if zone else kept


def _name_in(record: list[str], index: Mapping[str, int]) -> str:
    if "name" in index:
        return unguard(record[index["name"]].strip())
    parts = (unguard(record[index[c]].strip()) for c in FIRST_AND_LAST if c in index)
    return " ".join(p for p in parts if p)


class _Rows:
    """Checks shared by every format: address, duplicates in the file, topics."""

    def __init__(self, resolve_topic: TopicResolver) -> None:
        self.resolve = resolve_topic
        self.rows: list[ImportRow] = []
        self.problems: list[RowProblem] = []
        self.seen: dict[str, int] = {}

    def add(
        self, line: int, raw_email: str, name: str, wanted: list[str], kept: Kept | str
    ) -> None:
        try:
            address = normalize_email(raw_email)
        except ValueError as err:
            self.problems.append(RowProblem(line, f"bad address {raw_email!r}: {err}", raw_email))
            return
        problem = name_problem(name)
        if problem:
            self.problems.append(RowProblem(line, f"the name {problem}", address))
            return
        key = email_key(address)
        if key in self.seen:
            self.problems.append(
                RowProblem(line, f"duplicate of line {self.seen[key]} ({address})", address)
            )
            return
        unknown = [t for t in wanted if self.resolve(t) is None]
        if unknown:
            self.problems.append(
                RowProblem(line, f"unknown topic(s): {', '.join(map(repr, unknown))}", address)
            )
            return
        if isinstance(kept, str):
            self.problems.append(RowProblem(line, kept, address))
            return
        # A row with a status is an export's: whoever it lists is kept, following nothing if
        # that is what they do (left their last topic), or the import would forget them (and
        # that they must not be mailed). A file written by hand must name topics.
        if not wanted and kept.status is None:
            self.problems.append(RowProblem(line, "no topics", address))
            return
        self.seen[key] = line
        slugs = frozenset(s for s in map(self.resolve, wanted) if s is not None)
        self.rows.append(ImportRow(line, address, name, slugs, kept))

    def result(self) -> ParsedFile:
        return ParsedFile(tuple(self.rows), tuple(self.problems))


def parse_jsonl(
    lines: Iterable[str], resolve_topic: TopicResolver, offered: Offered | None = None
) -> ParsedFile:
    """JSON Lines: one object a line with ``email``, ``name`` and ``topics`` (a list, or a
    string separated by ``;`` or ``|``); ``cadence`` a cell's text or an object of digest →
    cadence."""
    rows = _Rows(resolve_topic)
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as err:
            rows.problems.append(RowProblem(number, f"not JSON ({err.msg})"))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("email"), str):
            rows.problems.append(RowProblem(number, "expected an object with an 'email' string"))
            continue
        topics = item.get("topics", [])
        wanted = split_topics(topics) if isinstance(topics, str) else [str(t) for t in topics]
        cadence = item.get("cadence")
        if isinstance(cadence, dict):
            item["cadence"] = " ".join(f"{d}:{c}" for d, c in cadence.items())
        cells = {c: str(item[c]) for c in KEPT_COLUMNS if item.get(c) is not None}
        rows.add(
            number, item["email"], str(item.get("name") or ""), wanted, read_kept(cells, offered)
        )
    return rows.result()


def topic_resolver(topics: Iterable[tuple[str, str]]) -> TopicResolver:
    """From (slug, name) pairs: a resolver matching names and slugs case-insensitively."""
    table: dict[str, str] = {}
    for slug, name in topics:
        table[slug.casefold()] = slug
        table[" ".join(name.split()).casefold()] = slug

    def resolve(text: str) -> str | None:
        return table.get(" ".join(text.split()).casefold())

    return resolve
