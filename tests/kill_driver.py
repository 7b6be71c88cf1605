"""Runs the dlx CLI and sends this process a signal right after step K: `kill_driver.py K SIG ARGS`."""

import os
import signal
import sys

from dlx import cli


def main() -> None:
    kill_at, signal_name, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]

    def hook(step: int) -> None:
        if step == kill_at:
            os.kill(os.getpid(), getattr(signal, signal_name))

    cli.main(argv, step_hook=hook)


if __name__ == "__main__":
    main()
