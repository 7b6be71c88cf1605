"""DCGAN on 8x8 digits, two Adam states, alternating updates: judge 87 % confident, 10/10 classes.

The generator (z of 32 -> dense -> two 4x4 stride-2 transposed convs -> sigmoid) and the
discriminator (two 4x4 stride-2 convs, leaky ReLU, one logit) each have their own Adam state;
every step makes `model.discriminator_steps` discriminator updates, then one generator update,
with the non-saturating loss. Evaluation scores 1000 samples from fixed latents with a SimpleCNN
digits classifier (experiments/digits_cnn.py's recipe, trained once and cached under the data
cache): mean max-softmax confidence, classes predicted, entropy of the class histogram.
Seed 0, 3000 steps: confidence 87.2 %, all 10 classes, entropy 2.19 nats (log 10 = 2.30); the
judge scores 98.6 % on the real test digits.
Run: dlx train --config experiments/gan_digits.py --workdir runs/gan_digits
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.name = "digits"
    config.data.seed = 0  # The train/test split's seed, shared with the judge.

    config.model.name = "gan"
    config.model.latent_dim = 32
    config.model.image_size = 8
    config.model.generator_features = 32
    config.model.discriminator_features = 32
    config.model.output = "sigmoid"
    config.model.minibatch_std = True  # Without it the generator collapses onto 1-2 digits.
    config.model.discriminator_steps = 1
    config.model.discriminator_lr = 4e-4  # Two time scales: D learns 4x faster than G.
    config.model.judge_steps = 600  # The judge's training steps (digits_cnn's full run).
    config.model.judge_samples = 1000

    config.optim.name = "adam"
    config.optim.lr = 1e-4  # The generator's; the discriminator's is model.discriminator_lr.
    config.optim.b1 = 0.5  # DCGAN's Adam beta1; at 0.9 this GAN collapses.

    config.train.steps = 3000
    config.train.batch_size = 64
    config.train.eval_batch_size = 360
    config.train.log_every = 100
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    return config
