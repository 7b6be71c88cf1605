"""`dlx train|eval|explain|generate|export|list|tokenizer`: the command line. Bad input: one line on
stderr, exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from dlx import compilation_cache, host_memory
from dlx.errors import DlxError


def _quiet_libraries() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(format="dlx: %(levelname)s: %(message)s", level=logging.WARNING)
    try:
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="experiment file (experiments/NAME.py) or an experiment name")
    parser.add_argument("--workdir", required=True, help="run directory")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlx", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "train an experiment (resumes from --workdir)"),
                            ("eval", "evaluate the newest checkpoint in --workdir")):
        sub = commands.add_parser(name, help=help_text,
                                  epilog="Override any config key with --config.KEY=VALUE.")
        _run_arguments(sub)
    explain = commands.add_parser(
        "explain", help="attribution plots (integrated gradients, gradient x input, attention) "
                        "of a trained classifier in --workdir on held-out examples",
        epilog="Writes WORKDIR/explain/<method>_<i>.png and explain.json. Pass the run's "
               "--config.KEY=VALUE overrides too, so the same model is built.")
    _run_arguments(explain)
    explain.add_argument("--examples", type=int, default=4,
                         help="explain the first N test examples")
    explain.add_argument("--method", default="all",
                         help="ig (integrated gradients), gxi (gradient x input), attention "
                              "(Transformers), or all that apply")
    explain.add_argument("--steps", type=int, default=64,
                         help="integrated-gradients trapezoid intervals")
    generate = commands.add_parser(
        "generate", help="sample text from a trained causal LM (e.g. gpt_tiny) in --workdir",
        epilog="Pass the run's --config.KEY=VALUE overrides too, so the same model is built.")
    _run_arguments(generate)
    generate.add_argument("--prompt", required=True, help="text to continue")
    generate.add_argument("--max-new-tokens", type=int, default=50, help="tokens to add")
    generate.add_argument("--temperature", type=float, default=1.0,
                          help="softmax temperature; 0 = greedy")
    generate.add_argument("--top-k", type=int, default=40,
                          help="sample among the k likeliest tokens; 0 = all")
    generate.add_argument("--seed", type=int, default=0, help="sampling seed")
    export = commands.add_parser(
        "export", help="write a trained BERT (bert_mlm) as a Hugging Face checkpoint + tokenizer")
    _run_arguments(export)
    export.add_argument("--out", required=True, help="directory to write")
    commands.add_parser("list", help="list the experiments with a one-line description each")
    from dlx import bench
    bench.add_arguments(commands.add_parser(
        "bench", help="run benchmarks/ (dlx beside its peers); writes bench.json and bench.md"))
    tokenizer = commands.add_parser("tokenizer", help="WordPiece tokenizers for BERT")
    tokenizer_commands = tokenizer.add_subparsers(dest="action", required=True)
    train = tokenizer_commands.add_parser(
        "train", help="train a WordPiece tokenizer on a corpus; writes tokenizer.json + vocab.txt")
    train.add_argument("--corpus", required=True, nargs="+",
                       help="gensim_lee, gensim_enwiki, or text files/globs (a document a line)")
    train.add_argument("--vocab-size", type=int, default=8000, help="tokens, specials included")
    train.add_argument("--out", required=True, help="directory to write the tokenizer into")
    train.add_argument("--held-out", type=float, default=0.1,
                       help="fraction of documents held out (not trained on), as data.held_out")
    train.add_argument("--min-frequency", type=int, default=2,
                       help="a merge needs at least this many occurrences")
    return parser


def _list() -> int:
    from dlx import config as config_lib
    files = config_lib.experiment_files()
    width = max((len(name) for name in files), default=0)
    for name, path in files.items():
        print(f"{name:<{width}}  {config_lib.describe(path)}")
    return 0


def _train_tokenizer(args: argparse.Namespace) -> dict:
    """`dlx tokenizer train`: learns on the training documents only; returns a summary."""
    from dlx.data import text, tokenizer as tokenizer_lib
    train_docs = text.split(text.named_or_files(args.corpus), args.held_out).train
    tokenizer = tokenizer_lib.train(train_docs, args.vocab_size, args.min_frequency)
    out = tokenizer_lib.save(tokenizer, args.out)
    return {"out": str(out), "vocab_size": tokenizer.get_vocab_size(),
            "documents": len(train_docs), "words": sum(len(d.split()) for d in train_docs),
            "special_ids": tokenizer_lib.special_ids(tokenizer)._asdict()}


def run(argv: list[str], step_hook=None) -> int:
    """Runs one command; returns the exit code. `step_hook` is passed to the trainer (tests)."""
    args, rest = _parser().parse_known_args(argv)
    if args.command == "list":
        if rest:
            raise DlxError(f"dlx list takes no arguments, got: {' '.join(rest)}")
        return _list()
    if args.command == "bench":
        if rest:
            raise DlxError(f"dlx bench got unknown arguments: {' '.join(rest)}")
        from dlx import bench
        print(json.dumps(bench.run_from_args(args)))
        return 0
    if args.command == "tokenizer":
        if rest:
            raise DlxError(f"dlx tokenizer {args.action} got unknown arguments: {' '.join(rest)}")
        print(json.dumps(_train_tokenizer(args)))
        return 0
    compilation_cache.enable()  # Here, not at start-up: the commands above never import JAX.
    from dlx import config as config_lib
    if args.command == "explain":
        from dlx import explain
        config = config_lib.build(args.config, rest)
        print(json.dumps(explain.explain_run(config, args.workdir, args.examples, args.method,
                                             args.steps)))
        return 0
    if args.command in ("generate", "export"):
        from dlx import lm_commands
        config = config_lib.build(args.config, rest)
        if args.command == "generate":
            print(lm_commands.generate_text(config, args.workdir, args.prompt,
                                            args.max_new_tokens, args.temperature, args.top_k,
                                            args.seed))
        else:
            print(json.dumps(lm_commands.export_bert(config, args.workdir, args.out)))
        return 0
    runs = config_lib.sweep(args.config)
    if runs is not None:
        from dlx.train import sweep
        if args.command == "eval":
            result = sweep.evaluate_sweep(args.config, rest, args.workdir, runs)
        else:
            result = sweep.train_sweep(args.config, rest, args.workdir, runs, step_hook=step_hook)
    else:
        config = config_lib.build(args.config, rest)
        if "kind" in config:  # trained outside the step loop (word vectors, baselines)
            module = config_lib.kind_module(config)
            run_command = module.evaluate if args.command == "eval" else module.train
            print(json.dumps(run_command(config, args.workdir)))
            return 0
        from dlx.train import distributed, loop
        distributed.initialize(config.train.distributed)  # Before any device is touched.
        if args.command == "eval":
            result = loop.evaluate_latest(config, args.workdir)
        else:
            result = loop.train_and_evaluate(config, args.workdir, step_hook=step_hook)
        if not distributed.is_primary():
            return 0
    if result is not None:
        print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None, step_hook=None) -> None:
    host_memory.from_environment()  # Before JAX starts its threads, which get arenas of their own.
    _quiet_libraries()
    try:
        code = run(sys.argv[1:] if argv is None else argv, step_hook)
    except DlxError as e:
        print(f"dlx: error: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
