"""Hand-written backpropagation for a one-hidden-layer network, and the Rosenblatt perceptron.

The network of the source note: inputs `x_I`, a hidden layer of `H` ReLU units and one sigmoid
output, trained with the mean binary cross-entropy by plain gradient descent. For a batch `X_BI`:

    z1_BH = X_BI @ W1_IH + b1_H      a1_BH = relu(z1_BH)
    z2_B1 = a1_BH @ W2_H1 + b2_1     a2_B1 = sigmoid(z2_B1)
    L = -(1/B) sum_b [y_b log a2_b + (1 - y_b) log(1 - a2_b)]

The note's general formulas, for layer l with pre-activation z_l = W_l a_{l-1} + b_l:

    delta_L = dL/da_L ⊙ f'(z_L)                  (output layer)
    delta_l = (W_{l+1}^T delta_{l+1}) ⊙ f'(z_l)  (hidden layers)
    dL/dW_l = delta_l a_{l-1}^T,  dL/db_l = delta_l

With a sigmoid output and cross-entropy, dL/da2 ⊙ sigmoid'(z2) collapses to a2 - y, so per batch
(rows are examples, hence the transposes relative to the column-vector formulas):

    dz2_B1 = a2_B1 - y_B1            dW2 = a1^T dz2 / B   db2 = sum_b dz2 / B
    dz1_BH = (dz2 W2^T) ⊙ relu'(z1)  dW1 = X^T dz1 / B    db1 = sum_b dz1 / B

`backward` is exactly this, the note's code, without calling jax.grad.

The note's loss line has a broadcasting bug: `-np.mean(y * np.log(a2) + (1 - y) * np.log(1 - a2))`
with `y` of shape (2,) and `a2` of shape (2, 1) broadcasts to a (2, 2) matrix whose entry (i, j)
pairs prediction i with label j, so the printed "loss" is a mean over all prediction/label pairs,
not the BCE. Its gradient formulas (dz2 = a2 - y.reshape(-1, 1)) are those of the correct mean BCE,
which `loss` computes here, stably from the logit z2.

Params are a dict `{"W1": (I, H), "b1": (H,), "W2": (H, 1), "b2": (1,)}`; biases stay 1-D.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlx import losses
from dlx.errors import DlxError
from dlx.nn import activations

Params = dict[str, jax.Array]
"""`{"W1": W1_IH, "b1": b1_H, "W2": W2_H1, "b2": b2_1}`."""

_relu_grad = activations.derivative("relu")


def _check_params(params: Params) -> tuple[int, int]:
    """(I, H) of `params`, or a one-line DlxError naming the inconsistent entry."""
    missing = {"W1", "b1", "W2", "b2"} - set(params)
    if missing:
        raise DlxError(f"backprop params lack {', '.join(sorted(missing))}")
    W1, b1, W2, b2 = (jnp.shape(params[k]) for k in ("W1", "b1", "W2", "b2"))
    if len(W1) != 2:
        raise DlxError(f"backprop params W1 has shape {W1}; expected (inputs, hidden)")
    n_in, n_hidden = W1
    for name, got, want in (("b1", b1, (n_hidden,)), ("W2", W2, (n_hidden, 1)), ("b2", b2, (1,))):
        if tuple(got) != want:
            raise DlxError(f"backprop params {name} has shape {tuple(got)}; expected {want} "
                           f"for W1 of shape {(n_in, n_hidden)}")
    return n_in, n_hidden


def _check_inputs(n_in: int, X: jax.Array, y: jax.Array | None = None) -> None:
    """A one-line DlxError unless `X` is (B, n_in) and `y` (if given) is (B,)."""
    x_shape = jnp.shape(X)
    if len(x_shape) != 2 or x_shape[1] != n_in:
        raise DlxError(f"X has shape {tuple(x_shape)}; expected (batch, {n_in}) for {n_in} inputs")
    if y is not None and tuple(jnp.shape(y)) != (x_shape[0],):
        raise DlxError(f"y has shape {tuple(jnp.shape(y))}; expected ({x_shape[0]},), "
                       f"one label per row of X")


def note_example() -> tuple[jax.Array, jax.Array, Params]:
    """The note's data `X_BI` (2, 2), labels `y_B` (2,) and initial params (seed 0), as float32."""
    rng = np.random.RandomState(0)  # np.random.seed(0) semantics, global RNG untouched.
    W1 = rng.rand(2, 2)
    W2 = rng.rand(2, 1)
    X = jnp.asarray([[0.1, 0.2], [0.3, 0.4]], jnp.float32)
    y = jnp.asarray([0.0, 1.0], jnp.float32)
    params = {"W1": jnp.asarray(W1, jnp.float32), "b1": jnp.zeros((2,), jnp.float32),
              "W2": jnp.asarray(W2, jnp.float32), "b2": jnp.zeros((1,), jnp.float32)}
    return X, y, params


@functools.partial(jax.jit, static_argnames=("n_in", "n_hidden"))
def init(key: jax.Array, n_in: int, n_hidden: int) -> Params:
    """Params for `n_in` inputs, `n_hidden` units: weights U[0, 1) as in the note, zero biases."""
    k1, k2 = jax.random.split(key)
    return {"W1": jax.random.uniform(k1, (n_in, n_hidden), jnp.float32),
            "b1": jnp.zeros((n_hidden,), jnp.float32),
            "W2": jax.random.uniform(k2, (n_hidden, 1), jnp.float32),
            "b2": jnp.zeros((1,), jnp.float32)}


@jax.jit
def forward(params: Params, X_BI: jax.Array) -> dict[str, jax.Array]:
    """Cache `{"z1_BH", "a1_BH", "z2_B1", "a2_B1"}` of the forward pass on `X_BI`."""
    n_in, _ = _check_params(params)
    _check_inputs(n_in, X_BI)
    z1_BH = X_BI @ params["W1"] + params["b1"][None, :]
    a1_BH = activations.relu(z1_BH)
    z2_B1 = a1_BH @ params["W2"] + params["b2"][None, :]
    a2_B1 = activations.sigmoid(z2_B1)
    return {"z1_BH": z1_BH, "a1_BH": a1_BH, "z2_B1": z2_B1, "a2_B1": a2_B1}


def _loss_from_logits(z2_B1: jax.Array, y_B: jax.Array) -> jax.Array:
    """Scalar mean BCE of labels `y_B` against logits `z2_B1`."""
    return losses.binary_cross_entropy(z2_B1[:, 0], y_B)


@jax.jit
def loss(params: Params, X_BI: jax.Array, y_B: jax.Array) -> jax.Array:
    """Scalar mean binary cross-entropy of `y_B` (0/1 or soft) against the network on `X_BI`."""
    _check_inputs(_check_params(params)[0], X_BI, y_B)
    return _loss_from_logits(forward(params, X_BI)["z2_B1"], y_B)


@jax.jit
def backward(params: Params, X_BI: jax.Array, y_B: jax.Array,
             cache: dict[str, jax.Array]) -> Params:
    """Hand-written gradients of `loss` w.r.t. `params` (same keys and shapes), from `cache`."""
    _check_inputs(_check_params(params)[0], X_BI, y_B)
    m = X_BI.shape[0]
    y_B1 = jnp.asarray(y_B, cache["a2_B1"].dtype)[:, None]
    dz2_B1 = cache["a2_B1"] - y_B1  # delta_2: dL/da2 * sigmoid'(z2) for the per-example BCE.
    dW2_H1 = cache["a1_BH"].T @ dz2_B1 / m
    db2_1 = dz2_B1.sum(0) / m
    da1_BH = dz2_B1 @ params["W2"].T
    dz1_BH = da1_BH * _relu_grad(cache["z1_BH"])  # delta_1 = (W2^T delta_2) ⊙ relu'(z1).
    dW1_IH = X_BI.T @ dz1_BH / m
    db1_H = dz1_BH.sum(0) / m
    return {"W1": dW1_IH, "b1": db1_H, "W2": dW2_H1, "b2": db2_1}


@jax.jit
def sgd_step(params: Params, X_BI: jax.Array, y_B: jax.Array,
             lr: float | jax.Array) -> tuple[Params, jax.Array]:
    """One gradient-descent step: (params - lr * grads, loss at the params before the step)."""
    cache = forward(params, X_BI)
    grads = backward(params, X_BI, y_B, cache)
    new_params = {k: params[k] - lr * grads[k] for k in params}
    return new_params, _loss_from_logits(cache["z2_B1"], y_B)


@functools.partial(jax.jit, static_argnames="steps")
def train(params: Params, X_BI: jax.Array, y_B: jax.Array, lr: float | jax.Array,
          steps: int) -> tuple[Params, jax.Array]:
    """`steps` full-batch `sgd_step`s: (final params, `losses_S` before each step)."""
    def body(p, _):
        return sgd_step(p, X_BI, y_B, lr)

    return jax.lax.scan(body, params, None, length=steps)


@jax.jit
def predict(params: Params, X_BI: jax.Array) -> jax.Array:
    """Probabilities `p_B` = sigmoid(z2) of the positive class."""
    return forward(params, X_BI)["a2_B1"][:, 0]


@jax.jit
def perceptron_predict(w_I: jax.Array, b: jax.Array, X_BI: jax.Array) -> jax.Array:
    """0/1 predictions `yhat_B` = step(X_BI @ w_I + b) (int32)."""
    _check_inputs(jnp.shape(w_I)[0], X_BI)
    return activations.step(X_BI @ w_I + b).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames="epochs")
def _perceptron_scan(X_BI: jax.Array, y_B: jax.Array, epochs: int,
                     lr: float | jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    def example(wb, xy):
        w_I, b = wb
        x_I, y = xy
        err = y - activations.step(x_I @ w_I + b)
        return (w_I + lr * err * x_I, b + lr * err), None

    def epoch(wb, _):
        wb, _ = jax.lax.scan(example, wb, (X_BI, y_B))
        w_I, b = wb
        acc = (activations.step(X_BI @ w_I + b) == y_B).mean()
        return wb, acc

    wb0 = (jnp.zeros(X_BI.shape[1], X_BI.dtype), jnp.zeros((), X_BI.dtype))
    (w_I, b), acc_E = jax.lax.scan(epoch, wb0, None, length=epochs)
    return w_I, b, acc_E


def perceptron_train(X_BI: jax.Array, y_B: jax.Array, epochs: int,
                     lr: float = 1.0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Rosenblatt's rule w += lr (y - step(w·x + b)) x, online over rows: (w_I, b, `acc_E`).

    Weights start at zero; `acc_E` is the accuracy on (X_BI, y_B) after each epoch. Not gradient
    based: a single layer reaches 100 % on AND/OR but at most 75 % on the four XOR points.
    """
    X_BI = jnp.asarray(X_BI, jnp.float32)
    if X_BI.ndim != 2:
        raise DlxError(f"X has shape {X_BI.shape}; expected (batch, inputs)")
    _check_inputs(X_BI.shape[1], X_BI, y_B)
    if epochs < 1:
        raise DlxError(f"perceptron epochs={epochs}; expected at least 1")
    return _perceptron_scan(X_BI, jnp.asarray(y_B, jnp.float32), epochs, lr)
