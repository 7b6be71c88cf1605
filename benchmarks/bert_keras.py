"""dlx `BertForMaskedLM` vs KerasHub's `BertMaskedLM` on the JAX backend: MLM train step, tokens/s.

Both run in this one process on JAX/XLA, on the shapes of `benchmarks/bert.py` (H256 L4 A4 I1024
V30522, batch 32 x seq 128, at most 20 masked positions per row) and its batch: both compute the
MLM head only at the masked positions (`mask_positions` for KerasHub, `masked_positions_BP` for
dlx), with dropout 0.1 and AdamW (lr 1e-4, weight decay 0.01). KerasHub trains as a Keras user
does: `compile(jit_compile=True)` then `train_on_batch(x, y, sample_weight)`, with its sparse
cross-entropy over the masked positions weighted by the real-prediction mask; dlx runs its own
jitted, donated step (`bert.dlx_step`). Weights are each library's own initialisation (the speed
does not depend on them).

KerasHub needs tensorflow-text (which pulls TensorFlow), so it lives in its own environment:

    python -m venv kh && kh/bin/pip install keras-hub tensorflow-cpu tensorflow-text -e .
    KERAS_BACKEND=jax kh/bin/python benchmarks/bert_keras.py        # --rounds 8
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bert import LR, WEIGHT_DECAY, add_shape_arguments, dlx_step, mlm_batch  # noqa: E402
from harness import comparison, emit, interleaved_medians  # noqa: E402

from dlx.nn.bert import BertConfig, BertForMaskedLM  # noqa: E402


def keras_step(batch: dict[str, np.ndarray], vocab: int, hidden: int, layers: int, heads: int,
               intermediate: int, max_positions: int, dropout: float = 0.1):
    """A zero-argument KerasHub `train_on_batch` returning its loss."""
    import keras
    import keras_hub
    if keras.backend.backend() != "jax":
        raise SystemExit(f"KERAS_BACKEND is {keras.backend.backend()!r}; expected 'jax'")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocab, num_layers=layers, num_heads=heads, hidden_dim=hidden,
        intermediate_dim=intermediate, dropout=dropout, max_sequence_length=max_positions)
    model = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
    model.compile(optimizer=keras.optimizers.AdamW(LR, weight_decay=WEIGHT_DECAY),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[], jit_compile=True)
    ids_BT = batch["input_ids_BT"]
    x = {"token_ids": ids_BT, "padding_mask": np.ones(ids_BT.shape, bool),
         "segment_ids": np.zeros(ids_BT.shape, np.int32),
         "mask_positions": batch["positions_BP"]}
    y, weights = batch["labels_BP"], batch["weights_BP"].astype(np.float32)

    def step() -> float:
        return float(model.train_on_batch(x, y, sample_weight=weights))

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_arguments(parser)
    args = parser.parse_args(argv)

    batch = mlm_batch(args.vocab, args.batch, args.seq, args.max_predictions)
    config = BertConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                        num_hidden_layers=args.layers, num_attention_heads=args.heads,
                        intermediate_size=args.intermediate,
                        max_position_embeddings=args.max_positions)
    module = BertForMaskedLM(config)
    ids_BT = batch["input_ids_BT"]
    params = module.init(jax.random.PRNGKey(0), ids_BT,
                         masked_positions_BP=batch["positions_BP"])["params"]
    steps = {"dlx": dlx_step(module, params, batch),
             "keras_hub": keras_step(batch, args.vocab, args.hidden, args.layers, args.heads,
                                     args.intermediate, args.max_positions)}
    seconds = interleaved_medians(steps, warmup=args.warmup, rounds=args.rounds,
                                  calls_per_round=1)
    tokens = args.batch * args.seq
    import keras_hub
    emit(comparison("bert_mlm-vs-keras-hub-jax", tokens / seconds["dlx"],
                    tokens / seconds["keras_hub"], "tokens/s", batch=args.batch, seq=args.seq,
                    vocab=args.vocab, hidden=args.hidden, layers=args.layers, heads=args.heads,
                    intermediate=args.intermediate, max_predictions=args.max_predictions,
                    keras_hub=keras_hub.__version__, jax=jax.__version__,
                    load_1min=round(os.getloadavg()[0], 2)))


if __name__ == "__main__":
    main()
