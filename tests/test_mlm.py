"""MLM data: packing into [CLS] A [SEP] B [SEP] rows, BERT masking statistics, gathered targets."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import losses
from dlx.data import mlm
from dlx.errors import DlxError

PAD, UNK, CLS, SEP, MASK = range(5)
SPECIALS = (PAD, UNK, CLS, SEP, MASK)
VOCAB = 1000


def random_docs(num_docs: int, max_len: int, seed: int = 0) -> list[np.ndarray]:
    """Documents of 0..max_len non-special ids (some empty)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(len(SPECIALS), VOCAB, rng.integers(0, max_len + 1))
            for _ in range(num_docs)]


def key(seed: int, step: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), step)


def test_pack_golden():
    docs = [np.array([10]), np.array([10, 11]), np.arange(10, 22), np.array([], int)]
    rows = mlm.pack(docs, seq_len=8, cls_id=CLS, sep_id=SEP, pad_id=PAD)
    np.testing.assert_array_equal(rows["input_ids"], [
        [CLS, 10, SEP, PAD, PAD, PAD, PAD, PAD],
        [CLS, 10, SEP, 11, SEP, PAD, PAD, PAD],
        [CLS, 10, 11, 12, SEP, 13, 14, SEP],
        [CLS, 15, 16, 17, SEP, 18, 19, SEP],
        [CLS, 20, SEP, 21, SEP, PAD, PAD, PAD]])
    np.testing.assert_array_equal(rows["segment_ids"], [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 1, 1],
        [0, 0, 0, 0, 0, 1, 1, 1],
        [0, 0, 0, 1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(rows["attention_mask"].sum(1), [3, 5, 8, 8, 5])


def test_pack_properties():
    docs = random_docs(400, 300)
    rows = mlm.pack(docs, seq_len=64, cls_id=CLS, sep_id=SEP, pad_id=PAD)
    ids_NT, seg_NT, real_NT = rows["input_ids"], rows["segment_ids"], rows["attention_mask"]
    n = len(ids_NT)
    chex.assert_shape([ids_NT, seg_NT, real_NT], (n, 64))
    assert ids_NT.dtype == seg_NT.dtype == np.int32 and real_NT.dtype == bool
    assert (ids_NT[:, 0] == CLS).all()
    # Padding only at the end: the mask is a prefix, and pads are exactly the masked-out slots.
    assert (np.diff(real_NT.astype(int), axis=1) <= 0).all()
    np.testing.assert_array_equal(ids_NT == PAD, ~real_NT)
    length_N = real_NT.sum(1)
    assert (ids_NT[np.arange(n), length_N - 1] == SEP).all()
    seps_N = (ids_NT == SEP).sum(1)
    assert set(seps_N.tolist()) <= {1, 2}
    # Segment 0 runs through the first [SEP]; segment 1 covers B and the closing [SEP].
    first_sep_N = (ids_NT == SEP).argmax(1)
    t_T = np.arange(64)
    expected_NT = (t_T > first_sep_N[:, None]) & real_NT
    np.testing.assert_array_equal(seg_NT, expected_NT.astype(np.int32))
    assert ((seps_N == 2) == (seg_NT.sum(1) > 0)).all()
    # A is never shorter than B, and no row crosses a document: every token comes back in order.
    b_len_N = np.where(seps_N == 2, length_N - first_sep_N - 2, 0)
    assert (first_sep_N - 1 >= b_len_N).all()
    content = ids_NT[real_NT & (ids_NT != CLS) & (ids_NT != SEP)]
    np.testing.assert_array_equal(content, np.concatenate(docs))
    rows_per_doc = sum(-(-len(d) // 61) for d in docs)
    assert n == rows_per_doc
    chex.assert_trees_all_equal(rows, mlm.pack(docs, 64, CLS, SEP, PAD))


def test_pack_rejects_bad_input():
    with pytest.raises(DlxError, match="seq_len=3"):
        mlm.pack([np.arange(5, 9)], 3, CLS, SEP, PAD)
    with pytest.raises(DlxError, match="zero tokens"):
        mlm.pack([np.array([], int)], 16, CLS, SEP, PAD)


@pytest.fixture(scope="module")
def batch():
    """About 130k real tokens in rows of 128."""
    rows = mlm.pack(random_docs(1200, 300, seed=1), 128, CLS, SEP, PAD)
    assert rows["attention_mask"].sum() >= 100_000
    return rows


mask_tokens = jax.jit(mlm.mask_tokens, static_argnames=(
    "special_ids", "vocab_size", "mask_id", "rate", "max_predictions"))


def masked(batch, step: int, seed: int = 0, **kwargs) -> mlm.Masked:
    return mask_tokens(key(seed, step), batch["input_ids"], batch["attention_mask"],
                       special_ids=SPECIALS, vocab_size=VOCAB, mask_id=MASK, **kwargs)


def test_masking_statistics(batch):
    ids_BT, real_BT = batch["input_ids"], batch["attention_mask"]
    out = jax.tree.map(np.asarray, masked(batch, step=3))
    special_BT = np.isin(ids_BT, SPECIALS)
    candidates = (real_BT & ~special_BT).sum()
    selected_BT = out.mlm_mask
    assert abs(selected_BT.sum() / candidates - 0.15) < 0.005
    assert not (selected_BT & special_BT).any() and not (selected_BT & ~real_BT).any()
    new, old = out.input_ids[selected_BT], ids_BT[selected_BT]
    to_mask = (new == MASK).mean()
    to_random = ((new != MASK) & (new != old)).mean()
    unchanged = (new == old).mean()
    assert abs(to_mask - 0.8) < 0.01 and abs(to_random - 0.1) < 0.01
    assert abs(unchanged - 0.1) < 0.01  # Includes the 1/995 random draws equal to the original.
    assert not np.isin(new[new != MASK], SPECIALS).any()
    np.testing.assert_array_equal(out.input_ids[~selected_BT], ids_BT[~selected_BT])
    np.testing.assert_array_equal(out.labels, ids_BT)


def test_masks_are_a_function_of_seed_and_step(batch):
    first, again = masked(batch, step=7), masked(batch, step=7)
    chex.assert_trees_all_equal(first, again)
    assert (masked(batch, step=8).mlm_mask != first.mlm_mask).any()
    assert (masked(batch, step=7, seed=1).mlm_mask != first.mlm_mask).any()


def test_jit_equals_no_jit(batch):
    rows = {name: value[:32] for name, value in batch.items()}
    jitted = masked(rows, step=5, max_predictions=8)
    eager = mlm.mask_tokens(key(0, 5), rows["input_ids"], rows["attention_mask"], SPECIALS, VOCAB,
                            MASK, max_predictions=8)  # Op by op, as chex's without_jit variant.
    chex.assert_trees_all_equal(jitted, eager)


def test_random_replacements_cover_exactly_the_non_special_ids():
    bert_specials = [0, 100, 101, 102, 103]  # [PAD], [UNK], [CLS], [SEP], [MASK] in BERT's vocab.
    ids = np.asarray(mlm._non_special(jnp.arange(200 - 5), bert_specials))
    np.testing.assert_array_equal(ids, np.setdiff1d(np.arange(200), bert_specials))


def test_max_predictions_caps_each_row(batch):
    out = masked(batch, step=0, max_predictions=5)
    assert int(out.mlm_mask.sum(1).max()) == 5


def test_gathered_predictions_match_the_dense_mask(batch):
    rows = {name: value[:16] for name, value in batch.items()}
    out = masked(rows, step=1, max_predictions=24)
    preds = jax.jit(mlm.masked_positions, static_argnums=2)(out.labels, out.mlm_mask, 24)
    chex.assert_shape([preds.positions, preds.labels, preds.weights], (16, 24))
    mask_BT = np.asarray(out.mlm_mask)
    positions_BP, labels_BP, weights_BP = map(np.asarray, preds)
    for b in range(16):
        count = mask_BT[b].sum()
        np.testing.assert_array_equal(positions_BP[b, :count], np.flatnonzero(mask_BT[b]))
        np.testing.assert_array_equal(labels_BP[b, :count], rows["input_ids"][b, mask_BT[b]])
        assert weights_BP[b, :count].all() and not weights_BP[b, count:].any()
        assert (positions_BP[b, count:] == 0).all()
    # The loss at the gathered positions equals the loss over the dense (B, T) mask.
    logits_BTV = jax.random.normal(jax.random.PRNGKey(0), (16, 128, VOCAB))
    logits_BPV = jnp.take_along_axis(logits_BTV, preds.positions[..., None], axis=1)
    loss = jax.jit(losses.masked_cross_entropy)
    dense = loss(logits_BTV, out.labels, out.mlm_mask)
    gathered = loss(logits_BPV, preds.labels, preds.weights)
    np.testing.assert_allclose(gathered, dense, rtol=1e-6)


def test_masking_rejects_bad_arguments(batch):
    with pytest.raises(DlxError, match="mask_rate=1.5"):
        masked(batch, step=0, rate=1.5)
    with pytest.raises(DlxError, match="mask id 4"):
        mlm.mask_tokens(key(0, 0), batch["input_ids"], batch["attention_mask"], (0, 1, 2, 3),
                        VOCAB, MASK)
    with pytest.raises(DlxError, match="max_predictions=200"):
        mlm.masked_positions(batch["input_ids"], batch["attention_mask"], 200)
