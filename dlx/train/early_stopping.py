"""Early stopping on an evaluated metric (e.g. `eval_val_loss`), with patience and a minimum delta."""

from __future__ import annotations

import dataclasses

import ml_collections

from dlx.errors import DlxError

METRIC_MODES = {"loss": "min", "accuracy": "max"}


def metric_mode(metric: str, eval_splits: tuple[str, ...]) -> str:
    """'min' or 'max' for a metric named `eval_<split>_<loss|accuracy>` of an evaluated split."""
    prefix, _, rest = metric.partition("_")
    split, _, name = rest.partition("_")
    if prefix != "eval" or split not in eval_splits or name not in METRIC_MODES:
        wanted = ", ".join(f"eval_{s}_{m}" for s in eval_splits for m in METRIC_MODES)
        raise DlxError(f"train.early_stopping.metric={metric!r} is not an evaluated metric; "
                       f"expected one of: {wanted} (add the split to train.eval_splits)")
    return METRIC_MODES[name]


@dataclasses.dataclass
class EarlyStopping:
    """Counts evaluations without an improvement of more than `min_delta`; stops after `patience`."""
    metric: str
    mode: str
    patience: int
    min_delta: float
    best: float | None = None
    best_step: int = 0
    bad_evals: int = 0

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict,
                    eval_splits: tuple[str, ...]) -> "EarlyStopping | None":
        settings = config.train.early_stopping
        if not (isinstance(settings.patience, int) and settings.patience > 0):
            raise DlxError(f"train.early_stopping.patience must be a positive int, "
                           f"got {settings.patience!r}")
        if settings.min_delta < 0:
            raise DlxError(f"train.early_stopping.min_delta must be >= 0, got {settings.min_delta}")
        if not settings.metric:
            return None
        return cls(settings.metric, metric_mode(settings.metric, eval_splits), settings.patience,
                   float(settings.min_delta))

    def update(self, step: int, value: float) -> bool:
        """Records an evaluation; True if it is the new best (then save the state as the best)."""
        gain = (self.best - value if self.mode == "min" else value - self.best
                ) if self.best is not None else float("inf")
        if gain > self.min_delta:
            self.best, self.best_step, self.bad_evals = value, step, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_evals >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals}

    def restore(self, saved: dict) -> None:
        self.best, self.best_step, self.bad_evals = (saved["best"], saved["best_step"],
                                                     saved["bad_evals"])
