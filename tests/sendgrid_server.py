"""A local SendGrid-compatible Mail Send server for tests and benchmarks (127.0.0.1 only).

It answers POST /v3/mail/send like SendGrid: 202 for a good body, 400 with SendGrid-style
errors for a bad one, 401 without the expected key. Every body is checked against SendGrid's
documented limits and, when a schema file is given, against the official JSON Schema. It records
each accepted recipient (by the custom_args issue_id/subscriber_id) and can inject faults:
429 with Retry-After, 500, 400 (a refusal), or a connection dropped before reading the body.
A test can have it hold requests unanswered until it says (:class:`tests.held_requests.Hold`),
to act while they are in flight; requests are told apart by the base URL their client was
given (``/run2`` in ``http://127.0.0.1:port/run2/v3/mail/send``), so that each of a test's
clients has a hold of its own.
"""

from __future__ import annotations

import contextlib
import gc
import json
import random
import resource
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from tests.held_requests import Answer, Hold, Key

API_KEY = "SG.test-key-never-logged"


def limit_errors(body: dict[str, Any], raw_size: int) -> list[str]:
    """SendGrid's documented limits, checked independently of the project's own code."""
    errors = []
    people = body.get("personalizations") or []
    if not 1 <= len(people) <= 1000:
        errors.append("personalizations: between 1 and 1000 items")
    recipients = sum(len(p.get(k) or []) for p in people for k in ("to", "cc", "bcc"))
    if recipients > 1000:
        errors.append("at most 1000 recipients per request")
    if raw_size >= 30 * 1024 * 1024:
        errors.append("the request must be under 30 MB")
    mail_args = body.get("custom_args") or {}
    for i, person in enumerate(people):
        subs = person.get("substitutions") or {}
        # Encoded as JSON the keys and values take at least their UTF-8 bytes: most
        # personalizations are proven small by one C call.
        if len(orjson.dumps(subs)) > 10_000 and (
            sum(_utf8_bytes(k) + _utf8_bytes(str(v)) for k, v in subs.items()) > 10_000
        ):
            errors.append(f"personalizations.{i}.substitutions: over 10,000 bytes")
        args = person.get("custom_args") or {}
        if mail_args:
            args = {**mail_args, **args}
        if len(orjson.dumps(args)) >= 10_000:
            errors.append(f"personalizations.{i}.custom_args: 10,000 bytes or more")
    if "send_at" in body and body["send_at"] > time.time() + 72 * 3600:
        errors.append("send_at: at most 72 hours ahead")
    return errors


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _utf8_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


class Handler(BaseHTTPRequestHandler):
    server: SendGridServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def reply(self, status: int, body: dict[str, Any] | None = None, **headers: str) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle()  # a client that timed out has hung up

    def wait_for_hangup(self) -> None:
        """Until the client closes the connection (its next request would end the wait too,
        but a client that was answered ``Connection: close``, or gave up, sends none)."""
        with contextlib.suppress(OSError):
            self.rfile.read(1)
        self.close_connection = True

    def do_GET(self) -> None:
        """``/stats``: what was received, for a benchmark running the server in another
        process."""
        server = self.server
        with server.lock:
            counts = list(server.received.values())
            stats = {
                "requests": server.requests,
                "recipients": len(counts),
                "duplicates": sum(n - 1 for n in counts),
                "rejected": len(server.rejected),
                "cpu_seconds": _cpu_seconds(),
            }
        self.reply(200, stats)

    def do_POST(self) -> None:
        server = self.server
        with server.lock:
            server.active += 1
            server.peak_active = max(server.peak_active, server.active)
        try:
            self.answer_post(server)
        finally:
            with server.lock:
                server.active -= 1

    def answer_post(self, server: SendGridServer) -> None:
        fault = server.next_fault()
        if fault == "drop":
            self.close_connection = True
            self.connection.close()
            return
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        base, found, rest = self.path.rpartition("/v3/mail/send")
        if not found or rest:
            self.reply(404, {"errors": [{"message": "not found"}]})
            return
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self.reply(
                401, {"errors": [{"message": "The provided authorization grant is invalid"}]}
            )
            return
        if fault == "429":
            self.reply(429, {"errors": [{"message": "too many requests"}]}, Retry_After="0")
            return
        if fault == "500":
            self.reply(500, {"errors": [{"message": "internal error"}]})
            return
        if fault == "400":
            self.reply(400, {"errors": [{"message": server.refusal, "field": "from.email"}]})
            return
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.reply(400, {"errors": [{"message": "Bad Request", "field": None}]})
            return
        errors = server.validate(body, len(raw))
        if errors:
            server.rejected.append((body, errors))
            self.reply(400, {"errors": [{"message": e} for e in errors]})
            return
        self.take_or_hold(server, server.holds.get(base), body)

    def take_or_hold(self, server: SendGridServer, hold: Hold | None, body: dict[str, Any]) -> None:
        """Take a valid request and answer it, unless a hold keeps it (see :class:`Hold`)."""
        recipients = [
            (args.get("issue_id"), args.get("subscriber_id"))
            for args in (p.get("custom_args") or {} for p in body["personalizations"])
        ]
        held = hold.arrive(recipients) if hold is not None else None
        if hold is None or held is None or hold.taken:
            server.take(body, recipients)
        if hold is None or held is None:
            self.reply(202)
            return
        if hold.until_hangup:
            self.wait_for_hangup()
            return
        answer = hold.wait(held)
        if answer is Answer.DROP:
            self.close_connection = True
            self.connection.close()
            return
        if answer is Answer.ANSWER:
            self.reply(202)
            return
        self.reply(202, Connection="close")
        self.wfile.flush()
        self.wait_for_hangup()
        held.read.set()


class SendGridServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, schema: Path | None = None, fault_rate: float = 0.0, seed: int = 7) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.accepted: list[dict[str, Any]] = []
        self.rejected: list[tuple[dict[str, Any], list[str]]] = []
        self.received: Counter[tuple[str | None, str | None]] = Counter()
        self.faults: deque[str] = deque()
        self.fault_rate = fault_rate
        self.refusal = "The from address does not match a verified Sender Identity."
        """What an injected "400" fault says."""
        self.holds: dict[str, Hold] = {}
        """Base path (``""`` for none, ``"/run2"``) → the hold on its requests."""
        self.keep_bodies = True
        self.active = 0
        self.peak_active = 0
        """The most requests under way at once."""
        self.requests = 0
        self.connections = 0
        """Connections accepted and not yet closed."""
        self.lock = threading.Lock()
        self._closed = threading.Condition(self.lock)
        self._random = random.Random(seed)
        self._validator = None
        if schema is not None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(json.loads(schema.read_text(encoding="utf-8")))

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.lock:
            self.connections -= 1
            self._closed.notify_all()

    def wait_idle(self, seconds: float = 300.0) -> None:
        """Until every connection is closed: after :func:`running` has stopped accepting, what
        was received can no longer change (a killed client's last requests may still be read
        and taken after its death, as a provider would)."""
        with self.lock:
            assert self._closed.wait_for(lambda: self.connections == 0, timeout=seconds), (
                f"{self.connections} connections still open"
            )

    def take(self, body: dict[str, Any], recipients: list[Key]) -> None:
        """The provider has the request: its recipients are counted."""
        with self.lock:
            self.requests += 1
            if self.keep_bodies:
                self.accepted.append(body)
            self.received.update(recipients)

    def next_fault(self) -> str | None:
        with self.lock:
            if self.faults:
                return self.faults.popleft()
            if self.fault_rate and self._random.random() < self.fault_rate:
                return self._random.choice(["429", "500", "drop"])
        return None

    def validate(self, body: dict[str, Any], size: int) -> list[str]:
        errors = limit_errors(body, size)
        if self._validator is not None:
            errors += [
                f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                for e in self._validator.iter_errors(body)
            ]
        return errors


@contextmanager
def running(schema: Path | None = None, fault_rate: float = 0.0) -> Iterator[SendGridServer]:
    server = SendGridServer(schema, fault_rate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        for hold in list(server.holds.values()):
            hold.release()  # no server thread is left waiting for a test that has gone
        server.shutdown()
        server.server_close()


def main() -> None:
    """Serve in this process until killed, printing the base URL first: benchmarks run the
    server in a process of its own so that it does not share the sender's interpreter."""
    import sys

    # Each request parses a few thousand dicts and lists that live until it is answered;
    # collected at the default threshold, they were scanned several times per request, which
    # made the server 5 µs per recipient instead of 3 on the machine the benchmark shares.
    gc.set_threshold(100_000, *gc.get_threshold()[1:])
    server = SendGridServer()
    server.keep_bodies = False
    print(server.host, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
