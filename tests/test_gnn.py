"""GCN/GAT layers against dense NumPy references, symmetry, padding and gradients, the graph data
sources, and a short `gcn_karate` run that learns, resumes and draws its graph."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import cli, graph_tasks
from dlx.data import coloured_graphs, karate
from dlx.errors import DlxError
from dlx.nn import gnn

from conftest import REPO


def random_graph(seed: int, num_nodes: int, num_edges: int, features: int = 5):
    """(h_VF, senders_E, receivers_E) of a random directed graph without repeats or self loops."""
    rng = np.random.default_rng(seed)
    pairs = [(s, r) for s in range(num_nodes) for r in range(num_nodes) if s != r]
    chosen = rng.choice(len(pairs), num_edges, replace=False)
    senders_E, receivers_E = np.asarray([pairs[i] for i in chosen], np.int32).T
    return rng.normal(size=(num_nodes, features)).astype(np.float32), senders_E, receivers_E


def flat_graph(senders_E, receivers_E, num_nodes, edge_mask_E=None, node_mask_V=None):
    edge_mask_E = np.ones(len(senders_E), bool) if edge_mask_E is None else edge_mask_E
    node_mask_V = np.ones(num_nodes, bool) if node_mask_V is None else node_mask_V
    return gnn.flatten(np.stack([senders_E, receivers_E], -1)[None], edge_mask_E[None],
                       node_mask_V[None])


def dense_adjacency_with_loops(senders_E, receivers_E, mask_E, node_mask_V):
    """Â = A + I over real nodes, A[r, s] = 1 for each real edge s -> r between real nodes."""
    num_nodes = len(node_mask_V)
    a_VV = np.zeros((num_nodes, num_nodes))
    for s, r, real in zip(senders_E, receivers_E, mask_E):
        if real and node_mask_V[s] and node_mask_V[r]:
            a_VV[r, s] += 1
    return a_VV + np.diag(node_mask_V.astype(float))


def test_gcn_layer_equals_dense_reference_with_padding():
    h_VF, senders_E, receivers_E = random_graph(0, num_nodes=9, num_edges=20)
    edge_mask_E = np.arange(20) < 17  # The last 3 edges are padding.
    node_mask_V = np.arange(9) < 8  # Node 8 is padding; real edges into it must be ignored.
    graph = flat_graph(senders_E, receivers_E, 9, edge_mask_E, node_mask_V)
    layer = gnn.GCNLayer(4)
    params = jax.jit(layer.init)(jax.random.PRNGKey(0), h_VF, graph)
    params = jax.tree.map(lambda p: p + 0.1, params)  # A non-zero bias.
    out_VO = np.asarray(jax.jit(layer.apply)(params, h_VF, graph))

    a_hat_VV = dense_adjacency_with_loops(senders_E, receivers_E, edge_mask_E, node_mask_V)
    degree_V = a_hat_VV.sum(1)
    inv_sqrt_V = np.where(degree_V > 0, 1 / np.sqrt(np.maximum(degree_V, 1)), 0)
    w_FO, b_O = (np.asarray(params["params"]["linear"]["kernel"]),
                 np.asarray(params["params"]["bias"]))
    expected_VO = (inv_sqrt_V[:, None] * a_hat_VV * inv_sqrt_V[None, :]) @ h_VF @ w_FO + b_O
    expected_VO[~node_mask_V] = 0.0
    np.testing.assert_allclose(out_VO, expected_VO, rtol=1e-5, atol=1e-5)


def dense_gat(params, h_VF, a_hat_VV, slope=0.2):
    """(out_V(HO), alpha_HVV) of a GAT layer with concatenated heads, computed densely."""
    p = params["params"]
    z_VHO = np.einsum("vf,fho->vho", h_VF, np.asarray(p["linear"]["kernel"]))
    receiver_VH = np.einsum("vho,ho->vh", z_VHO, np.asarray(p["a_receiver"]))
    sender_VH = np.einsum("vho,ho->vh", z_VHO, np.asarray(p["a_sender"]))
    scores_HVV = receiver_VH.T[:, :, None] + sender_VH.T[:, None, :]  # [k, r, s]
    scores_HVV = np.where(scores_HVV > 0, scores_HVV, slope * scores_HVV)
    scores_HVV = np.where(a_hat_VV[None] > 0, scores_HVV, -np.inf)
    exp_HVV = np.exp(scores_HVV - scores_HVV.max(-1, keepdims=True))
    alpha_HVV = exp_HVV / exp_HVV.sum(-1, keepdims=True)
    out_VHO = np.einsum("krs,sko->rko", alpha_HVV, z_VHO)
    return out_VHO.reshape(len(h_VF), -1) + np.asarray(p["bias"]), alpha_HVV


def test_gat_attention_sums_to_one_and_equals_dense_reference():
    h_VF, senders_E, receivers_E = random_graph(1, num_nodes=8, num_edges=18)
    graph = flat_graph(senders_E, receivers_E, 8)
    layer = gnn.GATLayer(3, heads=2)
    params = jax.jit(layer.init)(jax.random.PRNGKey(1), h_VF, graph)
    out_VO, state = jax.jit(functools.partial(layer.apply, mutable=["intermediates"]))(
        params, h_VF, graph)
    alpha_EH = np.asarray(state["intermediates"]["attention"][0])
    looped = gnn.with_self_loops(graph)
    sums_VH = np.asarray(jax.ops.segment_sum(alpha_EH, looped.receivers_E, 8))
    np.testing.assert_allclose(sums_VH, 1.0, rtol=1e-5)

    a_hat_VV = dense_adjacency_with_loops(senders_E, receivers_E, np.ones(18, bool),
                                          np.ones(8, bool))
    expected_VO, alpha_HVV = dense_gat(params, h_VF, a_hat_VV)
    np.testing.assert_allclose(np.asarray(out_VO), expected_VO, rtol=1e-5, atol=1e-5)
    edge_alpha_EH = alpha_HVV[:, np.asarray(looped.receivers_E), np.asarray(looped.senders_E)].T
    np.testing.assert_allclose(alpha_EH, edge_alpha_EH, rtol=1e-5, atol=1e-6)


def batch_of(graphs, num_nodes, num_edges, features=5):
    """Pads [(h_VF, senders_E, receivers_E)] into the (B, N, F) / (B, E, 2) model inputs, with
    random features on padded nodes and random endpoints on padded edges."""
    rng = np.random.default_rng(7)
    x_BNF = rng.normal(size=(len(graphs), num_nodes, features)).astype(np.float32)
    edges_BE2 = rng.integers(0, num_nodes, (len(graphs), num_edges, 2)).astype(np.int32)
    edge_mask_BE = np.zeros((len(graphs), num_edges), bool)
    node_mask_BN = np.zeros((len(graphs), num_nodes), bool)
    for b, (h_VF, senders_E, receivers_E) in enumerate(graphs):
        x_BNF[b, :len(h_VF)] = h_VF
        edges_BE2[b, :len(senders_E)] = np.stack([senders_E, receivers_E], -1)
        edge_mask_BE[b, :len(senders_E)] = True
        node_mask_BN[b, :len(h_VF)] = True
    return x_BNF, edges_BE2, edge_mask_BE, node_mask_BN


MODELS = {"gat_nodes": gnn.NodeClassifier(3, conv="gat", hidden=4, heads=2),
          "gcn_graphs": gnn.GraphClassifier(2, conv="gcn", hidden=8, num_layers=2)}
EMPTY_GRAPH = (np.zeros((0, 5), np.float32), np.zeros(0, np.int32), np.zeros(0, np.int32))


@pytest.mark.parametrize("name", list(MODELS))
def test_permutation_equivariance_padding_and_finite_gradients(name):
    model = MODELS[name]
    graph_a = random_graph(2, num_nodes=7, num_edges=16)
    graph_b = random_graph(3, num_nodes=5, num_edges=9)
    perm = np.random.default_rng(4).permutation(7)  # New node j is old node perm[j].
    inverse = np.argsort(perm)
    edge_order = np.random.default_rng(5).permutation(16)
    permuted_a = (graph_a[0][perm], inverse[graph_a[1]][edge_order],
                  inverse[graph_a[2]][edge_order])
    exact = batch_of([graph_a], num_nodes=7, num_edges=16)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), *exact)
    alone = np.asarray(jax.jit(model.apply)(params, *exact))[0]
    # Padded to 10 nodes and 24 edges (garbage features and endpoints) and batched with
    # others, graph a keeps its outputs; padded nodes output zeros. The last row is all padding.
    padded_inputs = batch_of([graph_a, permuted_a, graph_b, EMPTY_GRAPH], num_nodes=10,
                             num_edges=24)

    def squared_sum(params):
        out = model.apply(params, *padded_inputs)
        return jnp.sum(out ** 2), out

    # One compile gives the outputs and their gradients.
    (_, padded), grads = jax.jit(jax.value_and_grad(squared_sum, has_aux=True))(params)
    padded = np.asarray(padded)
    if padded.ndim == 3:  # Node logits follow the nodes; graph logits do not move.
        np.testing.assert_allclose(padded[0, :7], alone, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(padded[1, :7], alone[perm], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(padded[:, 7:], 0.0)
        np.testing.assert_array_equal(padded[3], 0.0)
    else:
        np.testing.assert_allclose(padded[:2], np.stack([alone, alone]), rtol=1e-5, atol=1e-5)
    assert not np.allclose(padded[2].reshape(-1)[:2], padded[0].reshape(-1)[:2])
    leaves = jax.tree.leaves(grads)
    assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
    assert any(np.abs(np.asarray(g)).max() > 0 for g in leaves)


def test_readout_is_a_masked_sum_or_mean():
    h_BNF = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    node_mask_BN = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_allclose(gnn.readout(h_BNF, node_mask_BN, "sum"), [[2, 4], [0, 0]])
    np.testing.assert_allclose(gnn.readout(h_BNF, node_mask_BN, "mean"), [[1, 2], [0, 0]])
    with pytest.raises(DlxError, match="readout"):
        gnn.readout(h_BNF, node_mask_BN, "max")


def karate_batch(labelled: tuple[int, ...] = karate.DEFAULT_LABELLED):
    import ml_collections
    splits = karate.load(ml_collections.ConfigDict({"labelled_nodes": labelled}))
    return splits


def test_karate_club_matches_networkx():
    nx = pytest.importorskip("networkx")
    graph = nx.karate_club_graph()
    assert sorted(tuple(sorted(e)) for e in graph.edges()) == sorted(karate.EDGES)
    factions = [karate.FACTIONS.index(graph.nodes[i]["club"]) for i in range(34)]
    np.testing.assert_array_equal(karate.labels(), factions)


def test_karate_splits_and_bad_labelled_nodes():
    splits = karate_batch()
    assert splits.train["x"].shape == (1, 34, 34) and splits.train["edges"].shape == (1, 156, 2)
    assert np.flatnonzero(splits.train["label_mask"][0]).tolist() == [0, 1, 32, 33]
    assert splits.test["label_mask"].sum() == 30
    assert not (splits.train["label_mask"] & splits.test["label_mask"]).any()
    with pytest.raises(DlxError, match="labelled_nodes"):
        karate_batch((0, 34))
    import ml_collections
    config = ml_collections.ConfigDict({"model": {"name": "gnn_graph"},
                                        "data": {"name": "karate_club"}})
    with pytest.raises(DlxError, match="one label per graph .* has labels per node"):
        graph_tasks.graph_task(config, None, splits.metadata)


def test_coloured_graphs_labels_balance_and_seed():
    import ml_collections
    config = ml_collections.ConfigDict({"seed": 3, "num_train": 40, "num_test": 10,
                                        "min_nodes": 4, "max_nodes": 9})
    splits = coloured_graphs.load(config)
    train = splits.train
    assert train["x"].shape == (40, 9, 3) and train["edges"].shape == (40, 24, 2)
    assert np.bincount(train["y"]).tolist() == [20, 20]
    for g in range(40):
        nodes = int(train["node_mask"][g].sum())
        colours_N = train["x"][g, :nodes].argmax(-1)
        edges_M2 = train["edges"][g][train["edge_mask"][g]]
        assert 4 <= nodes <= 9 and edges_M2.max() < nodes
        assert coloured_graphs.has_red_blue_edge(colours_N, edges_M2) == bool(train["y"][g])
    again = coloured_graphs.load(config)
    np.testing.assert_array_equal(again.test["edges"], splits.test["edges"])
    with pytest.raises(DlxError, match="min_nodes"):
        coloured_graphs.load(ml_collections.ConfigDict({**config.to_dict(), "min_nodes": 12}))


def test_short_gcn_karate_run_learns_resumes_and_draws_the_graph(tmp_path, capsys):
    args = ["train", "--config", str(REPO / "experiments" / "gcn_karate.py"),
            "--workdir", str(tmp_path), "--config.train.eval_every=20",
            "--config.train.log_every=20", "--config.train.checkpoint_every=20"]
    assert cli.run(args + ["--config.train.steps=20"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli.run(args + ["--config.train.steps=40"]) == 0
    captured = capsys.readouterr()
    assert "resuming gcn_karate from checkpoint at step 20" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert first["final_step"] == 20 and summary["final_step"] == 40
    assert summary["eval"]["test"]["accuracy"] >= 0.9  # 27 of the 30 unlabelled members.
    assert summary["artifacts"] == {"graph": "graph.png"}
    assert (tmp_path / "graph.png").read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [20, 40]
    assert rows[1]["train_loss"] < 0.5 * rows[0]["train_loss"]  # The loss falls.
