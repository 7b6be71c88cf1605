"""LSTM/GRU: a NumPy per-step reference, padding, scan structure, learning, errors, torch parity."""

from __future__ import annotations

import functools
import io
import json
from contextlib import redirect_stdout

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend.core import jaxprs_in_params

from conftest import load_benchmark
from dlx.errors import DlxError
from dlx.nn import rnn as rnn_module
from dlx.nn.rnn import RNN, GRUCell, LSTMCell, RNNClassifier, from_torch_state_dict

KEY = jax.random.PRNGKey(0)
B, T, F, H = 4, 6, 3, 5
LENGTHS = np.array([6, 3, 1, 5])
GATES = {"lstm": 4, "gru": 3}
CONFIGS = [(cell_type, bidirectional) for cell_type in ("lstm", "gru")
           for bidirectional in (False, True)]


def _ids(config) -> str:
    return f"{config[0]}-{'bi' if config[1] else 'uni'}"


def _inputs(seed: int = 0, shape: tuple[int, ...] = (B, T, F)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _random_params(cell_type: str, num_layers: int = 2, bidirectional: bool = True,
                   features: int = F, seed: int = 1) -> dict:
    """Random `RNN` params (every bias nonzero, so each gate slice matters), built without init."""
    rng = np.random.default_rng(seed)
    gh = GATES[cell_type] * H
    params = {}
    for layer in range(num_layers):
        fan_in = features if layer == 0 else (1 + bidirectional) * H
        for suffix in ("", "_reverse")[:1 + bidirectional]:
            shapes = {"kernel_ih": (fan_in, gh), "bias_ih": (gh,), "kernel_hh": (H, gh),
                      "bias_hh": (gh,)}
            params[f"l{layer}{suffix}"] = {
                name: jnp.asarray(0.5 * rng.normal(size=shape), jnp.float32)
                for name, shape in shapes.items()}
    return params


@functools.partial(jax.jit, static_argnums=(0, 4))
def _apply(model: nn.Module, params: dict, x, lengths_B=None, method: str = "__call__"):
    """`model.apply` jitted: one compile per shape instead of one per eager op."""
    return model.apply({"params": params}, x, lengths_B, method=method)


def _run(model: RNN, params: dict, x_BTF, lengths_B=None):
    """`(y_BT(D·H), states)` of `model` from `outputs_and_states`."""
    return _apply(model, params, x_BTF, lengths_B, "outputs_and_states")


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def _reference_direction(cell_type: str, p: dict, x_TF: np.ndarray, reverse: bool):
    """Per-step float64 loop of the torch equations, gate by gate: `x_TF` -> `(y_TH, h_H, c_H)`."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    hidden = p["kernel_hh"].shape[0]

    def gate(k: int, x_F: np.ndarray, h_H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cols = slice(k * hidden, (k + 1) * hidden)
        return (x_F @ p["kernel_ih"][:, cols] + p["bias_ih"][cols],
                h_H @ p["kernel_hh"][:, cols] + p["bias_hh"][cols])

    h_H, c_H = np.zeros(hidden), np.zeros(hidden)
    y_TH = np.zeros((len(x_TF), hidden))
    for t in (reversed(range(len(x_TF))) if reverse else range(len(x_TF))):
        x_F = x_TF[t].astype(np.float64)
        if cell_type == "lstm":
            i = _sigmoid(sum(gate(0, x_F, h_H)))
            f = _sigmoid(sum(gate(1, x_F, h_H)))
            g = np.tanh(sum(gate(2, x_F, h_H)))
            o = _sigmoid(sum(gate(3, x_F, h_H)))
            c_H = f * c_H + i * g
            h_H = o * np.tanh(c_H)
        else:
            r = _sigmoid(sum(gate(0, x_F, h_H)))
            z = _sigmoid(sum(gate(1, x_F, h_H)))
            xn, hn = gate(2, x_F, h_H)
            n = np.tanh(xn + r * hn)
            h_H = (1 - z) * n + z * h_H
        y_TH[t] = h_H
    return y_TH, h_H, c_H


def _reference(cell_type: str, params: dict, x_TF: np.ndarray, num_layers: int,
               bidirectional: bool):
    """Unpadded single sequence through the stack: `(y_T(D·H), [(h_H, c_H) per layer/dir])`."""
    states, y = [], x_TF
    for layer in range(num_layers):
        outs = []
        for suffix in ("", "_reverse")[:1 + bidirectional]:
            y_TH, h_H, c_H = _reference_direction(cell_type, params[f"l{layer}{suffix}"], y,
                                                  reverse=bool(suffix))
            outs.append(y_TH)
            states.append((h_H, c_H))
        y = np.concatenate(outs, axis=-1)
    return y, states


def _hidden(state):
    return state[0] if isinstance(state, tuple) else state


def _check_against_reference(cell_type, bidirectional, params, x, y, states, lengths) -> None:
    """Row b of the batch equals the reference run on that row truncated to its length."""
    for b, length in enumerate(lengths):
        y_ref, states_ref = _reference(cell_type, params, x[b, :length], 2, bidirectional)
        np.testing.assert_allclose(y[b, :length], y_ref, atol=1e-6)
        np.testing.assert_array_equal(y[b, length:], 0)  # Padded outputs are zero.
        for state, (h_ref, c_ref) in zip(states, states_ref, strict=True):
            np.testing.assert_allclose(_hidden(state)[b], h_ref, atol=1e-6)
            if cell_type == "lstm":
                np.testing.assert_allclose(state[1][b], c_ref, atol=1e-6)


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_scan_matches_per_step_reference(config):
    cell_type, bidirectional = config
    x, params = _inputs(), _random_params(cell_type, bidirectional=bidirectional)
    model = RNN(cell_type, H, num_layers=2, bidirectional=bidirectional)
    y, states = _run(model, params, x)
    assert y.shape == (B, T, (1 + bidirectional) * H)
    _check_against_reference(cell_type, bidirectional, params, x, y, states, [T] * B)
    lengths = np.array([6, 3, 1, 0])
    y, states = _run(model, params, x, lengths)
    _check_against_reference(cell_type, bidirectional, params, x, y, states, lengths)


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_padding_values_never_reach_outputs_or_states(config):
    cell_type, bidirectional = config
    x, params = _inputs(), _random_params(cell_type, bidirectional=bidirectional)
    model = RNN(cell_type, H, num_layers=2, bidirectional=bidirectional)
    y, states = _run(model, params, x, LENGTHS)
    garbage = np.where(np.arange(T)[None, :, None] < LENGTHS[:, None, None], x, 1e3)
    y_garbage, states_garbage = _run(model, params, garbage, LENGTHS)
    np.testing.assert_array_equal(y, y_garbage)
    chex.assert_trees_all_equal(states, states_garbage)
    y_full, states_full = _run(model, params, x, np.full((B,), T))
    y_none, states_none = _run(model, params, x)
    np.testing.assert_allclose(y_full, y_none, atol=1e-6)
    chex.assert_trees_all_close(states_full, states_none, atol=1e-6)


def test_padded_row_equals_the_row_truncated_to_its_length():
    x, params = _inputs(), _random_params("lstm")
    model = RNN("lstm", H, num_layers=2, bidirectional=True)
    y, states = _run(model, params, x, LENGTHS)
    row, length = 1, LENGTHS[1]
    y_row, states_row = _run(model, params, x[row:row + 1, :length])
    np.testing.assert_allclose(y[row, :length], y_row[0], atol=1e-6)
    for state, state_row in zip(jax.tree.leaves(states), jax.tree.leaves(states_row)):
        np.testing.assert_allclose(state[row], state_row[0], atol=1e-6)


def test_return_sequences_false_is_the_last_layers_final_hidden_state():
    x, params = _inputs(), _random_params("lstm")
    _, states = _run(RNN("lstm", H, 2, True), params, x, LENGTHS)
    last = _apply(RNN("lstm", H, 2, True, return_sequences=False), params, x, LENGTHS)
    np.testing.assert_array_equal(last, np.concatenate([states[2][0], states[3][0]], axis=-1))


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_gradients_are_finite_and_zero_at_padding(cell_type):
    x, params = _inputs(), _random_params(cell_type)
    model = RNN(cell_type, H, num_layers=2, bidirectional=True)

    def loss(params, x):
        return jnp.sum(model.apply({"params": params}, x, LENGTHS) ** 2)

    grad_params, grad_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    for g in jax.tree.leaves(grad_params):
        assert np.all(np.isfinite(g)) and np.any(g != 0)
    real_BT = np.arange(T)[None, :] < LENGTHS[:, None]
    assert np.all(grad_x[~real_BT] == 0) and np.all(np.any(grad_x[real_BT] != 0, axis=-1))


def test_init_param_tree_and_lstm_forget_bias_of_one():
    for cell_type, bidirectional in CONFIGS:
        model = RNN(cell_type, H, num_layers=2, bidirectional=bidirectional)
        shapes = jax.eval_shape(model.init, KEY, _inputs())["params"]
        assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(
            jnp.shape, _random_params(cell_type, bidirectional=bidirectional))
    cell = jax.jit(RNN("lstm", H).init)(KEY, _inputs())["params"]["l0"]
    total = cell["bias_ih"] + cell["bias_hh"]  # torch's effective bias.
    np.testing.assert_array_equal(cell["bias_ih"][H:2 * H], 1)
    np.testing.assert_array_equal(np.delete(total, np.s_[H:2 * H]), 0)
    np.testing.assert_array_equal(cell["bias_hh"], 0)
    for k in range(4):  # Each gate's recurrent block is orthogonal.
        block = cell["kernel_hh"][:, k * H:(k + 1) * H]
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)


def _all_eqns(jaxpr):
    """Every equation of `jaxpr` and, recursively, of its sub-jaxprs."""
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jaxprs_in_params(eqn.params):
            yield from _all_eqns(sub)


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
@pytest.mark.parametrize("layers,bidirectional,lengths", [(1, False, None), (2, True, LENGTHS)])
def test_input_projection_is_one_matmul_outside_the_scan(cell_type, layers, bidirectional,
                                                         lengths):
    x, params = _inputs(), _random_params(cell_type, layers, bidirectional)
    model = RNN(cell_type, H, num_layers=layers, bidirectional=bidirectional)
    jaxpr = jax.make_jaxpr(lambda p, x: model.apply({"params": p}, x, lengths))(params, x).jaxpr
    eqns = list(_all_eqns(jaxpr))
    scans = [e for e in eqns if e.primitive.name == "scan"]
    runs = layers * (1 + bidirectional)
    assert len(scans) == runs
    in_scans = []
    for scan in scans:
        body = [e for e in _all_eqns(scan.params["jaxpr"].jaxpr)
                if e.primitive.name == "dot_general"]
        assert len(body) == 1  # Only h @ kernel_hh, on (B, H) carries.
        assert body[0].invars[0].aval.shape == (B, H)
        in_scans += body
    dots = [e for e in eqns if e.primitive.name == "dot_general"]
    outside = [e for e in dots if all(e is not d for d in in_scans)]
    assert len(outside) == runs  # One projection per cell, over all T steps at once.
    assert all(e.invars[0].aval.shape[:2] == (B, T) for e in outside)


def test_cells_work_with_flax_nn_rnn():
    x = _inputs()
    for cell_class, cell_type in ((LSTMCell, "lstm"), (GRUCell, "gru")):
        params = _random_params(cell_type, 1, False)
        theirs = jax.jit(nn.RNN(cell_class(H)).apply)({"params": {"cell": params["l0"]}}, x)
        np.testing.assert_allclose(theirs, _apply(RNN(cell_type, H), params, x), atol=1e-6)
    carry = LSTMCell(H).initialize_carry(KEY, (B, F))
    assert jax.tree.map(jnp.shape, carry) == ((B, H), (B, H))
    assert GRUCell(H).initialize_carry(KEY, (B, F)).shape == (B, H)


def test_classifier_shapes_and_dropout():
    model = RNNClassifier("gru", H, num_layers=2, bidirectional=True, num_outputs=10, dropout=0.5)
    x_BT = _inputs(shape=(2, 40))  # MNIST-1D-like: (batch, 40) with no feature axis.
    abstract = jax.eval_shape(model.init, KEY, x_BT)
    shapes = jax.tree.map(jnp.shape, abstract["params"])
    assert shapes["head"] == {"kernel": (2 * H, 10), "bias": (10,)}
    assert shapes["rnn"]["l0"]["kernel_ih"] == (1, 3 * H)
    assert jax.eval_shape(model.apply, abstract, x_BT).shape == (2, 10)
    model = RNNClassifier("gru", H, num_layers=2, bidirectional=False, num_outputs=10,
                          dropout=0.5)
    x_BT = x_BT[:, :T]
    params = {"rnn": _random_params("gru", bidirectional=False, features=1),
              "head": {"kernel": jnp.ones((H, 10)), "bias": jnp.zeros((10,))}}
    logits = _apply(model, params, x_BT)
    assert logits.shape == (2, 10)
    np.testing.assert_array_equal(_apply(model, params, x_BT[:, :, None]), logits)

    @jax.jit
    def train_logits(seed):
        return model.apply({"params": params}, x_BT, train=True,
                           rngs={"dropout": jax.random.PRNGKey(seed)})

    assert not np.allclose(train_logits(1), train_logits(2))
    assert not np.allclose(train_logits(1), logits)


def test_classifier_learns_sign_of_a_padded_sum():
    rng = np.random.default_rng(0)
    n, steps = 128, 8
    x_BT = rng.normal(size=(n, steps)).astype(np.float32)
    lengths = rng.integers(2, steps + 1, size=n)
    real_BT = np.arange(steps)[None, :] < lengths[:, None]
    labels = (np.sum(np.where(real_BT, x_BT, 0), axis=1) > 0).astype(np.int32)
    x_BT = np.where(real_BT, x_BT, 3.0)  # Padding that would flip the sum if it leaked in.
    model = RNNClassifier("lstm", 16, num_layers=1, bidirectional=False, num_outputs=2)
    optimizer = optax.adam(1e-2)

    def loss_fn(params):
        logits = model.apply({"params": params}, x_BT, lengths)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit
    def train():
        params = model.init(KEY, x_BT, lengths)["params"]

        def step(state, _):
            params, opt_state = state
            grads = jax.grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), length=200)
        return jnp.mean(jnp.argmax(model.apply({"params": params}, x_BT, lengths), -1) == labels)

    assert train() >= 0.9


def _one_line_error(fn, match: str) -> None:
    with pytest.raises(DlxError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_bad_inputs_raise_one_line_errors():
    x, model = _inputs(), RNN("lstm", H)
    params = {"params": _random_params("lstm", 1, False)}
    _one_line_error(lambda: model.apply(params, x[:, :, 0]), "expected \\(batch, time, features")
    _one_line_error(lambda: model.apply(params, x, LENGTHS[:, None]), "lengths_B has shape")
    _one_line_error(lambda: model.apply(params, x, LENGTHS[:3]), "lengths_B has shape")
    _one_line_error(lambda: model.apply(params, x, np.array([7, 1, 1, 1])), "lengths_B must lie")
    _one_line_error(lambda: model.apply(params, x, np.array([-1, 1, 1, 1])), "lengths_B must lie")
    _one_line_error(lambda: model.apply(params, x, LENGTHS.astype(np.float32)), "integer dtype")
    _one_line_error(lambda: RNN("rnn", H).apply(params, x), "cell_type='rnn'")
    classifier = RNNClassifier("gru", H, 1, False, 2)
    _one_line_error(lambda: classifier.apply({}, x[:, :, :, None]), "RNNClassifier input has")


def _torch_style(params: dict) -> dict:
    """dlx params -> a torch-named state dict of NumPy arrays (the inverse conversion)."""
    return {f"{name}_{cell}": np.asarray(value).T
            for cell, p in params.items()
            for name, value in (("weight_ih", p["kernel_ih"]), ("weight_hh", p["kernel_hh"]),
                                ("bias_ih", p["bias_ih"]), ("bias_hh", p["bias_hh"]))}


def test_from_state_dict_round_trips_numpy_and_rejects_bad_dicts():
    params = _random_params("gru")
    state_dict = _torch_style(params)
    assert "weight_ih_l1_reverse" in state_dict and state_dict["weight_ih_l0"].shape == (3 * H, F)
    chex.assert_trees_all_equal(from_torch_state_dict(state_dict, "gru", 2, True), params)
    missing = {k: v for k, v in state_dict.items() if k != "bias_hh_l1_reverse"}
    _one_line_error(lambda: from_torch_state_dict(missing, "gru", 2, True), "lacks 'bias_hh_l1_")
    wrong = dict(state_dict, weight_ih_l1=state_dict["weight_ih_l1"][:, :-1])
    _one_line_error(lambda: from_torch_state_dict(wrong, "gru", 2, True), "weight_ih_l1' has shape")
    _one_line_error(lambda: from_torch_state_dict(state_dict, "lstm", 2, True), "has shape")
    _one_line_error(lambda: from_torch_state_dict(state_dict, "gru", 1, True), "unexpected keys")
    _one_line_error(lambda: from_torch_state_dict(state_dict, "gru", 3, True), "lacks")
    _one_line_error(lambda: from_torch_state_dict(state_dict, "rnn", 2, True), "cell_type='rnn'")


def _torch_rnn(cell_type: str, bidirectional: bool):
    torch = pytest.importorskip("torch", exc_type=ImportError)  # Absent or broken: skip.
    torch.manual_seed(0)
    cls = torch.nn.LSTM if cell_type == "lstm" else torch.nn.GRU
    return torch, cls(F, H, num_layers=2, bidirectional=bidirectional, batch_first=True)


def _compare_with_torch(states, y, y_torch, torch_state, real_BT) -> None:
    """dlx outputs at real steps and every layer's final h (and c) equal torch's."""
    np.testing.assert_allclose(np.where(real_BT[:, :, None], y, 0), y_torch.numpy(), atol=1e-5)
    h_n, c_n = torch_state if isinstance(torch_state, tuple) else (torch_state, None)
    np.testing.assert_allclose(np.stack([_hidden(s) for s in states]), h_n.numpy(), atol=1e-5)
    if c_n is not None:
        np.testing.assert_allclose(np.stack([s[1] for s in states]), c_n.numpy(), atol=1e-5)


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_torch_parity(config):
    cell_type, bidirectional = config
    torch, torch_rnn = _torch_rnn(cell_type, bidirectional)
    params = from_torch_state_dict(torch_rnn.state_dict(), cell_type, 2, bidirectional)
    x = _inputs(seed=3)
    with torch.no_grad():
        y_torch, state = torch_rnn(torch.from_numpy(x))
    y, states = _run(RNN(cell_type, H, 2, bidirectional), params, x)
    _compare_with_torch(states, y, y_torch, state, np.ones((B, T), bool))


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_torch_parity_with_packed_sequences(config):
    cell_type, bidirectional = config
    torch, torch_rnn = _torch_rnn(cell_type, bidirectional)
    params = from_torch_state_dict(torch_rnn.state_dict(), cell_type, 2, bidirectional)
    x = _inputs(seed=4)
    utils = torch.nn.utils.rnn
    packed = utils.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(LENGTHS),
                                        batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, state = torch_rnn(packed)
    y_torch, _ = utils.pad_packed_sequence(out, batch_first=True, total_length=T)
    y, states = _run(RNN(cell_type, H, 2, bidirectional), params, x, LENGTHS)
    real_BT = np.arange(T)[None, :] < LENGTHS[:, None]
    np.testing.assert_array_equal(y_torch.numpy()[~real_BT], 0)
    _compare_with_torch(states, y, y_torch, state, real_BT)
    last = _apply(RNN(cell_type, H, 2, bidirectional, return_sequences=False), params, x, LENGTHS)
    h_n = state[0] if cell_type == "lstm" else state
    np.testing.assert_allclose(last, torch.cat(tuple(h_n[-1 - bidirectional:]), -1), atol=1e-5)


def _plain_scan_direction(cell_type, reverse, params, x_BTF, mask_BT):
    """`_scan_direction` without its hand-written VJP: autodiff differentiates the loop itself."""
    return rnn_module.CELLS[cell_type].scan(params, x_BTF, mask_BT, reverse, save=False)[0]


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
@pytest.mark.parametrize("layers,bidirectional,lengths",
                         [(1, False, None), (2, False, None), (2, True, None), (2, True, LENGTHS)])
def test_hand_written_gradients_equal_autodiff_of_the_plain_loop(cell_type, layers,
                                                                bidirectional, lengths,
                                                                monkeypatch):
    x, params = _inputs(), _random_params(cell_type, layers, bidirectional)
    model = RNN(cell_type, H, num_layers=layers, bidirectional=bidirectional)
    weights_BTD = jnp.asarray(_inputs(5, (B, T, (1 + bidirectional) * H)))

    def loss(params, x):  # Every output and every final state gets a cotangent.
        y, states = model.apply({"params": params}, x, lengths, method="outputs_and_states")
        return jnp.sum(jnp.sin(y) * weights_BTD) + sum(
            jnp.sum(jnp.cos(3 * leaf)) for leaf in jax.tree.leaves(states))

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)
    monkeypatch.setattr(rnn_module, "_scan_direction", _plain_scan_direction)
    plain_value, plain_grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)
    np.testing.assert_allclose(value, plain_value, rtol=1e-6)
    chex.assert_trees_all_close(grads, plain_grads, atol=1e-5)
    if lengths is not None:
        real_BT = np.arange(T)[None, :] < lengths[:, None]
        assert np.all(grads[1][~real_BT] == 0)


def _benchmark_module():
    """`benchmarks/rnn.py` imported as a module (it needs torch)."""
    pytest.importorskip("torch", exc_type=ImportError)
    return load_benchmark("rnn")


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_benchmark_steps_compute_the_same_loss_as_torch(cell_type, layers):
    bench = _benchmark_module()
    x_BTF = _inputs(6)
    module = bench.torch_rnn(cell_type, layers, F, H)
    dlx_step = bench.dlx_step(module, cell_type, layers, x_BTF)
    torch_step = bench.torch_step(module, x_BTF)
    losses = [(dlx_step(), torch_step()) for _ in range(2)]
    np.testing.assert_allclose(*losses[0], rtol=1e-5)  # Same weights, same computation.
    assert losses[1][0] < losses[0][0] and losses[1][1] < losses[0][1]  # Adam lowers mean(y^2).


def test_benchmark_quick_mode_prints_one_comparison_per_configuration():
    bench = _benchmark_module()
    out = io.StringIO()
    with redirect_stdout(out):
        bench.main(["--quick", "--layers", "1"])
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["name"] for r in records] == ["lstm-1layer-vs-torch", "gru-1layer-vs-torch"]
    for record in records:
        assert record["unit"] == "seq/s" and record["dlx"] > 0 and record["peer"] > 0
        assert record["ratio"] == pytest.approx(record["dlx"] / record["peer"], rel=1e-2)
