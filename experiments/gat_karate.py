"""GAT (Velickovic et al.) on Zachary's karate club, the same 4 labelled members: 96.7 %.

`gcn_karate` with graph attention: 8 heads of 8 features (ELU), one output head, dropout 0.6 on
inputs and attention coefficients, Adam 0.005 with L2 5e-4, as the GAT paper's Cora setup. Run:
dlx train --config experiments/gat_karate.py --workdir runs/gat_karate
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("gcn_karate.py")))
    config.model.conv = "gat"
    config.model.hidden = 8
    config.model.heads = 8
    config.model.dropout = 0.6
    config.model.attention_dropout = 0.6
    config.optim.lr = 0.005
    return config
