"""Bidirectional LSTM on the LSTM paper's temporal order problem: sequences of 100-110 steps.

The class (XX, XY, YX, YY) is the order of two symbols placed at steps 10-20 and 50-60 among
random distractors; see dlx/data/temporal_order.py. Batches are right-padded and carry
`lengths`: the forward direction's state is read at each row's own last real step, and the
backward direction starts there. Chance is 25 %. Reading backwards puts both symbols within 60
steps of the end; a unidirectional LSTM (`--config.model.bidirectional=false`) must carry the
first symbol across ~90 steps of distractors and stayed at chance in three of four 3000-step
tries (see the README).
Run: dlx train --config experiments/sequence_lstm.py --workdir runs/sequence_lstm
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.name = "temporal_order"
    config.data.seed = 0  # Generates the sequences; fixed whatever `seed`.
    config.data.num_train = 40000
    config.data.num_test = 2000

    config.model = ml_collections.ConfigDict({
        "name": "rnn", "cell_type": "lstm", "hidden_size": 32, "num_layers": 1,
        "bidirectional": True, "dropout": 0.0, "readout": "last",
        "weight_init": "default"})

    config.optim.name = "adam"
    config.optim.lr = 3e-3
    config.optim.clip = 1.0

    config.train.steps = 1000
    config.train.batch_size = 64
    config.train.log_every = 50
    config.train.eval_every = 250
    config.train.checkpoint_every = 500
    return config
