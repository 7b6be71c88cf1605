"""fastText skip-gram (words as bags of character 3-6-grams) on gensim's English Wikipedia + Lee
text (~539k words); unseen words get vectors from their n-grams.

gensim's FastText settings: 100 dimensions, window 5, 5 negative samples, min_count 5, sample
1e-3, 5 epochs, learning rate 0.025 decaying linearly to 1e-4, n-grams of 3 to 6 characters
hashed into 2,000,000 buckets. Writes vectors.txt (the vocabulary, word2vec format), fasttext/
(the whole model: `dlx.embeddings.fasttext.FastTextVectors.load` answers unseen words too),
eval.json and summary.json. The probe words include two the corpus lacks.
Run: dlx train --config experiments/fasttext_sg.py --workdir runs/fasttext_sg
"""

import ml_collections

from dlx.embeddings.experiment import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.model = ml_collections.ConfigDict({
        "name": "fasttext", "sg": True, "dim": 100, "window": 5, "negative": 5, "min_count": 5,
        "sample": 1e-3, "epochs": 5, "alpha": 0.025, "min_alpha": 1e-4, "min_n": 3,
        "max_n": 6, "bucket": 2_000_000})
    config.eval.neighbours = "king,paris,computer,running,war,computerised,warlords"
    return config
