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

from dlx import analysis
from dlx import config as config_lib
from dlx import data as data_lib
from dlx import nn as nn_lib
from dlx import optim, tasks
from dlx.data.batching import eval_batches, make_batcher
from dlx.errors import DlxError
from dlx.train import distributed, outputs
from dlx.train.checkpoint import Checkpointer, abstract_like
from dlx.train.early_stopping import EarlyStopping
from dlx.train.parallel import make_runner
from dlx.train.profile import StepProfiler
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
    init_state: Callable[[dict], TrainState]  # A fresh state from the `pretrained` weights.
    pretrained: dict
    eval_splits: tuple[str, ...]


def select_devices(config: ml_collections.ConfigDict) -> list[jax.Device]:
    """The first `train.devices` local devices (all when 0), or every device of a multi-process
    run; the batch must split evenly over them and, on each, into `optim.accumulate_steps`
    micro-batches."""
    available = jax.local_devices() if jax.process_count() == 1 else jax.devices()
    wanted = config.train.devices or len(available)
    if wanted > len(available) or (jax.process_count() > 1 and wanted != len(available)):
        raise DlxError(f"train.devices={wanted} but {len(available)} devices exist"
                       + (" (a multi-process run uses all of them: set 0)"
                          if jax.process_count() > 1 else ""))
    parts = wanted * config.optim.accumulate_steps
    if config.train.batch_size % parts:
        raise DlxError(f"train.batch_size={config.train.batch_size} is not divisible by the "
                       f"{wanted} devices x optim.accumulate_steps={config.optim.accumulate_steps}; "
                       f"use a multiple of {parts} or change train.devices")
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
    task = tasks.build(config, model, splits.metadata)
    sample = {k: v[:1] for k, v in splits.train.items()}
    # Read from disk once, here, and passed in: init_state is traced more than once.
    pretrained = nn_lib.pretrained_weights(config.model)

    def init_state(pretrained: dict) -> TrainState:
        init_rng, train_rng = jax.random.split(jax.random.PRNGKey(config.seed))
        params, batch_stats = task.init(init_rng, sample)
        params = nn_lib.with_pretrained(params, pretrained)
        # A task that updates several players in turn keeps one optimiser state per player.
        init_opt_state = getattr(task, "init_opt_state", None)
        opt_state = tx.init(params) if init_opt_state is None else init_opt_state(tx, params)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                          batch_stats=batch_stats, rng=train_rng)

    state_shape = jax.eval_shape(init_state, pretrained)
    runner = make_runner(parallel, devices, task, tx, config.optim.accumulate_steps,
                         state_shape=state_shape, mesh=config.train.mesh.to_dict(),
                         fsdp_min_size=config.train.fsdp_min_size)
    abstract_state = abstract_like(state_shape, runner.state_sharding)
    checkpointer = Checkpointer(workdir / "checkpoints", config.train.keep_checkpoints)
    return Run(config, splits, task, runner, checkpointer, abstract_state, init_state, pretrained,
               config_lib.names(config.train.eval_splits))


def evaluate(run: Run, state: TrainState) -> dict[str, dict[str, float]]:
    """Loss and accuracy in eval mode over each of `train.eval_splits`, keyed by split."""
    results = {}
    for split in run.eval_splits:
        totals: dict[str, float] = {}
        for batch in eval_batches(run.splits.named(split), run.config.train.eval_batch_size,
                                  multiple_of=len(run.runner.devices)):
            for key, value in run.runner.eval_step(state, batch).to_host().items():
                totals[key] = totals.get(key, 0.0) + value
        results[split] = run.task.summarize(totals)
    return results


def eval_row(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """`{"test": {"loss": l}}` -> `{"eval_test_loss": l}`, the metrics.jsonl keys."""
    return {f"eval_{split}_{key}": value for split, metrics in results.items()
            for key, value in metrics.items()}


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

    def __init__(self, summarize: Callable[[dict], dict], saved: dict | None = None):
        self.summarize = summarize
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
        host = sums.to_host()
        loss = host["loss"] / max(host["count"], 1.0)
        if not math.isfinite(loss):
            raise FloatingPointError(step, loss)
        for key, value in host.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def take(self) -> dict[str, float]:
        """Means since the last call, prefixed `train_`; resets the window."""
        self.flush()
        means = {f"train_{k}": v for k, v in self.summarize(self.sums).items()}
        self.sums = {}
        return means


def _restore_or_init(run: Run):
    restored = run.checkpointer.restore(run.abstract_state, quarantine=True)
    if restored is None:
        return run.runner.init_state(run.init_state, run.pretrained), {}
    step, state, meta = restored
    print(f"resuming {run.config.name} from checkpoint at step {step}", file=sys.stderr, flush=True)
    return run.runner.place_state(state), meta


class _Best:
    """Early stopping and its best checkpoints (`workdir/best/`); inert when no metric is set.

    Every new best is saved, and older bests are kept until the run ends: a resume restarts from a
    regular checkpoint whose recorded best may be older than the newest saved one.
    """

    def __init__(self, run: Run, workdir: pathlib.Path, saved: dict | None):
        self.stopper = EarlyStopping.from_config(run.config, run.eval_splits)
        self.checkpointer = None
        if self.stopper is None:
            return
        if saved:
            self.stopper.restore(saved)
        self.checkpointer = Checkpointer(workdir / "best", keep=None)
        # Bests saved after the checkpoint we resume from are replayed, and saved again.
        self.checkpointer.delete([s for s in self.checkpointer.steps()
                                  if s > self.stopper.best_step])

    def state(self) -> dict | None:
        return self.stopper.state() if self.stopper else None

    def observe(self, step: int, row: dict, saveable_state: Any) -> bool:
        """Records the eval `row` of `step`; True when patience has run out."""
        if self.stopper is None:
            return False
        value = row[self.stopper.metric]
        if self.stopper.update(step, value):
            self.checkpointer.save(step, saveable_state, {"metric": self.stopper.metric,
                                                          "value": value})
        return self.stopper.should_stop

    def final_state(self, run: Run, state: TrainState) -> TrainState:
        """The best state (older bests deleted), or `state` itself without early stopping."""
        if self.stopper is None:
            return state
        self.checkpointer.wait()
        self.checkpointer.delete([s for s in self.checkpointer.steps()
                                  if s != self.stopper.best_step])
        restored = self.checkpointer.restore(run.abstract_state)
        self.checkpointer.close()
        if restored is None or restored[0] != self.stopper.best_step:
            raise DlxError(f"the best checkpoint (step {self.stopper.best_step}) is missing from "
                           f"{self.checkpointer.directory}")
        return run.runner.place_state(restored[1])

    def summary(self) -> dict | None:
        if self.stopper is None:
            return None
        return {"metric": self.stopper.metric, "best": self.stopper.best,
                "best_step": self.stopper.best_step}

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       step_hook: Callable[[int], None] | None = None) -> dict | None:
    """Trains `config` in `workdir` (resuming from its newest checkpoint) and returns the summary.

    Returns None when a SIGTERM/SIGINT stopped the run early (after saving a checkpoint).
    `step_hook(step)` runs after each step's logging and checkpointing (used by the tests).
    """
    workdir = pathlib.Path(workdir)
    check_workdir(config, workdir)
    run = build(config, workdir)
    if distributed.is_primary():
        outputs.write_json(workdir / "config.json", config.to_dict())
    state, meta = _restore_or_init(run)
    start = int(jax.device_get(run.runner.saveable_state(state).step))
    log = outputs.MetricsLog(workdir / "metrics.jsonl", keep_through=start,
                             writes=distributed.is_primary())
    best = _Best(run, workdir, meta.get("early_stopping"))
    last_eval = None
    try:
        if start < config.train.steps and not meta.get("stopped_early"):
            trained = _train(run, state, meta, start, log, best, step_hook)
            if trained is None:
                return None
            state, meta, last_eval = trained
        final_state = best.final_state(run, state)
    finally:
        best.close()
    run.checkpointer.close()
    # The last step evaluated `state`; a restored best (or an already finished run) is evaluated.
    final_eval = (last_eval if final_state is state and last_eval is not None
                  else evaluate(run, final_state))
    return _write_summary(run, workdir, log, final_state, final_eval, meta, best.summary())


def _train(run: Run, state: TrainState, meta: dict, start: int, log: outputs.MetricsLog,
           best: _Best, step_hook) -> tuple[TrainState, dict, dict] | None:
    """Steps from `start` to `train.steps` or an early stop; (state, meta of its last checkpoint,
    its evaluation), or None after a SIGTERM/SIGINT."""
    train = run.config.train
    batcher = make_batcher(run.splits.train, train.batch_size, run.config.seed,
                           run.config.data.get("sampling", "uniform"), run.splits.num_classes)
    if meta:
        batcher.restore(meta["data"])
    window = _Window(run.task.summarize, meta.get("window"))
    wall_before, t0 = meta.get("wall_s", 0.0), time.perf_counter()
    progress = outputs.Progress(train.steps, start, quiet=not distributed.is_primary())
    profiler = StepProfiler(run.checkpointer.directory.parent, start, train.profile_steps,
                            train.steps)

    def save(step: int, stopped_early: bool = False) -> dict:
        window.flush()
        saved_meta = {"data": batcher.state(), "window": window.sums,
                      "wall_s": wall_before + time.perf_counter() - t0,
                      "early_stopping": best.state(), "stopped_early": stopped_early}
        run.checkpointer.save(step, run.runner.saveable_state(state), saved_meta)
        return saved_meta

    try:
        with _StopRequest() as stop:
            for step in range(start + 1, train.steps + 1):
                profiler.before(step)
                state, sums = run.runner.train_step(state, next(batcher))
                profiler.after(step, sums)
                window.push(step, sums)
                last = step == train.steps
                row = {}
                if step % train.log_every == 0 or last:
                    row.update(window.take())
                    row["steps_per_s"] = progress.rate(step)
                stop_early = False
                if step % train.eval_every == 0 or last:
                    evaluated = evaluate(run, state)
                    row.update(eval_row(evaluated))
                    stop_early = best.observe(step, row, run.runner.saveable_state(state))
                if row:
                    log.write({"step": step, **row})
                    progress.log({"step": step, **row})
                if stop_early:
                    progress.write(f"early stopping at step {step}: no improvement of "
                                   f"{best.stopper.metric} for {best.stopper.patience} evaluations")
                    return state, save(step, stopped_early=True), evaluated
                saved = step % train.checkpoint_every == 0 or last
                if saved:
                    latest = save(step)
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
            return state, latest, evaluated  # The last step always saves and evaluates.
    except FloatingPointError as e:
        bad_step, loss = e.args
        run.checkpointer.close()
        good = [s for s in run.checkpointer.steps() if s < bad_step]
        kept = f"the last good checkpoint is step {good[-1]}" if good else "no checkpoint was saved"
        raise DlxError(f"non-finite training loss ({loss}) at step {bad_step}; {kept} in "
                       f"{run.checkpointer.directory}") from None
    finally:
        profiler.stop()
        progress.close()


def _write_summary(run: Run, workdir: pathlib.Path, log: outputs.MetricsLog, state: TrainState,
                   eval_results: dict, meta: dict, early_stopping: dict | None) -> dict:
    """`summary.json` and `curves.png` of a finished run whose final (under early stopping: best)
    `state` evaluated to `eval_results`, and the task's own files if it has `write_artifacts`
    (listed under `artifacts`); returns the summary."""
    config, train = run.config, run.config.train
    saved = run.runner.saveable_state(state)
    last_step = log.rows[-1]["step"] if log.rows else None
    wall_s = meta.get("wall_s", 0.0)
    summary = {"experiment": config.name, "final_step": int(saved.step),
               "train_loss": log.last("train_loss"), "eval": eval_results,
               "wall_s": wall_s,
               "examples_per_s": (last_step or 0) * train.batch_size / max(wall_s, 1e-9),
               "devices": len(run.runner.devices), "parallel": train.parallel}
    if "baseline" in run.splits.metadata:
        summary["baseline"] = run.splits.metadata["baseline"]
    if early_stopping is not None:
        summary["early_stopping"] = {**early_stopping, "stopped_step": last_step,
                                     "stopped_early": bool(meta.get("stopped_early"))}
    reports = config_lib.names(train.reports)
    write_artifacts = getattr(run.task, "write_artifacts", None)
    # Every process joins the gather; process 0 alone computes the reports and writes the files.
    params = (distributed.host_copy(saved.params) if reports or write_artifacts is not None
              else None)
    if not distributed.is_primary():
        return summary
    if reports:
        summary["reports"] = {name: analysis.REPORTS[name](params) for name in reports}
    if write_artifacts is not None:  # Task-specific files (a seq2seq task's attention map).
        summary["artifacts"] = write_artifacts(params, run.splits, workdir)
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


def restore_for(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, task_type: type,
                requirement: str) -> tuple[Run, int, TrainState]:
    """(run, step, host state: params and batch_stats) of `workdir`'s newest checkpoint, for a
    command that needs a `task_type` task; another is refused with `dlx <requirement>; ...`."""
    run, step, state = restore_latest(config, workdir)
    if not isinstance(run.task, task_type):
        raise DlxError(f"dlx {requirement}; {config.name} trains "
                       f"model.name={config.model.name!r}")
    return run, step, jax.device_get(run.runner.saveable_state(state))


def evaluate_latest(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """`{"step": step, "eval": {split: metrics}}` of the newest readable checkpoint in `workdir`."""
    run, step, state = restore_latest(config, workdir)
    return {"step": step, "eval": evaluate(run, state)}
