"""CSRF protection and a per-client rate limit for the public pages.

CSRF: a random value in an HttpOnly, SameSite=Strict cookie, and its HMAC in every form; a
POST passes when the form's value is the HMAC of the cookie's. A page on another site can make a
browser send our cookie but cannot read it, so it cannot forge the form field.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import itertools
import secrets
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

CSRF_COOKIE = "digest_csrf"
CSRF_FIELD = "csrf"


class Csrf:
    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"digest.csrf:" + secret_key.encode()).digest()

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(24)

    def field_for(self, cookie: str) -> str:
        return hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field:
            return False
        return hmac.compare_digest(self.field_for(cookie), field)


def client_key(host: str) -> str:
    """The key a client's address counts under in the rate limits. An IPv6 client counts by
    its /64: one home line or server is given at least that many addresses and may send from
    any of them, so counting each address alone let one client sign up without limit. An
    IPv4 address written as IPv6 (``::ffff:a.b.c.d``) counts as the IPv4 address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimit:
    """At most ``limit`` events per ``window`` per key (a client address, an account);
    thread-safe. :meth:`allow` counts every call; :meth:`blocked` and :meth:`hit` let a caller
    count only some events (failed logins) while refusing all of them once over the limit.

    At most ``max_keys`` keys are remembered: past that, the keys idle for a window are
    forgotten and, if that is not enough, the keys first seen, down to three quarters of the
    bound. A flood from more clients than that can then go unlimited; the alternative is a
    memory that grows with every address an attacker can send from."""

    def __init__(
        self,
        limit: int,
        window: timedelta,
        clock: Callable[[], datetime],
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._events: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._events)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        return events

    def _record(self, events: deque[datetime], now: datetime) -> None:
        events.append(now)
        if len(self._events) > self.max_keys:
            self._forget(now)

    def _forget(self, now: datetime) -> None:
        """Make room once for a quarter of ``max_keys`` new keys: pruning on every call past
        the bound cost a pass over all the keys per request."""
        kept = {k: v for k, v in self._events.items() if v and now - v[-1] < self.window}
        room = self.max_keys * 3 // 4
        if len(kept) > room:
            kept = dict(itertools.islice(kept.items(), len(kept) - room, None))
        self._events = kept

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            events = self._recent(key, now)
            if len(events) >= self.limit:
                return False
            self._record(events, now)
            return True

    def blocked(self, key: str) -> bool:
        """Only looks: a key never counted is not remembered (each login names an account
        of the client's choosing)."""
        now = self.clock()
        with self._lock:
            return key in self._events and len(self._recent(key, now)) >= self.limit

    def hit(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            self._record(self._recent(key, now), now)


class LoginGuard:
    """Failed logins, counted so that guessing is slow and the editor is never locked out.

    Three counts, each of ``limit`` failures per ``window``:

    * per client address: one machine guessing (any accounts) is stopped;
    * per account, for browsers the editor has not logged in from: guessing one account from
      many addresses is stopped too, after ``limit`` guesses in all;
    * per known device (a browser holding the device cookie a successful login leaves,
      :meth:`digest.web.session.Sessions.remember_device`): its own failures only.

    A per-account count alone would let strangers lock the editor out by failing on purpose
    from many addresses; keying it by (account, client) instead would let them guess
    ``limit`` times per address they own. With the device cookie the account count stays
    strict for strangers while the editor's own browser is judged by its own failures: a
    stranger cannot make the cookie (it is signed), and a stolen one buys ``limit`` guesses
    per window. The cost: during an attack, the editor on a browser they never logged in from
    waits out the window like everyone else.
    """

    def __init__(self, limit: int, window: timedelta, clock: Callable[[], datetime]) -> None:
        self.window = window
        self.per_client = RateLimit(limit, window, clock)
        self.per_account = RateLimit(limit, window, clock)
        self.per_device = RateLimit(limit, window, clock)

    def refused(self, client: str, account: str, device: str | None) -> bool:
        if device is not None:
            return self.per_device.blocked(device)
        return self.per_client.blocked(client) or self.per_account.blocked(account)

    def failed(self, client: str, account: str, device: str | None) -> None:
        if device is not None:
            self.per_device.hit(device)
            return
        self.per_client.hit(client)
        self.per_account.hit(account)
