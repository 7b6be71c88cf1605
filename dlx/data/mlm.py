"""BERT masked-language-model data: pack token streams into rows, mask them, gather the targets.

Packing (host, numpy, deterministic): each document's tokens are cut into chunks of at most
T - 3 tokens, never across documents; a chunk of n tokens becomes the row
`[CLS] A [SEP] B [SEP] [PAD]...` with A its first ceil(n / 2) tokens (segment 0) and B the rest
(segment 1, with the closing [SEP], as BERT's token type ids). A one-token chunk has no B and one
[SEP]. This is BERT's two-segment layout without next-sentence prediction (RoBERTa dropped NSP
at no loss); cutting at the middle instead of at a random sentence keeps packing vectorised and
free of randomness.

Masking (device, JAX, inside the jitted step): a pure function of a key, so a step that derives it
from (seed, step), e.g. `fold_in(step_rng, stream)` as `dlx.tasks` seeds augmentation, masks
identically after a resume; evaluation
should fold the batch index into a fixed key, so every evaluation sees the same masks. Each row
predicts floor(rate * n + u) of its n real non-special tokens, u ~ U[0, 1) (stochastic rounding:
exactly `rate` in expectation, BERT's fixed count per row otherwise), chosen uniformly; of those
80 % become [MASK], 10 % a uniformly drawn non-special token, 10 % stay as they are.

The loss is `dlx.losses.masked_cross_entropy(logits_BPV, labels_BP, weights_BP)` over the
gathered predictions (`masked_positions`): summed over masked tokens, divided by their count
(across devices: `cross_entropy_sum` and `weights_BP.sum()`, reduced before dividing).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlx.errors import DlxError

MASK_FRACTION = 0.8  # Of the selected tokens: replaced by [MASK] ...
RANDOM_FRACTION = 0.1  # ... replaced by a random token; the remaining 10 % are left unchanged.


def pack(token_ids_per_doc: Sequence[np.ndarray], seq_len: int, cls_id: int, sep_id: int,
         pad_id: int) -> dict[str, np.ndarray]:
    """Rows `input_ids`, `segment_ids` (int32, (N, T)) and `attention_mask` (bool, (N, T))."""
    if seq_len < 4:
        raise DlxError(f"data.seq_len={seq_len} is too short; expected at least 4 "
                       f"([CLS] A [SEP] B [SEP] needs 4 slots for 2 tokens)")
    chunk = seq_len - 3
    pieces = [np.asarray(ids, np.int32).reshape(-1) for ids in token_ids_per_doc]
    lengths_D = np.array([len(ids) for ids in pieces], np.int64)
    rows_D = -(-lengths_D // chunk)
    num_rows = int(rows_D.sum())
    if num_rows == 0:
        raise DlxError("nothing to pack: every document encodes to zero tokens")
    stream = np.concatenate(pieces)
    doc_R = np.repeat(np.arange(len(pieces)), rows_D)
    chunk_R = np.arange(num_rows) - np.repeat(np.cumsum(rows_D) - rows_D, rows_D)
    start_R = (np.cumsum(lengths_D) - lengths_D)[doc_R] + chunk_R * chunk
    n_R = np.minimum(chunk, lengths_D[doc_R] - chunk_R * chunk)
    a_R = (n_R + 1) // 2
    has_b_R = n_R > a_R

    j_RC = np.broadcast_to(np.arange(chunk), (num_rows, chunk))
    real_RC = j_RC < n_R[:, None]
    row_RC = np.broadcast_to(np.arange(num_rows)[:, None], (num_rows, chunk))
    # Token j of a chunk goes to 1 + j in A, and one slot further in B (after A's [SEP]).
    position_RC = 1 + j_RC + (j_RC >= a_R[:, None])
    input_ids = np.full((num_rows, seq_len), pad_id, np.int32)
    input_ids[:, 0] = cls_id
    input_ids[row_RC[real_RC], position_RC[real_RC]] = stream[(start_R[:, None] + j_RC)[real_RC]]
    input_ids[np.arange(num_rows), 1 + a_R] = sep_id
    input_ids[np.flatnonzero(has_b_R), 2 + n_R[has_b_R]] = sep_id

    t_T = np.arange(seq_len)
    attention_mask = t_T < (n_R + 2 + has_b_R)[:, None]
    segment_ids = ((t_T >= (2 + a_R)[:, None]) & attention_mask).astype(np.int32)
    return {"input_ids": input_ids, "segment_ids": segment_ids, "attention_mask": attention_mask}


class Masked(NamedTuple):
    """`input_ids` (B, T) int32, corrupted where `mlm_mask` (B, T) bool; `labels` the originals."""
    input_ids: jax.Array
    labels: jax.Array
    mlm_mask: jax.Array


def _non_special(r_BT: jax.Array, specials: Sequence[int]) -> jax.Array:
    """Maps r in [0, V - S) to the r-th id that is not one of the S sorted `specials`."""
    for special in specials:
        r_BT = r_BT + (r_BT >= special)
    return r_BT


def mask_tokens(key: jax.Array, input_ids_BT: jax.Array, real_BT: jax.Array,
                special_ids: Sequence[int], vocab_size: int, mask_id: int, rate: float = 0.15,
                max_predictions: int | None = None) -> Masked:
    """BERT's 80/10/10 corruption of `rate` of the real tokens not in `special_ids` (see above);
    at most `max_predictions` per row when given."""
    specials = sorted({int(i) for i in special_ids})
    if not 0.0 < rate < 1.0:
        raise DlxError(f"data.mask_rate={rate} must be in (0, 1)")
    if mask_id not in specials or specials[0] < 0 or specials[-1] >= vocab_size:
        raise DlxError(f"special ids {specials} must include the mask id {mask_id} and lie in "
                       f"[0, {vocab_size}) (the vocabulary size)")
    select_key, round_key, action_key, random_key = jax.random.split(key, 4)
    shape = input_ids_BT.shape
    candidate_BT = real_BT.astype(bool) & ~jnp.isin(input_ids_BT, jnp.asarray(specials))
    n_B = candidate_BT.sum(axis=-1)
    k_B = jnp.floor(rate * n_B + jax.random.uniform(round_key, n_B.shape)).astype(jnp.int32)
    if max_predictions is not None:
        k_B = jnp.minimum(k_B, max_predictions)
    score_BT = jnp.where(candidate_BT, jax.random.uniform(select_key, shape), 2.0)
    rank_BT = jnp.argsort(jnp.argsort(score_BT, axis=-1), axis=-1)
    selected_BT = candidate_BT & (rank_BT < k_B[:, None])

    action_BT = jax.random.uniform(action_key, shape)
    random_BT = _non_special(
        jax.random.randint(random_key, shape, 0, vocab_size - len(specials), jnp.int32), specials)
    corrupted_BT = jnp.where(action_BT < MASK_FRACTION, mask_id,
                             jnp.where(action_BT < MASK_FRACTION + RANDOM_FRACTION, random_BT,
                                       input_ids_BT))
    return Masked(input_ids=jnp.where(selected_BT, corrupted_BT, input_ids_BT).astype(jnp.int32),
                  labels=input_ids_BT, mlm_mask=selected_BT)


class Predictions(NamedTuple):
    """BERT's `masked_lm_positions`, `_ids` and `_weights`: (B, P) int32, int32 and bool."""
    positions: jax.Array
    labels: jax.Array
    weights: jax.Array


def masked_positions(labels_BT: jax.Array, mlm_mask_BT: jax.Array,
                     max_predictions: int) -> Predictions:
    """The first `max_predictions` masked positions of each row in order, padded with position 0
    and weight False; the MLM head runs only at these positions."""
    if not 0 < max_predictions <= mlm_mask_BT.shape[-1]:
        raise DlxError(f"data.max_predictions={max_predictions} must be in "
                       f"[1, {mlm_mask_BT.shape[-1]}] (the sequence length)")
    order_BT = jnp.argsort(~mlm_mask_BT, axis=-1, stable=True)
    positions_BP = order_BT[:, :max_predictions]
    weights_BP = jnp.take_along_axis(mlm_mask_BT, positions_BP, axis=-1)
    positions_BP = jnp.where(weights_BP, positions_BP, 0).astype(jnp.int32)
    labels_BP = jnp.where(weights_BP, jnp.take_along_axis(labels_BT, positions_BP, axis=-1), 0)
    return Predictions(positions=positions_BP, labels=labels_BP.astype(jnp.int32),
                       weights=weights_BP)
