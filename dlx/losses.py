"""Losses; computed in float32 and reduced over real examples only."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _expand_to(where: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """A mask over the leading axes of `shape` (e.g. `where_B` for `x_BD`), broadcast to `shape`."""
    extra = len(shape) - where.ndim
    return jnp.broadcast_to(where.reshape(where.shape + (1,) * extra), shape)


def _weighted_mean(loss_X: jax.Array, where: jax.Array | None = None,
                   weight_X: jax.Array | None = None) -> jax.Array:
    """Scalar: sum(w * loss) / sum(w) over real entries, w = `weight_X` (1 if None); 0 if none."""
    real_X = (jnp.ones(loss_X.shape, bool) if where is None
              else _expand_to(where.astype(bool), loss_X.shape))
    w_X = jnp.ones(loss_X.shape, jnp.float32) if weight_X is None else weight_X.astype(jnp.float32)
    w_X = jnp.where(real_X, w_X, 0.0)
    # Selecting (not multiplying) keeps inf/nan from padded rows out of the sum.
    total = jnp.where(real_X, w_X * loss_X, 0.0).sum()
    denom = w_X.sum()
    return total / jnp.where(denom > 0, denom, 1.0)


def _class_weights(weights: jax.Array | None, labels_X: jax.Array) -> jax.Array | None:
    """Per-example weights `weights_C[labels_X]`, or None when `weights` is None."""
    return None if weights is None else jnp.asarray(weights, jnp.float32)[labels_X]


def _pick(logp_XC: jax.Array, labels_X: jax.Array) -> jax.Array:
    """`logp_XC[..., labels_X]` -> shape X."""
    return jnp.take_along_axis(logp_XC, labels_X[..., None], axis=-1)[..., 0]


def softmax_nll(logits_XC: jax.Array, labels_X: jax.Array) -> jax.Array:
    """`-log softmax(logits_XC)[labels_X]` (shape X, float32), as `jax.nn.log_softmax` computes it.

    Its backward pass is one elementwise `g · (softmax - onehot)` over `(X, C)` from the saved
    log-normaliser, where differentiating `log_softmax` and `take_along_axis` scatters the
    gradient into a zero `(X, C)` array first; for a 30k-word vocabulary that is a large share of
    a masked-LM step on CPU.
    """
    # As (N, C) rows: a (B, P, C) residual reshaped to the decoder's (N, C) gradient keeps XLA
    # from writing that gradient over the residual's buffer.
    logits_NC = logits_XC.reshape(-1, logits_XC.shape[-1]).astype(jnp.float32)
    return _softmax_nll(logits_NC, labels_X.reshape(-1)).reshape(labels_X.shape)


def _shifted_and_normaliser(logits_XC: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(logits - max, log Σ exp(logits - max))`, the two terms of `jax.nn.log_softmax`."""
    shifted_XC = logits_XC - logits_XC.max(-1, keepdims=True)
    return shifted_XC, jnp.log(jnp.exp(shifted_XC).sum(-1, keepdims=True))


@jax.custom_vjp
def _softmax_nll(logits_XC: jax.Array, labels_X: jax.Array) -> jax.Array:
    return _softmax_nll_forward(logits_XC, labels_X)[0]


def _softmax_nll_forward(logits_XC, labels_X):
    shifted_XC, log_norm_X1 = _shifted_and_normaliser(logits_XC)
    return (log_norm_X1[..., 0] - _pick(shifted_XC, labels_X),
            (shifted_XC, log_norm_X1, labels_X))


def _softmax_nll_backward(residuals, g_X):
    shifted_XC, log_norm_X1, labels_X = residuals
    classes_XC = jax.lax.broadcasted_iota(labels_X.dtype, shifted_XC.shape, shifted_XC.ndim - 1)
    onehot_XC = classes_XC == labels_X[..., None]
    return g_X[..., None] * (jnp.exp(shifted_XC - log_norm_X1) - onehot_XC), None


_softmax_nll.defvjp(_softmax_nll_forward, _softmax_nll_backward)


def _nll(logits_BC: jax.Array, labels_B: jax.Array, fused_backward: bool) -> jax.Array:
    """-log softmax(logits_BC)[y] through `softmax_nll` or plain `jax.nn.log_softmax`."""
    if fused_backward:
        return softmax_nll(logits_BC, labels_B)
    return -_pick(jax.nn.log_softmax(logits_BC.astype(jnp.float32)), labels_B)


def cross_entropy_sum(logits_BC: jax.Array, labels_B: jax.Array,
                      where_B: jax.Array | None = None,
                      weights: jax.Array | None = None, *,
                      fused_backward: bool = False) -> jax.Array:
    """Sum over real rows of -w_y log softmax(logits_BC)[y]; the caller divides by the count.

    `fused_backward` differentiates through `softmax_nll` (same values and gradients up to float
    rounding, faster over a wide vocabulary); off, results stay bit-for-bit those recorded for
    the classification experiments, whose over-fitted runs amplify rounding differences.
    """
    nll_B = _nll(logits_BC, labels_B, fused_backward)
    if weights is not None:
        nll_B = _class_weights(weights, labels_B) * nll_B
    if where_B is not None:
        nll_B = jnp.where(where_B, nll_B, 0.0)
    return nll_B.sum()


def cross_entropy(logits_BC: jax.Array, labels_B: jax.Array,
                  where_B: jax.Array | None = None,
                  weights: jax.Array | None = None, *,
                  fused_backward: bool = False) -> jax.Array:
    """Mean softmax cross-entropy over the real rows (all rows when `where_B` is None).

    With per-class `weights` (shape (C,)) it is sum(w_y * loss) / sum(w_y), as in PyTorch.
    `fused_backward`: see `cross_entropy_sum`.
    """
    return _weighted_mean(_nll(logits_BC, labels_B, fused_backward), where_B,
                          _class_weights(weights, labels_B))


def masked_cross_entropy(logits_BTV: jax.Array, labels_BT: jax.Array, mask_BT: jax.Array,
                         weights: jax.Array | None = None) -> jax.Array:
    """Scalar: sum over real tokens of the cross-entropy / global count of real tokens.

    Never a mean of per-row means, so every real token counts equally whatever its row's length;
    with `weights` (shape (V,)) it is sum(w_y * loss) / sum(w_y) over real tokens. Its gradient
    comes through `softmax_nll`'s fused backward pass (vocabulary-wide logits).
    """
    return cross_entropy(logits_BTV, labels_BT, mask_BT, weights,  # Any leading axes.
                         fused_backward=True)


def nll(log_probs_BC: jax.Array, labels_B: jax.Array, where: jax.Array | None = None,
        weights: jax.Array | None = None) -> jax.Array:
    """Scalar: mean over real rows of -log_probs_BC[y] (inputs are log-probabilities already)."""
    nll_B = -_pick(log_probs_BC.astype(jnp.float32), labels_B)
    return _weighted_mean(nll_B, where, _class_weights(weights, labels_B))


def binary_cross_entropy(logits_B: jax.Array, labels_B: jax.Array,
                         where: jax.Array | None = None) -> jax.Array:
    """Scalar: mean over real entries of -[y log σ(x) + (1-y) log σ(-x)]; labels may be soft."""
    logits_B = logits_B.astype(jnp.float32)
    labels_B = labels_B.astype(jnp.float32)
    loss_B = -(labels_B * jax.nn.log_sigmoid(logits_B)
               + (1.0 - labels_B) * jax.nn.log_sigmoid(-logits_B))
    return _weighted_mean(loss_B, where)


def mse(pred: jax.Array, target: jax.Array, where: jax.Array | None = None) -> jax.Array:
    """Scalar: mean over real entries of (pred - target)²; `where` masks leading axes of `pred`."""
    err = pred.astype(jnp.float32) - target.astype(jnp.float32)
    return _weighted_mean(err * err, where)


def contrastive(emb_a_BD: jax.Array, emb_b_BD: jax.Array, same_B: jax.Array,
                margin: float = 1.0, where: jax.Array | None = None) -> jax.Array:
    """Scalar: mean over real pairs of d² (same pair) or max(0, margin - d)² (different pair)."""
    diff_BD = emb_a_BD.astype(jnp.float32) - emb_b_BD.astype(jnp.float32)
    d2_B = (diff_BD * diff_BD).sum(-1)
    # Double where: sqrt has an infinite gradient at 0, which identical embeddings would hit.
    positive_B = d2_B > 0
    d_B = jnp.where(positive_B, jnp.sqrt(jnp.where(positive_B, d2_B, 1.0)), 0.0)
    hinge_B = jnp.maximum(margin - d_B, 0.0)
    loss_B = jnp.where(same_B.astype(bool), d2_B, hinge_B * hinge_B)
    return _weighted_mean(loss_B, where)


def _l2_normalize(x_BD: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows of `x_BD` scaled to unit L2 norm (zero rows stay zero, with finite gradients)."""
    return x_BD * jax.lax.rsqrt(jnp.maximum((x_BD * x_BD).sum(-1, keepdims=True), eps * eps))


def info_nce(query_BD: jax.Array, key_BD: jax.Array, temperature: float = 0.1) -> jax.Array:
    """Scalar: mean over rows i of cross-entropy of cos(q_i, k_j) / temperature, target j = i."""
    q_BD = _l2_normalize(query_BD.astype(jnp.float32))
    k_BD = _l2_normalize(key_BD.astype(jnp.float32))
    logits_BB = q_BD @ k_BD.T / temperature
    return cross_entropy(logits_BB, jnp.arange(logits_BB.shape[0]))


def _focal_B(logits_BC: jax.Array, labels_B: jax.Array, gamma: float) -> jax.Array:
    """Per-row -(1 - p_y)^gamma log p_y, shape B, in float32."""
    logp_y_B = _pick(jax.nn.log_softmax(logits_BC.astype(jnp.float32)), labels_B)
    # -expm1(log p) is 1 - p without cancellation when p is near 1.
    base_B = -jnp.expm1(logp_y_B)
    # Double where: d/dx x^gamma at x = 0 is 0 * inf = nan for gamma = 0 (p rounds to 1).
    positive_B = base_B > 0
    factor_B = jnp.where(positive_B, jnp.where(positive_B, base_B, 1.0) ** gamma,
                         jnp.zeros_like(base_B) ** gamma)
    return -factor_B * logp_y_B


def focal(logits_BC: jax.Array, labels_B: jax.Array, gamma: float = 2.0,
          where: jax.Array | None = None, weights: jax.Array | None = None) -> jax.Array:
    """Scalar: mean over real rows of -(1 - p_y)^gamma log p_y, p = softmax(logits_BC)."""
    return _weighted_mean(_focal_B(logits_BC, labels_B, gamma), where,
                          _class_weights(weights, labels_B))


def focal_sum(logits_BC: jax.Array, labels_B: jax.Array, gamma: float = 2.0,
              where_B: jax.Array | None = None, weights: jax.Array | None = None) -> jax.Array:
    """Scalar: sum over real rows of -w_y (1 - p_y)^gamma log p_y (Lin et al. 2017, w = α);
    gamma = 0 gives `cross_entropy_sum`; the caller divides by the count."""
    loss_B = _focal_B(logits_BC, labels_B, gamma)
    if weights is not None:
        loss_B = _class_weights(weights, labels_B) * loss_B
    if where_B is not None:
        loss_B = jnp.where(where_B, loss_B, 0.0)
    return loss_B.sum()


def balanced_class_weights(labels_N, num_classes: int) -> tuple[float, ...]:
    """weights_C = n / (C · n_c) (sklearn's "balanced"); classes absent from labels_N get 0."""
    counts_C = np.bincount(np.asarray(labels_N).reshape(-1), minlength=num_classes)
    return balanced_weights_of_counts(counts_C[:num_classes])


def balanced_weights_of_counts(counts_C) -> tuple[float, ...]:
    """weights_C = n / (C · n_c) for class counts n_c (n their sum); a class of count 0 gets 0."""
    counts_C = np.asarray(counts_C)
    n, num_classes = counts_C.sum(), len(counts_C)
    return tuple(float(n / (num_classes * c)) if c else 0.0 for c in counts_C)
