"""Tasks for the graph models of `dlx.nn.gnn`: node classification and graph classification.

Both read a batch of B padded graphs: `x` (B, N, F), `edges` (B, E, 2), `edge_mask` (B, E),
`node_mask` (B, N) and labels `y`, plus the trainer's `mask` (B,) on evaluation batches (real
rows). Node classification's `y` is (B, N) and `label_mask` (B, N) marks the nodes whose labels
the split uses (the labelled nodes in train, the others in test); its loss is the mean
cross-entropy over those nodes and its accuracy is over them. Graph classification's `y` is (B,).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx import tasks
from dlx.errors import DlxError

GRAPH_FIELDS = ("x", "edges", "edge_mask", "node_mask")


def graph_inputs(batch: tasks.Batch) -> tuple[jax.Array, ...]:
    """The model inputs `(x_BNF, edges_BE2, edge_mask_BE, node_mask_BN)` of a graph batch."""
    return tuple(batch[name] for name in GRAPH_FIELDS)


def _rows_BN(batch: tasks.Batch, where_BN: jax.Array) -> jax.Array:
    """`where_BN` limited to real nodes of real rows."""
    real_BN = where_BN.astype(bool) & batch["node_mask"].astype(bool)
    where_B = batch.get("mask")
    return real_BN if where_B is None else real_BN & where_B[:, None]


@dataclasses.dataclass(frozen=True)
class _GraphTask:
    """Init, apply and summarize shared by both graph tasks."""
    model: nn.Module

    def init(self, rng: jax.Array, batch: tasks.Batch) -> tuple[Any, Any]:
        """(params, {}) for graphs shaped like `batch`'s."""
        return tasks.jitted_init(self.model, rng, *graph_inputs(batch), train=False), {}

    def logits(self, params, batch: tasks.Batch, rng: jax.Array, train: bool) -> jax.Array:
        """The model's logits: (B, N, C) per node or (B, C) per graph."""
        return self.model.apply({"params": params}, *graph_inputs(batch), train=train,
                                rngs={"dropout": rng})

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """`loss` and `accuracy` (per labelled node or per graph)."""
        return tasks.summarize(sums)


@dataclasses.dataclass(frozen=True)
class NodeClassification(_GraphTask):
    """Per-node softmax classification over the nodes `label_mask` marks (see the module doc).

    After training `write_artifacts` draws test graph 0 (its real nodes first, as the graph
    sources pad) coloured by predicted class, ringing the nodes that train graph 0 labels: the
    same graph in a transductive source such as `karate_club` (`graph.png`).
    """
    class_names: tuple[str, ...] = ()

    def loss(self, params, batch_stats, batch: tasks.Batch, rng: jax.Array, train: bool):
        """Mean cross-entropy over the split's labelled nodes; sums `loss`, `correct`, `count`."""
        logits_BNC = self.logits(params, batch, rng, train)
        loss, sums = tasks.prediction_sums(logits_BNC, batch["y"],
                                            _rows_BN(batch, batch["label_mask"]))
        return loss, (sums, batch_stats)

    def write_artifacts(self, params, splits, workdir) -> dict[str, str]:
        """Writes `graph.png` (test graph 0, predicted classes); returns `{name: file}`."""
        from dlx import graph_plot
        graph = {k: v[:1] for k, v in splits.test.items()}
        predict = jax.jit(lambda params, graph: self.logits(params, graph, jax.random.PRNGKey(0),
                                                            False).argmax(-1))
        predicted_BN = predict(params, graph)
        nodes = int(graph["node_mask"][0].sum())
        edges_M2 = graph["edges"][0][graph["edge_mask"][0]]
        labelled_N = splits.train["label_mask"][0][:nodes]
        true_N = graph["y"][0][:nodes]
        predicted_N = jax.device_get(predicted_BN[0])[:nodes]
        test_N = graph["label_mask"][0][:nodes]
        accuracy = float((predicted_N == true_N)[test_N].mean()) if test_N.any() else 0.0
        graph_plot.plot_node_classes(
            edges_M2, predicted_N, true_N, labelled_N, pathlib.Path(workdir) / "graph.png",
            f"predicted classes (test accuracy {100 * accuracy:.1f} %)", self.class_names)
        return {"graph": "graph.png"}


@dataclasses.dataclass(frozen=True)
class GraphClassification(_GraphTask):
    """Softmax classification of whole graphs: logits (B, C) against `y` (B,)."""

    def loss(self, params, batch_stats, batch: tasks.Batch, rng: jax.Array, train: bool):
        """Mean cross-entropy over real graphs; sums `loss`, `correct`, `count`."""
        logits_BC = self.logits(params, batch, rng, train)
        where_B = batch.get("mask")
        real_B = jnp.ones(batch["y"].shape, bool) if where_B is None else where_B
        loss, sums = tasks.prediction_sums(logits_BC, batch["y"], real_B)
        return loss, (sums, batch_stats)


def _require_graphs(config, metadata: dict, labels: str) -> None:
    """Refuses a source that is not a graph source with one label per `labels` (node, graph)."""
    found = metadata.get("graph_labels")
    if found != labels:
        what = f"labels per {found}" if found else "no graphs"
        raise DlxError(f"model.name={config.model.name!r} needs a graph source with one label "
                       f"per {labels} (data.name={config.data.name!r} has {what})")


def node_task(config, model: nn.Module, metadata: dict) -> NodeClassification:
    """The node-classification task of `model.name="gnn_node"` (a graph source with labels per
    node and `label_mask`)."""
    _require_graphs(config, metadata, "node")
    return NodeClassification(model, class_names=tuple(metadata.get("class_names", ())))


def graph_task(config, model: nn.Module, metadata: dict) -> GraphClassification:
    """The graph-classification task of `model.name="gnn_graph"` (one label per graph)."""
    _require_graphs(config, metadata, "graph")
    return GraphClassification(model)
