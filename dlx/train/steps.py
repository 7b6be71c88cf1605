"""Pure train and eval steps; `axis_name` is set only under pmap, where they reduce across devices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from dlx.errors import DlxError
from dlx.train.state import TrainState


def step_rng(state: TrainState, axis_name: str | None) -> jax.Array:
    """`fold_in(rng, step)`, and the device index under pmap, so a resumed run draws the same keys."""
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:
        rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    return rng


def micro_batches(batch, k: int):
    """`(B, ...)` leaves -> `(k, B / k, ...)`; micro-batch i takes rows i, i + k, ... so that each
    device of a batch-sharded leading axis holds an equal part of every micro-batch."""
    return jax.tree.map(lambda x: x.reshape((x.shape[0] // k, k) + x.shape[1:]).swapaxes(0, 1),
                        batch)


def gradients(state: TrainState, batch, rng: jax.Array, *, task, accumulate_steps: int = 1,
              axis_name: str | None = None):
    """(loss gradients, metric sums, new batch_stats) over `batch`, summed across devices under pmap.

    The gradient is that of the mean loss over every example (or predicted token) of the global
    batch: each part's mean-loss gradient is weighted by its `sums["count"]` and the total divided
    by the global count, exact however the examples (e.g. masked tokens) fall on devices and
    micro-batches. A single part is its own global batch, so its gradient is used as it is.

    With `accumulate_steps` = k > 1 the batch is cut into k equal micro-batches scanned one after
    another (peak memory of one micro-batch). BatchNorm statistics are carried from one
    micro-batch to the next.
    """
    grad_fn = jax.value_and_grad(
        lambda params, batch_stats, micro, key: task.loss(params, batch_stats, micro, key,
                                                          train=True), has_aux=True)
    weight = lambda grads, sums: jax.tree.map(lambda g: g * sums["count"], grads)
    if accumulate_steps == 1:
        (_, (sums, batch_stats)), grads = grad_fn(state.params, state.batch_stats, batch, rng)
        if axis_name is None:
            return grads, sums, batch_stats
        grads = weight(grads, sums)
    else:
        micro = micro_batches(batch, accumulate_steps)

        def accumulate(carry, inputs):
            grads_sum, sums_total, batch_stats = carry
            index, micro_batch = inputs
            (_, (sums, batch_stats)), grads = grad_fn(state.params, batch_stats, micro_batch,
                                                      jax.random.fold_in(rng, index))
            add = lambda a, b: jax.tree.map(jnp.add, a, b)
            return (add(grads_sum, weight(grads, sums)), add(sums_total, sums), batch_stats), None

        first = jax.tree.map(lambda x: x[0], micro)
        (_, (sums_shape, _)), grads_shape = jax.eval_shape(grad_fn, state.params,
                                                           state.batch_stats, first, rng)
        zeros = lambda tree: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree)
        (grads, sums, batch_stats), _ = jax.lax.scan(
            accumulate, (zeros(grads_shape), zeros(sums_shape), state.batch_stats),
            (jnp.arange(accumulate_steps), micro))
    if axis_name is not None:
        grads = jax.lax.psum(grads, axis_name)
        sums = jax.lax.psum(sums, axis_name)
        batch_stats = jax.lax.pmean(batch_stats, axis_name)
    count = jnp.maximum(sums["count"], 1.0)
    return jax.tree.map(lambda g: g / count, grads), sums, batch_stats


def train_step(state: TrainState, batch, *, task, tx: optax.GradientTransformation,
               axis_name: str | None = None, accumulate_steps: int = 1):
    """One optimiser update on `batch`; returns (new state, metric sums over the global batch).

    A task with its own `train_step(state, batch, rng, tx, axis_name) -> (state, sums)` (several
    players updated in turn, each with its own part of `opt_state`: see `init_opt_state` in
    `dlx.train.loop.build`) makes the update instead, from `step_rng`; it reduces its gradients
    and sums across `axis_name` itself. The step counter is advanced here either way.
    """
    own_step = getattr(task, "train_step", None)
    if own_step is not None:
        if accumulate_steps != 1:
            raise DlxError(f"{type(task).__name__} makes its own updates; "
                           f"optim.accumulate_steps must be 1, got {accumulate_steps}")
        new_state, sums = own_step(state, batch, step_rng(state, axis_name), tx, axis_name)
        return new_state.replace(step=state.step + 1), sums
    grads, sums, batch_stats = gradients(state, batch, step_rng(state, axis_name), task=task,
                                         accumulate_steps=accumulate_steps, axis_name=axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                              opt_state=opt_state, batch_stats=batch_stats)
    return new_state, sums


def eval_step(state: TrainState, batch, *, task, axis_name: str | None = None):
    """Metric sums of the model in eval mode over the real rows of `batch`."""
    _, (sums, _) = task.loss(state.params, state.batch_stats, batch, state.rng, train=False)
    if axis_name is not None:
        sums = jax.lax.psum(sums, axis_name)
    return sums
