"""Reading the bounce mailbox's messages: the shared corpus of real bounces (every file), our
own DSN and ARF samples, and who a report is about: only the delivery its signed token names."""

from __future__ import annotations

import json
from pathlib import Path

from digest.bounces import Kind, delivery_of, read_report
from digest.verp import HEADER, BounceTokens, return_path
from tests.conftest import DATA

TOKENS = BounceTokens("test-secret-key-not-for-production")
BOUNCE_ADDRESS = "bounces@northwind.example"


def sample(name: str, address: str, tokens: list[str] | None = None, header: bool = True) -> bytes:
    """One of our samples (tests/data/bounces) about ``address``, sent to the return path of
    the first of ``tokens``, the quoted original carrying each token in its header."""
    tokens = tokens or []
    raw = (DATA / "bounces" / name).read_text(encoding="utf-8")
    to = return_path(BOUNCE_ADDRESS, tokens[0]) if tokens else BOUNCE_ADDRESS
    lines = "\n".join(f"{HEADER}: {t}" for t in tokens) if header and tokens else "X-Mailer: x"
    text = raw.replace("@@RETURN_PATH@@", to).replace("@@ADDRESS@@", address)
    return text.replace("@@HEADER@@", lines).encode()


def test_every_corpus_bounce_names_the_addresses_its_detectors_name(corpus: Path) -> None:
    """All 117 files of shared/corpus/bounces: permanent failures name exactly the expected
    addresses, temporary ones are temporary, and the files no detector reads are no report."""
    folder = corpus / "bounces"
    expected: dict[str, tuple[set[str], set[str]]] = {}
    for entry in json.loads((folder / "expected.json").read_text()):
        permanent, temporary = expected.setdefault(entry["file"], (set(), set()))
        (temporary if entry["temporary"] else permanent).update(entry["addresses"])
    files = sorted((folder / "messages").iterdir())
    assert len(files) == 117
    hits, misses = 0, []
    for path in files:
        report = read_report(path.read_bytes())
        permanent, temporary = expected.get(path.name, (set(), set()))
        kind = Kind.BOUNCE if permanent else Kind.DEFERRED if temporary else Kind.NONE
        if report.kind is kind and report.addresses == (permanent or temporary):
            hits += 1
        else:
            misses.append((path.name, report.kind, sorted(report.addresses)))
        assert report.tokens == frozenset()  # none of ours: nobody is suppressed by these
    print(f"corpus bounces read as expected: {hits}/{len(files)}")
    assert misses == []


def test_a_permanent_dsn_names_its_delivery() -> None:
    token = TOKENS.token(4, 17)
    report = read_report(sample("dsn_permanent.eml", "ann.reader@example.com", [token]))
    assert report.kind is Kind.BOUNCE
    assert report.addresses == {"ann.reader@example.com"}
    assert delivery_of(report, TOKENS) == (4, 17)
    # Found in the return path alone (an MTA that quotes no headers), or the header alone.
    only_path = sample("dsn_permanent.eml", "a@example.com", [token], header=False)
    assert delivery_of(read_report(only_path), TOKENS) == (4, 17)
    only_header = sample("dsn_permanent.eml", "a@example.com", [token]).replace(
        return_path(BOUNCE_ADDRESS, token).encode(), BOUNCE_ADDRESS.encode()
    )
    assert delivery_of(read_report(only_header), TOKENS) == (4, 17)


def test_temporary_failures_complaints_and_the_rest() -> None:
    token = TOKENS.token(4, 17)
    assert read_report(sample("dsn_temporary.eml", "a@example.com", [token])).kind is Kind.DEFERRED
    complaint = read_report(sample("arf_complaint.eml", "a@example.com", [token]))
    assert complaint.kind is Kind.COMPLAINT and complaint.addresses == {"a@example.com"}
    assert delivery_of(complaint, TOKENS) == (4, 17)
    assert read_report(sample("arf_not_spam.eml", "a@example.com", [token])).kind is Kind.NONE
    assert read_report(sample("autoreply.eml", "a@example.com", [token])).kind is Kind.NONE
    assert read_report(b"\x00\xff not a message at all").kind is Kind.NONE
    assert read_report(b"").kind is Kind.NONE


def test_a_quoted_original_in_base64_still_names_its_delivery() -> None:
    import base64

    token = TOKENS.token(9, 2)
    headers = f"To: a@example.com\r\n{HEADER}: {token}\r\n\r\n".encode()
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@northwind.example\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b' boundary="b"\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n'
        b"Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; a@example.com\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n--b\r\nContent-Type: text/rfc822-headers\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(headers)
        + b"\r\n--b--\r\n"
    )
    report = read_report(raw)
    assert report.kind is Kind.BOUNCE and delivery_of(report, TOKENS) == (9, 2)


def test_only_a_valid_token_of_one_delivery_is_believed() -> None:
    mine = TOKENS.token(4, 17)
    forged = f"4-18-{mine.rsplit('-', 1)[1]}"  # the victim's ids with someone else's signature
    other_key = BounceTokens("attacker-secret").token(4, 18)
    for tokens in ([], [forged], [other_key], [mine, TOKENS.token(4, 18)]):
        report = read_report(sample("dsn_permanent.eml", "victim@example.com", tokens))
        assert report.kind is Kind.BOUNCE
        assert delivery_of(report, TOKENS) is None, tokens
    # A valid token among forged ones names its own delivery, whatever address is written.
    report = read_report(sample("dsn_permanent.eml", "victim@example.com", [mine, forged]))
    assert delivery_of(report, TOKENS) == (4, 17)
