"""A sender that starts in milliseconds: this process imports the app once, then forks a child
for each run the test asks for (a line on stdin: config, host, policy, key, report file),
says ``pid N`` when the child has started and ``exit N CODE`` once it has ended (CODE: the
exit status, or minus the signal that killed it). The fault-injection test SIGKILLs children
at its kill points; started as new processes, each run took a second or more to import the
app before it sent anything, twenty runs a database.

Nothing here opens a connection or starts a thread before forking: each child opens its
project as a process of its own would."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.digest.send.crash_send import send_once


def main() -> None:
    for line in sys.stdin:
        config, host, policy, key, report = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                Path(report).write_text(json.dumps(send_once(Path(config), host, policy, key)))
            except BaseException as err:  # told to the test through the exit status
                print(f"run failed: {err!r}", file=sys.stderr, flush=True)
                code = 1
            finally:
                os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {pid} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main()
