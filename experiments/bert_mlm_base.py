"""BERT-base (12 layers, hidden 768, 12 heads, 110M parameters) masked-LM pre-training, bf16.

Shapes of Devlin et al.'s BERT-base with a 30,522-token WordPiece vocabulary (fewer when the
corpus is too small to fill it) and sequences of 128, compute in bfloat16 with float32 params,
and attention through `jax.nn.dot_product_attention` (cuDNN's fused kernel on GPU; it has no
attention-probability dropout, so that rate is 0). Meant for a GPU or TPU: on the offline corpus
it overfits, so point it at a large corpus (`data.corpus=hub`, `data.path=...`).
Run: dlx train --config experiments/bert_mlm_base.py --workdir runs/bert_mlm_base
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.update({
        "name": "text", "corpus": "gensim_enwiki,gensim_lee", "files": "", "path": "",
        "subset": "", "text_column": "text", "held_out": 0.1, "tokenizer": "",
        "vocab_size": 30522, "min_frequency": 2, "packing": "bert", "seq_len": 128,
        "mask_rate": 0.15, "max_predictions": 20})

    config.model = ml_collections.ConfigDict({
        "name": "bert_mlm", "hidden_size": 768, "num_layers": 12, "num_heads": 12,
        "intermediate_size": 3072, "dropout": 0.1, "attention_dropout": 0.0, "max_length": 512,
        "dtype": "bfloat16", "use_fused": True})

    config.optim.name = "adamw"
    config.optim.lr = 1e-4
    config.optim.weight_decay = 0.01
    config.optim.schedule = "linear"
    config.optim.warmup_steps = 1000
    config.optim.clip = 1.0

    config.train.steps = 10000
    config.train.batch_size = 256
    config.train.eval_batch_size = 256
    config.train.log_every = 100
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
    return config
