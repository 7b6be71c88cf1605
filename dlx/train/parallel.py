"""Where steps run: `jax.jit` over a (data, fsdp, model) Mesh (the main path) or `jax.pmap`.

Both put the same global batch through the same math, so they give the same params as one device
whatever the mesh.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from dlx.errors import DlxError
from dlx.train import cpu_heaps, sharding, steps

PMAP_AXIS = "batch"


@functools.partial(jax.tree_util.register_dataclass, data_fields=["values"],
                   meta_fields=["keys"])
@dataclasses.dataclass(frozen=True)
class MetricSums:
    """A step's metric sums as one float32 vector `values_K` named by `keys`, so that the host
    fetches one array per step rather than one per metric (33 for a 10-class classifier)."""

    keys: tuple[str, ...]
    values: jax.Array

    @classmethod
    def stack(cls, sums: dict[str, jax.Array]) -> MetricSums:
        """Scalar sums (inside the step) -> MetricSums."""
        keys = tuple(sums)
        return cls(keys, jnp.stack([jnp.asarray(sums[key], jnp.float32) for key in keys]))

    def to_host(self) -> dict[str, float]:
        """Waits for the values and returns them as `{key: float}`."""
        return dict(zip(self.keys, jax.device_get(self.values).tolist()))


def _train_step(**kwargs: Any) -> Callable[..., Any]:
    """`steps.train_step` bound to `kwargs`, returning `(state, MetricSums)`."""
    def step(state, batch):
        state, sums = steps.train_step(state, batch, **kwargs)
        return state, MetricSums.stack(sums)
    return step


def _eval_step(**kwargs: Any) -> Callable[..., Any]:
    """`steps.eval_step` bound to `kwargs`, returning `MetricSums`."""
    return lambda state, batch: MetricSums.stack(steps.eval_step(state, batch, **kwargs))


class JitRunner:
    """One jit over a (data, fsdp, model) mesh (`dlx.train.sharding`): the batch split over data x
    fsdp, each state leaf replicated or sharded by the FSDP and tensor-parallel rules. The
    default mesh puts every device on `data`: plain data parallelism, params replicated."""

    axis_name = None

    def __init__(self, devices: Sequence[jax.Device], task, tx, accumulate_steps: int = 1, *,
                 state_shape: Any, mesh: dict[str, int] | None = None, fsdp_min_size: int = 0):
        self.devices = list(devices)
        self.mesh = sharding.make_mesh(self.devices, sharding.mesh_shape(mesh or {"data": -1},
                                                                         len(self.devices)))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch_sharding = sharding.batch_sharding(self.mesh)
        self.state_sharding = sharding.state_shardings(state_shape, self.mesh, fsdp_min_size)
        self._train = cpu_heaps.jit(
            _train_step(task=task, tx=tx, accumulate_steps=accumulate_steps), self.devices,
            in_shardings=(self.state_sharding, self.batch_sharding),
            out_shardings=(self.state_sharding, self.replicated), donate_argnums=0)
        self._eval = cpu_heaps.jit(_eval_step(task=task), self.devices,
                                   in_shardings=(self.state_sharding, self.batch_sharding),
                                   out_shardings=self.replicated)

    def init_state(self, init: Callable[..., Any], *args: Any) -> Any:
        """`init(*args)` laid out as `state_sharding`. Over several devices it runs as one jitted
        program that writes each device's shards in place, so no device ever holds the whole
        state (FSDP's point: a model larger than one device). On one device it runs op by op:
        jitted, XLA rounds some initialisers one ulp apart from the values the experiments'
        recorded results were made with."""
        if self.mesh.size == 1:
            return self.place_state(init(*args))
        if jax.process_count() > 1:
            args = jax.tree.map(lambda x: _global_array(x, self.replicated), args)
        return jax.jit(init, out_shardings=self.state_sharding)(*args)

    def place_state(self, state: Any) -> Any:
        if jax.process_count() == 1:
            return jax.device_put(state, self.state_sharding)
        return jax.tree.map(_global_array, state, self.state_sharding)

    def saveable_state(self, state: Any) -> Any:
        return state

    def place_batch(self, batch: dict[str, np.ndarray]) -> Any:
        """The global batch (the same on every process) -> arrays split over the mesh; in a
        multi-process run each process places only the rows of its own devices."""
        if jax.process_count() == 1:
            return jax.device_put(batch, self.batch_sharding)
        return {key: _global_array(rows, self.batch_sharding) for key, rows in batch.items()}

    def train_step(self, state, batch):
        with sharding.activations_sharded(self.mesh):  # Read while the step is traced.
            return self._train(state, self.place_batch(batch))

    def eval_step(self, state, batch):
        with sharding.activations_sharded(self.mesh):
            return self._eval(state, self.place_batch(batch))


def _global_array(value: Any, target: jax.sharding.Sharding) -> jax.Array:
    """`value` (equal on every process) as one array over `target`'s devices of all processes;
    an array already placed so is kept."""
    if isinstance(value, jax.Array) and value.sharding == target:
        return value
    host = np.asarray(jax.device_get(value))
    return jax.make_array_from_callback(host.shape, target, lambda index: host[index])


class PmapRunner:
    """A copy of the state per device; each takes `B / n` rows, gradients are `pmean`-ed."""

    axis_name = PMAP_AXIS

    def __init__(self, devices: Sequence[jax.Device], task, tx, accumulate_steps: int = 1, *,
                 state_shape: Any, mesh: dict[str, int] | None = None, fsdp_min_size: int = 0):
        if mesh and sharding.mesh_shape(mesh, len(devices))["data"] != len(devices):
            raise DlxError(f"train.parallel='pmap' is data-parallel only; train.mesh={dict(mesh)} "
                           f"asks for fsdp/model axes, which need train.parallel='jit'")
        del fsdp_min_size
        if jax.process_count() > 1:
            raise DlxError("train.parallel='pmap' runs in one process; use train.parallel='jit' "
                           "for a multi-process run")
        self.devices = list(devices)
        # Restored on one device, then stacked by `place_state`.
        self.state_sharding = jax.tree.map(lambda _: SingleDeviceSharding(self.devices[0]),
                                           state_shape)
        self.stacked = NamedSharding(Mesh(np.array(self.devices), (PMAP_AXIS,)),
                                     PartitionSpec(PMAP_AXIS))
        self._train = jax.pmap(_train_step(task=task, tx=tx, axis_name=PMAP_AXIS,
                                           accumulate_steps=accumulate_steps),
                               axis_name=PMAP_AXIS, devices=self.devices, donate_argnums=0)
        self._eval = jax.pmap(_eval_step(task=task, axis_name=PMAP_AXIS),
                              axis_name=PMAP_AXIS, devices=self.devices)

    def init_state(self, init: Callable[..., Any], *args: Any) -> Any:
        """`init(*args)`, one copy per device."""
        return self.place_state(init(*args))

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
        return state, _first_device(sums)

    def eval_step(self, state, batch):
        return _first_device(self._eval(state, self.place_batch(batch)))


def _first_device(sums: MetricSums) -> MetricSums:
    """pmap's (n, K) sums, equal on every device after the psum -> device 0's (K,)."""
    return MetricSums(sums.keys, sums.values[0])


def make_runner(mode: str, devices: Sequence[jax.Device], task, tx, accumulate_steps: int = 1,
                **placement):
    """The runner of `train.parallel`; `placement`: `state_shape` (required), `mesh` and
    `fsdp_min_size` (see `JitRunner`)."""
    return {"jit": JitRunner, "pmap": PmapRunner}[mode](devices, task, tx, accumulate_steps,
                                                        **placement)
