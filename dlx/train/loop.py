"""`train_and_evaluate(config, workdir)`: init or resume, train, evaluate, checkpoint, summarise."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import signal
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from dlx import data as data_lib
from dlx import nn as nn_lib
from dlx import optim, tasks
from dlx.data.batching import EpochBatcher, eval_batches
from dlx.errors import DlxError
from dlx.train import outputs
from dlx.train.checkpoint import Checkpointer, abstract_like
from dlx.train.parallel import make_runner
from dlx.train.state import TrainState

# Keys that define what a workdir's checkpoints contain; resuming with other values is refused.
IDENTITY_KEYS = ("name", "seed", "model", "data")


@dataclasses.dataclass
class Run:
    """Everything built from a config before the first step."""
    config: ml_collections.ConfigDict
    splits: data_lib.Splits
    task: Any
    runner: Any
    checkpointer: Checkpointer
    abstract_state: Any
    init_state: Callable[[], TrainState]


def select_devices(config: ml_collections.ConfigDict) -> list[jax.Device]:
    """The first `train.devices` local devices (all when 0); the batch must split evenly over them."""
    available = jax.local_devices()
    wanted = config.train.devices or len(available)
    if wanted > len(available):
        raise DlxError(f"train.devices={wanted} but only {len(available)} local devices exist")
    if config.train.batch_size % wanted:
        raise DlxError(f"train.batch_size={config.train.batch_size} is not divisible by the "
                       f"{wanted} devices; use a multiple of {wanted} or set train.devices")
    return available[:wanted]


def check_workdir(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """Refuses a workdir that holds another experiment, or the same one with another model/data."""
    path = workdir / "config.json"
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DlxError(f"{path} is not valid JSON; remove it or choose another --workdir") from None
    if saved.get("name") != config.name:
        raise DlxError(f"workdir {workdir} holds experiment {saved.get('name')!r}, not "
                       f"{config.name!r}; choose another --workdir")
    current = json.loads(config.to_json())  # Tuples become lists, as in the saved file.
    changed = [key for key in IDENTITY_KEYS if saved.get(key) != current.get(key)]
    if changed and (workdir / "checkpoints").exists():
        raise DlxError(f"workdir {workdir} holds checkpoints of {config.name} with different "
                       f"{', '.join(changed)}; use the same values or another --workdir")


def build(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> Run:
    """Data, model, optimiser, compiled steps and the checkpointer; all validated before compiling."""
    devices = select_devices(config)
    splits = data_lib.load(config.data)
    tx = optim.make(config.optim, config.train.steps)
    parallel = config.train.parallel
    model = nn_lib.build(config.model, splits.num_classes,
                         axis_name="batch" if parallel == "pmap" else None)
    task = tasks.Classification(model)
    runner = make_runner(parallel, devices, task, tx)
    sample = {k: v[:1] for k, v in splits.train.items()}

    def init_state() -> TrainState:
        init_rng, train_rng = jax.random.split(jax.random.PRNGKey(config.seed))
        params, batch_stats = task.init(init_rng, sample)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                          batch_stats=batch_stats, rng=train_rng)

    abstract_state = abstract_like(jax.eval_shape(init_state), runner.restore_sharding)
    checkpointer = Checkpointer(workdir / "checkpoints", config.train.keep_checkpoints)
    return Run(config, splits, task, runner, checkpointer, abstract_state, init_state)


def evaluate(run: Run, state: TrainState) -> dict[str, float]:
    """Loss and accuracy over the whole test split."""
    totals: dict[str, float] = {}
    for batch in eval_batches(run.splits.test, run.config.train.eval_batch_size,
                              multiple_of=len(run.runner.devices)):
        sums = jax.device_get(run.runner.eval_step(state, batch))
        for key, value in sums.items():
            totals[key] = totals.get(key, 0.0) + float(value)
    return tasks.summarize(totals)


class _StopRequest:
    """SIGTERM/SIGINT set a flag; the loop saves a checkpoint at the end of the step and exits 0."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Window:
    """Train-metric sums since the last log line, fetched one step late so the host never stalls."""

    def __init__(self, saved: dict | None = None):
        self.sums: dict[str, float] = dict(saved or {})
        self.pending: tuple[int, Any] | None = None

    def push(self, step: int, sums: Any) -> None:
        self.flush()
        self.pending = (step, sums)

    def flush(self) -> None:
        if self.pending is None:
            return
        step, sums = self.pending
        self.pending = None
        host = jax.device_get(sums)
        loss = float(host["loss"]) / max(float(host["count"]), 1.0)
        if not math.isfinite(loss):
            raise FloatingPointError(step, loss)
        for key, value in host.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def take(self) -> dict[str, float]:
        """Means since the last call, prefixed `train_`; resets the window."""
        self.flush()
        means = {f"train_{k}": v for k, v in tasks.summarize(self.sums).items()}
        self.sums = {}
        return means


def _restore_or_init(run: Run):
    restored = run.checkpointer.restore(run.abstract_state, quarantine=True)
    if restored is None:
        return run.runner.place_state(run.init_state()), {}
    step, state, meta = restored
    print(f"resuming {run.config.name} from checkpoint at step {step}", file=sys.stderr, flush=True)
    return run.runner.place_state(state), meta


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       step_hook: Callable[[int], None] | None = None) -> dict | None:
    """Trains `config` in `workdir` (resuming from its newest checkpoint) and returns the summary.

    Returns None when a SIGTERM/SIGINT stopped the run early (after saving a checkpoint).
    `step_hook(step)` runs after each step's logging and checkpointing (used by the tests).
    """
    workdir = pathlib.Path(workdir)
    check_workdir(config, workdir)
    run = build(config, workdir)
    outputs.write_json(workdir / "config.json", config.to_dict())
    train = config.train
    state, meta = _restore_or_init(run)
    start = int(jax.device_get(run.runner.saveable_state(state).step))
    batcher = EpochBatcher(run.splits.train, train.batch_size, config.seed)
    if meta:
        batcher.restore(meta["data"])
    log = outputs.MetricsLog(workdir / "metrics.jsonl", keep_through=start)
    window = _Window(meta.get("window"))
    wall_before, t0 = meta.get("wall_s", 0.0), time.perf_counter()
    progress = outputs.Progress(train.steps, start)

    def save(step: int) -> None:
        window.flush()
        run.checkpointer.save(step, run.runner.saveable_state(state), {
            "data": batcher.state(), "window": window.sums,
            "wall_s": wall_before + time.perf_counter() - t0})

    try:
        with _StopRequest() as stop:
            for step in range(start + 1, train.steps + 1):
                state, sums = run.runner.train_step(state, next(batcher))
                window.push(step, sums)
                last = step == train.steps
                row = {}
                if step % train.log_every == 0 or last:
                    row.update(window.take())
                    row["steps_per_s"] = progress.rate(step)
                if step % train.eval_every == 0 or last:
                    row.update({f"eval_{k}": v for k, v in evaluate(run, state).items()})
                if row:
                    log.write({"step": step, **row})
                    progress.log({"step": step, **row})
                saved = step % train.checkpoint_every == 0 or last
                if saved:
                    save(step)
                progress.step(step)
                if step_hook is not None:
                    step_hook(step)
                if stop.signal_name:
                    if not saved:
                        save(step)
                    run.checkpointer.close()
                    progress.write(f"stopped by {stop.signal_name} at step {step}; checkpoint "
                                   f"saved; rerun the same command to resume")
                    return None
            window.flush()
    except FloatingPointError as e:
        bad_step, loss = e.args
        run.checkpointer.close()
        good = [s for s in run.checkpointer.steps() if s < bad_step]
        kept = f"the last good checkpoint is step {good[-1]}" if good else "no checkpoint was saved"
        raise DlxError(f"non-finite training loss ({loss}) at step {bad_step}; {kept} in "
                       f"{run.checkpointer.directory}") from None
    finally:
        progress.close()
    run.checkpointer.close()
    return _write_summary(run, workdir, log, state, start, wall_before + time.perf_counter() - t0)


def _write_summary(run: Run, workdir: pathlib.Path, log: outputs.MetricsLog, state: TrainState,
                   start: int, wall_s: float) -> dict:
    """`summary.json` and `curves.png` of a finished run; returns the summary."""
    config, train = run.config, run.config.train
    # The last step always evaluates; a run that was already complete evaluates its checkpoint.
    eval_metrics = ({k[5:]: v for k, v in log.rows[-1].items() if k.startswith("eval_")}
                    if start < train.steps else evaluate(run, state))
    summary = {"experiment": config.name, "final_step": train.steps,
               "train_loss": log.last("train_loss"), "eval": eval_metrics, "wall_s": wall_s,
               "examples_per_s": train.steps * train.batch_size / max(wall_s, 1e-9),
               "devices": len(run.runner.devices), "parallel": train.parallel}
    outputs.write_json(workdir / "summary.json", summary)
    outputs.plot_curves(log.rows, workdir / "curves.png", config.name)
    return summary


def restore_latest(config: ml_collections.ConfigDict,
                   workdir: str | pathlib.Path) -> tuple[Run, int, TrainState]:
    """(run, step, state placed on the run's devices) of the newest readable checkpoint."""
    workdir = pathlib.Path(workdir)
    if not (workdir / "checkpoints").exists():
        raise DlxError(f"no checkpoints in {workdir}; train first with dlx train --workdir {workdir}")
    check_workdir(config, workdir)
    run = build(config, workdir)
    restored = run.checkpointer.restore(run.abstract_state)
    run.checkpointer.close()
    if restored is None:
        raise DlxError(f"no readable checkpoint in {workdir / 'checkpoints'}")
    step, state, _ = restored
    return run, step, run.runner.place_state(state)


def evaluate_latest(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Eval metrics of the newest readable checkpoint in `workdir`, plus its `step`."""
    run, step, state = restore_latest(config, workdir)
    return {"step": step, **evaluate(run, state)}
