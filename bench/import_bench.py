"""Importing a subscriber file with and without a ``cadence`` column, on SQLite or PostgreSQL,
through the use case ``digest subscribers import`` calls. The site offers daily, weekly (the
default) and monthly; the readers are new, then the same file comes again, with a third of
the readers switching cadence, then with a third of them moving to a time zone, then with a
third of them renamed (and other topics), then with a third unsubscribed (a ``status``
column, as another tool's file of those who left). Prints
wall and CPU time per import and the ratio of the cadence file to the plain one, all measured
in the same run.

With ``--history DAYS``, before the switching import the daily cadence has sent DAYS issues,
each delivered to every reader, as a site a few years old has: readers leaving daily are
switched at the end of what they got.

    python bench/import_bench.py [--readers 100000] [--history 0] [--database postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datetime import timedelta

from sqlalchemy import func, insert, literal, select, text

from digest import db
from digest.app import subscribers
from digest.app.wiring import Project
from digest.stores import posts as post_store
from subscribers import tables as subscriber_tables
from tests.cadence_site import cadence_config

SECRET = "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"
CADENCES = ["daily", "weekly", "monthly"]


def write_file(
    path: Path,
    readers: int,
    cadences: list[str] | None,
    renamed: bool = False,
    zones: bool = False,
    left: bool = False,
) -> None:
    """``renamed``: every third reader has another name and topics than before; ``zones``: a
    ``time_zone`` column giving every third reader one (the others' cells empty); ``left``: a
    ``status`` column saying every third reader unsubscribed."""
    header = (
        "email,name,topics"
        + (",cadence" if cadences else "")
        + (",time_zone" if zones else "")
        + (",status" if left else "")
    )
    rows = (
        f"reader{n}@list{n % 7}.example,"
        + (f"Reader N. {n},backend" if renamed and n % 3 == 0 else f"Reader {n},backend;data")
        + (f",{cadences[n]}" if cadences else "")
        + ((",Asia/Kathmandu" if n % 3 == 0 else ",") if zones else "")
        + ((",unsubscribed" if n % 3 == 0 else ",") if left else "")
        for n in range(readers)
    )
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


def open_project(folder: Path, database: str | None) -> Project:
    config = cadence_config(folder, {"DIGEST_SECRET_KEY": SECRET})
    engine = db.make_engine(database or config.database_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
    project = Project.open(config, engine=engine)
    with engine.begin() as conn:
        post_store.sync_topics(conn, project.topics())
    return project


def add_history(project: Project, days: int) -> int:
    """``days`` recorded issues of the daily cadence, one a day up to now, each delivered to
    every reader; the deliveries written."""
    now = project.clock()
    slug = project.config.digests[0].slug
    i, s = db.issues.c, subscriber_tables.subscribers.c
    with project.engine.begin() as conn:
        numbers = conn.execute(select(func.coalesce(func.max(i.number), 0))).scalar_one()
        for day in range(days):
            at = now - timedelta(days=days - day)
            conn.execute(
                insert(db.issues).values(
                    digest=slug,
                    number=numbers + day + 1,
                    status="sent",
                    cutoff=at,
                    created_at=at,
                    sent_at=at,
                    slot=at,
                    recorded_at=at,
                    cadence="daily",
                    release_from=day,
                    release_to=day + 1,
                )
            )
        issues = select(i.id).where(i.digest == slug, i.cadence == "daily").subquery()
        conn.execute(
            insert(db.deliveries).from_select(
                ["issue_id", "subscriber_id", "status", "email", "created_at", "changed_at"],
                select(
                    issues.c.id, s.id, literal("submitted"), s.email, literal(now), literal(now)
                ).select_from(issues.join(subscriber_tables.subscribers, literal(True))),
            )
        )
        return int(conn.execute(select(func.count()).select_from(db.deliveries)).scalar_one())


def timed_import(project: Project, path: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of reading and importing ``path``; the rows added or updated."""
    wall, cpu = time.perf_counter(), time.process_time()
    parsed = subscribers.read_file(project, path)
    summary = subscribers.import_file(project, parsed, str(path), dry_run=False)
    assert not parsed.problems, parsed.problems[:3]
    return (
        time.perf_counter() - wall,
        time.process_time() - cpu,
        summary.added + summary.updated + len(summary.suppressed_by_file),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--database", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--history", type=int, default=0, help="daily issues sent before")
    args = parser.parse_args()
    rng = random.Random(3)
    chosen = [rng.choice(CADENCES) for _ in range(args.readers)]
    switched = [rng.choice(CADENCES) if n % 3 == 0 else c for n, c in enumerate(chosen)]
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {
            "plain": (folder / "plain.csv", None),
            "cadence": (folder / "cadence.csv", chosen),
            "switching": (folder / "switching.csv", switched),
        }
        for path, cadences in files.values():
            write_file(path, args.readers, cadences)
        zoned = folder / "zoned.csv"
        write_file(zoned, args.readers, switched, zones=True)
        renamed = folder / "renamed.csv"
        write_file(renamed, args.readers, switched, renamed=True)
        leaving = folder / "leaving.csv"
        write_file(leaving, args.readers, switched, renamed=True, left=True)
        plain = open_project(folder / "plain", args.database)
        figures["new readers, no cadence column"] = timed_import(plain, files["plain"][0])
        plain.engine.dispose()
        project = open_project(folder / "cadence", args.database)
        figures["new readers, a cadence column"] = timed_import(project, files["cadence"][0])
        figures["same file again (unchanged)"] = timed_import(project, files["cadence"][0])
        deliveries = add_history(project, args.history) if args.history else 0
        figures["a third switching cadence"] = timed_import(project, files["switching"][0])
        figures["a third moving time zone"] = timed_import(project, zoned)
        figures["a third renamed, new topics"] = timed_import(project, renamed)
        figures["a third unsubscribing"] = timed_import(project, leaving)
        name = project.engine.dialect.name
        project.engine.dispose()
    print(f"database: {name}; {args.readers:,} readers per file")
    if args.history:
        print(f"before switching: {args.history} daily issues sent, {deliveries:,} deliveries")
    for label, (wall, cpu, changed) in figures.items():
        print(
            f"{label:32}: {wall:6.2f} s wall, CPU {cpu:6.2f} s, {changed:>9,} rows written, "
            f"{args.readers / wall:9,.0f} rows/s"
        )
    plain_wall = figures["new readers, no cadence column"][0]
    with_cadence = figures["new readers, a cadence column"][0]
    print(f"ratio, cadence column / none (wall): {with_cadence / plain_wall:.2f}")


if __name__ == "__main__":
    main()
