"""EDA text augmentation (Wei & Zou 2019) for the text_baselines classifiers: bag-of-words,
TF-IDF and averaged word vectors with logistic regression, each fitted on the 145 training
alt.atheism / sci.space posts and again on those plus 4 EDA variants of each (synonym
replacement and insertion from the run's word2vec vectors, random swap, random deletion, rates
alpha = 0.1); held-out accuracy and macro-F1 on the same 48 posts, side by side, and augment.png.
Run: dlx train --config experiments/text_augment.py --workdir runs/text_augment
"""

import ml_collections

from dlx.text_baselines import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.model.augment = 4
    config.model.augment_alpha = 0.1
    return config
