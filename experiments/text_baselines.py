"""Bag-of-words, TF-IDF and averaged word vectors, each with logistic regression, on the
alt.atheism vs sci.space posts that bert_classify fine-tunes BERT on.

The same 145 training / 48 held-out posts (gensim's 20 Newsgroups sample, cleaned as scikit-learn
does). The word vectors are word2vec skip-gram vectors trained in the run on gensim's enwiki +
Lee text (none of the posts); `--config.model.vectors=PATH` uses a vectors.txt instead, and
`--config.model.bert_workdir=DIR` adds a finished bert_classify run's accuracy to the table.
Run: dlx train --config experiments/text_baselines.py --workdir runs/text_baselines
"""

import ml_collections

from dlx.text_baselines import base


def get_config() -> ml_collections.ConfigDict:
    return base()
