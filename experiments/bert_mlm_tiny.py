"""A 2-layer BERT pre-trained with masked-token prediction on gensim's English Wikipedia + Lee text.

The corpus (~534k words: 106 Wikipedia articles and 300 news stories) is split by document: 10 %
held out. A 8,000-token WordPiece vocabulary is learnt on the training documents; rows of 128
tokens are packed as `[CLS] A [SEP] B [SEP]` and 15 % of real tokens are masked (80/10/10).
The summary reports held-out masked-token accuracy and perplexity beside the unigram baseline
(`baseline.unigram`), the score of predicting every masked token from its frequency alone.
Run: dlx train --config experiments/bert_mlm_tiny.py --workdir runs/bert_mlm_tiny
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.update({
        "name": "text", "corpus": "gensim_enwiki,gensim_lee", "files": "", "path": "",
        "subset": "", "text_column": "text", "held_out": 0.1, "tokenizer": "",
        "vocab_size": 8000, "min_frequency": 2, "packing": "bert", "seq_len": 128,
        "mask_rate": 0.15, "max_predictions": 20})

    config.model = ml_collections.ConfigDict({
        "name": "bert_mlm", "hidden_size": 128, "num_layers": 2, "num_heads": 2,
        "intermediate_size": 512, "dropout": 0.1, "attention_dropout": 0.1, "max_length": 128,
        "dtype": "float32", "use_fused": False, "remat": False})

    config.optim.name = "adamw"
    config.optim.lr = 1e-3
    config.optim.weight_decay = 0.01
    config.optim.schedule = "linear"
    config.optim.warmup_steps = 200
    config.optim.clip = 1.0

    config.train.steps = 3000
    config.train.batch_size = 32
    config.train.eval_batch_size = 256
    config.train.log_every = 100
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    return config
