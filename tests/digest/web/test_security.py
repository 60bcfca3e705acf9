"""The rate limits' keys and memory, against a fixed clock (CSRF is tested over HTTP in
test_pages.py)."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from digest.web.security import RateLimit, client_key
from tests.conftest import DEMO_NOW, FixedClock

ipv6 = st.integers(min_value=0, max_value=2**128 - 1).map(ipaddress.IPv6Address)


@given(ipv6, st.integers(min_value=0, max_value=2**64 - 1))
def test_an_ipv6_client_counts_by_its_64_whatever_address_of_it_it_sends_from(
    address: ipaddress.IPv6Address, host_part: int
) -> None:
    sibling = ipaddress.IPv6Address((int(address) >> 64 << 64) | host_part)
    if address.ipv4_mapped is None is sibling.ipv4_mapped:  # ::ffff:0:0/96 lies in ::/64
        assert client_key(str(address)) == client_key(str(sibling))
        assert client_key(str(address)) == str(ipaddress.IPv6Network((address, 64), strict=False))


@given(ipv6, ipv6)
def test_ipv6_clients_of_other_64s_count_apart(
    one: ipaddress.IPv6Address, other: ipaddress.IPv6Address
) -> None:
    if int(one) >> 64 != int(other) >> 64 and one.ipv4_mapped is None is other.ipv4_mapped:
        assert client_key(str(one)) != client_key(str(other))


def test_ipv4_counts_by_its_address_also_when_written_as_ipv6() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key("::ffff:cb00:7107") == "203.0.113.7"
    assert client_key("203.0.113.8") != client_key("203.0.113.7")
    # Spellings of one IPv6 address are one key.
    assert client_key("2001:DB8:0:0:1::1") == client_key("2001:db8::1:0:0:1") == "2001:db8::/64"


def test_what_is_not_an_address_is_its_own_key() -> None:
    for host in ("unknown", "testclient", "", "2001:db8::g", "a" * 300):
        assert client_key(host) == host


def test_looking_remembers_no_key() -> None:
    """A login looks up the account it names: names of the client's choosing must not fill
    the memory."""
    limit = RateLimit(3, timedelta(minutes=15), FixedClock(DEMO_NOW))
    for n in range(5_000):
        assert not limit.blocked(f"account-{n}")
    assert len(limit) == 0


class CountingLimit(RateLimit):
    forgotten = 0

    def _forget(self, now: datetime) -> None:
        self.forgotten += 1
        super()._forget(now)


def test_a_flood_of_new_clients_is_bounded_and_pruned_once_per_quarter_of_the_bound() -> None:
    clock = FixedClock(DEMO_NOW)
    limit = CountingLimit(2, timedelta(minutes=10), clock, max_keys=400)
    for n in range(10_000):
        assert limit.allow(f"client-{n}")
        assert len(limit) <= 400
    # Each pruning makes room for 100 new keys: about (10,000 - 400) / 100 of them, where
    # pruning on every call past the bound ran 9,600 times.
    assert limit.forgotten <= (10_000 - 400) // 100 + 1


def test_idle_clients_are_forgotten_before_active_ones_and_the_active_keep_their_count() -> None:
    clock = FixedClock(DEMO_NOW)
    limit = RateLimit(2, timedelta(minutes=10), clock, max_keys=100)
    for n in range(60):
        limit.allow(f"idle-{n}")
    clock.now += timedelta(minutes=9)
    assert limit.allow("active") and limit.allow("active") and not limit.allow("active")
    clock.now += timedelta(minutes=2)  # the idle ones' window is over; the active one's is not
    for n in range(50):
        limit.allow(f"new-{n}")
    assert len(limit) <= 100
    assert not limit.allow("active")  # still at its limit: not forgotten
