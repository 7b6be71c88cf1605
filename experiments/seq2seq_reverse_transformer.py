"""Transformer encoder-decoder (2 layers, hidden 64) on seq2seq_reverse's sequence reversal.

The same data, steps and batches as seq2seq_reverse (dlx/data/reverse.py); the model is
`seq2seq_transformer`: pre-LN encoder and causal decoder stacks with sinusoidal positions, the
decoder cross-attending to the encoder. `attention.png` shows the last decoder layer's
cross-attention averaged over its 4 heads. Adam at 1e-3 with 100 warm-up steps, cosine decay.
Run: dlx train --config experiments/seq2seq_reverse_transformer.py --workdir runs/s2s_transformer
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("seq2seq_reverse.py")))
    config.model = ml_collections.ConfigDict({
        "name": "seq2seq_transformer", "hidden_size": 64, "num_layers": 2, "num_heads": 4,
        "mlp_dim": 256, "dropout": 0.0, "remat": False})
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 100
    return config
