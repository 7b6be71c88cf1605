"""Explaining classifiers: gradient×input, integrated gradients and attention maps, with plots.

`fn(x_B...) -> logits_BC` is any JAX function of a float batch (features, signals, images, or
token embeddings). For class `t` of example b, with `f = fn(x)[b, t]`:
- gradient×input: `x · ∂f/∂x`.
- integrated gradients (Sundararajan et al. 2017): `(x - x') · ∫₀¹ ∂f/∂x(x' + α(x - x')) dα`
  from a baseline `x'` (zeros by default), the integral taken by the trapezoid rule over `steps`
  equal intervals or by `steps`-point Gauss-Legendre quadrature. The attributions sum to
  `f(x) - f(x')` (completeness) up to the quadrature error, which `completeness` measures.
  All path points go through `fn` in one jitted, vmapped forward and backward pass (or in
  equal chunks of `max_points`, to bound memory).

Token models attribute to their input embeddings: `embedding_function` swaps the output of the
model's `nn.Embed` for a given array through flax's method interception, so no model needs an
`inputs_embeds` argument. `attention_maps` reads the weights of every `MultiHeadAttention` the
same way. `explain_run` is `dlx explain` on a trained run's held-out examples.
"""

from __future__ import annotations

import functools
import inspect
import json
import pathlib
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dlx.errors import DlxError
from dlx.nn.attention import MultiHeadAttention, attention_weights
from dlx.train.outputs import figure, save_figure, write_atomic

IG_METHODS = ("riemann_trapezoid", "gauss_legendre")
COMMAND_METHODS = ("ig", "gxi", "attention")  # `dlx explain --method`; `all` runs what applies.
TOKEN_MODELS = {"bert_classifier": "word_embeddings"}  # model.name -> its token nn.Embed's name.
TOP_K = 5  # Positions listed per example in explain.json.
# `dlx explain` doubles the IG steps (from --steps) up to MAX_STEPS until every example's
# completeness gap is within TOLERANCE: ReLU networks have kinks along the path, which the
# quadrature meets at O(1 / steps), and examples whose f(x) - f(x') is small need more steps.
TOLERANCE, MAX_STEPS = 0.01, 1024
ROWS_PER_CALL = 256  # Path points x examples per vmapped call in `dlx explain`.
COMPLETENESS_EPS = 1e-6  # Floor of |f(x) - f(x')| in the relative completeness gap.


def _check_inputs(fn: Callable, x_B: jax.Array, target: Any) -> tuple[jax.Array, jax.Array]:
    """(x_B as a float array, target_B int32); one-line errors for what `fn` cannot explain."""
    x_B = jnp.asarray(x_B)
    if not jnp.issubdtype(x_B.dtype, jnp.floating):
        raise DlxError(f"attributions need float inputs; got {x_B.dtype} of shape {x_B.shape} "
                       f"(token ids: attribute to embeddings with embedding_function)")
    if x_B.ndim < 1:
        raise DlxError("x must be a batch (B, ...); got a scalar")
    out = jax.eval_shape(fn, x_B)
    if not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[0] != x_B.shape[0]:
        raise DlxError(f"fn must map x {tuple(x_B.shape)} to logits (B, C) = "
                       f"({x_B.shape[0]}, C); got {getattr(out, 'shape', type(out).__name__)}")
    target_B = np.broadcast_to(np.asarray(target), (x_B.shape[0],))
    if not np.issubdtype(target_B.dtype, np.integer):
        raise DlxError(f"target must be a class index or (B,) indices; got {target_B.dtype}")
    classes = out.shape[1]
    if target_B.size and (target_B.min() < 0 or target_B.max() >= classes):
        raise DlxError(f"target {target_B.tolist()} out of range for {classes} classes")
    return x_B, jnp.asarray(target_B, jnp.int32)


def _baseline(x_B: jax.Array, baseline: Any) -> jax.Array:
    """`baseline` (None: zeros) broadcast to `x_B`'s shape and dtype."""
    if baseline is None:
        return jnp.zeros_like(x_B)
    baseline = jnp.asarray(baseline, x_B.dtype)
    try:
        return jnp.broadcast_to(baseline, x_B.shape)
    except ValueError:
        raise DlxError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to x's "
                       f"{tuple(x_B.shape)}") from None


def _picked(logits_BC: jax.Array, target_B: jax.Array) -> jax.Array:
    """(B,) logits of each example's target class."""
    return jnp.take_along_axis(logits_BC, target_B[:, None], axis=1)[:, 0]


@functools.partial(jax.jit, static_argnames=("fn",))
def _gradients(fn: Callable, x_B: jax.Array, target_B: jax.Array) -> jax.Array:
    """∂ fn(x)[b, target_b] / ∂x_b, stacked to x_B's shape."""
    return jax.grad(lambda x: _picked(fn(x), target_B).sum())(x_B)


def gradient_x_input(fn: Callable, x_B: jax.Array, target: Any) -> jax.Array:
    """Attributions_B... = x · ∂fn(x)[b, target_b]/∂x, shaped like `x_B`."""
    x_B, target_B = _check_inputs(fn, x_B, target)
    return x_B * _gradients(fn, x_B, target_B)


def path_quadrature(steps: int, method: str = "riemann_trapezoid"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(alphas_K, weights_K) in [0, 1] with Σ weights = 1: K = steps + 1 trapezoid points or
    K = steps Gauss-Legendre nodes."""
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise DlxError(f"steps={steps!r} must be a positive int")
    if method == "riemann_trapezoid":
        alphas_K = np.linspace(0.0, 1.0, steps + 1)
        weights_K = np.full(steps + 1, 1.0 / steps)
        weights_K[[0, -1]] /= 2
    elif method == "gauss_legendre":
        nodes_K, weights_K = np.polynomial.legendre.leggauss(steps)
        alphas_K, weights_K = (nodes_K + 1) / 2, weights_K / 2
    else:
        raise DlxError(f"method={method!r} is unknown; expected one of: {', '.join(IG_METHODS)}")
    return alphas_K.astype(np.float32), weights_K.astype(np.float32)


@functools.partial(jax.jit, static_argnames=("fn",))
def _path_sum(fn: Callable, x_B: jax.Array, baseline_B: jax.Array, target_B: jax.Array,
              alphas_K: jax.Array, weights_K: jax.Array) -> jax.Array:
    """Σ_k w_k ∂f/∂x at x' + α_k (x - x'), shaped like x_B: the K points in one vmapped pass."""
    expand = (-1,) + (1,) * x_B.ndim
    points_KB = baseline_B[None] + alphas_K.reshape(expand) * (x_B - baseline_B)[None]

    def total(points_KB: jax.Array) -> jax.Array:
        logits_KBC = jax.vmap(fn)(points_KB)
        return jax.vmap(_picked, (0, None))(logits_KBC, target_B).sum()

    return jnp.tensordot(weights_K, jax.grad(total)(points_KB), axes=1)


def integrated_gradients(fn: Callable, x_B: jax.Array, target: Any, baseline: Any = None,
                         steps: int = 64, method: str = "riemann_trapezoid",
                         max_points: int | None = None) -> jax.Array:
    """Attributions_B... of class `target` (int or (B,)) from `baseline` (None: zeros; any array
    broadcastable to x), shaped like `x_B`; see the module docstring for `method`. All path
    points go through one jitted call, or calls of `max_points` points each (bounds memory)."""
    x_B, target_B = _check_inputs(fn, x_B, target)
    baseline_B = _baseline(x_B, baseline)
    alphas_K, weights_K = path_quadrature(steps, method)
    size = len(alphas_K) if max_points is None else max_points
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise DlxError(f"max_points={max_points!r} must be a positive int or None")
    padding = -len(alphas_K) % size  # Zero-weight points keep every call the same shape.
    alphas_K, weights_K = np.pad(alphas_K, (0, padding)), np.pad(weights_K, (0, padding))
    sum_B = sum(_path_sum(fn, x_B, baseline_B, target_B, jnp.asarray(alphas_K[i:i + size]),
                          jnp.asarray(weights_K[i:i + size]))
                for i in range(0, len(alphas_K), size))
    return (x_B - baseline_B) * sum_B


class Completeness(NamedTuple):
    """Per example (B,): Σ attributions, f(x) - f(x') and |Σ - Δ| / max(|Δ|, 1e-6)."""
    total: np.ndarray
    delta: np.ndarray
    gap: np.ndarray


def completeness(fn: Callable, x_B: jax.Array, attributions_B: jax.Array, target: Any,
                 baseline: Any = None) -> Completeness:
    """How far Σ attributions_b is from fn(x)[b, t] - fn(x')[b, t] (zeros `x'` if None)."""
    x_B, target_B = _check_inputs(fn, x_B, target)
    attributions_B = jnp.asarray(attributions_B)
    if attributions_B.shape != x_B.shape:
        raise DlxError(f"attributions have shape {tuple(attributions_B.shape)}; expected x's "
                       f"{tuple(x_B.shape)}")
    baseline_B = _baseline(x_B, baseline)
    delta_B = np.asarray(_picked(fn(x_B), target_B) - _picked(fn(baseline_B), target_B),
                         np.float64)
    total_B = np.asarray(attributions_B.reshape(x_B.shape[0], -1).sum(1), np.float64)
    gap_B = np.abs(total_B - delta_B) / np.maximum(np.abs(delta_B), COMPLETENESS_EPS)
    return Completeness(total_B, delta_B, gap_B)


def completeness_gap(fn: Callable, x_B: jax.Array, attributions_B: jax.Array, target: Any,
                     baseline: Any = None) -> np.ndarray:
    """(B,) relative gap |Σ attributions - (f(x) - f(x'))| / |f(x) - f(x')|."""
    return completeness(fn, x_B, attributions_B, target, baseline).gap


def _logits(out: Any) -> jax.Array:
    """A module's output, or its `.logits` (BERT heads return a NamedTuple)."""
    return getattr(out, "logits", out)


def embedding_function(module: nn.Module, variables: dict, ids_B: jax.Array, *,
                       embed_name: str = "word_embeddings", **apply_kwargs
                       ) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    """(embeds_B...E, fn): the `nn.Embed` named `embed_name` looked up at `ids_B`, and
    `fn(embeds_B...E) -> logits_BC` of `module` on `ids_B` with that lookup replaced by `embeds`
    (attention masks and other uses of the ids are kept). Attribute to the embeddings with
    `integrated_gradients(fn, embeds, ...)` and sum over E for one score per token."""
    ids_B = jnp.asarray(ids_B)
    found: dict[str, Any] = {}

    def is_lookup(context) -> bool:
        return (isinstance(context.module, nn.Embed) and context.method_name == "__call__"
                and context.module.name == embed_name)

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if is_lookup(context):
            found["embeds"] = out
        return out

    def lookup(variables: dict, ids_B: jax.Array) -> jax.Array | None:
        found.clear()
        with nn.intercept_methods(record):
            module.apply(variables, ids_B, **apply_kwargs)  # Jitted: only the lookup is kept.
        return found.get("embeds")

    embeds = jax.jit(lookup)(variables, ids_B)
    if embeds is None:
        raise DlxError(f"{type(module).__name__} calls no nn.Embed named {embed_name!r}; "
                       f"pass the name of its token embedding as embed_name")

    def fn(embeds_BE: jax.Array) -> jax.Array:
        def replace(next_fun, args, kwargs, context):
            if is_lookup(context):
                return embeds_BE.astype(embeds.dtype)
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(replace):
            return _logits(module.apply(variables, ids_B, **apply_kwargs))

    return embeds, fn


def attention_maps(module: nn.Module, variables: dict, *args: jax.Array,
                   **kwargs) -> dict[str, jax.Array]:
    """`module.apply(variables, *args, **kwargs)`'s attention weights (one jitted call; `args`
    are arrays): '/'-joined path of each `MultiHeadAttention` -> (B, H, T, S) softmax weights
    (masked keys 0), in call order; {} for a model without attention."""
    return jax.jit(functools.partial(_traced_maps, module, kwargs))(variables, *args)


def _traced_maps(module: nn.Module, kwargs: dict, variables: dict,
                 *args: jax.Array) -> dict[str, jax.Array]:
    """`attention_maps`' computation: q and k of each attention recorded by interception."""
    calls: dict[tuple, dict] = {}
    signature = inspect.signature(MultiHeadAttention.__call__)

    def record(next_fun, a, kw, context):
        module_ = context.module
        if context.method_name != "__call__":
            return next_fun(*a, **kw)
        if isinstance(module_, MultiHeadAttention):
            bound = signature.bind(module_, *a, **kw)
            bound.apply_defaults()
            calls.setdefault(module_.path, {}).update(
                heads=module_.num_heads, head_dim=module_.head_dim,
                mask=bound.arguments["mask"], bias=bound.arguments["bias"])
        out = next_fun(*a, **kw)
        parent = getattr(module_, "parent", None)
        if (isinstance(module_, nn.Dense) and isinstance(parent, MultiHeadAttention)
                and module_.name in ("query", "key")):
            calls.setdefault(parent.path, {})[module_.name] = out
        return out

    with nn.intercept_methods(record):
        module.apply(variables, *args, **kwargs)
    maps = {}
    for path, call in calls.items():
        q_BTF, k_BSF = call["query"], call["key"]
        head_dim = call["head_dim"] or q_BTF.shape[-1] // call["heads"]
        heads = lambda x_BLF: x_BLF.reshape(x_BLF.shape[:2] + (call["heads"], head_dim))
        maps["/".join(path)] = attention_weights(heads(q_BTF), heads(k_BSF), call["mask"],
                                                 call["bias"])
    return maps


# Plots ------------------------------------------------------------------------------------------


def _limit(values: np.ndarray) -> float:
    """Symmetric colour limit for signed attributions."""
    return float(np.abs(values).max()) or 1.0


def plot_attributions(x: Any, attributions: Any, path: str | pathlib.Path, title: str = "",
                      tokens: Sequence[str] | None = None) -> None:
    """One example's attributions as a PNG: tokens (T,) as labelled bars; a 1-D signal x_T as
    a line over coloured bars; an image x_HW or x_HWC beside its heatmap (channels summed)."""
    x, attributions = np.asarray(x, np.float32), np.asarray(attributions, np.float32)
    if tokens is not None:
        if attributions.ndim != 1 or len(tokens) != len(attributions):
            raise DlxError(f"token attributions have shape {attributions.shape} for "
                           f"{len(tokens)} tokens; expected ({len(tokens)},)")
    elif attributions.shape != x.shape:
        raise DlxError(f"attributions have shape {attributions.shape}; expected x's {x.shape}")
    from matplotlib import cm, colors
    norm = colors.Normalize(-_limit(attributions), _limit(attributions))
    colour = lambda a: cm.coolwarm(norm(a))
    if tokens is not None:
        fig, axes = figure(size=(max(6.0, 0.35 * len(tokens)), 4), squeeze=False)
        ax = axes[0, 0]
        ax.bar(np.arange(len(tokens)), attributions, color=colour(attributions))
        ax.set_xticks(np.arange(len(tokens)), list(tokens), rotation=90, fontsize=8)
        ax.set(ylabel="attribution", title=title)
    elif x.ndim == 1:
        fig, axes = figure(nrows=2, size=(8, 5), squeeze=False)
        positions = np.arange(len(x))
        axes[0, 0].plot(positions, x, color="0.3")
        axes[0, 0].scatter(positions, x, c=colour(attributions), s=25, zorder=3)
        axes[0, 0].set(ylabel="x", title=title)
        axes[1, 0].bar(positions, attributions, color=colour(attributions))
        axes[1, 0].set(xlabel="position", ylabel="attribution")
        axes[1, 0].axhline(0, color="0.5", linewidth=0.5)
    elif x.ndim in (2, 3):
        heat = attributions if attributions.ndim == 2 else attributions.sum(-1)
        fig, axes = figure(ncols=2, size=(8, 4), squeeze=False)
        image = x if x.ndim == 2 or x.shape[-1] != 1 else x[..., 0]
        span = float(image.max() - image.min()) or 1.0
        axes[0, 0].imshow((image - image.min()) / span, cmap="gray" if image.ndim == 2 else None)
        fig.suptitle(title)
        axes[0, 0].set(title="input")
        shown = axes[0, 1].imshow(heat, cmap="coolwarm", norm=norm if heat is attributions
                                  else colors.Normalize(-_limit(heat), _limit(heat)))
        axes[0, 1].set(title="attribution")
        fig.colorbar(shown, ax=axes[0, 1], fraction=0.046)
        for ax in axes[0]:
            ax.set(xticks=[], yticks=[])
    else:
        raise DlxError(f"plot_attributions draws 1-D signals and images (H, W[, C]); got x of "
                       f"shape {x.shape}")
    save_figure(fig, path)


def plot_attention(maps: dict[str, Any], path: str | pathlib.Path,
                   tokens: Sequence[str] | None = None, title: str = "") -> None:
    """One example's attention as a PNG: a (T, S) heatmap per layer (row) and head (column) on
    one colour scale from 0 to the largest weight; `maps` is path -> (H, T, S), cut to the real
    tokens by the caller."""
    if not maps:
        raise DlxError("plot_attention got no attention maps")
    heads = max(np.shape(weights)[0] for weights in maps.values())
    top = max(float(np.max(weights)) for weights in maps.values()) or 1.0  # Shared colour scale.
    fig, axes = figure(ncols=heads, nrows=len(maps), size=(3.2 * heads, 3.2 * len(maps)),
                       squeeze=False)
    for row, (name, weights_HTS) in enumerate(maps.items()):
        for head in range(heads):
            ax = axes[row, head]
            if head >= np.shape(weights_HTS)[0]:
                ax.axis("off")
                continue
            ax.imshow(np.asarray(weights_HTS[head], np.float32), cmap="viridis", vmin=0,
                      vmax=top)
            ax.set_title(f"{title + ': ' if title and not row and not head else ''}"
                         f"{name.split('/')[-2] if '/' in name else name} head {head}",
                         fontsize=8)
            labels = list(tokens) if tokens is not None else None
            if labels is not None and len(labels) <= 40:
                ax.set_xticks(np.arange(len(labels)), labels, rotation=90, fontsize=6)
                ax.set_yticks(np.arange(len(labels)), labels, fontsize=6)
            else:
                ax.set(xticks=[], yticks=[])
    save_figure(fig, path)


# `dlx explain` ----------------------------------------------------------------------------------


def _methods(method: str, has_attention: bool, model_name: str) -> tuple[str, ...]:
    if method == "all":
        return ("ig", "gxi") + (("attention",) if has_attention else ())
    if method not in COMMAND_METHODS:
        raise DlxError(f"--method {method!r} is unknown; expected one of: "
                       f"{', '.join(COMMAND_METHODS)}, all")
    if method == "attention" and not has_attention:
        raise DlxError(f"--method attention needs a Transformer; model.name={model_name!r} has "
                       f"no attention layers (use ig or gxi)")
    return (method,)


def _top(scores: np.ndarray, tokens: Sequence[str] | None, key: str = "attribution"
         ) -> list[dict]:
    """The TOP_K positions of largest |score| (index tuples for images), best first."""
    flat = scores.reshape(-1)
    order = np.argsort(-np.abs(flat), kind="stable")[:TOP_K]
    top = []
    for i in order:
        position = np.unravel_index(i, scores.shape)
        entry = {"position": int(position[0]) if scores.ndim == 1 else [int(p) for p in position],
                 key: float(flat[i])}
        if tokens is not None:
            entry["token"] = tokens[int(i)]
        top.append(entry)
    return top


def explain_run(config: ml_collections.ConfigDict, workdir: str, examples: int = 4,
                method: str = "all", steps: int = 64) -> dict:
    """`dlx explain`: attributions of the classifier of `workdir`'s newest checkpoint for its first
    `examples` test examples (class: the predicted one), written to `workdir/explain/` as
    `<method>_<i>.png` and `explain.json`; returns a one-line summary."""
    from dlx import tasks
    from dlx.train import loop
    if method not in COMMAND_METHODS + ("all",):
        _methods(method, True, "")  # A bad --method fails before the data loads.
    if config.get("kind") == "embeddings":
        raise DlxError(f"dlx explain needs a classifier; {config.name} trains word vectors")
    if config.model.name in tasks.LM_MODELS:
        raise DlxError(f"dlx explain needs a classifier; {config.name} trains "
                       f"model.name={config.model.name!r}, a language model")
    if examples < 1:
        raise DlxError(f"--examples must be >= 1, got {examples}")
    path_quadrature(steps)
    run, step, state = loop.restore_for(config, workdir, tasks.Classification,
                                        "explain needs a classifier")
    model = run.task.model
    variables = {"params": state.params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
    test = run.splits.test
    count = min(examples, len(test["y"]))
    batch = {key: value[:count] for key, value in test.items()}
    extra = tuple(jnp.asarray(batch[name]) for name in tasks.EXTRA_INPUTS if name in batch)
    embed_name = TOKEN_MODELS.get(config.model.name)
    tokens_B = None
    if embed_name is not None:
        ids_B = jnp.asarray(batch["x"])
        x_B, apply_embeds = embedding_function(model, variables, ids_B, embed_name=embed_name,
                                               train=False)
        fn = jax.jit(apply_embeds)
        tokens_B = _token_strings(run.splits.metadata["tokenizer"], np.asarray(ids_B),
                                  model.config.pad_token_id)
    else:
        x_B = jnp.asarray(batch["x"], jnp.float32)
        fn = jax.jit(lambda x: _logits(model.apply(variables, x, *extra, train=False)))

    inputs = (jnp.asarray(batch["x"]), *extra)
    methods = _methods(method, _has_attention(model, variables, inputs), config.model.name)
    predicted_B = np.asarray(jnp.argmax(fn(x_B), axis=-1))
    out = pathlib.Path(workdir) / "explain"
    records = [{"index": i, "predicted": int(predicted_B[i]), "target": int(batch["y"][i])}
               for i in range(count)]
    ig_steps = None
    for name in methods:
        if name == "attention":
            _write_attention(model, variables, inputs, tokens_B, out, records)
            continue
        if name == "ig":
            attributions_B, check, ig_steps = _refined_ig(fn, x_B, predicted_B, steps)
        else:
            attributions_B = gradient_x_input(fn, x_B, predicted_B)
        attributions_B = np.asarray(attributions_B)
        for i, record in enumerate(records):
            scores, x_i, tokens = _per_position(attributions_B[i], np.asarray(x_B[i]),
                                                tokens_B[i] if tokens_B else None)
            plot_attributions(x_i, scores, out / f"{name}_{i}.png", tokens=tokens,
                              title=f"{config.name} {name}: example {i}, predicted "
                                    f"{record['predicted']}, target {record['target']}")
            entry = {"top": _top(scores, tokens), "total": float(scores.sum())}
            if name == "ig":
                entry.update(output_minus_baseline=float(check.delta[i]),
                             completeness_gap=float(check.gap[i]))
            record[name] = entry
    write_atomic(out / "explain.json", json.dumps(
        {"experiment": config.name, "step": step, "class": "predicted", "baseline": "zeros",
         "ig_steps": ig_steps, "examples": records},
        indent=2) + "\n")
    summary = {"out": str(out), "step": step, "examples": count, "methods": list(methods),
               "accuracy": float(np.mean([r["predicted"] == r["target"] for r in records]))}
    if "ig" in methods:
        summary["ig_steps"] = ig_steps
        summary["ig_completeness_gap_max"] = max(r["ig"]["completeness_gap"] for r in records)
    return summary


def _refined_ig(fn: Callable, x_B: jax.Array, target_B: np.ndarray, steps: int
                ) -> tuple[jax.Array, Completeness, int]:
    """(IG attributions, their completeness, the steps used): `steps` doubled up to MAX_STEPS
    until every gap is within TOLERANCE."""
    max_points = max(1, ROWS_PER_CALL // len(target_B))
    while True:
        attributions_B = integrated_gradients(fn, x_B, target_B, steps=steps,
                                              max_points=max_points)
        check = completeness(fn, x_B, attributions_B, target_B)
        if check.gap.max() <= TOLERANCE or steps >= MAX_STEPS:
            return attributions_B, check, steps
        steps = min(2 * steps, MAX_STEPS)


def _per_position(attributions: np.ndarray, x: np.ndarray, tokens: list[str] | None):
    """(scores, x, tokens) to plot: token attributions summed over the embedding and cut to the
    real tokens; other inputs as they are."""
    if tokens is None:
        return attributions, x, None
    return attributions.sum(-1)[:len(tokens)], x[:len(tokens)], tokens


def _token_strings(tokenizer_dir: str, ids_BT: np.ndarray, pad_id: int) -> list[list[str]]:
    """Each row's tokens up to its first padding."""
    from dlx.data import tokenizer as tokenizer_lib
    tokenizer = tokenizer_lib.load(tokenizer_dir)
    rows = []
    for ids_T in ids_BT:
        real = ids_T != pad_id
        length = int(real.argmin()) if not real.all() else len(ids_T)
        rows.append([tokenizer.id_to_token(int(i)) or f"<{int(i)}>" for i in ids_T[:length]])
    return rows


def _has_attention(model: nn.Module, variables: dict, inputs: tuple[jax.Array, ...]) -> bool:
    """Whether `model` on `inputs` calls a `MultiHeadAttention` (traced for shapes only)."""
    maps = functools.partial(_traced_maps, model, {"train": False})
    return bool(jax.eval_shape(maps, variables, *inputs))


def _write_attention(model: nn.Module, variables: dict, inputs: tuple[jax.Array, ...],
                     tokens_B: list[list[str]] | None, out: pathlib.Path,
                     records: list[dict]) -> None:
    """`attention_<i>.png` per example (real tokens only) and each layer's strongest-attended
    key from the first position ([CLS]), averaged over heads, into the records."""
    maps = {name: np.asarray(weights)
            for name, weights in attention_maps(model, variables, *inputs, train=False).items()}
    for i, record in enumerate(records):
        length = len(tokens_B[i]) if tokens_B else next(iter(maps.values())).shape[-1]
        example = {name: weights[i, :, :length, :length] for name, weights in maps.items()}
        plot_attention(example, out / f"attention_{i}.png",
                       tokens=tokens_B[i] if tokens_B else None, title=f"example {i}")
        record["attention"] = {
            name: _top(weights[:, 0].mean(0), tokens_B[i] if tokens_B else None, "weight")[:1]
            for name, weights in example.items()}
