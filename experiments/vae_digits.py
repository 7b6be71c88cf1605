"""VAE (MLP 64-256-128, 2-D latent, Bernoulli pixels) on 8x8 digits: test ELBO -24.1 nats per image.

Test ELBO in nats per image (one z per image, fixed evaluation key) = -(reconstruction 20.6 +
KL 3.6); `baselines.json` holds the NLL of the train mean image (27.2, no latent), the
cross-entropy of a perfect reconstruction (13.7: graded pixels are not binary) and 2-component
PCA's MSE (0.053; the decoded mean at z = mu: 0.031). Writes latent.png (the 2-D code of the
test images) and samples.png. Run:
dlx train --config experiments/vae_digits.py --workdir runs/vae_digits
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.name = "digits"
    config.data.seed = 0  # The train/test split's seed (stratified, 20 % test).

    config.model.name = "vae"
    config.model.input_shape = (8, 8)
    config.model.features = (256, 128)
    config.model.latent = 2
    config.model.activation = "relu"
    config.model.likelihood = "bernoulli"
    config.model.sigma = 1.0  # Used by likelihood="gaussian" only.

    config.optim.name = "adam"
    config.optim.lr = 1e-3

    config.train.steps = 5000
    config.train.batch_size = 64
    config.train.eval_batch_size = 360
    config.train.log_every = 250
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
    return config
