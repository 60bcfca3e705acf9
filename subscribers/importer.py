"""Reading subscriber files. Every bad row is reported with its line number and reason; the good
rows are kept. Pure apart from reading the text it is handed."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

TOPIC_SEPARATORS = (";", "|")
REQUIRED_COLUMNS = ("email", "topics")


@dataclass(frozen=True)
class ImportRow:
    line: int
    email: str
    name: str
    topics: frozenset[str]


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
    """The address as email-validator normalizes it (no DNS look-ups); raises ValueError."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise ValueError(str(err)) from None


def email_key(address: str) -> str:
    """Addresses are unique case-insensitively."""
    return address.lower()


def split_topics(value: str) -> list[str]:
    for separator in TOPIC_SEPARATORS[1:]:
        value = value.replace(separator, TOPIC_SEPARATORS[0])
    return [part.strip() for part in value.split(TOPIC_SEPARATORS[0]) if part.strip()]


def parse_csv(lines: Iterable[str], resolve_topic: TopicResolver) -> ParsedFile:
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        return ParsedFile((), (RowProblem(1, "the file is empty; expected a header row"),))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return ParsedFile(
            (),
            (
                RowProblem(
                    1,
                    f"header lacks column(s) {', '.join(missing)}; "
                    "expected columns email, name, topics",
                ),
            ),
        )
    index = {name: header.index(name) for name in header}
    rows: list[ImportRow] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    start = reader.line_num + 1
    for record in reader:
        line, start = start, reader.line_num + 1
        if not any(field.strip() for field in record):
            continue
        if len(record) != len(header):
            problems.append(
                RowProblem(line, f"has {len(record)} fields, the header has {len(header)}")
            )
            continue
        raw_email = record[index["email"]].strip()
        name = record[index["name"]].strip() if "name" in index else ""
        try:
            address = normalize_email(raw_email)
        except ValueError as err:
            problems.append(RowProblem(line, f"bad address {raw_email!r}: {err}", raw_email))
            continue
        key = email_key(address)
        if key in seen:
            problems.append(RowProblem(line, f"duplicate of line {seen[key]} ({address})", address))
            continue
        wanted = split_topics(record[index["topics"]])
        unknown = [t for t in wanted if resolve_topic(t) is None]
        if unknown:
            problems.append(
                RowProblem(line, f"unknown topic(s): {', '.join(map(repr, unknown))}", address)
            )
            continue
        if not wanted:
            problems.append(RowProblem(line, "no topics", address))
            continue
        seen[key] = line
        slugs = frozenset(s for s in map(resolve_topic, wanted) if s is not None)
        rows.append(ImportRow(line, address, name, slugs))
    return ParsedFile(tuple(rows), tuple(problems))


def topic_resolver(topics: Iterable[tuple[str, str]]) -> TopicResolver:
    """From (slug, name) pairs: a resolver matching names and slugs case-insensitively."""
    table: dict[str, str] = {}
    for slug, name in topics:
        table[slug.casefold()] = slug
        table[" ".join(name.split()).casefold()] = slug

    def resolve(text: str) -> str | None:
        return table.get(" ".join(text.split()).casefold())

    return resolve
