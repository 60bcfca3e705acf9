"""Subscribers in the database (SQLite or PostgreSQL), read and written in chunks so that a
large list never sits in memory at once and an import of 10,000 rows is a few statements."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from subscribers import tables
from subscribers.importer import ImportRow, email_key
from subscribers.models import Status, Subscriber

CHUNK = 500
AnyRow = Row[*tuple[Any, ...]]


@dataclass(frozen=True)
class UpsertSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    reactivated: int = 0
    suppressed: tuple[str, ...] = ()
    """Addresses left alone because they unsubscribed, bounced or complained."""


def _chunks(rows: Iterable[ImportRow], size: int) -> Iterator[list[ImportRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


class SubscriberStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _topic_ids(self) -> dict[str, int]:
        return {
            r.slug: r.id
            for r in self.conn.execute(select(tables.topics.c.slug, tables.topics.c.id))
        }

    def get(self, email: str) -> Subscriber | None:
        row = self.conn.execute(
            select(tables.subscribers).where(tables.subscribers.c.email_key == email_key(email))
        ).first()
        return self._with_topics([row])[0] if row else None

    def by_id(self, subscriber_id: int) -> Subscriber | None:
        row = self.conn.execute(
            select(tables.subscribers).where(tables.subscribers.c.id == subscriber_id)
        ).first()
        return self._with_topics([row])[0] if row else None

    def upsert(
        self,
        rows: Iterable[ImportRow],
        now: datetime,
        source: str,
        *,
        dry_run: bool = False,
        reactivate: bool = False,
    ) -> UpsertSummary:
        """New addresses become active; known ones take the file's name and topics.

        Suppressed addresses (unsubscribed, bounced, complained) are left exactly as they are,
        unless ``reactivate`` says the file is proof of fresh consent.
        """
        topic_id = self._topic_ids()
        added = updated = unchanged = reactivated = 0
        suppressed: list[str] = []
        for chunk in _chunks(rows, CHUNK):
            known = {
                s.email.lower(): s
                for s in self._with_topics(
                    list(
                        self.conn.execute(
                            select(tables.subscribers).where(
                                tables.subscribers.c.email_key.in_(
                                    [email_key(r.email) for r in chunk]
                                )
                            )
                        )
                    )
                )
            }
            fresh = [r for r in chunk if email_key(r.email) not in known]
            added += len(fresh)
            if fresh and not dry_run:
                self._insert_many(fresh, Status.ACTIVE, now, source, topic_id)
            for row in chunk:
                existing = known.get(email_key(row.email))
                if existing is None:
                    continue
                if existing.status.suppressed and not reactivate:
                    suppressed.append(row.email)
                    continue
                revive = existing.status is not Status.ACTIVE
                if not revive and existing.name == row.name and existing.topics == row.topics:
                    unchanged += 1
                    continue
                reactivated += revive
                updated += not revive
                if dry_run:
                    continue
                values: dict[str, object] = {"name": row.name, "changed_at": now}
                if revive:
                    values |= {"status": Status.ACTIVE.value, "confirmed_at": now}
                self.conn.execute(
                    update(tables.subscribers)
                    .where(tables.subscribers.c.id == existing.id)
                    .values(**values)
                )
                self.set_topics(existing.id, row.topics, topic_id)
        return UpsertSummary(added, updated, unchanged, reactivated, tuple(suppressed))

    def _insert_many(
        self,
        rows: Sequence[ImportRow],
        status: Status,
        now: datetime,
        source: str,
        topic_id: dict[str, int],
    ) -> None:
        inserted = self.conn.execute(
            insert(tables.subscribers).returning(
                tables.subscribers.c.id,
                tables.subscribers.c.email_key,
                sort_by_parameter_order=True,
            ),
            [
                {
                    "email": r.email,
                    "email_key": email_key(r.email),
                    "name": r.name,
                    "status": status.value,
                    "source": source,
                    "created_at": now,
                    "changed_at": now,
                    "confirmed_at": now if status is Status.ACTIVE else None,
                }
                for r in rows
            ],
        )
        ids = {key: sid for sid, key in inserted}
        links = [
            {"subscriber_id": ids[email_key(r.email)], "topic_id": topic_id[t]}
            for r in rows
            for t in sorted(r.topics)
        ]
        if links:
            self.conn.execute(insert(tables.subscriptions), links)

    def add(
        self,
        email: str,
        name: str,
        topics: frozenset[str],
        now: datetime,
        source: str = "cli",
        status: Status = Status.ACTIVE,
    ) -> Subscriber:
        self._insert_many(
            [ImportRow(0, email, name, topics)], status, now, source, self._topic_ids()
        )
        found = self.get(email)
        assert found is not None
        return found

    def set_topics(
        self, subscriber_id: int, topics: frozenset[str], topic_id: dict[str, int] | None = None
    ) -> None:
        topic_id = topic_id or self._topic_ids()
        self.conn.execute(
            delete(tables.subscriptions).where(
                tables.subscriptions.c.subscriber_id == subscriber_id
            )
        )
        if topics:
            self.conn.execute(
                insert(tables.subscriptions),
                [{"subscriber_id": subscriber_id, "topic_id": topic_id[t]} for t in sorted(topics)],
            )

    def update(self, subscriber_id: int, now: datetime, **values: object) -> None:
        self.conn.execute(
            update(tables.subscribers)
            .where(tables.subscribers.c.id == subscriber_id)
            .values(changed_at=now, **values)
        )

    def set_status(self, email: str, status: Status, now: datetime) -> Subscriber | None:
        existing = self.get(email)
        if existing is None:
            return None
        self.set_status_of(existing.id, status, now)
        return self.by_id(existing.id)

    def set_status_of(self, subscriber_id: int, status: Status, now: datetime) -> None:
        self.set_status_of_many([subscriber_id], status, now)

    def set_status_of_many(self, ids: Sequence[int], status: Status, now: datetime) -> None:
        """:meth:`set_status_of` for many subscribers in one statement per thousand."""
        values: dict[str, object] = {"status": status.value, "changed_at": now}
        if status is Status.UNSUBSCRIBED:
            values["unsubscribed_at"] = now
        if status is Status.ACTIVE:
            values |= {"confirmed_at": now, "unsubscribed_at": None}
        for start in range(0, len(ids), 1000):
            self.conn.execute(
                update(tables.subscribers)
                .where(tables.subscribers.c.id.in_(ids[start : start + 1000]))
                .values(**values)
            )

    def iterate(self, chunk_size: int = 1000, status: Status | None = None) -> Iterator[Subscriber]:
        """All subscribers (or those of one status) by id, ``chunk_size`` rows at a time."""
        for rows in self.iterate_rows(chunk_size, status):
            yield from self._with_topics(rows)

    def iterate_rows(
        self, chunk_size: int = 1000, status: Status | None = None
    ) -> Iterator[list[AnyRow]]:
        """Raw rows (every column, for export) in chunks, keyset-paginated by id."""
        after = 0
        while True:
            query = (
                select(tables.subscribers)
                .where(tables.subscribers.c.id > after)
                .order_by(tables.subscribers.c.id)
                .limit(chunk_size)
            )
            if status is not None:
                query = query.where(tables.subscribers.c.status == status.value)
            rows = list(self.conn.execute(query))
            if not rows:
                return
            yield rows
            after = rows[-1].id

    def topics_of(self, ids: Sequence[int]) -> dict[int, set[str]]:
        topics: dict[int, set[str]] = {i: set() for i in ids}
        query = (
            select(tables.subscriptions.c.subscriber_id, tables.topics.c.slug)
            .join(tables.topics, tables.topics.c.id == tables.subscriptions.c.topic_id)
            .where(tables.subscriptions.c.subscriber_id.in_(ids))
        )
        for sub_id, slug in self.conn.execute(query):
            topics[sub_id].add(slug)
        return topics

    def _with_topics(self, rows: Sequence[AnyRow]) -> list[Subscriber]:
        topics = self.topics_of([r.id for r in rows])
        return [
            Subscriber(
                r.id,
                r.email,
                r.name,
                Status(r.status),
                frozenset(topics[r.id]),
                r.paused_until,
            )
            for r in rows
        ]

    def stats(self) -> tuple[Counter[str], Counter[str]]:
        """Counts per status, and active subscribers per topic."""
        per_status = Counter(
            {
                status: int(count)
                for status, count in self.conn.execute(
                    select(tables.subscribers.c.status, func.count()).group_by(
                        tables.subscribers.c.status
                    )
                )
            }
        )
        per_topic = Counter(
            {
                slug: int(count)
                for slug, count in self.conn.execute(
                    select(tables.topics.c.slug, func.count())
                    .join(
                        tables.subscriptions, tables.subscriptions.c.topic_id == tables.topics.c.id
                    )
                    .join(
                        tables.subscribers,
                        tables.subscribers.c.id == tables.subscriptions.c.subscriber_id,
                    )
                    .where(tables.subscribers.c.status == Status.ACTIVE.value)
                    .group_by(tables.topics.c.slug)
                )
            }
        )
        return per_status, per_topic
