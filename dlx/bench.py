"""`dlx bench`: runs the side-by-side scripts in benchmarks/ and writes bench.json and bench.md.

Each script runs dlx and a peer library on the same work and prints one JSON line per
comparison (`benchmarks/harness.py`: medians of throughput, `ratio` = dlx over the peer). Every
selected script runs in its own process with a time limit; a script whose peer library is not
installed is reported as skipped, with the reason, and one that fails or times out keeps the
lines it printed before. On an accelerator the BERT rows also get the model FLOPs utilisation of
the dlx step (`dlx.flops`; against the chip's dense bf16 peak, one chip).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import NamedTuple

from dlx import flops
from dlx.errors import DlxError

BENCHMARKS_DIR = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
TAIL_CHARS = 400
# Record keys shown in the shapes column, in this order.
SHAPE_KEYS = ("batch", "seq", "input", "hidden", "layers", "heads", "intermediate", "vocab",
              "max_predictions", "batchnorm", "pairs", "vectors", "dim", "corpus", "documents",
              "corpus_words")


class Benchmark(NamedTuple):
    """A script in benchmarks/, the modules its contenders import, and its quick-mode flags."""
    script: str
    requires: tuple[str, ...]
    quick_args: tuple[str, ...]
    note: str = ""


BENCHMARKS: dict[str, Benchmark] = {
    "bert": Benchmark("bert.py", ("torch", "transformers"), ("--quick", "--no-compile")),
    "bert_keras": Benchmark(
        "bert_keras.py", ("keras", "keras_hub"),
        ("--rounds", "1", "--warmup", "1", "--batch", "4", "--seq", "16", "--vocab", "200",
         "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64",
         "--max-positions", "32", "--max-predictions", "4"),
        note="KerasHub needs its own environment (see benchmarks/bert_keras.py)"),
    "cnn": Benchmark("cnn.py", ("torch",), ("--quick",)),
    "rnn": Benchmark("rnn.py", ("torch",), ("--quick",)),
    "wmd": Benchmark("wmd.py", ("ot", "gensim"), ("--quick",)),
    "word2vec": Benchmark("word2vec.py", ("gensim",), ("--quick",)),
}


class Run(NamedTuple):
    """One script's outcome: status ok | failed | timeout | skipped, why if not ok, its wall
    seconds, the command, and the JSON records it printed."""
    name: str
    status: str
    reason: str
    seconds: float
    command: list[str]
    records: list[dict]

    def to_json(self) -> dict:
        """The run as a JSON-ready dict."""
        return self._asdict()


def select(only: str | None) -> list[str]:
    """The benchmark names in `only` ("bert,cnn"), in that order; all of them when None."""
    if only is None:
        return list(BENCHMARKS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        raise DlxError(f"--only={only!r} names unknown benchmarks {unknown}; expected a "
                       f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    return list(dict.fromkeys(names))


def missing_modules(benchmark: Benchmark) -> list[str]:
    """The modules `benchmark` needs that this Python cannot import."""
    return [module for module in benchmark.requires if importlib.util.find_spec(module) is None]


def json_records(stdout: str) -> list[dict]:
    """The JSON objects with a "name" among `stdout`'s lines (other lines are ignored)."""
    records = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "name" in record:
            records.append(record)
    return records


def _tail(text: str) -> str:
    """The last non-empty line of `text`, cut to TAIL_CHARS."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][-TAIL_CHARS:] if lines else ""


def run_one(name: str, directory: pathlib.Path, quick: bool, timeout_s: float) -> Run:
    """Runs benchmark `name` in a new process group (killed whole past `timeout_s`)."""
    benchmark = BENCHMARKS[name]
    command = [sys.executable, str(directory / benchmark.script)]
    command += list(benchmark.quick_args) if quick else []
    missing = missing_modules(benchmark)
    if missing:
        reason = f"not installed: {', '.join(missing)}"
        return Run(name, "skipped", f"{reason}; {benchmark.note}" if benchmark.note else reason,
                   0.0, command, [])
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=directory.parent, start_new_session=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
        status = "ok" if process.returncode == 0 else "failed"
        reason = "" if status == "ok" else f"exit {process.returncode}: {_tail(stderr)}"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # torch.compile workers too.
        stdout, stderr = process.communicate()
        status, reason = "timeout", f"killed after {timeout_s:g} s"
    return Run(name, status, reason, round(time.perf_counter() - start, 1), command,
               json_records(stdout))


_DEVICE_PROBE = """
import json, jax
device = jax.devices()[0]
print(json.dumps({"backend": jax.default_backend(), "device_kind": device.device_kind,
                  "device_count": jax.device_count(), "jax": jax.__version__}))
"""


def device_info() -> dict:
    """The backend and first device jax picks here (the scripts' default device), probed in a
    child process: one holding a TPU, or most of a GPU's memory, would starve the scripts."""
    result = subprocess.run([sys.executable, "-c", _DEVICE_PROBE], capture_output=True,
                            text=True, timeout=300)
    if result.returncode != 0:
        raise DlxError(f"jax could not start here ({_tail(result.stderr)}); expected a working "
                       f"jax installation")
    return json.loads(result.stdout.strip().splitlines()[-1])


def add_mfu(record: dict, device: dict) -> dict:
    """A BERT record (unit tokens/s, with its shapes) plus flops_per_token and the dlx step's
    MFU; `mfu` is None, with `mfu_note`, on CPU or a chip without a known peak."""
    per_token = flops.training_flops_per_token(record["layers"], record["hidden"],
                                               record["seq"], record["intermediate"])
    extra = {"tokens_per_s": record["dlx"], "flops_per_token": per_token, "mfu": None}
    if device["backend"] == "cpu":
        return {**record, **extra, "mfu_note": "n/a on CPU"}
    if flops.device_name(device["device_kind"]) is None:
        return {**record, **extra, "mfu_note": f"no known peak for {device['device_kind']}"}
    value = flops.mfu(record["dlx"], per_token, device["device_kind"])
    return {**record, **extra, "mfu": round(value, 4)}


def _is_bert_row(run: Run, record: dict) -> bool:
    keys = ("layers", "hidden", "seq", "intermediate")
    return (run.name.startswith("bert") and record.get("unit") == "tokens/s"
            and isinstance(record.get("dlx"), (int, float))
            and all(isinstance(record.get(key), int) for key in keys))


def _shapes(record: dict) -> str:
    return " ".join(f"{key}={record[key]}" for key in SHAPE_KEYS if key in record)


def _number(value, unit: str = "") -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    return f"{value:,.2f} {unit}".strip()


def markdown(runs: list[Run], device: dict) -> str:
    """bench.md: one table row per comparison, and one per skipped or empty benchmark."""
    where = device["device_kind"]
    if where != device["backend"]:
        where = f"{device['backend']}: {where}"
    lines = ["| benchmark | comparison | shapes | dlx | peer | ratio | MFU | device |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for record in run.records:
            unit = record.get("unit", "")
            if "mfu" in record:
                mfu = (f"{100 * record['mfu']:.1f} %" if record["mfu"] is not None
                       else record["mfu_note"])
            else:
                mfu = ""
            ratio = record.get("ratio")
            if isinstance(ratio, (int, float)):
                ratio_text = f"{ratio:.3f}"
            else:  # e.g. a torch.compile peer that failed or timed out
                ratio_text = str(record.get("compile_error", "—"))[:80].replace("|", "/")
            lines.append(f"| {run.name} | {record['name']} | {_shapes(record)} | "
                         f"{_number(record.get('dlx'), unit)} | "
                         f"{_number(record.get('peer'), unit)} | {ratio_text} | {mfu} | "
                         f"{where} |")
        if run.status != "ok" or not run.records:
            reason = run.reason or "printed no results"
            lines.append(f"| {run.name} | {run.status}: {reason.replace('|', '/')} "
                         f"| | | | | | {where} |")
    header = ("Throughput medians (dlx and peer), ratio = dlx over the peer (above 1: dlx "
              "faster); MFU of the dlx step against the chip's dense bf16 peak.")
    return "\n".join(["# dlx benchmarks", "", header, ""] + lines) + "\n"


def bench(names: list[str], out: pathlib.Path, quick: bool = False, timeout_s: float = 1800,
          directory: pathlib.Path = BENCHMARKS_DIR) -> dict:
    """Runs `names` in turn, writes OUT/bench.json and OUT/bench.md, returns a summary."""
    if not directory.is_dir():
        raise DlxError(f"benchmarks directory {directory} does not exist; expected the "
                       f"repository's benchmarks/")
    if timeout_s <= 0:
        raise DlxError(f"--timeout={timeout_s}; expected a positive number of seconds")
    device = device_info()
    runs = []
    for index, name in enumerate(names, 1):
        print(f"dlx bench: [{index}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        run = run_one(name, directory, quick, timeout_s)
        records = [add_mfu(r, device) if _is_bert_row(run, r) else r for r in run.records]
        run = run._replace(records=records)
        detail = f" ({run.reason})" if run.reason else ""
        print(f"dlx bench: {name}: {run.status} in {run.seconds} s, {len(records)} "
              f"result(s){detail}", file=sys.stderr, flush=True)
        runs.append(run)
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": device, "quick": quick, "timeout_s": timeout_s,
              "benchmarks": [run.to_json() for run in runs]}
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(runs, device))
    return {"out": str(out), "device": device,
            "status": {run.name: run.status for run in runs},
            "results": sum(len(run.records) for run in runs)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`dlx bench`'s options."""
    parser.add_argument("--out", required=True, help="directory for bench.json and bench.md")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated benchmarks (default all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, one round: checks that each script runs")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds allowed per benchmark (then it is killed)")


def run_from_args(args: argparse.Namespace) -> dict:
    """`dlx bench` from parsed arguments."""
    return bench(select(args.only), pathlib.Path(args.out), args.quick, args.timeout)
