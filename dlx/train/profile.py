"""`train.profile_steps`: a JAX profiler trace of a few steps, viewable in TensorBoard/Perfetto."""

from __future__ import annotations

import pathlib

import jax

from dlx.errors import DlxError

WARMUP_STEPS = 2  # Steps left out before the trace starts: they compile.


class StepProfiler:
    """Traces steps `first` .. `first + count - 1` (first = the run's first step + WARMUP_STEPS)
    into `workdir/profile/process_<i>`; inert when `count` is 0."""

    def __init__(self, workdir: pathlib.Path, start: int, count: int, last_step: int):
        if not isinstance(count, int) or count < 0:
            raise DlxError(f"train.profile_steps must be an int >= 0 (steps to trace), got "
                           f"{count!r}")
        self.first = start + 1 + WARMUP_STEPS
        self.last = min(self.first + count - 1, last_step) if count else -1
        self.directory = workdir / "profile" / f"process_{jax.process_index()}"
        self.active = False

    def before(self, step: int) -> None:
        """Starts the trace before step `first`."""
        if step == self.first and step <= self.last:
            self.directory.mkdir(parents=True, exist_ok=True)
            jax.profiler.start_trace(str(self.directory))
            self.active = True

    def after(self, step: int, outputs) -> None:
        """Stops the trace after step `last`, once its `outputs` are computed."""
        if self.active and step == self.last:
            jax.block_until_ready(outputs)
            self.stop()

    def stop(self) -> None:
        if self.active:
            jax.profiler.stop_trace()
            self.active = False
