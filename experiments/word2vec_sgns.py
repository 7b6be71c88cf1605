"""word2vec skip-gram with negative sampling on gensim's English Wikipedia + Lee text (~539k words).

gensim's Word2Vec settings: 100 dimensions, window 5, 5 negative samples, min_count 5, sample
1e-3, 5 epochs, learning rate 0.025 decaying linearly to 1e-4. Writes vectors.txt (word2vec
format), eval.json (WordSim-353, SimLex-999, Google analogies) and summary.json.
Run: dlx train --config experiments/word2vec_sgns.py --workdir runs/word2vec_sgns
"""

import ml_collections

from dlx.embeddings.experiment import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.model = ml_collections.ConfigDict({
        "name": "word2vec", "sg": True, "dim": 100, "window": 5, "negative": 5, "min_count": 5,
        "sample": 1e-3, "epochs": 5, "alpha": 0.025, "min_alpha": 1e-4})
    return config
