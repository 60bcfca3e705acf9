"""Editor sessions and the login rate limit, against a fixed clock."""

from __future__ import annotations

from datetime import timedelta

from digest.web.security import RateLimit
from digest.web.session import Sessions, fingerprint
from tests.conftest import DEMO_NOW, FixedClock

HASH = "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhcw"


def sessions(clock: FixedClock, key: str = "key-one", hours: int = 12) -> Sessions:
    return Sessions(key, timedelta(hours=hours), clock)


def test_a_session_names_its_editor_until_it_expires() -> None:
    clock = FixedClock(DEMO_NOW)
    cookie = sessions(clock).issue("ed@example.com", HASH, "secret")
    claim = sessions(clock).read(cookie)
    assert claim is not None and claim.email == "ed@example.com"
    assert claim.issued_at == DEMO_NOW
    clock.now = DEMO_NOW + timedelta(hours=12) - timedelta(seconds=1)
    assert sessions(clock).read(cookie) is not None
    clock.now = DEMO_NOW + timedelta(hours=12)
    assert sessions(clock).read(cookie) is None


def test_tampered_foreign_and_future_cookies_are_refused() -> None:
    clock = FixedClock(DEMO_NOW)
    cookie = sessions(clock).issue("ed@example.com", HASH, "secret")
    payload, _, signature = cookie.rpartition(".")
    assert sessions(clock).read(payload + "." + signature[::-1]) is None
    assert sessions(clock, key="another-key").read(cookie) is None
    assert sessions(clock).read(None) is None and sessions(clock).read("") is None
    assert sessions(clock).read("garbage") is None
    clock.now = DEMO_NOW - timedelta(hours=1)  # a cookie from the future: a clock or a forger
    assert sessions(clock).read(cookie) is None


def test_a_new_password_ends_older_sessions() -> None:
    clock = FixedClock(DEMO_NOW)
    store = sessions(clock)
    claim = store.read(store.issue("ed@example.com", HASH, "secret"))
    assert claim is not None
    assert store.valid_for(claim, HASH)
    assert not store.valid_for(claim, HASH.replace("aGFz", "bGFz"))
    assert fingerprint(HASH) not in HASH  # the cookie does not carry the hash itself


def test_rate_limit_counts_only_hits_and_forgets_after_the_window() -> None:
    clock = FixedClock(DEMO_NOW)
    limit = RateLimit(3, timedelta(minutes=15), clock)
    for _ in range(3):
        assert not limit.blocked("client")
        limit.hit("client")
    assert limit.blocked("client")
    assert not limit.blocked("another client")
    clock.now += timedelta(minutes=14)
    assert limit.blocked("client")
    clock.now += timedelta(minutes=1)
    assert not limit.blocked("client")


def test_allow_counts_every_call() -> None:
    clock = FixedClock(DEMO_NOW)
    limit = RateLimit(2, timedelta(minutes=1), clock)
    assert [limit.allow("k") for _ in range(3)] == [True, True, False]
    clock.now += timedelta(minutes=1)
    assert limit.allow("k")
