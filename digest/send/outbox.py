"""The outbox transport: one ``.eml`` file per recipient, in a folder per issue.

Each file is written under a temporary name, flushed to the disk and renamed: a ``.eml`` is
always a whole message, and a message whose file did not complete (a full or read-only disk)
was not handed over. A write that fails removes its temporary file and stops the send, saying
which recipients of the batch got their file (:class:`~digest.errors.Progress`): the others
stay pending.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.errors import MessageError
from email.message import EmailMessage
from pathlib import Path

from digest.errors import Progress, ProviderDown
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

    def written(self, subscriber_ids: Sequence[int]) -> set[int]:
        """Of these subscribers, the ones whose message is in the folder, whole (a file is
        renamed into place only once it is): how a send that died learns what it wrote."""
        wanted = set(subscriber_ids)
        try:
            names = [entry.name for entry in os.scandir(self.folder)]
        except FileNotFoundError:
            return set()
        except OSError as err:
            raise ProviderDown(
                f"cannot read {self.folder}: {err.strerror}", where="outbox"
            ) from None
        found = set()
        for name in names:
            number, dash, _ = name.partition("-")
            if dash and name.endswith(".eml") and number.isdigit() and int(number) in wanted:
                found.add(int(number))
        return found

    def write(self, items: Sequence[tuple[int, EmailMessage]]) -> Mapping[int, str]:
        """Write each (subscriber id, message) as the bytes SMTP would carry; returns the
        messages that cannot be written safely, with why, and raises ProviderDown if the disk
        refuses, with the files written so far."""
        folder = self.folder
        refused: dict[int, str] = {}
        written: list[int] = []
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
                _write_whole(folder / f"{name}.eml", data)
                written.append(subscriber_id)
            if written:
                _sync_folder(folder)  # the renames themselves reach the disk
        except OSError as err:
            raise ProviderDown(
                f"cannot write to {folder}: {err.strerror}",
                where="outbox",
                progress=Progress(frozenset(written), refused),
            ) from None
        return refused


def _write_whole(target: Path, data: bytes) -> None:
    """``data`` into ``target``, whole or not at all: a temporary file, flushed to the disk,
    renamed over the target. A failure removes the temporary file."""
    temporary = target.with_suffix(".eml.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(target)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


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
