"""Run outputs: atomic file writes, `metrics.jsonl`, the progress display, `curves.png` and
attention maps."""

from __future__ import annotations

import io
import json
import os
import pathlib
import sys
import tempfile
import time
from typing import Any

import tqdm


def write_atomic(path: pathlib.Path, data: bytes | str) -> None:
    """Writes to a temp file beside `path`, then renames, so no reader sees a partial file and a
    failed write leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_npz(path: pathlib.Path, arrays: dict[str, Any]) -> None:
    """`np.savez` of `arrays` (name -> array) to `path`, through `write_atomic`."""
    import numpy as np
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


def write_json(path: pathlib.Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class MetricsLog:
    """`metrics.jsonl`: one object per logged step; rows past `keep_through` (a resume) are dropped.
    With `writes=False` (a multi-process run's other processes) rows are kept in memory only."""

    def __init__(self, path: pathlib.Path, keep_through: int, writes: bool = True):
        self.path = path
        self.writes = writes
        self.rows = [row for row in self.read(path) if row["step"] <= keep_through]
        if writes:
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
        if not self.writes:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def last(self, key: str) -> Any:
        return next((row[key] for row in reversed(self.rows) if key in row), None)


class Progress:
    """A tqdm bar on a terminal; plain log lines (one per logged step) otherwise; nothing when
    `quiet` (a multi-process run's other processes)."""

    def __init__(self, total: int, initial: int, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and not quiet
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
        elif not self.quiet:
            print(f"step {row['step']}/{self.total}  {text}", file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _series(rows: list[dict], key: str) -> list[tuple[int, float]]:
    return [(row["step"], row[key]) for row in rows if key in row]


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Lays out `fig`, writes it as a PNG through `write_atomic` and closes it (also on error)."""
    import matplotlib.pyplot as plt
    try:
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    write_atomic(pathlib.Path(path), png.getvalue())


def figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] | None = None,
           squeeze: bool = True):
    """(fig, axes) of an off-screen (Agg) matplotlib figure, 5 x 4 inches per column unless
    `size` is given."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(nrows, ncols, figsize=size or (5 * ncols, 4), squeeze=squeeze)


def plot_curves(rows: list[dict], path: pathlib.Path, title: str) -> None:
    """Loss and (when logged) accuracy against step: the training window and every evaluated
    split, one PNG."""
    metrics = ["loss"] + (["accuracy"] if any(key.endswith("_accuracy") for row in rows
                                              for key in row) else [])
    fig, axes = figure(len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        keys = [f"train_{metric}"] + sorted({k for row in rows for k in row
                                              if k.startswith("eval_") and k.endswith(f"_{metric}")})
        for key in keys:
            points = _series(rows, key)
            if points:
                label = "train (running)" if key.startswith("train_") else key[5:-len(metric) - 1]
                ax.plot(*zip(*points), marker=None if key.startswith("train_") else "o",
                        markersize=3, label=label)
        ax.set(xlabel="step", ylabel=metric, title=f"{title}: {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def plot_sweep(runs: dict[str, list[dict]], keys: tuple[str, ...], path: pathlib.Path,
               title: str) -> None:
    """One panel per metric key, one line per run, into one PNG."""
    fig, axes = figure(len(keys))
    for ax, key in zip(axes, keys):
        for name, rows in runs.items():
            points = _series(rows, key)
            if points:
                ax.plot(*zip(*points), label=name)
        ax.set(xlabel="step", ylabel=key, title=f"{title}: {key}")
        if key.endswith("loss"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    save_figure(fig, path)


def plot_attention(weights_TS: Any, source: list[str], target: list[str], path: pathlib.Path,
                   title: str) -> None:
    """Heatmap of attention weights (T target steps x S source steps; rows beyond `target`,
    columns beyond `source` are cut), labelled with the tokens, written atomically as a PNG."""
    import numpy as np
    fig, ax = figure()
    weights = np.asarray(weights_TS)[:len(target), :len(source)]
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, fontsize="small")
    ax.set_yticks(range(len(target)), target, fontsize="small")
    ax.set(xlabel="source token", ylabel="output token", title=title)
    fig.colorbar(image, ax=ax, label="weight")
    save_figure(fig, path)
