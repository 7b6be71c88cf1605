"""The train state: everything a step reads and writes, as one pytree that Orbax saves whole."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


class TrainState(flax.struct.PyTreeNode):
    """`step` int32 scalar; `rng` the base key (uint32[2]) that per-step keys are folded from."""
    step: jax.Array
    params: Any
    opt_state: Any
    batch_stats: Any
    rng: jax.Array
