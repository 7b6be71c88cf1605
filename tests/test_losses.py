"""Losses against optax and numpy references, masking, class weights and sharded reduction."""

from __future__ import annotations

import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO, emulated_devices_flags

from dlx import losses


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _logits_labels(seed=0, batch=12, classes=7, scale=4.0):
    rng = np.random.default_rng(seed)
    logits_BC = (scale * rng.normal(size=(batch, classes))).astype(np.float32)
    labels_B = rng.integers(0, classes, batch)
    return logits_BC, labels_B


@pytest.mark.parametrize("use_mask", [False, True])
def test_cross_entropy_with_class_weights_matches_formula(use_mask):
    logits_BC, labels_B = _logits_labels()
    weights_C = np.linspace(0.2, 3.0, 7).astype(np.float32)
    where_B = np.arange(12) < 8 if use_mask else np.ones(12, bool)
    nll_B = -np.take_along_axis(_np_log_softmax(logits_BC), labels_B[:, None], -1)[:, 0]
    w_B = weights_C[labels_B] * where_B
    expected = (w_B * nll_B).sum() / w_B.sum()
    got = losses.cross_entropy(logits_BC, labels_B, where_B if use_mask else None,
                               weights=weights_C)
    chex.assert_trees_all_close(got, expected, rtol=1e-5)
    assert not np.isclose(expected, nll_B[where_B].mean(), rtol=1e-3)  # The weights matter here.


def test_cross_entropy_sum_keeps_its_positional_call():
    logits_BC, labels_B = _logits_labels()
    where_B = np.arange(12) < 5
    reference_B = optax.softmax_cross_entropy_with_integer_labels(logits_BC, labels_B)
    chex.assert_trees_all_close(losses.cross_entropy_sum(logits_BC, labels_B, where_B),
                                reference_B[:5].sum(), rtol=1e-6)


def test_masked_cross_entropy_is_sum_over_real_tokens_over_global_count():
    rng = np.random.default_rng(0)
    logits_BTV = (3 * rng.normal(size=(4, 6, 9))).astype(np.float32)
    labels_BT = rng.integers(0, 9, (4, 6))
    mask_BT = np.arange(6)[None, :] < np.array([6, 1, 3, 2])[:, None]
    token_BT = np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits_BTV, labels_BT))
    expected = token_BT[mask_BT].sum() / mask_BT.sum()
    mean_of_row_means = np.mean([row[m].mean() for row, m in zip(token_BT, mask_BT)])
    got = losses.masked_cross_entropy(logits_BTV, labels_BT, mask_BT)
    chex.assert_trees_all_close(got, expected, rtol=1e-6)
    assert not np.isclose(got, mean_of_row_means, rtol=1e-3)


def test_masked_cross_entropy_class_weights_and_padded_garbage():
    rng = np.random.default_rng(1)
    logits_BTV = (3 * rng.normal(size=(3, 5, 4))).astype(np.float32)
    labels_BT = rng.integers(0, 4, (3, 5))
    mask_BT = np.arange(5)[None, :] < np.array([5, 2, 4])[:, None]
    weights_V = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
    nll_BT = -np.take_along_axis(_np_log_softmax(logits_BTV), labels_BT[..., None], -1)[..., 0]
    w_BT = weights_V[labels_BT] * mask_BT
    expected = (w_BT * nll_BT).sum() / w_BT.sum()
    logits_BTV[~mask_BT] = np.inf  # Padding may hold anything; it must not reach the loss.
    got = losses.masked_cross_entropy(logits_BTV, labels_BT, mask_BT, weights=weights_V)
    chex.assert_trees_all_close(got, expected, rtol=1e-5)


_SHARDED_CODE = """
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from dlx import losses
assert len(jax.devices()) == 8, jax.devices()
rng = np.random.default_rng(0)
logits = (3 * rng.normal(size=(16, 5, 11))).astype(np.float32)
labels = rng.integers(0, 11, (16, 5))
mask = np.arange(5)[None, :] < rng.integers(1, 6, 16)[:, None]
sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data"))
args = [jax.device_put(a, sharding) for a in (logits, labels, mask)]
assert len(args[0].sharding.device_set) == 8
print(repr(float(jax.jit(losses.masked_cross_entropy)(*args))))
"""


def test_masked_cross_entropy_sharded_over_eight_devices_uses_global_count():
    env = dict(os.environ, XLA_FLAGS=emulated_devices_flags(8), JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", _SHARDED_CODE], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rng = np.random.default_rng(0)  # Same draws as the subprocess.
    logits_BTV = (3 * rng.normal(size=(16, 5, 11))).astype(np.float32)
    labels_BT = rng.integers(0, 11, (16, 5))
    mask_BT = np.arange(5)[None, :] < rng.integers(1, 6, 16)[:, None]
    nll_BT = -np.take_along_axis(_np_log_softmax(logits_BTV), labels_BT[..., None], -1)[..., 0]
    expected = nll_BT[mask_BT].sum() / mask_BT.sum()
    per_device = [nll_BT[i:i + 2][mask_BT[i:i + 2]].mean() for i in range(0, 16, 2)]
    got = float(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert not np.isclose(got, np.mean(per_device), rtol=1e-3)


@pytest.mark.parametrize("use_mask", [False, True])
def test_nll_matches_optax_on_log_softmax(use_mask):
    logits_BC, labels_B = _logits_labels(seed=2)
    where = np.arange(12) % 3 != 0 if use_mask else None
    reference_B = optax.softmax_cross_entropy_with_integer_labels(logits_BC, labels_B)
    expected = reference_B[where].mean() if use_mask else reference_B.mean()
    got = losses.nll(jax.nn.log_softmax(logits_BC), labels_B, where)
    chex.assert_trees_all_close(got, expected, rtol=1e-5)


def test_nll_with_class_weights_matches_formula():
    logits_BC, labels_B = _logits_labels(seed=3)
    log_probs_BC = _np_log_softmax(logits_BC)
    weights_C = np.arange(1, 8, dtype=np.float32)
    w_B = weights_C[labels_B]
    expected = (w_B * -log_probs_BC[np.arange(12), labels_B]).sum() / w_B.sum()
    chex.assert_trees_all_close(losses.nll(log_probs_BC, labels_B, weights=weights_C), expected,
                                rtol=1e-5)


@pytest.mark.parametrize("use_mask", [False, True])
def test_binary_cross_entropy_matches_optax(use_mask):
    rng = np.random.default_rng(4)
    logits_B = (5 * rng.normal(size=20)).astype(np.float32)
    labels_B = rng.uniform(size=20).astype(np.float32)  # Soft labels are allowed.
    where = np.arange(20) < 13 if use_mask else None
    reference_B = optax.sigmoid_binary_cross_entropy(logits_B, labels_B)
    expected = reference_B[:13].mean() if use_mask else reference_B.mean()
    chex.assert_trees_all_close(losses.binary_cross_entropy(logits_B, labels_B, where), expected,
                                rtol=1e-5)


def test_binary_cross_entropy_is_finite_and_exact_for_huge_logits():
    logits_B = jnp.array([1000.0, -1000.0, 1000.0, -1000.0])
    labels_B = jnp.array([1.0, 0.0, 0.0, 1.0])
    loss = losses.binary_cross_entropy(logits_B, labels_B)
    chex.assert_trees_all_close(loss, 1000.0 / 2, rtol=1e-6)  # Two rows right (0), two cost 1000.


def test_mse_matches_optax_l2_loss_and_masks_leading_axes():
    rng = np.random.default_rng(5)
    pred_BD = rng.normal(size=(6, 3)).astype(np.float32)
    target_BD = rng.normal(size=(6, 3)).astype(np.float32)
    chex.assert_trees_all_close(losses.mse(pred_BD, target_BD),
                                2 * optax.l2_loss(pred_BD, target_BD).mean(), rtol=1e-6)
    where_B = np.array([True, False, True, True, False, False])
    expected = ((pred_BD - target_BD)[where_B] ** 2).mean()
    chex.assert_trees_all_close(losses.mse(pred_BD, target_BD, where_B), expected, rtol=1e-6)


def test_contrastive_matches_numpy_formula():
    rng = np.random.default_rng(6)
    a_BD = rng.normal(size=(10, 4)).astype(np.float32)
    b_BD = (a_BD + rng.normal(scale=0.5, size=(10, 4))).astype(np.float32)
    same_B = np.arange(10) % 2 == 0
    d_B = np.sqrt(((a_BD - b_BD) ** 2).sum(-1))
    margin = 1.5
    loss_B = np.where(same_B, d_B ** 2, np.maximum(margin - d_B, 0.0) ** 2)
    assert (np.maximum(margin - d_B, 0.0)[~same_B] > 0).any()  # Some hinges are active.
    got = losses.contrastive(a_BD, b_BD, same_B, margin=margin)
    chex.assert_trees_all_close(got, loss_B.mean(), rtol=1e-5)
    where_B = np.arange(10) < 7
    chex.assert_trees_all_close(losses.contrastive(a_BD, b_BD, same_B, margin, where_B),
                                loss_B[:7].mean(), rtol=1e-5)


def test_info_nce_matches_numpy_with_in_batch_negatives():
    rng = np.random.default_rng(7)
    q_BD = rng.normal(size=(8, 5)).astype(np.float32)
    k_BD = (q_BD + rng.normal(scale=0.8, size=(8, 5))).astype(np.float32)
    qn = q_BD / np.linalg.norm(q_BD, axis=-1, keepdims=True)
    kn = k_BD / np.linalg.norm(k_BD, axis=-1, keepdims=True)
    expected = -np.diag(_np_log_softmax(qn @ kn.T / 0.2)).mean()
    chex.assert_trees_all_close(losses.info_nce(q_BD, k_BD, temperature=0.2), expected, rtol=1e-5)
    chex.assert_trees_all_close(losses.info_nce(3 * q_BD, 0.5 * k_BD, temperature=0.2), expected,
                                rtol=1e-5)  # Only directions matter.


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_matches_numpy_formula(gamma):
    logits_BC, labels_B = _logits_labels(seed=8)
    where_B = np.arange(12) < 10
    weights_C = np.linspace(0.5, 2.0, 7).astype(np.float32)
    logp_B = _np_log_softmax(logits_BC.astype(np.float64))[np.arange(12), labels_B]
    loss_B = -((1 - np.exp(logp_B)) ** gamma) * logp_B
    chex.assert_trees_all_close(losses.focal(logits_BC, labels_B, gamma, where_B),
                                loss_B[:10].mean(), rtol=1e-5)
    w_B = weights_C[labels_B] * where_B
    chex.assert_trees_all_close(losses.focal(logits_BC, labels_B, gamma, where_B, weights_C),
                                (w_B * loss_B).sum() / w_B.sum(), rtol=1e-5)


def test_focal_with_gamma_zero_is_cross_entropy():
    logits_BC, labels_B = _logits_labels(seed=9)
    chex.assert_trees_all_close(losses.focal(logits_BC, labels_B, gamma=0.0),
                                losses.cross_entropy(logits_BC, labels_B), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_softmax_nll_and_its_gradient_equal_the_log_softmax_expression(dtype):
    rng = np.random.default_rng(11)
    logits_BTV = jnp.asarray(6 * rng.normal(size=(3, 4, 50)), dtype)
    labels_BT = jnp.asarray(rng.integers(0, 50, (3, 4)))
    g_BT = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)

    def plain(logits):
        logp = jax.nn.log_softmax(logits.astype(jnp.float32))
        return -jnp.take_along_axis(logp, labels_BT[..., None], axis=-1)[..., 0]

    nll_BT = losses.softmax_nll(logits_BTV, labels_BT)
    assert nll_BT.dtype == jnp.float32
    chex.assert_trees_all_close(nll_BT, plain(logits_BTV), rtol=1e-6, atol=1e-6)
    grad = jax.grad(lambda x: (g_BT * losses.softmax_nll(x, labels_BT)).sum())(logits_BTV)
    expected = jax.grad(lambda x: (g_BT * plain(x)).sum())(logits_BTV)
    assert grad.dtype == dtype
    chex.assert_trees_all_close(grad.astype(jnp.float32), expected.astype(jnp.float32),
                                rtol=1e-5, atol=1e-6)


def test_cross_entropy_sum_fused_backward_equals_the_plain_path():
    logits_BC, labels_B = _logits_labels(seed=12)
    where_B = np.arange(12) < 9
    weights_C = np.linspace(0.5, 2.0, 7).astype(np.float32)

    def total(logits, fused):
        return losses.cross_entropy_sum(logits, labels_B, where_B, weights_C,
                                        fused_backward=fused)

    chex.assert_trees_all_close(total(logits_BC, True), total(logits_BC, False), rtol=1e-6)
    chex.assert_trees_all_close(jax.grad(total)(logits_BC, True),
                                jax.grad(total)(logits_BC, False), rtol=1e-5, atol=1e-7)


def test_losses_compute_in_float32_from_bfloat16():
    logits_BC, labels_B = _logits_labels(seed=10)
    loss = losses.focal(jnp.asarray(logits_BC, jnp.bfloat16), labels_B)
    assert loss.dtype == jnp.float32 and loss.shape == ()


def test_gradients_are_finite_at_edge_cases():
    confident_BC = jnp.array([[50.0, -50.0, 0.0], [0.0, 0.0, 0.0]])  # Row 0 has p_y == 1.0.
    labels_B = jnp.array([0, 2])
    emb_BD = jnp.ones((2, 3))

    @jax.jit
    def all_grads():
        return {
            "cross_entropy": jax.grad(losses.cross_entropy)(confident_BC, labels_B),
            "masked": jax.grad(losses.masked_cross_entropy)(
                confident_BC[None], labels_B[None], jnp.array([[True, False]])),
            "nll": jax.grad(losses.nll)(jax.nn.log_softmax(confident_BC), labels_B),
            "bce": jax.grad(losses.binary_cross_entropy)(jnp.array([1e3, -1e3]),
                                                         jnp.array([0.0, 1.0])),
            "focal": jax.grad(losses.focal)(confident_BC, labels_B),
            "focal_gamma0": jax.grad(losses.focal)(confident_BC, labels_B, 0.0),
            # Identical embeddings put d = 0, where sqrt's derivative is infinite.
            "contrastive": jax.grad(losses.contrastive, argnums=(0, 1))(
                emb_BD, emb_BD, jnp.array([True, False])),
            "info_nce": jax.grad(losses.info_nce, argnums=(0, 1))(
                jnp.zeros((2, 3)).at[0].set(1.0), jnp.eye(2, 3)),
            "mse": jax.grad(losses.mse)(emb_BD, jnp.zeros((2, 3))),
        }

    chex.assert_tree_all_finite(all_grads())
