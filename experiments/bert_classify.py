"""Fine-tune a pre-trained BERT to tell alt.atheism from sci.space posts (20 Newsgroups sample).

The labelled set is the 193 posts of gensim's `mini_newsgroup` left after removing headers,
signatures and quotes (`dlx.data.labelled_text`); 25 % of each class is held out (48 posts), so
accuracies carry a standard error of ~5-7 points. The model and its tokenizer are the Hugging
Face checkpoint in `model.init_from`; by default the bert_mlm_tiny run exported with
dlx export --config experiments/bert_mlm_tiny.py --workdir runs/bert_mlm_tiny --out runs/bert_mlm_tiny/hf
Any HF BERT directory works (set data.tokenizer to the same path). The classifier reads the
pooled [CLS] vector; `--config.model.pretrained=false` trains the same network from scratch, the
comparison that shows what pre-training bought. `data.corpus=pang_lee_polarity` switches to 200
movie-review sentences (negative/positive).
Transfer-learning options (off by default; not measured yet): `--config.optim.layer_decay=0.8`
(layer-wise LR decay: encoder layer k of L trains at lr * 0.8^(L - k), the embeddings at
0.8^(L + 1), pooler and classifier at lr) and `--config.optim.freeze=embeddings` (regexes on
'/'-joined param paths such as bert/encoder/layer_0/mlp/output/kernel; add
`--config.optim.unfreeze_at=N` to train them after N steps).
Run: dlx train --config experiments/bert_classify.py --workdir runs/bert_classify
"""

import ml_collections

from dlx.config import base

CHECKPOINT = "runs/bert_mlm_tiny/hf"


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.update({"name": "labelled_text", "corpus": "newsgroups", "files": "",
                        "held_out": 0.25, "tokenizer": CHECKPOINT, "seq_len": 128,
                        "long_text": "truncate", "window_stride": 0})

    config.model = ml_collections.ConfigDict({
        "name": "bert_classifier", "init_from": CHECKPOINT, "pretrained": True,
        "dropout": 0.1, "attention_dropout": 0.1, "remat": False})

    config.optim.name = "adamw"
    config.optim.lr = 2e-4
    config.optim.weight_decay = 0.01
    config.optim.schedule = "linear"
    config.optim.warmup_steps = 20
    config.optim.clip = 1.0

    config.train.steps = 200
    config.train.batch_size = 16
    config.train.eval_batch_size = 64
    config.train.log_every = 20
    config.train.eval_every = 50
    config.train.checkpoint_every = 100
    return config
