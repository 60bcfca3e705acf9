"""The outbox transport: one ``.eml`` file per recipient, in a folder per issue.

Files are written under a temporary name and renamed, so a crash never leaves half a message.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from digest.errors import ProviderDown
from digest.send.batch import OutgoingBatch, messages


def _utc_now() -> datetime:
    return datetime.now(UTC)


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


class OutboxTransport:
    name = "outbox"
    concurrent = False

    def __init__(self, folder: Path, clock: Callable[[], datetime] = _utc_now) -> None:
        self.folder = folder
        self.clock = clock

    @staticmethod
    def issue_folder(outbox: Path, digest: str, number: int) -> Path:
        return outbox / digest / f"issue-{number:04d}"

    def deliver(self, batch: OutgoingBatch) -> Mapping[int, str]:
        return self.write(list(messages(batch, self.clock())))

    def send_message(self, message: EmailMessage) -> None:
        self.write([(0, message)])

    def write(self, items: Sequence[tuple[int, EmailMessage]]) -> Mapping[int, str]:
        """Write each (subscriber id, message); raises ProviderDown if the disk refuses."""
        folder = self.folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for subscriber_id, message in items:
                to = _UNSAFE.sub("_", str(message["To"].addresses[0].addr_spec))
                name = (
                    f"{subscriber_id:06d}-{to}" if subscriber_id else f"{to}-{uuid.uuid4().hex[:8]}"
                )
                target = folder / f"{name}.eml"
                temporary = target.with_suffix(".eml.tmp")
                temporary.write_bytes(message.as_bytes(policy=SMTP))
                temporary.replace(target)
        except OSError as err:
            raise ProviderDown(
                f"cannot write to {folder}: {err.strerror}", where="outbox"
            ) from None
        return {}
