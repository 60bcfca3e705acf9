"""Reading a source's bytes: files from disk, URLs over HTTP with limits and conditional GET."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import httpx

from digest.errors import SourceError
from digest.gather.network import AddressPolicy, GuardedTransport
from digest.models import Validators

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Fetched:
    body: bytes
    validators: Validators
    not_modified: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


class Fetcher(Protocol):
    def fetch(self, location: str, validators: Validators) -> Fetched: ...


@dataclass(frozen=True)
class FetchLimits:
    timeout_seconds: float = 20.0
    max_bytes: int = 10_000_000
    max_redirects: int = 5
    retries: int = 2
    user_agent: str = "digest-generator"
    allow_private: tuple[str, ...] = ()
    """Hosts, addresses and networks reachable although not public (:mod:`.network`)."""


def read_file(location: str, max_bytes: int) -> bytes:
    path = Path(unquote(urlsplit(location).path))
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(f"file is {size} bytes, over the limit of {max_bytes}")
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise SourceError(f"is a folder, not a file: {path}") from None
    except PermissionError:
        raise SourceError(f"permission denied: {path}") from None


class SourceFetcher:
    """Fetches ``file://`` locations from disk and ``http(s)://`` ones with ``client``.

    The client is passed in so tests can point it at a local server and the CLI can share one
    connection pool across sources. Safe to share between threads: requests to one host wait
    for each other, so a site never sees more than one request from us at a time.
    """

    def __init__(
        self,
        client: httpx.Client,
        limits: FetchLimits,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.limits = limits
        self.sleep = sleep
        self._hosts: dict[str, threading.Lock] = {}
        self._hosts_lock = threading.Lock()

    @contextmanager
    def _one_at_a_time(self, location: str) -> Iterator[None]:
        host = (urlsplit(location).hostname or "").lower()
        with self._hosts_lock:
            lock = self._hosts.setdefault(host, threading.Lock())
        with lock:
            yield

    def fetch(self, location: str, validators: Validators) -> Fetched:
        scheme = urlsplit(location).scheme
        if scheme == "file":
            return Fetched(read_file(location, self.limits.max_bytes), Validators())
        if scheme not in ("http", "https"):
            raise SourceError(f"unsupported URL scheme {scheme!r}")
        with self._one_at_a_time(location):
            return self._with_retries(location, validators)

    def _with_retries(self, location: str, validators: Validators) -> Fetched:
        for attempt in range(self.limits.retries + 1):
            try:
                return self._get(location, validators)
            except _Retryable as err:
                if attempt == self.limits.retries:
                    tries = f" (after {attempt + 1} tries)" if attempt else ""
                    raise SourceError(err.reason + tries) from None
                delay = err.retry_after if err.retry_after is not None else 2.0**attempt
                self.sleep(min(30.0, delay))
        raise AssertionError("unreachable")

    def _get(self, location: str, validators: Validators) -> Fetched:
        headers = {"User-Agent": self.limits.user_agent, "Accept-Encoding": "gzip, deflate"}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        try:
            with self.client.stream("GET", location, headers=headers) as response:
                if response.status_code == 304:
                    return Fetched(b"", validators, not_modified=True)
                if response.status_code in RETRYABLE_STATUS:
                    raise _Retryable(
                        f"HTTP {response.status_code} {response.reason_phrase}",
                        _retry_after(response.headers.get("Retry-After")),
                    )
                if response.status_code >= 400:
                    raise SourceError(f"HTTP {response.status_code} {response.reason_phrase}")
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.limits.max_bytes:
                    raise SourceError(
                        f"body of {declared} bytes is over the limit of {self.limits.max_bytes}"
                    )
                return Fetched(
                    self._body(response),
                    Validators(response.headers.get("ETag"), response.headers.get("Last-Modified")),
                    headers=dict(response.headers),
                )
        except httpx.TooManyRedirects:
            raise SourceError(f"more than {self.limits.max_redirects} redirects") from None
        except httpx.TimeoutException:
            raise _Retryable("timed out", None) from None
        except httpx.TransportError as err:
            raise _Retryable(f"network error: {err}", None) from None

    def _body(self, response: httpx.Response) -> bytes:
        """The decoded body, refused as soon as it passes ``max_bytes`` or the timeout."""
        chunks: Iterable[bytes]
        if response.is_stream_consumed:  # built in memory (a mock transport): already decoded
            encoding, chunks = "", [response.content]
        else:
            encoding, chunks = response.headers.get("Content-Encoding", ""), response.iter_raw()
        decoder = BoundedDecoder(encoding, self.limits.max_bytes)
        body = bytearray()
        deadline = time.monotonic() + self.limits.timeout_seconds
        for chunk in chunks:
            body += decoder.feed(chunk)
            if time.monotonic() > deadline:
                raise _Retryable(f"body not complete after {self.limits.timeout_seconds:g} s", None)
        body += decoder.flush()
        return bytes(body)


class BoundedDecoder:
    """Undoes gzip or deflate ourselves, never inflating past ``max_bytes``.

    httpx would inflate each network chunk whole before we could count it, and 64 KB of gzip
    can hold 64 MB (a compression bomb), so the raw bytes are read and inflated here with
    zlib's ``max_length``: memory stays within ``max_bytes`` plus one chunk.
    """

    def __init__(self, content_encoding: str, max_bytes: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise SourceError(
                f"unsupported Content-Encoding {content_encoding!r} (we ask for gzip or deflate)"
            )
        self.coding = codings[0] if codings else None
        # wbits | 32: a gzip or a zlib header, whichever the body has.
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 32) if self.coding else None
        self.max_bytes = max_bytes
        self.size = 0

    def feed(self, data: bytes) -> bytes:
        if self._inflater is None:
            return self._counted(data)
        room = self.max_bytes - self.size
        try:
            out = self._inflater.decompress(data, room + 1)
        except zlib.error:
            if self.coding != "deflate" or self.size:
                raise SourceError(f"body is not valid {self.coding} data") from None
            # Some servers send raw deflate without the zlib header "deflate" promises.
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            self.coding = "raw deflate"
            return self.feed(data)
        return self._counted(out)

    def flush(self) -> bytes:
        return self._counted(self._inflater.flush()) if self._inflater else b""

    def _counted(self, out: bytes) -> bytes:
        self.size += len(out)
        if self.size > self.max_bytes:
            raise SourceError(f"body over the limit of {self.max_bytes} bytes")
        return out


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def http_client(limits: FetchLimits) -> httpx.Client:
    """The client gather fetches with: every connection, redirects included, goes through the
    address guard of :mod:`digest.gather.network`."""
    return httpx.Client(
        transport=GuardedTransport(AddressPolicy.allowing(limits.allow_private)),
        timeout=httpx.Timeout(limits.timeout_seconds, connect=min(10.0, limits.timeout_seconds)),
        follow_redirects=True,
        max_redirects=limits.max_redirects,
    )
