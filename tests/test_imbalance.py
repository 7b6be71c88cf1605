"""Class imbalance: focal/class-weighted losses, macro-F1 sums, imbalanced data, balanced batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from conftest import train_experiment
from dlx import config as config_lib
from dlx import data as data_lib
from dlx import losses, metrics, tasks
from dlx.data.batching import BalancedBatcher, make_batcher
from dlx.errors import DlxError


def _logits(seed=0, rows=12, classes=4):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(rows, classes)) * 3, jnp.float32),
            jnp.asarray(rng.integers(0, classes, rows)))


def test_focal_sum_with_gamma_zero_is_cross_entropy_sum():
    logits_BC, labels_B = _logits()
    where_B = jnp.arange(12) < 9
    weights_C = jnp.asarray([0.5, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(losses.focal_sum(logits_BC, labels_B, 0.0, where_B, weights_C),
                               losses.cross_entropy_sum(logits_BC, labels_B, where_B, weights_C),
                               rtol=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_gradient_matches_the_closed_form(gamma):
    logits_BC, labels_B = _logits(1)
    grad_BC = jax.grad(losses.focal_sum)(logits_BC, labels_B, gamma)
    p_BC = jax.nn.softmax(logits_BC)
    p_B = p_BC[jnp.arange(12), labels_B]
    # d/dz_j of -(1 - p)^g log p, with dp/dz_j = p (1[j = y] - p_j).
    outer_B = gamma * (1 - p_B) ** (gamma - 1) * p_B * jnp.log(p_B) - (1 - p_B) ** gamma
    want_BC = outer_B[:, None] * (jax.nn.one_hot(labels_B, 4) - p_BC)
    np.testing.assert_allclose(grad_BC, want_BC, rtol=1e-4, atol=1e-6)


def test_balanced_class_weights_golden_and_as_sklearn():
    labels_N = np.array([0, 0, 0, 1, 2, 2])
    assert losses.balanced_class_weights(labels_N, 4) == (6 / 12, 6 / 4, 6 / 8, 0.0)
    present = losses.balanced_class_weights(labels_N, 3)
    np.testing.assert_allclose(present, compute_class_weight("balanced", classes=np.arange(3),
                                                             y=labels_N))


def _task_config(**train):
    config = config_lib.base()
    config.data.name = "mnist1d"
    for key, value in train.items():
        config.train[key] = value
    return config


def test_class_weight_and_loss_settings():
    metadata = {"class_counts": (3, 1, 2)}
    assert tasks.class_weights(_task_config(), metadata) is None
    assert tasks.class_weights(_task_config(class_weights="balanced"), metadata) == (
        6 / 9, 6 / 3, 6 / 6)
    assert tasks.class_weights(_task_config(class_weights="1, 2.5,0"), metadata) == (1, 2.5, 0)
    assert tasks.focal_gamma(_task_config(loss="focal", focal_gamma=1.5)) == 1.5
    assert tasks.focal_gamma(_task_config()) is None
    for config, fragment in [
            (_task_config(class_weights="1,2"), "expected 'balanced' or 3 comma-separated"),
            (_task_config(class_weights="heavy"), "train.class_weights='heavy'"),
            (_task_config(loss="hinge"), "train.loss='hinge' is not known"),
            (_task_config(loss="focal", focal_gamma=-1.0), "train.focal_gamma must be")]:
        with pytest.raises(DlxError, match=None) as error:
            tasks.class_weights(config, metadata)
            tasks.focal_gamma(config)
        assert fragment in str(error.value)


def test_weighted_task_loss_is_the_weighted_sum_over_the_count():
    logits_BC, labels_B = _logits(2, classes=3)
    labels_B = labels_B % 3

    class Fixed(tasks.nn.Module):
        @tasks.nn.compact
        def __call__(self, x, train=False):
            return x + 0 * self.param("b", lambda k: jnp.zeros(()))

    batch = {"x": logits_BC, "y": labels_B, "mask": jnp.arange(12) < 10}
    weights = (0.5, 2.0, 1.0)
    task = tasks.Classification(Fixed(), class_weights=weights, focal_gamma=None)
    params, _ = task.init(jax.random.PRNGKey(0), batch)
    loss, (sums, _) = task.loss(params, {}, batch, jax.random.PRNGKey(0), train=True)
    want = losses.cross_entropy_sum(logits_BC, labels_B, batch["mask"], weights) / 10
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(sums["loss"], losses.cross_entropy_sum(
        logits_BC, labels_B, batch["mask"]), rtol=1e-6)  # the logged loss stays plain CE
    host = {k: float(v) for k, v in sums.items()}
    pred_N = np.asarray(logits_BC.argmax(-1))[:10]
    want_f1 = metrics.precision_recall_f1(np.asarray(labels_B)[:10], pred_N, 3)[2]
    assert task.summarize(host)["macro_f1"] == pytest.approx(want_f1)


def _splits(counts, num_classes):
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.int64)
    x = np.arange(len(y), dtype=np.float32)[:, None]
    return data_lib.Splits(train={"x": x, "y": y}, test={"x": x, "y": y},
                           num_classes=num_classes)


def test_imbalance_keeps_a_fraction_of_the_upper_classes_only():
    splits = data_lib.imbalance(_splits([40, 40, 40, 40, 40], 5), 0.1)
    assert np.bincount(splits.train["y"]).tolist() == [40, 40, 40, 4, 4]
    assert len(splits.test["y"]) == 200
    again = data_lib.imbalance(_splits([40, 40, 40, 40, 40], 5), 0.1)
    assert np.array_equal(splits.train["x"], again.train["x"])
    with pytest.raises(DlxError, match="data.imbalance must be in"):
        data_lib.imbalance(_splits([4, 4], 2), 0.0)


def test_balanced_batches_draw_classes_equally_and_resume():
    train = _splits([90, 6, 4], 3).train
    batcher = BalancedBatcher(train, 10, seed=3, num_classes=3)
    batches = [next(batcher) for _ in range(3 * batcher.batches_per_epoch)]
    for batch in batches:
        assert sorted(np.bincount(batch["y"], minlength=3))[:2] == [3, 3]
    freq = np.bincount(np.concatenate([b["y"] for b in batches]), minlength=3) / (len(batches) * 10)
    np.testing.assert_allclose(freq, 1 / 3, atol=0.02)
    # Each rare class cycles through all its rows before repeating one.
    first_rows = np.concatenate([b["x"][:, 0] for b in batches[:2]])
    rare = first_rows[(first_rows >= 90) & (first_rows < 96)]
    assert len(set(rare.tolist())) == min(len(rare), 6)
    # Deterministic in (seed, epoch, index): a fresh batcher restored mid-run continues identically.
    resumed = BalancedBatcher(train, 10, seed=3, num_classes=3)
    resumed.restore({"epoch": 1, "index": 4})
    for want in batches[batcher.batches_per_epoch + 4:]:
        got = next(resumed)
        assert np.array_equal(got["x"], want["x"])
    other = BalancedBatcher(train, 10, seed=4, num_classes=3)
    assert not np.array_equal(next(other)["x"], batches[0]["x"])
    assert isinstance(make_batcher(train, 10, 0, "uniform", 3), data_lib.batching.EpochBatcher)
    with pytest.raises(DlxError, match="data.sampling='stratified' is not known"):
        make_batcher(train, 10, 0, "stratified", 3)
    with pytest.raises(DlxError, match="class 3 has no train examples"):
        BalancedBatcher(train, 10, 0, num_classes=4)


def test_config_keys_exist_with_defaults():
    config = config_lib.base()
    assert (config.data.imbalance, config.data.sampling) == (1.0, "uniform")
    assert (config.train.loss, config.train.focal_gamma, config.train.class_weights) == (
        "cross_entropy", 2.0, "")
    assert isinstance(config, ml_collections.ConfigDict)


@pytest.mark.slow(14)
def test_weighting_and_balanced_batches_raise_macro_f1_on_imbalanced_mnist1d(tmp_path):
    sweep = train_experiment(tmp_path, "imbalance_mnist1d", "--config.train.steps=800",
                             "--config.train.eval_every=400", "--config.train.checkpoint_every=800")
    f1 = {row["run"]: row["eval"]["test"]["macro_f1"] for row in sweep["runs"]}
    assert set(f1) == {"none", "class_weighted", "focal", "balanced_sampling"}
    assert f1["class_weighted"] > f1["none"] + 0.01 and f1["balanced_sampling"] > f1["none"] + 0.01
    assert "| test macro-F1 % |" in (tmp_path / "sweep.md").read_text()
