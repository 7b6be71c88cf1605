"""Run outputs: atomic file writes, `metrics.jsonl`, the progress display and `curves.png`."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile
import time
from typing import Any

import tqdm


def write_atomic(path: pathlib.Path, data: bytes | str) -> None:
    """Writes to a temp file beside `path`, then renames, so no reader sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_json(path: pathlib.Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class MetricsLog:
    """`metrics.jsonl`: one object per logged step; rows past `keep_through` (a resume) are dropped."""

    def __init__(self, path: pathlib.Path, keep_through: int):
        self.path = path
        self.rows = [row for row in self.read(path) if row["step"] <= keep_through]
        write_atomic(path, "".join(json.dumps(row) + "\n" for row in self.rows))

    @staticmethod
    def read(path: pathlib.Path) -> list[dict]:
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # A line cut short by a kill.
                break
        return rows

    def write(self, row: dict) -> None:
        self.rows.append(row)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def last(self, key: str) -> Any:
        return next((row[key] for row in reversed(self.rows) if key in row), None)


class Progress:
    """A tqdm bar on a terminal; plain log lines (one per logged step) otherwise."""

    def __init__(self, total: int, initial: int):
        self.tty = sys.stderr.isatty()
        self.total = total
        self.bar = tqdm.tqdm(total=total, initial=initial, disable=not self.tty, dynamic_ncols=True,
                             unit="step", file=sys.stderr) if self.tty else None
        self.last_time, self.last_step = time.perf_counter(), initial

    def step(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def rate(self, step: int) -> float:
        """Steps per second since the previous call."""
        now = time.perf_counter()
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        return rate

    def log(self, row: dict) -> None:
        text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in row.items() if k != "step")
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
        else:
            print(f"step {row['step']}/{self.total}  {text}", file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def plot_curves(rows: list[dict], path: pathlib.Path, title: str) -> None:
    """Loss and accuracy against step, train and eval, into one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split in ("train", "eval"):
            points = [(r["step"], r[f"{split}_{metric}"]) for r in rows if f"{split}_{metric}" in r]
            if points:
                ax.plot(*zip(*points), marker="o" if split == "eval" else None, markersize=3,
                        label=split)
        ax.set(xlabel="step", ylabel=metric, title=f"{title}: {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
