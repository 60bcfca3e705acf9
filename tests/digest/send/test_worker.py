"""Who a worker is, and whether it is alive."""

from __future__ import annotations

import socket
import subprocess
import sys

from digest.send.worker import local_worker_alive, worker_id


def test_worker_liveness_is_known_for_local_processes_only() -> None:
    assert local_worker_alive(worker_id())
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(finished.stdout)
    assert not local_worker_alive(f"{socket.gethostname()}:{dead_pid}:x")
    assert local_worker_alive(f"elsewhere.example:{dead_pid}:x")
