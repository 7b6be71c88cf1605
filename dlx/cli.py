"""`dlx train|eval|list`: the command line. Bad input ends with one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from dlx.errors import DlxError


def _quiet_libraries() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(format="dlx: %(levelname)s: %(message)s", level=logging.WARNING)
    try:
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlx", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "train an experiment (resumes from --workdir)"),
                            ("eval", "evaluate the newest checkpoint in --workdir")):
        sub = commands.add_parser(name, help=help_text,
                                  epilog="Override any config key with --config.KEY=VALUE.")
        sub.add_argument("--config", required=True,
                         help="experiment file (experiments/NAME.py) or an experiment name")
        sub.add_argument("--workdir", required=True, help="run directory")
    commands.add_parser("list", help="list the experiments with a one-line description each")
    return parser


def _list() -> int:
    from dlx import config as config_lib
    files = config_lib.experiment_files()
    width = max((len(name) for name in files), default=0)
    for name, path in files.items():
        print(f"{name:<{width}}  {config_lib.describe(path)}")
    return 0


def run(argv: list[str], step_hook=None) -> int:
    """Runs one command; returns the exit code. `step_hook` is passed to the trainer (tests)."""
    args, rest = _parser().parse_known_args(argv)
    if args.command == "list":
        if rest:
            raise DlxError(f"dlx list takes no arguments, got: {' '.join(rest)}")
        return _list()
    from dlx import config as config_lib
    runs = config_lib.sweep(args.config)
    if runs is not None:
        from dlx.train import sweep
        if args.command == "eval":
            result = sweep.evaluate_sweep(args.config, rest, args.workdir, runs)
        else:
            result = sweep.train_sweep(args.config, rest, args.workdir, runs, step_hook=step_hook)
    else:
        config = config_lib.build(args.config, rest)
        from dlx.train import loop
        if args.command == "eval":
            result = loop.evaluate_latest(config, args.workdir)
        else:
            result = loop.train_and_evaluate(config, args.workdir, step_hook=step_hook)
    if result is not None:
        print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None, step_hook=None) -> None:
    _quiet_libraries()
    try:
        code = run(sys.argv[1:] if argv is None else argv, step_hook)
    except DlxError as e:
        print(f"dlx: error: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
