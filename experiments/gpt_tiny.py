"""A 2-layer GPT (causal Transformer LM) on gensim's English Wikipedia + Lee text; `dlx generate`.

The same corpus, held-out documents and 8,000-token WordPiece vocabulary as bert_mlm_tiny; the
documents are joined with [SEP] as end-of-text and cut into rows of 128 tokens (GPT-2 packing),
and every position predicts the next token. The summary reports held-out next-token accuracy and
perplexity beside the unigram baseline (`baseline.unigram`). Sample from the trained model with
dlx generate --config experiments/gpt_tiny.py --workdir runs/gpt_tiny --prompt "the war"
Run: dlx train --config experiments/gpt_tiny.py --workdir runs/gpt_tiny
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.base()
    # bert_mlm_tiny's corpus, held-out documents and vocabulary, packed as one stream.
    config.data = config_lib.load(str(pathlib.Path(__file__).with_name("bert_mlm_tiny.py"))).data
    config.data.packing = "stream"
    del config.data["mask_rate"], config.data["max_predictions"]

    config.model = ml_collections.ConfigDict({
        "name": "gpt", "hidden_size": 128, "num_layers": 2, "num_heads": 2, "mlp_dim": 512,
        "dropout": 0.1, "attention_dropout": 0.1, "max_length": 128, "use_fused": False,
        "dtype": "float32", "remat": False})

    config.optim.name = "adamw"
    config.optim.lr = 1e-3
    config.optim.weight_decay = 0.01
    config.optim.schedule = "linear"
    config.optim.warmup_steps = 100
    config.optim.clip = 1.0

    config.train.steps = 2000
    config.train.batch_size = 16
    config.train.eval_batch_size = 64
    config.train.log_every = 100
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    return config
