"""BERT: parity with transformers' BertModel/BertForMaskedLM, checkpoint import/export, heads."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx.data.mlm import mask_tokens, masked_positions
from dlx.errors import DlxError
from dlx.losses import masked_cross_entropy
from dlx.nn.bert import (BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel,
                         load_hf_checkpoint, save_hf_checkpoint)

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)
CONFIG = BertConfig(**TINY)
TOL = 1e-4


def _batch():
    """Ids (3, 10) with padding in rows 1 and 2 (mask 0) and token type 1 from position 5 on."""
    ids_BT = np.random.RandomState(0).randint(1, TINY["vocab_size"], (3, 10))
    mask_BT = np.ones((3, 10), np.int64)
    mask_BT[1, 6:] = 0
    mask_BT[2, 3:] = 0
    types_BT = np.zeros((3, 10), np.int64)
    types_BT[:, 5:] = 1
    return ids_BT, mask_BT, types_BT


def _init(module, ids_BT, **kwargs):
    return module.init(jax.random.key(0), jnp.asarray(ids_BT), **kwargs)["params"]


def _hf_outputs(model, ids_BT, mask_BT, types_BT):
    import torch
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor(ids_BT), attention_mask=torch.tensor(mask_BT),
                            token_type_ids=torch.tensor(types_BT))


def _apply(module, params, ids_BT, mask_BT=None, types_BT=None, **kwargs):
    as_jnp = [None if x is None else jnp.asarray(x) for x in (ids_BT, mask_BT, types_BT)]
    return module.apply({"params": params}, *as_jnp, **kwargs)


@pytest.fixture(scope="module")
def hf_models():
    """Randomly initialised tiny transformers BertModel and BertForMaskedLM (seeded)."""
    transformers = pytest.importorskip("transformers", exc_type=ImportError)
    torch = pytest.importorskip("torch", exc_type=ImportError)
    config = transformers.BertConfig(**TINY)
    torch.manual_seed(0)
    return {"BertModel": transformers.BertModel(config).eval(),
            "BertForMaskedLM": transformers.BertForMaskedLM(config).eval()}


def _save(model, path, fmt):
    """HF's own writer for safetensors. transformers 5 always writes safetensors (it ignores
    safe_serialization=False), so the .bin file is written with torch.save as older HF did."""
    import torch
    if fmt == "safetensors":
        model.save_pretrained(path)
    else:
        path.mkdir()
        model.config.to_json_file(path / "config.json")
        torch.save(model.state_dict(), path / "pytorch_model.bin")


# BertModel saves keys without the `bert.` prefix, BertForMaskedLM with it (and, in the torch
# state dict, with the tied cls.predictions.decoder.{weight,bias} copies).
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("name", ["BertModel", "BertForMaskedLM"])
def test_matches_transformers_with_padding(hf_models, tmp_path, name, fmt):
    """Same hidden states, pooler output and MLM logits as HF in eval mode, padded batch.

    Padded positions match too: both mask keys only, so a pad query attends to the real keys."""
    hf = hf_models[name]
    _save(hf, tmp_path / "ckpt", fmt)
    ids_BT, mask_BT, types_BT = _batch()
    config, module, params = load_hf_checkpoint(tmp_path / "ckpt")
    assert config == CONFIG and type(module).__name__ == name
    expected = _hf_outputs(hf, ids_BT, mask_BT, types_BT)
    ours = _apply(module, params, ids_BT, mask_BT, types_BT)
    if name == "BertModel":
        np.testing.assert_allclose(ours.last_hidden_state, expected.last_hidden_state.numpy(),
                                   rtol=0, atol=TOL)
        np.testing.assert_allclose(ours.pooler_output, expected.pooler_output.numpy(),
                                   rtol=0, atol=TOL)
    else:
        np.testing.assert_allclose(ours.logits, expected.logits.numpy(), rtol=0, atol=TOL)
        # The bare encoder of the MLM checkpoint equals HF's `.bert` submodule.
        _, bare, bare_params = load_hf_checkpoint(tmp_path / "ckpt", BertModel)
        np.testing.assert_allclose(
            _apply(bare, bare_params, ids_BT, mask_BT, types_BT).last_hidden_state,
            _hf_outputs(hf.bert, ids_BT, mask_BT, types_BT).last_hidden_state.numpy(),
            rtol=0, atol=TOL)


@pytest.mark.parametrize("with_mlm_head", [True, False])
def test_save_loads_in_transformers(tmp_path, with_mlm_head):
    """dlx params -> save_hf_checkpoint -> transformers.from_pretrained: no missing/unexpected
    keys and the same outputs."""
    transformers = pytest.importorskip("transformers", exc_type=ImportError)
    pytest.importorskip("torch", exc_type=ImportError)
    ids_BT, mask_BT, types_BT = _batch()
    module = BertForMaskedLM(CONFIG) if with_mlm_head else BertModel(CONFIG)
    params = _init(module, ids_BT)
    save_hf_checkpoint(tmp_path / "out", CONFIG, params, with_mlm_head=with_mlm_head)
    hf_class = transformers.BertForMaskedLM if with_mlm_head else transformers.BertModel
    hf, info = hf_class.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    expected = _hf_outputs(hf, ids_BT, mask_BT, types_BT)
    ours = _apply(module, params, ids_BT, mask_BT, types_BT)
    if with_mlm_head:
        np.testing.assert_allclose(ours.logits, expected.logits.numpy(), rtol=0, atol=TOL)
    else:
        np.testing.assert_allclose(ours.pooler_output, expected.pooler_output.numpy(),
                                   rtol=0, atol=TOL)


def test_save_load_round_trip_without_torch(tmp_path):
    """save -> load gives back the params and config exactly; saving again overwrites in place."""
    pytest.importorskip("safetensors", exc_type=ImportError)
    ids_BT = _batch()[0]
    params = _init(BertForMaskedLM(CONFIG), ids_BT)
    save_hf_checkpoint(tmp_path / "out", CONFIG, params)
    save_hf_checkpoint(tmp_path / "out", CONFIG, params)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    config, module, loaded = load_hf_checkpoint(tmp_path / "out")
    assert config == CONFIG and isinstance(module, BertForMaskedLM)
    jax.tree.map(np.testing.assert_array_equal, loaded, params)
    hf_config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert hf_config["model_type"] == "bert"
    assert hf_config["architectures"] == ["BertForMaskedLM"]


def test_config_hf_dict_round_trip_and_activation():
    assert BertConfig.from_hf_dict(CONFIG.to_hf_dict()) == CONFIG
    assert BertConfig.from_hf_dict({**CONFIG.to_hf_dict(), "hidden_act": "gelu_new"}
                                   ).hidden_act == "gelu_new"
    with pytest.raises(DlxError, match="hidden_act='relu' is unsupported"):
        BertConfig.from_hf_dict({**CONFIG.to_hf_dict(), "hidden_act": "relu"})
    with pytest.raises(DlxError, match="model_type='gpt2'"):
        BertConfig.from_hf_dict({"model_type": "gpt2"})


def test_shapes():
    ids_BT, mask_BT, types_BT = _batch()
    model = BertModel(CONFIG)
    out = _apply(model, _init(model, ids_BT), ids_BT, mask_BT, types_BT)
    assert out.last_hidden_state.shape == (3, 10, 32) and out.pooler_output.shape == (3, 32)
    bare = BertModel(CONFIG, add_pooling_layer=False)
    assert _apply(bare, _init(bare, ids_BT), ids_BT).pooler_output is None
    mlm = BertForMaskedLM(CONFIG)
    assert _apply(mlm, _init(mlm, ids_BT), ids_BT, mask_BT).logits.shape == (3, 10, 99)
    classifier = BertForSequenceClassification(CONFIG, num_labels=3)
    params = _init(classifier, ids_BT)
    assert _apply(classifier, params, ids_BT, mask_BT, types_BT).logits.shape == (3, 3)


def test_gathered_head_equals_full_logits_at_positions():
    ids_BT, mask_BT, _ = _batch()
    mlm = BertForMaskedLM(CONFIG)
    params = _init(mlm, ids_BT)
    positions_BP = jnp.array([[1, 4, 0], [2, 2, 5], [0, 1, 2]])
    full_BTV = _apply(mlm, params, ids_BT, mask_BT).logits
    gathered_BPV = _apply(mlm, params, ids_BT, mask_BT, masked_positions_BP=positions_BP).logits
    assert gathered_BPV.shape == (3, 3, 99)
    np.testing.assert_allclose(gathered_BPV,
                               jnp.take_along_axis(full_BTV, positions_BP[..., None], axis=1),
                               rtol=0, atol=1e-5)


def test_labels_give_the_cross_entropy_and_argmax_of_the_logits():
    ids_BT, mask_BT, _ = _batch()
    mlm = BertForMaskedLM(CONFIG)
    params = _init(mlm, ids_BT)
    positions_BP = jnp.array([[1, 4, 0], [2, 2, 5], [0, 1, 2]])
    labels_BP = jnp.array([[5, 7, 98], [0, 3, 3], [50, 60, 70]])
    logits_BPV = _apply(mlm, params, ids_BT, mask_BT, masked_positions_BP=positions_BP).logits
    token_nll = _apply(mlm, params, ids_BT, mask_BT, masked_positions_BP=positions_BP,
                       labels_BX=labels_BP)
    expected_BP = -jnp.take_along_axis(jax.nn.log_softmax(logits_BPV), labels_BP[..., None],
                                       axis=-1)[..., 0]
    np.testing.assert_allclose(token_nll.nll, expected_BP, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(token_nll.predictions, logits_BPV.argmax(-1))
    with pytest.raises(DlxError, match="one label per predicted position"):
        _apply(mlm, params, ids_BT, mask_BT, masked_positions_BP=positions_BP,
               labels_BX=labels_BP[:, :2])


def test_fused_attention_gives_the_same_logits():
    ids_BT, mask_BT, types_BT = _batch()
    params = _init(BertForMaskedLM(CONFIG), ids_BT)
    written_out = _apply(BertForMaskedLM(CONFIG), params, ids_BT, mask_BT, types_BT).logits
    fused = _apply(BertForMaskedLM(CONFIG, use_fused=True), params, ids_BT, mask_BT,
                   types_BT).logits
    np.testing.assert_allclose(fused, written_out, rtol=0, atol=1e-5)


def test_jit_matches_eager():
    ids_BT, mask_BT, types_BT = _batch()
    mlm = BertForMaskedLM(CONFIG)
    params = _init(mlm, ids_BT)
    eager = _apply(mlm, params, ids_BT, mask_BT, types_BT).logits
    jitted = jax.jit(lambda p, *x: mlm.apply({"params": p}, *x).logits)(
        params, jnp.asarray(ids_BT), jnp.asarray(mask_BT), jnp.asarray(types_BT))
    np.testing.assert_allclose(jitted, eager, rtol=0, atol=1e-5)


def test_dropout_only_in_train():
    ids_BT, mask_BT, _ = _batch()
    model = BertModel(CONFIG)
    params = _init(model, ids_BT)

    def run(train, seed=0):
        return _apply(model, params, ids_BT, mask_BT, train=train,
                      rngs={"dropout": jax.random.key(seed)}).last_hidden_state

    np.testing.assert_array_equal(run(False, 0), run(False, 1))
    assert not np.allclose(run(True, 0), run(True, 1))
    assert not np.allclose(run(True, 0), run(False))


def test_bf16_gives_finite_logits_and_float32_params():
    ids_BT, mask_BT, _ = _batch()
    mlm = BertForMaskedLM(CONFIG, dtype=jnp.bfloat16)
    params = _init(mlm, ids_BT)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    logits = _apply(mlm, params, ids_BT, mask_BT).logits
    assert logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()
    full = _apply(BertForMaskedLM(CONFIG), params, ids_BT, mask_BT).logits
    np.testing.assert_allclose(logits, full, rtol=0, atol=0.1)


@pytest.fixture
def checkpoint(tmp_path):
    """A dlx-written BertForMaskedLM checkpoint directory and its state dict."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy", exc_type=ImportError)
    params = _init(BertForMaskedLM(CONFIG), _batch()[0])
    save_hf_checkpoint(tmp_path / "ckpt", CONFIG, params)
    return tmp_path / "ckpt", safetensors_numpy.load_file(tmp_path / "ckpt" / "model.safetensors")


def _rewrite(path, state_dict):
    from safetensors.numpy import save_file
    save_file(state_dict, path / "model.safetensors", metadata={"format": "pt"})


def test_error_missing_files(tmp_path, checkpoint):
    with pytest.raises(DlxError, match=r"has no config\.json"):
        load_hf_checkpoint(tmp_path / "nowhere")
    path, _ = checkpoint
    (path / "model.safetensors").unlink()
    with pytest.raises(DlxError, match="has neither model.safetensors nor pytorch_model.bin"):
        load_hf_checkpoint(path)


def test_error_wrong_shape(checkpoint):
    path, state_dict = checkpoint
    key = "bert.encoder.layer.1.intermediate.dense.weight"
    _rewrite(path, {**state_dict, key: np.zeros((36, 32), np.float32)})
    with pytest.raises(DlxError, match=rf"{key} has shape \(36, 32\); expected \(37, 32\)"):
        load_hf_checkpoint(path)


def test_error_unexpected_and_missing_keys(checkpoint):
    path, state_dict = checkpoint
    _rewrite(path, {**state_dict, "bert.encoder.layer.2.output.dense.bias": np.zeros(32)})
    with pytest.raises(DlxError, match=r"unexpected keys \['bert\.encoder\.layer\.2\.output"):
        load_hf_checkpoint(path)
    del state_dict["bert.embeddings.LayerNorm.bias"]
    _rewrite(path, state_dict)
    with pytest.raises(DlxError, match=r"missing keys \['bert\.embeddings\.LayerNorm\.bias'\]"):
        load_hf_checkpoint(path)


def test_tied_decoder_accepted_equal_and_rejected_different(checkpoint):
    path, state_dict = checkpoint
    word = state_dict["bert.embeddings.word_embeddings.weight"]
    _rewrite(path, {**state_dict, "cls.predictions.decoder.weight": word})
    load_hf_checkpoint(path)
    _rewrite(path, {**state_dict, "cls.predictions.decoder.weight": word + 1})
    with pytest.raises(DlxError, match="decoder.weight differs"):
        load_hf_checkpoint(path)


def test_error_mlm_class_without_head_and_save_without_head(tmp_path):
    pytest.importorskip("safetensors", exc_type=ImportError)
    ids_BT = _batch()[0]
    params = _init(BertModel(CONFIG), ids_BT)
    with pytest.raises(DlxError, match="without the MLM head"):
        save_hf_checkpoint(tmp_path / "out", CONFIG, params)
    save_hf_checkpoint(tmp_path / "out", CONFIG, params, with_mlm_head=False)
    assert isinstance(load_hf_checkpoint(tmp_path / "out")[1], BertModel)
    with pytest.raises(DlxError, match=r"missing keys \['cls\.predictions"):
        load_hf_checkpoint(tmp_path / "out", BertForMaskedLM)


def test_mlm_loss_falls_on_memorised_batch():
    """Adam on 4 fixed sequences, fresh masks each step: the masked-token loss falls."""
    config = dataclasses.replace(CONFIG, hidden_dropout_prob=0.0,
                                 attention_probs_dropout_prob=0.0)
    cls_id, sep_id, mask_id, pad_id = 1, 2, 3, 0
    body_BT = np.random.RandomState(1).randint(4, config.vocab_size, (4, 14))
    ids_BT = jnp.asarray(np.concatenate([np.full((4, 1), cls_id), body_BT,
                                         np.full((4, 1), sep_id)], axis=1), jnp.int32)
    real_BT = jnp.ones_like(ids_BT, bool)
    mlm = BertForMaskedLM(config)
    params = _init(mlm, ids_BT)
    optimizer = optax.adam(1e-2)

    def loss_fn(params, key):
        masked = mask_tokens(key, ids_BT, real_BT, (pad_id, cls_id, sep_id, mask_id),
                             config.vocab_size, mask_id, rate=0.3)
        targets = masked_positions(masked.labels, masked.mlm_mask, max_predictions=6)
        logits_BPV = mlm.apply({"params": params}, masked.input_ids,
                               masked_positions_BP=targets.positions).logits
        return masked_cross_entropy(logits_BPV, targets.labels, targets.weights)

    @jax.jit
    def step(params, opt_state, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    losses = []
    for i in range(60):
        params, opt_state, loss = step(params, opt_state, jax.random.key(i))
        losses.append(float(loss))
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5]), losses
