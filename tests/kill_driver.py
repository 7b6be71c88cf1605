"""Runs the dlx CLI and signals this process after step K: `kill_driver.py K SIG CKPT_DIR ARGS`.

Before signalling it waits until CKPT_DIR (a step directory of an async Orbax save) is committed,
so the kill lands deterministically after that checkpoint. In a multi-process run with
DLX_KILL_ONLY_PROCESS=i set, only process i signals itself.
"""

import os
import pathlib
import signal
import sys
import time

from dlx import cli


def main() -> None:
    kill_at, signal_name, committed, argv = (int(sys.argv[1]), sys.argv[2],
                                             pathlib.Path(sys.argv[3]), sys.argv[4:])

    only = os.environ.get("DLX_KILL_ONLY_PROCESS")
    if only is not None and only != os.environ.get("DLX_PROCESS_ID"):
        kill_at = -1

    def hook(step: int) -> None:
        if step == kill_at:
            deadline = time.monotonic() + 60
            while not committed.is_dir() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), getattr(signal, signal_name))

    cli.main(argv, step_hook=hook)


if __name__ == "__main__":
    main()
