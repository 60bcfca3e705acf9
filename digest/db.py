"""Engine, tables and migrations.

Tables are SQLAlchemy Core: the pipeline moves rows in bulk (inserts of a whole batch, streamed
reads of subscribers), which Core does without an identity map. Alembic migrations live in
``digest/migrations`` and are applied by :func:`upgrade`, which every command that needs the
database calls first.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    true,
)
from sqlalchemy.exc import DatabaseError, DBAPIError
from sqlalchemy.schema import CreateTable

from digest.errors import DigestError
from subscribers import tables as subscriber_tables
from subscribers.tables import UtcDateTime

metadata = subscriber_tables.metadata
"""Every table of the database, the subscriber list's included: the digest's tables below
join the metadata :mod:`subscribers.tables` defines, so one schema holds both."""


topics = Table(
    "topics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
)

posts = Table(
    "posts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(2000), nullable=False, unique=True),
    Column("url", String(2000), nullable=False),
    Column("title", Text, nullable=False),
    Column("excerpt", Text, nullable=False),
    Column("author", String(300)),
    Column("image_url", String(2000)),
    Column("image_alt", Text),
    Column("image_width", Integer),
    Column("image_height", Integer),
    Column("reading_minutes", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("source", String(500), nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_posts_published_at", posts.c.published_at)

post_topics = Table(
    "post_topics",
    metadata,
    Column("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)

source_states = Table(
    "source_states",
    metadata,
    Column("location", String(2000), primary_key=True),
    Column("etag", String(500)),
    Column("last_modified", String(100)),
    Column("checked_at", UtcDateTime),
    Column("last_error", Text),
)

issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("cutoff", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("slot", UtcDateTime),
    Column("approval", String(20), nullable=False, server_default="none"),
    Column("approval_by", String(320)),
    Column("approval_at", UtcDateTime),
    Column("approval_note", Text),
    Column("recorded_at", UtcDateTime),
    Column("recorder", String(200)),
    Column("recorder_until", UtcDateTime),
    Column("message_key", String(32), default=lambda: secrets.token_hex(6)),
    Column("editor_note", Text),
    Column("cadence", String(20), nullable=False, server_default=""),
    Column("release_from", Integer),
    Column("release_to", Integer),
    Column("release_base", Integer),
    Column("per_topic", Integer),
    Column("takes_default", Boolean, nullable=False, server_default=true()),
    UniqueConstraint("digest", "number", name="uq_issues_digest_number"),
    UniqueConstraint("digest", "cadence", "slot", name="uq_issues_digest_cadence_slot"),
)
"""``slot``: the scheduled instant the issue was made for (NULL when made by hand); one issue
per (digest, slot). ``approval``: the editor gate (see :mod:`digest.lifecycle`).
``recorded_at``: when its deliveries were all recorded (recording goes a group of segments at
a time, see :func:`digest.send.recording.record`); ``recorder`` records it, under a lease until
``recorder_until``. ``message_key``: random, drawn when the issue is stored, in each of its
Message-IDs, so they differ from those of the same issue number of another (or a reset)
database; NULL for issues stored before it existed (their ids stay as they went out).
``editor_note``: a short intro an editor writes, shown above the cards. ``cadence``: which of
the digest's cadences the issue is for ('' for a digest with one schedule); one issue per
(digest, cadence, slot). ``release_from``/``release_to``: the posts it holds are the digest's
releases in (release_from, release_to] (NULL: an issue planned before cadences existed).
``release_base``: where the cadence's readers without a watermark of their own stand (its
horizon when planned, or where its first issue starts); ``release_from`` is lower when a reader
who switched is owed more. ``per_topic``: the cap on cards per topic each variant applies (NULL:
the sections were capped when planned). ``takes_default``: the issue is for the digest's default
cadence, so readers who never chose one get it."""

post_releases = Table(
    "post_releases",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("release", Integer, nullable=False),
    Column("released_at", UtcDateTime, nullable=False),
    UniqueConstraint("digest", "release", name="uq_post_releases_digest_release"),
)
"""A post's release in a digest: a number, increasing per digest, given once when an issue of
any cadence first finds the post new. What a reader is owed is counted in releases (see
``reader_cadences.watermark``), so every cadence of a digest agrees on what "new" means."""

issue_posts = Table(
    "issue_posts",
    metadata,
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id"), primary_key=True),
    Column("post_id", ForeignKey("posts.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("excluded", Boolean, nullable=False, server_default=false()),
)

issue_topics = Table(
    "issue_topics",
    metadata,
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id"), primary_key=True),
    Column("more", Integer, nullable=False, server_default="0"),
)

issue_waves = Table(
    "issue_waves",
    metadata,
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("wave_at", UtcDateTime, primary_key=True),
    Column("zones", Text, nullable=False),
    Column("readers", Integer),
    Column("recorded_at", UtcDateTime),
    Column("sent_at", UtcDateTime),
)
"""The local-time waves of a slot's issue (``local_delivery``): one row per UTC instant at
which the slot's wall time comes in some readers' zones (``zones``, comma-separated), written
when the issue is planned at the first wave. ``recorded_at``: when the wave's readers were
recorded (``readers`` of them); ``sent_at``: when its batches were all handed over. A wave
with ``sent_at`` is done and never runs again; the scheduler resumes the first one without."""

send_batches = Table(
    "send_batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("segment", String(2000), nullable=False),
    Column("size", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("worker", String(300)),
    Column("lease_until", UtcDateTime),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("ambiguities", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)
Index("ix_send_batches_claim", send_batches.c.issue_id, send_batches.c.status, send_batches.c.id)

deliveries = Table(
    "deliveries",
    metadata,
    # Keyed by what makes a delivery unique, each reader once per issue, with no surrogate id
    # (its sequence and index were a third of the cost of recording). No foreign keys: the
    # ledger alone writes deliveries, from the issue, batch and subscriber rows it reads in
    # the same transaction, and checking a million keys per send took PostgreSQL four times
    # as long as writing the rows (pre-release migrations 0010-0011, in the git history).
    Column("issue_id", Integer, primary_key=True, autoincrement=False),
    Column("subscriber_id", Integer, primary_key=True, autoincrement=False),
    # NULL while the delivery's state is its batch's (see digest.send.ledger).
    Column("status", String(20)),
    Column("batch_id", Integer),
    # The address and name the issue was recorded for: sending reads them here, in batch
    # order, instead of looking every recipient up among the subscribers (pre-release
    # migration 0013).
    Column("email", String(320), nullable=False, server_default=""),
    Column("name", String(300), nullable=False, server_default=""),
    Column("message_id", String(300)),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)
Index("ix_deliveries_batch_id", deliveries.c.batch_id)
Index(
    "ix_deliveries_own_outcome",
    deliveries.c.batch_id,
    sqlite_where=deliveries.c.status.is_not(None),
    postgresql_where=deliveries.c.status.is_not(None),
)


events = Table(
    "events",
    metadata,
    Column("sg_event_id", String(200), primary_key=True),
    Column("event", String(40), nullable=False),
    Column("email", String(320), nullable=False),
    Column("issue_id", Integer),
    Column("subscriber_id", Integer),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("url", Text),
    Column("post_id", Integer),
)
"""The raw Event Webhook events, kept ``[events] keep_days`` after they came (hence the index
on ``received_at``); what editors read is in the rollups below, kept for good.
``subscriber_id`` is the one the event's custom_args name; ``url`` a click's link and
``post_id`` the issue's post it was matched to."""
Index("ix_events_received_at", events.c.received_at)

event_inbox = Table(
    "event_inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("events", Integer, nullable=False),
    Column("rows", LargeBinary, nullable=False),
    sqlite_autoincrement=True,
)
"""Staged webhook batches: each a verified batch's events as rows (JSON), appended in one
durable commit before the answer and applied later, many batches at once, by
:func:`digest.app.feedback.drain`. No index but the rowid: appending costs the same however
many events are stored. Ids are never used twice (SQLite's AUTOINCREMENT), so an id a drain
read names the same batch when it deletes it. On SQLite the table lives in a file of its own
beside the database (:meth:`digest.app.wiring.Project.inbox`), so staging never waits for a
drain's write lock."""

event_counts = Table(
    "event_counts",
    metadata,
    Column("issue_id", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(40), primary_key=True),
    Column("n", Integer, nullable=False),
)
"""Rollup: events per (issue, kind), plus ``unique_open`` and ``unique_click`` (readers who
opened or clicked at least once). Added to from the newly inserted events only, so a replayed
batch changes nothing."""

event_firsts = Table(
    "event_firsts",
    metadata,
    Column("issue_id", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(10), primary_key=True),
    Column("recipient", String(320), primary_key=True),
)
"""The readers (address keys) who opened or clicked an issue: what makes ``unique_open`` and
``unique_click`` unique. Forgotten ``keep_days`` after the issue was sent, when its unique
figures become final."""

event_post_clicks = Table(
    "event_post_clicks",
    metadata,
    Column("issue_id", Integer, primary_key=True, autoincrement=False),
    Column("post_id", Integer, primary_key=True, autoincrement=False),
    Column("clicks", Integer, nullable=False),
    Column("readers", Integer, nullable=False, server_default="0"),
)
"""Rollup: clicks per post of an issue (the click's URL matched to the post it links to), and
the readers who clicked it (each once, counted while the issue is recent: see
``event_post_firsts``)."""

event_post_firsts = Table(
    "event_post_firsts",
    metadata,
    Column("issue_id", Integer, primary_key=True, autoincrement=False),
    Column("post_id", Integer, primary_key=True, autoincrement=False),
    Column("recipient", String(320), primary_key=True),
)
"""The readers (address keys) who clicked each post of an issue: what makes
``event_post_clicks.readers`` unique. Forgotten with ``event_firsts``."""


archive_pages = Table(
    "archive_pages",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("etag", String(80), nullable=False),
    Column("html", Text, nullable=False),
    Column("rendered_at", UtcDateTime, nullable=False),
)
"""The web-archive page of each issue that went out, rendered once (:mod:`digest.stores.archive`).
``fingerprint`` names what the page was rendered with (config, templates, code): a page of
another fingerprint is stale and rendered again."""


schedule_log = Table(
    "schedule_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("slot", UtcDateTime),
    Column("kind", String(20), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("at", UtcDateTime, nullable=False),
    Column("cadence", String(20), nullable=False, server_default=""),
)
"""What the scheduler did with each slot (ran, missed, skipped, notified, nothing, …), so a
missed or skipped slot is shown to people, not only written to a log file."""
Index("ix_schedule_log_digest_at", schedule_log.c.digest, schedule_log.c.at)


editors = Table(
    "editors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(300), nullable=False, server_default=""),
    Column("password_hash", String(300), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_login_at", UtcDateTime),
)


editor_sessions = Table(
    "editor_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("editor", String(320), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)
"""The editors' live sessions: logging out deletes the row, and a session cookie whose row is
gone no longer works, even a copy taken before. ``id`` is the SHA-256 of the random value the
cookie carries, so the table's rows are no cookies. ``editor`` is the editor's address, as
:func:`digest.stores.editors.editor_key` writes it."""
Index("ix_editor_sessions_editor", editor_sessions.c.editor)


SQLITE_CACHE_KIB = 65536
"""64 MiB of pages per connection (the default is 2 MiB): recording a large issue writes a
million rows."""


SQLITE_BUSY_SECONDS = 10
"""How long a statement on SQLite waits for another connection's lock before it fails."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA cache_size={-SQLITE_CACHE_KIB}")
    cursor.close()
    # SQLite's own lower() changes ASCII only: finding "Ösel" by "ösel" needs Python's.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def switch_to_wal(
    cursor: Any,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Put the SQLite file in WAL mode, waiting out another connection that holds it.

    Turning a file to WAL needs its exclusive lock, and SQLite answers "database is locked"
    at once, without the busy wait, when another connection holds a write lock the switch
    would deadlock against. Two processes opening the same new file (two workers, and each
    one's event inbox) met exactly that, about one start in ten: the switch is tried again
    until the busy wait's time is up. A file already in WAL mode stays so, and asking again
    costs nothing."""
    give_up = clock() + SQLITE_BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or clock() >= give_up:
                raise
        sleep(0.005)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def driver_error(engine: Engine, err: BaseException) -> bool:
    """Whether ``err`` is the database's doing: SQLAlchemy's error, or the driver's own."""
    dbapi = engine.dialect.loaded_dbapi
    return isinstance(err, (DBAPIError, dbapi.Error))


# A connection that cannot be rolled back when it goes back to the pool (its server is gone)
# is logged by SQLAlchemy with a traceback; with no logging set up, Python printed it on
# stderr above the one line that says what failed. An application that sets up logging still
# gets these records.
logging.getLogger("sqlalchemy.pool").addHandler(logging.NullHandler())


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        folder = Path(url[len("sqlite:///") :]).parent
        if not folder.is_dir():
            raise DigestError(f"folder {folder} does not exist", where="database_url")
    try:
        engine = create_engine(url, future=True)
    except Exception as err:  # SQLAlchemy raises several types for a malformed URL
        raise DigestError(f"cannot use {url!r}: {err}", where="database_url") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def inbox_engine(engine: Engine) -> Engine:
    """The engine of ``engine``'s event inbox (see :data:`event_inbox`): for a SQLite file, a
    file of its own beside it, its one table made if missing; else ``engine`` itself."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return engine
    database = Path(path)
    inbox = make_engine(
        f"sqlite:///{database.with_name(f'{database.stem}.inbox{database.suffix}')}"
    )
    with inbox.begin() as conn:  # two processes may open it at once: IF NOT EXISTS
        conn.execute(CreateTable(event_inbox, if_not_exists=True))
    return inbox


MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; cheap when it is already there.

    Every command that needs the database comes here first, so this is where a database that
    is down, refuses us or is not a database at all becomes one line naming ``database_url``
    (the migrations' own failures keep their traceback)."""
    _check_connects(engine)
    config = alembic_config(engine)
    _refuse_unknown_revision(engine, ScriptDirectory.from_config(config))
    command.upgrade(config, revision)


def _check_connects(engine: Engine) -> None:
    try:
        engine.connect().close()
    except DatabaseError as err:
        raise failed(engine, err, "cannot open") from None


def failed(engine: Engine, err: Exception, doing: str) -> DigestError:
    """A database that failed under us (gone, full, read-only, corrupt) as one line naming
    ``database_url``: what we were ``doing``, the database (password hidden), the driver's
    reason. ``err`` is SQLAlchemy's error or the driver's own (from its cursor, used
    directly where a send reads a million rows)."""
    url = engine.url.render_as_string(hide_password=True)
    orig = err.orig if isinstance(err, DBAPIError) else None
    reason = _first_line(orig if orig is not None else err)
    if engine.url.password:
        reason = reason.replace(str(engine.url.password), "***")
    return DigestError(f"{doing} {url}: {reason}", where="database_url")


def _first_line(error: BaseException) -> str:
    """The driver's reason without the hints and SQL it adds on further lines."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _refuse_unknown_revision(engine: Engine, scripts: ScriptDirectory) -> None:
    """A database stamped with a revision these migrations lack was made before the first
    release (whose migrations were squashed into one) or by a newer version: Alembic would
    stop with a traceback, where the user needs to know what to do."""
    with engine.connect() as conn:
        stamped = MigrationContext.configure(conn).get_current_heads()
    known = {script.revision for script in scripts.walk_revisions()}
    unknown = sorted(set(stamped) - known)
    if unknown:
        url = engine.url.render_as_string(hide_password=True)
        raise DigestError(
            f"the database {url} has schema revision {', '.join(unknown)}, unknown to this "
            "version of digest. A database made before the first release cannot be upgraded: "
            "recreate it (a new SQLite file or an empty PostgreSQL database) or point "
            "database_url at another one. A database made by a newer version needs that version.",
            where="database_url",
        )
