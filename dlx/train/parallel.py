"""Where steps run: `jax.jit` over a data Mesh (the main path) or `jax.pmap` (for pmap-era code).

Both put the same global batch through the same math, so they give the same params as one device.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from dlx.train import steps

PMAP_AXIS = "batch"


class JitRunner:
    """Params replicated, the batch split along its first axis over all devices of a 1-D mesh."""

    axis_name = None

    def __init__(self, devices: Sequence[jax.Device], task, tx, accumulate_steps: int = 1):
        self.devices = list(devices)
        mesh = Mesh(np.array(self.devices), ("data",))
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
        self._train = jax.jit(functools.partial(steps.train_step, task=task, tx=tx,
                                                accumulate_steps=accumulate_steps),
                              in_shardings=(self.replicated, self.batch_sharding),
                              out_shardings=(self.replicated, self.replicated), donate_argnums=0)
        self._eval = jax.jit(functools.partial(steps.eval_step, task=task),
                             in_shardings=(self.replicated, self.batch_sharding),
                             out_shardings=self.replicated)

    @property
    def restore_sharding(self) -> jax.sharding.Sharding:
        """Sharding of the saved state as it is restored (before `place_state`)."""
        return self.replicated

    def place_state(self, state: Any) -> Any:
        return jax.device_put(state, self.replicated)

    def saveable_state(self, state: Any) -> Any:
        return state

    def place_batch(self, batch: dict[str, np.ndarray]) -> Any:
        return jax.device_put(batch, self.batch_sharding)

    def train_step(self, state, batch):
        return self._train(state, self.place_batch(batch))

    def eval_step(self, state, batch):
        return self._eval(state, self.place_batch(batch))


class PmapRunner:
    """A copy of the state per device; each takes `B / n` rows, gradients are `pmean`-ed."""

    axis_name = PMAP_AXIS

    def __init__(self, devices: Sequence[jax.Device], task, tx, accumulate_steps: int = 1):
        self.devices = list(devices)
        self.stacked = NamedSharding(Mesh(np.array(self.devices), (PMAP_AXIS,)),
                                     PartitionSpec(PMAP_AXIS))
        self._train = jax.pmap(
            functools.partial(steps.train_step, task=task, tx=tx, axis_name=PMAP_AXIS,
                              accumulate_steps=accumulate_steps),
            axis_name=PMAP_AXIS, devices=self.devices, donate_argnums=0)
        self._eval = jax.pmap(functools.partial(steps.eval_step, task=task, axis_name=PMAP_AXIS),
                              axis_name=PMAP_AXIS, devices=self.devices)

    @property
    def restore_sharding(self) -> jax.sharding.Sharding:
        return SingleDeviceSharding(self.devices[0])

    def place_state(self, state: Any) -> Any:
        n = len(self.devices)
        stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), state)
        return jax.device_put(stacked, self.stacked)

    def saveable_state(self, state: Any) -> Any:
        return jax.tree.map(lambda x: x[0], state)

    def place_batch(self, batch: dict[str, np.ndarray]) -> Any:
        n = len(self.devices)
        return {k: v.reshape((n, v.shape[0] // n) + v.shape[1:]) for k, v in batch.items()}

    def train_step(self, state, batch):
        state, sums = self._train(state, self.place_batch(batch))
        return state, jax.tree.map(lambda x: x[0], sums)

    def eval_step(self, state, batch):
        return jax.tree.map(lambda x: x[0], self._eval(state, self.place_batch(batch)))


def make_runner(mode: str, devices: Sequence[jax.Device], task, tx, accumulate_steps: int = 1):
    return {"jit": JitRunner, "pmap": PmapRunner}[mode](devices, task, tx, accumulate_steps)
