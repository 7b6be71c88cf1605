"""The plain tanh RNN cell (torch parity, hand-written VJP) and per-step gradient norms."""

from __future__ import annotations

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from dlx import cli
from dlx import config as config_lib
from dlx import gradient_flow
from dlx.errors import DlxError
from dlx.nn import rnn as rnn_module
from dlx.nn.rnn import RNN, from_torch_state_dict

B, T, F, H = 3, 7, 4, 5
LENGTHS = np.array([7, 4, 1])


def _inputs(seed=0, shape=(B, T, F)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_simple_cell_matches_torch_rnn_with_packed_sequences():
    torch = pytest.importorskip("torch", exc_type=ImportError)
    torch.manual_seed(0)
    torch_rnn = torch.nn.RNN(F, H, num_layers=2, bidirectional=True, batch_first=True)
    params = from_torch_state_dict(torch_rnn.state_dict(), "simple", 2, True)
    x = _inputs(1)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(LENGTHS), batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, h_n = torch_rnn(packed)
    y_torch, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    y, states = RNN("simple", H, 2, True).apply({"params": params}, x, LENGTHS,
                                                method="outputs_and_states")
    np.testing.assert_allclose(y, y_torch.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.stack(states), h_n.numpy(), atol=1e-5)


def test_simple_cell_hand_written_gradients_equal_autodiff(monkeypatch):
    model = RNN("simple", H, num_layers=1, bidirectional=True)
    params = model.init(jax.random.PRNGKey(0), _inputs())["params"]
    weights_BTD = jnp.asarray(_inputs(5, (B, T, 2 * H)))

    def loss(params, x):
        y, states = model.apply({"params": params}, x, LENGTHS, method="outputs_and_states")
        return jnp.sum(jnp.sin(y) * weights_BTD) + sum(jnp.sum(jnp.cos(3 * s)) for s in states)

    x = jnp.asarray(_inputs(2))
    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)
    monkeypatch.setattr(rnn_module, "_scan_direction",
                        lambda cell, reverse, p, x_BTF, mask_BT: rnn_module.CELLS[cell].scan(
                            p, x_BTF, mask_BT, reverse, save=False)[0])
    plain_value, plain_grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)
    np.testing.assert_allclose(value, plain_value, rtol=1e-6)
    chex.assert_trees_all_close(grads, plain_grads, atol=1e-5)
    real_BT = np.arange(T)[None, :] < LENGTHS[:, None]
    assert np.all(grads[1][~real_BT] == 0)


@pytest.mark.parametrize("cell_type", ["simple", "lstm"])
def test_per_step_norms_equal_a_rerun_from_each_hidden_state(cell_type):
    params = gradient_flow.init_params(cell_type, H, F, "default", jax.random.PRNGKey(1), 1.5)
    steps = 5
    x_BTF = jnp.asarray(_inputs(3, (B, steps, F)))
    readout_H = jnp.asarray(_inputs(4, (H,)))
    norms_T = gradient_flow.gradient_norms_per_step(cell_type, params, x_BTF, readout_H)
    cell = rnn_module.CELLS[cell_type]
    xg_BTG = x_BTF @ params["kernel_ih"] + params["bias_ih"][None, None]

    def run_from(t, carry):  # The loss as a function of the carry after step t.
        for s in range(t + 1, steps):
            carry, _ = cell.recurrence(params["kernel_hh"], params["bias_hh"], carry, xg_BTG[:, s])
        return jnp.sum(gradient_flow._hidden(carry) @ readout_H)

    carry = gradient_flow._initial_carry(cell_type, B, H)
    for t in range(steps):
        carry, _ = cell.recurrence(params["kernel_hh"], params["bias_hh"], carry, xg_BTG[:, t])
        h_BH = gradient_flow._hidden(carry)
        grad_BH = jax.grad(lambda h: run_from(t, gradient_flow._with_hidden(carry, h)))(h_BH)
        np.testing.assert_allclose(norms_T[t], jnp.linalg.norm(grad_BH), rtol=1e-4)
    # Central finite difference of the loss along the gradient direction at t = 2.
    eps_BTH = jnp.zeros((B, steps, H))
    grad_BTH = jax.grad(gradient_flow.final_hidden_loss, argnums=4)(
        cell_type, params, x_BTF, readout_H, eps_BTH)
    direction_BTH = eps_BTH.at[:, 2].set(grad_BTH[:, 2] / norms_T[2])
    f = lambda e: gradient_flow.final_hidden_loss(cell_type, params, x_BTF, readout_H, e)
    step = 1e-2
    fd = (f(step * direction_BTH) - f(-step * direction_BTH)) / (2 * step)
    np.testing.assert_allclose(fd, norms_T[2], rtol=2e-2)


def test_over_100_steps_the_simple_rnn_vanishes_the_lstm_keeps_and_large_init_explodes():
    config = gradient_flow.base()
    config.name, config.data.batch_size = "gradient_flow", 4
    norms = gradient_flow.measure(config)
    simple, lstm, large = (norms[k] for k in ("simple", "lstm", "simple_large_init"))
    assert simple[-1] == lstm[-1] == large[-1] > 0  # Same readout: the last step's gradient.
    assert simple[0] < 1e-6 * lstm[0] and lstm[0] > 0
    assert large[0] > 1e6 * large[-1]
    assert np.all(np.diff(np.log(np.maximum(simple, 1e-45))[50:]) > 0)  # shrinks going back


def test_gradient_flow_experiment_writes_the_plot_and_summary(tmp_path, capsys):
    assert cli.run(["train", "--config", str(REPO / "experiments" / "gradient_flow.py"),
                    "--workdir", str(tmp_path), "--config.data.steps=30"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert set(rows) == {"simple", "lstm", "simple_large_init"}
    assert (tmp_path / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((tmp_path / "summary.json").read_text())["norms"]["lstm"]) == 30


@pytest.mark.parametrize("cells, fragment", [
    ("a=vanilla", "model.cells: 'a=vanilla' is not name=cell_type"),
    ("a=simple:-1", "model.cells: 'a=simple:-1'"), ("", "model.cells names no cell")])
def test_bad_gradient_flow_settings_are_one_line_errors(cells, fragment):
    config = gradient_flow.base()
    config.model.cells = cells
    with pytest.raises(DlxError) as error:
        config_lib.kind_module(config).validate(config)
    assert fragment in str(error.value)
