"""LSTM, GRU and a plain tanh RNN, gate by gate with PyTorch's equations, stacked and masked.

LSTM (gate order i, f, g, o along the `G·H` axis, as in `torch.nn.LSTM`)::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)     f = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)        o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c' = f * c + i * g                             h' = o * tanh(c')

GRU (gate order r, z, n, as in `torch.nn.GRU`)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)     z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  h' = (1 - z) * n + z * h

Simple (`cell_type="simple"`, `torch.nn.RNN` with tanh)::

    h' = tanh(W_ih x + b_ih + W_hh h + b_hh)

Every cell has exactly four params, stored transposed relative to torch (`x @ kernel`):
`kernel_ih (F, G·H)`, `bias_ih (G·H,)`, `kernel_hh (H, G·H)`, `bias_hh (G·H,)` with G = 4 (LSTM),
3 (GRU) or 1 (simple). A direction projects its inputs `x_BTF @ kernel_ih` for all time steps as
one matmul outside the time loop, whose body does only `h_BH @ kernel_hh`, the biases and the gates.
Default init (`weight_init="default"`): `kernel_ih` LeCun normal, each gate's `(H, H)` block of
`kernel_hh` orthogonal, biases zero except the LSTM forget slice of `bias_ih` (1);
`weight_init="torch"` draws all four from U(-1/sqrt(H), 1/sqrt(H)) with no forget offset, as
torch does. An `RNN`'s params are `{f"l{k}": cell, f"l{k}_reverse": cell}`
for layers k (the second only when bidirectional), mirroring torch's `weight_ih_l{k}[_reverse]`;
layer k > 0 reads `F = D·H` features (D = 2 when bidirectional). Carries are `(h_BH, c_BH)` for
LSTM and `h_BH` for GRU and simple.

Gradients of a direction are hand-written (`jax.custom_vjp`): the forward loop keeps each step's
gate activations (in place of the projected inputs), h and c going in; the backward is one reverse
loop doing only `dgates_BG @ kernel_hh.T` and the gate derivatives per step, and the weight
gradients are then each one big matmul over all B·T steps (`x^T dgates`, `h_prev^T dgates`).
This replaces autodiff's backward loop, which would carry extra residuals and transposes and,
on CPU, spend most of its time on per-step overhead rather than arithmetic.

Padded batches are right-padded with `lengths_B` real steps per row: a padded step never changes
the carry, its output is zero, and the reverse direction starts at each row's last real step (the
row is flipped within its real length), so results equal torch's `pack_padded_sequence`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlx.errors import DlxError

Carry = Any  # (h_BH, c_BH) for LSTM, h_BH for GRU.
Initializer = Callable[..., jax.Array]


def _per_gate(init: Initializer, num_gates: int) -> Initializer:
    """An init of a `(H, G·H)` kernel that applies `init` to each gate's `(H, H)` block."""
    def init_fn(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        rows, cols = shape
        keys = jax.random.split(key, num_gates)
        blocks = [init(k, (rows, cols // num_gates), dtype) for k in keys]
        return jnp.concatenate(blocks, axis=1)
    return init_fn


def _add_last(y_BG: jax.Array, b_G: jax.Array) -> jax.Array:
    """`y_...G + b_G` broadcast explicitly over the leading axes (rank promotion is an error)."""
    return y_BG + b_G.reshape((1,) * (y_BG.ndim - 1) + (-1,))


class _Cell(nn.Module):
    """Shared params and input projection of a gated cell; subclasses give the recurrence.

    `__call__(carry, x_BF)` is one flax-style step, so a cell also runs under flax's `nn.RNN`, but
    there the projection happens inside the scan; `RNN` runs a whole direction with `scan` and
    `scan_backward` instead (projection outside the loop, hand-written gradients).
    """
    hidden_size: int
    kernel_init: Initializer = nn.initializers.lecun_normal()
    recurrent_kernel_init: Initializer = nn.initializers.orthogonal()
    bias_init: Initializer = nn.initializers.zeros
    num_feature_axes: ClassVar[int] = 1  # What flax's nn.RNN expects of a cell.
    num_gates: ClassVar[int] = 0

    def _bias_ih_init(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32):
        return self.bias_init(key, shape, dtype)

    @nn.compact
    def cell_params(self, features: int) -> dict[str, jax.Array]:
        """The four params `{kernel_ih, bias_ih, kernel_hh, bias_hh}` for `features` inputs."""
        gh = self.num_gates * self.hidden_size
        return {"kernel_ih": self.param("kernel_ih", self.kernel_init, (features, gh)),
                "bias_ih": self.param("bias_ih", self._bias_ih_init, (gh,)),
                "kernel_hh": self.param("kernel_hh", _per_gate(self.recurrent_kernel_init,
                                                               self.num_gates),
                                        (self.hidden_size, gh)),
                "bias_hh": self.param("bias_hh", self.bias_init, (gh,))}

    def project_inputs(self, x_BTF: jax.Array) -> jax.Array:
        """Input half of every gate for all steps: `x_...F @ kernel_ih + bias_ih` -> `xg_...G`."""
        params = self.cell_params(x_BTF.shape[-1])
        return _add_last(x_BTF @ params["kernel_ih"], params["bias_ih"])

    def step(self, carry: Carry, xg_BG: jax.Array) -> tuple[Carry, jax.Array]:
        """One recurrent step on projected inputs `xg_BG` -> `(carry', h_BH)`; only reads params."""
        params = self.variables["params"]
        return self.recurrence(params["kernel_hh"], params["bias_hh"], carry, xg_BG)

    def __call__(self, carry: Carry, x_BF: jax.Array) -> tuple[Carry, jax.Array]:
        """One step from raw inputs `x_BF` (flax cell convention) -> `(carry', h_BH)`."""
        return self.step(carry, self.project_inputs(x_BF))

    @staticmethod
    def recurrence(kernel_hh_HG: jax.Array, bias_hh_G: jax.Array, carry: Carry,
                   xg_BG: jax.Array) -> tuple[Carry, jax.Array]:
        """Pure step `(carry, xg_BG)` -> `(carry', h_BH)` with one matmul `h_BH @ kernel_hh_HG`."""
        raise NotImplementedError

    @staticmethod
    def scan(params: dict, x_BTF: jax.Array, mask_BT: jax.Array | None, reverse: bool,
             save: bool) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
        """A direction over all steps -> `((y_BTH, *final carry), residuals if save else ())`."""
        raise NotImplementedError

    @staticmethod
    def scan_backward(params: dict, x_BTF: jax.Array, mask_BT: jax.Array | None, reverse: bool,
                      residuals: tuple[jax.Array, ...],
                      cotangents: tuple[jax.Array, ...]) -> tuple[dict, jax.Array]:
        """Cotangents of `scan`'s outputs -> `(param grads, dx_BTF)`."""
        raise NotImplementedError


def _at(x_BT_: jax.Array, t: jax.Array) -> jax.Array:
    """`x_BT_[:, t]`, one step of a batch-major array."""
    return jax.lax.dynamic_index_in_dim(x_BT_, t, axis=1, keepdims=False)


def _set_at(x_BT_: jax.Array, t: jax.Array, value_B_: jax.Array) -> jax.Array:
    """`x_BT_` with step `t` set to `value_B_` (in place inside a loop)."""
    return jax.lax.dynamic_update_index_in_dim(x_BT_, value_B_, t, axis=1)


def _time_loop(body: Callable, steps: int, init: Any, reverse: bool) -> Any:
    """`state = body(t, state)` for t = 0 … T-1 (T-1 … 0 if `reverse`) as one loop."""
    return jax.lax.fori_loop(0, steps, lambda i, state: body(steps - 1 - i if reverse else i,
                                                              state), init)


def _where_real(mask_BT: jax.Array | None, t: jax.Array, new: jax.Array,
                old: jax.Array) -> jax.Array:
    """`new` in rows whose step `t` is real, `old` in padded rows (`new` when unpadded)."""
    if mask_BT is None:
        return new
    return jnp.where(_at(mask_BT, t)[:, None], new, old)


def _weight_grads(params: dict, x_BTF: jax.Array, h_prev_BTH: jax.Array, dxg_BTG: jax.Array,
                  dhg_BTG: jax.Array) -> tuple[dict, jax.Array]:
    """Grads from the input and recurrent gate grads, each one matmul over all B·T steps."""
    grads = {"kernel_ih": jnp.einsum("btf,btg->fg", x_BTF, dxg_BTG),
             "bias_ih": dxg_BTG.sum((0, 1)),
             "kernel_hh": jnp.einsum("bth,btg->hg", h_prev_BTH, dhg_BTG),
             "bias_hh": dhg_BTG.sum((0, 1))}
    return grads, dxg_BTG @ params["kernel_ih"].T


class LSTMCell(_Cell):
    """LSTM cell (torch gate order i, f, g, o); carry `(h_BH, c_BH)`; forget bias starts at 1.

    The forget-gate offset `forget_bias` is added to `bias_ih` (so `bias_ih + bias_hh`, torch's
    effective bias, is `bias_init` + 1 on the forget slice and `bias_init` elsewhere).
    """
    forget_bias: float = 1.0
    num_gates: ClassVar[int] = 4

    def _bias_ih_init(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32):
        hidden = self.hidden_size
        bias_G = self.bias_init(key, shape, dtype)
        return bias_G.at[hidden:2 * hidden].add(jnp.asarray(self.forget_bias, dtype))

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> Carry:
        """Zero carry `(h_BH, c_BH)` for inputs of shape `(*batch, F)`; `rng` is unused."""
        del rng
        zeros_BH = jnp.zeros(tuple(input_shape[:-1]) + (self.hidden_size,), jnp.float32)
        return zeros_BH, zeros_BH

    @staticmethod
    def gates(a_BG: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """Gate pre-activations `a_BG` -> activations `(i_BH, f_BH, g_BH, o_BH)`."""
        # tanh(a) = 2 sigmoid(2a) - 1: one sigmoid over all four gates is one fused loop on CPU.
        hidden = a_BG.shape[-1] // 4
        scale_1G = jnp.concatenate([jnp.ones((2 * hidden,)), jnp.full((hidden,), 2.0),
                                    jnp.ones((hidden,))])[None, :]
        gates_BG = scale_1G * jax.nn.sigmoid(scale_1G * a_BG) - (scale_1G - 1)
        return tuple(jnp.split(gates_BG, 4, axis=-1))

    @staticmethod
    def recurrence(kernel_hh_HG: jax.Array, bias_hh_G: jax.Array, carry: Carry,
                   xg_BG: jax.Array) -> tuple[Carry, jax.Array]:
        """LSTM step `((h_BH, c_BH), xg_BG)` -> `((h'_BH, c'_BH), h'_BH)`."""
        h_BH, c_BH = carry
        i_BH, f_BH, g_BH, o_BH = LSTMCell.gates(xg_BG + _add_last(h_BH @ kernel_hh_HG, bias_hh_G))
        c_BH = f_BH * c_BH + i_BH * g_BH
        h_BH = o_BH * jnp.tanh(c_BH)
        return (h_BH, c_BH), h_BH

    @staticmethod
    def scan(params: dict, x_BTF: jax.Array, mask_BT: jax.Array | None, reverse: bool,
             save: bool) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
        """LSTM direction -> `((y_BTH, h_BH, c_BH), (gates_BTG, h_prev_BTH, c_prev_BTH))`.

        With `save` the gate activations `[i, f, g, o]` of step t overwrite the projected inputs
        of step t in place, and the h and c going into each step are kept.
        """
        xg_BTG = x_BTF @ params["kernel_ih"]
        bias_G = params["bias_ih"] + params["bias_hh"]
        kernel_hh_HG = params["kernel_hh"]
        batch, steps, gh = xg_BTG.shape
        zeros_BH = jnp.zeros((batch, gh // 4), xg_BTG.dtype)
        zeros_BTH = jnp.zeros((batch, steps, gh // 4), xg_BTG.dtype)

        def body(t: jax.Array, state: tuple) -> tuple:
            h_BH, c_BH, y_BTH, saved = state
            a_BG = _add_last(_at(saved[0] if save else xg_BTG, t) + h_BH @ kernel_hh_HG, bias_G)
            i_BH, f_BH, g_BH, o_BH = LSTMCell.gates(a_BG)
            new_c_BH = f_BH * c_BH + i_BH * g_BH
            new_h_BH = o_BH * jnp.tanh(new_c_BH)
            y_BTH = _set_at(y_BTH, t, _where_real(mask_BT, t, new_h_BH, zeros_BH))
            if save:
                saved = (_set_at(saved[0], t, jnp.concatenate([i_BH, f_BH, g_BH, o_BH], -1)),
                         _set_at(saved[1], t, h_BH), _set_at(saved[2], t, c_BH))
            return (_where_real(mask_BT, t, new_h_BH, h_BH),
                    _where_real(mask_BT, t, new_c_BH, c_BH), y_BTH, saved)

        saved = (xg_BTG, zeros_BTH, zeros_BTH) if save else ()
        h_BH, c_BH, y_BTH, saved = _time_loop(body, steps, (zeros_BH, zeros_BH, zeros_BTH, saved),
                                              reverse)
        return (y_BTH, h_BH, c_BH), saved

    @staticmethod
    def scan_backward(params: dict, x_BTF: jax.Array, mask_BT: jax.Array | None, reverse: bool,
                      residuals: tuple[jax.Array, ...],
                      cotangents: tuple[jax.Array, ...]) -> tuple[dict, jax.Array]:
        """LSTM `scan` cotangents `(dy_BTH, dh_BH, dc_BH)` -> `(param grads, dx_BTF)`."""
        gates_BTG, h_prev_BTH, c_prev_BTH = residuals
        dy_BTH, dh_BH, dc_BH = cotangents
        kernel_hh_GH = params["kernel_hh"].T

        def body(t: jax.Array, state: tuple) -> tuple:
            dh_BH, dc_BH, da_BTG = state
            i_BH, f_BH, g_BH, o_BH = jnp.split(_at(gates_BTG, t), 4, axis=-1)
            c_prev_BH = _at(c_prev_BTH, t)
            tanh_c_BH = jnp.tanh(f_BH * c_prev_BH + i_BH * g_BH)
            dh_out_BH = dh_BH + _at(dy_BTH, t)
            dc_out_BH = dc_BH + dh_out_BH * o_BH * (1 - tanh_c_BH * tanh_c_BH)
            da_BG = jnp.concatenate([dc_out_BH * g_BH * i_BH * (1 - i_BH),
                                     dc_out_BH * c_prev_BH * f_BH * (1 - f_BH),
                                     dc_out_BH * i_BH * (1 - g_BH * g_BH),
                                     dh_out_BH * tanh_c_BH * o_BH * (1 - o_BH)], axis=-1)
            da_BG = _where_real(mask_BT, t, da_BG, jnp.zeros_like(da_BG))
            return (_where_real(mask_BT, t, da_BG @ kernel_hh_GH, dh_BH),
                    _where_real(mask_BT, t, dc_out_BH * f_BH, dc_BH), _set_at(da_BTG, t, da_BG))

        init = (dh_BH, dc_BH, jnp.zeros_like(gates_BTG))
        _, _, da_BTG = _time_loop(body, gates_BTG.shape[1], init, not reverse)
        return _weight_grads(params, x_BTF, h_prev_BTH, da_BTG, da_BTG)


class GRUCell(_Cell):
    """GRU cell (torch gate order r, z, n; `b_hn` inside the reset product); carry `h_BH`."""
    num_gates: ClassVar[int] = 3

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> Carry:
        """Zero carry `h_BH` for inputs of shape `(*batch, F)`; `rng` is unused."""
        del rng
        return jnp.zeros(tuple(input_shape[:-1]) + (self.hidden_size,), jnp.float32)

    @staticmethod
    def gates(xg_BG: jax.Array, hg_BG: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Input and recurrent gate halves -> activations `(r_BH, z_BH, n_BH)`."""
        x_r, x_z, x_n = jnp.split(xg_BG, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(hg_BG, 3, axis=-1)
        r_BH = jax.nn.sigmoid(x_r + h_r)
        return r_BH, jax.nn.sigmoid(x_z + h_z), jnp.tanh(x_n + r_BH * h_n)

    @staticmethod
    def recurrence(kernel_hh_HG: jax.Array, bias_hh_G: jax.Array, carry: Carry,
                   xg_BG: jax.Array) -> tuple[Carry, jax.Array]:
        """GRU step `(h_BH, xg_BG)` -> `(h'_BH, h'_BH)`."""
        h_BH = carry
        _, z_BH, n_BH = GRUCell.gates(xg_BG, _add_last(h_BH @ kernel_hh_HG, bias_hh_G))
        h_BH = (1 - z_BH) * n_BH + z_BH * h_BH
        return h_BH, h_BH

    @staticmethod
    def scan(params: dict, x_BTF: jax.Array, mask_BT: jax.Array | None, reverse: bool,
             save: bool) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
        """GRU direction -> `((y_BTH, h_BH), (gates_BTG, h_prev_BTH, hn_BTH))`.

        With `save` the gate activations `[r, z, n]` of step t overwrite the projected inputs of
        step t in place; the h going into each step and `h @ W_hn + b_hn` are kept.
        """
        xg_BTG = x_BTF @ params["kernel_ih"]
        bias_ih_G, bias_hh_G, kernel_hh_HG = (params[k] for k in ("bias_ih", "bias_hh",
                                                                 "kernel_hh"))
        batch, steps, gh = xg_BTG.shape
        zeros_BH = jnp.zeros((batch, gh // 3), xg_BTG.dtype)
        zeros_BTH = jnp.zeros((batch, steps, gh // 3), xg_BTG.dtype)

        def body(t: jax.Array, state: tuple) -> tuple:
            h_BH, y_BTH, saved = state
            hg_BG = _add_last(h_BH @ kernel_hh_HG, bias_hh_G)
            xg_BG = _add_last(_at(saved[0] if save else xg_BTG, t), bias_ih_G)
            r_BH, z_BH, n_BH = GRUCell.gates(xg_BG, hg_BG)
            new_h_BH = (1 - z_BH) * n_BH + z_BH * h_BH
            y_BTH = _set_at(y_BTH, t, _where_real(mask_BT, t, new_h_BH, zeros_BH))
            if save:
                saved = (_set_at(saved[0], t, jnp.concatenate([r_BH, z_BH, n_BH], -1)),
                         _set_at(saved[1], t, h_BH),
                         _set_at(saved[2], t, jnp.split(hg_BG, 3, axis=-1)[2]))
            return _where_real(mask_BT, t, new_h_BH, h_BH), y_BTH, saved

        saved = (xg_BTG, zeros_BTH, zeros_BTH) if save else ()
        h_BH, y_BTH, saved = _time_loop(body, steps, (zeros_BH, zeros_BTH, saved), reverse)
        return (y_BTH, h_BH), saved

    @staticmethod
    def scan_backward(params: dict, x_BTF: jax.Array, mask_BT: jax.Array | None, reverse: bool,
                      residuals: tuple[jax.Array, ...],
                      cotangents: tuple[jax.Array, ...]) -> tuple[dict, jax.Array]:
        """GRU `scan` cotangents `(dy_BTH, dh_BH)` -> `(param grads, dx_BTF)`."""
        gates_BTG, h_prev_BTH, hn_BTH = residuals
        dy_BTH, dh_BH = cotangents
        kernel_hh_GH = params["kernel_hh"].T

        def body(t: jax.Array, state: tuple) -> tuple:
            dh_BH, dxg_BTG, dhn_BTH = state
            r_BH, z_BH, n_BH = jnp.split(_at(gates_BTG, t), 3, axis=-1)
            dh_out_BH = dh_BH + _at(dy_BTH, t)
            dan_BH = dh_out_BH * (1 - z_BH) * (1 - n_BH * n_BH)
            dar_BH = dan_BH * _at(hn_BTH, t) * r_BH * (1 - r_BH)
            daz_BH = dh_out_BH * (_at(h_prev_BTH, t) - n_BH) * z_BH * (1 - z_BH)
            dxg_BG = jnp.concatenate([dar_BH, daz_BH, dan_BH], axis=-1)
            dhn_BH = dan_BH * r_BH
            dxg_BG = _where_real(mask_BT, t, dxg_BG, jnp.zeros_like(dxg_BG))
            dhn_BH = _where_real(mask_BT, t, dhn_BH, jnp.zeros_like(dhn_BH))
            dhg_BG = jnp.concatenate([dxg_BG[:, :2 * dh_BH.shape[1]], dhn_BH], axis=-1)
            dh_BH = _where_real(mask_BT, t, dh_out_BH * z_BH + dhg_BG @ kernel_hh_GH, dh_BH)
            return dh_BH, _set_at(dxg_BTG, t, dxg_BG), _set_at(dhn_BTH, t, dhn_BH)

        init = (dh_BH, jnp.zeros_like(gates_BTG), jnp.zeros_like(hn_BTH))
        _, dxg_BTG, dhn_BTH = _time_loop(body, gates_BTG.shape[1], init, not reverse)
        hidden = dhn_BTH.shape[-1]
        dhg_BTG = jnp.concatenate([dxg_BTG[..., :2 * hidden], dhn_BTH], axis=-1)
        return _weight_grads(params, x_BTF, h_prev_BTH, dxg_BTG, dhg_BTG)


class SimpleCell(_Cell):
    """Plain (Elman) tanh RNN cell, `torch.nn.RNN`'s: h' = tanh(W_ih x + b_ih + W_hh h + b_hh);
    carry `h_BH`. Its gradient through T steps is a product of T Jacobians diag(1 - h²) W_hh^T,
    so it vanishes or explodes with the recurrent kernel's scale (`gradient_norms_per_step`)."""
    num_gates: ClassVar[int] = 1

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> Carry:
        """Zero carry `h_BH` for inputs of shape `(*batch, F)`; `rng` is unused."""
        del rng
        return jnp.zeros(tuple(input_shape[:-1]) + (self.hidden_size,), jnp.float32)

    @staticmethod
    def recurrence(kernel_hh_HG: jax.Array, bias_hh_G: jax.Array, carry: Carry,
                   xg_BG: jax.Array) -> tuple[Carry, jax.Array]:
        """tanh step `(h_BH, xg_BH)` -> `(h'_BH, h'_BH)`."""
        h_BH = jnp.tanh(xg_BG + _add_last(carry @ kernel_hh_HG, bias_hh_G))
        return h_BH, h_BH

    @staticmethod
    def scan(params: dict, x_BTF: jax.Array, mask_BT: jax.Array | None, reverse: bool,
             save: bool) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
        """tanh direction -> `((y_BTH, h_BH), (h_prev_BTH,))`; y itself holds each step's h'."""
        xg_BTH = x_BTF @ params["kernel_ih"]
        bias_H = params["bias_ih"] + params["bias_hh"]
        kernel_hh_HH = params["kernel_hh"]
        batch, steps, hidden = xg_BTH.shape
        zeros_BH = jnp.zeros((batch, hidden), xg_BTH.dtype)

        def body(t: jax.Array, state: tuple) -> tuple:
            h_BH, y_BTH, saved = state
            new_h_BH = jnp.tanh(_add_last(_at(xg_BTH, t) + h_BH @ kernel_hh_HH, bias_H))
            y_BTH = _set_at(y_BTH, t, _where_real(mask_BT, t, new_h_BH, zeros_BH))
            if save:
                saved = (_set_at(saved[0], t, h_BH),)
            return _where_real(mask_BT, t, new_h_BH, h_BH), y_BTH, saved

        saved = (jnp.zeros_like(xg_BTH),) if save else ()
        h_BH, y_BTH, saved = _time_loop(body, steps, (zeros_BH, jnp.zeros_like(xg_BTH), saved),
                                        reverse)
        if save:  # Each real step's output h' (padded steps: 0, never used) for the backward.
            saved = (saved[0], y_BTH)
        return (y_BTH, h_BH), saved

    @staticmethod
    def scan_backward(params: dict, x_BTF: jax.Array, mask_BT: jax.Array | None, reverse: bool,
                      residuals: tuple[jax.Array, ...],
                      cotangents: tuple[jax.Array, ...]) -> tuple[dict, jax.Array]:
        """tanh `scan` cotangents `(dy_BTH, dh_BH)` -> `(param grads, dx_BTF)`."""
        h_prev_BTH, h_new_BTH = residuals
        dy_BTH, dh_BH = cotangents
        kernel_hh_HH = params["kernel_hh"].T

        def body(t: jax.Array, state: tuple) -> tuple:
            dh_BH, da_BTH = state
            h_BH = _at(h_new_BTH, t)
            da_BH = (dh_BH + _at(dy_BTH, t)) * (1 - h_BH * h_BH)
            da_BH = _where_real(mask_BT, t, da_BH, jnp.zeros_like(da_BH))
            return (_where_real(mask_BT, t, da_BH @ kernel_hh_HH, dh_BH),
                    _set_at(da_BTH, t, da_BH))

        _, da_BTH = _time_loop(body, h_new_BTH.shape[1], (dh_BH, jnp.zeros_like(h_new_BTH)),
                               not reverse)
        return _weight_grads(params, x_BTF, h_prev_BTH, da_BTH, da_BTH)


CELLS: dict[str, type[_Cell]] = {"lstm": LSTMCell, "gru": GRUCell, "simple": SimpleCell}


WEIGHT_INITS = ("default", "torch")


def _uniform(bound: float) -> Initializer:
    """U(-bound, bound), torch's init for RNN weights (bound 1/sqrt(H)) and Linear biases."""
    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


def _check_weight_init(weight_init: str) -> None:
    if weight_init not in WEIGHT_INITS:
        raise DlxError(f"weight_init={weight_init!r} is not known; expected one of: "
                       f"{', '.join(WEIGHT_INITS)}")


def _cell_inits(weight_init: str, cell_class: type[_Cell], hidden_size: int) -> dict[str, Any]:
    """Cell keyword arguments for `weight_init`: none for the default, torch's uniforms else."""
    if weight_init == "default":
        return {}
    torch_uniform = _uniform(1 / np.sqrt(hidden_size))
    inits = {"kernel_init": torch_uniform, "recurrent_kernel_init": torch_uniform,
             "bias_init": torch_uniform}
    return inits | ({"forget_bias": 0.0} if cell_class is LSTMCell else {})


def _cell_class(cell_type: str) -> type[_Cell]:
    """The cell class called `cell_type`, or a one-line DlxError."""
    if cell_type not in CELLS:
        raise DlxError(f"cell_type={cell_type!r} is not a known RNN cell; "
                       f"expected one of: {', '.join(CELLS)}")
    return CELLS[cell_type]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _scan_direction(cell_type: str, reverse: bool, params: dict, x_BTF: jax.Array,
                    mask_BT: jax.Array | None) -> tuple[jax.Array, ...]:
    """One direction of a cell over `x_BTF` -> `(y_BTH, *final carry)`, hand-written VJP."""
    return CELLS[cell_type].scan(params, x_BTF, mask_BT, reverse, save=False)[0]


def _scan_direction_fwd(cell_type: str, reverse: bool, params: dict, x_BTF: jax.Array,
                        mask_BT: jax.Array | None) -> tuple[tuple, tuple]:
    """`_scan_direction`'s outputs and what its backward needs (gates, h and c per step)."""
    outputs, residuals = CELLS[cell_type].scan(params, x_BTF, mask_BT, reverse, save=True)
    return outputs, (params, x_BTF, mask_BT, residuals)


def _scan_direction_bwd(cell_type: str, reverse: bool, saved: tuple,
                        cotangents: tuple) -> tuple[dict, jax.Array, None]:
    """Cotangents of `(y_BTH, *final carry)` -> those of `(params, x_BTF, mask_BT)`."""
    params, x_BTF, mask_BT, residuals = saved
    grads, dx_BTF = CELLS[cell_type].scan_backward(params, x_BTF, mask_BT, reverse, residuals,
                                                   cotangents)
    return grads, dx_BTF, None


_scan_direction.defvjp(_scan_direction_fwd, _scan_direction_bwd)


def _check_lengths(lengths_B: jax.Array | None, batch: int, steps: int) -> jax.Array | None:
    """`lengths_B` as an int array after checking shape, dtype and (when concrete) range."""
    if lengths_B is None:
        return None
    lengths_B = jnp.asarray(lengths_B)
    if lengths_B.shape != (batch,):
        raise DlxError(f"lengths_B has shape {lengths_B.shape}; expected ({batch},), "
                       f"one length per batch row")
    if not jnp.issubdtype(lengths_B.dtype, jnp.integer):
        raise DlxError(f"lengths_B has dtype {lengths_B.dtype}; expected an integer dtype")
    try:
        values = np.asarray(lengths_B)
    except jax.errors.TracerArrayConversionError:
        values = None  # Under jit the values are unknown; clipping keeps them in range.
    if values is not None and values.size and (values.min() < 0 or values.max() > steps):
        raise DlxError(f"lengths_B must lie in [0, T={steps}]; got min {values.min()} "
                       f"and max {values.max()}")
    return jnp.clip(lengths_B, 0, steps)


def flip_within_lengths(x_BT_: jax.Array, lengths_B: jax.Array) -> jax.Array:
    """Reverses each row's first `lengths_B` steps, leaving its padding in place (an involution)."""
    t_1T = jnp.arange(x_BT_.shape[1])[None, :]
    len_B1 = lengths_B[:, None]
    index_BT = jnp.where(t_1T < len_B1, len_B1 - 1 - t_1T, t_1T)
    index_BT_ = index_BT.reshape(index_BT.shape + (1,) * (x_BT_.ndim - 2))
    return jnp.take_along_axis(x_BT_, index_BT_, axis=1)


def _run_direction(cell: _Cell, cell_type: str, x_BTF: jax.Array, lengths_B: jax.Array | None,
                   reverse: bool) -> tuple[jax.Array, Carry]:
    """One cell over `x_BTF` -> `(y_BTH, zero at padding; the carry at the last real step)`."""
    params = cell.cell_params(x_BTF.shape[-1])
    mask_BT = None
    if lengths_B is not None:
        mask_BT = jnp.arange(x_BTF.shape[1])[None, :] < lengths_B[:, None]
        if reverse:  # Flipped rows run forwards, so their padding stays at the end.
            x_BTF = flip_within_lengths(x_BTF, lengths_B)
    y_BTH, *carry = _scan_direction(cell_type, reverse and lengths_B is None, params, x_BTF,
                                    mask_BT)
    if reverse and lengths_B is not None:
        y_BTH = flip_within_lengths(y_BTH, lengths_B)
    return y_BTH, tuple(carry) if len(carry) > 1 else carry[0]


def _hidden(carry: Carry) -> jax.Array:
    """`h_BH` of an LSTM `(h, c)` or GRU `h` carry."""
    return carry[0] if isinstance(carry, tuple) else carry


class RNN(nn.Module):
    """Stacked (bi)directional LSTM/GRU: `x_BTF` -> `y_BT(D·H)`, or the last layer's final h.

    With `lengths_B` (right padding) padded steps leave the carry alone and output zeros; the final
    state is that of the last real step, fwd then bwd concatenated like torch's `h_n[-D:]`.
    `dropout` acts between layers (as torch's) when `train`, which needs a `dropout` rng.
    Concrete lengths outside [0, T] are a DlxError; traced ones (under jit) are clipped to it.
    `weight_init` is `"default"` or `"torch"` (see the module docstring).
    """
    cell_type: str
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    return_sequences: bool = True
    dropout: float = 0.0
    weight_init: str = "default"

    @nn.compact
    def outputs_and_states(self, x_BTF: jax.Array, lengths_B: jax.Array | None = None, *,
                           train: bool = False) -> tuple[jax.Array, tuple[Carry, ...]]:
        """`x_BTF` -> `(y_BT(D·H), states)`, states the final carries in torch's `h_n` order."""
        cell_class = _cell_class(self.cell_type)
        _check_weight_init(self.weight_init)
        cell_inits = _cell_inits(self.weight_init, cell_class, self.hidden_size)
        if self.hidden_size < 1 or self.num_layers < 1:
            raise DlxError(f"hidden_size={self.hidden_size} and num_layers={self.num_layers} "
                           f"must both be positive")
        x_BTF = jnp.asarray(x_BTF)
        if x_BTF.ndim != 3:
            raise DlxError(f"RNN input has shape {x_BTF.shape}; expected (batch, time, features)")
        lengths_B = _check_lengths(lengths_B, x_BTF.shape[0], x_BTF.shape[1])
        states = []
        y_BTF = x_BTF
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                y_BTF = nn.Dropout(self.dropout, deterministic=not train)(y_BTF)
            outputs = []
            for reverse in (False, True)[:1 + self.bidirectional]:
                cell = cell_class(self.hidden_size, name=f"l{layer}" + "_reverse" * reverse,
                                  **cell_inits)
                y_BTH, carry = _run_direction(cell, self.cell_type, y_BTF, lengths_B, reverse)
                outputs.append(y_BTH)
                states.append(carry)
            y_BTF = jnp.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
        return y_BTF, tuple(states)

    def __call__(self, x_BTF: jax.Array, lengths_B: jax.Array | None = None, *,
                 train: bool = False) -> jax.Array:
        """`x_BTF` -> `y_BT(D·H)` if `return_sequences`, else the last layer's final `h_B(D·H)`."""
        y_BTO, states = self.outputs_and_states(x_BTF, lengths_B, train=train)
        if self.return_sequences:
            return y_BTO
        directions = 1 + self.bidirectional
        return jnp.concatenate([_hidden(carry) for carry in states[-directions:]], axis=-1)


READOUTS = ("last", "flatten")


class RNNClassifier(nn.Module):
    """`x_BT` (one feature) or `x_BTF` -> `logits_BO` through a Dense head on the RNN's outputs.

    `readout="last"` feeds the head the final hidden state (the last real step of each row, both
    directions); `"flatten"` feeds it every step's output flattened, `(T·D·H,)`, as the MNIST-1D
    paper's GRU does (fixed T; padded steps contribute zeros). Params: `{"rnn": RNN params,
    "head": {"kernel", "bias"}}`. `dropout` acts between RNN layers and before the head when
    `train` (needs a `dropout` rng). `weight_init="torch"` initialises the RNN and the head as
    `torch.nn.GRU`/`LSTM` and `torch.nn.Linear` do (the MNIST-1D paper's models).
    """
    cell_type: str
    hidden_size: int
    num_layers: int
    bidirectional: bool
    num_outputs: int
    dropout: float = 0.0
    readout: str = "last"
    weight_init: str = "default"

    @nn.compact
    def __call__(self, x: jax.Array, lengths_B: jax.Array | None = None, *,
                 train: bool = False) -> jax.Array:
        """`x_BT` or `x_BTF` (right-padded to `lengths_B`) -> `logits_BO`."""
        if self.readout not in READOUTS:
            raise DlxError(f"readout={self.readout!r} is not a known readout; expected one of: "
                           f"{', '.join(READOUTS)}")
        x = jnp.asarray(x)
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3:
            raise DlxError(f"RNNClassifier input has shape {x.shape}; expected (batch, time) "
                           f"or (batch, time, features)")
        rnn = RNN(self.cell_type, self.hidden_size, self.num_layers, self.bidirectional,
                  return_sequences=self.readout == "flatten", dropout=self.dropout,
                  weight_init=self.weight_init, name="rnn")
        h_BD = rnn(x, lengths_B, train=train)
        h_BD = h_BD.reshape((h_BD.shape[0], -1))
        if self.dropout > 0:
            h_BD = nn.Dropout(self.dropout, deterministic=not train)(h_BD)
        head_inits = {}
        if self.weight_init == "torch":  # torch.nn.Linear: U(±1/sqrt(fan_in)) for both.
            linear_uniform = _uniform(1 / np.sqrt(h_BD.shape[-1]))
            head_inits = {"kernel_init": linear_uniform, "bias_init": linear_uniform}
        return nn.Dense(self.num_outputs, name="head", **head_inits)(h_BD)


def _to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (via `.detach().cpu().numpy()`) or array-like as a float32 numpy array."""
    if hasattr(value, "detach"):  # A torch tensor; float() also covers half and bfloat16.
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def from_torch_state_dict(state_dict: Any, cell_type: str, num_layers: int,
                          bidirectional: bool) -> dict[str, dict[str, jax.Array]]:
    """`torch.nn.LSTM`/`GRU`/`RNN` (tanh) state dict -> `RNN` params (as `{"params": ...}`),
    transposed."""
    gates = _cell_class(cell_type).num_gates
    directions = 2 if bidirectional else 1

    def get(key: str, shape: tuple[int | None, ...]) -> np.ndarray:
        if key not in state_dict:
            raise DlxError(f"torch state dict lacks {key!r} (needs {cell_type}, "
                           f"num_layers={num_layers}, bidirectional={bidirectional}, bias=True)")
        array = _to_numpy(state_dict[key])
        if array.ndim != len(shape) or any(s is not None and s != a
                                           for s, a in zip(shape, array.shape)):
            expected = ", ".join("?" if s is None else str(s) for s in shape)
            raise DlxError(f"torch state dict entry {key!r} has shape {array.shape}; "
                           f"expected ({expected}{',' * (len(shape) == 1)})")
        return array

    hidden = get("weight_hh_l0", (None, None)).shape[1]
    gh = gates * hidden
    params, expected_keys = {}, set()
    for layer in range(num_layers):
        features = None if layer == 0 else directions * hidden
        for suffix in ("", "_reverse")[:directions]:
            names = {name: f"{name}_l{layer}{suffix}"
                     for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            expected_keys.update(names.values())
            params[f"l{layer}{suffix}"] = {
                "kernel_ih": jnp.asarray(get(names["weight_ih"], (gh, features)).T),
                "bias_ih": jnp.asarray(get(names["bias_ih"], (gh,))),
                "kernel_hh": jnp.asarray(get(names["weight_hh"], (gh, hidden)).T),
                "bias_hh": jnp.asarray(get(names["bias_hh"], (gh,))),
            }
    unexpected = sorted(set(state_dict) - expected_keys)
    if unexpected:
        raise DlxError(f"torch state dict has unexpected keys {unexpected} for {cell_type}, "
                       f"num_layers={num_layers}, bidirectional={bidirectional}")
    return params
