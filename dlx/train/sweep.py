"""Sweeps: one run per entry of an experiment's `get_sweep()`, each in `workdir/<run>/` (resumable
like any run), then `sweep.json`, `sweep.md` and `sweep.png` comparing them."""

from __future__ import annotations

import pathlib
import sys
from typing import Any, Callable

from dlx import config as config_lib
from dlx.train import loop, outputs


def build_configs(config_arg: str, overrides: list[str],
                  runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every run's validated config, built before any training so a bad one fails first."""
    return {name: config_lib.build(config_arg, overrides, (name, settings))
            for name, settings in runs.items()}


def _table(rows: list[dict], splits: tuple[str, ...]) -> str:
    f1 = all("macro_f1" in row["eval"][s] for row in rows for s in splits)
    f1_splits = splits if f1 else ()
    header = ["run", "settings", "steps", "train loss", *(f"{s} acc %" for s in splits),
              *(f"{s} macro-F1 %" for s in f1_splits)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        settings = ", ".join(f"{k}={v}" for k, v in row["settings"].items())
        steps = str(row["final_step"])
        if row.get("early_stopping", {}).get("stopped_early"):
            steps += f" (best; stopped at {row['early_stopping']['stopped_step']})"
        cells = [row["run"], settings, steps, f"{row['train_loss']:.4f}",
                 *(f"{100 * row['eval'][s]['accuracy']:.1f}" for s in splits),
                 *(f"{100 * row['eval'][s]['macro_f1']:.1f}" for s in f1_splits)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def train_sweep(config_arg: str, overrides: list[str], workdir: str | pathlib.Path,
                runs: dict[str, dict[str, Any]],
                step_hook: Callable[[int], None] | None = None) -> dict | None:
    """Trains every run in turn (finished ones only re-evaluate); None if a signal stopped one."""
    workdir = pathlib.Path(workdir)
    configs = build_configs(config_arg, overrides, runs)
    rows, curves = [], {}
    for index, (name, config) in enumerate(configs.items(), 1):
        print(f"sweep run {index}/{len(configs)}: {name}", file=sys.stderr, flush=True)
        summary = loop.train_and_evaluate(config, workdir / name, step_hook=step_hook)
        if summary is None:
            return None
        rows.append({"run": name, "settings": runs[name], **summary})
        curves[name] = outputs.MetricsLog.read(workdir / name / "metrics.jsonl")
    experiment = config_lib.resolve_path(config_arg).stem
    splits = config_lib.names(next(iter(configs.values())).train.eval_splits)
    result = {"experiment": experiment, "runs": rows}
    outputs.write_json(workdir / "sweep.json", result)
    outputs.write_atomic(workdir / "sweep.md", _table(rows, splits))
    outputs.plot_sweep(curves, ("train_loss", *(f"eval_{s}_accuracy" for s in splits)),
                       workdir / "sweep.png", experiment)
    return result


def evaluate_sweep(config_arg: str, overrides: list[str], workdir: str | pathlib.Path,
                   runs: dict[str, dict[str, Any]]) -> dict[str, dict]:
    """Run name -> `evaluate_latest` of that run's newest checkpoint."""
    workdir = pathlib.Path(workdir)
    return {name: loop.evaluate_latest(config, workdir / name)
            for name, config in build_configs(config_arg, overrides, runs).items()}
