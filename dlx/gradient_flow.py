"""Vanishing and exploding gradients through time: `dlx train` of a config with
`kind = "gradient_flow"` (experiments/gradient_flow.py).

For a loss on the last hidden state of a T-step recurrence, `gradient_norms_per_step` measures
‖∂loss/∂h_t‖ for every t: a perturbation eps_t is added to the hidden state after step t and the
gradient of the loss w.r.t. eps_t (at eps = 0) is ∂loss/∂h_t, so one `jax.grad` gives all T norms.
A plain tanh RNN multiplies the gradient by diag(1 - h²) W_hh^T per step, so ‖∂loss/∂h_t‖ shrinks
geometrically going back in time when W_hh is small (vanishing) and grows when it is large
(exploding, until tanh saturates); the LSTM's additive cell path c' = f * c + i * g keeps far more
of it. `train` plots the norms per cell (log scale vs t) and writes gradient_flow.png and
summary.json; nothing is trained (the networks are at initialisation), so it takes seconds.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dlx.errors import DlxError
from dlx.nn import rnn

KIND = "gradient_flow"


def base() -> ml_collections.ConfigDict:
    """The keys of a gradient-flow experiment."""
    config = ml_collections.ConfigDict()
    config.kind = KIND
    config.seed = 0
    config.data = ml_collections.ConfigDict({"steps": 100, "batch_size": 16, "features": 8})
    # `cells`: comma-separated name=cell_type[:recurrent gain]; the gain multiplies W_hh.
    config.model = ml_collections.ConfigDict({
        "hidden_size": 32, "weight_init": "default",
        "cells": "simple=simple,lstm=lstm,simple_large_init=simple:4.0"})
    return config


def parse_cells(text: str) -> dict[str, tuple[str, float]]:
    """`"a=simple,b=lstm:2"` -> `{"a": ("simple", 1.0), "b": ("lstm", 2.0)}`."""
    cells = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, spec = part.partition("=")
        cell_type, _, gain = spec.partition(":")
        try:
            gain_value = float(gain) if gain else 1.0
        except ValueError:
            gain_value = -1.0
        if not name or cell_type not in rnn.CELLS or not gain_value > 0:
            raise DlxError(f"model.cells: {part!r} is not name=cell_type[:gain > 0] with a "
                           f"cell_type among {', '.join(rnn.CELLS)}")
        cells[name] = (cell_type, gain_value)
    if not cells:
        raise DlxError("model.cells names no cell; expected e.g. 'simple=simple,lstm=lstm'")
    return cells


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks the settings before anything is computed."""
    for key in ("steps", "batch_size", "features"):
        if not (isinstance(config.data[key], int) and config.data[key] > 0):
            raise DlxError(f"data.{key} must be a positive int, got {config.data[key]!r}")
    if not (isinstance(config.model.hidden_size, int) and config.model.hidden_size > 0):
        raise DlxError(f"model.hidden_size must be a positive int, got "
                       f"{config.model.hidden_size!r}")
    if config.model.weight_init not in rnn.WEIGHT_INITS:
        raise DlxError(f"model.weight_init={config.model.weight_init!r} is not known; expected "
                       f"one of: {', '.join(rnn.WEIGHT_INITS)}")
    parse_cells(config.model.cells)


def _initial_carry(cell_type: str, batch: int, hidden: int) -> Any:
    zeros_BH = jnp.zeros((batch, hidden), jnp.float32)
    return (zeros_BH, zeros_BH) if cell_type == "lstm" else zeros_BH


def _with_hidden(carry: Any, h_BH: jax.Array) -> Any:
    """`carry` with its hidden state replaced by `h_BH` (LSTM keeps its cell state c)."""
    return (h_BH, carry[1]) if isinstance(carry, tuple) else h_BH


def _hidden(carry: Any) -> jax.Array:
    return carry[0] if isinstance(carry, tuple) else carry


def final_hidden_loss(cell_type: str, params: dict, x_BTF: jax.Array, readout_H: jax.Array,
                      eps_BTH: jax.Array) -> jax.Array:
    """Scalar: sum_b readout_H · h_T, where eps_BTH[:, t] is added to h_t after step t."""
    cell = rnn.CELLS[cell_type]
    xg_BTG = rnn._add_last(x_BTF @ params["kernel_ih"], params["bias_ih"])

    def step(carry, inputs):
        xg_BG, eps_BH = inputs
        carry, h_BH = cell.recurrence(params["kernel_hh"], params["bias_hh"], carry, xg_BG)
        return _with_hidden(carry, h_BH + eps_BH), None

    init = _initial_carry(cell_type, x_BTF.shape[0], eps_BTH.shape[-1])
    carry, _ = jax.lax.scan(step, init, (jnp.swapaxes(xg_BTG, 0, 1), jnp.swapaxes(eps_BTH, 0, 1)))
    return jnp.sum(_hidden(carry) @ readout_H)


def gradient_norms_per_step(cell_type: str, params: dict, x_BTF: jax.Array,
                            readout_H: jax.Array) -> jax.Array:
    """norms_T: ‖∂loss/∂h_t‖ (Frobenius over batch and units) for each t, loss of
    `final_hidden_loss`, via one jax.grad w.r.t. zero perturbations of the hidden states."""
    batch, steps, _ = x_BTF.shape
    eps_BTH = jnp.zeros((batch, steps, readout_H.shape[0]), jnp.float32)
    grad_BTH = jax.grad(final_hidden_loss, argnums=4)(cell_type, params, x_BTF, readout_H,
                                                      eps_BTH)
    return jnp.sqrt(jnp.sum(grad_BTH * grad_BTH, axis=(0, 2)))


def init_params(cell_type: str, hidden: int, features: int, weight_init: str, key: jax.Array,
                gain: float = 1.0) -> dict:
    """One direction's cell params `{kernel_ih, bias_ih, kernel_hh, bias_hh}`, W_hh times `gain`."""
    cell_class = rnn.CELLS[cell_type]
    cell = cell_class(hidden, **rnn._cell_inits(weight_init, cell_class, hidden))
    params = cell.init(key, features, method="cell_params")["params"]
    return dict(params, kernel_hh=params["kernel_hh"] * gain)


def measure(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """Cell name -> norms_T on the config's random inputs (same inputs and readout for all)."""
    data, hidden = config.data, config.model.hidden_size
    key_x, key_r, key_p = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    x_BTF = jax.random.normal(key_x, (data.batch_size, data.steps, data.features))
    readout_H = jax.random.normal(key_r, (hidden,)) / np.sqrt(hidden)
    norms = {}
    for name, (cell_type, gain) in parse_cells(config.model.cells).items():
        params = init_params(cell_type, hidden, data.features, config.model.weight_init, key_p,
                             gain)
        norms[name] = np.asarray(jax.jit(gradient_norms_per_step, static_argnums=0)(
            cell_type, params, x_BTF, readout_H))
    return norms


def plot(norms: dict[str, np.ndarray], path: pathlib.Path, title: str) -> None:
    """Log-scale ‖∂loss/∂h_t‖ vs t, one line per cell, written atomically as a PNG."""
    from dlx.train import outputs
    fig, ax = outputs.figure(size=(7, 4.5))
    for name, norms_T in norms.items():
        # A norm that underflowed float32 to 0 is left out (the line stops there).
        ax.semilogy(np.arange(len(norms_T)), np.where(norms_T > 0, norms_T, np.nan), label=name)
    ax.set(xlabel="time step t (the loss reads h at the last step)",
           ylabel="‖∂loss/∂h_t‖", title=title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    outputs.save_figure(fig, path, dpi=110)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Measures every cell, writes gradient_flow.png, config.json and summary.json."""
    from dlx.train import outputs
    workdir = pathlib.Path(workdir)
    norms = measure(config)
    plot(norms, workdir / "gradient_flow.png",
         f"Gradient of a loss on h_T w.r.t. each h_t (T = {config.data.steps})")
    rows = {name: {"first": float(n[0]), "last": float(n[-1]),
                   "first_over_last": float(n[0] / n[-1]) if n[-1] else None}
            for name, n in norms.items()}
    summary = {"experiment": config.name, "norms": {k: v.tolist() for k, v in norms.items()},
               "results": rows}
    outputs.write_json(workdir / "config.json", config.to_dict())
    outputs.write_json(workdir / "summary.json", summary)
    for name, row in rows.items():
        print(f"{name:>18}: ‖dL/dh_0‖ {row['first']:.3g}, ‖dL/dh_T‖ {row['last']:.3g}",
              file=sys.stderr)
    return {"experiment": config.name, "results": rows}


def evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """`dlx eval`: recomputes the norms (cheap) without writing anything."""
    rows = {name: {"first": float(n[0]), "last": float(n[-1])}
            for name, n in measure(config).items()}
    return {"experiment": config.name, "results": rows}
