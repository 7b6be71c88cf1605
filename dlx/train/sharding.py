"""Device meshes and parameter shardings: data parallelism, FSDP and tensor parallelism.

A mesh has the axes `data`, `fsdp` and `model` (`train.mesh`). The batch is split over
`data` x `fsdp`; a state leaf is placed by two rules:
- tensor parallelism: a Transformer's attention projections and MLP kernels (matched by the
  path of the leaf, see `TENSOR_PARALLEL`) have their head / hidden dimension split over `model`
  (Megatron's column- then row-parallel pairs, so each pair needs one reduction);
- FSDP: every other dimension of a leaf of at least `train.fsdp_min_size` elements is a candidate
  for `fsdp`: the largest one that the axis divides is split (ZeRO-3: params, gradients and the
  optimiser moments, which mirror the params' paths, all sharded).
XLA's SPMD partitioner then inserts the all-gathers and reduce-scatters; the math is that of one
device, so any mesh gives the same loss curve up to float rounding.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dlx.errors import DlxError

AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")  # The batch (and every activation's leading axis) splits over both.
# (regex on the leaf's "/"-joined path, the dimension split over `model`). Column-parallel
# projections split their output features (q/k/v: the heads; MLP: the hidden units), the
# row-parallel ones after them split their input features.
TENSOR_PARALLEL = (
    (re.compile(r"(^|/)(query|key|value)/kernel$"), 1),
    (re.compile(r"(^|/)(query|key|value)/bias$"), 0),
    (re.compile(r"attention/out/kernel$"), 0),
    (re.compile(r"(^|/)mlp/intermediate/kernel$"), 1),
    (re.compile(r"(^|/)mlp/intermediate/bias$"), 0),
    (re.compile(r"(^|/)mlp/output/kernel$"), 0),
)

_activation_mesh: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar(
    "activation_mesh", default=None)


def mesh_shape(mesh_config: ml_collections.ConfigDict | dict, num_devices: int) -> dict[str, int]:
    """`train.mesh` ({"data": -1, "fsdp": 1, "model": 1}) -> axis sizes whose product is
    `num_devices`; one axis may be -1 (the devices left over)."""
    sizes = {axis: int(mesh_config.get(axis, 1)) for axis in AXES}
    unknown = sorted(set(mesh_config.keys()) - set(AXES))
    if unknown:
        raise DlxError(f"train.mesh has unknown axes {unknown}; expected only {', '.join(AXES)}")
    free = [axis for axis, size in sizes.items() if size == -1]
    if len(free) > 1 or any(size == 0 or size < -1 for size in sizes.values()):
        raise DlxError(f"train.mesh={sizes}: sizes must be >= 1, with at most one -1")
    fixed = math.prod(size for size in sizes.values() if size != -1)
    if free:
        if num_devices % fixed:
            raise DlxError(f"train.mesh={sizes}: {num_devices} devices are not divisible by "
                           f"{fixed} for the -1 axis {free[0]!r}")
        sizes[free[0]] = num_devices // fixed
    elif fixed != num_devices:
        raise DlxError(f"train.mesh={sizes} needs {fixed} devices but {num_devices} are used; "
                       f"set train.devices={fixed} or change the mesh")
    return sizes


def make_mesh(devices: Sequence[jax.Device], sizes: dict[str, int]) -> Mesh:
    """A (data, fsdp, model) mesh of `devices` in order; `model` varies fastest (neighbours)."""
    return Mesh(np.array(devices).reshape([sizes[axis] for axis in AXES]), AXES)


def leaf_path(path: tuple) -> str:
    """A key path -> "a/b/c" from its dict keys and attribute names (optax states' fields)."""
    parts = []
    for key in path:
        name = getattr(key, "key", getattr(key, "name", None))
        if name is not None:
            parts.append(str(name))
    return "/".join(parts)


def leaf_spec(path: str, shape: tuple[int, ...], sizes: dict[str, int],
              fsdp_min_size: int) -> PartitionSpec:
    """The PartitionSpec of one state leaf (see the module docstring)."""
    spec: list[str | None] = [None] * len(shape)
    if sizes["model"] > 1:
        for pattern, dim in TENSOR_PARALLEL:
            if pattern.search(path) and dim < len(shape) and shape[dim] % sizes["model"] == 0:
                spec[dim] = "model"
                break
    if sizes["fsdp"] > 1 and math.prod(shape) >= fsdp_min_size:
        candidates = [d for d in range(len(shape))
                      if spec[d] is None and shape[d] % sizes["fsdp"] == 0]
        if candidates:
            spec[max(candidates, key=lambda d: (shape[d], -d))] = "fsdp"
    return PartitionSpec(*spec)


def state_shardings(state_shape: Any, mesh: Mesh, fsdp_min_size: int) -> Any:
    """A NamedSharding per leaf of `state_shape` (arrays or ShapeDtypeStructs)."""
    sizes = dict(mesh.shape)
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: NamedSharding(mesh, leaf_spec(leaf_path(path), tuple(leaf.shape),
                                                         sizes, fsdp_min_size)),
        state_shape)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over data x fsdp, replicated over model."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


@contextlib.contextmanager
def activations_sharded(mesh: Mesh):
    """While tracing inside this context, `constrain_batch` pins activations to `mesh`."""
    token = _activation_mesh.set(mesh)
    try:
        yield
    finally:
        _activation_mesh.reset(token)


def constrain_batch(x: jax.Array) -> jax.Array:
    """`x` (B, ...) constrained to batch-over-(data, fsdp) inside `activations_sharded`, so the
    partitioner never replicates the activations of a sharded model; the identity elsewhere."""
    mesh = _activation_mesh.get()
    if mesh is None:
        return x
    parts = math.prod(mesh.shape[axis] for axis in BATCH_AXES)
    if x.ndim == 0 or x.shape[0] % parts:
        return x
    spec = PartitionSpec(BATCH_AXES, *([None] * (x.ndim - 1)))
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
