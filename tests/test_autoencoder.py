"""Autoencoders and the VAE: shapes, the KL and reparameterisation math, training-only corruption,
learning, and a short `dlx train` run that plots and resumes."""

import json
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import cli, generative, generative_artifacts
from dlx import config as config_lib
from dlx import data as data_lib
from dlx import nn as nn_lib
from dlx.errors import DlxError
from dlx.nn import autoencoder
from dlx.train import steps
from dlx.train.state import TrainState

from conftest import REPO

EXPERIMENT_INPUTS = {"ae_mnist1d": (40,), "ae_digits_conv": (8, 8), "vae_digits": (8, 8)}


def _model(name: str, *overrides: str):
    config = config_lib.build(str(REPO / "experiments" / f"{name}.py"), list(overrides))
    return nn_lib.build(config.model, num_outputs=10)


def _params(model, x):
    """Parameters of `model` for inputs like `x`, drawn with numpy (LeCun-normal kernels, zero
    biases) from the shapes `eval_shape` gives, so that no initialiser is compiled."""
    key = jax.random.PRNGKey(0)
    shapes = jax.eval_shape(lambda x: model.init({"params": key, "latent": key}, x)["params"], x)
    rng = np.random.default_rng(0)

    def draw(path, leaf):
        if path[-1].key == "bias":
            return jnp.zeros(leaf.shape, leaf.dtype)
        fan_in = math.prod(leaf.shape[:-1])
        return jnp.asarray(rng.normal(0.0, fan_in ** -0.5, leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def _shape(model, params, x, method="__call__"):
    """The shapes of `model.apply` on `x` (traced, not compiled)."""
    rngs = {"latent": jax.random.PRNGKey(2)}
    return jax.eval_shape(lambda x: model.apply({"params": params}, x, rngs=rngs, method=method),
                          x)


def test_experiment_models_keep_the_input_shape_and_expose_encode_decode():
    for name, input_shape in EXPERIMENT_INPUTS.items():
        model = _model(name)
        x = jnp.zeros((3, *input_shape))
        params = _params(model, x)
        out, code = _shape(model, params, x), _shape(model, params, x, "encode")
        if name == "vae_digits":
            out, mu, logvar = out
            assert mu.shape == logvar.shape == code[0].shape == (3, model.latent), name
            code = mu
        assert code.shape == (3, model.latent), name
        assert out.shape == x.shape, name
        z = jnp.zeros(code.shape)
        assert _shape(model, params, z, "decode").shape == x.shape, name
    # The conv autoencoder also takes images with a channel axis, and keeps it.
    model = _model("ae_digits_conv")
    x = jnp.zeros((3, 8, 8, 1))
    assert _shape(model, _params(model, x), x).shape == (3, 8, 8, 1)


@pytest.mark.parametrize("name, overrides, x_shape, fragment", [
    ("ae_digits_conv", (), (2, 40), "expects images (batch, 8, 8)"),
    ("ae_mnist1d", (), (2, 8, 8), "built for inputs of shape (batch, 40)"),
    ("ae_digits_conv", ("--config.model.input_shape=(6, 6)",), (2, 6, 6), "divisible by 4"),
])
def test_wrong_input_shapes_are_one_line_errors(name, overrides, x_shape, fragment):
    model = _model(name, *overrides)
    with pytest.raises(DlxError, match=re.escape(fragment)):
        _params(model, jnp.zeros(x_shape))  # Traced only: the check runs before any compile.


@pytest.mark.parametrize("override, fragment", [
    ("--config.model.noise=salt", "model.noise='salt' is not known"),
    ("--config.model.likelihood=poisson", "model.likelihood='poisson' is not known"),
    ("--config.model.latent=0", "model.latent=0 is invalid"),
])
def test_bad_model_settings_are_one_line_errors(override, fragment):
    with pytest.raises(DlxError, match=re.escape(fragment)):
        _model("ae_digits_conv", override)


def test_gaussian_kl_is_zero_at_the_prior_and_matches_monte_carlo_and_the_formula():
    assert float(autoencoder.gaussian_kl(jnp.zeros((1, 3)), jnp.zeros((1, 3)))[0]) == 0.0
    mu_BL = jnp.array([[0.5, -1.0], [2.0, 0.3]])
    logvar_BL = jnp.array([[0.2, -0.7], [-1.5, 1.0]])
    kl_B = autoencoder.gaussian_kl(mu_BL, logvar_BL)
    # Per dimension: log(1 / s) + (s^2 + mu^2) / 2 - 1/2, written out with numpy.
    s = np.exp(0.5 * np.asarray(logvar_BL, np.float64))
    reference_B = (np.log(1 / s) + (s ** 2 + np.asarray(mu_BL) ** 2) / 2 - 0.5).sum(-1)
    np.testing.assert_allclose(kl_B, reference_B, rtol=1e-5)

    @jax.jit
    def monte_carlo(mu_BL, logvar_BL):  # E_q[log q(z) - log p(z)] over 400k draws per row.
        shape = (400_000, *mu_BL.shape)
        z_SBL = autoencoder.reparameterize(jax.random.PRNGKey(0), jnp.broadcast_to(mu_BL, shape),
                                           jnp.broadcast_to(logvar_BL, shape))
        log_q = -0.5 * (((z_SBL - mu_BL[None]) ** 2) / jnp.exp(logvar_BL)[None]
                        + logvar_BL[None]).sum(-1)
        return (log_q + 0.5 * (z_SBL ** 2).sum(-1)).mean(0)

    np.testing.assert_allclose(monte_carlo(mu_BL, logvar_BL), kl_B, atol=0.02)


def test_reparameterised_gradient_matches_the_analytic_expectation():
    # E[z^2] under z ~ N(mu, exp(logvar)) is mu^2 + exp(logvar).
    mu, logvar = jnp.array([[0.7]]), jnp.array([[-0.4]])
    exact = jax.grad(lambda m, lv: (m ** 2 + jnp.exp(lv)).sum(), (0, 1))(mu, logvar)
    samples = (200_000, 1)

    def estimate(m, lv):  # The mean of z^2 over reparameterised draws.
        z = autoencoder.reparameterize(jax.random.PRNGKey(3), jnp.broadcast_to(m, samples),
                                       jnp.broadcast_to(lv, samples))
        return (z ** 2).mean()

    sampled = jax.jit(jax.grad(estimate, (0, 1)))(mu, logvar)
    np.testing.assert_allclose(sampled[0], exact[0], rtol=0.02)
    np.testing.assert_allclose(sampled[1], exact[1], rtol=0.02)
    np.testing.assert_allclose(exact[0], [[1.4]], rtol=1e-6)  # 2 mu
    np.testing.assert_allclose(exact[1], [[math.exp(-0.4)]], rtol=1e-6)  # exp(logvar)


def test_pca_baseline_is_exact_with_every_component_and_the_mean_with_none():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(50, 6)), rng.normal(size=(20, 6))
    assert generative_artifacts.pca_reconstruction_mse(train, test, 6) < 1e-20
    mean_only = np.mean((test - train.mean(0)[None]) ** 2)
    assert generative_artifacts.pca_reconstruction_mse(train, test, 0) == pytest.approx(mean_only)
    one = generative_artifacts.pca_reconstruction_mse(train, test, 1)
    assert 0 < one < mean_only


def test_autoencoder_artifacts_of_signals_are_written_without_samples(tmp_path):
    model = _model("ae_mnist1d")
    rng = np.random.default_rng(0)
    splits = data_lib.Splits(
        train={"x": rng.normal(size=(30, 40)).astype(np.float32), "y": np.zeros(30, np.int32)},
        test={"x": rng.normal(size=(12, 40)).astype(np.float32), "y": np.arange(12) % 3},
        num_classes=3)
    task = generative.Reconstruction(model)
    files = task.write_artifacts(_params(model, splits.test["x"]), splits, tmp_path)
    assert files == {"reconstructions": "reconstructions.png", "latent": "latent.png",
                     "baselines": "baselines.json"}
    assert (tmp_path / "latent.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "samples.png").exists()
    baselines = json.loads((tmp_path / "baselines.json").read_text())
    assert baselines["pca_components"] == 8 and "mean_image_nll" not in baselines


def test_corruptions_have_the_asked_strength():
    x = jnp.ones((200, 50))
    noisy, masked = jax.jit(lambda key: (autoencoder.corrupt(key, x, "gaussian", 0.3),
                                         autoencoder.corrupt(key, x, "mask", 0.25)))(
        jax.random.PRNGKey(0))
    noisy, masked = np.asarray(noisy), np.asarray(masked)
    assert abs(float((noisy - 1).std()) - 0.3) < 0.01
    assert set(np.unique(masked)) == {0.0, 1.0}
    assert abs(float((masked == 0).mean()) - 0.25) < 0.01
    assert autoencoder.corrupt(jax.random.PRNGKey(0), x, "none", 0.3) is x


def test_denoising_autoencoder_corrupts_in_training_only_and_learns_the_clean_input():
    plain = _model("ae_digits_conv", "--config.model.noise=none")
    denoising = _model("ae_digits_conv", "--config.model.noise=mask",
                       "--config.model.noise_level=0.3")
    task = generative.Reconstruction(denoising)
    # 64 inputs in [0, 1], copies of 4 random binary prototypes: a code can tell them apart.
    prototypes = np.random.default_rng(0).random((4, 8, 8)) < 0.4
    batch = {"x": jnp.tile(jnp.asarray(prototypes, jnp.float32), (16, 1, 1))}
    x, rng = batch["x"], jax.random.PRNGKey(5)
    tx = optax.adam(3e-3)
    params = _params(denoising, x)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                       batch_stats={}, rng=jax.random.PRNGKey(2))

    @jax.jit
    def run(state):
        """Eval and train losses of both models, the train-mode output, then 40 train steps
        (with their losses) and the trained model's eval loss, in one compiled call."""
        losses = [generative.Reconstruction(model).loss(state.params, {}, batch, rng, train)[0]
                  for model in (denoising, plain) for train in (False, True)]
        out = denoising.apply({"params": state.params}, x, train=True, rngs={
            "noise": jax.random.fold_in(rng, generative.NOISE_STREAM)})

        def step(state, _):
            state, sums = steps.train_step(state, batch, task=task, tx=tx)
            return state, sums["loss"] / sums["count"]

        trained, train_losses = jax.lax.scan(step, state, None, length=40)
        return losses, out, trained, train_losses, task.loss(trained.params, {}, batch, rng,
                                                             False)[0]

    (eval_loss, train_loss, clean_eval_loss, clean_train_loss), out, trained, train_losses, \
        trained_eval_loss = run(state)
    assert float(eval_loss) == float(clean_eval_loss) == float(clean_train_loss)
    assert float(train_loss) != float(eval_loss)
    # The target is the clean input: only the encoder sees the corrupted one.
    np.testing.assert_allclose(train_loss, jnp.mean((out - x) ** 2), rtol=1e-5)
    chex.assert_tree_all_finite(trained.params)  # Every step's gradients were finite.
    assert int(trained.step) == 40
    assert float(train_losses[-1]) < 0.7 * float(train_losses[0]), train_losses[::8]
    assert float(trained_eval_loss) < 0.7 * float(eval_loss)


def test_vae_loss_is_nll_plus_kl_and_evaluation_is_deterministic():
    model = _model("vae_digits")
    task = generative.VariationalAE(model)
    x = jax.random.uniform(jax.random.PRNGKey(0), (5, 8, 8))
    params = _params(model, x)
    batch = {"x": x, "mask": jnp.array([True, True, True, True, False])}

    @jax.jit
    def evaluate(params, step_rng):
        """An evaluation given the step rng, and the model's output at the eval key."""
        return task.loss(params, {}, batch, step_rng, train=False), model.apply(
            {"params": params}, x, rngs={"latent": jax.random.PRNGKey(generative.EVAL_LATENT_SEED)})

    (loss, (sums, _)), (out, mu, logvar) = evaluate(params, jax.random.PRNGKey(2))
    (again, _), _ = evaluate(params, jax.random.PRNGKey(9))
    assert float(loss) == float(again)  # Evaluation ignores the step rng.
    assert float(sums["count"]) == 4
    np.testing.assert_allclose(sums["loss"], sums["reconstruction"] + sums["kl"], rtol=1e-6)
    # The reconstruction term is the Bernoulli cross-entropy summed over pixels.
    p = jax.nn.sigmoid(out)
    nll = -(x * jnp.log(p) + (1 - x) * jnp.log(1 - p)).sum((1, 2))
    np.testing.assert_allclose(sums["reconstruction"], nll[:4].sum(), rtol=1e-4)
    np.testing.assert_allclose(sums["kl"], autoencoder.gaussian_kl(mu, logvar)[:4].sum(),
                               rtol=1e-5)
    means = task.summarize(jax.device_get(sums))
    assert means["elbo"] == -means["loss"] and "mse" in means


def test_short_vae_run_writes_its_plots_and_resumes(tmp_path, capsys):
    args = ["train", "--config", str(REPO / "experiments" / "vae_digits.py"),
            "--workdir", str(tmp_path), "--config.train.eval_every=40",
            "--config.train.log_every=20", "--config.train.checkpoint_every=40",
            "--config.model.features=(64,)"]
    assert cli.run(args + ["--config.train.steps=40"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli.run(args + ["--config.train.steps=80"]) == 0
    captured = capsys.readouterr()
    assert "resuming vae_digits from checkpoint at step 40" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert first["final_step"] == 40 and summary["final_step"] == 80
    test = summary["eval"]["test"]
    assert test["elbo"] == pytest.approx(-(test["reconstruction"] + test["kl"]))
    assert test["loss"] < first["eval"]["test"]["loss"]  # The VAE's -ELBO falls.
    files = {"reconstructions": "reconstructions.png", "latent": "latent.png",
             "samples": "samples.png", "baselines": "baselines.json"}
    assert summary["artifacts"] == files
    for name in ("reconstructions", "latent", "samples"):
        assert (tmp_path / files[name]).read_bytes()[:4] == b"\x89PNG"
    baselines = json.loads((tmp_path / "baselines.json").read_text())
    assert baselines["model_mse"] == pytest.approx(test["mse"], rel=1e-4)
    assert baselines["pca_components"] == 2
    assert baselines["perfect_reconstruction_nll"] < baselines["mean_image_nll"]
    assert 0 < baselines["pca_mse"] < baselines["mean_image_mse"]
