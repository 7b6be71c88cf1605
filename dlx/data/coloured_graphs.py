"""Generated graph classification where the edges matter: does a red node touch a blue one?

Each graph is a random connected graph (a random tree on `min_nodes`..`max_nodes` nodes plus up
to n / 2 extra edges) whose nodes are red, blue or green (probabilities `RED`, `BLUE`, rest
green); its label is 1 when some edge joins a red and a blue node. The node features (one-hot
colours) alone only hint at the label through the colour counts, so a model that ignores the
edges stays well below one that passes messages along them. Classes are balanced by drawing
graphs until each has half of the split. Everything is drawn from `data.seed`.
"""

from __future__ import annotations

import ml_collections
import numpy as np

import dlx.data as data_lib
from dlx.errors import DlxError

RED, BLUE = 0.17, 0.17  # Colour probabilities (green: the rest): about half the graphs positive.
NUM_COLOURS = 3
CLASS_NAMES = ("no red-blue edge", "red-blue edge")


def random_graph(rng: np.random.Generator, min_nodes: int, max_nodes: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(colours_N int in 0..2, undirected edges (M, 2) without repeats) of one random graph."""
    num_nodes = int(rng.integers(min_nodes, max_nodes + 1))
    edges = {(int(rng.integers(0, i)), i) for i in range(1, num_nodes)}
    for _ in range(int(rng.integers(0, num_nodes // 2 + 1))):
        i, j = sorted(int(v) for v in rng.choice(num_nodes, 2, replace=False))
        edges.add((i, j))
    colours_N = rng.choice(NUM_COLOURS, num_nodes, p=(RED, BLUE, 1 - RED - BLUE))
    return colours_N, np.asarray(sorted(edges), np.int32)


def has_red_blue_edge(colours_N: np.ndarray, edges_M2: np.ndarray) -> bool:
    """True when some edge joins a red (0) and a blue (1) node."""
    ends_M2 = np.sort(colours_N[edges_M2], axis=1)
    return bool(np.any((ends_M2[:, 0] == 0) & (ends_M2[:, 1] == 1)))


def _pad(graphs: list[tuple[np.ndarray, np.ndarray, int]], max_nodes: int
         ) -> dict[str, np.ndarray]:
    """Graphs -> `x` (G, N, 3), `edges` (G, E, 2) (both directions), `edge_mask` (G, E),
    `node_mask` (G, N), `y` (G,), padded to N = max_nodes and E = 2 (N - 1 + N // 2)."""
    max_edges = 2 * (max_nodes - 1 + max_nodes // 2)
    count = len(graphs)
    arrays = {"x": np.zeros((count, max_nodes, NUM_COLOURS), np.float32),
              "edges": np.zeros((count, max_edges, 2), np.int32),
              "edge_mask": np.zeros((count, max_edges), bool),
              "node_mask": np.zeros((count, max_nodes), bool),
              "y": np.zeros(count, np.int32)}
    for g, (colours_N, edges_M2, label) in enumerate(graphs):
        both_E2 = np.concatenate([edges_M2, edges_M2[:, ::-1]])
        arrays["x"][g, np.arange(len(colours_N)), colours_N] = 1.0
        arrays["edges"][g, :len(both_E2)] = both_E2
        arrays["edge_mask"][g, :len(both_E2)] = True
        arrays["node_mask"][g, :len(colours_N)] = True
        arrays["y"][g] = label
    return arrays


def generate(rng: np.random.Generator, count: int, min_nodes: int, max_nodes: int
             ) -> dict[str, np.ndarray]:
    """`count` graphs (half of each class, in random order), padded as `_pad`."""
    wanted = [count // 2, count - count // 2]
    graphs = []
    while any(wanted):
        colours_N, edges_M2 = random_graph(rng, min_nodes, max_nodes)
        label = int(has_red_blue_edge(colours_N, edges_M2))
        if wanted[label]:
            wanted[label] -= 1
            graphs.append((colours_N, edges_M2, label))
    order = rng.permutation(count)
    return _pad([graphs[i] for i in order], max_nodes)


def load(data_config: ml_collections.ConfigDict) -> data_lib.Splits:
    """`data.num_train` / `data.num_test` graphs of `data.min_nodes`..`data.max_nodes` nodes:
    `x` float32 (G, N, 3) one-hot colours, `edges` int32 (G, E, 2), `edge_mask` (G, E),
    `node_mask` (G, N), `y` int32 (G,)."""
    min_nodes, max_nodes = data_config.min_nodes, data_config.max_nodes
    if not 2 <= min_nodes <= max_nodes:
        raise DlxError(f"data.min_nodes={min_nodes}, data.max_nodes={max_nodes}: expected "
                       f"2 <= min_nodes <= max_nodes")
    if data_config.num_train < 2 or data_config.num_test < 2:
        raise DlxError(f"data.num_train={data_config.num_train}, data.num_test="
                       f"{data_config.num_test}: expected at least 2 graphs each")
    rng = np.random.default_rng(data_config.seed)
    train = generate(rng, data_config.num_train, min_nodes, max_nodes)
    test = generate(rng, data_config.num_test, min_nodes, max_nodes)
    return data_lib.Splits(train=train, test=test, num_classes=2,
                           metadata={"class_names": CLASS_NAMES, "graph_labels": "graph"})
