"""`model.remat` (gradient checkpointing per Transformer block) and the bf16 compute policy."""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import dlx.nn
from dlx.errors import DlxError
from dlx.nn.bert import BertConfig, BertForMaskedLM, BertModel
from dlx.nn.gpt import GPT
from dlx.nn.transformer import Decoder

B, T, V = 2, 8, 37
BERT_CONFIG = BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=32, max_position_embeddings=T)
GPT_SIZES = dict(vocab_size=V, hidden_size=16, num_layers=2, num_heads=2, mlp_dim=32,
                 max_length=T)
IDS_BT = np.random.default_rng(0).integers(0, V, (B, T)).astype(np.int32)
# XLA's CPU backend spends most of these tests optimising tiny programs; skip the costly passes.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _run_jitted(fn, *args):
    """`fn(*args)` through one jitted, lightly optimised compile."""
    return jax.jit(fn).lower(*args).compile(QUICK_COMPILE)(*args)


def _init(module):
    """`module`'s params for IDS_BT, initialised in one jitted call."""
    return _run_jitted(lambda key: module.init(key, IDS_BT)["params"], jax.random.key(0))


def _param_shapes(module):
    """`module`'s param shapes and dtypes for IDS_BT, without computing them."""
    return jax.eval_shape(lambda: module.init(jax.random.key(0), IDS_BT)["params"])


def _loss_and_grads(module, params):
    """Train-mode (dropout on, fixed key) cross-entropy against the input ids, its gradients
    and the jaxpr of the gradient computation."""
    def loss_fn(params):
        out = module.apply({"params": params}, IDS_BT, train=True,
                           rngs={"dropout": jax.random.key(1)})
        logits_BTV = out.logits if hasattr(out, "logits") else out
        return optax.softmax_cross_entropy_with_integer_labels(logits_BTV, IDS_BT).mean()

    grad_fn = jax.value_and_grad(loss_fn)
    loss, grads = _run_jitted(grad_fn, params)
    return loss, grads, jax.make_jaxpr(grad_fn)(params).jaxpr


def _primitives(jaxpr: jax.extend.core.Jaxpr) -> set[str]:
    """The names of every primitive in `jaxpr` and in the jaxprs nested in its equations."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for value in eqn.params.values():
            inner = getattr(value, "jaxpr", value)
            if isinstance(inner, jax.extend.core.Jaxpr):
                names |= _primitives(inner)
    return names


@pytest.mark.parametrize("make", [lambda remat: BertForMaskedLM(BERT_CONFIG, remat=remat),
                                  lambda remat: GPT(**GPT_SIZES, remat=remat)],
                         ids=["bert", "gpt"])
def test_remat_gives_the_same_loss_and_gradients(make):
    params = _init(make(False))
    loss, grads, jaxpr = _loss_and_grads(make(False), params)
    remat_loss, remat_grads, remat_jaxpr = _loss_and_grads(make(True), params)
    np.testing.assert_allclose(remat_loss, loss, rtol=1e-6, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                 remat_grads, grads)
    remat_primitives = {"checkpoint", "remat", "remat2"}
    assert remat_primitives & _primitives(remat_jaxpr)
    assert not remat_primitives & _primitives(jaxpr)
    assert jax.tree.structure(_param_shapes(make(True))) == jax.tree.structure(params)


def _model_config(name: str, **keys) -> ml_collections.ConfigDict:
    common = dict(hidden_size=16, num_layers=2, num_heads=2, dropout=0.0,
                  attention_dropout=0.0, max_length=T, use_fused=False)
    if name == "gpt":
        return ml_collections.ConfigDict(dict(name=name, mlp_dim=32, **common, **keys))
    return ml_collections.ConfigDict(dict(name=name, intermediate_size=32, **common, **keys))


@pytest.mark.parametrize("name", ["bert_mlm", "gpt"])
def test_builder_reads_remat_and_dtype_with_defaults_for_old_configs(name):
    old = dlx.nn.build(_model_config(name), V)
    assert old.remat is False and old.dtype == jnp.float32
    new = dlx.nn.build(_model_config(name, remat=True, dtype="bfloat16"), V)
    assert new.remat is True and new.dtype == jnp.bfloat16
    with pytest.raises(DlxError, match=r"model\.remat='yes' is not a bool"):
        dlx.nn.build(_model_config(name, remat="yes"), V)


def test_bert_bf16_keeps_float32_params_and_computes_in_bf16():
    model = BertModel(BERT_CONFIG, dtype=jnp.bfloat16)
    params = _param_shapes(model)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    out = jax.eval_shape(lambda p: model.apply({"params": p}, IDS_BT), params)
    assert out.last_hidden_state.dtype == jnp.bfloat16


def test_gpt_bf16_keeps_float32_params_and_computes_in_bf16():
    model = GPT(**GPT_SIZES, dtype=jnp.bfloat16)
    params = _init(model)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}

    def run(params):
        logits_BTV, state = model.apply({"params": params}, IDS_BT, capture_intermediates=lambda
                                        m, _: isinstance(m, Decoder))
        return logits_BTV, state["intermediates"]["decoder"]["__call__"][0]

    logits_BTV, hidden_BTM = _run_jitted(run, params)
    assert hidden_BTM.dtype == jnp.bfloat16 and logits_BTV.dtype == jnp.float32
    full_BTV = _run_jitted(lambda p: GPT(**GPT_SIZES).apply({"params": p}, IDS_BT), params)
    np.testing.assert_allclose(logits_BTV, full_BTV, rtol=0, atol=0.05)
    assert not np.array_equal(logits_BTV, full_BTV)  # The bf16 run really rounded.


def test_gpt_rejects_an_unsupported_dtype():
    with pytest.raises(DlxError, match="GPT dtype"):
        GPT(**GPT_SIZES, dtype=jnp.float16).init(jax.random.key(0), IDS_BT)
