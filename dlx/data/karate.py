"""Zachary's karate club (1977): 34 members, 78 friendships, split into two factions.

The classic semi-supervised node classification: one graph, node features the one-hot identity
(as in the GCN paper's karate demo), the labels of only `data.labelled_nodes` (default the two
leaders, 0 = Mr. Hi and 33 = the officer, and one member of each faction, 1 and 32) seen in
training; every other member is the test set.
"""

from __future__ import annotations

import ml_collections
import numpy as np

import dlx.data as data_lib
from dlx.errors import DlxError

NUM_NODES = 34
FACTIONS = ("Mr. Hi", "Officer")
# The undirected friendships (i < j), as in networkx.karate_club_graph().
EDGES = (
    (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7), (0, 8), (0, 10), (0, 11), (0, 12),
    (0, 13), (0, 17), (0, 19), (0, 21), (0, 31), (1, 2), (1, 3), (1, 7), (1, 13), (1, 17),
    (1, 19), (1, 21), (1, 30), (2, 3), (2, 7), (2, 8), (2, 9), (2, 13), (2, 27), (2, 28),
    (2, 32), (3, 7), (3, 12), (3, 13), (4, 6), (4, 10), (5, 6), (5, 10), (5, 16), (6, 16),
    (8, 30), (8, 32), (8, 33), (9, 33), (13, 33), (14, 32), (14, 33), (15, 32), (15, 33),
    (18, 32), (18, 33), (19, 33), (20, 32), (20, 33), (22, 32), (22, 33), (23, 25), (23, 27),
    (23, 29), (23, 32), (23, 33), (24, 25), (24, 27), (24, 31), (25, 31), (26, 29), (26, 33),
    (27, 33), (28, 31), (28, 33), (29, 32), (29, 33), (30, 32), (30, 33), (31, 32), (31, 33),
    (32, 33),
)
# The members who joined the officer's club after the split (faction 1); the rest followed Mr. Hi.
OFFICER_NODES = (9, 14, 15, 18, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33)
DEFAULT_LABELLED = (0, 1, 32, 33)


def labels() -> np.ndarray:
    """int32 (34,): 0 for Mr. Hi's faction, 1 for the officer's."""
    faction_N = np.zeros(NUM_NODES, np.int32)
    faction_N[list(OFFICER_NODES)] = 1
    return faction_N


def directed_edges() -> np.ndarray:
    """int32 (156, 2): every friendship both ways, as (sender, receiver) rows."""
    pairs_E2 = np.asarray(EDGES, np.int32)
    return np.concatenate([pairs_E2, pairs_E2[:, ::-1]])


def _labelled(data_config: ml_collections.ConfigDict) -> np.ndarray:
    nodes = tuple(data_config.get("labelled_nodes", DEFAULT_LABELLED))
    if (not nodes or len(set(nodes)) != len(nodes)
            or not all(isinstance(n, int) and 0 <= n < NUM_NODES for n in nodes)):
        raise DlxError(f"data.labelled_nodes={nodes!r}: expected distinct node ids in "
                       f"0..{NUM_NODES - 1}")
    mask_N = np.zeros(NUM_NODES, bool)
    mask_N[list(nodes)] = True
    return mask_N


def load(data_config: ml_collections.ConfigDict) -> data_lib.Splits:
    """Train and test are the same one graph (a batch of one): `x` float32 (1, 34, 34) identity,
    `edges` int32 (1, 156, 2), `edge_mask` (1, 156) and `node_mask` (1, 34) all True, `y` int32
    (1, 34); `label_mask` (1, 34) marks the labelled nodes in train and all others in test."""
    train_N = _labelled(data_config)
    graph = {"x": np.eye(NUM_NODES, dtype=np.float32)[None],
             "edges": directed_edges()[None],
             "edge_mask": np.ones((1, 2 * len(EDGES)), bool),
             "node_mask": np.ones((1, NUM_NODES), bool),
             "y": labels()[None]}
    return data_lib.Splits(train={**graph, "label_mask": train_N[None]},
                           test={**{k: v.copy() for k, v in graph.items()},
                                 "label_mask": ~train_N[None]},
                           num_classes=len(FACTIONS),
                           metadata={"class_names": FACTIONS, "graph_labels": "node"})
