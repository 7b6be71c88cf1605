"""Optimisers and schedules from optax, built from `config.optim`."""

from __future__ import annotations

import ml_collections
import optax

from dlx.errors import DlxError

SCHEDULES = ("constant", "cosine", "linear")


def schedule(optim_config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warmup over `optim.warmup_steps`, then constant, cosine or linear decay to 0."""
    name, lr, warmup = optim_config.schedule, optim_config.lr, optim_config.warmup_steps
    if name not in SCHEDULES:
        raise DlxError(f"optim.schedule={name!r} is not known; expected one of: {', '.join(SCHEDULES)}")
    decay_steps = total_steps - warmup
    main = {"constant": lambda: optax.constant_schedule(lr),
            "cosine": lambda: optax.cosine_decay_schedule(lr, decay_steps),
            "linear": lambda: optax.linear_schedule(lr, 0.0, decay_steps)}[name]()
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def _optimizer(name: str, lr: optax.Schedule, optim_config: ml_collections.ConfigDict):
    momentum, weight_decay = optim_config.momentum, optim_config.weight_decay
    makers = {
        "sgd": lambda: optax.sgd(lr),
        "momentum": lambda: optax.sgd(lr, momentum=momentum),
        "nesterov": lambda: optax.sgd(lr, momentum=momentum, nesterov=True),
        "rmsprop": lambda: optax.rmsprop(lr),
        "adagrad": lambda: optax.adagrad(lr),
        "adam": lambda: optax.adam(lr),
        "adamw": lambda: optax.adamw(lr, weight_decay=weight_decay),
    }
    if name not in makers:
        raise DlxError(f"optim.name={name!r} is not known; expected one of: {', '.join(makers)}")
    return makers[name]()


def make(optim_config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """Global-norm clipping (`optim.clip` > 0), then the named optimiser on the schedule.

    `optim.weight_decay` is decoupled decay for `adamw` and added L2-style decay for the others.
    """
    lr = schedule(optim_config, total_steps)
    name = optim_config.name
    parts = []
    if optim_config.clip > 0:
        parts.append(optax.clip_by_global_norm(optim_config.clip))
    if name != "adamw" and optim_config.weight_decay > 0:
        parts.append(optax.add_decayed_weights(optim_config.weight_decay))
    parts.append(_optimizer(name, lr, optim_config))
    return optax.chain(*parts)
