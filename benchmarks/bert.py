"""dlx `BertForMaskedLM` vs Hugging Face transformers on CPU: one full MLM train step, tokens/s.

A train step is forward + backward + AdamW (lr 1e-4, weight decay 0.01) in train mode (dropout 0.1
active in both) on the same batch and, through `save_pretrained` + `load_hf_checkpoint`, the same
starting weights. The batch is random non-special token ids, all positions real, 15 % masked once
on the host with BERT's 80/10/10 rule (`dlx.data.mlm.mask_tokens`, at most `--max-predictions` per
row). The dlx step is jitted as `dlx train` jits its steps (`dlx.train.cpu_heaps`: on CPU, its
temporaries in heaps of at most 16 MiB), with the train state donated and blocked on; it runs the
MLM head only at the gathered masked positions (`masked_positions_BP`), its decoder fused with the
cross-entropy (`labels_BX`: per-token losses, no logits), as `dlx train` does. HF's
`BertForMaskedLM` gets `labels` that are -100 except at the masked positions, so it projects every
position onto the vocabulary: that difference is part of what is compared; `--dlx-full-head` adds a
dlx step that does the same, to separate the two. Peers: HF eager with `torch.optim.AdamW` and
torch's default intra-op threads, and the same under `torch.compile` (its compile time is reported;
a failure or a compile past `--compile-timeout` seconds is reported in the JSON line instead of a
ratio). `--bf16` adds both sides in bfloat16 mixed precision (dlx `dtype=bfloat16`, HF's forward
under `torch.autocast`; float32 weights and AdamW on both). KerasHub's JAX `BertMaskedLM`, the
issue's other peer, needs tensorflow-text: `benchmarks/bert_keras.py` runs it in its own
environment. One JSON line per comparison (`benchmarks/harness.py`).

    python benchmarks/bert.py                       # H256 L4 A4 I1024 V30522, B32 T128
    python benchmarks/bert.py --rounds 8 --dlx-full-head
    python benchmarks/bert.py --bf16 --no-compile   # also both in bfloat16 mixed precision
    python benchmarks/bert.py --no-compile --quick  # tiny shapes, one round
"""

from __future__ import annotations

import argparse
import copy
import functools
import pathlib
import signal
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import comparison, emit, interleaved_medians, machine  # noqa: E402

from dlx.data.mlm import masked_positions, mask_tokens  # noqa: E402
from dlx.losses import masked_cross_entropy  # noqa: E402
from dlx.nn.bert import BertForMaskedLM, load_hf_checkpoint  # noqa: E402
from dlx.tasks import nll_sums  # noqa: E402
from dlx.train import cpu_heaps  # noqa: E402

if TYPE_CHECKING:  # torch and transformers are imported where used: bert_keras.py runs without.
    import transformers

LR, WEIGHT_DECAY, MASK_RATE = 1e-4, 0.01, 0.15


def special_ids(vocab: int) -> tuple[int, ...]:
    """[PAD] [UNK] [CLS] [SEP] [MASK] as in bert-base-uncased, or 0..4 for a tiny vocabulary."""
    return (0, 100, 101, 102, 103) if vocab > 103 else (0, 1, 2, 3, 4)


def mlm_batch(vocab: int, batch: int, seq: int, max_predictions: int,
              seed: int = 0) -> dict[str, np.ndarray]:
    """Random non-special ids, all real, masked once: the dlx and HF inputs, as numpy arrays."""
    specials = special_ids(vocab)
    ids_BT = np.random.default_rng(seed).integers(max(specials) + 1, vocab, (batch, seq),
                                                  dtype=np.int32)
    masked = mask_tokens(jax.random.key(seed), jnp.asarray(ids_BT), jnp.ones(ids_BT.shape, bool),
                         specials, vocab, mask_id=specials[-1], rate=MASK_RATE,
                         max_predictions=max_predictions)
    predictions = masked_positions(masked.labels, masked.mlm_mask, max_predictions)
    mlm_mask_BT = np.asarray(masked.mlm_mask)
    return {"input_ids_BT": np.asarray(masked.input_ids), "labels_BT": ids_BT,
            "mlm_mask_BT": mlm_mask_BT, "positions_BP": np.asarray(predictions.positions),
            "labels_BP": np.asarray(predictions.labels),
            "weights_BP": np.asarray(predictions.weights),
            "hf_labels_BT": np.where(mlm_mask_BT, ids_BT, -100).astype(np.int64)}


def hf_model(vocab: int, hidden: int, layers: int, heads: int, intermediate: int,
             max_positions: int, dropout: float = 0.1,
             seed: int = 0) -> transformers.BertForMaskedLM:
    """A seeded HF `BertForMaskedLM` (HF's own init and default attention implementation)."""
    import torch
    import transformers
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=intermediate,
        max_position_embeddings=max_positions, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout)
    return transformers.BertForMaskedLM(config)


def dlx_from_hf(model: transformers.BertForMaskedLM) -> tuple[BertForMaskedLM, dict]:
    """The same model and weights in dlx, through an HF checkpoint in a temporary directory."""
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        _, module, params = load_hf_checkpoint(directory, BertForMaskedLM)
    return module, params


def dlx_step(module: BertForMaskedLM, params: dict, batch: dict[str, np.ndarray],
             full_head: bool = False, seed: int = 0) -> Callable[[], float]:
    """A zero-argument dlx train step returning its (pre-update) loss: jitted, state donated,
    blocked on; the head runs at the gathered masked positions unless `full_head`."""
    optimizer = optax.adamw(LR, weight_decay=WEIGHT_DECAY)
    ids_BT = jnp.asarray(batch["input_ids_BT"])
    if full_head:
        targets = (None, jnp.asarray(batch["labels_BT"]), jnp.asarray(batch["mlm_mask_BT"]))
    else:
        targets = (jnp.asarray(batch["positions_BP"]), jnp.asarray(batch["labels_BP"]),
                   jnp.asarray(batch["weights_BP"]))

    def loss_fn(params: dict, key: jax.Array, ids_BT: jax.Array, positions_BP: jax.Array | None,
                labels_BX: jax.Array, weights_BX: jax.Array) -> jax.Array:
        apply = functools.partial(module.apply, {"params": params}, ids_BT,
                                  masked_positions_BP=positions_BP, train=True,
                                  rngs={"dropout": key})
        if full_head:
            return masked_cross_entropy(apply().logits, labels_BX, weights_BX)
        return nll_sums(apply(labels_BX=labels_BX), labels_BX, weights_BX)[0]

    def update(state: tuple, ids_BT: jax.Array, targets: tuple) -> tuple[tuple, jax.Array]:
        params, opt_state, key = state
        key, dropout_key = jax.random.split(key)
        loss, grads = jax.value_and_grad(loss_fn)(params, dropout_key, ids_BT, *targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), loss

    train_step = cpu_heaps.jit(update, jax.devices()[:1], donate_argnums=0)

    state = (params, optimizer.init(params), jax.random.PRNGKey(seed))

    def step() -> float:
        nonlocal state
        state, loss = jax.block_until_ready(train_step(state, ids_BT, targets))
        return float(loss)

    return step


def hf_step(model: transformers.BertForMaskedLM, batch: dict[str, np.ndarray],
            compile_model: bool = False, bf16: bool = False) -> Callable[[], float]:
    """A zero-argument HF train step (`model.train()`, `labels`, torch AdamW) returning its loss;
    `compile_model` runs the model under `torch.compile` (the optimiser stays eager); `bf16` runs
    the forward under `torch.autocast` to bfloat16 (float32 weights and optimiser)."""
    import contextlib
    import torch
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    forward = torch.compile(model) if compile_model else model
    ids_BT = torch.from_numpy(np.array(batch["input_ids_BT"], np.int64))
    labels_BT = torch.from_numpy(np.array(batch["hf_labels_BT"]))

    def precision():
        return (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with precision():
            loss = forward(input_ids=ids_BT, labels=labels_BT).loss
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """Rounds and the model and batch shapes, shared with `bert_keras.py`."""
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=1024)
    parser.add_argument("--max-positions", type=int, default=512)
    parser.add_argument("--max-predictions", type=int, default=20)


class _CompileTimeout(Exception):
    pass


def first_call(step: Callable[[], float], timeout_s: int) -> float:
    """Seconds the first call of `step` takes (its compile); `_CompileTimeout` past `timeout_s`."""
    def alarm(signum, frame):
        raise _CompileTimeout(f"torch.compile took over {timeout_s} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout_s)
    try:
        start = time.perf_counter()
        step()
        return time.perf_counter() - start
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def main(argv: list[str] | None = None) -> None:
    """Parses flags, builds the steps on the same weights and batch, emits one line per peer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_arguments(parser)
    parser.add_argument("--compile-timeout", type=int, default=180,
                        help="seconds allowed for torch.compile's first step")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile peer")
    parser.add_argument("--dlx-full-head", action="store_true",
                        help="also time a dlx step with the MLM head at every position, as HF")
    parser.add_argument("--bf16", action="store_true",
                        help="also time both in bfloat16 mixed precision (dlx dtype=bfloat16, HF "
                             "under torch.autocast): float32 weights, bfloat16 matmuls")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, one round: checks that everything runs")
    args = parser.parse_args(argv)
    import torch
    if args.quick:
        args.batch, args.seq, args.vocab, args.hidden = 4, 16, 99, 32
        args.layers, args.heads, args.intermediate, args.max_positions = 2, 2, 64, 32
        args.max_predictions, args.rounds, args.warmup = 4, 1, 1

    batch = mlm_batch(args.vocab, args.batch, args.seq, args.max_predictions)
    model = hf_model(args.vocab, args.hidden, args.layers, args.heads, args.intermediate,
                     args.max_positions)
    module, params = dlx_from_hf(model)
    steps = {"dlx": dlx_step(module, params, batch)}
    if args.dlx_full_head:
        _, full_params = dlx_from_hf(model)  # Its own copy: the steps donate their state.
        steps["dlx_full_head"] = dlx_step(module, full_params, batch, full_head=True)
    if args.bf16:
        _, bf16_params = dlx_from_hf(model)
        steps["dlx_bf16"] = dlx_step(module.clone(dtype=jnp.bfloat16), bf16_params, batch)
        steps["hf_eager_bf16"] = hf_step(copy.deepcopy(model), batch, bf16=True)
    compiled = None if args.no_compile else copy.deepcopy(model)
    steps["hf_eager"] = hf_step(model, batch)
    compile_record: dict = {}
    if compiled is not None:
        compiled_step = hf_step(compiled, batch, compile_model=True)
        try:
            compile_record["compile_s"] = round(first_call(compiled_step, args.compile_timeout), 1)
            steps["hf_compile"] = compiled_step
        except Exception as error:  # Any compile failure is a result to report, not a crash.
            compile_record["compile_error"] = f"{type(error).__name__}: {error}"[:500]

    seconds = interleaved_medians(steps, warmup=args.warmup, rounds=args.rounds,
                                  calls_per_round=1)
    tokens = args.batch * args.seq
    shapes = dict(batch=args.batch, seq=args.seq, vocab=args.vocab, hidden=args.hidden,
                  layers=args.layers, heads=args.heads, intermediate=args.intermediate,
                  max_predictions=args.max_predictions)
    conditions = machine(torch)
    emit(comparison("bert_mlm-vs-hf-eager", tokens / seconds["dlx"],
                    tokens / seconds["hf_eager"], "tokens/s", **shapes, **conditions))
    if "hf_compile" in seconds:
        emit(comparison("bert_mlm-vs-hf-compile", tokens / seconds["dlx"],
                        tokens / seconds["hf_compile"], "tokens/s", **shapes,
                        **compile_record, **conditions))
    elif compiled is not None:
        emit({"name": "bert_mlm-vs-hf-compile", "dlx": round(tokens / seconds["dlx"], 2),
              "peer": None, "unit": "tokens/s", "ratio": None, **shapes, **compile_record,
              **conditions})
    if args.dlx_full_head:
        emit(comparison("bert_mlm_full_head-vs-hf-eager", tokens / seconds["dlx_full_head"],
                        tokens / seconds["hf_eager"], "tokens/s", **shapes, **conditions))
    if args.bf16:
        emit(comparison("bert_mlm_bf16-vs-hf-eager-bf16", tokens / seconds["dlx_bf16"],
                        tokens / seconds["hf_eager_bf16"], "tokens/s", **shapes, **conditions))


if __name__ == "__main__":
    main()
