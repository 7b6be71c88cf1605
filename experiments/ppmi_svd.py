"""Count-based vectors: window co-occurrence counts, PPMI and a truncated SVD, on gensim's English
Wikipedia + Lee text (~539k words).

Levy, Goldberg & Dagan (2015)'s recipe with word2vec's vocabulary and window: min_count 5, window
5 (uniform weights), context distribution smoothing 0.75, no shift, 100 dimensions U·S^0.5.
Writes vectors.txt (word2vec format), eval.json and summary.json.
Run: dlx train --config experiments/ppmi_svd.py --workdir runs/ppmi_svd
"""

import ml_collections

from dlx.embeddings.experiment import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.model = ml_collections.ConfigDict({
        "name": "ppmi_svd", "dim": 100, "window": 5, "min_count": 5, "weighting": "uniform",
        "cds": 0.75, "shift": 0.0, "eig_power": 0.5})
    return config
