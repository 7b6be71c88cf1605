"""BERT-base (12 layers, hidden 768, 12 heads, 110M parameters) masked-LM pre-training, bf16.

bert_mlm_tiny's data and recipe at the shapes of Devlin et al.'s BERT-base: a 30,522-token
WordPiece vocabulary (fewer when the corpus is too small to fill it), sequences of 128, compute
in bfloat16 with float32 params, and attention through `jax.nn.dot_product_attention` (cuDNN's
fused kernel on GPU; it has no attention-probability dropout, so that rate is 0). Meant for a GPU
or TPU: on the offline corpus it overfits, so point it at a large corpus (`data.corpus=hub`,
`data.path=...`).
Run: dlx train --config experiments/bert_mlm_base.py --workdir runs/bert_mlm_base
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("bert_mlm_tiny.py")))
    config.data.vocab_size = 30522
    config.model.update({"hidden_size": 768, "num_layers": 12, "num_heads": 12,
                         "intermediate_size": 3072, "attention_dropout": 0.0,
                         "max_length": 512, "dtype": "bfloat16", "use_fused": True,
                         "remat": False})
    config.optim.lr = 1e-4
    config.optim.warmup_steps = 1000
    config.train.update({"steps": 10000, "batch_size": 256, "eval_batch_size": 256,
                         "eval_every": 1000, "checkpoint_every": 1000})
    return config
