"""What one recipient's headers and bytes cost: a golden variant (tests/data/golden) sent to N
synthetic readers, as the SendGrid payload (built once per batch of 1000) and as the finished
messages the outbox and SMTP write (built and serialised one by one).

    python bench/header_bench.py [--readers 2000]

Prints wall and CPU time per recipient for each path.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digest.models import Variant
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient, messages
from digest.send.message import Envelope, list_id, serialise
from digest.send.sendgrid import SendGridOptions, build_payload
from subscribers.tokens import TokenSigner

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden"
NOW = datetime(2026, 11, 23, 7, tzinfo=UTC)
PUBLIC_URL = "https://digest.bench.example"


def batch_of(readers: int) -> OutgoingBatch:
    sender = "digest@bench.example"
    fields = Envelope.__dataclass_fields__
    extra = {"feedback_id": "weekly-7:weekly:digest:bench", "message_key": "0a1b2c3d4e5f"}
    envelope = Envelope(
        "Bench",
        sender,
        None,
        list_id("Weekly", "weekly", sender),
        "unsubscribe@bench.example",
        **{k: v for k, v in extra.items() if k in fields},  # the same script runs on main
    )
    name = "backend+ai-ml+frontend"
    variant = Variant(
        frozenset(name.split("+")),
        (GOLDEN / f"{name}.subject.txt").read_text(encoding="utf-8"),
        (GOLDEN / f"{name}.html").read_text(encoding="utf-8"),
        (GOLDEN / f"{name}.text.txt").read_text(encoding="utf-8"),
    )
    ids = list(range(1, readers + 1))
    tokens = TokenSigner("bench-secret").manage_tokens(ids, NOW)
    recipients = tuple(
        Recipient(i, f"reader{i}@example.com", f"Reader {i}", "Reader", token)
        for i, token in zip(ids, tokens, strict=True)
    )
    compiled = CompiledVariant.of(variant, PUBLIC_URL)
    return OutgoingBatch(1, "weekly", 7, envelope, compiled, recipients, PUBLIC_URL)


def timed(label: str, readers: int, run: object) -> None:
    assert callable(run)
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{label:<34} {readers:>6} recipients  {wall * 1e6 / readers:8.1f} µs wall"
        f"  {cpu * 1e6 / readers:8.1f} µs CPU per recipient"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=2000)
    readers = parser.parse_args().readers
    batch = batch_of(readers)
    options = SendGridOptions()

    def payloads() -> None:
        for start in range(0, readers, 1000):
            part = batch.recipients[start : start + 1000]
            build_payload(OutgoingBatch(**{**batch.__dict__, "recipients": part}), options)

    def finished() -> None:
        built, failed = messages(batch, NOW)
        assert not failed
        for _, message in built:
            serialise(message)

    timed("SendGrid payload (per batch)", readers, payloads)
    timed("outbox/SMTP message bytes", readers, finished)


if __name__ == "__main__":
    main()
