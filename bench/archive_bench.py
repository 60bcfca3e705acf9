"""The web archive and the personal pages under a link scanner's burst: a real server (uvicorn
in a process of its own, the app as `digest serve` builds it) and wrk (Debian's `wrk`) with 20
connections, on SQLite or PostgreSQL.

    python bench/archive_bench.py [--database postgresql+psycopg://…] [--seconds 10]

One issue of the example site goes out to 200 readers, then, in the same run:

* ``render per request``: what the archive did before it kept pages (the uncached path);
* ``database``: the kept page read from the database on every request (no memory tier);
* ``kept``: the archive as served (this process's recent pages, the database behind them);
* ``kept, 304``: a scanner that sends the page's ETag back (If-None-Match);
* ``preferences`` and ``unsubscribe (GET)``: each request a different reader's signed link.

Prints requests per second, p50 and p99 latency (wrk's), the server process's CPU time per
request beside the wall time, and each archive row's ratio to the uncached path. Needs
``wrk`` on the PATH (``apt-get install wrk``). A PostgreSQL database given is emptied first.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from digest import db
from digest.app import gathering, sending
from digest.app.archive import ArchivePages
from digest.app.wiring import Project
from digest.config import load_config
from digest.scaffold import scaffold
from subscribers.store import SubscriberStore

ENV = {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
READERS = 200
MODES = {"uncached": (0, False), "database": (0, True), "kept": (64, True)}


def serve(config: Path, port: int, mode: str) -> None:
    """The server process: the app as `digest serve` makes it, its archive in ``mode``."""
    import uvicorn

    from digest.web import create_app
    from digest.web.head_limit import HeadLimitedProtocol

    project = Project.open(load_config(config, ENV))
    app = create_app(project, project.mailer())
    memory, store = MODES[mode]
    services = app.state.services
    app.state.services = dataclasses.replace(
        services, archive=ArchivePages(project, memory=memory, store=store)
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http=HeadLimitedProtocol,  # as `digest serve` runs it
    )


def prepare(folder: Path, database: str | None) -> tuple[Path, list[str], str]:
    """The example site with ``database``, gathered, 200 readers, issue 1 sent to the outbox;
    the readers' manage tokens and the database's dialect."""
    path = scaffold(folder / "site")
    if database:
        engine = db.make_engine(database)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
        path.write_text(f'database_url = "{database}"\n' + path.read_text(encoding="utf-8"))
    project = Project.open(load_config(path, ENV))
    gathering.gather_sources(project)
    topics = [t.slug for t in project.topics()]
    now = project.clock()
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        ids = [
            store.add(
                f"reader{i}@bench.example",
                f"Reader {i}",
                frozenset({topics[i % len(topics)], topics[(i * 7 + 1) % len(topics)]}),
                now,
                "bench",
            ).id
            for i in range(READERS)
        ]
    _, report = sending.send(project)
    assert report is not None and report.submitted > 0, report
    signer = project.signer()
    dialect = project.engine.dialect.name
    project.engine.dispose()
    return path, [signer.manage_token(i) for i in ids], dialect


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_up(base: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/archive/weekly/", timeout=2).read()
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise SystemExit("the server did not start")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    url: str, seconds: int, script: Path | None = None, header: str | None = None
) -> dict[str, float]:
    command = ["wrk", "-t2", "-c20", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    if script:
        command += ["-s", str(script)]
    if header:
        command += ["-H", header]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    if "Latency Distribution" not in out:
        raise SystemExit(f"wrk printed no latencies:\n{out}")
    latency = dict(re.findall(r"^ +(50|99)% +(\S+) *$", out, re.M))
    if "50" not in latency:
        raise SystemExit(f"cannot read wrk:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
        "errors": float(bad.group(1)) if bad else 0.0,
    }


def rotating_script(folder: Path, paths: list[str]) -> Path:
    """A wrk script whose every request takes the next path (each reader's own link)."""
    listed = ",".join(f'"{p}"' for p in paths)
    script = folder / f"rotate-{len(paths)}-{abs(hash(paths[0]))}.lua"
    script.write_text(
        f"local paths = {{{listed}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        "  return wrk.format('GET', paths[i])\nend\n"
    )
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--serve", nargs=3, metavar=("CONFIG", "PORT", "MODE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), args.serve[2])
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config, tokens, dialect = prepare(folder, args.database)
        rows: list[tuple[str, dict[str, float]]] = []
        first_render = 0.0
        for mode in ("uncached", "database", "kept"):
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(config), str(port), mode]
            )
            try:
                base = f"http://127.0.0.1:{port}"
                wait_up(base, time.monotonic() + 60)
                page = f"{base}/archive/weekly/1/"
                started = time.perf_counter()
                with urllib.request.urlopen(page, timeout=30) as answer:  # fills the cache
                    etag = answer.headers["ETag"]
                if mode == "database":
                    first_render = time.perf_counter() - started
                runs: list[tuple[str, str, Path | None, str | None]] = [
                    (_LABELS[mode], page, None, None)
                ]
                if mode == "kept":
                    runs.append(("kept, 304", page, None, f"If-None-Match: {etag}"))
                    runs.append(
                        (
                            "preferences",
                            base,
                            rotating_script(folder, [f"/preferences/{t}" for t in tokens]),
                            None,
                        )
                    )
                    runs.append(
                        (
                            "unsubscribe (GET)",
                            base,
                            rotating_script(folder, [f"/unsubscribe/{t}" for t in tokens]),
                            None,
                        )
                    )
                for label, url, script, header in runs:
                    cpu = cpu_seconds(server.pid)
                    wall = time.perf_counter()
                    result = wrk(url, args.seconds, script, header)
                    result["wall"] = time.perf_counter() - wall
                    result["cpu"] = cpu_seconds(server.pid) - cpu
                    rows.append((label, result))
            finally:
                server.terminate()
                server.wait(timeout=30)
    report(rows, dialect, args.seconds, first_render)


_LABELS = {"uncached": "render per request", "database": "database", "kept": "kept"}


def report(
    rows: list[tuple[str, dict[str, float]]], dialect: str, seconds: int, first: float
) -> None:
    base = rows[0][1]["rps"]
    print(
        f"\n{dialect}, 20 connections (wrk -t2 -c20), {seconds} s per row, one server process; "
        f"first render of the page (then kept): {first * 1000:.0f} ms"
    )
    print(
        f"{'path':<20} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} "
        f"{'server CPU s':>12} {'wall s':>7} {'CPU/req':>9} {'vs render':>10} {'non-2xx':>8}"
    )
    for label, r in rows:
        ratio = (
            f"{r['rps'] / base:,.0f}×" if label not in ("preferences", "unsubscribe (GET)") else ""
        )
        print(
            f"{label:<20} {r['rps']:>8,.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
            f"{r['requests']:>9,.0f} {r['cpu']:>12.1f} {r['wall']:>7.1f} "
            f"{r['cpu'] / max(r['requests'], 1) * 1e6:>7,.0f}µs {ratio:>10} {r['errors']:>8,.0f}"
        )


if __name__ == "__main__":
    main()
