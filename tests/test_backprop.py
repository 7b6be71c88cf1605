"""Hand-written backprop vs jax.grad, optax and a numpy transcription of the note; perceptron."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import backprop
from dlx.errors import DlxError

ATOL = 1e-6


def _max_abs_diff(a: dict, b: dict) -> float:
    """Largest |a - b| over all entries, in float64 numpy (no eager JAX ops to compile)."""
    return max(float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))))
               for k in a)


@jax.jit
def _hand_and_autodiff_grads(params, X, y):
    """(`backward` from `forward`'s cache, `jax.grad(loss)`), in one compilation."""
    hand = backprop.backward(params, X, y, backprop.forward(params, X))
    return hand, jax.grad(backprop.loss)(params, X, y)


def _random_problem(seed: int, n_in: int, n_hidden: int, batch: int):
    """Normal X, 0/1 labels and normal params (so ReLUs are both on and off)."""
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.normal(size=(batch, n_in)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, batch), jnp.float32)
    params = {"W1": rng.normal(size=(n_in, n_hidden)), "b1": 0.1 * rng.normal(size=n_hidden),
              "W2": rng.normal(size=(n_hidden, 1)), "b2": 0.1 * rng.normal(size=1)}
    return X, y, {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}


def _note_numpy(X, y, W1, b1, W2, b2, lr=0.01, epochs=1000):
    """A literal float64 transcription of the note's training loop (biases (1, n) as there)."""
    def relu(x):
        return np.maximum(0, x)

    def relu_derivative(x):
        return (x > 0).astype(float)

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    for _ in range(epochs):
        z1 = X @ W1 + b1
        a1 = relu(z1)
        z2 = a1 @ W2 + b2
        a2 = sigmoid(z2)
        m = X.shape[0]
        dz2 = a2 - y.reshape(-1, 1)
        dW2 = a1.T @ dz2 / m
        db2 = np.sum(dz2, axis=0, keepdims=True) / m
        da1 = dz2 @ W2.T
        dz1 = da1 * relu_derivative(z1)
        dW1 = X.T @ dz1 / m
        db1 = np.sum(dz1, axis=0, keepdims=True) / m
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2
    return W1, b1, W2, b2, a2


def test_note_example_is_the_notes_seed_0_draw_and_leaves_global_rng_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    X, y, params = backprop.note_example()
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    rng = np.random.RandomState(0)
    np.testing.assert_allclose(params["W1"], rng.rand(2, 2), rtol=1e-7)
    np.testing.assert_allclose(params["W2"], rng.rand(2, 1), rtol=1e-7)
    assert {k: v.shape for k, v in params.items()} == {"W1": (2, 2), "b1": (2,), "W2": (2, 1),
                                                       "b2": (1,)}
    assert X.dtype == y.dtype == jnp.float32 and X.shape == (2, 2) and y.shape == (2,)


def test_init_and_forward_shapes():
    params = backprop.init(jax.random.PRNGKey(0), 5, 7)
    assert {k: v.shape for k, v in params.items()} == {"W1": (5, 7), "b1": (7,), "W2": (7, 1),
                                                       "b2": (1,)}
    cache = backprop.forward(params, jnp.ones((3, 5)))
    assert {k: v.shape for k, v in cache.items()} == {"z1_BH": (3, 7), "a1_BH": (3, 7),
                                                      "z2_B1": (3, 1), "a2_B1": (3, 1)}
    p_B = backprop.predict(params, jnp.ones((3, 5)))
    assert p_B.shape == (3,)
    np.testing.assert_allclose(p_B, 1 / (1 + np.exp(-np.asarray(cache["z2_B1"][:, 0]))),
                               atol=1e-6)


def test_backward_matches_jax_grad_on_the_note_example():
    X, y, params = backprop.note_example()
    grads, expected = _hand_and_autodiff_grads(params, X, y)
    assert jax.tree.map(jnp.shape, grads) == jax.tree.map(jnp.shape, expected)
    assert _max_abs_diff(grads, expected) <= ATOL


@pytest.mark.parametrize("n_in,n_hidden,batch", [(2, 2, 32), (5, 7, 64)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backward_matches_jax_grad_on_random_data(seed, n_in, n_hidden, batch):
    X, y, params = _random_problem(seed, n_in, n_hidden, batch)
    z1_BH = np.asarray(X) @ np.asarray(params["W1"]) + np.asarray(params["b1"])
    assert (z1_BH > 0).any() and (z1_BH < 0).any()  # Both branches of relu' are exercised.
    assert _max_abs_diff(*_hand_and_autodiff_grads(params, X, y)) <= ATOL


def test_loss_is_the_mean_bce_and_stable():
    X, y, params = _random_problem(0, 5, 7, 16)
    p_B = np.asarray(backprop.predict(params, X), np.float64)
    y64 = np.asarray(y, np.float64)
    expected = -np.mean(y64 * np.log(p_B) + (1 - y64) * np.log(1 - p_B))
    np.testing.assert_allclose(backprop.loss(params, X, y), expected, rtol=1e-5)
    # Saturated logits: finite loss and gradients where log(sigmoid) would give inf/nan.
    big = {**params, "b2": jnp.array([200.0])}
    value, grads = jax.jit(jax.value_and_grad(backprop.loss))(big, X, y)
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("problem", ["note", "random"])
def test_train_matches_optax_sgd_on_jax_grad(problem):
    if problem == "note":
        (X, y, params), lr, steps = backprop.note_example(), 0.1, 200
    else:
        (X, y, params), lr, steps = _random_problem(3, 5, 7, 32), 0.05, 200
    trained, losses_S = backprop.train(params, X, y, lr, steps)

    opt = optax.sgd(lr)

    @jax.jit
    def reference(p):
        def body(carry, _):
            p, state = carry
            value, g = jax.value_and_grad(backprop.loss)(p, X, y)
            updates, state = opt.update(g, state, p)
            return (optax.apply_updates(p, updates), state), value

        (p, _), values = jax.lax.scan(body, (p, opt.init(p)), None, length=steps)
        return p, values

    expected, expected_losses = reference(params)
    assert losses_S.shape == (steps,)
    assert _max_abs_diff(trained, expected) <= ATOL
    np.testing.assert_allclose(losses_S, expected_losses, atol=ATOL)
    # sgd_step is one step of train.
    one, first_loss = backprop.sgd_step(params, X, y, lr)
    assert _max_abs_diff(one, backprop.train(params, X, y, lr, 1)[0]) == 0.0
    assert float(first_loss) == float(losses_S[0])


def test_notes_loop_reduces_loss_and_matches_a_numpy_transcription():
    X, y, params = backprop.note_example()
    trained, losses_S = backprop.train(params, X, y, 0.01, 1000)
    assert losses_S.shape == (1000,)
    assert float(losses_S[-1]) < float(losses_S[0])
    assert bool(jnp.all(jnp.diff(losses_S) <= 1e-7))

    rng = np.random.RandomState(0)
    X64 = np.array([[0.1, 0.2], [0.3, 0.4]])
    y64 = np.array([0, 1])
    W1, W2 = rng.rand(2, 2), rng.rand(2, 1)
    W1, b1, W2, b2, _ = _note_numpy(X64, y64, W1, np.zeros((1, 2)), W2, np.zeros((1, 1)))
    expected = {"W1": W1, "b1": b1[0], "W2": W2, "b2": b2[0]}
    assert _max_abs_diff({k: np.asarray(v, np.float64) for k, v in trained.items()},
                         expected) <= 1e-5

    # The note's loss line broadcasts y_(2,) against a2_(2,1) into a 2x2 matrix: not the BCE.
    a2 = np.asarray(backprop.predict(trained, X), np.float64).reshape(-1, 1)
    buggy = -np.mean(y64 * np.log(a2) + (1 - y64) * np.log(1 - a2))
    pairs = -(y64[None, :] * np.log(a2) + (1 - y64[None, :]) * np.log(1 - a2))
    np.testing.assert_allclose(buggy, pairs.mean())
    correct = float(backprop.loss(trained, X, y))
    np.testing.assert_allclose(correct, -np.mean(y64 * np.log(a2[:, 0])
                                                 + (1 - y64) * np.log(1 - a2[:, 0])), rtol=1e-5)
    assert abs(buggy - correct) > 1e-3


GATES_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)


@pytest.mark.parametrize("gate,y", [("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1])])
def test_perceptron_learns_and_or(gate, y):
    w, b, acc_E = backprop.perceptron_train(GATES_X, np.array(y), epochs=20)
    assert acc_E.shape == (20,)
    assert float(acc_E[-1]) == 1.0, gate
    np.testing.assert_array_equal(backprop.perceptron_predict(w, b, GATES_X), y)


@pytest.mark.parametrize("lr", [1.0, 0.1])
def test_perceptron_cannot_learn_xor(lr):
    _, _, acc_E = backprop.perceptron_train(GATES_X, np.array([0, 1, 1, 0]), epochs=50, lr=lr)
    assert float(acc_E.max()) <= 0.75


@pytest.mark.parametrize("call", ["forward", "predict", "loss", "backward", "sgd_step", "train"])
def test_bad_shapes_raise_one_line_errors(call):
    X, y, params = backprop.note_example()
    X3 = jnp.ones((2, 3))
    y3 = jnp.zeros((3,))
    cache = backprop.forward(params, X)
    calls = {"forward": lambda X, y: backprop.forward(params, X),
             "predict": lambda X, y: backprop.predict(params, X),
             "loss": lambda X, y: backprop.loss(params, X, y),
             "backward": lambda X, y: backprop.backward(params, X, y, cache),
             "sgd_step": lambda X, y: backprop.sgd_step(params, X, y, 0.1),
             "train": lambda X, y: backprop.train(params, X, y, 0.1, 3)}
    with pytest.raises(DlxError, match=r"^X has shape \(2, 3\); expected \(batch, 2\)") as e:
        calls[call](X3, y)
    assert "\n" not in str(e.value)
    if call not in ("forward", "predict"):
        with pytest.raises(DlxError, match=r"^y has shape \(3,\); expected \(2,\)"):
            calls[call](X, y3)


def test_bad_params_and_perceptron_inputs_raise():
    X, y, params = backprop.note_example()
    with pytest.raises(DlxError, match=r"W2 has shape \(3, 1\); expected \(2, 1\)"):
        backprop.forward({**params, "W2": jnp.ones((3, 1))}, X)
    with pytest.raises(DlxError, match="lack b2"):
        backprop.loss({k: v for k, v in params.items() if k != "b2"}, X, y)
    with pytest.raises(DlxError, match=r"^y has shape \(3,\)"):
        backprop.perceptron_train(GATES_X, np.zeros(3), epochs=2)
    with pytest.raises(DlxError, match=r"^X has shape \(4, 3\); expected \(batch, 2\)"):
        backprop.perceptron_predict(jnp.zeros(2), jnp.zeros(()), jnp.ones((4, 3)))
