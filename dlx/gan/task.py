"""The GAN task: two players, each with its own optimiser state, updated in turn every step.

A train step makes `discriminator_steps` discriminator updates, then one generator update
against the updated discriminator, with the non-saturating loss (`dlx.nn.gan`). The state's
`opt_state` is `{"generator": ..., "discriminator": ...}`: a player's optimiser (its Adam
moments and step count) only moves when that player is updated. Evaluation scores the model on
real rows and on generated samples that a fixed digits classifier (`dlx.gan.judge`) labels.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from dlx import tasks
from dlx.errors import DlxError
from dlx.gan import judge as judge_lib
from dlx.nn import gan

EVAL_SEED = 0  # Evaluation row i is paired with the fake from z = latents(fold_in(key, i)).
SAMPLE_SEED = 1  # The judged samples (and samples.png) use the latents of this key.
GRID = 10  # samples.png shows GRID x GRID samples: the first of the judged ones.


def latents(key: jax.Array, count: int, latent_dim: int) -> jax.Array:
    """(count, latent) standard normals; row i is drawn from `fold_in(key, i)`, so the first rows
    are the same whatever `count`."""
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(count))
    return jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(keys)


def _global_mean(grads: Any, count: jax.Array, axis_name: str | None) -> Any:
    """Per-device mean gradients -> the global-batch mean (count-weighted), as steps.gradients."""
    if axis_name is None:
        return grads
    total = jax.lax.psum(count, axis_name)
    return jax.tree.map(lambda g: jax.lax.psum(g * count, axis_name) / total, grads)


@dataclasses.dataclass(frozen=True, eq=False)
class GANTask:
    """Trains `dlx.nn.gan.GAN` on `batch["x"]` (B, H, W) images in [0, 1].

    The generator uses the trainer's optimiser; the discriminator `discriminator_tx`, or the
    trainer's when None. Sums (train and eval): `d_loss` and `g_loss` (per-row losses),
    `loss` (their total), `d_real` and `d_fake` (D's probability of "real" on real and on
    generated images) and `count` (rows). Evaluation adds the judge's `quality_sums` over
    `judge_samples` generated images from the fixed SAMPLE_SEED latents (the same samples in
    every evaluation batch, so the means do not depend on how the split is batched). With the
    discriminator's minibatch channel the `d_*`/`g_loss` numbers do depend on a batch's rows,
    so they are comparable between runs with the same `train.eval_batch_size`. A player's
    learning-rate schedule advances with its own updates (k per step for the discriminator).
    """
    model: gan.GAN
    judge: judge_lib.Judge
    discriminator_tx: optax.GradientTransformation | None = None
    discriminator_steps: int = 1
    judge_samples: int = 1000

    def init(self, rng: jax.Array, batch: dict) -> tuple[Any, Any]:
        """({"generator": ..., "discriminator": ...}, {}) for images shaped like `batch["x"]`."""
        size = self.model.image_size
        if batch["x"].shape[1:] != (size, size):
            raise DlxError(f"the GAN makes {size}x{size} images (model.image_size) but the data "
                           f"has images of shape {batch['x'].shape[1:]}")
        z_BL = jnp.zeros((1, self.model.latent_dim))
        return tasks.jitted_init(self.model, rng, z_BL, streams=()), {}

    def _txs(self, tx: optax.GradientTransformation) -> dict[str, optax.GradientTransformation]:
        return {"generator": tx, "discriminator": self.discriminator_tx or tx}

    def init_opt_state(self, tx: optax.GradientTransformation, params: Any) -> dict[str, Any]:
        """One optimiser state per player."""
        return {name: player_tx.init(params[name]) for name, player_tx in self._txs(tx).items()}

    def generate(self, generator_params: Any, z_BL: jax.Array) -> jax.Array:
        """(B, latent) -> (B, H, W) images of the generator alone."""
        return self.model.apply({"params": {"generator": generator_params}}, z_BL,
                                method=gan.GAN.generate)

    def discriminate(self, discriminator_params: Any, x_BHW: jax.Array) -> jax.Array:
        """(B, H, W) -> (B,) logits of the discriminator alone."""
        return self.model.apply({"params": {"discriminator": discriminator_params}}, x_BHW,
                                method=gan.GAN.discriminate)

    def _latents(self, key: jax.Array, count: int) -> jax.Array:
        return latents(key, count, self.model.latent_dim)

    def train_step(self, state, batch: dict, rng: jax.Array, tx: optax.GradientTransformation,
                   axis_name: str | None):
        """`discriminator_steps` D updates then one G update; (state, sums of the last D update
        and the G update). The trainer advances `state.step`."""
        x_BHW = batch["x"]
        count = jnp.asarray(x_BHW.shape[0], jnp.float32)
        txs = self._txs(tx)
        params, opt_state = dict(state.params), dict(state.opt_state)

        def d_objective(d_params, z_BL):
            fake_BHW = jax.lax.stop_gradient(self.generate(params["generator"], z_BL))
            real_B = self.discriminate(d_params, x_BHW)
            fake_B = self.discriminate(d_params, fake_BHW)
            loss_B = gan.discriminator_loss(real_B, fake_B)
            return loss_B.mean(), {"d_loss": loss_B.sum(),
                                   "d_real": jax.nn.sigmoid(real_B).sum(),
                                   "d_fake": jax.nn.sigmoid(fake_B).sum()}

        def g_objective(g_params, z_BL):
            fake_B = self.discriminate(params["discriminator"], self.generate(g_params, z_BL))
            loss_B = gan.generator_loss(fake_B)
            return loss_B.mean(), {"g_loss": loss_B.sum()}

        def update(name, objective, key):
            z_BL = self._latents(key, x_BHW.shape[0])
            (_, sums), grads = jax.value_and_grad(objective, has_aux=True)(params[name], z_BL)
            grads = _global_mean(grads, count, axis_name)
            updates, opt_state[name] = txs[name].update(grads, opt_state[name], params[name])
            params[name] = optax.apply_updates(params[name], updates)
            return sums

        for index in range(self.discriminator_steps):
            d_sums = update("discriminator", d_objective, jax.random.fold_in(rng, index))
        g_sums = update("generator", g_objective,
                        jax.random.fold_in(rng, self.discriminator_steps))
        sums = {**d_sums, **g_sums, "loss": d_sums["d_loss"] + g_sums["g_loss"], "count": count}
        if axis_name is not None:
            sums = jax.lax.psum(sums, axis_name)
        return state.replace(params=params, opt_state=opt_state), sums

    def loss(self, params, batch_stats, batch: dict, rng: jax.Array, train: bool):
        """Mean D + G loss over the real rows, each paired with one fake; sums as above."""
        x_BHW = batch["x"]
        key = rng if train else jax.random.PRNGKey(EVAL_SEED)
        fake_BHW = self.generate(params["generator"], self._latents(key, x_BHW.shape[0]))
        real_B = self.discriminate(params["discriminator"], x_BHW)
        fake_B = self.discriminate(params["discriminator"], fake_BHW)
        where_B = batch.get("mask")
        weight_B = (jnp.ones(real_B.shape) if where_B is None else where_B).astype(jnp.float32)
        d_loss_B = gan.discriminator_loss(real_B, fake_B)
        g_loss_B = gan.generator_loss(fake_B)
        count = weight_B.sum()
        sums = {"d_loss": (d_loss_B * weight_B).sum(), "g_loss": (g_loss_B * weight_B).sum(),
                "d_real": (jax.nn.sigmoid(real_B) * weight_B).sum(),
                "d_fake": (jax.nn.sigmoid(fake_B) * weight_B).sum(), "count": count}
        sums["loss"] = sums["d_loss"] + sums["g_loss"]
        if not train:
            sums.update(judge_lib.quality_sums(self.judge.probabilities(
                self.samples(params["generator"], self.judge_samples))))
        return sums["loss"] / jnp.maximum(count, 1.0), (sums, batch_stats)

    def samples(self, generator_params: Any, count: int) -> jax.Array:
        """The first `count` judged samples, (count, H, W)."""
        return self.generate(generator_params,
                             self._latents(jax.random.PRNGKey(SAMPLE_SEED), count))

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """Means per row of every sum; with judge sums also the sample-quality means and the
        judge's accuracy on the real test digits (`judge_test_accuracy`)."""
        count = max(float(sums["count"]), 1.0)
        means = {key: float(sums[key]) / count
                 for key in ("loss", "d_loss", "g_loss", "d_real", "d_fake")}
        if "samples" in sums:
            means.update(judge_lib.quality_means(sums))
            means["judge_test_accuracy"] = self.judge.test_accuracy
        return means

    def write_artifacts(self, params, splits, workdir) -> dict[str, str]:
        """Writes `samples.png`: a GRID x GRID grid of the first judged samples, each titled with
        the judge's class and confidence; returns `{name: file}`."""
        from dlx.gan import plots
        del splits

        @jax.jit
        def judged(generator_params):
            x_NHW = self.samples(generator_params, GRID * GRID)
            return x_NHW, self.judge.probabilities(x_NHW)

        x_NHW, probabilities_NC = judged(params["generator"])
        plots.sample_grid(jax.device_get(x_NHW), jax.device_get(probabilities_NC), GRID,
                          workdir / "samples.png")
        return {"samples": "samples.png"}


def build(config, model: gan.GAN, metadata: dict) -> GANTask:
    """The GAN task for `config`: `data.name="digits"` (the judge is a digits classifier),
    `optim.accumulate_steps=1`; the discriminator's learning rate is `model.discriminator_lr`
    (0: `optim.lr`), with the rest of `config.optim`."""
    del metadata
    from dlx import optim
    if config.data.name != "digits":
        raise DlxError(f"model.name='gan' is judged by a digits classifier; set "
                       f"data.name='digits' (got data.name={config.data.name!r})")
    if config.optim.accumulate_steps != 1:
        raise DlxError(f"model.name='gan' makes its own alternating updates; set "
                       f"optim.accumulate_steps=1 (got {config.optim.accumulate_steps})")
    steps, samples = config.model.discriminator_steps, config.model.judge_samples
    if not (isinstance(steps, int) and steps > 0):
        raise DlxError(f"model.discriminator_steps must be a positive int, got {steps!r}")
    if not (isinstance(samples, int) and samples > 0):
        raise DlxError(f"model.judge_samples must be a positive int, got {samples!r}")
    discriminator_tx = None
    if config.model.discriminator_lr:
        if not config.model.discriminator_lr > 0:
            raise DlxError(f"model.discriminator_lr must be > 0 (0: optim.lr), got "
                           f"{config.model.discriminator_lr!r}")
        optim_config = copy.deepcopy(config.optim)
        with optim_config.unlocked():
            optim_config.lr = config.model.discriminator_lr
        discriminator_tx = optim.make(optim_config, config.train.steps)
    judge = judge_lib.load_or_train(config.data, config.model.judge_steps)
    return GANTask(model, judge, discriminator_tx, steps, samples)
