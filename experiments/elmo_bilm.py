"""ELMo's biLM: forward and backward 2-layer LSTM language models on gensim's enwiki + Lee text.

The same corpus, held-out documents and 8,000-token WordPiece vocabulary as bert_mlm_tiny and
gpt_tiny; documents are joined with [SEP] and cut into rows of 64 tokens (GPT-2 packing). Word
(WordPiece) input, embedding and LSTMs of 128 units, a residual connection between the two
layers, and one softmax tied to the embedding shared by both directions (`dlx.nn.elmo`). The
summary reports held-out forward and backward perplexity and accuracy beside the unigram baseline
(`baseline.unigram`); `dlx.nn.elmo.contextual_embeddings` gives the scalar-mixed ELMo vectors.
Run: dlx train --config experiments/elmo_bilm.py --workdir runs/elmo_bilm
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.base()
    # bert_mlm_tiny's corpus, held-out documents and vocabulary, packed as one stream.
    config.data = config_lib.load(str(pathlib.Path(__file__).with_name("bert_mlm_tiny.py"))).data
    config.data.packing = "stream"
    config.data.seq_len = 64
    del config.data["mask_rate"], config.data["max_predictions"]

    config.model = ml_collections.ConfigDict({
        "name": "elmo_bilm", "hidden_size": 128, "num_layers": 2, "residual": True,
        "dropout": 0.1})

    config.optim.name = "adam"
    config.optim.lr = 2e-3
    config.optim.schedule = "linear"
    config.optim.warmup_steps = 50
    config.optim.clip = 1.0

    config.train.steps = 800
    config.train.batch_size = 32
    config.train.eval_batch_size = 128
    config.train.log_every = 100
    config.train.eval_every = 400
    config.train.checkpoint_every = 400
    return config
