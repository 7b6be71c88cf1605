"""dlx `RNN` vs `torch.nn.LSTM`/`GRU` on CPU: one full train step side by side, seq/s.

A train step is forward + backward + Adam on the loss `mean(y_BTH ** 2)` of the last layer's
outputs, for the same shapes and (through `from_torch_state_dict`) the same starting weights. The
dlx step is jitted with the train state donated and blocked on; torch runs eagerly with its
default intra-op threads. Prints one JSON line per comparison (`benchmarks/harness.py`).

    python benchmarks/rnn.py                  # LSTM and GRU, 1 and 2 layers, B64 T128 F128 H256
    python benchmarks/rnn.py --cells lstm --layers 2 --rounds 5
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import comparison, emit, interleaved_medians, machine  # noqa: E402

from dlx.nn.rnn import RNN, from_torch_state_dict  # noqa: E402

LR = 1e-3


def torch_rnn(cell_type: str, layers: int, features: int, hidden: int,
              seed: int = 0) -> torch.nn.Module:
    """A seeded unidirectional batch-first `torch.nn.LSTM`/`GRU` (torch's default init)."""
    torch.manual_seed(seed)
    cls = torch.nn.LSTM if cell_type == "lstm" else torch.nn.GRU
    return cls(features, hidden, num_layers=layers, batch_first=True)


def torch_step(module: torch.nn.Module, x_BTF: np.ndarray) -> Callable[[], float]:
    """A zero-argument torch train step (Adam on `mean(y ** 2)`) returning its loss."""
    x = torch.from_numpy(x_BTF)
    optimizer = torch.optim.Adam(module.parameters(), lr=LR)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        y_BTH, _ = module(x)
        loss = y_BTH.square().mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def dlx_step(module: torch.nn.Module, cell_type: str, layers: int,
             x_BTF: np.ndarray) -> Callable[[], float]:
    """The same step in dlx from `module`'s weights: jitted, state donated, blocked on."""
    hidden = module.hidden_size
    model = RNN(cell_type, hidden, num_layers=layers)
    params = from_torch_state_dict(module.state_dict(), cell_type, layers, False)
    optimizer = optax.adam(LR)
    x = jnp.asarray(x_BTF)

    def loss_fn(params: dict, x_BTF: jax.Array) -> jax.Array:
        return jnp.mean(model.apply({"params": params}, x_BTF) ** 2)

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state: tuple, x_BTF: jax.Array) -> tuple[tuple, jax.Array]:
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, x_BTF)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    state = (params, optimizer.init(params))

    def step() -> float:
        nonlocal state
        state, loss = jax.block_until_ready(train_step(state, x))
        return float(loss)

    return step


def main(argv: list[str] | None = None) -> None:
    """Parses flags, builds each configuration's two steps and emits one comparison per config."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    parser.add_argument("--layers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--input", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, one round: checks that everything runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.seq, args.input, args.hidden = 4, 6, 3, 5
        args.rounds, args.warmup = 1, 1
    shape = (args.batch, args.seq, args.input)
    x_BTF = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    for cell_type in args.cells:
        for layers in args.layers:
            module = torch_rnn(cell_type, layers, args.input, args.hidden)
            steps = {"dlx": dlx_step(module, cell_type, layers, x_BTF),
                     "torch": torch_step(module, x_BTF)}
            seconds = interleaved_medians(steps, warmup=args.warmup, rounds=args.rounds,
                                          calls_per_round=1)
            emit(comparison(f"{cell_type}-{layers}layer-vs-torch", args.batch / seconds["dlx"],
                            args.batch / seconds["torch"], "seq/s",
                            batch=args.batch, seq=args.seq, input=args.input,
                            hidden=args.hidden, **machine(torch)))


if __name__ == "__main__":
    main()
