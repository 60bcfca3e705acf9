"""Writing subscribers out as CSV or JSON Lines, streamed chunk by chunk. CSV cells are
guarded against spreadsheets that would run them (:mod:`subscribers.cells`); the importer
takes the guard off, so an export imports back as it was."""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime
from typing import IO, Any

from subscribers.cadences import write_cadences
from subscribers.cells import guard
from subscribers.models import Status
from subscribers.store import SubscriberStore

COLUMNS = (
    "email",
    "name",
    "status",
    "topics",
    "source",
    "created_at",
    "confirmed_at",
    "changed_at",
    "unsubscribed_at",
    "paused_until",
    "cadence",
    "time_zone",
)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def records(
    store: SubscriberStore,
    chunk_size: int = 1000,
    offered: Mapping[str, Collection[str]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every subscriber but the erased: they hold no address, and their hash is tied to this
    project's erasure key (:mod:`subscribers.erasure`). Given ``offered`` (digest → its
    cadences), a cadence it no longer offers is left out: an import would refuse the row,
    and left out it means "unchanged" (the next issue moves such readers to the default)."""
    for rows in store.iterate_rows(chunk_size):
        topics = store.topics_of([r.id for r in rows])
        cadences = store.cadences_of_many([r.id for r in rows])
        if offered is not None:
            cadences = {
                reader: {d: c for d, c in chosen.items() if c in offered.get(d, ())}
                for reader, chosen in cadences.items()
            }
        for r in rows:
            if r.status == Status.ERASED.value:
                continue
            yield {
                "email": r.email,
                "name": r.name,
                "status": r.status,
                "topics": sorted(topics[r.id]),
                "source": r.source,
                "created_at": _iso(r.created_at),
                "confirmed_at": _iso(r.confirmed_at),
                "changed_at": _iso(r.changed_at),
                "unsubscribed_at": _iso(r.unsubscribed_at),
                "paused_until": _iso(r.paused_until),
                "cadence": cadences[r.id],
                "time_zone": r.time_zone or "",
            }


def write_csv(items: Iterable[dict[str, Any]], handle: IO[str]) -> int:
    """Topics joined by ';' and cadences written as ``digest:cadence`` pairs
    (:mod:`subscribers.cadences`) so the file imports back as it is; every text cell
    guarded."""
    writer = csv.DictWriter(handle, fieldnames=COLUMNS)
    writer.writeheader()
    count = 0
    for item in items:
        row = item | {
            "topics": ";".join(item["topics"]),
            "cadence": write_cadences(item["cadence"]),
        }
        writer.writerow({k: guard(v) if isinstance(v, str) else v for k, v in row.items()})
        count += 1
    return count


def write_jsonl(items: Iterable[dict[str, Any]], handle: IO[str]) -> int:
    count = 0
    for item in items:
        handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        count += 1
    return count
