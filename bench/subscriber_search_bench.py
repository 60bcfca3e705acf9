"""Finding subscribers in a large list: the editor app's search (``digest subscribers find``)
over 100,000 readers, on SQLite or PostgreSQL. Prints, per kind of query, the median wall
time and this process's CPU time (PostgreSQL's own CPU is not in it) of one page of 50.

    python bench/subscriber_search_bench.py [--readers 100000] [--database postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, text

from digest import db
from digest.app import people
from digest.app.wiring import Project
from digest.config import load_config
from digest.scaffold import scaffold
from subscribers.models import Status

FIRST = ["Ada", "Björn", "Chen", "Dolores", "Émile", "Fatima", "Grzegorz", "Hana", "Ivo", "Júlia"]
LAST = ["Lovelace", "Öztürk", "Nakamura", "Okafor", "Ramírez", "Schmidt", "Wiśniewska", "Zhou"]


def load(project: Project, readers: int) -> None:
    """Readers with 1 to 3 topics, one in a hundred bounced, by plain bulk inserts."""
    now = project.clock()
    with project.engine.begin() as conn:
        topics = [i for (i,) in conn.execute(select(db.topics.c.id))]
        for start in range(0, readers, 20_000):
            ids = range(start + 1, min(readers, start + 20_000) + 1)
            conn.execute(
                db.metadata.tables["subscribers"].insert(),
                [
                    {
                        "id": i,
                        "email": f"reader{i}@list{i % 7}.example",
                        "email_key": f"reader{i}@list{i % 7}.example",
                        "name": f"{FIRST[i % 10]} {LAST[i % 8]} {i}",
                        "status": "bounced" if i % 100 == 0 else "active",
                        "created_at": now,
                        "changed_at": now,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                db.metadata.tables["subscriptions"].insert(),
                [
                    {"subscriber_id": i, "topic_id": topics[(i + k) % len(topics)]}
                    for i in ids
                    for k in range(1 + i % 3)
                ],
            )
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))


def measure(label: str, run: Callable[[], object], repeat: int = 15) -> None:
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(
        f"  {label:<46} wall {statistics.median(walls) * 1000:7.1f} ms   "
        f"cpu {statistics.median(cpus) * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--database", default=None, help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = scaffold(Path(tmp) / "site")
        if args.database:
            path.write_text(
                path.read_text(encoding="utf-8").replace(
                    "[site]", f'database_url = "{args.database}"\n\n[site]', 1
                ),
                encoding="utf-8",
            )
        config = load_config(
            path, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
        )
        engine = db.make_engine(config.database_url)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
        project = Project.open(config, engine=engine)
        start = time.perf_counter()
        load(project, args.readers)
        print(
            f"{engine.dialect.name}: {args.readers:,} readers loaded in "
            f"{time.perf_counter() - start:.1f} s; one page of 50, median of 15:"
        )
        n = args.readers
        last = people.find(project, "", after=n - 60)
        assert len(last.people) == 50 and last.next_after is not None
        measure("whole address (index)", lambda: people.find(project, f"reader{n // 2}@list"))
        measure("address prefix 'reader9' (index range)", lambda: people.find(project, "reader9@"))
        measure(
            "part of a name 'öztürk' (scan, page fills)", lambda: people.find(project, "öztürk")
        )
        measure("a domain '@list3.example' (scan)", lambda: people.find(project, "@list3.example"))
        measure(
            "rare name, the last reader (full scan)",
            lambda: people.find(project, f"{LAST[n % 8]} {n}"),
        )
        measure("nobody 'zzz' (full scan)", lambda: people.find(project, "zzz"))
        measure("status bounced (index)", lambda: people.find(project, "", Status.BOUNCED))
        measure(
            "topic 'data', a late page (keyset)",
            lambda: people.find(project, "", topic="data", after=n - 5000),
        )
        measure(
            "everyone, page at 90% (keyset)", lambda: people.find(project, "", after=n * 9 // 10)
        )
        sid = n // 3
        measure("one person's page", lambda: people.person(project, sid))
        engine.dispose()


if __name__ == "__main__":
    main()
