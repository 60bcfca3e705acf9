"""The Event Webhook at the scale of a send: ≥ 2,000,000 SendGrid events of every kind
(processed, delivered, deferred, bounce, dropped, open, click, spamreport, unsubscribe, …),
shuffled, posted in SendGrid-sized signed batches to `digest serve`'s real endpoint, timed until
every staged event is applied (not until the last answer), and in the same run a raw bulk
insert of the same rows (COPY on PostgreSQL, executemany on SQLite) into a table of the same
columns.

    python bench/events_bench.py [--events 2000000] [--database postgresql+psycopg://…]
                                 [--concurrency 2] [--batch-kb 768]

The server is `digest serve` in a process of its own; the posting client is this process.
Some batches are posted twice (SendGrid retries a batch it got no answer for): the replays must
change nothing. Prints events per second, the CPU time of the server and of the client beside
the wall time, the slowest answer and the answer to the largest batch, and the ratio to the
raw insert. PostgreSQL's own CPU is in neither figure (it is another process).
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from send_bench import config_text, load_readers, write_feeds
from sqlalchemy import func, select, text, update

from digest import db
from digest.app import feedback, gathering
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config import load_config
from digest.events import prepare
from digest.scaffold import scaffold
from digest.stores import engagement

ROOT = Path(__file__).resolve().parents[1]
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
REPLAYED = 0.03
"""The share of batches posted a second time."""


def recipient_events(
    rng: random.Random, issue: int, reader: int, sent: int, posts: list[str], start: int
) -> Iterator[dict[str, Any]]:
    """What SendGrid reports for one recipient: processed, then delivered (or a bounce, a
    block, a drop, deferrals first), and for some opens, clicks, an unsubscribe or a complaint;
    with the fields SendGrid sends along (smtp-id, sg_message_id, category, ip, useragent)."""
    email = f"r{reader}@bench.example"
    message = f"{issue:x}{sent:08x}.filterdrecv-{reader % 97}.sendgrid.net"
    base = {
        "email": email,
        "smtp-id": f"<{message}@ismtpd0001p1lon1.sendgrid.net>",
        "sg_message_id": f"{message}.0",
        "category": ["digest", "weekly"],
        "issue_id": str(issue),
        "subscriber_id": str(reader),
    }
    at = start + rng.randrange(600)
    n = 0

    def event(kind: str, **extra: Any) -> dict[str, Any]:
        nonlocal at, n
        n += 1
        at += rng.randrange(1, 3600)
        return base | {"event": kind, "timestamp": at, "sg_event_id": f"{message}-{n}"} | extra

    yield event("processed")
    fate = rng.random()
    if fate < 0.01:
        yield event("dropped", reason="Bounced Address", status="5.0.0")
        return
    for _ in range(rng.random() < 0.04):
        yield event("deferred", response="400 try again later", attempt="1")
    if fate < 0.025:
        yield event(
            "bounce",
            type="blocked" if fate < 0.015 else "bounce",
            reason="550 5.1.1 The email account that you tried to reach does not exist.",
            status="5.1.1",
        )
        return
    yield event("delivered", response="250 OK", ip="149.72.1.1")
    agent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
        yield event("open", useragent=agent, ip="17.58.0.1", sg_machine_open=rng.random() < 0.4)
    if rng.random() < 0.09:
        for _ in range(rng.choice((1, 1, 2))):
            url = rng.choice(posts)
            if rng.random() < 0.5:
                url += "?utm_source=digest&utm_medium=email"
            yield event("click", url=url, url_offset={"index": 0, "type": "html"}, useragent=agent)
    if rng.random() < 0.004:
        yield event("unsubscribe")
    elif rng.random() < 0.0006:
        yield event("spamreport")


def make_events(
    count: int, issues: dict[int, list[str]], readers: int, now: int
) -> list[dict[str, Any]]:
    rng = random.Random(19)
    events: list[dict[str, Any]] = []
    sent = 0
    while len(events) < count:
        issue = rng.choice(list(issues))
        sent += 1
        reader = (sent - 1) % readers + 1
        events.extend(recipient_events(rng, issue, reader, sent, issues[issue], now - 7200))
    del events[count:]
    rng.shuffle(events)
    return events


def batches(events: list[dict[str, Any]], kib: int) -> list[bytes]:
    """SendGrid's batching: events joined until the next would pass ``kib``."""
    out: list[bytes] = []
    parts: list[bytes] = []
    size = 2
    for event in events:
        encoded = orjson.dumps(event)
        if parts and size + len(encoded) + 1 > kib * 1024:
            out.append(b"[" + b",".join(parts) + b"]")
            parts, size = [], 2
        parts.append(encoded)
        size += len(encoded) + 1
    if parts:
        out.append(b"[" + b",".join(parts) + b"]")
    return out


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(engine: Any) -> float:
    """PostgreSQL's own CPU seconds so far (it runs on this machine): its background writers
    and the backends serving this database; 0 on SQLite, whose work is in the server's."""
    if engine.dialect.name != "postgresql":
        return 0.0
    with engine.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "OR backend_type IN ('walwriter', 'checkpointer', 'background writer')"
            )
        ).scalars()
        total = 0.0
        for pid in pids:
            with suppress(OSError):  # ended meanwhile
                total += process_cpu(int(pid))
        return total


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Posted:
    seconds: list[float]
    by_size: list[tuple[int, float]]
    answers: Counter[int]
    accepted: int


def post_all(
    url: str, bodies: list[bytes], key: ec.EllipticCurvePrivateKey, concurrency: int
) -> Posted:
    """Post every body, signed just before it goes, from ``concurrency`` threads."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    posted = Posted([], [], Counter(), 0)

    def worker() -> None:
        with httpx.Client(timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                stamp = str(int(time.time()))
                signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
                headers = {
                    SIGNATURE: base64.b64encode(signature).decode(),
                    TIMESTAMP: stamp,
                    "Content-Type": "application/json",
                }
                start = time.perf_counter()
                answer = client.post(url, content=body, headers=headers)
                took = time.perf_counter() - start
                report = answer.json() if answer.status_code == 200 else {}
                with lock:
                    posted.seconds.append(took)
                    posted.by_size.append((len(body), took))
                    posted.answers[answer.status_code] += 1
                    posted.accepted += int(report.get("accepted", 0))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return posted


def until_applied(project: Project) -> None:
    """Wait until the server's drain has applied every staged event: the webhook's time is
    the time to events applied, not to answers given."""
    while feedback.staged_events(project):
        time.sleep(0.05)


def raw_insert(project: Project, events: list[dict[str, Any]]) -> tuple[float, float]:
    """The same rows, as the webhook would store them, bulk-inserted into a bare table of the
    same columns: the floor the webhook is held against (wall and CPU seconds)."""
    now = project.clock()
    with project.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS events_raw")
        conn.exec_driver_sql(
            "CREATE TABLE events_raw (sg_event_id VARCHAR(200), event VARCHAR(40), "
            "email VARCHAR(320), issue_id INTEGER, subscriber_id INTEGER, "
            "occurred_at TIMESTAMP WITH TIME ZONE, received_at TIMESTAMP WITH TIME ZONE, "
            "url TEXT, post_id INTEGER)"
        )
    with project.engine.connect() as conn:
        stamp = engagement.time_binder(conn)
        rows = [
            (*row[:5], stamp(datetime.fromtimestamp(row[5], UTC)), *row[6:])
            for row in prepare(events, now, stamp).rows
        ]
    start, cpu = time.perf_counter(), own_cpu()
    with project.engine.begin() as conn:
        columns = ", ".join(engagement.EVENT_COLUMNS)
        if conn.dialect.name == "postgresql":
            raw: Any = conn.connection.driver_connection
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY events_raw ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        else:
            conn.exec_driver_sql(
                f"INSERT INTO events_raw ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
    seconds, cpu = time.perf_counter() - start, own_cpu() - cpu
    with project.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE events_raw")
    return seconds, cpu


def start_server(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
        "SENDGRID_API_KEY": "SG.bench-not-used",
    }
    log = config.parent / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--config", str(config), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/editor/login", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"digest serve did not start: {log.read_text()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--readers", type=int, default=200_000)
    parser.add_argument("--database", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--concurrency", type=int, default=2, help="requests at once")
    parser.add_argument("--batch-kb", type=int, default=768, help="SendGrid's batch size")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    with tempfile.TemporaryDirectory() as tmp:
        site = scaffold(Path(tmp) / "site").parent
        write_feeds(site / "bench-feeds")
        path = site / "digest.toml"
        path.write_text(
            config_text(site, site / "bench-feeds", args.database, 4)
            + f'\n[sending.sendgrid]\nwebhook_public_key = "{public}"\n'
            + "webhook_max_bytes = 5000000\n"
        )
        config = load_config(
            path, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
        )
        engine = db.make_engine(config.database_url)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
        project = Project.open(config, engine=engine)
        gathering.gather_sources(project)
        load_readers(project, args.readers)
        planned = issue_cases.plan(project)
        assert planned is not None and planned.issue.id is not None
        issue = planned.issue.id
        with project.transaction() as conn:
            conn.execute(
                update(db.issues)
                .where(db.issues.c.id == issue)
                .values(status="sent", sent_at=project.clock())
            )
            links = [url for _, url in engagement.post_links(conn, issue)]
        events = make_events(args.events, {issue: links}, args.readers, int(time.time()))
        bodies = batches(events, args.batch_kb)
        rng = random.Random(7)
        replays = rng.sample(bodies, max(1, int(len(bodies) * REPLAYED)))
        posting = bodies + replays
        rng.shuffle(posting)
        kinds = Counter(e["event"] for e in events)

        server = start_server(path, args.port)
        try:
            url = f"http://127.0.0.1:{args.port}/webhooks/sendgrid"
            server_cpu, client_cpu = process_cpu(server.pid), own_cpu()
            database_before = database_cpu(engine)
            start = time.perf_counter()
            posted = post_all(url, posting, key, args.concurrency)
            answered = time.perf_counter() - start
            until_applied(project)
            seconds = time.perf_counter() - start
            server_cpu = process_cpu(server.pid) - server_cpu
            client_cpu = own_cpu() - client_cpu
            database = database_cpu(engine) - database_before
            # The largest batch the endpoint takes (webhook_max_bytes), on the full table.
            extra = make_events(20_000, {issue: links}, args.readers, int(time.time()))
            for event in extra:
                event["sg_event_id"] = "largest-" + event["sg_event_id"]
            biggest = batches(extra, 4800)[0]
            start = time.perf_counter()
            largest_posted = post_all(url, [biggest], key, 1)
            until_applied(project)
            largest_applied = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait()
        raw_seconds, raw_cpu = raw_insert(project, events)
        with project.reading() as conn:
            stored = conn.execute(select(func.count()).select_from(db.events)).scalar_one()
            rollup = engagement.counts(conn, [issue])[issue]

    posted_events = len(events) + sum(body.count(b'"sg_event_id"') for body in replays)
    largest, largest_took = max(posted.by_size)
    print(
        f"database: {engine.dialect.name}; {len(events):,} events "
        f"({', '.join(f'{k} {n:,}' for k, n in kinds.most_common())}), "
        f"shuffled, in {len(bodies):,} signed batches of up to {args.batch_kb} KB "
        f"(+{len(replays)} posted twice), {args.concurrency} requests at once"
    )
    applied = stored - biggest.count(b"sg_event_id")
    print(
        f"answers: {dict(posted.answers)}; accepted {posted.accepted:,}, applied {applied:,}, "
        f"duplicates {posted.accepted - applied:,}; stored {stored:,}"
    )
    print(
        f"webhook: {seconds:8.1f} s wall to every event applied = "
        f"{posted_events / seconds:,.0f} events/s ({seconds / posted_events * 1e6:.1f} µs "
        f"each); the last answer after {answered:.1f} s"
    )
    print(
        f"  CPU: server {server_cpu:.1f} s ({server_cpu / posted_events * 1e6:.1f} µs/event), "
        f"client {client_cpu:.1f} s (its signing and posting)"
        + (
            f", PostgreSQL {database:.1f} s ({database / posted_events * 1e6:.1f} µs/event)"
            if database
            else ""
        )
    )
    ordered = sorted(posted.seconds)
    print(
        f"  answers: median {ordered[len(ordered) // 2] * 1000:.0f} ms, "
        f"slowest {ordered[-1] * 1000:.0f} ms; largest batch ({largest / 1024:.0f} KB) "
        f"{largest_took * 1000:.0f} ms"
    )
    print(
        f"  one batch of {len(biggest) / 1024:.0f} KB ({biggest.count(b'sg_event_id'):,} events, "
        f"webhook_max_bytes is 5 MB): answered in {largest_posted.seconds[0] * 1000:.0f} ms, "
        f"applied after {largest_applied * 1000:.0f} ms"
    )
    print(
        f"raw bulk insert of the same rows: {raw_seconds:8.1f} s wall "
        f"({len(events) / raw_seconds:,.0f} rows/s), CPU {raw_cpu:.1f} s"
    )
    print(f"  ratio webhook / raw insert: {seconds / raw_seconds:.1f}x (wall)")
    unique = {k: rollup[k] for k in ("unique_open", "unique_click")}
    print(f"rollups: {dict(rollup.most_common(4))} …, {unique}")
    assert posted.answers == Counter({200: len(posting)}), posted.answers
    assert stored == len(events) + biggest.count(b"sg_event_id")
    assert posted.accepted == posted_events


if __name__ == "__main__":
    main()
