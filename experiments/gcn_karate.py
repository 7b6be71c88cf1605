"""GCN (Kipf & Welling) on Zachary's karate club, 4 labelled members: 96.7 % of the other 30.

Semi-supervised node classification: one graph of 34 members (one-hot identity features), the
faction labels of members 0 and 1 (Mr. Hi's) and 32 and 33 (the officer's) seen in training, the
other 30 members scored. Two GCN layers (hidden 16, dropout 0.5), Adam 0.01 with L2 5e-4, 200
full-graph steps, as the GCN paper. Run:
dlx train --config experiments/gcn_karate.py --workdir runs/gcn_karate
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.name = "karate_club"
    config.data.labelled_nodes = (0, 1, 32, 33)

    config.model.name = "gnn_node"
    config.model.conv = "gcn"
    config.model.hidden = 16
    config.model.heads = 1  # Used by GAT only.
    config.model.dropout = 0.5
    config.model.attention_dropout = 0.0

    config.optim.name = "adam"
    config.optim.lr = 0.01
    config.optim.l2 = 5e-4

    config.train.steps = 200
    config.train.batch_size = 1  # The one graph.
    config.train.devices = 1
    config.train.eval_batch_size = 1
    config.train.log_every = 20
    config.train.eval_every = 50
    config.train.checkpoint_every = 100
    return config
