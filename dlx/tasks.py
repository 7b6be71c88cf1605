"""Tasks turn a model into the pure functions the trainer needs; the trainer never sees the model.

A task's `loss(params, batch_stats, batch, rng, train)` returns `(loss, (sums, new_batch_stats))`:
`loss` is the mean over the examples it saw (what is differentiated) and `sums` holds metric sums
plus `count`, so the host can divide global sums by global counts on any number of devices.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx import losses

Batch = dict[str, jax.Array]
# `augment(rng, x_B...) -> x_B...`: a random transform of the training inputs, run inside the step.
Augment = Callable[[jax.Array, jax.Array], jax.Array]
# Batch fields passed to the model after `x`, in this order, when the batch has them.
EXTRA_INPUTS = ("lengths",)
AUGMENT_STREAM = 1  # `fold_in(rng, AUGMENT_STREAM)` seeds augmentation; dropout keeps `rng`.


def model_inputs(batch: Batch) -> tuple[jax.Array, ...]:
    """`(x,)` plus `lengths_B` for right-padded sequences (any field of `EXTRA_INPUTS` present)."""
    return (batch["x"],) + tuple(batch[name] for name in EXTRA_INPUTS if name in batch)


@dataclasses.dataclass(frozen=True)
class Classification:
    """Softmax classification of `batch["x"]` into `batch["y"]`; `batch["mask"]` marks real rows.

    A batch with `lengths` (right-padded sequences) passes them to the model after `x`.
    `augment`, if given, transforms `x` in training steps only, with its own rng stream.
    """
    model: nn.Module
    augment: Augment | None = None

    def init(self, rng: jax.Array, batch: Batch) -> tuple[Any, Any]:
        """(params, batch_stats) for inputs shaped like `batch["x"]`; batch_stats is {} if unused."""
        variables = self.model.init({"params": rng, "dropout": rng}, *model_inputs(batch),
                                    train=False)
        return variables["params"], variables.get("batch_stats", {})

    def loss(self, params, batch_stats, batch: Batch, rng: jax.Array, train: bool):
        """Mean cross-entropy and metric sums (`loss`, `correct`, `count`) over real rows."""
        variables = {"params": params}
        if batch_stats:
            variables["batch_stats"] = batch_stats
        mutable = ["batch_stats"] if (train and batch_stats) else False
        inputs = model_inputs(batch)
        if train and self.augment is not None:
            inputs = (self.augment(jax.random.fold_in(rng, AUGMENT_STREAM), inputs[0]),
                      *inputs[1:])
        out = self.model.apply(variables, *inputs, train=train, rngs={"dropout": rng},
                               mutable=mutable)
        logits_BC, updates = out if mutable else (out, {})
        where_B = batch.get("mask")
        real_B = jnp.ones(batch["y"].shape, bool) if where_B is None else where_B
        count = real_B.sum()
        loss_sum = losses.cross_entropy_sum(logits_BC, batch["y"], real_B)
        correct = jnp.where(real_B, logits_BC.argmax(-1) == batch["y"], False).sum()
        sums = {"loss": loss_sum, "correct": correct.astype(jnp.float32),
                "count": count.astype(jnp.float32)}
        return loss_sum / jnp.maximum(count, 1), (sums, updates.get("batch_stats", batch_stats))


def summarize(sums: dict[str, float]) -> dict[str, float]:
    """Host-side: metric sums -> means (`loss`, `accuracy`)."""
    count = max(float(sums["count"]), 1.0)
    return {"loss": float(sums["loss"]) / count, "accuracy": float(sums["correct"]) / count}
