"""dlx.optim transfer learning: freezing by path regex, layer-wise LR decay, unfreezing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import config as config_lib
from dlx import optim
from dlx.errors import DlxError


def _config(**fields):
    config = config_lib.base().optim
    for key, value in fields.items():
        config[key] = value
    return config


def _leaf(rng, *shape):
    return jnp.asarray(rng.normal(size=shape), jnp.float32)


def _bert_params():
    """A BERT-classifier-shaped tree: embeddings, 2 encoder layers, pooler, classifier."""
    rng = np.random.default_rng(0)
    layer = lambda: {"attention": {"query": {"kernel": _leaf(rng, 4, 4), "bias": _leaf(rng, 4)}},
                     "mlp_norm": {"scale": _leaf(rng, 4)}}
    return {"bert": {"embeddings": {"word_embeddings": {"embedding": _leaf(rng, 7, 4)},
                                    "norm": {"scale": _leaf(rng, 4)}},
                     "encoder": {"layer_0": layer(), "layer_1": layer()},
                     "pooler": {"kernel": _leaf(rng, 4, 4)}},
            "classifier": {"kernel": _leaf(rng, 4, 2), "bias": _leaf(rng, 2)}}


def _by_path(tree):
    return {optim.param_path(path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _grads(params, step):
    rng = np.random.default_rng(100 + step)
    return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)


def _run(tx, params, steps):
    state = tx.init(params)
    history = []
    for step in range(steps):
        updates, state = tx.update(_grads(params, step), state, params)
        params = optax.apply_updates(params, updates)
        history.append(params)
    return history


def test_frozen_params_stay_bit_identical_while_the_rest_train():
    params = _bert_params()
    tx = optim.make(_config(name="adamw", lr=1e-2, weight_decay=0.1, l2=1e-3, clip=1.0,
                            freeze=r"embeddings/, encoder/layer_0/"), 100)
    final = _by_path(_run(tx, params, 3)[-1])
    for path, before in _by_path(params).items():
        frozen = "embeddings/" in path or "layer_0/" in path
        same = bool(jnp.array_equal(final[path], before))
        assert same == frozen, path


def test_layer_multipliers_golden_for_bert_and_gpt_paths():
    got = _by_path(optim.layer_multipliers(_bert_params(), 0.5))
    assert got == {
        "bert/embeddings/word_embeddings/embedding": 0.125, "bert/embeddings/norm/scale": 0.125,
        "bert/encoder/layer_0/attention/query/bias": 0.25,
        "bert/encoder/layer_0/attention/query/kernel": 0.25,
        "bert/encoder/layer_0/mlp_norm/scale": 0.25,
        "bert/encoder/layer_1/attention/query/bias": 0.5,
        "bert/encoder/layer_1/attention/query/kernel": 0.5,
        "bert/encoder/layer_1/mlp_norm/scale": 0.5,
        "bert/pooler/kernel": 1.0, "classifier/bias": 1.0, "classifier/kernel": 1.0}
    gpt = {"token_embedding": {"embedding": 0}, "decoder": {
        "position_embedding": {"embedding": 0}, "layer_0": {"mlp": {"kernel": 0}},
        "layer_1": {"mlp": {"kernel": 0}}, "layer_2": {"mlp": {"kernel": 0}},
        "final_norm": {"scale": 0}}}
    assert _by_path(optim.layer_multipliers(gpt, 0.5)) == {
        "decoder/final_norm/scale": 1.0, "decoder/layer_0/mlp/kernel": 0.125,
        "decoder/layer_1/mlp/kernel": 0.25, "decoder/layer_2/mlp/kernel": 0.5,
        "decoder/position_embedding/embedding": 0.0625, "token_embedding/embedding": 0.0625}
    assert optim.layer_depth("encoder/layer_3/kernel") == 4
    assert optim.layer_depth("cell/layer_3/kernel") is None  # only encoder/decoder stacks


def test_make_equals_a_hand_built_multi_transform():
    params = _bert_params()
    lr, decay = 1e-2, 0.8
    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: ("frozen" if "word_embeddings" in optim.param_path(path)
                         else str(optim.layer_depth(optim.param_path(path)))), params)
    scale = {"0": decay ** 3, "1": decay ** 2, "2": decay, "None": 1.0}
    reference = optax.multi_transform(
        {"frozen": optax.set_to_zero(),
         **{name: optax.adam(lr * m) for name, m in scale.items()}}, labels)
    ours = optim.make(_config(name="adam", lr=lr, freeze="word_embeddings", layer_decay=decay), 10)
    for got, want in zip(_run(ours, params, 3), _run(reference, params, 3)):
        for (path, g), w in zip(_by_path(got).items(), _by_path(want).values()):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, err_msg=path)


def test_frozen_gradients_do_not_count_in_the_clip_norm():
    params = _bert_params()
    head = {"classifier": params["classifier"]}
    tx = optim.make(_config(name="sgd", lr=1.0, clip=0.5, freeze="^bert/"), 10)
    reference = optim.make(_config(name="sgd", lr=1.0, clip=0.5), 10)
    grads = _grads(params, 0)
    updates, _ = tx.update(grads, tx.init(params), params)
    want, _ = reference.update({"classifier": grads["classifier"]}, reference.init(head), head)
    for g, w in zip(jax.tree.leaves(updates["classifier"]), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_unfreeze_at_trains_frozen_groups_from_that_step():
    params = _bert_params()
    tx = optim.make(_config(name="adam", lr=1e-2, freeze="embeddings", unfreeze_at=2), 10)
    history = [_by_path(p) for p in _run(tx, params, 3)]
    path = "bert/embeddings/norm/scale"
    before = _by_path(params)[path]
    assert jnp.array_equal(history[0][path], before) and jnp.array_equal(history[1][path], before)
    assert not jnp.array_equal(history[2][path], before)
    kernel = "classifier/kernel"
    assert not jnp.array_equal(history[0][kernel], _by_path(params)[kernel])


@pytest.mark.parametrize("fields, fragment", [
    ({"freeze": "layer_(0"}, "optim.freeze: 'layer_(0' is not a regex"),
    ({"freeze": "no_such_param"}, "optim.freeze: 'no_such_param' matches no parameter"),
    ({"layer_decay": 0.0}, "optim.layer_decay must be in (0, 1]"),
    ({"layer_decay": 1.5}, "optim.layer_decay must be in (0, 1]"),
    ({"unfreeze_at": 5}, "optim.unfreeze_at=5 needs optim.freeze"),
])
def test_bad_transfer_settings_are_one_line_errors(fields, fragment):
    with pytest.raises(DlxError, match=None) as error:
        optim.make(_config(**fields), 10).init(_bert_params())
    assert fragment in str(error.value)


def test_layer_decay_on_a_model_without_layers_is_an_error():
    tx = optim.make(_config(layer_decay=0.8), 10)
    with pytest.raises(DlxError, match="optim.layer_decay=0.8 needs a model"):
        tx.init({"Dense_0": {"kernel": jnp.ones((2, 2))}})
