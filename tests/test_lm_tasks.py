"""MaskedLM and CausalLM tasks: their losses, row-keyed masks, and the global-count gradient."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import tasks
from dlx.data import mlm, tokens
from dlx.nn.bert import BertConfig, BertForMaskedLM
from dlx.nn.gpt import GPT
from dlx.train import steps
from dlx.train.state import TrainState

VOCAB, SEQ = 60, 24
SPECIALS = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
CONFIG = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=SEQ)


def _mlm_batch(rows=8, seed=0):
    rng = np.random.default_rng(seed)
    docs = [rng.integers(5, VOCAB, rng.integers(5, 3 * SEQ)) for _ in range(rows)]
    packed = mlm.pack(docs, SEQ, SPECIALS["cls"], SPECIALS["sep"], SPECIALS["pad"])
    packed["row"] = np.arange(len(packed["input_ids"]), dtype=np.int32)
    return {k: jnp.asarray(v) for k, v in packed.items()}


def _mlm_task(max_predictions=6, dtype=jnp.float32):
    return tasks.MaskedLM(BertForMaskedLM(CONFIG, dtype=dtype),
                          special_ids=tuple(SPECIALS.values()), mask_id=SPECIALS["mask"],
                          vocab_size=VOCAB, max_predictions=max_predictions)


def test_masks_follow_rows_not_batches():
    task, batch = _mlm_task(), _mlm_batch()
    corrupt = jax.jit(lambda key, b: task.corrupt(key, b)[0])
    key = jax.random.PRNGKey(3)
    whole = corrupt(key, batch)
    order = jnp.array([5, 0, 3])
    part = corrupt(key, {k: v[order] for k, v in batch.items()})
    chex.assert_trees_all_equal(part, jax.tree.map(lambda x: x[order], whole))
    other = corrupt(jax.random.PRNGKey(4), batch)
    assert not np.array_equal(other.mlm_mask, whole.mlm_mask)


@pytest.mark.slow(14)
def test_eval_masks_are_fixed_and_train_masks_follow_the_step_rng():
    task, batch = _mlm_task(), _mlm_batch()
    params, _ = task.init(jax.random.PRNGKey(0), batch)
    loss = jax.jit(lambda rng, train: task.loss(params, {}, batch, rng, train)[1][0],
                   static_argnums=1)
    chex.assert_trees_all_equal(loss(jax.random.PRNGKey(1), False),
                                loss(jax.random.PRNGKey(2), False))
    first, second = loss(jax.random.PRNGKey(1), True), loss(jax.random.PRNGKey(2), True)
    assert float(first["loss"]) != float(second["loss"])


def test_masked_loss_equals_a_dense_reference():
    task, batch = _mlm_task(max_predictions=SEQ), _mlm_batch()
    params, _ = task.init(jax.random.PRNGKey(0), batch)
    loss, (sums, _) = jax.jit(lambda p: task.loss(p, {}, batch, jax.random.PRNGKey(1),
                                                  train=False))(params)
    masked, _ = jax.jit(task.corrupt)(jax.random.PRNGKey(tasks.EVAL_MASK_SEED), batch)
    logits_BTV = task.model.apply({"params": params}, masked.input_ids, batch["attention_mask"],
                                  batch["segment_ids"]).logits
    nll_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, masked.labels)
    expected = jnp.where(masked.mlm_mask, nll_BT, 0).sum() / masked.mlm_mask.sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert float(sums["count"]) == float(masked.mlm_mask.sum()) > 0


def test_padded_eval_rows_predict_nothing():
    task, batch = _mlm_task(), _mlm_batch()
    params, _ = task.init(jax.random.PRNGKey(0), batch)
    sums = jax.jit(lambda b: task.loss(params, {}, b, jax.random.PRNGKey(1), train=False)[1][0])
    full = sums(batch)
    real_B = jnp.arange(len(batch["row"])) < 4
    head = sums({**batch, "mask": real_B})
    first = sums({k: v[:4] for k, v in batch.items()})
    chex.assert_trees_all_close(head, first, rtol=1e-6)
    assert float(head["count"]) < float(full["count"])


@pytest.mark.slow(21)
def test_gradient_is_the_mean_over_all_masked_tokens_of_the_global_batch():
    """Micro-batches with unequal masked-token counts still give the global token mean."""
    task, batch = _mlm_task(), _mlm_batch(rows=8, seed=1)
    params, _ = task.init(jax.random.PRNGKey(0), batch)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=(),
                       batch_stats={}, rng=jax.random.PRNGKey(0))
    rng = jax.random.PRNGKey(7)
    micro = steps.micro_batches(batch, 2)

    def micro_sums(p):
        return [task.loss(p, {}, jax.tree.map(lambda x: x[i], micro),
                          jax.random.fold_in(rng, i), True)[1][0] for i in range(2)]

    def global_mean(p):
        first, second = micro_sums(p)
        counts = (first["count"], second["count"])
        return (first["loss"] + second["loss"]) / (counts[0] + counts[1]), counts

    expected, counts = jax.jit(jax.grad(global_mean, has_aux=True))(params)
    assert float(counts[0]) != float(counts[1])

    grads, sums, _ = jax.jit(lambda s: steps.gradients(s, batch, rng, task=task,
                                                       accumulate_steps=2))(state)
    chex.assert_trees_all_close(grads, expected, rtol=1e-4, atol=1e-7)


def test_bf16_masked_lm_loss_is_finite():
    task, batch = _mlm_task(dtype=jnp.bfloat16), _mlm_batch()
    params, _ = task.init(jax.random.PRNGKey(0), batch)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    loss, grads = jax.jit(jax.value_and_grad(
        lambda p: task.loss(p, {}, batch, jax.random.PRNGKey(1), True)[0]))(params)
    assert np.isfinite(float(loss))
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


def test_causal_loss_predicts_the_next_real_token():
    model = GPT(vocab_size=VOCAB, hidden_size=16, num_layers=1, num_heads=2, mlp_dim=32,
                max_length=SEQ)
    rows = tokens.stream_rows([np.arange(5, 40), np.arange(10, 20)], SEQ, eot_id=3, pad_id=0)
    batch = {k: jnp.asarray(v) for k, v in rows.items()}
    task = tasks.CausalLM(model)
    params, _ = task.init(jax.random.PRNGKey(0), batch)
    loss, (sums, _) = jax.jit(lambda p: task.loss(p, {}, batch, jax.random.PRNGKey(1),
                                                  train=False))(params)
    logits = model.apply({"params": params}, batch["input_ids"], batch["attention_mask"])
    nll = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1],
                                                          batch["input_ids"][:, 1:])
    real = batch["attention_mask"][:, 1:]
    np.testing.assert_allclose(loss, jnp.where(real, nll, 0).sum() / real.sum(), rtol=1e-5)
    hits = jnp.where(real, logits[:, :-1].argmax(-1) == batch["input_ids"][:, 1:], False)
    assert float(sums["correct"]) == float(hits.sum())
    assert float(sums["count"]) == 35 + 1 + 10 + 1 - 2  # Real tokens but each row's first.
    summary = task.summarize(jax.device_get(sums))
    np.testing.assert_allclose(summary["perplexity"], np.exp(summary["loss"]), rtol=1e-9)


def test_stream_rows_join_documents_with_end_of_text():
    rows = tokens.stream_rows([np.array([7, 8, 9]), np.array([10])], 4, eot_id=3, pad_id=0)
    np.testing.assert_array_equal(rows["input_ids"], [[7, 8, 9, 3], [10, 3, 0, 0]])
    np.testing.assert_array_equal(rows["attention_mask"], [[1, 1, 1, 1], [1, 1, 0, 0]])


def test_unigram_baseline_golden():
    train = np.array([5, 5, 5, 6])
    test = np.array([5, 6])
    out = tokens.unigram_baseline(train, test, vocab_size=7, excluded=[0, 1, 2, 3, 4])
    p5, p6 = 4 / 6, 2 / 6  # Add-one counts 3 + 1 and 1 + 1; ids 0-4 are excluded.
    np.testing.assert_allclose(out["loss"], -(np.log(p5) + np.log(p6)) / 2, rtol=1e-12)
    assert out["accuracy"] == 0.5


@pytest.mark.parametrize("name", ["bert_mlm", "gpt"])
def test_lm_model_on_a_classification_source_is_one_line(name):
    from ml_collections import ConfigDict
    config = ConfigDict({"model": {"name": name}, "data": {"name": "mnist1d", "augment": ""}})
    with pytest.raises(Exception, match="needs token data; set data.name='text'"):
        tasks.build(config, None, {})


def test_bert_mlm_base_has_bert_base_shapes():
    from dlx import config as config_lib, nn as nn_lib
    config = config_lib.build("bert_mlm_base", [])
    model = nn_lib.build(config.model, config.data.vocab_size)
    ids = jnp.zeros((1, 8), jnp.int32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), ids, ids, ids,
                                               jnp.zeros((1, 2), jnp.int32)))
    count = sum(np.prod(x.shape) for x in jax.tree.leaves(shapes["params"]))
    assert 109e6 < count < 111e6  # BertForMaskedLM(bert-base-uncased) without pooler: 109.5M.
    assert model.dtype == jnp.bfloat16 and model.use_fused
