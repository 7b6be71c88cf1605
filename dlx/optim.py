"""Optimisers, schedules and parameter penalties from optax, built from `config.optim`."""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Union

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dlx.errors import DlxError

SCHEDULES = ("constant", "cosine", "linear", "step")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw")
DECAYED_LEAF_NAMES = frozenset({"kernel"})
FROZEN = "frozen"  # The `group_labels` label of the leaves `optim.freeze` matches.
LAYER_KEY = re.compile(r"^layer_(\d+)$")  # `encoder/layer_{k}` (BERT), `decoder/layer_{k}` (GPT).
EMBEDDING_KEYS = ("embeddings", "token_embedding", "position_embedding")

Mask = Union[Any, Callable[[Any], Any]]


def decay_mask(params: Any) -> Any:
    """A pytree of bools shaped like `params`: which leaves weight decay and L1/L2 penalties touch.

    The rule is by name: a leaf is decayed exactly when its last path key is `kernel`, i.e. the
    weight matrices of Dense/DenseGeneral and the filters of Conv/ConvTranspose. Everything else
    is left alone: biases, the `scale`/`bias` of LayerNorm/BatchNorm/GroupNorm, `embedding`
    tables and any other parameter. Decaying normalisation scales pulls them towards 0 and
    changes what the network can represent, and decaying biases buys no regularisation.
    """
    return jax.tree_util.tree_map_with_path(
        lambda path, _: bool(path) and jax.tree_util.keystr(path[-1:], simple=True)
        in DECAYED_LEAF_NAMES, params)


def _resolve_mask(mask: Mask | None, tree: Any) -> Any:
    """`mask` as a bool pytree for `tree` (None: every leaf)."""
    if mask is None:
        return jax.tree.map(lambda _: True, tree)
    return mask(tree) if callable(mask) else mask


def add_l1(strength: float, mask: Mask | None = None) -> optax.GradientTransformation:
    """Adds `strength * sign(w)` to the gradient of every masked leaf: the gradient of the loss term
    `strength * sum(|w|)` (with the subgradient 0 at w = 0). Stateless; needs `params` in update."""
    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("add_l1 needs the params passed to update()")
        mask_tree = _resolve_mask(mask, params)
        updates = jax.tree.map(
            lambda g, p, m: g + strength * jnp.sign(p).astype(g.dtype) if m else g,
            updates, params, mask_tree)
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def add_l2(strength: float, mask: Mask | None = None) -> optax.GradientTransformation:
    """Adds `strength * w` to the gradient of every masked leaf: the gradient of the loss term
    `strength / 2 * sum(w ** 2)`."""
    return optax.add_decayed_weights(strength, mask=mask)


def penalty(params: Any, optim_config: ml_collections.ConfigDict) -> jax.Array:
    """The value of the L1 + L2 penalties that `make` adds through the gradient (for logging):
    `optim.l1 * sum(|w|) + optim.l2 / 2 * sum(w ** 2)` over the `decay_mask` leaves, as float32.
    `optim.weight_decay` is not included (for adamw it is not a loss term at all)."""
    l1, l2 = _penalty_strengths(optim_config)
    mask = decay_mask(params)
    leaves = [p.astype(jnp.float32) for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask))
              if m]
    total = jnp.zeros((), jnp.float32)
    for leaf in leaves:
        if l1:
            total = total + l1 * jnp.sum(jnp.abs(leaf))
        if l2:
            total = total + 0.5 * l2 * jnp.sum(jnp.square(leaf))
    return total


def _non_negative(optim_config: ml_collections.ConfigDict, key: str) -> float:
    value = optim_config.get(key, 0.0)
    if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
        raise DlxError(f"optim.{key} must be a finite number >= 0, got {value!r}")
    return float(value)


def _penalty_strengths(optim_config: ml_collections.ConfigDict) -> tuple[float, float]:
    return _non_negative(optim_config, "l1"), _non_negative(optim_config, "l2")


def _step_schedule(optim_config: ml_collections.ConfigDict, lr: float) -> optax.Schedule:
    decay_steps = optim_config.get("decay_steps", 0)
    rate = optim_config.get("decay_rate", 0.1)
    if not (isinstance(decay_steps, int) and decay_steps > 0):
        raise DlxError(f"optim.decay_steps must be a positive int for optim.schedule='step' "
                       f"(lr is multiplied by optim.decay_rate every decay_steps steps), "
                       f"got {decay_steps!r}")
    if not (isinstance(rate, (int, float)) and 0 < rate <= 1):
        raise DlxError(f"optim.decay_rate must be in (0, 1] for optim.schedule='step', "
                       f"got {rate!r}")
    return optax.exponential_decay(lr, transition_steps=decay_steps, decay_rate=float(rate),
                                   staircase=True)


def schedule(optim_config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warmup over `optim.warmup_steps`, then one of:

    constant; cosine or linear decay to 0 at `total_steps`; step: lr times
    `optim.decay_rate ** floor((t - warmup) / optim.decay_steps)` (staircase).
    """
    name, lr, warmup = optim_config.schedule, optim_config.lr, optim_config.warmup_steps
    if name not in SCHEDULES:
        raise DlxError(f"optim.schedule={name!r} is not known; expected one of: {', '.join(SCHEDULES)}")
    decay_steps = total_steps - warmup
    main = {"constant": lambda: optax.constant_schedule(lr),
            "cosine": lambda: optax.cosine_decay_schedule(lr, decay_steps),
            "linear": lambda: optax.linear_schedule(lr, 0.0, decay_steps),
            "step": lambda: _step_schedule(optim_config, lr)}[name]()
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def _optimizer(name: str, lr: optax.Schedule, optim_config: ml_collections.ConfigDict,
               weight_decay: float) -> optax.GradientTransformation:
    momentum = optim_config.momentum
    b1 = optim_config.get("b1", 0.9)  # Adam's first-moment decay; optional (GANs use 0.5).
    if not (isinstance(b1, (int, float)) and 0 <= b1 < 1):
        raise DlxError(f"optim.b1 must be in [0, 1), got {b1!r}")
    makers = {
        "sgd": lambda: optax.sgd(lr),
        "momentum": lambda: optax.sgd(lr, momentum=momentum),
        "nesterov": lambda: optax.sgd(lr, momentum=momentum, nesterov=True),
        "rmsprop": lambda: optax.rmsprop(lr),
        "adagrad": lambda: optax.adagrad(lr),
        "adam": lambda: optax.adam(lr, b1=b1),
        "adamw": lambda: optax.adamw(lr, b1=b1, weight_decay=weight_decay, mask=decay_mask),
    }
    return makers[name]()  # `make` has checked the name.


def param_path(path: tuple) -> str:
    """A jax key path -> its '/'-joined names, e.g. `bert/encoder/layer_0/mlp/output/kernel`."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def param_paths(params: Any) -> list[str]:
    """The '/'-joined path of every leaf of `params`, in `jax.tree.leaves` order."""
    return [param_path(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def layer_depth(path: str) -> int | None:
    """Depth of a '/'-joined param path in a layer stack: k + 1 for `.../layer_{k}/...` under an
    `encoder` or `decoder` (BERT, GPT), 0 for embeddings (`embeddings/`, `token_embedding`,
    `position_embedding`), None for everything else (heads, pooler, final norm: the top)."""
    names = path.split("/")
    for parent, name in zip(names, names[1:]):
        match = LAYER_KEY.match(name)
        if match and parent in ("encoder", "decoder"):
            return int(match.group(1)) + 1
    return 0 if any(name in EMBEDDING_KEYS for name in names) else None


def layer_multipliers(params: Any, decay: float) -> Any:
    """Pytree like `params` of float LR multipliers: decay^(L - k) for layer k of L, decay^(L + 1)
    for the embeddings, 1 for the rest; other models (no `layer_{k}` stack) raise for decay < 1."""
    paths = param_paths(params)
    depths = [layer_depth(path) for path in paths]
    num_layers = max((d for d in depths if d is not None), default=0)
    if decay < 1 and num_layers == 0:
        raise DlxError(f"optim.layer_decay={decay} needs a model with an encoder/decoder "
                       f"layer_{{k}} stack (BERT, GPT); this model has none; set it to 1")
    leaves = [1.0 if d is None else float(decay) ** (num_layers + 1 - d) for d in depths]
    return jax.tree.unflatten(jax.tree.structure(params), leaves)


def _freeze_patterns(optim_config: ml_collections.ConfigDict) -> list[re.Pattern]:
    text = optim_config.get("freeze", "")
    if not isinstance(text, str):
        raise DlxError(f"optim.freeze must be a string of comma-separated regexes, got {text!r}")
    patterns = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                patterns.append(re.compile(part))
            except re.error as e:
                raise DlxError(f"optim.freeze: {part!r} is not a regex ({e})") from None
    return patterns


def group_labels(params: Any, patterns: list[re.Pattern], decay: float) -> Any:
    """Pytree like `params` of labels: `frozen` where a pattern searches the '/'-joined path,
    else `lr_x<multiplier>` (`layer_multipliers`); a pattern matching no leaf is an error."""
    paths = param_paths(params)
    unused = [p.pattern for p in patterns if not any(p.search(path) for path in paths)]
    if unused:
        raise DlxError(f"optim.freeze: {unused[0]!r} matches no parameter; paths look like "
                       f"{paths[0]!r}")
    multipliers = jax.tree.leaves(layer_multipliers(params, decay))
    labels = [FROZEN if any(p.search(path) for p in patterns) else f"lr_x{m!r}"
              for path, m in zip(paths, multipliers)]
    return jax.tree.unflatten(jax.tree.structure(params), labels)


def _groups(optim_config: ml_collections.ConfigDict
            ) -> tuple[list[re.Pattern], float, int] | None:
    """(freeze patterns, layer_decay, unfreeze_at) from the config; None when all are off."""
    patterns = _freeze_patterns(optim_config)
    decay = optim_config.get("layer_decay", 1.0)
    if not (isinstance(decay, (int, float)) and 0 < decay <= 1):
        raise DlxError(f"optim.layer_decay must be in (0, 1] (1 = off), got {decay!r}")
    unfreeze_at = optim_config.get("unfreeze_at", 0)
    if not (isinstance(unfreeze_at, int) and unfreeze_at >= 0):
        raise DlxError(f"optim.unfreeze_at must be an int >= 0 (0 = never), got {unfreeze_at!r}")
    if unfreeze_at and not patterns:
        raise DlxError(f"optim.unfreeze_at={unfreeze_at} needs optim.freeze to name what to "
                       f"unfreeze")
    if not patterns and decay == 1:
        return None
    return patterns, float(decay), unfreeze_at


def _frozen_gate(unfreeze_at: int) -> optax.GradientTransformation:
    """Zeroes its leaves' updates for good (unfreeze_at 0), or for steps < unfreeze_at."""
    if not unfreeze_at:
        return optax.set_to_zero()
    return optax.scale_by_schedule(lambda count: (count >= unfreeze_at).astype(jnp.float32))


def _grouped(groups: tuple[list[re.Pattern], float, int], final: bool
             ) -> optax.GradientTransformation:
    """multi_transform over `group_labels`: frozen leaves gated; the rest scaled by their
    multiplier (`final`) or passed through (before clipping)."""
    patterns, decay, unfreeze_at = groups

    def labels(tree):
        return group_labels(tree, patterns, decay)

    def transforms(tree):
        names = set(jax.tree.leaves(labels(tree)))
        return {name: (_frozen_gate(unfreeze_at) if name == FROZEN
                       else optax.scale(float(name[len("lr_x"):])) if final
                       else optax.identity()) for name in names}

    def init_fn(params):
        return optax.multi_transform(transforms(params), labels).init(params)

    def update_fn(updates, state, params=None):
        return optax.multi_transform(transforms(updates), labels).update(updates, state, params)

    return optax.GradientTransformation(init_fn, update_fn)


def make(optim_config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """The optimiser chain for `config.optim`, in this order:

    1. global-norm clipping of the gradient (`optim.clip` > 0);
    2. L1 (`optim.l1`: loss + l1 * sum|w|) and L2 (`optim.l2`: loss + l2/2 * sum w^2) penalty
       gradients on the `decay_mask` leaves (kernels only);
    3. `optim.weight_decay` for every optimiser but adamw: `wd * w` added to the gradient of the
       kernels before the optimiser, i.e. L2-style coupling (Adam/RMSProp/Adagrad rescale it);
    4. the named optimiser on `schedule(...)`; adamw does decoupled decay (lr * wd * w) on the
       `decay_mask` leaves itself;
    5. with `optim.freeze` / `optim.layer_decay`: an `optax.multi_transform` over `group_labels`
       that zeroes the updates of the frozen leaves (`set_to_zero`; until step
       `optim.unfreeze_at` if set) and multiplies the others by their layer's LR multiplier.
       Frozen gradients are also zeroed before step 1, so they never count in the clip norm;
       a frozen leaf moves by exactly 0, so it is not weight-decayed either.
    """
    name = optim_config.name
    if name not in OPTIMIZERS:
        raise DlxError(f"optim.name={name!r} is not known; "
                       f"expected one of: {', '.join(OPTIMIZERS)}")
    weight_decay = _non_negative(optim_config, "weight_decay")
    l1, l2 = _penalty_strengths(optim_config)
    lr = schedule(optim_config, total_steps)
    groups = _groups(optim_config)
    parts = []
    if groups is not None and groups[0]:
        parts.append(_grouped(groups, final=False))
    if optim_config.clip > 0:
        parts.append(optax.clip_by_global_norm(optim_config.clip))
    # Penalties come after clipping: the clip bounds the data gradient only, as with PyTorch's
    # clip_grad_norm_ before an optimiser's weight_decay, so a large data gradient cannot shrink
    # the regulariser's pull and the clip threshold keeps meaning "data-gradient norm".
    if l1 > 0:
        parts.append(add_l1(l1, decay_mask))
    if l2 > 0:
        parts.append(add_l2(l2, decay_mask))
    if name != "adamw" and weight_decay > 0:
        parts.append(optax.add_decayed_weights(weight_decay, mask=decay_mask))
    parts.append(_optimizer(name, lr, optim_config, weight_decay))
    if groups is not None:
        parts.append(_grouped(groups, final=True))
    return optax.chain(*parts)
