"""dlx `SimpleCNN` vs a stock `flax.linen` CNN vs `torch.nn` on CPU: one full train step, img/s.

The model is note 001's SimpleCNN on 28x28x1 inputs with 10 classes: conv 5x5 (32) -> ReLU ->
max-pool 2 -> conv 5x5 (64) -> ReLU -> max-pool 2 -> dropout 0.25 -> Dense 1000 -> ReLU -> Dense
10, optionally with BatchNorm after each conv. A train step is forward + backward + Adam in train
mode (dropout active, BatchNorm on batch statistics) on the mean cross-entropy of a fixed batch.
dlx runs its own `train_step` (`dlx.train.steps`); the stock step is what a user would write from
the Flax MNIST example (`nn.Conv`, `nn.max_pool`, `nn.Dropout`, `nn.Dense`, optax Adam). Both are
jitted with the state donated and blocked on; torch runs eagerly in `model.train()` with its
default intra-op threads. All three run interleaved in one process; one JSON line per peer
(`benchmarks/harness.py`), ratio = dlx img/s over the peer's.

    python benchmarks/cnn.py                  # batch 128, 15 rounds
    python benchmarks/cnn.py --batchnorm --rounds 5
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import comparison, emit, interleaved_medians, machine  # noqa: E402

from dlx import tasks  # noqa: E402
from dlx.nn.cnn import SimpleCNN  # noqa: E402
from dlx.train import steps  # noqa: E402
from dlx.train.state import TrainState  # noqa: E402

LR = 1e-3
CLASSES = 10
DROPOUT = 0.25
HIDDEN = 1000


class StockCNN(nn.Module):
    """SimpleCNN as a Flax user writes it: `x_BHWC` -> `logits_BO`, with dlx's param tree."""
    num_outputs: int
    use_batchnorm: bool = False
    hidden: int = HIDDEN

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        for features in (32, 64):
            x = nn.Conv(features, kernel_size=(5, 5), padding=((2, 2), (2, 2)),
                        use_bias=not self.use_batchnorm)(x)
            if self.use_batchnorm:
                x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            x = nn.relu(x)
            x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.Dropout(DROPOUT, deterministic=not train)(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.num_outputs)(x)


def batch_of(batch: int, height: int = 28, width: int = 28, seed: int = 0) -> dict[str, np.ndarray]:
    """{"x": (B, H, W, 1) float32 in [0, 1), "y": (B,) int32 labels}, seeded."""
    rng = np.random.default_rng(seed)
    return {"x": rng.random((batch, height, width, 1), np.float32),
            "y": rng.integers(0, CLASSES, batch).astype(np.int32)}


def dlx_step(batch: dict[str, np.ndarray], batchnorm: bool) -> Callable[[], float]:
    """dlx's own train step for SimpleCNN: jitted, TrainState donated, blocked on; returns loss."""
    task = tasks.Classification(SimpleCNN(num_outputs=CLASSES, use_batchnorm=batchnorm,
                                          dropout=DROPOUT, hidden=HIDDEN))
    optimizer = optax.adam(LR)
    data = jax.tree.map(jnp.asarray, batch)
    params, batch_stats = jax.jit(task.init)(jax.random.PRNGKey(0), data)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                       opt_state=optimizer.init(params), batch_stats=batch_stats,
                       rng=jax.random.PRNGKey(1))
    train_step = jax.jit(functools.partial(steps.train_step, task=task, tx=optimizer),
                         donate_argnums=0)

    def step() -> float:
        nonlocal state
        state, sums = jax.block_until_ready(train_step(state, data))
        return float(sums["loss"] / sums["count"])

    return step


def stock_flax_step(batch: dict[str, np.ndarray], batchnorm: bool) -> Callable[[], float]:
    """The stock Flax train step (MNIST-example style): jitted, state donated, blocked on."""
    model = StockCNN(num_outputs=CLASSES, use_batchnorm=batchnorm)
    optimizer = optax.adam(LR)
    x_BHWC, y_B = jnp.asarray(batch["x"]), jnp.asarray(batch["y"])
    variables = jax.jit(functools.partial(model.init, train=False))(jax.random.PRNGKey(0), x_BHWC)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})

    def loss_fn(params, batch_stats, x_BHWC, y_B, key):
        out = model.apply({"params": params, "batch_stats": batch_stats}, x_BHWC, train=True,
                          rngs={"dropout": key}, mutable=["batch_stats"])
        logits_BO, updates = out
        loss = optax.softmax_cross_entropy_with_integer_labels(logits_BO, y_B).mean()
        return loss, updates.get("batch_stats", batch_stats)

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state, x_BHWC, y_B):
        params, opt_state, batch_stats, key = state
        key, dropout_key = jax.random.split(key)
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch_stats, x_BHWC, y_B, dropout_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, batch_stats, key), loss

    state = (params, optimizer.init(params), batch_stats, jax.random.PRNGKey(1))

    def step() -> float:
        nonlocal state
        state, loss = jax.block_until_ready(train_step(state, x_BHWC, y_B))
        return float(loss)

    return step


def torch_step(batch: dict[str, np.ndarray], batchnorm: bool) -> Callable[[], float]:
    """The same model in `torch.nn` (NCHW), `model.train()`, Adam; returns the loss."""
    import torch

    torch.manual_seed(0)
    height, width = batch["x"].shape[1:3]
    flat = (height // 4) * (width // 4) * 64
    layers: list[torch.nn.Module] = []
    for fan_in, features in ((1, 32), (32, 64)):
        layers.append(torch.nn.Conv2d(fan_in, features, 5, padding=2, bias=not batchnorm))
        if batchnorm:
            layers.append(torch.nn.BatchNorm2d(features, momentum=0.1))
        layers += [torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    model = torch.nn.Sequential(*layers, torch.nn.Dropout(DROPOUT), torch.nn.Flatten(),
                                torch.nn.Linear(flat, HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, CLASSES))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    x_BCHW = torch.from_numpy(batch["x"]).permute(0, 3, 1, 2).contiguous()
    y_B = torch.from_numpy(batch["y"]).long()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x_BCHW), y_B)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def main(argv: list[str] | None = None) -> None:
    """Parses flags, times the three steps interleaved and emits one comparison per peer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batchnorm", action="store_true",
                        help="BatchNorm after each conv (the convs drop their bias)")
    parser.add_argument("--quick", action="store_true",
                        help="batch 2, one round: checks that everything runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds, args.warmup = 2, 1, 1
    import torch

    batch = batch_of(args.batch)
    contenders = {"dlx": dlx_step(batch, args.batchnorm),
                  "stock-flax": stock_flax_step(batch, args.batchnorm),
                  "torch": torch_step(batch, args.batchnorm)}
    seconds = interleaved_medians(contenders, warmup=args.warmup, rounds=args.rounds,
                                  calls_per_round=1)
    model = "simple_cnn_bn" if args.batchnorm else "simple_cnn"
    for peer in ("stock-flax", "torch"):
        emit(comparison(f"{model}-vs-{peer}", args.batch / seconds["dlx"],
                        args.batch / seconds[peer], "img/s", batch=args.batch,
                        batchnorm=args.batchnorm, rounds=args.rounds, **machine(torch)))


if __name__ == "__main__":
    main()
