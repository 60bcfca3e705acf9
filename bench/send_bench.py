"""Send one issue to N synthetic subscribers over 12 topics through the local SendGrid-compatible
server, and in the same run a naive loop that renders and posts one email per recipient on a
2,000-recipient sample.

    python bench/send_bench.py [--readers 100000] [--database postgresql+psycopg://…]
                               [--in-flight 4]

The server runs in a process of its own (limits checked, no schema validation, bodies not
kept), so it does not share the sender's interpreter. Subscribers are loaded with the
database's own bulk path: loading is not what is measured. Prints recipients per second,
requests, peak memory of the sending process and the ratio to the naive loop.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from digest import db
from digest.app import gathering, sending
from digest.app import issues as issue_cases
from digest.app.wiring import Project, limit_malloc_arenas
from digest.config import load_config
from digest.personalize import compile_template, token_values
from digest.render import render_issue
from digest.scaffold import scaffold
from subscribers import tables as subscriber_tables
from subscribers.store import SubscriberStore
from tests.sendgrid_server import API_KEY

ROOT = Path(__file__).resolve().parents[1]
TOPICS = [f"topic-{i}" for i in range(12)]


def config_text(folder: Path, feeds: Path, database: str | None, in_flight: int) -> str:
    topics = "\n".join(
        f'[[topics]]\nslug = "{slug}"\nname = "Topic {i}"\n'
        f'sources = [{{ url = "{feeds}/{slug}.xml" }}]\n'
        for i, slug in enumerate(TOPICS)
    )
    db_line = f'database_url = "{database}"\n' if database else ""
    return f"""{db_line}
[site]
name = "Bench"
url = "https://bench.example"
public_url = "https://digest.bench.example"
postal_address = "1 Road"

{topics}
[[digests]]
slug = "weekly"
name = "Bench Weekly"

[sending]
transport = "sendgrid"
from = "digest@bench.example"
unsubscribe_mailto = "unsubscribe@bench.example"
in_flight = {in_flight}
"""


def write_feeds(folder: Path) -> None:
    folder.mkdir(parents=True)
    for slug in TOPICS:
        items = "".join(
            f"<item><title>{slug} post {n}</title><link>https://bench.example/{slug}/{n}/</link>"
            f"<guid>{slug}-{n}</guid><pubDate>Mon, 16 Nov 2026 0{n}:00:00 GMT</pubDate>"
            f"<description>A post about {slug}, number {n}, long enough to be real.</description>"
            f'<enclosure url="https://img.bench.example/{slug}/{n}.png" type="image/png"/></item>'
            for n in range(4)
        )
        (folder / f"{slug}.xml").write_text(
            f'<rss version="2.0"><channel><title>{slug}</title><link>https://bench.example/</link>'
            f"<description>x</description>{items}</channel></rss>",
            encoding="utf-8",
        )


class ServerProcess:
    """tests/sendgrid_server.py in a subprocess; ``stats()`` asks it what it received."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.sendgrid_server"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.host = self.process.stdout.readline().strip()

    def stats(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.host}/stats") as answer:
            return dict(json.loads(answer.read()))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def open_project(site: Path, sendgrid_host: str) -> Project:
    """The bench site's project, sending to the local SendGrid-compatible server at
    ``sendgrid_host``; a PostgreSQL database is emptied first."""
    config = load_config(
        site / "digest.toml", {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
    )
    config = replace(
        config,
        secrets=replace(config.secrets, sendgrid_api_key=API_KEY, sendgrid_api_host=sendgrid_host),
    )
    engine = db.make_engine(config.database_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
    return Project.open(config, engine=engine)


def load_readers(project: Project, readers: int) -> None:
    """Synthetic active subscribers with 1 to 4 of the 12 topics, in chunks (bulk insert)."""
    rng = random.Random(1)
    now = project.clock()
    with project.engine.begin() as conn:
        topic_id = dict(conn.execute(select(db.topics.c.slug, db.topics.c.id)).all())
        stamp = subscriber_tables.subscribers.c.created_at.type.dialect_impl(
            conn.dialect
        ).bind_processor(conn.dialect)
        at = stamp(now) if stamp else now
        postgres = conn.dialect.name == "postgresql"
        raw: Any = conn.connection.driver_connection
        for start in range(0, readers, 50_000):
            ids = range(start + 1, min(readers, start + 50_000) + 1)
            people = [
                (i, f"r{i}@bench.example", f"r{i}@bench.example", f"Reader {i}", "active", at, at)
                for i in ids
            ]
            picks = [(i, topic_id[t]) for i in ids for t in rng.sample(TOPICS, rng.randint(1, 4))]
            if postgres:
                with raw.cursor() as cursor:
                    columns = "id, email, email_key, name, status, created_at, changed_at"
                    with cursor.copy(f"COPY subscribers ({columns}) FROM STDIN") as copy:
                        for row in people:
                            copy.write_row(row)
                    with cursor.copy(
                        "COPY subscriptions (subscriber_id, topic_id) FROM STDIN"
                    ) as copy:
                        for pick in picks:
                            copy.write_row(pick)
            else:
                conn.exec_driver_sql(
                    "INSERT INTO subscribers (id, email, email_key, name, status, created_at, "
                    "changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    people,
                )
                conn.exec_driver_sql(
                    "INSERT INTO subscriptions (subscriber_id, topic_id) VALUES (?, ?)", picks
                )
        if postgres:
            conn.exec_driver_sql("ANALYZE")
    if postgres:
        # Write the loaded pages out now, so that the checkpoint the load calls for does not
        # run during the measured send (it needs a superuser; without one, it happens later).
        with project.engine.connect() as conn:
            try:
                conn.exec_driver_sql("CHECKPOINT")
            except DBAPIError:
                print("(CHECKPOINT refused: the send may share the disk with one)")


def naive_seconds_each(project: Project, server: str, sample: int) -> float:
    """Render the reader's variant from scratch and post one email each."""
    issue = issue_cases.latest(project)
    assert issue is not None
    ctx = project.email_context(project.config.digest(None), issue.number)
    with project.engine.connect() as conn:
        readers = [s for s, _ in zip(SubscriberStore(conn).iterate(), range(sample), strict=False)]
    start = time.perf_counter()
    for reader in readers:
        key = reader.topics & frozenset(issue.topic_slugs)
        variant = render_issue(issue, ctx).variant(key)
        values = token_values(
            {
                "first_name": "R",
                "email": reader.email,
                "unsubscribe_url": "https://u",
                "preferences_url": "https://p",
            },
            dict.fromkeys(key, "https://t"),
        )
        body = {
            "from": {"email": "digest@bench.example"},
            "subject": compile_template(variant.subject).fill(values),
            "content": [
                {"type": "text/html", "value": compile_template(variant.html).fill(values)}
            ],
            "personalizations": [
                {
                    "to": [{"email": reader.email}],
                    "custom_args": {"issue_id": "naive", "subscriber_id": str(reader.id)},
                }
            ],
        }
        request = urllib.request.Request(
            f"{server}/v3/mail/send",
            json.dumps(body).encode(),
            {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(request).read()
    return (time.perf_counter() - start) / len(readers)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--database", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument(
        "--workers", type=int, default=1, help="sending processes (extra ones: digest worker)"
    )
    args = parser.parse_args()
    limit_malloc_arenas()  # as the console script does
    server = ServerProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            site = scaffold(Path(tmp) / "site").parent
            write_feeds(site / "bench-feeds")
            (site / "digest.toml").write_text(
                config_text(site, site / "bench-feeds", args.database, args.in_flight)
            )
            project = open_project(site, server.host)
            engine, config = project.engine, project.config
            gathering.gather_sources(project)
            start = time.perf_counter()
            load_readers(project, args.readers)
            loaded = time.perf_counter() - start
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

            start = time.perf_counter()
            planned = issue_cases.plan(project)
            planning = time.perf_counter() - start
            assert planned is not None
            start = time.perf_counter()
            started_at = project.clock()
            cpu_start = _cpu_seconds()
            server_cpu_start = server.stats()["cpu_seconds"]
            helpers = []
            if args.workers > 1:
                env = {
                    **os.environ,
                    "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
                    "SENDGRID_API_KEY": API_KEY,
                    "SENDGRID_API_HOST": server.host,
                }
                helpers = [
                    subprocess.Popen(
                        [sys.executable, "-m", "digest", "worker", "--config", str(config.path)],
                        env=env,
                        stdout=subprocess.DEVNULL,
                    )
                    for _ in range(args.workers - 1)
                ]
            _, report = sending.send(project)
            for helper in helpers:
                helper.wait()
            seconds = time.perf_counter() - start
            # Sending starts with the first recorded group; when was the last one written?
            with project.engine.connect() as conn:
                recorded_at = conn.execute(
                    select(db.issues.c.recorded_at).where(db.issues.c.id == planned.issue.id)
                ).scalar_one()
            recorded = (recorded_at - started_at).total_seconds()
            cpu = _cpu_seconds() - cpu_start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            received = server.stats()
            server_cpu = received["cpu_seconds"] - server_cpu_start
            assert report is not None
            assert received["recipients"] == args.readers
            assert received["duplicates"] == 0 and received["rejected"] == 0

            naive_each = naive_seconds_each(project, server.host, args.sample)
    finally:
        server.stop()

    print(
        f"database: {engine.dialect.name}; readers: {args.readers:,} over {len(TOPICS)} topics; "
        f"{args.workers} sending process(es) with {args.in_flight} requests in flight each"
    )
    print(f"loading subscribers (bulk, not measured) : {loaded:8.1f} s")
    print(f"plan                                     : {planning:8.1f} s")
    print(
        f"send (record, batch, post, mark)         : {seconds:8.1f} s "
        f"(recorded after {recorded:.1f} s) "
        f"= {args.readers / seconds:,.0f} recipients/s in {received['requests']:,} requests"
    )
    print(
        f"  CPU of the sending process         : {cpu:8.1f} s "
        f"= {cpu / args.readers * 1e6:.0f} µs per recipient (steadier than wall time)"
    )
    print(
        f"  CPU of the server (its own process)  : {server_cpu:8.1f} s "
        f"= {server_cpu / args.readers * 1e6:.0f} µs per recipient"
    )
    print(
        f"naive render + post per recipient        : {naive_each * 1000:8.1f} ms each "
        f"(sample of {args.sample:,}) -> {naive_each * args.readers:,.0f} s for all"
    )
    ratio = naive_each * args.readers / seconds
    print(f"  ratio naive / batched                  : {ratio:8.0f}x")
    print(
        f"peak memory (max RSS, sending process)   : {peak:8.0f} MB "
        f"(before the send: {rss_before:.0f} MB)"
    )


if __name__ == "__main__":
    main()
