"""LSTM and GRU written gate by gate with PyTorch's equations, stacked and masked for padding.

LSTM (gate order i, f, g, o along the `G·H` axis, as in `torch.nn.LSTM`)::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)     f = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)        o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c' = f * c + i * g                             h' = o * tanh(c')

GRU (gate order r, z, n, as in `torch.nn.GRU`)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)     z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  h' = (1 - z) * n + z * h

Every cell has exactly four params, stored transposed relative to torch (`x @ kernel`):
`kernel_ih (F, G·H)`, `bias_ih (G·H,)`, `kernel_hh (H, G·H)`, `bias_hh (G·H,)` with G = 4 (LSTM)
or 3 (GRU). `project_inputs` does the input half `x_BTF @ kernel_ih + bias_ih` for all time steps
as one matmul outside the scan; `step` (the pure `recurrence` on the params) does only
`h_BH @ kernel_hh + bias_hh` and the gates, which with the padding mask is all the scan body does.
Default init: `kernel_ih` LeCun normal, each gate's `(H, H)` block of `kernel_hh` orthogonal,
biases zero except the LSTM forget slice of `bias_ih` (1); torch instead draws all four from
U(-1/sqrt(H), 1/sqrt(H)). An `RNN`'s params are `{f"l{k}": cell, f"l{k}_reverse": cell}`
for layers k (the second only when bidirectional), mirroring torch's `weight_ih_l{k}[_reverse]`;
layer k > 0 reads `F = D·H` features (D = 2 when bidirectional). Carries are `(h_BH, c_BH)` for
LSTM and `h_BH` for GRU.

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
    there the projection happens inside the scan; `RNN` projects all steps at once instead.
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
    def project_inputs(self, x_BTF: jax.Array) -> jax.Array:
        """Input half of every gate for all steps: `x_...F @ kernel_ih + bias_ih` -> `xg_...G`."""
        gh = self.num_gates * self.hidden_size
        kernel_ih = self.param("kernel_ih", self.kernel_init, (x_BTF.shape[-1], gh))
        bias_ih = self.param("bias_ih", self._bias_ih_init, (gh,))
        self.param("kernel_hh", _per_gate(self.recurrent_kernel_init, self.num_gates),
                   (self.hidden_size, gh))
        self.param("bias_hh", self.bias_init, (gh,))
        return _add_last(x_BTF @ kernel_ih, bias_ih)

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
    def recurrence(kernel_hh_HG: jax.Array, bias_hh_G: jax.Array, carry: Carry,
                   xg_BG: jax.Array) -> tuple[Carry, jax.Array]:
        """LSTM step `((h_BH, c_BH), xg_BG)` -> `((h'_BH, c'_BH), h'_BH)`."""
        h_BH, c_BH = carry
        hg_BG = _add_last(h_BH @ kernel_hh_HG, bias_hh_G)
        x_i, x_f, x_g, x_o = jnp.split(xg_BG, 4, axis=-1)  # Each (B, H).
        h_i, h_f, h_g, h_o = jnp.split(hg_BG, 4, axis=-1)
        i_BH = jax.nn.sigmoid(x_i + h_i)
        f_BH = jax.nn.sigmoid(x_f + h_f)
        g_BH = jnp.tanh(x_g + h_g)
        o_BH = jax.nn.sigmoid(x_o + h_o)
        c_BH = f_BH * c_BH + i_BH * g_BH
        h_BH = o_BH * jnp.tanh(c_BH)
        return (h_BH, c_BH), h_BH


class GRUCell(_Cell):
    """GRU cell (torch gate order r, z, n; `b_hn` inside the reset product); carry `h_BH`."""
    num_gates: ClassVar[int] = 3

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> Carry:
        """Zero carry `h_BH` for inputs of shape `(*batch, F)`; `rng` is unused."""
        del rng
        return jnp.zeros(tuple(input_shape[:-1]) + (self.hidden_size,), jnp.float32)

    @staticmethod
    def recurrence(kernel_hh_HG: jax.Array, bias_hh_G: jax.Array, carry: Carry,
                   xg_BG: jax.Array) -> tuple[Carry, jax.Array]:
        """GRU step `(h_BH, xg_BG)` -> `(h'_BH, h'_BH)`."""
        h_BH = carry
        hg_BG = _add_last(h_BH @ kernel_hh_HG, bias_hh_G)
        x_r, x_z, x_n = jnp.split(xg_BG, 3, axis=-1)  # Each (B, H).
        h_r, h_z, h_n = jnp.split(hg_BG, 3, axis=-1)
        r_BH = jax.nn.sigmoid(x_r + h_r)
        z_BH = jax.nn.sigmoid(x_z + h_z)
        n_BH = jnp.tanh(x_n + r_BH * h_n)
        h_BH = (1 - z_BH) * n_BH + z_BH * h_BH
        return h_BH, h_BH


CELLS: dict[str, type[_Cell]] = {"lstm": LSTMCell, "gru": GRUCell}


def _cell_class(cell_type: str) -> type[_Cell]:
    """The cell class called `cell_type`, or a one-line DlxError."""
    if cell_type not in CELLS:
        raise DlxError(f"cell_type={cell_type!r} is not a known RNN cell; "
                       f"expected one of: {', '.join(CELLS)}")
    return CELLS[cell_type]


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


def _flip_within_lengths(x_BT_: jax.Array, lengths_B: jax.Array) -> jax.Array:
    """Reverses each row's first `lengths_B` steps, leaving its padding in place (an involution)."""
    t_1T = jnp.arange(x_BT_.shape[1])[None, :]
    len_B1 = lengths_B[:, None]
    index_BT = jnp.where(t_1T < len_B1, len_B1 - 1 - t_1T, t_1T)
    index_BT_ = index_BT.reshape(index_BT.shape + (1,) * (x_BT_.ndim - 2))
    return jnp.take_along_axis(x_BT_, index_BT_, axis=1)


def _run_direction(cell: _Cell, x_BTF: jax.Array, lengths_B: jax.Array | None,
                   reverse: bool) -> tuple[jax.Array, Carry]:
    """One cell over `x_BTF` -> `(y_BTH, zero at padding; the carry at the last real step)`."""
    if reverse and lengths_B is not None:
        x_BTF = _flip_within_lengths(x_BTF, lengths_B)
    xg_BTG = cell.project_inputs(x_BTF)  # The only input matmul: all steps at once.
    params = cell.variables["params"]
    recur = functools.partial(cell.recurrence, params["kernel_hh"], params["bias_hh"])
    carry = cell.initialize_carry(None, x_BTF.shape[:1] + x_BTF.shape[2:])
    xg_TBG = jnp.swapaxes(xg_BTG, 0, 1)
    if lengths_B is None:
        carry, y_TBH = jax.lax.scan(recur, carry, xg_TBG, reverse=reverse)
    else:
        mask_TB = jnp.arange(x_BTF.shape[1])[:, None] < lengths_B[None, :]

        def body(carry: Carry, inputs: tuple[jax.Array, jax.Array]) -> tuple[Carry, jax.Array]:
            xg_BG, mask_B = inputs
            new_carry, h_BH = recur(carry, xg_BG)
            keep_B1 = mask_B[:, None]
            carry = jax.tree.map(lambda new, old: jnp.where(keep_B1, new, old), new_carry, carry)
            return carry, jnp.where(keep_B1, h_BH, jnp.zeros_like(h_BH))

        carry, y_TBH = jax.lax.scan(body, carry, (xg_TBG, mask_TB))
    y_BTH = jnp.swapaxes(y_TBH, 0, 1)
    if reverse and lengths_B is not None:
        y_BTH = _flip_within_lengths(y_BTH, lengths_B)
    return y_BTH, carry


def _hidden(carry: Carry) -> jax.Array:
    """`h_BH` of an LSTM `(h, c)` or GRU `h` carry."""
    return carry[0] if isinstance(carry, tuple) else carry


class RNN(nn.Module):
    """Stacked (bi)directional LSTM/GRU: `x_BTF` -> `y_BT(D·H)`, or the last layer's final h.

    With `lengths_B` (right padding) padded steps leave the carry alone and output zeros; the final
    state is that of the last real step, fwd then bwd concatenated like torch's `h_n[-D:]`.
    `dropout` acts between layers (as torch's) when `train`, which needs a `dropout` rng.
    Concrete lengths outside [0, T] are a DlxError; traced ones (under jit) are clipped to it.
    """
    cell_type: str
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    return_sequences: bool = True
    dropout: float = 0.0

    @nn.compact
    def outputs_and_states(self, x_BTF: jax.Array, lengths_B: jax.Array | None = None, *,
                           train: bool = False) -> tuple[jax.Array, tuple[Carry, ...]]:
        """`x_BTF` -> `(y_BT(D·H), states)`, states the final carries in torch's `h_n` order."""
        cell_class = _cell_class(self.cell_type)
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
                cell = cell_class(self.hidden_size, name=f"l{layer}" + "_reverse" * reverse)
                y_BTH, carry = _run_direction(cell, y_BTF, lengths_B, reverse)
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


class RNNClassifier(nn.Module):
    """`x_BT` (one feature) or `x_BTF` -> `logits_BO` from the final hidden state via a Dense head.

    Params: `{"rnn": RNN params, "head": {"kernel": (D·H, O), "bias": (O,)}}`. `dropout` acts
    between RNN layers and before the head when `train` (needs a `dropout` rng).
    """
    cell_type: str
    hidden_size: int
    num_layers: int
    bidirectional: bool
    num_outputs: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, lengths_B: jax.Array | None = None, *,
                 train: bool = False) -> jax.Array:
        """`x_BT` or `x_BTF` (right-padded to `lengths_B`) -> `logits_BO`."""
        x = jnp.asarray(x)
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3:
            raise DlxError(f"RNNClassifier input has shape {x.shape}; expected (batch, time) "
                           f"or (batch, time, features)")
        rnn = RNN(self.cell_type, self.hidden_size, self.num_layers, self.bidirectional,
                  return_sequences=False, dropout=self.dropout, name="rnn")
        h_BD = rnn(x, lengths_B, train=train)
        if self.dropout > 0:
            h_BD = nn.Dropout(self.dropout, deterministic=not train)(h_BD)
        return nn.Dense(self.num_outputs, name="head")(h_BD)


def _to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (via `.detach().cpu().numpy()`) or array-like as a float32 numpy array."""
    if hasattr(value, "detach"):  # A torch tensor; float() also covers half and bfloat16.
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def from_torch_state_dict(state_dict: Any, cell_type: str, num_layers: int,
                          bidirectional: bool) -> dict[str, dict[str, jax.Array]]:
    """`torch.nn.LSTM`/`GRU` state dict -> `RNN` params (use as `{"params": ...}`), transposed."""
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
