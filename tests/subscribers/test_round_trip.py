"""Export, then import into an empty database (a fresh project): every subscriber comes back
as they were, status, topics, name, source, dates, cadences and time zone, on SQLite and
PostgreSQL, as CSV and as JSON Lines. Generated people, with names and addresses chosen to
hurt: spreadsheet triggers, quotes, separators, non-Latin scripts, offsets far from UTC."""

from __future__ import annotations

import io
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, insert

from digest.models import Topic
from digest.stores import posts as post_store
from subscribers import tables
from subscribers.exporter import records, write_csv, write_jsonl
from subscribers.importer import normalize_email, parse_csv, parse_jsonl, topic_resolver
from subscribers.models import Status
from subscribers.names import name_problem
from subscribers.store import SubscriberStore

TOPICS = [Topic("backend", "Backend"), Topic("data", "Data; Engineering"), Topic("ai-ml", "AI")]
NOW = datetime(2026, 11, 23, 7, tzinfo=UTC)
KEPT_STATUSES = [s for s in Status if s is not Status.ERASED]
OFFERED = {"weekly": ["daily", "weekly", "monthly"], "news": ["daily", "weekly"]}
DEFAULTS = {"weekly": "weekly", "news": "daily"}
CADENCES = st.dictionaries(st.sampled_from(sorted(OFFERED)), st.just("")).flatmap(
    lambda digests: st.fixed_dictionaries({d: st.sampled_from(OFFERED[d]) for d in sorted(digests)})
)
ZONES = st.none() | st.sampled_from(
    ["Europe/Berlin", "Asia/Kathmandu", "Pacific/Kiritimati", "America/St_Johns", "UTC"]
)

LOCAL = st.text(alphabet="abz09.+-_='!#$%&*/?^`{|}~", min_size=1, max_size=12)
DOMAINS = st.sampled_from(["example.com", "b\u00fccher.example", "mail.example.org"])
HOSTILE = st.sampled_from(
    [
        '=HYPERLINK("x")',
        "+1",
        "-2",
        "@home",
        "'Tis",
        "''=x",
        "a,b",
        'say "hi"',
        "x;y|z",
        "\uff1dsum",
        "Zo\u00eb \u0141\u00f3d\u017a",
        "\u5f20\u4f1f",
        "\u0627\u062d\u0645\u062f",
        "\U0001f600 emoji",
        "\u200bzero width",
    ]
)
NAMES = st.one_of(HOSTILE, st.text(max_size=40)).filter(
    lambda n: n == n.strip() and name_problem(n) is None
)
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
MOMENTS = st.builds(
    lambda base, micro, tz: (base + timedelta(microseconds=micro)).astimezone(tz),
    st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1)).map(lambda d: d.replace(tzinfo=UTC)),
    st.integers(0, 999_999),
    OFFSETS,
)


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    status: Status
    topics: frozenset[str]
    source: str
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    paused_until: datetime | None
    cadences: dict[str, str]
    time_zone: str | None


def no_watermark(ids: Collection[int], digest: str, leaving: str) -> dict[int, int | None]:
    """A switch that owes nobody anything older (no release is known here)."""
    return dict.fromkeys(ids)


def _address(local: str, domain: str) -> str | None:
    address = f"{local}@{domain}"
    try:
        return address if normalize_email(address) == address else None
    except ValueError:
        return None


PEOPLE = st.lists(
    st.builds(
        Person,
        email=st.builds(_address, LOCAL, DOMAINS).filter(lambda a: a is not None),
        name=NAMES,
        status=st.sampled_from(KEPT_STATUSES),
        topics=st.frozensets(st.sampled_from([t.slug for t in TOPICS])),
        source=st.sampled_from(["web", "cli", "import:old list.csv", "=cmd"]),
        created_at=MOMENTS,
        confirmed_at=st.none() | MOMENTS,
        unsubscribed_at=st.none() | MOMENTS,
        paused_until=st.none() | MOMENTS,
        cadences=CADENCES,
        time_zone=ZONES,
    ),
    max_size=8,
    unique_by=lambda p: p.email.lower(),
)


def _store_directly(conn: Connection, people: list[Person]) -> None:
    """The people as the database holds them, written without the code under test."""
    topic_id = {r.slug: r.id for r in conn.execute(tables.topics.select())}
    for person in people:
        (sid,) = conn.execute(
            insert(tables.subscribers)
            .values(
                email=person.email,
                email_key=person.email.lower(),
                name=person.name,
                status=person.status.value,
                source=person.source,
                created_at=person.created_at,
                changed_at=person.created_at,
                confirmed_at=person.confirmed_at,
                unsubscribed_at=person.unsubscribed_at,
                paused_until=person.paused_until,
                time_zone=person.time_zone,
            )
            .returning(tables.subscribers.c.id)
        ).one()
        for digest, cadence in person.cadences.items():
            conn.execute(
                insert(tables.reader_cadences).values(
                    subscriber_id=sid, digest=digest, cadence=cadence, changed_at=NOW
                )
            )
        for slug in sorted(person.topics):
            conn.execute(
                insert(tables.subscriptions).values(subscriber_id=sid, topic_id=topic_id[slug])
            )


def _wipe(conn: Connection) -> None:
    conn.execute(delete(tables.reader_cadences))
    conn.execute(delete(tables.subscriptions))
    conn.execute(delete(tables.subscribers))


def _export(conn: Connection, form: str) -> str:
    handle = io.StringIO(newline="")
    items = records(SubscriberStore(conn))
    (write_jsonl if form == "jsonl" else write_csv)(items, handle)
    return handle.getvalue()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=PEOPLE, form=st.sampled_from(["csv", "jsonl"]))
def test_an_export_imports_into_a_fresh_database_as_it_was(
    engine: Engine, people: list[Person], form: str
) -> None:
    with engine.begin() as conn:
        post_store.sync_topics(conn, TOPICS)
        _wipe(conn)
        _store_directly(conn, people)
        exported = _export(conn, form)
        _wipe(conn)  # a fresh project: nobody known
        resolve = topic_resolver((t.slug, t.name) for t in TOPICS)
        lines = io.StringIO(exported, newline="")
        parse = parse_jsonl if form == "jsonl" else parse_csv
        parsed = parse(lines, resolve, OFFERED)
        assert parsed.problems == ()
        summary = SubscriberStore(conn).upsert(
            parsed.rows, NOW, "import:out", defaults=DEFAULTS, switch=no_watermark
        )
        assert summary.added == len(people)
        assert summary.added_suppressed == sum(p.status.suppressed for p in people)
        assert summary.added_pending == sum(p.status is Status.PENDING for p in people)
        store = SubscriberStore(conn)
        for person in people:
            found = store.get(person.email)
            assert found is not None
            row = store.row(found.id)
            assert row is not None
            assert (found.email, found.name, found.status, found.topics) == (
                person.email,
                person.name,
                person.status,
                person.topics,
            )
            assert row.source == person.source
            assert row.created_at == person.created_at
            assert row.confirmed_at == person.confirmed_at
            assert row.unsubscribed_at == person.unsubscribed_at
            assert row.paused_until == person.paused_until
            assert row.time_zone == person.time_zone
            assert store.cadences_of(found.id) == person.cadences
        assert _export(conn, form) == exported
        # Imported again on top of itself, nothing changes and nobody is made active.
        again = SubscriberStore(conn).upsert(
            parsed.rows, NOW, "import:out", defaults=DEFAULTS, switch=no_watermark
        )
        assert again.added == again.updated == again.reactivated == 0
        assert len(again.suppressed) == sum(p.status.suppressed for p in people)
        assert _export(conn, form) == exported
