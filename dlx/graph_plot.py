"""Drawing a graph with NumPy only: a force-directed layout and a node-class plot."""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

CLASS_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def spring_layout(edges_M2: np.ndarray, num_nodes: int, iterations: int = 300,
                  seed: int = 0) -> np.ndarray:
    """Fruchterman-Reingold positions (num_nodes, 2) in [-1, 1]^2 for the edges (M, 2):
    neighbours attract (d^2 / k), all pairs repel (k^2 / d), the step cools linearly."""
    rng = np.random.default_rng(seed)
    pos_N2 = rng.uniform(-1, 1, (num_nodes, 2))
    k = np.sqrt(4.0 / max(num_nodes, 1))
    adjacency_NN = np.zeros((num_nodes, num_nodes))
    adjacency_NN[edges_M2[:, 0], edges_M2[:, 1]] = 1.0
    adjacency_NN = np.maximum(adjacency_NN, adjacency_NN.T)
    for step in range(iterations):
        delta_NN2 = pos_N2[:, None, :] - pos_N2[None, :, :]
        distance_NN = np.maximum(np.linalg.norm(delta_NN2, axis=-1), 1e-3)
        force_NN = k ** 2 / distance_NN ** 2 - adjacency_NN * distance_NN / k
        np.fill_diagonal(force_NN, 0.0)
        move_N2 = (delta_NN2 * force_NN[..., None]).sum(axis=1)
        length_N1 = np.maximum(np.linalg.norm(move_N2, axis=-1, keepdims=True), 1e-9)
        temperature = 0.2 * (1 - step / iterations)
        pos_N2 = pos_N2 + move_N2 / length_N1 * np.minimum(length_N1, temperature)
    pos_N2 = pos_N2 - pos_N2.mean(axis=0)
    return pos_N2 / max(np.abs(pos_N2).max(), 1e-9)


def plot_node_classes(edges_M2: np.ndarray, predicted_N: np.ndarray, true_N: np.ndarray,
                      labelled_N: np.ndarray, path: pathlib.Path, title: str,
                      class_names: Sequence[str] = ()) -> None:
    """The graph with each node filled by its predicted class; nodes whose label was seen in
    training get a thick black ring, wrongly predicted nodes a dashed red one; a PNG at `path`."""
    from dlx.train import outputs
    num_nodes = len(predicted_N)
    pos_N2 = spring_layout(np.asarray(edges_M2), num_nodes)
    fig, ax = outputs.figure(size=(7, 6))
    for sender, receiver in np.asarray(edges_M2):
        ax.plot(*pos_N2[[sender, receiver]].T, color="0.75", linewidth=0.8, zorder=1)
    for c in np.unique(np.concatenate([predicted_N, true_N])):
        where_N = predicted_N == c
        name = class_names[c] if c < len(class_names) else f"class {c}"
        ax.scatter(*pos_N2[where_N].T, s=260, color=CLASS_COLOURS[c % len(CLASS_COLOURS)],
                   edgecolors="white", zorder=2, label=f"predicted {name}")
    ax.scatter(*pos_N2[labelled_N].T, s=420, facecolors="none", edgecolors="black",
               linewidths=2.5, zorder=3, label="labelled in training")
    wrong_N = predicted_N != true_N
    if wrong_N.any():
        ax.scatter(*pos_N2[wrong_N].T, s=330, facecolors="none", edgecolors="red",
                   linewidths=2, linestyles="--", zorder=4, label="wrong prediction")
    for node, (x, y) in enumerate(pos_N2):
        ax.annotate(str(node), (x, y), ha="center", va="center", fontsize=7, zorder=5)
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(fontsize="small", loc="best")
    outputs.save_figure(fig, path)
