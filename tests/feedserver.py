"""A local HTTP server that misbehaves the ways real feed servers do, for gather tests and the
gather benchmark. It listens on 127.0.0.1 (or ::1) only and stops with the test; gather reaches
it only where the test's config names it in ``[gather] allow_private``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HTTP_DATA = Path(__file__).parent / "data" / "http"
LAST_MODIFIED = formatdate(1_763_000_000, usegmt=True)

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    server: FeedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read the request log, not stderr."""

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle()  # the tests of limits hang up on purpose

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.hits[path] += 1
        self.server.requests.append((path, dict(self.headers)))
        route = self.server.routes.get(path) or self.server.routes.get(
            path.rsplit("/", 1)[0] + "/*"
        )
        if route is None:
            self.send_bytes(404, b"not found", "text/plain")
        else:
            route(self)

    def send_bytes(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def send_feed(self, body: bytes, content_type: str = "application/rss+xml") -> None:
        """With validators; answers 304 when the client already has this body."""
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_bytes(200, body, content_type, ETag=etag, Last_Modified=LAST_MODIFIED)


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, 0), Handler)
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []

    @property
    def base(self) -> str:
        host = str(self.server_address[0])
        return f"http://{f'[{host}]' if ':' in host else host}:{self.server_address[1]}"


def misbehaving_routes(server: FeedServer, slow_seconds: float = 1.5) -> None:
    """The standard set: a good feed, slow, huge, redirect loop, 500s, HTML, a bomb, WordPress."""
    feed = (HTTP_DATA / "feed.xml").read_bytes()
    flaky_calls = Counter[str]()

    def good(h: Handler) -> None:
        h.send_feed(feed)

    def slow(h: Handler) -> None:
        time.sleep(slow_seconds)
        h.send_feed(feed)

    def huge(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        chunk = b"<!-- padding -->" * 4096
        try:
            for _ in range(2000):  # at most about 128 MB, stops when the client hangs up
                h.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return

    def loop(h: Handler) -> None:
        h.send_response(302)
        h.send_header("Location", "/loop")
        h.send_header("Content-Length", "0")
        h.end_headers()

    def error(h: Handler) -> None:
        h.send_bytes(500, b"boom", "text/plain", Retry_After="0")

    def flaky(h: Handler) -> None:
        flaky_calls["flaky"] += 1
        if flaky_calls["flaky"] == 1:
            h.send_bytes(503, b"busy", "text/plain", Retry_After="0")
        else:
            h.send_feed(feed)

    def page(h: Handler) -> None:
        h.send_bytes(200, (HTTP_DATA / "page.html").read_bytes(), "text/html; charset=utf-8")

    def bomb(h: Handler) -> None:
        h.send_bytes(200, (HTTP_DATA / "bomb.xml").read_bytes(), "application/xml")

    def no_images(h: Handler) -> None:
        h.send_feed((HTTP_DATA / "no_images.xml").read_bytes())

    def article(h: Handler) -> None:
        if h.path.endswith("/1"):
            page(h)
        else:
            h.send_bytes(200, b"<!doctype html><title>No image here</title>", "text/html")

    def wordpress(h: Handler) -> None:
        page = int(parse_qs(urlsplit(h.path).query).get("page", ["1"])[0])
        posts = [
            {
                "id": page * 10 + i,
                "date_gmt": f"2026-11-1{page}T0{i}:00:00",
                "guid": {"rendered": f"{server.base}/?p={page * 10 + i}"},
                "link": f"{server.base}/wp/post-{page}-{i}/",
                "title": {"rendered": f"WordPress post {page}.{i}"},
                "excerpt": {"rendered": "<p>An excerpt from the REST API.</p>"},
                "content": {"rendered": "<p>Body.</p>"},
                "_embedded": {"wp:term": [[{"taxonomy": "category", "name": "Backend"}]]},
            }
            for i in range(2)
        ]
        h.send_bytes(200, json.dumps(posts).encode(), "application/json", X_WP_TotalPages="2")

    server.routes.update(
        {
            "/feed.xml": good,
            "/slow.xml": slow,
            "/huge.xml": huge,
            "/loop": loop,
            "/error.xml": error,
            "/flaky.xml": flaky,
            "/page.html": page,
            "/bomb.xml": bomb,
            "/no-images.xml": no_images,
            "/article/*": article,
            "/wp-json/wp/v2/posts": wordpress,
        }
    )


@contextmanager
def running(
    setup: Callable[[FeedServer], None] = misbehaving_routes, host: str = "127.0.0.1"
) -> Iterator[FeedServer]:
    server = FeedServer(host)
    setup(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
