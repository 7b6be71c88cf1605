"""Random image augmentations in JAX, run per example inside the compiled train step.

Each augmentation maps `(rng, x_BHW or x_BHWC) -> x` of the same shape and dtype, drawing one
transform per example from `rng` split over the batch. `get("shift:4,flip")` builds the one that
`data.augment` names; `dlx.tasks.Classification` applies it to training batches only.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlx.errors import DlxError
from dlx.tasks import Augment

ALLOWED = "shift:N (shift by up to N >= 1 pixels, zero-filled), flip (mirror left-right)"


def shift(x_HW: jax.Array, dy: jax.Array, dx: jax.Array, pad: int) -> jax.Array:
    """`x_HW` (or `x_HWC`) with its content moved down `dy` and right `dx` pixels, zero-filled;
    `|dy|, |dx| <= pad` (pad, then crop back to size at offset `(pad - dy, pad - dx)`)."""
    widths = ((pad, pad), (pad, pad)) + ((0, 0),) * (x_HW.ndim - 2)
    start = (pad - dy, pad - dx) + (0,) * (x_HW.ndim - 2)
    return jax.lax.dynamic_slice(jnp.pad(x_HW, widths), start, x_HW.shape)


def _per_example(transform: Callable[[jax.Array, jax.Array], jax.Array]) -> Augment:
    """Lifts `transform(rng, x_HW) -> x_HW` to a batch, with one key per example."""
    def apply(rng: jax.Array, x_B: jax.Array) -> jax.Array:
        if x_B.ndim not in (3, 4):
            raise DlxError(f"data.augment works on images of shape (batch, H, W) or "
                           f"(batch, H, W, C); got inputs of shape {x_B.shape}")
        return jax.vmap(transform)(jax.random.split(rng, x_B.shape[0]), x_B)
    return apply


def random_shift(pad: int) -> Augment:
    """Random crop: each image shifted by a uniform offset in [-pad, pad] on each axis."""
    def transform(rng, x_HW):
        dy, dx = jax.random.randint(rng, (2,), -pad, pad + 1)
        return shift(x_HW, dy, dx, pad)
    return _per_example(transform)


def random_flip() -> Augment:
    """Each image mirrored left-right with probability 1/2."""
    def transform(rng, x_HW):
        return jnp.where(jax.random.bernoulli(rng), jnp.flip(x_HW, axis=1), x_HW)
    return _per_example(transform)


def compose(augments: list[Augment]) -> Augment:
    """Applies `augments` in order, each with its own key folded from `rng`."""
    def apply(rng: jax.Array, x_B: jax.Array) -> jax.Array:
        for index, augment in enumerate(augments):
            x_B = augment(jax.random.fold_in(rng, index), x_B)
        return x_B
    return apply


def _parse(item: str, spec: str) -> Augment:
    name, _, arg = item.partition(":")
    if name == "flip" and not arg:
        return random_flip()
    if name == "shift" and arg.isdigit() and int(arg) >= 1:
        return random_shift(int(arg))
    raise DlxError(f"data.augment={spec!r}: bad item {item!r}; expected a comma-separated list "
                   f"of {ALLOWED}, or '' for none")


def get(spec: str) -> Augment | None:
    """`"shift:4,flip"` -> that augmentation; `""` -> None (no augmentation)."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        return None
    augments = [_parse(item, spec) for item in items]
    return augments[0] if len(augments) == 1 else compose(augments)
