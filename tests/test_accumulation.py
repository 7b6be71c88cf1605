"""Gradient accumulation over k micro-batches equals one step on the k-times larger batch."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import tasks
from dlx.nn.mlp import MLP
from dlx.train import steps
from dlx.train.state import TrainState


def _setup(batch_size=64, seed=0):
    task = tasks.Classification(MLP(features=(32, 32), num_outputs=10))
    kx, ky, kinit = jax.random.split(jax.random.PRNGKey(seed), 3)
    batch = {"x": jax.random.normal(kx, (batch_size, 40)),
             "y": jax.random.randint(ky, (batch_size,), 0, 10)}
    params, batch_stats = task.init(kinit, batch)
    return task, batch, params, batch_stats


@pytest.mark.parametrize("k", [2, 4, 8])
def test_accumulated_update_equals_the_large_batch_update(k):
    task, batch, params, batch_stats = _setup()
    tx = optax.adam(1e-2)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                       batch_stats=batch_stats, rng=jax.random.PRNGKey(1))
    big = jax.jit(lambda s, b: steps.train_step(s, b, task=task, tx=tx))
    small = jax.jit(lambda s, b: steps.train_step(s, b, task=task, tx=tx, accumulate_steps=k))
    state_big, state_small = state, state
    for _ in range(3):
        state_big, sums_big = big(state_big, batch)
        state_small, sums_small = small(state_small, batch)
    chex.assert_trees_all_close(state_small.params, state_big.params, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(sums_small, sums_big, rtol=1e-5)


def test_accumulated_gradient_equals_jax_grad_of_the_mean_loss():
    task, batch, params, batch_stats = _setup(batch_size=48, seed=3)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=(),
                       batch_stats=batch_stats, rng=jax.random.PRNGKey(0))

    def mean_loss(p):
        logits = task.model.apply({"params": p}, batch["x"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    grads, sums, _ = jax.jit(lambda s: steps.gradients(s, batch, s.rng, task=task,
                                                       accumulate_steps=6))(state)
    chex.assert_trees_all_close(grads, jax.grad(mean_loss)(params), rtol=1e-5, atol=1e-6)
    assert float(sums["count"]) == 48


def test_micro_batches_interleave_rows():
    batch = {"x": np.arange(12).reshape(12, 1)}
    micro = steps.micro_batches(batch, 3)["x"]
    assert micro.shape == (3, 4, 1)
    np.testing.assert_array_equal(micro[1, :, 0], [1, 4, 7, 10])
