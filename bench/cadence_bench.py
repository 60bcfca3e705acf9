"""Send each cadence's issue of a digest offering three (daily, weekly, monthly) to N synthetic
readers split over them, a tenth of whom switched cadence recently (a watermark of their own,
below their cadence's horizon): the segments are keyed by what readers are owed, so the
switchers get variants of their own. Through the local SendGrid-compatible server, as
bench/send_bench.py (whose helpers it uses).

    python bench/cadence_bench.py [--readers 1000000] [--database postgresql+psycopg://…]

First every cadence sends an issue to nobody, a post per topic apart (so each has a horizon of
its own: monthly's behind weekly's behind daily's), then new posts come, then the readers are
loaded (bulk, not measured) and each cadence's issue is planned and sent.
Prints recipients per second over the three sends, CPU time beside wall time, and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from send_bench import (
    TOPICS,
    ServerProcess,
    _cpu_seconds,
    config_text,
    load_readers,
    open_project,
)
from sqlalchemy import func, select

from digest import db
from digest.app import gathering, sending
from digest.app import issues as issue_cases
from digest.app.wiring import Project, limit_malloc_arenas
from digest.scaffold import scaffold
from digest.stores import releases
from subscribers import tables as subscriber_tables
from tests.sendgrid_server import API_KEY

CADENCES = {"daily": "0 8 * * *", "weekly": "0 8 * * mon", "monthly": "0 8 1 * *"}
SWITCHED = 10
"""One reader in this many switched recently."""


def write_feeds(folder: Path, posts: int, base: datetime) -> None:
    """``posts`` posts per topic, a minute apart from ``base``."""
    folder.mkdir(parents=True, exist_ok=True)
    for slug in TOPICS:
        items = "".join(
            f"<item><title>{slug} post {n}</title><link>https://bench.example/{slug}/{n}/</link>"
            f"<guid>{slug}-{n}</guid>"
            f"<pubDate>{format_datetime(base + timedelta(minutes=n))}</pubDate>"
            f"<description>A post about {slug}, number {n}, long enough to be real.</description>"
            f'<enclosure url="https://img.bench.example/{slug}/{n}.png" type="image/png"/></item>'
            for n in range(posts)
        )
        (folder / f"{slug}.xml").write_text(
            f'<rss version="2.0"><channel><title>{slug}</title><link>https://bench.example/</link>'
            f"<description>x</description>{items}</channel></rss>",
            encoding="utf-8",
        )


def load_cadences(project: Project, readers: int, marks: dict[str, list[int]]) -> dict[str, int]:
    """Reader i: weekly (the default, no row) when i % 3 == 0, else daily or monthly; every
    SWITCHED-th reader switched to it recently, with a watermark of their own: the horizon of
    the cadence they left (``marks`` of their new cadence). Readers per cadence."""
    rng = random.Random(2)
    names = ["weekly", "daily", "monthly"]
    counts = dict.fromkeys(names, 0)
    with project.engine.begin() as conn:
        stamp = subscriber_tables.reader_cadences.c.changed_at.type.dialect_impl(
            conn.dialect
        ).bind_processor(conn.dialect)
        now = project.clock()
        at = stamp(now) if stamp else now
        postgres = conn.dialect.name == "postgresql"
        raw: Any = conn.connection.driver_connection
        for start in range(0, readers, 50_000):
            rows = []
            for i in range(start + 1, min(readers, start + 50_000) + 1):
                cadence = names[i % 3]
                counts[cadence] += 1
                mark = rng.choice(marks[cadence]) if i % SWITCHED == 0 else None
                if cadence != "weekly" or mark is not None:
                    rows.append((i, "news", cadence, mark, at))
            if postgres:
                with raw.cursor() as cursor:
                    columns = "subscriber_id, digest, cadence, watermark, changed_at"
                    with cursor.copy(f"COPY reader_cadences ({columns}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            else:
                conn.exec_driver_sql(
                    "INSERT INTO reader_cadences (subscriber_id, digest, cadence, watermark, "
                    "changed_at) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
        if postgres:
            conn.exec_driver_sql("ANALYZE")
    return counts


def measured_send(
    project: Project,
    server: ServerProcess,
    digest: str,
    cadence: str | None,
    workers: int,
    worker_env: dict[str, str],
    site: Path,
) -> tuple[int, float, float, float, int, int, int]:
    """Plan and send the digest's issue of ``cadence``, with ``workers`` - 1 helping
    processes: recipients, planning and sending seconds, CPU of this process, requests,
    segments and segments of switched readers."""
    requests_before = server.stats()["requests"]
    recipients_before = server.stats()["recipients"]
    start = time.perf_counter()
    cpu_start = _cpu_seconds()
    planned = issue_cases.plan(project, digest, cadence=cadence)
    assert planned is not None
    planning = time.perf_counter() - start
    command = [sys.executable, "-m", "digest", "worker", "--config", str(site / "digest.toml")]
    helpers = [
        subprocess.Popen([*command, "--digest", digest], env=worker_env, stdout=subprocess.DEVNULL)
        for _ in range(workers - 1)
    ]
    sending.deliver(project, planned)
    for helper in helpers:
        helper.wait()
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    stats = server.stats()
    with project.engine.connect() as conn:
        keys = conn.execute(
            select(db.send_batches.c.segment)
            .where(db.send_batches.c.issue_id == planned.issue.id)
            .distinct()
        ).scalars()
        segments = switched = 0
        for key in keys:
            segments += 1
            switched += "@" in key
    return (
        int(stats["recipients"] - recipients_before),
        planning,
        seconds,
        cpu,
        int(stats["requests"] - requests_before),
        segments,
        switched,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--database", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument(
        "--workers", type=int, default=1, help="sending processes (extra ones: digest worker)"
    )
    args = parser.parse_args()
    limit_malloc_arenas()  # as the console script does
    server = ServerProcess()
    figures = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            site = scaffold(Path(tmp) / "site").parent
            feeds = site / "bench-feeds"
            now = datetime.now(UTC)
            write_feeds(feeds, 1, now - timedelta(hours=2))
            body = config_text(site, feeds, args.database, args.in_flight)
            cadences = "".join(f'{name} = "{cron}"\n' for name, cron in CADENCES.items())
            body = body.replace(
                '[[digests]]\nslug = "weekly"\nname = "Bench Weekly"\n',
                '[[digests]]\nslug = "news"\nname = "Bench News"\ndefault_cadence = "weekly"\n'
                f"[digests.cadences]\n{cadences}"
                # The same readers through a digest of one cadence: today's send, same run.
                '[[digests]]\nslug = "plain"\nname = "Bench Plain"\n',
            )
            (site / "digest.toml").write_text(body)
            project = open_project(site, server.host)
            engine = project.engine
            worker_env = {
                **os.environ,
                "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
                "SENDGRID_API_KEY": API_KEY,
                "SENDGRID_API_HOST": server.host,
            }
            # Each cadence's first issue, to nobody, a post per topic apart: each cadence gets
            # a horizon of its own.
            horizons = {}
            for n, cadence in enumerate(["monthly", "weekly", "daily"], start=1):
                write_feeds(feeds, n, now - timedelta(hours=2))
                gathering.gather_sources(project)
                planned = issue_cases.plan(project, "news", cadence=cadence, without_readers=True)
                assert planned is not None
                sending.deliver(project, planned)
                with engine.connect() as conn:
                    horizons[cadence] = releases.horizon(conn, "news", cadence) or 0
            write_feeds(feeds, 4, now - timedelta(hours=2))
            gathering.gather_sources(project)
            marks = {c: [h for other, h in horizons.items() if other != c] for c in CADENCES}
            start = time.perf_counter()
            load_readers(project, args.readers)
            counts = load_cadences(project, args.readers, marks)
            loaded = time.perf_counter() - start
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            for cadence in CADENCES:
                sent, planning, seconds, cpu, requests, segments, switched = measured_send(
                    project, server, "news", cadence, args.workers, worker_env, site
                )
                assert sent == counts[cadence], (sent, counts[cadence])
                figures.append(
                    (cadence, sent, planning, seconds, cpu, requests, segments, switched)
                )
            one = measured_send(project, server, "plain", None, args.workers, worker_env, site)
            assert one[0] == args.readers
            received = server.stats()
            assert received["duplicates"] == 0 and received["rejected"] == 0
            with engine.connect() as conn:
                left = conn.execute(
                    select(func.count()).where(
                        subscriber_tables.reader_cadences.c.watermark.is_not(None)
                    )
                ).scalar_one()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        server.stop()

    print(
        f"database: {engine.dialect.name}; readers: {args.readers:,} over {len(TOPICS)} topics "
        f"and {len(CADENCES)} cadences, 1 in {SWITCHED} switched (own watermark)"
    )
    print(f"loading readers and cadences (bulk, not measured): {loaded:8.1f} s")
    total, wall, cpu_total = 0, 0.0, 0.0
    for cadence, sent, planning, seconds, cpu, requests, segments, switched in figures:
        total += sent
        wall += seconds
        cpu_total += cpu
        print(
            f"{cadence:8}: {sent:9,} recipients in {seconds:6.1f} s (plan {planning:4.1f} s), "
            f"CPU {cpu:6.1f} s = {sent / seconds:8,.0f} recipients/s; {requests:,} requests, "
            f"{segments} segments ({switched} of switched readers)"
        )
    print(
        f"all three  : {total:9,} recipients in {wall:6.1f} s, CPU {cpu_total:6.1f} s "
        f"= {total / wall:,.0f} recipients/s ({cpu_total / total * 1e6:.0f} µs CPU each)"
    )
    sent, _, seconds, cpu, requests, segments, _ = one
    print(
        f"one cadence, same readers (a digest without cadences, same run): {sent:,} recipients "
        f"in {seconds:.1f} s, CPU {cpu:.1f} s = {sent / seconds:,.0f} recipients/s; "
        f"{requests:,} requests, {segments} segments"
    )
    print(f"  ratio, three cadences / one          : {total / wall / (sent / seconds):.2f}")
    # CPU per recipient moves less than wall time when other work shares the machine.
    print(f"  CPU per recipient, one / three       : {cpu / sent / (cpu_total / total):.2f}")
    print(f"watermarks left after the sends: {left:,} (every switcher settled: 0)")
    print(
        f"peak memory (max RSS, sending process): {peak:6.0f} MB "
        f"(before the sends: {rss_before:.0f} MB)"
    )


if __name__ == "__main__":
    main()
