"""The GAN: shapes, the losses against NumPy, the alternating two-optimiser step through the
trainer's hook (with finite gradients), each player's loss falling against a fixed opponent, the
judge's quality numbers, and a short gan_digits run (with an untrained stand-in judge in the
cache) that writes samples.png and resumes to the same numbers."""

import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import cli
from dlx import config as config_lib
from dlx import nn as nn_lib
from dlx.errors import DlxError
from dlx.gan import judge as judge_lib
from dlx.gan import task as task_lib
from dlx.nn import gan
from dlx.nn.mlp import MLP
from dlx.train import steps
from dlx.train.state import TrainState
from conftest import REPO

LATENT = 8


@pytest.fixture(scope="module")
def judge():
    """An untrained stand-in judge, a linear classifier (the judge only scores evaluations)."""
    model = MLP(features=(), num_outputs=10)
    params = jax.jit(model.init)(jax.random.PRNGKey(5), jnp.zeros((1, 8, 8)))["params"]
    return judge_lib.Judge(model, params, test_accuracy=0.5)


def _task(judge, discriminator_tx=None):
    model = gan.GAN(latent_dim=LATENT, generator_features=8, discriminator_features=8)
    return task_lib.GANTask(model, judge, discriminator_tx, discriminator_steps=1,
                            judge_samples=20)


@pytest.fixture(scope="module")
def params(judge):
    return _task(judge).init(jax.random.PRNGKey(1), {"x": _images(1)})[0]


def _images(count, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (count, 8, 8))


def test_shapes_ranges_and_param_groups(judge, params):
    task = _task(judge)
    z_BL = jax.random.normal(jax.random.PRNGKey(0), (5, LATENT))
    assert set(params) == {"generator", "discriminator"}
    x_BHW, logits_B = jax.jit(lambda params: (
        task.generate(params["generator"], z_BL),
        task.model.apply({"params": params}, z_BL)))(params)
    assert x_BHW.shape == (5, 8, 8) and logits_B.shape == (5,)
    assert float(x_BHW.min()) >= 0.0 and float(x_BHW.max()) <= 1.0
    assert float(x_BHW.std(0).mean()) > 0.01  # The samples depend on z from the start.
    with pytest.raises(DlxError, match="image_size"):
        gan.Generator(image_size=6).init(jax.random.PRNGKey(0), jnp.zeros((1, LATENT)))
    with pytest.raises(DlxError, match="the data has images of shape"):
        task.init(jax.random.PRNGKey(0), {"x": jnp.zeros((1, 28, 28))})


def test_losses_equal_numpy_and_stay_finite():
    real = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    fake = np.array([2.0, 0.3, 0.0, -1.2, -6.0])
    d = lambda t: 1.0 / (1.0 + np.exp(-t))
    expected_d = -np.log(d(real)) - np.log(1.0 - d(fake))
    np.testing.assert_allclose(gan.discriminator_loss(real, fake), expected_d, rtol=1e-5)
    np.testing.assert_allclose(gan.generator_loss(fake), -np.log(d(fake)), rtol=1e-5)
    assert float(gan.discriminator_loss(jnp.zeros(()), jnp.zeros(()))) == pytest.approx(
        2 * math.log(2), rel=1e-6)
    # Where sigmoid rounds to 0 or 1 the log-sigmoid form is still exact: -log s(-100) = 100.
    assert float(gan.generator_loss(jnp.array(-100.0))) == pytest.approx(100.0)
    assert float(gan.discriminator_loss(jnp.array(-100.0), jnp.array(100.0))) == pytest.approx(
        200.0)


def _counting_sgd(lr):
    """SGD whose state counts its updates (`ScaleByScheduleState.count`)."""
    return optax.scale_by_schedule(lambda count: -lr)


def test_alternating_step_updates_each_player_in_its_half_with_its_own_optimiser(judge, params):
    lr_g, lr_d = 0.1, 0.3
    task = _task(judge, discriminator_tx=_counting_sgd(lr_d))
    tx = _counting_sgd(lr_g)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                       opt_state=task.init_opt_state(tx, params), batch_stats={},
                       rng=jax.random.PRNGKey(1))
    assert set(state.opt_state) == {"generator", "discriminator"}
    batch = {"x": _images(6, seed=3), "y": jnp.zeros(6, jnp.int32)}
    step = jax.jit(lambda s, b: steps.train_step(s, b, task=task, tx=tx))
    new_state, sums = step(state, batch)

    # By hand: D steps on (old D, old G); then G steps against the *updated* D.
    @jax.jit
    def by_hand(old, rng):
        z_d = task_lib.latents(jax.random.fold_in(rng, 0), 6, LATENT)
        z_g = task_lib.latents(jax.random.fold_in(rng, 1), 6, LATENT)
        fake_BHW = task.generate(old["generator"], z_d)
        d_grads = jax.grad(lambda d: gan.discriminator_loss(
            task.discriminate(d, batch["x"]), task.discriminate(d, fake_BHW)).mean())(
            old["discriminator"])
        new_d = jax.tree.map(lambda p, g: p - lr_d * g, old["discriminator"], d_grads)
        g_grads = jax.grad(lambda g: gan.generator_loss(
            task.discriminate(new_d, task.generate(g, z_g))).mean())(old["generator"])
        return {"discriminator": new_d,
                "generator": jax.tree.map(lambda p, g: p - lr_g * g, old["generator"], g_grads)
                }, {"discriminator": d_grads, "generator": g_grads}

    expected, grads = by_hand(state.params, steps.step_rng(state, None))
    for leaf in jax.tree.leaves(grads):  # Every parameter of both players gets a gradient.
        assert bool(jnp.all(jnp.isfinite(leaf))) and float(jnp.abs(leaf).max()) > 0
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=1e-6),
                 new_state.params, expected)
    assert float(sums["count"]) == 6
    assert float(sums["loss"]) == pytest.approx(float(sums["d_loss"] + sums["g_loss"]))
    # Each player's optimiser state advances once per step, the step counter once.
    for expected_step in (1, 2):
        counts = {name: int(opt.count) for name, opt in new_state.opt_state.items()}
        assert counts == {"generator": expected_step, "discriminator": expected_step}
        assert int(new_state.step) == expected_step
        new_state, _ = step(new_state, batch)
    with pytest.raises(DlxError, match="accumulate_steps must be 1"):
        steps.train_step(state, batch, task=task, tx=tx, accumulate_steps=2)


def test_quality_numbers_and_their_independence_of_eval_batching(judge, params):
    probabilities = jnp.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0],
                               [0.1, 0.9, 0.0]])
    means = judge_lib.quality_means(jax.device_get(judge_lib.quality_sums(probabilities)))
    assert means["judge_confidence"] == pytest.approx((0.9 + 0.8 + 0.6 + 0.9) / 4)
    assert means["judge_classes"] == 2
    assert means["judge_entropy"] == pytest.approx(math.log(2))  # Two classes, twice each.

    task = _task(judge)
    x = _images(6, seed=4)
    sums = jax.jit(lambda mask: task.loss(params, {}, {"x": x, "mask": mask}, None,
                                          train=False)[1][0])
    first = jnp.arange(6) < 3
    one, halves = sums(jnp.ones(6, bool)), [sums(first), sums(~first)]
    summed = jax.tree.map(lambda a, b: float(a) + float(b), *halves)
    means = lambda sums: task.summarize(jax.device_get(sums))
    assert means(one) == pytest.approx(means(summed))  # Two half-batches = one whole batch.
    assert means(one)["judge_test_accuracy"] == 0.5
    assert set(means(one)) >= {"judge_confidence", "judge_classes", "judge_entropy", "d_loss",
                               "g_loss", "d_real", "d_fake", "loss"}


def test_judge_is_digits_cnn_on_one_device_cached_by_its_settings_and_bad_configs_fail():
    path = str(REPO / "experiments" / "gan_digits.py")
    config = config_lib.build(path, [])
    judge_config = judge_lib.config(config.data, 5)
    assert judge_config.model.name == "simple_cnn" and judge_config.data.name == "digits"
    assert judge_config.train.steps == 5 and judge_config.train.devices == 1
    elsewhere = config_lib.build(path, ["--config.data.cache_dir=/elsewhere"])
    key = judge_lib.cache_key(judge_config)
    assert judge_lib.cache_key(judge_lib.config(elsewhere.data, 5)) == key  # Where, not what.
    assert judge_lib.cache_key(judge_lib.config(config.data, 6)) != key
    with pytest.raises(DlxError, match="model.judge_steps must be a positive int"):
        judge_lib.config(config.data, 0)
    for override, fragment in [("data.name=mnist1d", "set data.name='digits'"),
                               ("optim.accumulate_steps=2", "set optim.accumulate_steps=1"),
                               ("model.discriminator_steps=0", "discriminator_steps must be"),
                               ("optim.b1=1.0", "optim.b1 must be in")]:
        with pytest.raises(DlxError, match=fragment):
            task_lib.build(config_lib.build(path, [f"--config.{override}"]), None, {})


SHORT_RUN = ["--config.train.steps=4", "--config.train.batch_size=16",
             "--config.train.log_every=2", "--config.train.eval_every=2",
             "--config.train.checkpoint_every=2", "--config.model.judge_steps=1",
             "--config.model.judge_samples=100", "--config.model.generator_features=8",
             "--config.model.discriminator_features=8"]
UNTRAINED_JUDGE_ACCURACY = 0.125


def _cache_untrained_judge(config_path: str) -> None:
    """Puts an untrained SimpleCNN where the run looks for its judge: the judge's training is
    the trainer's own run of digits_cnn, and takes longer than this whole test may."""
    config = config_lib.build(config_path, SHORT_RUN)
    judge_config = judge_lib.config(config.data, config.model.judge_steps)
    model = nn_lib.build(judge_config.model, 10)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8)))["params"]
    judge_lib.save(judge_lib.directory_of(config.data, judge_config), jax.device_get(params),
                   UNTRAINED_JUDGE_ACCURACY, 10, judge_config)


@pytest.mark.slow(14)
def test_short_gan_digits_run_writes_samples_and_resumes_to_the_same_numbers(tmp_path, capsys):
    config = str(REPO / "experiments" / "gan_digits.py")
    _cache_untrained_judge(config)
    argv = lambda workdir: ["train", "--config", config, "--workdir", str(workdir), *SHORT_RUN]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert cli.run(argv(straight)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["final_step"] == 4
    assert summary["artifacts"] == {"samples": "samples.png"}
    assert (straight / "samples.png").read_bytes()[:4] == b"\x89PNG"
    test = summary["eval"]["test"]
    assert 0.1 <= test["judge_confidence"] <= 1.0 and 1 <= test["judge_classes"] <= 10
    assert 0.0 <= test["judge_entropy"] <= math.log(10) + 1e-9
    assert test["judge_test_accuracy"] == UNTRAINED_JUDGE_ACCURACY  # The cached judge.

    # A run killed after its step-2 checkpoint: the same workdir without what came later.
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "4")
    for name in ("summary.json", "samples.png", "curves.png"):
        (resumed / name).unlink()
    assert cli.run(argv(resumed)) == 0
    captured = capsys.readouterr()
    assert "resuming gan_digits from checkpoint at step 2" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["eval"] == summary["eval"]
    rows = lambda d: [{k: v for k, v in json.loads(line).items() if k != "steps_per_s"}
                      for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert rows(resumed) == rows(straight)
    assert (resumed / "samples.png").exists()



def test_each_players_loss_falls_when_it_trains_against_a_fixed_opponent(judge, params):
    task = _task(judge)
    real_BHW = _digits(32)
    z_BL = task_lib.latents(jax.random.PRNGKey(4), 32, LATENT)

    def d_loss(d_params, g_params):
        fake_BHW = task.generate(g_params, z_BL)
        return gan.discriminator_loss(task.discriminate(d_params, real_BHW),
                                      task.discriminate(d_params, fake_BHW)).mean()

    def g_loss(g_params, d_params):
        return gan.generator_loss(task.discriminate(d_params, task.generate(g_params, z_BL))).mean()

    def trained_loss(loss, own, opponent, num_steps=40):
        tx = optax.adam(3e-3)

        @jax.jit
        def step(own, opt_state):
            updates, opt_state = tx.update(jax.grad(loss)(own, opponent), opt_state, own)
            return optax.apply_updates(own, updates), opt_state

        opt_state = tx.init(own)
        for _ in range(num_steps):
            own, opt_state = step(own, opt_state)
        return float(loss(own, opponent))

    d, g = params["discriminator"], params["generator"]
    assert trained_loss(d_loss, d, g) < 0.5 * float(d_loss(d, g))
    assert trained_loss(g_loss, g, d) < 0.5 * float(g_loss(g, d))


def _digits(count: int) -> jax.Array:
    """The first `count` of scikit-learn's 8x8 digits, (count, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits
    return jnp.asarray(load_digits().images[:count] / 16.0, jnp.float32)
