"""Graph neural networks on edge lists: GCN and GAT layers, a node and a graph classifier.

A batch of B graphs is padded to N nodes and E directed edges each: node features `x_BNF`,
edges `edges_BE2` (sender, receiver: a message flows from the sender to the receiver, so an
undirected graph lists each edge both ways), `edge_mask_BE` (real edges) and `node_mask_BN`
(real nodes). The layers work on the flat form (`flatten`): the B graphs as one graph of
V = B N nodes whose edges never cross graphs, aggregated with `jax.ops.segment_sum`. Padded
edges and edges touching a padded node carry no message, and padded nodes output zeros, so
padding never changes the outputs of real nodes.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.errors import DlxError

CONVS = ("gcn", "gat", "dense")  # "dense": node-wise layers that ignore the edges (a baseline).
READOUTS = ("mean", "sum")


class Graph(NamedTuple):
    """Flat edge list of V nodes: `senders_E`, `receivers_E` (node indices), `edge_mask_E` and
    `node_mask_V` (real edges and nodes)."""
    senders_E: jax.Array
    receivers_E: jax.Array
    edge_mask_E: jax.Array
    node_mask_V: jax.Array


def flatten(edges_BE2: jax.Array, edge_mask_BE: jax.Array, node_mask_BN: jax.Array) -> Graph:
    """B padded graphs of N nodes -> one `Graph` of V = B N nodes (graph b's node i is b N + i);
    an edge counts when it is real and joins two real nodes."""
    batch, num_nodes = node_mask_BN.shape
    if edges_BE2.ndim != 3 or edges_BE2.shape[::2] != (batch, 2):
        raise DlxError(f"edges must be (B, E, 2) with B={batch}, got shape {edges_BE2.shape}")
    offset_B1 = (jnp.arange(batch) * num_nodes)[:, None]
    senders_E = (edges_BE2[..., 0] + offset_B1).reshape(-1)
    receivers_E = (edges_BE2[..., 1] + offset_B1).reshape(-1)
    node_mask_V = jnp.asarray(node_mask_BN, bool).reshape(-1)
    edge_mask_E = (jnp.asarray(edge_mask_BE, bool).reshape(-1) & node_mask_V[senders_E]
                   & node_mask_V[receivers_E])
    return Graph(senders_E, receivers_E, edge_mask_E, node_mask_V)


def with_self_loops(graph: Graph) -> Graph:
    """`graph` with an edge i -> i appended for every node (E + V edges; real for real nodes)."""
    nodes_V = jnp.arange(graph.node_mask_V.shape[0], dtype=graph.senders_E.dtype)
    return Graph(jnp.concatenate([graph.senders_E, nodes_V]),
                 jnp.concatenate([graph.receivers_E, nodes_V]),
                 jnp.concatenate([graph.edge_mask_E, graph.node_mask_V]), graph.node_mask_V)


def edge_softmax(scores_EH: jax.Array, receivers_E: jax.Array, mask_E: jax.Array,
                 num_nodes: int) -> jax.Array:
    """Softmax of `scores_EH` over the real edges into each receiver (H heads); 0 on padded
    edges. Each receiver's maximum (`jax.ops.segment_max`) is subtracted first for stability."""
    masked_EH = jnp.where(mask_E[:, None], scores_EH, -jnp.inf)
    max_VH = jax.ops.segment_max(masked_EH, receivers_E, num_nodes)
    max_VH = jax.lax.stop_gradient(jnp.where(jnp.isfinite(max_VH), max_VH, 0.0))
    weights_EH = jnp.exp(masked_EH - max_VH[receivers_E])
    total_VH = jax.ops.segment_sum(weights_EH, receivers_E, num_nodes)
    return weights_EH / jnp.where(total_VH > 0, total_VH, 1.0)[receivers_E]


class GCNLayer(nn.Module):
    """Kipf & Welling's graph convolution H' = D^-1/2 (A + I) D^-1/2 H W + b: `h_VF` -> `h_VO`.

    A[r, s] counts the edges s -> r; D holds the row sums of A + I (in-degree + 1).
    """
    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, h_VF: jax.Array, graph: Graph) -> jax.Array:
        num_nodes = h_VF.shape[0]
        looped = with_self_loops(graph)
        weight_E = looped.edge_mask_E.astype(h_VF.dtype)
        degree_V = jax.ops.segment_sum(weight_E, looped.receivers_E, num_nodes)
        inv_sqrt_V = jnp.where(degree_V > 0, jax.lax.rsqrt(jnp.maximum(degree_V, 1.0)), 0.0)
        norm_E = weight_E * inv_sqrt_V[looped.senders_E] * inv_sqrt_V[looped.receivers_E]
        hw_VO = nn.Dense(self.features, use_bias=False,
                         kernel_init=nn.initializers.glorot_uniform(), name="linear")(h_VF)
        out_VO = jax.ops.segment_sum(norm_E[:, None] * hw_VO[looped.senders_E],
                                     looped.receivers_E, num_nodes)
        if self.use_bias:
            bias_O = self.param("bias", nn.initializers.zeros, (self.features,))
            out_VO = out_VO + bias_O[None, :]
        return out_VO * graph.node_mask_V[:, None].astype(out_VO.dtype)


class GATLayer(nn.Module):
    """Velickovic et al.'s graph attention: `h_VF` -> `h_VO` with O = heads x features when
    `concat`, else `features` (the heads averaged, as the paper's output layer).

    Head k scores edge s -> r as e = LeakyReLU_0.2(a_k . [W_k h_r || W_k h_s]), takes the
    softmax over r's incoming edges and r itself, and sums alpha W_k h_s. The coefficients
    (E + V, heads: the edges, then the self loops) are sown as `intermediates/attention`.
    `dropout` drops attention coefficients in training, as the paper does.
    """
    features: int
    heads: int = 1
    concat: bool = True
    negative_slope: float = 0.2
    dropout: float = 0.0

    @nn.compact
    def __call__(self, h_VF: jax.Array, graph: Graph, *, train: bool = False) -> jax.Array:
        num_nodes = h_VF.shape[0]
        glorot = nn.initializers.glorot_uniform()
        z_VHO = nn.DenseGeneral((self.heads, self.features), use_bias=False, kernel_init=glorot,
                                name="linear")(h_VF)
        # The attention vector a = [a_receiver || a_sender], one per head.
        a_receiver_HO = self.param("a_receiver", glorot, (self.heads, self.features))
        a_sender_HO = self.param("a_sender", glorot, (self.heads, self.features))
        looped = with_self_loops(graph)
        receiver_VH = (z_VHO * a_receiver_HO[None]).sum(-1)
        sender_VH = (z_VHO * a_sender_HO[None]).sum(-1)
        scores_EH = nn.leaky_relu(receiver_VH[looped.receivers_E] + sender_VH[looped.senders_E],
                                  self.negative_slope)
        alpha_EH = edge_softmax(scores_EH, looped.receivers_E, looped.edge_mask_E, num_nodes)
        self.sow("intermediates", "attention", alpha_EH)
        if self.dropout > 0:
            alpha_EH = nn.Dropout(self.dropout, deterministic=not train)(alpha_EH)
        out_VHO = jax.ops.segment_sum(alpha_EH[..., None] * z_VHO[looped.senders_E],
                                      looped.receivers_E, num_nodes)
        out_VO = (out_VHO.reshape(num_nodes, -1) if self.concat else out_VHO.mean(axis=1))
        bias_O = self.param("bias", nn.initializers.zeros, (out_VO.shape[-1],))
        out_VO = out_VO + bias_O[None, :]
        return out_VO * graph.node_mask_V[:, None].astype(out_VO.dtype)


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise DlxError(f"model.{key}={value!r} is not known; expected one of: {', '.join(choices)}")


class _Layer(nn.Module):
    """One message-passing layer of kind `conv` (`h_VF`, graph -> `h_VO`); a GAT hidden layer
    concatenates its heads, an output layer (`last`) averages them."""
    conv: str
    features: int
    heads: int = 1
    attention_dropout: float = 0.0
    last: bool = False

    @nn.compact
    def __call__(self, h_VF: jax.Array, graph: Graph, *, train: bool) -> jax.Array:
        if self.conv == "gcn":
            return GCNLayer(self.features)(h_VF, graph)
        if self.conv == "gat":
            return GATLayer(self.features, heads=self.heads, concat=not self.last,
                            dropout=self.attention_dropout)(h_VF, graph, train=train)
        out_VO = nn.Dense(self.features)(h_VF)
        return out_VO * graph.node_mask_V[:, None].astype(out_VO.dtype)


def _activation(conv: str):
    return nn.elu if conv == "gat" else nn.relu  # ELU as in the GAT paper, ReLU as in GCN's.


class NodeClassifier(nn.Module):
    """Two layers (`conv`: gcn, gat or dense) mapping `x_BNF` to per-node logits `logits_BNC`.

    GCN: Kipf & Welling's model (dropout, GCN `hidden`, ReLU, dropout, GCN C). GAT: the paper's
    (dropout, GAT `heads` x `hidden` concatenated, ELU, dropout, GAT with one head for C).
    """
    num_outputs: int
    conv: str = "gcn"
    hidden: int = 16
    heads: int = 8
    dropout: float = 0.5
    attention_dropout: float = 0.0

    @nn.compact
    def __call__(self, x_BNF: jax.Array, edges_BE2: jax.Array, edge_mask_BE: jax.Array,
                 node_mask_BN: jax.Array, *, train: bool = False) -> jax.Array:
        graph, h_VF = _flat_inputs(self.conv, x_BNF, edges_BE2, edge_mask_BE, node_mask_BN)
        batch, num_nodes = node_mask_BN.shape
        h_VF = nn.Dropout(self.dropout, deterministic=not train)(h_VF)
        h_VF = _Layer(self.conv, self.hidden, self.heads, self.attention_dropout)(
            h_VF, graph, train=train)
        h_VF = _activation(self.conv)(h_VF)
        h_VF = nn.Dropout(self.dropout, deterministic=not train)(h_VF)
        logits_VC = _Layer(self.conv, self.num_outputs, 1, self.attention_dropout, last=True)(
            h_VF, graph, train=train)
        return logits_VC.reshape(batch, num_nodes, self.num_outputs)


def _flat_inputs(conv: str, x_BNF: jax.Array, edges_BE2: jax.Array, edge_mask_BE: jax.Array,
                 node_mask_BN: jax.Array) -> tuple[Graph, jax.Array]:
    """(the flat `Graph`, node features h_VF (B N, F)) of a padded batch, once `conv` is checked."""
    _check_choice("conv", conv, CONVS)
    return flatten(edges_BE2, edge_mask_BE, node_mask_BN), x_BNF.reshape(-1, x_BNF.shape[-1])


def readout(h_BNF: jax.Array, node_mask_BN: jax.Array, kind: str) -> jax.Array:
    """Per-graph `h_BF`: the sum or mean of `h_BNF` over each graph's real nodes."""
    _check_choice("readout", kind, READOUTS)
    mask_BN1 = node_mask_BN[..., None].astype(h_BNF.dtype)
    total_BF = (h_BNF * mask_BN1).sum(axis=1)
    if kind == "sum":
        return total_BF
    return total_BF / jnp.maximum(mask_BN1.sum(axis=1), 1.0)


class GraphClassifier(nn.Module):
    """`num_layers` layers (`conv`) of width `hidden` with ReLU/ELU, a masked `readout` (mean or
    sum) per graph, then a dense layer: `x_BNF` -> `logits_BC`. With `conv="dense"` every node is
    transformed on its own, so the model sees only the multiset of node features (no edges)."""
    num_outputs: int
    conv: str = "gcn"
    hidden: int = 64
    num_layers: int = 3
    heads: int = 4
    readout: str = "sum"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x_BNF: jax.Array, edges_BE2: jax.Array, edge_mask_BE: jax.Array,
                 node_mask_BN: jax.Array, *, train: bool = False) -> jax.Array:
        graph, h_VF = _flat_inputs(self.conv, x_BNF, edges_BE2, edge_mask_BE, node_mask_BN)
        batch, num_nodes = node_mask_BN.shape
        if self.conv == "gat" and self.hidden % self.heads:
            raise DlxError(f"model.hidden={self.hidden} must be a multiple of model.heads="
                           f"{self.heads} (a GAT layer concatenates its heads)")
        width = self.hidden // self.heads if self.conv == "gat" else self.hidden
        for _ in range(self.num_layers):
            h_VF = _Layer(self.conv, width, self.heads)(h_VF, graph, train=train)
            h_VF = _activation(self.conv)(h_VF)
            h_VF = nn.Dropout(self.dropout, deterministic=not train)(h_VF)
        h_BF = readout(h_VF.reshape(batch, num_nodes, -1), node_mask_BN, self.readout)
        return nn.Dense(self.num_outputs)(h_BF)
