"""gather reaches no address inside its own network unless [gather] allow_private names it.

Real servers on 127.0.0.1 and ::1 stand for the internal services; each refusal is checked on
the server's own request log (nothing arrived), each allowance on the body fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import httpcore
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.app import gathering
from digest.app.wiring import Project
from digest.config import load_config
from digest.errors import ConfigError
from digest.gather import GatherSettings, SourceJob, collect
from digest.gather.fetch import FetchLimits, SourceFetcher, http_client
from digest.gather.network import (
    AddressPolicy,
    AddressRefused,
    GuardedBackend,
    GuardedTransport,
    non_public,
)
from digest.gather.topics import TopicMapping
from digest.models import Validators
from tests.feedserver import FeedServer, Handler, misbehaving_routes, running

REFUSED = "gather fetches public addresses only (name it in [gather] allow_private"


@pytest.fixture(scope="module")
def v4() -> Iterator[FeedServer]:
    def setup(server: FeedServer) -> None:
        misbehaving_routes(server)

        def to_ip(h: Handler) -> None:
            h.send_response(302)
            h.send_header("Location", f"http://127.0.0.1:{server.server_address[1]}/feed.xml")
            h.send_header("Content-Length", "0")
            h.end_headers()

        def og_feed(h: Handler) -> None:
            article = f"http://127.0.0.1:{server.server_address[1]}/article/1"
            h.send_feed(
                b'<?xml version="1.0"?><rss version="2.0"><channel><title>og</title><item>'
                b"<title>Its image is on the page</title><link>" + article.encode() + b"</link>"
                b"</item></channel></rss>"
            )

        server.routes["/to-ip"] = to_ip
        server.routes["/og-feed.xml"] = og_feed

    with running(setup) as server:
        yield server


@pytest.fixture(scope="module")
def v6() -> Iterator[FeedServer]:
    with running(host="::1") as server:
        yield server


def fetch(url: str, *allow: str) -> bytes:
    limits = FetchLimits(allow_private=allow, retries=0, timeout_seconds=5)
    with http_client(limits) as client:
        return SourceFetcher(client, limits).fetch(url, Validators()).body


def spellings(port: int) -> dict[str, str]:
    """127.0.0.1 as a URL may spell it."""
    return {
        "dotted": f"http://127.0.0.1:{port}/feed.xml",
        "decimal": f"http://2130706433:{port}/feed.xml",
        "hex": f"http://0x7f.1:{port}/feed.xml",
        "short": f"http://127.1:{port}/feed.xml",
        "localhost": f"http://localhost:{port}/feed.xml",
        "mapped-v6": f"http://[::ffff:127.0.0.1]:{port}/feed.xml",
        "mapped-v6-hex": f"http://[::ffff:7f00:1]:{port}/feed.xml",
    }


@pytest.mark.parametrize(
    "spelling", ["dotted", "decimal", "hex", "short", "localhost", "mapped-v6", "mapped-v6-hex"]
)
def test_every_spelling_of_loopback_is_refused_by_default(v4: FeedServer, spelling: str) -> None:
    before = len(v4.requests)
    with pytest.raises(AddressRefused) as refused:
        fetch(spellings(v4.server_address[1])[spelling])
    assert "a loopback address" in str(refused.value) and REFUSED in str(refused.value)
    assert len(v4.requests) == before


@pytest.mark.parametrize(
    "spelling", ["dotted", "decimal", "hex", "short", "localhost", "mapped-v6", "mapped-v6-hex"]
)
def test_every_spelling_is_fetched_when_the_address_is_named(v4: FeedServer, spelling: str) -> None:
    assert b"<rss" in fetch(spellings(v4.server_address[1])[spelling], "127.0.0.1")


def test_ipv6_loopback_is_refused_and_allowed_by_its_own_name(v6: FeedServer) -> None:
    url = f"http://[::1]:{v6.server_address[1]}/feed.xml"
    with pytest.raises(AddressRefused, match="refused to connect to ::1: a loopback address"):
        fetch(url)
    with pytest.raises(AddressRefused):
        fetch(url, "127.0.0.1")  # naming the IPv4 loopback does not open the IPv6 one
    assert not v6.requests
    assert b"<rss" in fetch(url, "::1")
    assert b"<rss" in fetch(url, "::/127")


def test_the_unspecified_address_is_refused(v4: FeedServer) -> None:
    """0.0.0.0 reaches the local machine on Linux."""
    with pytest.raises(AddressRefused, match="unspecified"):
        fetch(f"http://0:{v4.server_address[1]}/feed.xml")


def test_a_redirect_to_an_internal_address_is_refused_at_that_hop(v4: FeedServer) -> None:
    """localhost is allowed by name, the address it redirects to is not: the second hop is
    checked on its own."""
    port = v4.server_address[1]
    before = v4.hits["/feed.xml"]
    with pytest.raises(AddressRefused, match=r"refused to connect to 127\.0\.0\.1"):
        fetch(f"http://localhost:{port}/to-ip", "localhost")
    assert v4.hits["/to-ip"] >= 1 and v4.hits["/feed.xml"] == before
    assert b"<rss" in fetch(f"http://localhost:{port}/to-ip", "localhost", "127.0.0.1")


def test_a_name_resolving_to_loopback_is_refused_and_the_vetted_address_is_the_one_dialled(
    v4: FeedServer,
) -> None:
    """DNS is the process boundary: a resolver stands for it. The connection goes to the
    address that was checked, never to the name again (DNS rebinding)."""
    port = v4.server_address[1]
    answers = {"feeds.rebind.test": ["127.0.0.1"]}

    def resolver(host: str, _port: int) -> list[str]:
        return answers[host]

    def client(policy: AddressPolicy) -> httpx.Client:
        return httpx.Client(transport=GuardedTransport(policy, resolver))

    url = f"http://feeds.rebind.test:{port}/feed.xml"
    limits = FetchLimits(retries=0)
    with pytest.raises(AddressRefused, match=r"feeds\.rebind\.test \(127\.0\.0\.1\): a loopback"):
        SourceFetcher(client(AddressPolicy()), limits).fetch(url, Validators())
    for allowed in (["127.0.0.0/8"], ["feeds.rebind.test"]):
        fetched = SourceFetcher(client(AddressPolicy.allowing(allowed)), limits)
        assert b"<rss" in fetched.fetch(url, Validators()).body


class Dialled(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    def connect_tcp(self, host: str, port: int, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        self.hosts.append(host)
        raise httpcore.ConnectError("stop here")


def test_only_public_answers_are_dialled_and_by_address() -> None:
    dialled = Dialled()
    backend = GuardedBackend(
        AddressPolicy(), lambda host, port: ["127.0.0.1", "93.184.215.14", "10.1.2.3"], dialled
    )
    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp("mixed.example", 443)
    assert dialled.hosts == ["93.184.215.14"]


def test_an_unresolvable_name_is_a_network_error_not_a_refusal() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(httpcore.ConnectError, match=r"cannot resolve nowhere\.test"):
        GuardedBackend(AddressPolicy(), resolver).connect_tcp("nowhere.test", 80)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address to refuse, not a bind)
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),  # reserved 240/4: Python files it with the private ones
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated
    ],
)
def test_what_counts_as_not_public(address: str, kind: str) -> None:
    assert non_public(ip_address(address)) == kind


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert non_public(ip_address(address)) is None


NON_PUBLIC_V4 = st.one_of(
    st.integers(int(IPv4Address("127.0.0.0")), int(IPv4Address("127.255.255.255"))),
    st.integers(int(IPv4Address("10.0.0.0")), int(IPv4Address("10.255.255.255"))),
    st.integers(int(IPv4Address("169.254.0.0")), int(IPv4Address("169.254.255.255"))),
    st.integers(int(IPv4Address("192.168.0.0")), int(IPv4Address("192.168.255.255"))),
).map(IPv4Address)


@given(NON_PUBLIC_V4)
def test_no_ipv6_wrapping_makes_a_private_ipv4_address_public(v4: IPv4Address) -> None:
    wrapped = [
        IPv6Address(f"::ffff:{v4}"),
        IPv6Address(int(IPv6Address("64:ff9b::")) | int(v4)),
        IPv6Address((0x2002 << 112) | (int(v4) << 80)),
    ]
    assert non_public(v4) is not None
    for address in wrapped:
        assert non_public(address) is not None, address
        assert AddressPolicy().refusal(str(address), address) is not None


def write_config(folder: Path, base: str, allow: str | None) -> Path:
    feed = folder / "local.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Local</title><item>'
        "<title>From a file</title><link>https://blog.example/1</link></item></channel></rss>",
        encoding="utf-8",
    )
    gather = f"[gather]\nallow_private = [{allow}]\n" if allow is not None else ""
    path = folder / "digest.toml"
    path.write_text(
        f"""
[site]
name = "SSRF"
url = "https://ssrf.example"
public_url = "http://localhost:8000"
postal_address = "1 Road"

[[topics]]
slug = "all"
name = "All"
sources = [
  {{ name = "internal", url = "{base}/feed.xml" }},
  {{ name = "local file", url = "local.xml" }},
]

[[digests]]
slug = "weekly"
name = "Weekly"

[sending]
from = "digest@ssrf.example"

{gather}""",
        encoding="utf-8",
    )
    return path


def test_gather_names_the_refused_source_and_stores_the_local_file(
    v4: FeedServer, tmp_path: Path
) -> None:
    """A project made by `digest init` reads files: the guard leaves them alone."""
    project = Project.open(load_config(write_config(tmp_path, v4.base, None), {}))
    report = gathering.gather_sources(project)
    errors = {s.job.name: s.error or "" for s in report.failed}
    assert list(errors) == ["internal"] and REFUSED in errors["internal"]
    assert report.new == 1


def test_gather_fetches_what_the_setting_names(v4: FeedServer, tmp_path: Path) -> None:
    project = Project.open(load_config(write_config(tmp_path, v4.base, '"127.0.0.1"'), {}))
    report = gathering.gather_sources(project)
    assert not report.failed and report.new == 4


@pytest.mark.parametrize(
    ("entry", "index"),
    [('"10.0.0.0/33"', 1), ('"http://feeds.internal"', 1), ('"*.internal"', 1), ('"999.1.1.1"', 1)],
)
def test_a_malformed_entry_names_its_key(tmp_path: Path, entry: str, index: int) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9", f'"127.0.0.1", {entry}')
    with pytest.raises(ConfigError) as error:
        load_config(path, {})
    message = str(error.value)
    assert f"gather.allow_private[{index}]: expected an IP address" in message
    assert entry.strip('"') in message


def test_valid_entries_load(tmp_path: Path) -> None:
    allow = '"127.0.0.1", "::1", "10.0.0.0/8", "feeds.internal", "Feeds.Example.COM."'
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9", allow), {})
    assert config.gather.allow_private == [
        "127.0.0.1",
        "::1",
        "10.0.0.0/8",
        "feeds.internal",
        "feeds.example.com.",
    ]


def test_an_og_image_page_inside_is_not_fetched(v4: FeedServer) -> None:
    """The feed is allowed by name (localhost); its article lives at 127.0.0.1, which is not:
    the post is kept, without the page's og:image, and the page was never requested."""
    feed = f"http://localhost:{v4.server_address[1]}/og-feed.xml"
    limits = FetchLimits(allow_private=("localhost",), retries=0)
    job = SourceJob("og", feed, TopicMapping.one_topic("all"))
    settings = GatherSettings(og_image=True)
    before = v4.hits["/article/1"]
    with http_client(limits) as client:
        fetcher = SourceFetcher(client, limits)
        outcome, posts, _ = collect(job, fetcher, Validators(), settings, datetime.now(UTC))
    assert outcome.ok and len(posts) == 1 and posts[0].image is None
    assert v4.hits["/article/1"] == before
