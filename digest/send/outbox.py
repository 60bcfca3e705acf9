"""The outbox transport: one ``.eml`` file per recipient, in a folder per issue.

Files are written under a temporary name and renamed, so a crash never leaves half a message.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.errors import MessageError
from email.message import EmailMessage
from pathlib import Path

from digest.errors import ProviderDown
from digest.send.message import serialise
from digest.send.transport import MessageWriter


def _utc_now() -> datetime:
    return datetime.now(UTC)


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


class OutboxTransport(MessageWriter):
    name = "outbox"
    concurrent = False
    refusal = ("", "outbox")

    def __init__(self, folder: Path, clock: Callable[[], datetime] = _utc_now) -> None:
        self.folder = folder
        self.clock = clock

    @staticmethod
    def issue_folder(outbox: Path, digest: str, number: int) -> Path:
        return outbox / digest / f"issue-{number:04d}"

    def write(self, items: Sequence[tuple[int, EmailMessage]]) -> Mapping[int, str]:
        """Write each (subscriber id, message) as the bytes SMTP would carry; returns the
        messages that cannot be written safely, with why, and raises ProviderDown if the disk
        refuses."""
        folder = self.folder
        refused: dict[int, str] = {}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for subscriber_id, message in items:
                try:
                    data = serialise(message)
                except (ValueError, MessageError) as err:
                    refused[subscriber_id] = f"cannot write the message: {err}"
                    continue
                to = _UNSAFE.sub("_", str(message["To"].addresses[0].addr_spec))
                name = (
                    f"{subscriber_id:06d}-{to}" if subscriber_id else f"{to}-{uuid.uuid4().hex[:8]}"
                )
                target = folder / f"{name}.eml"
                temporary = target.with_suffix(".eml.tmp")
                temporary.write_bytes(data)
                temporary.replace(target)
        except OSError as err:
            raise ProviderDown(
                f"cannot write to {folder}: {err.strerror}", where="outbox"
            ) from None
        return refused


def files_for(outbox: Path, subscriber_id: int, address: str) -> list[Path]:
    """The messages the outbox holds for one reader: their digests (``<id>-<address>.eml`` in
    each issue's folder) and single messages such as confirmations (``<address>-<8 hex>.eml``),
    named as :meth:`OutboxTransport.write` names them."""
    if not outbox.is_dir():
        return []
    to = _UNSAFE.sub("_", address).lower()
    digest_name = f"{subscriber_id:06d}-{to}.eml"
    single = re.compile(re.escape(to) + r"-[0-9a-f]{8}\.eml")
    return sorted(
        path
        for path in outbox.rglob("*.eml")
        if path.name.lower() == digest_name or single.fullmatch(path.name.lower())
    )
