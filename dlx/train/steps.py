"""Pure train and eval steps; `axis_name` is set only under pmap, where they reduce across devices."""

from __future__ import annotations

import jax
import optax

from dlx.train.state import TrainState


def step_rng(state: TrainState, axis_name: str | None) -> jax.Array:
    """`fold_in(rng, step)`, and the device index under pmap, so a resumed run draws the same keys."""
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:
        rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    return rng


def train_step(state: TrainState, batch, *, task, tx: optax.GradientTransformation,
               axis_name: str | None = None):
    """One optimiser update on `batch`; returns (new state, metric sums over the global batch)."""
    def loss_of(params):
        return task.loss(params, state.batch_stats, batch, step_rng(state, axis_name), train=True)

    (_, (sums, batch_stats)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        sums = jax.lax.psum(sums, axis_name)
        batch_stats = jax.lax.pmean(batch_stats, axis_name)
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
