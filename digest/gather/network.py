"""Where gather may connect: public addresses, and the private ones the config names.

A feed URL, a redirect, a WordPress page link or an article's og:image page can all point
inside the network gather runs in (an admin page on 127.0.0.1, a cloud metadata service on
169.254.169.254). So the check is made on the address actually connected to, when connecting,
in the connection pool's network backend: the host name is resolved once, each address is
vetted, and the socket is opened to the vetted address itself, never to the name again, so a
DNS answer that changes between the check and the connection (rebinding) cannot slip past.
Every spelling of an address (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``,
``localhost``) reaches the check as the address it resolves to, and every redirect hop opens
its own connection through the same backend.

``[gather] allow_private`` names hosts (compared with the URL's host name) and addresses or
networks (compared with the resolved address) that may be reached all the same.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Any

import httpcore
import httpx

from digest.errors import SourceError

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], list[str]]

NAT64 = IPv6Network("64:ff9b::/96")
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5)


class AddressRefused(SourceError):
    """gather will not connect there: the address is not public and not allowed by name."""


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries and reaches: IPv4-mapped (``::ffff:a.b.c.d``),
    NAT64 (``64:ff9b::/96``), 6to4 and Teredo."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def non_public(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one.

    ``is_global`` alone is not enough in every Python: it calls ``224.0.0.1``, ``::7f00:1``
    and ``64:ff9b::7f00:1`` global, and ``::ffff:127.0.0.1`` is not loopback to it.
    """
    if isinstance(address, IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None and (kind := non_public(inner)) is not None:
            return kind
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def _host_name(host: str) -> str:
    return host.strip().rstrip(".").lower()


def _spells(host: str, address: IPAddress) -> bool:
    """Whether ``host`` is ``address`` written out (so the message need not repeat it)."""
    try:
        return ip_address(host.strip("[]")) == address
    except ValueError:
        return False


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses only, plus the hosts and networks named in ``allow_private``."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPv4Network | IPv6Network, ...] = ()

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> AddressPolicy:
        """Entries as the config validated them: an address, a network, or a host name."""
        hosts: set[str] = set()
        networks: list[IPv4Network | IPv6Network] = []
        for entry in entries:
            try:
                networks.append(ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(_host_name(entry))
        return cls(frozenset(hosts), tuple(networks))

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why gather may not connect to ``address`` (which ``host`` resolved to), or None."""
        kind = non_public(address)
        if kind is None or _host_name(host) in self.hosts:
            return None
        forms: list[IPAddress] = [address]
        if isinstance(address, IPv6Address) and (inner := embedded_ipv4(address)) is not None:
            forms.append(inner)
        if any(form in network for form in forms for network in self.networks):
            return None
        shown = host if _spells(host, address) else f"{host} ({address})"
        return (
            f"refused to connect to {shown}: a {kind} address, and gather fetches public "
            "addresses only (name it in [gather] allow_private to allow it)"
        )


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's blocking backend, connecting only to addresses the policy allows."""

    def __init__(
        self,
        policy: AddressPolicy,
        resolver: Resolver = resolve,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = [ip_address(a) for a in self.resolver(host, port)]
        except (OSError, ValueError) as err:
            raise httpcore.ConnectError(f"cannot resolve {host}: {err}") from None
        refusals: list[str] = []
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            reason = self.policy.refusal(host, address)
            if reason is not None:
                refusals.append(reason)
                continue
            try:
                return self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as err:
                failure = err
        if failure is not None:
            raise failure
        raise AddressRefused(refusals[0] if refusals else f"{host} resolves to no address")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise AddressRefused(f"refused to connect to the local socket {path}")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport, its connection pool on :class:`GuardedBackend`.

    httpx 0.28 takes no network backend (encode/httpx#3749 proposes one), so the pool it built
    is replaced by the same pool on ours; the tests of this module fail if that stops working.
    No proxy is used: a proxy would resolve names where they cannot be vetted.
    """

    def __init__(self, policy: AddressPolicy, resolver: Resolver = resolve) -> None:
        super().__init__(trust_env=False)
        self.backend = GuardedBackend(policy, resolver)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=POOL_LIMITS.max_connections,
            max_keepalive_connections=POOL_LIMITS.max_keepalive_connections,
            keepalive_expiry=POOL_LIMITS.keepalive_expiry,
            network_backend=self.backend,
        )
