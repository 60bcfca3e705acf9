"""Subscribers in the database (SQLite or PostgreSQL), read in chunks so that a large list
never sits in memory at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from digest import db
from subscribers.importer import ImportRow, email_key
from subscribers.models import Status, Subscriber


@dataclass(frozen=True)
class UpsertSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: tuple[str, ...] = ()
    """Addresses left alone because they unsubscribed, bounced or complained."""


class SubscriberStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _topic_ids(self) -> dict[str, int]:
        return {r.slug: r.id for r in self.conn.execute(select(db.topics.c.slug, db.topics.c.id))}

    def get(self, email: str) -> Subscriber | None:
        row = self.conn.execute(
            select(db.subscribers).where(db.subscribers.c.email_key == email_key(email))
        ).first()
        if row is None:
            return None
        return self._with_topics([row])[0]

    def by_id(self, subscriber_id: int) -> Subscriber | None:
        row = self.conn.execute(
            select(db.subscribers).where(db.subscribers.c.id == subscriber_id)
        ).first()
        return self._with_topics([row])[0] if row else None

    def upsert(
        self, rows: Iterable[ImportRow], now: datetime, source: str, dry_run: bool = False
    ) -> UpsertSummary:
        """New addresses become active; known ones get the file's name and topics.

        Suppressed addresses (unsubscribed, bounced, complained) are never changed here.
        """
        topic_id = self._topic_ids()
        added = updated = unchanged = 0
        suppressed: list[str] = []
        for row in rows:
            existing = self.get(row.email)
            if existing is not None and existing.status.suppressed:
                suppressed.append(row.email)
                continue
            if existing is None:
                added += 1
                if not dry_run:
                    self._insert(row.email, row.name, row.topics, Status.ACTIVE, now, source)
                continue
            if existing.name == row.name and existing.topics == row.topics:
                unchanged += 1
                continue
            updated += 1
            if not dry_run:
                self.conn.execute(
                    update(db.subscribers)
                    .where(db.subscribers.c.id == existing.id)
                    .values(name=row.name, changed_at=now)
                )
                self._set_topics(existing.id, row.topics, topic_id)
        return UpsertSummary(added, updated, unchanged, tuple(suppressed))

    def add(
        self, email: str, name: str, topics: frozenset[str], now: datetime, source: str = "cli"
    ) -> Subscriber:
        subscriber_id = self._insert(email, name, topics, Status.ACTIVE, now, source)
        found = self.by_id(subscriber_id)
        assert found is not None
        return found

    def _insert(
        self,
        email: str,
        name: str,
        topics: frozenset[str],
        status: Status,
        now: datetime,
        source: str,
    ) -> int:
        subscriber_id = self.conn.execute(
            insert(db.subscribers)
            .values(
                email=email,
                email_key=email_key(email),
                name=name,
                status=status.value,
                source=source,
                created_at=now,
                changed_at=now,
                confirmed_at=now if status is Status.ACTIVE else None,
            )
            .returning(db.subscribers.c.id)
        ).scalar_one()
        self._set_topics(subscriber_id, topics, self._topic_ids())
        return int(subscriber_id)

    def _set_topics(
        self, subscriber_id: int, topics: frozenset[str], topic_id: dict[str, int]
    ) -> None:
        self.conn.execute(
            delete(db.subscriptions).where(db.subscriptions.c.subscriber_id == subscriber_id)
        )
        if topics:
            self.conn.execute(
                insert(db.subscriptions),
                [{"subscriber_id": subscriber_id, "topic_id": topic_id[t]} for t in sorted(topics)],
            )

    def set_status(self, email: str, status: Status, now: datetime) -> Subscriber | None:
        existing = self.get(email)
        if existing is None:
            return None
        values: dict[str, object] = {"status": status.value, "changed_at": now}
        if status is Status.UNSUBSCRIBED:
            values["unsubscribed_at"] = now
        self.conn.execute(
            update(db.subscribers).where(db.subscribers.c.id == existing.id).values(**values)
        )
        return self.by_id(existing.id)

    def iterate(self, chunk_size: int = 1000, status: Status | None = None) -> Iterator[Subscriber]:
        """All subscribers (or those of one status) by id, ``chunk_size`` rows at a time."""
        after = 0
        while True:
            query = (
                select(db.subscribers)
                .where(db.subscribers.c.id > after)
                .order_by(db.subscribers.c.id)
                .limit(chunk_size)
            )
            if status is not None:
                query = query.where(db.subscribers.c.status == status.value)
            rows = list(self.conn.execute(query))
            if not rows:
                return
            yield from self._with_topics(rows)
            after = rows[-1].id

    def _with_topics(self, rows: Sequence[Row[Any]]) -> list[Subscriber]:
        ids = [r.id for r in rows]
        topics: dict[int, set[str]] = {i: set() for i in ids}
        query = (
            select(db.subscriptions.c.subscriber_id, db.topics.c.slug)
            .join(db.topics, db.topics.c.id == db.subscriptions.c.topic_id)
            .where(db.subscriptions.c.subscriber_id.in_(ids))
        )
        for sub_id, slug in self.conn.execute(query):
            topics[sub_id].add(slug)
        return [
            Subscriber(r.id, r.email, r.name, Status(r.status), frozenset(topics[r.id]))
            for r in rows
        ]

    def stats(self) -> tuple[Counter[str], Counter[str]]:
        """Counts per status, and active subscribers per topic."""
        per_status = Counter(
            {
                status: int(count)
                for status, count in self.conn.execute(
                    select(db.subscribers.c.status, func.count()).group_by(db.subscribers.c.status)
                )
            }
        )
        per_topic = Counter(
            {
                slug: int(count)
                for slug, count in self.conn.execute(
                    select(db.topics.c.slug, func.count())
                    .join(db.subscriptions, db.subscriptions.c.topic_id == db.topics.c.id)
                    .join(db.subscribers, db.subscribers.c.id == db.subscriptions.c.subscriber_id)
                    .where(db.subscribers.c.status == Status.ACTIVE.value)
                    .group_by(db.topics.c.slug)
                )
            }
        )
        return per_status, per_topic
