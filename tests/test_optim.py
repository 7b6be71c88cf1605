"""dlx.optim: decay mask, weight decay, L1/L2 penalties, the step schedule and the optimiser zoo."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import config as config_lib
from dlx import optim
from dlx.errors import DlxError


class _Net(nn.Module):
    """Every kind of parameter the mask must tell apart."""

    @nn.compact
    def __call__(self, tokens, train: bool = False):
        x = nn.Embed(10, 4)(tokens)                       # embedding
        x = nn.Conv(3, (2,))(x)                           # kernel, bias
        x = nn.BatchNorm(use_running_average=not train)(x)  # scale, bias
        x = nn.Dense(5)(x.reshape(x.shape[0], -1))        # kernel, bias
        x = nn.LayerNorm()(x)                             # scale, bias
        return nn.Dense(2, use_bias=False)(x)             # kernel only


def _net_params():
    """The net's params, shapes from an abstract init (no compiles), values all 0.5."""
    variables = jax.eval_shape(_Net().init, jax.random.PRNGKey(0), jnp.zeros((2, 6), jnp.int32))
    return jax.tree.map(lambda s: jnp.full(s.shape, 0.5, s.dtype), variables["params"])


def _config(**fields):
    config = config_lib.base().optim
    for key, value in fields.items():
        config[key] = value
    return config


def _paths(tree, keep=lambda path, leaf: True):
    return {jax.tree_util.keystr(path) for path, leaf in
            jax.tree_util.tree_flatten_with_path(tree)[0] if keep(path, leaf)}


def _params():
    """A small tree with kernels, biases and a norm scale; no entry exactly 0 (for sign)."""
    rng = np.random.default_rng(1)
    return {"dense": {"kernel": _array(rng.uniform(0.1, 1.0, (3, 4)) * rng.choice([-1, 1], (3, 4))),
                      "bias": _array(rng.normal(size=(4,)))},
            "norm": {"scale": jnp.full((4,), 1.5), "bias": jnp.full((4,), 0.3)},
            "head": {"kernel": _array(rng.uniform(-1.0, -0.1, (4, 2)))}}


def _array(values):
    return jnp.asarray(values, jnp.float32)


def _grads(params, seed=2):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: _array(rng.normal(size=p.shape)), params)


def _step(tx, params, grads):
    updates, _ = tx.update(grads, tx.init(params), params)
    return optax.apply_updates(params, updates)


def _assert_trees_close(actual, expected, rtol=1e-6, atol=1e-7):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


def _kernel_sum(params, fn):
    return sum(jnp.sum(fn(p["kernel"])) for p in params.values() if "kernel" in p)


def test_decay_mask_is_true_exactly_on_kernels():
    params = _net_params()
    mask = optim.decay_mask(params)
    assert jax.tree.structure(mask) == jax.tree.structure(params)
    decayed = _paths(mask, lambda path, leaf: leaf)
    kernels = _paths(params, lambda path, leaf: path[-1].key == "kernel")
    assert decayed == kernels
    assert len(kernels) == 3  # Conv, Dense, head Dense
    names = {path[-1].key for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
    assert names == {"embedding", "kernel", "bias", "scale"}
    assert all(isinstance(m, bool) for m in jax.tree.leaves(mask))


def test_adamw_zero_gradient_decays_kernels_only():
    lr, wd = 0.1, 0.05
    params = _params()
    tx = optim.make(_config(name="adamw", lr=lr, weight_decay=wd), total_steps=10)
    new = _step(tx, params, jax.tree.map(jnp.zeros_like, params))
    for group in ("dense", "head"):
        np.testing.assert_allclose(new[group]["kernel"], params[group]["kernel"] * (1 - lr * wd),
                                   rtol=1e-6)
    for group, leaf in (("dense", "bias"), ("norm", "scale"), ("norm", "bias")):
        np.testing.assert_array_equal(new[group][leaf], params[group][leaf])


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_coupled_weight_decay_is_masked(name):
    wd = 0.05
    params = _params()
    grads = _grads(params)
    tx = optim.make(_config(name=name, lr=0.1, weight_decay=wd), total_steps=10)
    coupled = jax.tree.map(lambda g, p, m: g + wd * p if m else g,
                           grads, params, optim.decay_mask(params))
    reference = optim.make(_config(name=name, lr=0.1), total_steps=10)
    _assert_trees_close(_step(tx, params, grads), _step(reference, params, coupled))


@pytest.mark.parametrize("kind, strength, term", [
    ("l2", 0.3, lambda w: 0.5 * jnp.square(w)),
    ("l1", 0.2, jnp.abs),
])
def test_penalty_equals_sgd_on_penalised_loss(kind, strength, term):
    lr = 0.1
    params = _params()
    target = _grads(params, seed=3)

    def data_loss(p):
        return sum(jnp.sum(a * b) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(target)))

    def full_loss(p):
        return data_loss(p) + strength * _kernel_sum(p, term)

    config = _config(name="sgd", lr=lr, **{kind: strength})
    new = _step(optim.make(config, total_steps=10), params, jax.grad(data_loss)(params))
    expected = jax.tree.map(lambda p, g: p - lr * g, params, jax.grad(full_loss)(params))
    _assert_trees_close(new, expected)
    np.testing.assert_allclose(optim.penalty(params, config), strength * _kernel_sum(params, term),
                               rtol=1e-6)


def test_penalty_combines_l1_and_l2_and_is_zero_by_default():
    params = _params()
    config = _config(l1=0.2, l2=0.3)
    expected = 0.2 * _kernel_sum(params, jnp.abs) + 0.15 * _kernel_sum(params, jnp.square)
    np.testing.assert_allclose(jax.jit(lambda p: optim.penalty(p, config))(params), expected,
                               rtol=1e-6)
    assert float(optim.penalty(params, _config())) == 0.0


def test_penalty_is_added_after_clipping():
    lr, l2, clip = 1.0, 0.5, 1e-3
    params = _params()
    grads = jax.tree.map(lambda g: 100.0 * g, _grads(params))
    tx = optim.make(_config(name="sgd", lr=lr, l2=l2, clip=clip), total_steps=10)
    clipped, _ = optax.clip_by_global_norm(clip).update(grads, optax.EmptyState())
    expected = jax.tree.map(lambda p, g, m: p - lr * (g + l2 * p if m else g),
                            params, clipped, optim.decay_mask(params))
    _assert_trees_close(_step(tx, params, grads), expected)


@pytest.mark.parametrize("warmup", [0, 3])
def test_step_schedule_closed_form(warmup):
    lr, rate, decay_steps = 0.5, 0.3, 4
    fn = optim.schedule(_config(lr=lr, schedule="step", decay_steps=decay_steps, decay_rate=rate,
                                warmup_steps=warmup), total_steps=100)
    for t in range(warmup, warmup + 20):
        expected = lr * rate ** math.floor((t - warmup) / decay_steps)
        assert float(fn(t)) == pytest.approx(expected, rel=1e-6), t
    if warmup:
        assert float(fn(0)) == 0.0
        assert float(fn(1)) == pytest.approx(lr / warmup, rel=1e-6)


def test_step_schedule_drives_make():
    params = {"w": {"kernel": jnp.ones((2,))}}
    grads = {"w": {"kernel": jnp.ones((2,))}}
    tx = optim.make(_config(name="sgd", lr=1.0, schedule="step", decay_steps=2, decay_rate=0.5),
                    total_steps=10)
    state = tx.init(params)
    sizes = []
    for _ in range(5):
        updates, state = tx.update(grads, state, params)
        sizes.append(float(-updates["w"]["kernel"][0]))
    assert sizes == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])


@pytest.mark.parametrize("fields, key", [
    ({"decay_steps": 0}, "optim.decay_steps"),
    ({"decay_steps": -2}, "optim.decay_steps"),
    ({"decay_steps": 5, "decay_rate": 0.0}, "optim.decay_rate"),
    ({"decay_steps": 5, "decay_rate": 1.5}, "optim.decay_rate"),
])
def test_step_schedule_bad_values(fields, key):
    with pytest.raises(DlxError, match=key) as info:
        optim.schedule(_config(schedule="step", **fields), total_steps=10)
    assert "\n" not in str(info.value)
    with pytest.raises(DlxError, match=key):
        optim.make(_config(schedule="step", **fields), total_steps=10)


def test_step_schedule_rate_one_is_allowed():
    fn = optim.schedule(_config(schedule="step", decay_steps=2, decay_rate=1.0), total_steps=10)
    assert float(fn(7)) == pytest.approx(1e-3)


@pytest.mark.parametrize("name, reference", [
    ("sgd", lambda lr, c: optax.sgd(lr)),
    ("momentum", lambda lr, c: optax.sgd(lr, momentum=c.momentum)),
    ("nesterov", lambda lr, c: optax.sgd(lr, momentum=c.momentum, nesterov=True)),
    ("rmsprop", lambda lr, c: optax.rmsprop(lr)),
    ("adagrad", lambda lr, c: optax.adagrad(lr)),
    ("adam", lambda lr, c: optax.adam(lr)),
    ("adamw", lambda lr, c: optax.adamw(lr, weight_decay=c.weight_decay, mask={
        "dense": {"kernel": True, "bias": False}, "norm": {"scale": False, "bias": False},
        "head": {"kernel": True}})),
])
def test_optimisers_match_optax(name, reference):
    lr = 0.05
    config = _config(name=name, lr=lr, weight_decay=0.01 if name == "adamw" else 0.0)
    ours, theirs = optim.make(config, total_steps=10), reference(lr, config)
    params_a = params_b = _params()
    state_a, state_b = ours.init(params_a), theirs.init(params_b)
    for seed in range(3):
        grads = _grads(params_a, seed=seed)
        updates_a, state_a = ours.update(grads, state_a, params_a)
        updates_b, state_b = theirs.update(grads, state_b, params_b)
        params_a = optax.apply_updates(params_a, updates_a)
        params_b = optax.apply_updates(params_b, updates_b)
        _assert_trees_close(params_a, params_b)


def test_make_works_under_jit_on_flax_params():
    params = _net_params()
    tx = optim.make(_config(name="adamw", weight_decay=0.1, l1=1e-3, l2=1e-3, clip=1.0),
                    total_steps=10)
    state = tx.init(params)
    updates, _ = jax.jit(tx.update)(_grads(params), state, params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)


@pytest.mark.parametrize("fields, message", [
    ({"l2": -0.1}, "optim.l2 must be"),
    ({"l1": -1.0}, "optim.l1 must be"),
    ({"weight_decay": -0.01}, "optim.weight_decay must be"),
    ({"l2": float("nan")}, "optim.l2 must be"),
    ({"schedule": "exponential"}, "optim.schedule='exponential' is not known"),
    ({"name": "lamb"}, "optim.name='lamb' is not known"),
])
def test_bad_values_raise_one_line_errors(fields, message):
    with pytest.raises(DlxError, match=message) as info:
        optim.make(_config(**fields), total_steps=10)
    assert "\n" not in str(info.value)


def test_penalty_rejects_negative_strength():
    with pytest.raises(DlxError, match="optim.l1"):
        optim.penalty(_params(), _config(l1=-1.0))
