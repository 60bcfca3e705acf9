"""Real disk faults for tests: a small tmpfs that fills up, or one remounted read-only.

Mounting needs root (CI and the developers' machines run tests as root); where the kernel
refuses, the test that asked is skipped with the kernel's reason, never faked."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


class Disk:
    """A tmpfs mounted at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def remount(self, options: str) -> None:
        _mount("-o", f"remount,{options}", str(self.path))

    def grow(self) -> None:
        """Room again (the fault is mended)."""
        self.remount("size=64m")

    def fill(self, leave_bytes: int) -> None:
        """Fill the disk with a file of its own, leaving about ``leave_bytes`` free."""
        import os

        stats = os.statvfs(self.path)
        free = stats.f_bavail * stats.f_frsize
        with (self.path / "filler").open("wb") as handle:
            handle.write(b"\0" * max(0, free - leave_bytes))


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Disk]:
    """A ``size`` tmpfs at ``path`` for the block's length."""
    path.mkdir(parents=True, exist_ok=True)
    refused = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if refused.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {refused.stderr.strip() or refused.returncode}")
    try:
        yield Disk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], capture_output=True, text=True, check=True)
