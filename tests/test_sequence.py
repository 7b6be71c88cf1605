"""Variable-length sequences end to end: the temporal order data, lengths through the task, the
RNN classifier in the model registry, and short runs of the GRU/LSTM experiments."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import train_experiment
from dlx import tasks
from dlx import nn as nn_lib
from dlx.data import temporal_order
from dlx.errors import DlxError
from dlx.nn.rnn import RNNClassifier


def test_temporal_order_sequences_follow_the_lstm_paper():
    data = temporal_order.generate(500, np.random.default_rng(0))
    x_NTF, lengths_N, y_N = data["x"], data["lengths"], data["y"]
    assert x_NTF.shape == (500, 110, 8) and x_NTF.dtype == np.uint8
    assert lengths_N.min() >= 100 and lengths_N.max() <= 110 and len(set(lengths_N)) > 5
    real_NT = np.arange(110)[None, :] < lengths_N[:, None]
    np.testing.assert_array_equal(x_NTF.sum(-1), real_NT.astype(np.uint8))
    tokens_NT = np.where(real_NT, x_NTF.argmax(-1), -1)
    for tokens_T, length, label in zip(tokens_NT, lengths_N, y_N):
        assert tokens_T[0] == temporal_order.BEGIN and tokens_T[length - 1] == temporal_order.END
        assert (tokens_T[length:] == -1).all() and (tokens_T[:length] >= 0).all()
        marked = np.flatnonzero(np.isin(tokens_T, (temporal_order.X, temporal_order.Y)))
        assert len(marked) == 2
        assert 10 <= marked[0] <= 20 and 50 <= marked[1] <= 60
        order = "".join(temporal_order.SYMBOLS[t] for t in tokens_T[marked])
        assert temporal_order.CLASSES[label] == order
        middle = np.delete(tokens_T[1:length - 1], marked - 1)
        assert np.isin(middle, temporal_order.NOISE).all()
    assert set(y_N) == {0, 1, 2, 3}


def test_temporal_order_splits_depend_only_on_the_data_seed():
    config = ml_collections.ConfigDict({"seed": 3, "num_train": 40, "num_test": 20})
    first, second = temporal_order.load(config), temporal_order.load(config)
    np.testing.assert_array_equal(first.train["x"], second.train["x"])
    assert not np.array_equal(first.train["x"][:20], first.test["x"])
    assert first.num_classes == 4 and len(first.test["y"]) == 20


def _classifier(readout: str = "last") -> RNNClassifier:
    return RNNClassifier("lstm", hidden_size=5, num_layers=2, bidirectional=True,
                         num_outputs=4, readout=readout)


def test_task_passes_lengths_so_extra_padding_changes_nothing():
    data = temporal_order.generate(6, np.random.default_rng(1))
    task = tasks.Classification(_classifier())
    params, _ = task.init(jax.random.PRNGKey(0), data)
    padded = dict(data, x=np.concatenate([data["x"], np.ones((6, 7, 8), np.uint8)], axis=1))
    loss = lambda batch: task.loss(params, {}, batch, jax.random.PRNGKey(1), False)
    (loss_a, (sums_a, _)), (loss_b, (sums_b, _)) = loss(data), loss(padded)
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
    without_lengths = {k: v for k, v in padded.items() if k != "lengths"}
    assert abs(float(loss(without_lengths)[0]) - float(loss_a)) > 1e-4
    assert float(sums_a["count"]) == float(sums_b["count"]) == 6


def test_flatten_readout_feeds_every_step_to_the_head():
    model = _classifier("flatten")
    x_BTF = jnp.ones((3, 7, 8))
    params = model.init(jax.random.PRNGKey(0), x_BTF)["params"]
    assert params["head"]["kernel"].shape == (7 * 2 * 5, 4)
    assert model.apply({"params": params}, x_BTF).shape == (3, 4)
    with pytest.raises(DlxError, match="readout='mean' is not a known readout"):
        _classifier("mean").init(jax.random.PRNGKey(0), x_BTF)


def test_registry_builds_the_rnn_classifier():
    config = ml_collections.ConfigDict({"name": "rnn", "cell_type": "gru", "hidden_size": 6,
                                        "num_layers": 1, "bidirectional": True, "dropout": 0.0,
                                        "readout": "flatten", "weight_init": "torch"})
    model = nn_lib.build(config, num_outputs=10)
    assert isinstance(model, RNNClassifier) and model.cell_type == "gru"
    del config.readout
    with pytest.raises(DlxError, match="readout"):
        nn_lib.build(config, num_outputs=10)


@pytest.mark.slow(14)
def test_bidirectional_lstm_learns_the_temporal_order_with_lengths(tmp_path):
    summary = train_experiment(tmp_path, "sequence_lstm", "--config.train.steps=200",
                               "--config.train.eval_every=200", "--config.data.num_train=5000",
                               "--config.data.num_test=500")
    assert summary["eval"]["test"]["accuracy"] > 0.8


@pytest.mark.parametrize("name", ["mnist1d_gru", "mnist1d_lstm"])
def test_mnist1d_recurrent_experiments_learn_quickly(tmp_path, name):
    summary = train_experiment(tmp_path, name, "--config.train.steps=300", "--config.train.eval_every=300")
    assert summary["eval"]["test"]["accuracy"] > 0.6


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_torch_weight_init_draws_everything_from_torchs_uniform(cell_type):
    model = RNNClassifier(cell_type, hidden_size=16, num_layers=2, bidirectional=True,
                          num_outputs=4, readout="flatten", weight_init="torch")
    params = model.init(jax.random.PRNGKey(0), jnp.ones((2, 5, 3)))["params"]
    for name, leaf in jax.tree_util.tree_leaves_with_path(params["rnn"]):
        bound = 1 / np.sqrt(16)
        assert float(jnp.abs(leaf).max()) <= bound, jax.tree_util.keystr(name)
        assert float(jnp.abs(leaf).max()) > 0.8 * bound, jax.tree_util.keystr(name)
    head_bound = 1 / np.sqrt(5 * 2 * 16)
    for leaf in params["head"].values():
        assert head_bound * 0.8 < float(jnp.abs(leaf).max()) <= head_bound
    with pytest.raises(DlxError, match="weight_init='xavier' is not known"):
        RNNClassifier(cell_type, 4, 1, False, 2, weight_init="xavier").init(
            jax.random.PRNGKey(0), jnp.ones((2, 5, 3)))
