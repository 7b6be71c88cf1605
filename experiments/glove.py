"""GloVe (weighted least squares on log co-occurrence counts, AdaGrad, vectors W + W̃) on gensim's
English Wikipedia + Lee text (~539k words).

The paper's window (10, counts weighted 1/distance), 100 dimensions, min_count 5 and 25
iterations; x_max 5 and eta 0.1 instead of glove.c's 100 and 0.05, which leave a corpus this
small near its random start (WordSim-353 ρ 0.03: with counts this low, f(x) = (x/100)^0.75 is
tiny). Writes vectors.txt (word2vec format), eval.json and summary.json.
Run: dlx train --config experiments/glove.py --workdir runs/glove
"""

import ml_collections

from dlx.embeddings.experiment import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.model = ml_collections.ConfigDict({
        "name": "glove", "dim": 100, "window": 10, "min_count": 5, "x_max": 5.0, "alpha": 0.75,
        "epochs": 25, "eta": 0.1})
    return config
