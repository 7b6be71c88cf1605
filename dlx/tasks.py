"""Tasks turn a model into the pure functions the trainer needs; the trainer never sees the model.

A task's `loss(params, batch_stats, batch, rng, train)` returns `(loss, (sums, new_batch_stats))`:
`loss` is the mean over the examples (or predicted tokens) it saw (what is differentiated) and
`sums` holds metric sums plus `count`, the number of those examples: the trainer weights each
part's gradient by its count and the host divides global sums by global counts, so means are
global on any number of devices and micro-batches. A task's `summarize(sums)` turns host-side
sums into the means that are logged.

Tasks: `Classification` (softmax over classes; `DocumentClassification` also scores long texts
cut into windows per text), `MaskedLM` (BERT's masked-token prediction), `CausalLM` (next-token
prediction), `BiLM` (ELMo's forward and backward LMs) and `Seq2Seq` (target tokens from a source
sequence, with greedy-decoding exact match in evaluation); `build` picks one from `model.name`.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from typing import TYPE_CHECKING, Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlx import losses
from dlx.data import mlm
from dlx.errors import DlxError

if TYPE_CHECKING:
    from dlx.nn.tied_decoder import TokenNll

Batch = dict[str, jax.Array]
# `augment(rng, x_B...) -> x_B...`: a random transform of the training inputs, run inside the step.
Augment = Callable[[jax.Array, jax.Array], jax.Array]
# Batch fields passed to the model after `x`, in this order, when the batch has them.
EXTRA_INPUTS = ("lengths",)
AUGMENT_STREAM = 1  # `fold_in(rng, AUGMENT_STREAM)` seeds augmentation; dropout keeps `rng`.
MASK_STREAM = 2  # `fold_in(rng, MASK_STREAM)` seeds MLM masking in training steps.
EVAL_MASK_SEED = 0  # Evaluation masks row i with `fold_in(PRNGKey(EVAL_MASK_SEED), i)` in any run.


def model_inputs(batch: Batch) -> tuple[jax.Array, ...]:
    """`(x,)` plus `lengths_B` for right-padded sequences (any field of `EXTRA_INPUTS` present)."""
    return (batch["x"],) + tuple(batch[name] for name in EXTRA_INPUTS if name in batch)


def jitted_init(model: nn.Module, rng: jax.Array, *inputs: jax.Array,
                streams: tuple[str, ...] = ("dropout",), **kwargs) -> Any:
    """`model`'s params for `inputs`, from `model.init` under jit (run eagerly, init would
    compile every initialiser and every op of a loop, scatter or gather on its own); the
    params stream and each of `streams` get `rng`; `kwargs` (e.g. `train=False`) are static."""
    rngs = {name: rng for name in ("params", *streams)}
    init = jax.jit(lambda rngs, *inputs: model.init(rngs, *inputs, **kwargs)["params"])
    return init(rngs, *inputs)


@dataclasses.dataclass(frozen=True)
class Classification:
    """Softmax classification of `batch["x"]` into `batch["y"]`; `batch["mask"]` marks real rows.

    A batch with `lengths` (right-padded sequences) passes them to the model after `x`.
    `augment`, if given, transforms `x` in training steps only, with its own rng stream.
    The differentiated loss is sum over rows of w_y * l / count: l the cross-entropy, or the focal
    loss when `focal_gamma` is set; w = `class_weights` (1 when None). The logged `loss` stays the
    plain cross-entropy; per-class counts (`tp_c`, `pred_c`, `true_c`, up to `MAX_F1_CLASSES`
    classes) give `macro_f1`.
    """
    model: nn.Module
    augment: Augment | None = None
    class_weights: tuple[float, ...] | None = None
    focal_gamma: float | None = None

    def init(self, rng: jax.Array, batch: Batch) -> tuple[Any, Any]:
        """(params, batch_stats) for inputs shaped like `batch["x"]`; batch_stats is {} if unused."""
        variables = self.model.init({"params": rng, "dropout": rng}, *model_inputs(batch),
                                    train=False)
        return variables["params"], variables.get("batch_stats", {})

    def loss(self, params, batch_stats, batch: Batch, rng: jax.Array, train: bool):
        """Mean cross-entropy and metric sums (`loss`, `correct`, `count`) over real rows."""
        variables = {"params": params}
        if batch_stats:
            variables["batch_stats"] = batch_stats
        mutable = ["batch_stats"] if (train and batch_stats) else False
        inputs = model_inputs(batch)
        if train and self.augment is not None:
            inputs = (self.augment(jax.random.fold_in(rng, AUGMENT_STREAM), inputs[0]),
                      *inputs[1:])
        out = self.model.apply(variables, *inputs, train=train, rngs={"dropout": rng},
                               mutable=mutable)
        logits_BC, updates = out if mutable else (out, {})
        where_B = batch.get("mask")
        real_B = jnp.ones(batch["y"].shape, bool) if where_B is None else where_B
        loss, sums = prediction_sums(logits_BC, batch["y"], real_B)
        if self.focal_gamma is not None:
            total = losses.focal_sum(logits_BC, batch["y"], self.focal_gamma, real_B,
                                     self.class_weights)
            loss = total / jnp.maximum(sums["count"], 1.0)
        elif self.class_weights is not None:
            total = losses.cross_entropy_sum(logits_BC, batch["y"], real_B, self.class_weights)
            loss = total / jnp.maximum(sums["count"], 1.0)
        sums.update(_confusion_sums(logits_BC, batch["y"], real_B))
        return loss, (sums, updates.get("batch_stats", batch_stats))

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """`loss`, `accuracy` and, when the per-class counts are there, `macro_f1`."""
        means = summarize(sums)
        if "tp_0" in sums:
            means["macro_f1"] = macro_f1(sums)
        return means


@dataclasses.dataclass(frozen=True)
class DocumentClassification(Classification):
    """`Classification` of the windows of long texts (`data.long_text="windows"`, rows with a
    `doc` field): training and the logged metrics are per window. After training
    `write_artifacts` pools each held-out text's window logits and scores the texts."""
    batch_size: int = 64  # Windows per jitted forward pass in `window_logits`.

    def window_logits(self, params, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Eval-mode logits (W, C) of every row of `arrays` (`x` (W, T), ...), in batches."""
        from dlx.data.batching import eval_batches
        apply = jax.jit(lambda p, inputs: self.model.apply({"params": p}, *inputs, train=False))
        params = jax.device_put(params)
        fields = {k: v for k, v in arrays.items() if k == "x" or k in EXTRA_INPUTS}
        return np.concatenate([np.asarray(apply(params, model_inputs(batch)))[batch["mask"]]
                               for batch in eval_batches(fields, self.batch_size)])

    def write_artifacts(self, params, splits, workdir) -> dict[str, Any]:
        """Writes `documents.json` (held-out text accuracy of pooled window logits); returns
        `{"documents": file}` and the mean- and max-pooled accuracies ({} without `doc`)."""
        from dlx.train import outputs
        test = splits.test
        if "doc" not in test:
            return {}
        logits_WC = self.window_logits(params, test)
        accuracy = document_accuracies(logits_WC, test["doc"], test["y"])
        window_accuracy = float((logits_WC.argmax(-1) == test["y"]).mean())
        report = {"documents": int(test["doc"].max()) + 1, "windows": len(test["doc"]),
                  "accuracy": accuracy, "window_accuracy": window_accuracy,
                  "splits": splits.metadata.get("documents", {})}
        outputs.write_json(workdir / "documents.json", report)
        return {"documents": "documents.json", "document_accuracy_mean": accuracy["mean"],
                "document_accuracy_max": accuracy["max"]}


def document_accuracies(logits_WC, doc_W, labels_W) -> dict[str, float]:
    """Host-side: text-level accuracy of window logits (W, C) whose texts are `doc_W` (W,) =
    0..D-1, labels `labels_W` (W,), pooled per text by `mean`, `max` and `first` (the first
    window alone, what truncation sees)."""
    from dlx.data import chunking
    logits_WC, doc_W, labels_W = np.asarray(logits_WC), np.asarray(doc_W), np.asarray(labels_W)
    num_docs = int(doc_W.max()) + 1 if len(doc_W) else 0
    docs_D, first_D = np.unique(doc_W, return_index=True)
    if len(docs_D) != num_docs or docs_D.min(initial=0) < 0:
        raise DlxError(f"doc must number the texts 0..D-1 with a window each; got "
                       f"{len(docs_D)} distinct values up to {num_docs - 1}")
    labels_D = labels_W[first_D]
    if (labels_W != labels_D[doc_W]).any():
        raise DlxError("the windows of one text carry different labels y; expected one per text")
    pooled = {how: np.asarray(chunking.pool_windows(logits_WC, doc_W, num_docs, how))
              for how in chunking.POOLING}
    pooled["first"] = logits_WC[first_D]
    return {how: float((logits_DC.argmax(-1) == labels_D).mean())
            for how, logits_DC in pooled.items()}


MAX_F1_CLASSES = 100  # Above this many classes the per-class counts (and macro_f1) are skipped.


def _confusion_sums(logits_BC: jax.Array, labels_B: jax.Array, real_B: jax.Array
                    ) -> dict[str, jax.Array]:
    """Per-class float32 counts over real rows: `tp_c` (right), `pred_c` (predicted c), `true_c`."""
    num_classes = logits_BC.shape[-1]
    if num_classes > MAX_F1_CLASSES:
        return {}
    real_B1 = real_B.astype(jnp.float32)[:, None]
    true_BC = jax.nn.one_hot(labels_B, num_classes) * real_B1
    pred_BC = jax.nn.one_hot(logits_BC.argmax(-1), num_classes) * real_B1
    counts = {"tp": (true_BC * pred_BC).sum(0), "pred": pred_BC.sum(0), "true": true_BC.sum(0)}
    return {f"{name}_{c}": count_C[c] for name, count_C in counts.items()
            for c in range(num_classes)}


def macro_f1(sums: dict[str, float]) -> float:
    """Host-side: the mean over classes of F1_c = 2 tp_c / (pred_c + true_c) (0/0 = 0), as
    `dlx.metrics.precision_recall_f1(..., average="macro")` over all C classes."""
    num_classes = sum(1 for key in sums if key.startswith("tp_"))
    f1_C = [2 * float(sums[f"tp_{c}"]) / denom if (denom := float(sums[f"pred_{c}"])
                                                   + float(sums[f"true_{c}"])) else 0.0
            for c in range(num_classes)]
    return sum(f1_C) / max(num_classes, 1)


def summarize(sums: dict[str, float]) -> dict[str, float]:
    """Host-side: metric sums -> means (`loss`, `accuracy`)."""
    count = max(float(sums["count"]), 1.0)
    return {"loss": float(sums["loss"]) / count, "accuracy": float(sums["correct"]) / count}


def summarize_lm(sums: dict[str, float]) -> dict[str, float]:
    """Host-side: token-level sums -> `loss` (nats per token), `accuracy`, `perplexity` = e^loss."""
    means = summarize(sums)
    return {**means, "perplexity": math.exp(min(means["loss"], 700.0))}


def prediction_sums(logits_BXV: jax.Array, labels_BX: jax.Array, weights_BX: jax.Array):
    """(mean cross-entropy, sums `loss`, `correct`, `count`) of the predictions (rows, masked or
    next tokens) where `weights_BX` is True."""
    vocab = logits_BXV.shape[-1]
    loss_sum = losses.cross_entropy_sum(logits_BXV.reshape(-1, vocab), labels_BX.reshape(-1),
                                        weights_BX.reshape(-1))
    return _token_sums(loss_sum, logits_BXV.argmax(-1) == labels_BX, weights_BX)


def nll_sums(token_nll: TokenNll, labels_BX: jax.Array, weights_BX: jax.Array):
    """`prediction_sums` from a fused decoder's per-token `nll` and `predictions` (`TokenNll`)."""
    loss_sum = jnp.where(weights_BX, token_nll.nll, 0.0).sum()
    return _token_sums(loss_sum, token_nll.predictions == labels_BX, weights_BX)


def _token_sums(loss_sum: jax.Array, hit_BX: jax.Array, weights_BX: jax.Array):
    """(loss_sum / count, sums `loss`, `correct`, `count`) over the positions `weights_BX` keeps."""
    correct = jnp.where(weights_BX, hit_BX, False).sum()
    count = weights_BX.sum().astype(jnp.float32)
    sums = {"loss": loss_sum, "correct": correct.astype(jnp.float32), "count": count}
    return loss_sum / jnp.maximum(count, 1.0), sums


def _real_rows(batch: Batch, real_BT: jax.Array) -> jax.Array:
    """`real_BT` without the zero-padded rows an evaluation batch marks in `batch["mask"]`."""
    where_B = batch.get("mask")
    return real_BT if where_B is None else real_BT & where_B[:, None]


@dataclasses.dataclass(frozen=True)
class MaskedLM:
    """BERT's masked-token prediction on packed rows (`dlx.data.mlm`).

    The batch holds `input_ids`, `segment_ids`, `attention_mask` (B, T) and `row` (B,), each row's
    index in its split. Row i of a training step is masked with `fold_in(fold_in(step_rng,
    MASK_STREAM), i)`, so a resumed run masks exactly as an uninterrupted one; evaluation masks
    with a fixed key, so every evaluation (any run, any batch size) scores the same tokens. The
    model takes `(input_ids, attention_mask, token_type_ids, masked_positions, labels)` and
    returns a `TokenNll` (B, P) at the `max_predictions` gathered positions (the decoder fused
    with the loss, no logits); the loss is averaged over the masked tokens of the whole global
    batch.
    """
    model: nn.Module
    special_ids: tuple[int, ...]
    mask_id: int
    vocab_size: int
    mask_rate: float = 0.15
    max_predictions: int = 20

    def init(self, rng: jax.Array, batch: Batch) -> tuple[Any, Any]:
        ids_BT = batch["input_ids"]
        positions_BP = jnp.zeros((ids_BT.shape[0], self.max_predictions), jnp.int32)
        variables = self.model.init({"params": rng, "dropout": rng}, ids_BT,
                                    batch["attention_mask"], batch["segment_ids"], positions_BP,
                                    train=False)
        return variables["params"], {}

    def corrupt(self, key: jax.Array, batch: Batch) -> tuple[mlm.Masked, jax.Array]:
        """(the masked batch, real_BT); row i is masked with `fold_in(key, row_i)`."""
        real_BT = _real_rows(batch, batch["attention_mask"].astype(bool))

        def one_row(row_key, ids_T, real_T):
            masked = mlm.mask_tokens(row_key, ids_T[None], real_T[None], self.special_ids,
                                     self.vocab_size, self.mask_id, self.mask_rate,
                                     self.max_predictions)
            return jax.tree.map(lambda x: x[0], masked)

        keys_B = jax.vmap(jax.random.fold_in, (None, 0))(key, batch["row"])
        return jax.vmap(one_row)(keys_B, batch["input_ids"], real_BT), real_BT

    def loss(self, params, batch_stats, batch: Batch, rng: jax.Array, train: bool):
        """Mean masked-token cross-entropy and sums (`loss`, `correct`, `count` = masked tokens)."""
        key = (jax.random.fold_in(rng, MASK_STREAM) if train
               else jax.random.PRNGKey(EVAL_MASK_SEED))
        masked, _ = self.corrupt(key, batch)
        predictions = mlm.masked_positions(masked.labels, masked.mlm_mask, self.max_predictions)
        token_nll = self.model.apply({"params": params}, masked.input_ids,
                                     batch["attention_mask"], batch["segment_ids"],
                                     predictions.positions, predictions.labels, train=train,
                                     rngs={"dropout": rng})
        loss, sums = nll_sums(token_nll, predictions.labels, predictions.weights)
        return loss, (sums, batch_stats)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        return summarize_lm(sums)


@dataclasses.dataclass(frozen=True)
class CausalLM:
    """Next-token prediction: position t of `input_ids` (B, T) predicts token t + 1.

    `attention_mask` (B, T) marks real tokens; a target counts when it is real. The model takes
    `(input_ids, attention_mask, labels)` with `labels` the next tokens (B, T - 1) and returns a
    `TokenNll` of positions 0 … T - 2 (its output layer fused with the loss, as `dlx.nn.gpt.GPT`).
    """
    model: nn.Module

    def init(self, rng: jax.Array, batch: Batch) -> tuple[Any, Any]:
        variables = self.model.init({"params": rng, "dropout": rng}, batch["input_ids"],
                                    batch["attention_mask"], train=False)
        return variables["params"], {}

    def loss(self, params, batch_stats, batch: Batch, rng: jax.Array, train: bool):
        """Mean next-token cross-entropy and sums (`loss`, `correct`, `count` = targets)."""
        real_BT = _real_rows(batch, batch["attention_mask"].astype(bool))
        next_BX = batch["input_ids"][:, 1:]
        token_nll = self.model.apply({"params": params}, batch["input_ids"],
                                     batch["attention_mask"], next_BX, train=train,
                                     rngs={"dropout": rng})
        loss, sums = nll_sums(token_nll, next_BX, real_BT[:, 1:])
        return loss, (sums, batch_stats)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        return summarize_lm(sums)


@dataclasses.dataclass(frozen=True)
class BiLM:
    """ELMo's two language models (`dlx.nn.elmo.BiLM`): forward position t predicts token t + 1,
    backward position t predicts token t - 1.

    `attention_mask` (B, T) marks real tokens (right padding; the model gets `lengths_B`, its row
    sums); a target counts when it is real. The loss is the mean of the two directions' mean
    cross-entropies; both count the same targets per row (real tokens minus one). Sums: the
    joint `loss` and `correct` (averaged over the directions), `count`, and `forward_loss`,
    `forward_correct`, `backward_loss`, `backward_correct`.
    """
    model: nn.Module

    def init(self, rng: jax.Array, batch: Batch) -> tuple[Any, Any]:
        lengths_B = batch["attention_mask"].sum(1).astype(jnp.int32)
        return jitted_init(self.model, rng, batch["input_ids"], lengths_B, train=False), {}

    def loss(self, params, batch_stats, batch: Batch, rng: jax.Array, train: bool):
        """Mean of the forward and backward next-token cross-entropies, and their sums."""
        ids_BT = batch["input_ids"]
        real_BT = _real_rows(batch, batch["attention_mask"].astype(bool))
        lengths_B = real_BT.sum(1).astype(jnp.int32)
        forward_BTV, backward_BTV = self.model.apply({"params": params}, ids_BT, lengths_B,
                                                     train=train, rngs={"dropout": rng})
        loss_f, sums_f = prediction_sums(forward_BTV[:, :-1], ids_BT[:, 1:], real_BT[:, 1:])
        loss_b, sums_b = prediction_sums(backward_BTV[:, 1:], ids_BT[:, :-1], real_BT[:, :-1])
        sums = {"loss": (sums_f["loss"] + sums_b["loss"]) / 2,
                "correct": (sums_f["correct"] + sums_b["correct"]) / 2, "count": sums_f["count"],
                **{f"{name}_{key}": part[key] for name, part in (("forward", sums_f),
                                                                 ("backward", sums_b))
                   for key in ("loss", "correct")}}
        return (loss_f + loss_b) / 2, (sums, batch_stats)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """`loss`, `accuracy`, `perplexity` (both directions) and each direction's, prefixed."""
        means = summarize_lm(sums)
        for name in ("forward", "backward"):
            if f"{name}_loss" in sums:
                part = summarize_lm({"loss": sums[f"{name}_loss"],
                                     "correct": sums[f"{name}_correct"], "count": sums["count"]})
                means.update({f"{name}_{key}": value for key, value in part.items()})
        return means


@dataclasses.dataclass(frozen=True)
class Seq2Seq:
    """Sequence to sequence with teacher forcing (`dlx.nn.seq2seq` models, `dlx.data.reverse`).

    The batch holds `src` (B, S), `src_lengths` (B,), `tgt_in` (B, T) (BOS, then the target) and
    `tgt_out` (B, T) (the target, then EOS); target tokens are those of `tgt_out` that are not
    `pad_id`. The loss is their mean cross-entropy; `count` is their number, `correct` the
    argmax hits under teacher forcing. Evaluation also decodes each real row greedily
    (`dlx.nn.seq2seq.greedy_decode`, up to T tokens) and counts in `exact` the rows whose output
    up to its EOS equals the target, out of `sequences`. After training `write_artifacts` plots
    one held-out example's attention (`attention.png`).
    """
    model: nn.Module
    pad_id: int
    bos_id: int
    eos_id: int

    def init(self, rng: jax.Array, batch: Batch) -> tuple[Any, Any]:
        return jitted_init(self.model, rng, batch["src"], batch["src_lengths"], batch["tgt_in"],
                           train=False), {}

    def loss(self, params, batch_stats, batch: Batch, rng: jax.Array, train: bool):
        """Mean target-token cross-entropy; sums `loss`, `correct`, `count` (target tokens) and,
        in evaluation, `exact` and `sequences` (rows)."""
        from dlx.nn import seq2seq
        logits_BTV, _ = self.model.apply({"params": params}, batch["src"], batch["src_lengths"],
                                         batch["tgt_in"], train=train, rngs={"dropout": rng})
        target_BT = batch["tgt_out"]
        real_BT = _real_rows(batch, target_BT != self.pad_id)
        loss, sums = prediction_sums(logits_BTV, target_BT, real_BT)
        if not train:
            tokens_BT, _, _ = seq2seq.greedy_decode(
                self.model, params, batch["src"], batch["src_lengths"],
                max_length=target_BT.shape[1], bos_id=self.bos_id, eos_id=self.eos_id,
                pad_id=self.pad_id)
            # Greedy output is PAD after its EOS, so equal rows are exactly the right sequences.
            row_B = real_BT.any(axis=1)
            exact_B = jnp.all(tokens_BT == target_BT, axis=1) & row_B
            sums = {**sums, "exact": exact_B.sum().astype(jnp.float32),
                    "sequences": row_B.sum().astype(jnp.float32)}
        return loss, (sums, batch_stats)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """`loss` and `accuracy` per target token, `exact_match` per sequence (evaluation)."""
        means = summarize(sums)
        if "sequences" in sums:
            means["exact_match"] = float(sums["exact"]) / max(float(sums["sequences"]), 1.0)
        return means

    def write_artifacts(self, params, splits, workdir) -> dict[str, str]:
        """Writes `attention.png` (test example 0 under teacher forcing); returns `{name: file}`."""
        from dlx.train import outputs
        example = {k: v[:1] for k, v in splits.test.items()}
        _, weights_BTS = self.model.apply({"params": params}, example["src"],
                                          example["src_lengths"], example["tgt_in"])
        source = [str(t) for t in example["src"][0, :int(example["src_lengths"][0])]]
        target = ["EOS" if t == self.eos_id else str(t) for t in example["tgt_out"][0]
                  if t != self.pad_id]
        outputs.plot_attention(jax.device_get(weights_BTS[0]), source, target,
                               workdir / "attention.png", "attention, held-out example 0")
        return {"attention": "attention.png"}


# Models whose task lives beside them: model.name -> "module:function", the function taking
# (config, model, metadata) and returning the task.
TASK_BUILDERS: dict[str, str] = {
    "gnn_node": "dlx.graph_tasks:node_task",
    "gnn_graph": "dlx.graph_tasks:graph_task",
    "dense_autoencoder": "dlx.generative:reconstruction",
    "conv_autoencoder": "dlx.generative:reconstruction",
    "vae": "dlx.generative:variational",
    "gan": "dlx.gan.task:build",
}
LM_MODELS = {"bert_mlm": "masked_lm", "gpt": "causal_lm", "elmo_bilm": "bilm"}
SEQ2SEQ_MODELS = ("seq2seq", "seq2seq_transformer")


def build(config, model: nn.Module, metadata: dict[str, Any]):
    """The task for `config.model.name`: MaskedLM for bert_mlm, CausalLM for gpt, BiLM for
    elmo_bilm, Seq2Seq for the seq2seq models, else Classification (DocumentClassification
    for windows of texts); LM tasks need a token data source (`data.name="text"`), Seq2Seq a
    pair source (`data.name="reverse"`)."""
    from dlx.data import augment
    if config.model.name in TASK_BUILDERS:
        module_name, function_name = TASK_BUILDERS[config.model.name].split(":")
        builder = getattr(importlib.import_module(module_name), function_name)
        return builder(config, model, metadata)
    if config.model.name in SEQ2SEQ_MODELS:
        if "seq2seq_ids" not in metadata:
            raise DlxError(f"model.name={config.model.name!r} needs source/target pairs; set "
                           f"data.name='reverse' (got data.name={config.data.name!r})")
        ids = metadata["seq2seq_ids"]
        return Seq2Seq(model, pad_id=ids["pad"], bos_id=ids["bos"], eos_id=ids["eos"])
    kind = LM_MODELS.get(config.model.name)
    if kind is None:
        # Windows of long texts (data.long_text="windows") are also scored per text.
        task_type = DocumentClassification if "documents" in metadata else Classification
        return task_type(model, augment=augment.get(config.data.augment),
                              class_weights=class_weights(config, metadata),
                              focal_gamma=focal_gamma(config))
    if "special_ids" not in metadata:
        raise DlxError(f"model.name={config.model.name!r} needs token data; set data.name='text' "
                       f"(got data.name={config.data.name!r})")
    if kind == "causal_lm":
        return CausalLM(model)
    if kind == "bilm":
        return BiLM(model)
    ids = metadata["special_ids"]
    return MaskedLM(model, special_ids=tuple(sorted(ids.values())), mask_id=ids["mask"],
                    vocab_size=metadata["vocab_size"], mask_rate=config.data.mask_rate,
                    max_predictions=config.data.max_predictions)


LOSSES = ("cross_entropy", "focal")


def focal_gamma(config) -> float | None:
    """`train.focal_gamma` when `train.loss` is focal, None for cross_entropy (the default)."""
    name = config.train.get("loss", "cross_entropy")
    if name not in LOSSES:
        raise DlxError(f"train.loss={name!r} is not known; expected one of: {', '.join(LOSSES)}")
    if name == "cross_entropy":
        return None
    gamma = config.train.get("focal_gamma", 2.0)
    if not (isinstance(gamma, (int, float)) and 0 <= gamma < math.inf):
        raise DlxError(f"train.focal_gamma must be a finite number >= 0, got {gamma!r}")
    return float(gamma)


def class_weights(config, metadata: dict[str, Any]) -> tuple[float, ...] | None:
    """`train.class_weights`: "" (none), "balanced" (n / (C n_c) over the train labels, as
    sklearn) or comma-separated per-class weights; None when unset."""
    text = config.train.get("class_weights", "")
    if not text:
        return None
    counts = metadata.get("class_counts")
    if counts is None:
        raise DlxError(f"train.class_weights={text!r} needs a classification source with integer "
                       f"labels y (data.name={config.data.name!r} has none)")
    if text == "balanced":
        return losses.balanced_weights_of_counts(counts)
    try:
        weights = tuple(float(part) for part in text.split(","))
    except ValueError:
        weights = ()
    if len(weights) != len(counts) or not all(0 <= w < math.inf for w in weights):
        raise DlxError(f"train.class_weights={text!r}: expected 'balanced' or {len(counts)} "
                       f"comma-separated numbers >= 0")
    return weights
