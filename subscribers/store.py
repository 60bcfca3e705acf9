"""Subscribers in the database (SQLite or PostgreSQL), read and written in chunks so that a
large list never sits in memory at once and an import of 10,000 rows is a few statements."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    String,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy import text as sql_text

from subscribers import tables
from subscribers.erasure import LIFTED, ErasureHasher, KeyWrap
from subscribers.importer import ImportRow, email_key
from subscribers.models import NEEDS_OWN_CONFIRMATION, Status, Subscriber

CHUNK = 500
AnyRow = Row[*tuple[Any, ...]]


@dataclass(frozen=True)
class UpsertSummary:
    added: int = 0
    """New addresses, whatever their status (the two counts below are among them)."""
    added_pending: int = 0
    """New addresses the file says never confirmed: stored as pending, not mailed."""
    added_suppressed: int = 0
    """New addresses the file says unsubscribed, bounced or complained: stored so, so that
    they are never mailed (an import into a fresh project keeps its suppression list)."""
    updated: int = 0
    unchanged: int = 0
    reactivated: int = 0
    suppressed: tuple[str, ...] = ()
    """Addresses left alone because they unsubscribed, bounced or complained."""
    suppressed_by_file: tuple[str, ...] = ()
    """Known addresses that were active or pending and that the file says are suppressed:
    they are suppressed here too (a wish not to be mailed is honoured wherever it is found)."""
    needs_own_confirmation: tuple[str, ...] = ()
    """Bounced or complained addresses that ``--reactivate`` did not revive: only the person's
    own double opt-in does (see :data:`~subscribers.models.NEEDS_OWN_CONFIRMATION`)."""
    erased: tuple[str, ...] = ()
    """Addresses erased on request: left out, never stored again."""


def _chunks(rows: Iterable[ImportRow], size: int) -> Iterator[list[ImportRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _new_row(row: ImportRow, status: Status, now: datetime, source: str) -> dict[str, object]:
    """The columns of a new subscriber: the file's dates and source where it gives them."""
    dates = row.kept.dates
    # A row with a status is an export's, whose dates are all there is: an empty cell is no
    # date. A file without statuses dates its people from now.
    active = status is Status.ACTIVE and row.kept.status is None
    return {
        "email": row.email,
        "email_key": email_key(row.email),
        "name": row.name,
        "status": status.value,
        "source": row.kept.source or source,
        "created_at": dates.get("created_at", now),
        "changed_at": dates.get("changed_at", now),
        "confirmed_at": dates.get("confirmed_at", now if active else None),
        "unsubscribed_at": dates.get(
            "unsubscribed_at",
            now if status is Status.UNSUBSCRIBED and row.kept.status is None else None,
        ),
        "paused_until": dates.get("paused_until"),
        "time_zone": row.kept.time_zone or None,
    }


@dataclass(frozen=True)
class DigestReaders:
    """What :meth:`SubscriberStore.cadence_counts` needs of one digest: the cadence of its
    readers without a choice, and its topics (None: every topic)."""

    slug: str
    default: str
    topics: frozenset[str] | None = None


CadenceSwitch = Callable[[Collection[int], str, str], Mapping[int, "int | None"]]
"""(subscriber ids, digest, the cadence they leave) → the watermark each writes with the new
one (the digest side knows releases; the subscriber list only writes what it is given). Many
readers at once: an import switches a chunk of rows in a few queries."""


_CadenceRow = tuple[int, str, str, "int | None"]
"""A reader's cadence of a digest as written: (subscriber id, digest, cadence, watermark)."""


class _Tally:
    def __init__(self) -> None:
        self.added = self.added_pending = self.added_suppressed = 0
        self.updated = self.unchanged = self.reactivated = 0
        self.suppressed: list[str] = []
        self.suppressed_by_file: list[str] = []
        self.needs_own_confirmation: list[str] = []
        self.erased: list[str] = []

    def summary(self) -> UpsertSummary:
        return UpsertSummary(
            self.added,
            self.added_pending,
            self.added_suppressed,
            self.updated,
            self.unchanged,
            self.reactivated,
            tuple(self.suppressed),
            tuple(self.suppressed_by_file),
            tuple(self.needs_own_confirmation),
            tuple(self.erased),
        )


class _Statistics:
    """PostgreSQL's statistics of the tables an import grows, kept in step as it grows them.

    An import is one transaction, so autovacuum cannot see its rows before it ends: a first
    import into an empty list planned every chunk's lookups for empty tables: sequential scans
    of every row written so far (at 100,000 readers, 14 ms for a chunk's addresses where the
    index answers in 2, and as much again for their topics and cadences). ANALYZE in the
    transaction counts the transaction's own rows; run whenever the list has doubled since
    the last run, it runs a few times whatever the file's size (7 for 100,000 new readers)."""

    TABLES = "subscribers, subscriptions, reader_cadences"
    FIRST = 2 * CHUNK

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.counted = 0.0
        """Readers at the last ANALYZE, as PostgreSQL counted them (none if it never did)."""
        self.added = 0
        """Rows added since."""
        if self.postgres:
            found = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE oid = 'subscribers'::regclass"
            ).scalar_one()
            self.counted = max(0.0, float(found))

    def grew(self, added: int) -> None:
        if not self.postgres:
            return
        self.added += added
        if self.added >= max(self.FIRST, self.counted):
            self.conn.exec_driver_sql(f"ANALYZE {self.TABLES}")
            self.counted += self.added
            self.added = 0


class _Choices:
    """An import's cadences and time zones, written through the store (see ``upsert``): the
    cadences of a chunk's rows are read and written together (:meth:`flush`)."""

    def __init__(
        self,
        store: SubscriberStore,
        defaults: Mapping[str, str],
        switch: CadenceSwitch | None,
        now: datetime,
    ) -> None:
        self.store, self.defaults, self.switch, self.now = store, defaults, switch, now
        self.current: dict[int, dict[str, str]] = {}
        """The cadences of the chunk's known readers whose rows name some."""
        self.pending: dict[int, Mapping[str, str]] = {}
        """The chunk's choices not written yet: reader → digest → cadence."""
        self.zones: dict[int, str | None] = {}
        """The chunk's known readers whose zone the file changes, not written yet."""

    def look_up(self, known: Iterable[tuple[Subscriber, ImportRow]]) -> None:
        """Read the cadences of the chunk's known readers (one query) before it is merged."""
        self.current = self.store.cadences_of_many(
            [existing.id for existing, row in known if row.kept.cadences]
        )

    @staticmethod
    def _zone_said(row: ImportRow, existing: Subscriber | None) -> str | None:
        """The zone the row gives its reader (``""``: the digest's); None when it says
        nothing, or only guesses for a reader who has a zone already."""
        if row.kept.zone_guessed and existing is not None and existing.time_zone is not None:
            return None
        return row.kept.time_zone

    def _moves_zone(self, row: ImportRow, existing: Subscriber) -> bool:
        """The row gives its known reader another zone than they have."""
        zone = self._zone_said(row, existing)
        return zone is not None and (zone or None) != existing.time_zone

    def differ(self, existing: Subscriber, row: ImportRow) -> bool:
        if self._moves_zone(row, existing):
            return True
        if not row.kept.cadences:
            return False
        current = self.current[existing.id]
        return any(current.get(d) != c for d, c in row.kept.cadences.items())

    def take(self, row: ImportRow, existing: Subscriber | None, added_id: int = 0) -> None:
        """The row's choices for ``existing``, or for the reader this import added as
        ``added_id`` (with its zone already)."""
        if existing is not None and self._moves_zone(row, existing):
            self.zones[existing.id] = row.kept.time_zone or None
        subscriber_id = existing.id if existing is not None else added_id
        if row.kept.cadences:
            if self.switch is None:
                raise ValueError("an import with cadences needs the digests' switch")
            self.pending[subscriber_id] = row.kept.cadences

    @property
    def readers(self) -> set[int]:
        """The readers whose choices :meth:`flush` writes."""
        return self.pending.keys() | self.zones.keys()

    def flush(self) -> None:
        """Write the chunk's choices; the caller holds the readers' rows (:attr:`readers`)."""
        if self.zones:
            self.store.set_time_zones(self.zones, self.now)
            self.zones = {}
        if not self.pending:
            return
        assert self.switch is not None  # take refused choices without it
        self.store.choose_cadences_of(self.pending, self.defaults, self.switch, self.now)
        self.pending = {}


_CADENCES_HELD = sql_text(
    """
    WITH RECURSIVE held(cadence) AS (
        SELECT min(cadence) FROM reader_cadences WHERE digest = :digest
        UNION ALL
        SELECT (SELECT min(cadence) FROM reader_cadences
                WHERE digest = :digest AND cadence > held.cadence)
        FROM held WHERE held.cadence IS NOT NULL
    )
    SELECT cadence FROM held WHERE cadence IS NOT NULL
    """
)
"""The distinct cadences readers of a digest hold, each found by one probe of the (digest,
cadence) index for the next one up (neither database skips through an index by itself)."""


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
        hasher: ErasureHasher | None = None,
        defaults: Mapping[str, str] | None = None,
        switch: CadenceSwitch | None = None,
    ) -> UpsertSummary:
        """New addresses are added with the status the file gives them (active when it gives
        none), with its dates and source; known ones take the file's name and topics.

        No import makes a suppressed address active, except ``reactivate`` (the file is proof
        of fresh consent) for unsubscribed addresses the file lists as active or without a
        status; bounced and complained ones need the person's own confirmation. A file that
        says a known address is suppressed suppresses it. Addresses erased on request (found
        by their hash through ``hasher``) are left out.

        A row's cadences and time zone (:class:`~subscribers.importer.Kept`) are taken by the
        addresses it adds and by known ones it does not leave alone; a change of cadence
        writes the watermark ``switch`` gives (see :meth:`choose_cadences`, ``defaults``:
        digest → default cadence).
        """
        self._plan_each_statement()
        statistics = _Statistics(self.conn)
        topic_id = self._topic_ids()
        tally = _Tally()
        choices = _Choices(self, defaults or {}, switch, now)
        for chunk in _chunks(rows, CHUNK):
            if hasher is not None:
                chunk = self._without_erased(chunk, hasher, tally)
            known = {
                email_key(s.email): s
                for s in self._with_topics(
                    list(
                        self.conn.execute(
                            select(tables.subscribers).where(
                                tables.among(
                                    self.conn,
                                    tables.subscribers.c.email_key,
                                    [email_key(r.email) for r in chunk],
                                )
                            )
                        )
                    )
                )
            }
            choices.look_up(
                (existing, row)
                for row in chunk
                if (existing := known.get(email_key(row.email))) is not None
            )
            fresh = [r for r in chunk if email_key(r.email) not in known]
            for row in fresh:
                status = row.kept.status or Status.ACTIVE
                tally.added += 1
                tally.added_pending += status is Status.PENDING
                tally.added_suppressed += status.suppressed
            if fresh and not dry_run:
                ids = self._insert_many(fresh, Status.ACTIVE, now, source, topic_id)
                statistics.grew(len(fresh))
                for row in fresh:
                    choices.take(row, None, ids[email_key(row.email)])
            taken: dict[int, ImportRow] = {}
            statuses: dict[int, Status] = {}
            for row in chunk:
                existing = known.get(email_key(row.email))
                if existing is not None:
                    merged = self._merge(
                        existing, row, now, tally, dry_run, reactivate, choices, statuses
                    )
                    if merged:
                        taken[existing.id] = row
            # One lock for the chunk's writers, in id order, as a change on a reader's own page
            # locks its reader: the two run one after the other instead of writing the same
            # rows, and two imports at once wait for each other.
            self.lock_many(taken.keys() | choices.readers | statuses.keys())
            self._set_statuses(statuses, now)
            self._take(taken, now, topic_id)
            choices.flush()
        return tally.summary()

    def _plan_each_statement(self) -> None:
        """PostgreSQL plans the chunk's statements for the table as it is now, for the rest of
        the transaction. An import's lookups run many times against tables it grows itself:
        a plan kept from when they were small (a sequential scan) stayed for the connection's
        life, and a file of 100,000 readers imported again took minutes instead of seconds
        (until an ANALYZE, which a server without autovacuum never runs)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")

    def _merge(
        self,
        existing: Subscriber,
        row: ImportRow,
        now: datetime,
        tally: _Tally,
        dry_run: bool,
        reactivate: bool,
        choices: _Choices,
        statuses: dict[int, Status],
    ) -> bool:
        """One known address and what the file says of it (see :meth:`upsert`). True when
        the reader takes the row's name and topics, which the caller writes for the whole
        chunk at once (:meth:`_take`), as it writes the statuses put in ``statuses``."""
        said = row.kept.status
        if existing.status.suppressed:
            if not reactivate or (said is not None and said is not Status.ACTIVE):
                tally.suppressed.append(row.email)
            elif existing.status in NEEDS_OWN_CONFIRMATION:
                tally.needs_own_confirmation.append(row.email)
            else:
                tally.reactivated += 1
                if not dry_run:
                    statuses[existing.id] = Status.ACTIVE
                    choices.take(row, existing)
                    return True
            return False
        if said is not None and said.suppressed:
            tally.suppressed_by_file.append(row.email)
            if not dry_run:
                statuses[existing.id] = said
            return False
        # Pending in the file and known here: the file tells nothing new of consent.
        revive = existing.status is Status.PENDING and said is not Status.PENDING
        same = existing.name == row.name and existing.topics == row.topics
        if not revive and same and not choices.differ(existing, row):
            tally.unchanged += 1
            return False
        tally.reactivated += revive
        tally.updated += not revive
        if dry_run:
            return False
        if revive:
            statuses[existing.id] = Status.ACTIVE
        choices.take(row, existing)
        return not same or revive

    def _set_statuses(self, statuses: Mapping[int, Status], now: datetime) -> None:
        """A chunk's changes of status, one statement per status (a file of unsubscribed
        members wrote one per reader)."""
        by_status: dict[Status, list[int]] = {}
        for reader, status in statuses.items():
            by_status.setdefault(status, []).append(reader)
        for status, readers in by_status.items():
            self.set_status_of_many(sorted(readers), status, now)

    def _take(
        self, taken: Mapping[int, ImportRow], now: datetime, topic_id: dict[str, int]
    ) -> None:
        """Known readers take their rows' names and topics, a chunk at once: the names in one
        batch of updates, the links dropped and written anew in one statement each. Three
        statements per reader made renaming a list cost twice as much as adding it. The caller
        holds the readers' rows."""
        if not taken:
            return
        s = tables.subscribers
        self.conn.execute(
            update(s)
            .where(s.c.id == bindparam("taker"))
            .values(name=bindparam("taken_name"), changed_at=now),
            [{"taker": sid, "taken_name": row.name} for sid, row in taken.items()],
        )
        self._set_topics_of({sid: row.topics for sid, row in taken.items()}, topic_id)

    def _without_erased(
        self, chunk: list[ImportRow], hasher: ErasureHasher, tally: _Tally
    ) -> list[ImportRow]:
        erased = self.erased_among(hasher.keys_of(r.email for r in chunk))
        if not erased:
            return chunk
        kept = []
        for row in chunk:
            if erased & set(hasher.keys(row.email)):
                tally.erased.append(row.email)
            else:
                kept.append(row)
        return kept

    def _insert_many(
        self,
        rows: Sequence[ImportRow],
        status: Status,
        now: datetime,
        source: str,
        topic_id: dict[str, int],
    ) -> dict[str, int]:
        """Insert ``rows``; their ids by email key."""
        s = tables.subscribers
        inserted = tables.insert_rows(
            self.conn,
            s,
            [_new_row(r, r.kept.status or status, now, source) for r in rows],
            s.c.id,
            s.c.email_key,
        )
        ids = {key: sid for sid, key in inserted}
        links = [
            {"subscriber_id": ids[email_key(r.email)], "topic_id": topic_id[t]}
            for r in rows
            for t in sorted(r.topics)
        ]
        tables.insert_rows(self.conn, tables.subscriptions, links)
        return ids

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
        self._set_topics_of({subscriber_id: topics}, topic_id or self._topic_ids())

    def _set_topics_of(
        self, topics_of: Mapping[int, frozenset[str]], topic_id: dict[str, int]
    ) -> None:
        """Replace each reader's links with their ``topics_of``: one delete, one insert."""
        links = tables.subscriptions
        self.conn.execute(
            delete(links).where(tables.among(self.conn, links.c.subscriber_id, topics_of))
        )
        tables.insert_rows(
            self.conn,
            links,
            [
                {"subscriber_id": subscriber_id, "topic_id": topic_id[t]}
                for subscriber_id, topics in topics_of.items()
                for t in sorted(topics)
            ],
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

    def lock(self, subscriber_id: int) -> None:
        """Hold the subscriber's row until the transaction ends (PostgreSQL; SQLite has one
        writer at a time anyway), so that two changes of one person's topics at once run one
        after the other instead of both deleting and inserting the same links."""
        self.lock_many([subscriber_id])

    def lock_many(self, subscriber_ids: Collection[int]) -> None:
        """:meth:`lock` for many, in the order of their ids (two imports at once wait for
        each other instead of each holding rows the other needs)."""
        if not subscriber_ids:
            return
        s = tables.subscribers.c
        self.conn.execute(
            select(s.id)
            .where(tables.among(self.conn, s.id, sorted(subscriber_ids)))
            .order_by(s.id)
            .with_for_update()
        ).all()

    def activate(self, subscriber_id: int, now: datetime) -> bool:
        """Make a subscriber active; True when this call did (they were not active before).
        One statement, so of two at once exactly one sees the change: PostgreSQL's second
        UPDATE waits for the first and then finds the row active; SQLite runs one at a time.
        An erased row is never made active."""
        changed = self.conn.execute(
            update(tables.subscribers)
            .where(
                tables.subscribers.c.id == subscriber_id,
                tables.subscribers.c.status.not_in([Status.ACTIVE.value, Status.ERASED.value]),
            )
            .values(
                status=Status.ACTIVE.value, confirmed_at=now, unsubscribed_at=None, changed_at=now
            )
        )
        return changed.rowcount == 1

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
            .where(tables.among(self.conn, tables.subscriptions.c.subscriber_id, ids))
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
                r.time_zone,
            )
            for r in rows
        ]

    # finding people, erasing them ----------------------------------------------------------

    def search(
        self,
        text: str,
        *,
        status: Status | None = None,
        topic: str | None = None,
        after: int = 0,
        limit: int = 50,
    ) -> tuple[list[Subscriber], int | None]:
        """One page of the subscribers whose address or name holds ``text`` (any case), by
        id after ``after``; and the ``after`` of the next page, None on the last.

        Text with an ``@`` inside (``ada@``, ``ada@example.com``) is the start of an
        address, looked up as a range of the unique index on ``email_key``; other text
        (``ada``, ``@example.com``, a name) is looked for anywhere in address and name,
        and the scan stops as soon as the page is full. Erased rows are found only by
        status (they hold no address or name)."""
        s = tables.subscribers
        query = select(s).where(s.c.id > after).order_by(s.c.id).limit(limit + 1)
        needle = text.strip().lower()
        if needle and "@" in needle[1:]:
            # The range must compare by code point. SQLite and a PostgreSQL database made with
            # the C collation (C, POSIX, C.UTF-8) do, through the unique index; one made with a
            # language's (en_US.UTF-8) may sort U+10FFFF anywhere, so there the range is
            # compared under "C", correct but without the index (the page still stops the
            # scan when it is full).
            key = s.c.email_key if self._sorts_by_code_point() else s.c.email_key.collate("C")
            query = query.where(
                key >= needle,
                key < needle + "\U0010ffff",
                s.c.email_key.startswith(needle, autoescape=True),
            )
        elif needle:
            query = query.where(
                or_(
                    s.c.email_key.contains(needle, autoescape=True),
                    func.lower(s.c.name).contains(needle, autoescape=True),
                )
            )
        if status is not None:
            query = query.where(s.c.status == status.value)
        if topic is not None:
            query = query.where(
                s.c.id.in_(
                    select(tables.subscriptions.c.subscriber_id)
                    .join(tables.topics, tables.topics.c.id == tables.subscriptions.c.topic_id)
                    .where(tables.topics.c.slug == topic)
                )
            )
        rows = list(self.conn.execute(query))
        page = self._with_topics(rows[:limit])
        return page, (page[-1].id if len(rows) > limit else None)

    def _sorts_by_code_point(self) -> bool:
        if self.conn.dialect.name != "postgresql":
            return True
        collation = str(
            self.conn.execute(
                sql_text("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            ).scalar()
        )
        return collation in ("C", "POSIX") or collation.startswith("C.")

    def row(self, subscriber_id: int) -> AnyRow | None:
        """Every column of one subscriber (the dates a person's page and data export show)."""
        return self.conn.execute(
            select(tables.subscribers).where(tables.subscribers.c.id == subscriber_id)
        ).first()

    def has_erased(self) -> bool:
        return (
            self.conn.execute(
                select(tables.subscribers.c.id)
                .where(tables.subscribers.c.status == Status.ERASED.value)
                .limit(1)
            ).first()
            is not None
        )

    def erased_among(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` (erasure hashes) that an erased row keeps."""
        wanted = list(keys)
        if not wanted:
            return set()
        return set(
            self.conn.execute(
                select(tables.subscribers.c.email_key).where(
                    tables.among(self.conn, tables.subscribers.c.email_key, wanted)
                )
            ).scalars()
        )

    def erasure_keys(self, wrap: KeyWrap, adopt: Sequence[bytes], now: datetime) -> list[bytes]:
        """The keys erased addresses are hashed with (the one new erasures take first), those
        ``wrap`` opens only with the previous secret key rewrapped with the current one. The
        first time, ``adopt`` (the keys hashes were made with before they were kept here) are
        kept, and again when none of those kept opens with the secret keys set but nobody is
        erased (there is nothing they recognise). Empty when none opens and somebody is."""
        e = tables.erasure_keys.c
        rows = self._unwrapped_erasure_keys(wrap)
        keys: list[bytes] = []
        for key_id, opened in rows:
            if opened is None:
                continue  # wrapped with a key no longer set: said by the empty list
            key, rewrapped = opened
            if rewrapped is not None:
                self.conn.execute(
                    update(tables.erasure_keys).where(e.id == key_id).values(wrapped=rewrapped)
                )
            if key not in keys:
                keys.append(key)
        if not keys and adopt and (not rows or not self.has_erased()):
            self.conn.execute(
                insert(tables.erasure_keys),
                [{"wrapped": wrap.wrap(key), "created_at": now} for key in adopt],
            )
            keys = list(dict.fromkeys(adopt))
        return keys

    def drop_unopened_erasure_keys(self, wrap: KeyWrap) -> int:
        """Delete the erasure keys ``wrap`` does not open; how many. The people erased under
        them are no longer recognised."""
        e = tables.erasure_keys.c
        dropped = [key_id for key_id, opened in self._unwrapped_erasure_keys(wrap) if not opened]
        if dropped:
            self.conn.execute(delete(tables.erasure_keys).where(e.id.in_(dropped)))
        return len(dropped)

    def _unwrapped_erasure_keys(
        self, wrap: KeyWrap
    ) -> list[tuple[int, tuple[bytes, str | None] | None]]:
        """Each kept erasure key's id and what :meth:`KeyWrap.unwrap` makes of it (None when
        no secret key set opens it), in the order they were kept."""
        e = tables.erasure_keys.c
        found: list[tuple[int, tuple[bytes, str | None] | None]] = []
        for key_id, wrapped in self.conn.execute(select(e.id, e.wrapped).order_by(e.id)):
            try:
                found.append((key_id, wrap.unwrap(wrapped)))
            except ValueError:
                found.append((key_id, None))
        return found

    def erased_ids(self, keys: Iterable[str]) -> list[int]:
        """The ids of the erased rows keeping one of ``keys`` (erasure hashes), in order."""
        wanted = list(keys)
        if not wanted:
            return []
        s = tables.subscribers.c
        return list(
            self.conn.execute(
                select(s.id)
                .where(
                    tables.among(self.conn, s.email_key, wanted),
                    s.status == Status.ERASED.value,
                )
                .order_by(s.id)
            ).scalars()
        )

    def lift_erasure(self, erased_id: int, keys: Collection[str], now: datetime) -> bool:
        """The person erased as row ``erased_id`` came back by their own confirmation: that row,
        and any other erased row keeping one of ``keys``, stop keeping the hash that refused
        their address. The rows stay erased (no address, their history linked to no one).
        False, and nothing changed, when ``erased_id`` keeps none of ``keys`` (any more): the
        write is also what puts two clicks at once one after the other."""
        s = tables.subscribers.c

        def lift(*which: ColumnElement[bool]) -> int:
            erased = s.status == Status.ERASED.value
            keeping = tables.among(self.conn, s.email_key, list(keys))
            lifted = literal(LIFTED) + cast(s.id, String)
            return int(
                self.conn.execute(
                    update(tables.subscribers)
                    .where(erased, keeping, *which)
                    .values(email_key=lifted, changed_at=now)
                ).rowcount
            )

        if lift(s.id == erased_id) != 1:
            return False
        lift()
        return True

    def erase(self, subscriber_id: int, erased_key: str, now: datetime) -> None:
        """Forget the address, name, source, topics, cadences and time zone of a subscriber;
        the row stays, holding ``erased_key`` (:meth:`ErasureHasher.key`) in place of the
        address, so that the person stays suppressed and the row's id is never given to
        someone else (SQLite reuses the highest id of a deleted row, and links in old emails
        carry the id)."""
        self.conn.execute(
            delete(tables.subscriptions).where(
                tables.subscriptions.c.subscriber_id == subscriber_id
            )
        )
        self.conn.execute(
            delete(tables.reader_cadences).where(
                tables.reader_cadences.c.subscriber_id == subscriber_id
            )
        )
        if self.erased_among([erased_key]):  # erased before under another row: keep both rows
            erased_key = f"{erased_key}:{subscriber_id}"
        self.update(
            subscriber_id,
            now,
            email="",
            email_key=erased_key,
            name="",
            source="",
            status=Status.ERASED.value,
            confirmed_at=None,
            unsubscribed_at=now,
            paused_until=None,
            time_zone=None,
        )

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

    # cadences and time zones ---------------------------------------------------------------

    def cadences_of(self, subscriber_id: int) -> dict[str, str]:
        """Digest → the cadence the reader chose; digests they did not choose for are absent
        (they get its default)."""
        return self.cadences_of_many([subscriber_id])[subscriber_id]

    def cadences_of_many(self, ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """:meth:`cadences_of` for many readers in one query (an export's chunk), each
        reader's by digest so that an export is the same whatever order the rows come in."""
        rc = tables.reader_cadences.c
        chosen: dict[int, dict[str, str]] = {i: {} for i in ids}
        for sid, digest, cadence in self.conn.execute(
            select(rc.subscriber_id, rc.digest, rc.cadence)
            .where(tables.among(self.conn, rc.subscriber_id, ids))
            .order_by(rc.subscriber_id, rc.digest)
        ):
            chosen[sid][digest] = cadence
        return chosen

    def readers_of_other_cadences(self, digest: str, offered: Collection[str]) -> list[int]:
        """The readers whose row names a cadence of ``digest`` that is not ``offered``, by
        id. Every planning asks, and the answer is almost always none: the cadences held are
        read first, one index probe each (:data:`_CADENCES_HELD`), where filtering the rows
        read every reader's (120 ms for a million on PostgreSQL)."""
        held = self.conn.execute(_CADENCES_HELD, {"digest": digest}).scalars()
        withdrawn = sorted(set(held) - set(offered))
        if not withdrawn:
            return []
        rc = tables.reader_cadences.c
        return list(
            self.conn.execute(
                select(rc.subscriber_id)
                .where(rc.digest == digest, rc.cadence.in_(withdrawn))
                .order_by(rc.subscriber_id)
            ).scalars()
        )

    def choose_cadences(
        self,
        subscriber_id: int,
        chosen: Mapping[str, str],
        defaults: Mapping[str, str],
        switch: CadenceSwitch,
        now: datetime,
    ) -> dict[str, str]:
        """Give the reader ``chosen`` (digest → cadence); see :meth:`choose_cadences_of`.
        Returns what changed (digest → new cadence). The caller locks the row first."""
        return self.choose_cadences_of({subscriber_id: chosen}, defaults, switch, now)[
            subscriber_id
        ]

    def choose_cadences_of(
        self,
        chosen: Mapping[int, Mapping[str, str]],
        defaults: Mapping[str, str],
        switch: CadenceSwitch,
        now: datetime,
    ) -> dict[int, dict[str, str]]:
        """Give each reader their ``chosen`` (reader → digest → cadence); those that differ
        from what they have (their row, else ``defaults``) take the watermark ``switch`` gives
        for the cadence they leave. A default chosen explicitly is written too, with where
        they stand in it (nothing changes in what they are owed), so that a later change of
        the digest's default does not move them. Nothing is written for a choice they already
        have. Returns what changed, reader → digest → new cadence. The caller locks the rows
        first.

        A few statements whatever the number of readers (one read of their cadences, a switch
        per cadence left, a delete per digest, one insert): an import of a file with a
        ``cadence`` column took fourteen times as long as one without when each row was
        written on its own."""
        current = self.cadences_of_many(list(chosen))
        writes: list[tuple[int, str, str, str]] = []
        leaving_by: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
        for subscriber_id, choice in chosen.items():
            for digest, cadence in sorted(choice.items()):
                have = current[subscriber_id].get(digest)
                if have == cadence:
                    continue
                leaving = have if have is not None else defaults[digest]
                writes.append((subscriber_id, digest, cadence, leaving))
                leaving_by[digest, leaving].append(subscriber_id)
        # Every watermark is read before any row is written: a switch reads the reader's own.
        # A reader who never chose and now names the default is written down where they
        # stand too: after a change of default, that is not where its own readers do.
        marks = {left: switch(ids, *left) for left, ids in leaving_by.items()}
        changed: dict[int, dict[str, str]] = {subscriber_id: {} for subscriber_id in chosen}
        rows: list[_CadenceRow] = []
        for subscriber_id, digest, cadence, leaving in writes:
            watermark = marks[digest, leaving][subscriber_id]
            rows.append((subscriber_id, digest, cadence, watermark))
            if leaving != cadence:
                changed[subscriber_id][digest] = cadence
        self._write_cadences(rows, now)
        return changed

    def _write_cadences(self, rows: Sequence[_CadenceRow], now: datetime) -> None:
        """Replace the readers' rows of these digests with ``rows``."""
        if not rows:
            return
        rc = tables.reader_cadences
        by_digest: defaultdict[str, list[int]] = defaultdict(list)
        for subscriber_id, digest, _, _ in rows:
            by_digest[digest].append(subscriber_id)
        for digest, ids in by_digest.items():
            self.conn.execute(
                delete(rc).where(
                    tables.among(self.conn, rc.c.subscriber_id, ids), rc.c.digest == digest
                )
            )
        tables.insert_rows(
            self.conn,
            rc,
            [
                {
                    "subscriber_id": subscriber_id,
                    "digest": digest,
                    "cadence": cadence,
                    "watermark": watermark,
                    "changed_at": now,
                }
                for subscriber_id, digest, cadence, watermark in rows
            ],
        )

    def set_time_zone(self, subscriber_id: int, zone: str | None, now: datetime) -> bool:
        """Store the reader's IANA zone (None: the digest's); True when it changed."""
        if self.time_zone_of(subscriber_id) == zone:
            return False
        self.update(subscriber_id, now, time_zone=zone)
        return True

    def set_time_zones(self, zones: Mapping[int, str | None], now: datetime) -> None:
        """Store many readers' zones (None: the digest's) in one batch of updates: an
        import of a list that gives every reader a zone wrote them one statement each."""
        s = tables.subscribers.c
        self.conn.execute(
            update(tables.subscribers)
            .where(s.id == bindparam("reader"))
            .values(time_zone=bindparam("zone"), changed_at=now),
            [{"reader": reader, "zone": zone} for reader, zone in sorted(zones.items())],
        )

    def time_zone_of(self, subscriber_id: int) -> str | None:
        return self.conn.execute(
            select(tables.subscribers.c.time_zone).where(tables.subscribers.c.id == subscriber_id)
        ).scalar_one_or_none()

    def cadence_counts(self, digests: Sequence[DigestReaders]) -> Counter[tuple[str, str]]:
        """Active readers per (digest, cadence), in one grouped query: a reader of a digest
        follows at least one of its topics, and counts under their chosen cadence or, without
        a row, the digest's default."""
        if not digests:
            return Counter()
        topic_ids = self._topic_ids()
        pairs = [
            select(
                literal(d.slug, String).label("digest"),
                literal(topic_ids[t], Integer).label("topic_id"),
            )
            for d in digests
            for t in sorted(topic_ids if d.topics is None else d.topics & topic_ids.keys())
        ]
        if not pairs:
            return Counter()
        carried = union_all(*pairs).cte("digest_topics")
        s, sub, rc = tables.subscribers.c, tables.subscriptions.c, tables.reader_cadences.c
        default = case(*((carried.c.digest == d.slug, literal(d.default, String)) for d in digests))
        readers = (
            select(
                carried.c.digest,
                sub.subscriber_id,
                func.coalesce(rc.cadence, default).label("cadence"),
            )
            .join(tables.subscriptions, sub.topic_id == carried.c.topic_id)
            .join(tables.subscribers, s.id == sub.subscriber_id)
            .outerjoin(
                tables.reader_cadences,
                (rc.subscriber_id == sub.subscriber_id) & (rc.digest == carried.c.digest),
            )
            .where(s.status == Status.ACTIVE.value)
            .distinct()
            .subquery()
        )
        query = select(readers.c.digest, readers.c.cadence, func.count()).group_by(
            readers.c.digest, readers.c.cadence
        )
        default_of = {d.slug: d.default for d in digests}
        return Counter(
            {
                (str(digest), str(name if name is not None else default_of[digest])): int(n)
                for digest, name, n in self.conn.execute(query)
            }
        )
