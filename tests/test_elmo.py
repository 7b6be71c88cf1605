"""ELMo's biLM: directional causality, padding, ScalarMix, context-dependent vectors that beat a
unigram model after training, and a shortened `elmo_bilm` run through the CLI."""

from __future__ import annotations

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import cli, tasks
from dlx.errors import DlxError
from dlx.nn.elmo import BiLM, ScalarMix, contextual_embeddings, flip_within_lengths
from conftest import REPO

KEY = jax.random.PRNGKey(0)
B, T, V, H = 2, 7, 23, 8
SMALL = BiLM(vocab_size=V, hidden_size=H, num_layers=2, dropout=0.0)


def _ids(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, shape).astype(np.int32)


@pytest.fixture(scope="module")
def params():
    return jax.jit(SMALL.init)(KEY, _ids(0, (B, T)))["params"]


@jax.jit
def _apply(params, ids_BT, lengths_B=None):
    return SMALL.apply({"params": params}, ids_BT, lengths_B)


def test_shapes_and_param_layout(params):
    forward_BTV, backward_BTV = _apply(params, _ids(1, (B, T)))
    chex.assert_shape([forward_BTV, backward_BTV], (B, T, V))
    assert set(params) == {"embedding", "output_bias", "forward_0", "forward_1", "backward_0",
                           "backward_1"}
    layers = SMALL.apply({"params": params}, _ids(1, (B, T)), method=BiLM.layers)
    chex.assert_shape(layers, (3, B, T, 2 * H))
    np.testing.assert_array_equal(layers[0, ..., :H], layers[0, ..., H:])


def test_forward_sees_only_the_past_and_backward_only_the_future(params):
    ids_BT = _ids(2, (B, T))
    forward_BTV, backward_BTV = _apply(params, ids_BT)
    for s in range(T):
        changed = ids_BT.copy()
        changed[:, s] = (changed[:, s] + 1) % V
        new_forward, new_backward = _apply(params, changed)
        np.testing.assert_array_equal(new_forward[:, :s], forward_BTV[:, :s])
        np.testing.assert_array_equal(new_backward[:, s + 1:], backward_BTV[:, s + 1:])
        # The dependence is real: position s itself sees token s in both directions.
        assert np.abs(new_forward[:, s] - forward_BTV[:, s]).max() > 1e-6
        assert np.abs(new_backward[:, s] - backward_BTV[:, s]).max() > 1e-6


def test_padding_is_invisible(params):
    ids_BT = _ids(3, (B, T))
    lengths_B = np.array([4, T], np.int32)
    padded = _apply(params, ids_BT, lengths_B)
    garbage = ids_BT.copy()
    garbage[0, 4:] = (garbage[0, 4:] + 5) % V
    for got, want in zip(_apply(params, garbage, lengths_B), padded):
        np.testing.assert_array_equal(got, want)
    alone = _apply(params, ids_BT[:1, :4])
    for got, want in zip(padded, alone):
        np.testing.assert_allclose(got[:1, :4], want, atol=1e-5)
    np.testing.assert_allclose(padded[1][1:], _apply(params, ids_BT[1:])[1], atol=1e-5)


def test_flip_within_lengths_reverses_real_steps_only():
    x_BT = jnp.array([[1, 2, 3, 0], [4, 5, 6, 7]])
    np.testing.assert_array_equal(flip_within_lengths(x_BT, jnp.array([3, 4])),
                                  [[3, 2, 1, 0], [7, 6, 5, 4]])


def test_scalar_mix_is_gamma_times_a_softmax_weighted_sum():
    layers_LBTD = jax.random.normal(KEY, (3, B, T, 4))
    mix = ScalarMix()
    init = mix.init(KEY, layers_LBTD)["params"]
    np.testing.assert_allclose(mix.apply({"params": init}, layers_LBTD), layers_LBTD.mean(0),
                               atol=1e-6)
    weights, gamma = jnp.array([0.5, -1.0, 2.0]), 1.7
    s = np.exp(weights) / np.exp(weights).sum()
    want = gamma * sum(s[j] * layers_LBTD[j] for j in range(3))
    got = mix.apply({"params": {"weights": weights, "gamma": jnp.array(gamma)}}, layers_LBTD)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_one_line_errors(params):
    with pytest.raises(DlxError, match="expected \\(batch, length\\)"):
        SMALL.apply({"params": params}, _ids(0, (T,)))
    with pytest.raises(DlxError, match="one per row"):
        SMALL.apply({"params": params}, _ids(0, (B, T)), jnp.array([1, 2, 3]))


# A toy language where "bank" (id BANK) has two senses, told apart by the words around it.
WORDS = ("[PAD] . the a man woman boy went walked ran sat fished rested to on bank of get "
         "deposit borrow money cash loans river stream lake").split()
ID = {w: i for i, w in enumerate(WORDS)}
SUBJECTS, MONEY_VERBS, MONEY = ["man", "woman", "boy"], ["went", "walked", "ran"], \
    ["money", "cash", "loans"]
RIVER_VERBS, WATER = ["sat", "fished", "rested"], ["river", "stream", "lake"]
MAX_LEN = 12


def _sentence(rng: np.random.Generator, sense: str) -> list[str]:
    """One sentence of the toy language with "bank" in `sense` ("money" or "river")."""
    head = [str(rng.choice(["the", "a"])), str(rng.choice(SUBJECTS))]
    if sense == "money":
        return head + [str(rng.choice(MONEY_VERBS)), "to", "the", "bank", "to",
                       str(rng.choice(["get", "deposit", "borrow"])), str(rng.choice(MONEY)), "."]
    return head + [str(rng.choice(RIVER_VERBS)), "on", "the", "bank", "of", "the",
                   str(rng.choice(WATER)), "."]


def _rows(sentences: list[list[str]]) -> dict[str, np.ndarray]:
    ids = np.zeros((len(sentences), MAX_LEN), np.int32)
    for i, words in enumerate(sentences):
        ids[i, :len(words)] = [ID[w] for w in words]
    return {"input_ids": ids, "attention_mask": ids != 0}


def _corpus(seed: int, n: int) -> tuple[dict[str, np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    senses = [str(rng.choice(["money", "river"])) for _ in range(n)]
    return _rows([_sentence(rng, sense) for sense in senses]), senses


@pytest.fixture(scope="module")
def trained():
    """(model, params) of a small BiLM after 300 Adam steps on 512 toy sentences."""
    model = BiLM(vocab_size=len(WORDS), hidden_size=32, num_layers=2, dropout=0.0)
    task = tasks.BiLM(model)
    train, _ = _corpus(0, 512)
    params, _ = task.init(KEY, {k: v[:8] for k, v in train.items()})
    optimizer = optax.adam(1e-2)

    @jax.jit
    def step(params, opt_state, batch):
        grads = jax.grad(lambda p: task.loss(p, {}, batch, KEY, True)[0])(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    opt_state = optimizer.init(params)
    for i in range(300):
        rows = np.random.default_rng(i).integers(0, 512, 32)
        params, opt_state = step(params, opt_state, {k: v[rows] for k, v in train.items()})
    return model, params


def test_bank_gets_different_vectors_in_different_contexts(trained):
    model, params = trained
    batch, senses = _corpus(1, 64)
    lengths_B = batch["attention_mask"].sum(1)
    at_bank = batch["input_ids"] == ID["bank"]
    vectors_ND = contextual_embeddings(model, params, batch["input_ids"], lengths_B)[at_bank]
    layers_LND = model.apply({"params": params}, batch["input_ids"], lengths_B,
                             method=BiLM.layers)[:, at_bank]
    # Layer 0 is context-free: every "bank" gets the same vector.
    np.testing.assert_array_equal(layers_LND[0], np.broadcast_to(layers_LND[0, :1],
                                                                 layers_LND[0].shape))
    unit_ND = vectors_ND / jnp.linalg.norm(vectors_ND, axis=-1, keepdims=True)
    cosine_NN = np.asarray(unit_ND @ unit_ND.T)
    money_N = np.array(senses) == "money"
    assert 10 < money_N.sum() < 54
    same_NN = money_N[:, None] == money_N[None, :]
    within = cosine_NN[same_NN & ~np.eye(len(money_N), dtype=bool)].mean()
    across = cosine_NN[~same_NN].mean()
    assert within > 0.9 and across < within - 0.2, (within, across)
    # Each sense's vectors are closer to their own sense's mean than to the other's.
    centroids_2D = np.stack([vectors_ND[money_N].mean(0), vectors_ND[~money_N].mean(0)])
    distances_N2 = np.linalg.norm(np.asarray(vectors_ND)[:, None] - centroids_2D[None], axis=-1)
    np.testing.assert_array_equal(distances_N2.argmin(1) == 0, money_N)


def test_trained_bilm_beats_the_unigram_model(trained):
    model, params = trained
    train, _ = _corpus(0, 512)
    held_out, _ = _corpus(2, 128)
    counts_V = np.bincount(train["input_ids"][train["attention_mask"]], minlength=len(WORDS))
    counts_V = (counts_V + 1.0)[1:]  # Add-one smoothed over the words, [PAD] (id 0) excluded.
    targets = held_out["input_ids"][:, 1:][held_out["attention_mask"][:, 1:]]
    unigram = float(np.exp(-np.log(counts_V / counts_V.sum())[targets - 1].mean()))
    _, (sums, _) = tasks.BiLM(model).loss(params, {}, held_out, KEY, False)
    metrics = tasks.BiLM(model).summarize(jax.device_get(sums))
    assert metrics["forward_perplexity"] < unigram / 3, (metrics, unigram)
    assert metrics["backward_perplexity"] < unigram / 3, (metrics, unigram)
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["loss"]))


def test_elmo_bilm_experiment_through_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = [" ".join(" ".join(_sentence(rng, str(rng.choice(["money", "river"]))))
                      for _ in range(rng.integers(2, 6))) for _ in range(80)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    argv = ["train", "--config", str(REPO / "experiments" / "elmo_bilm.py"),
            "--workdir", str(tmp_path / "run"), "--config.data.corpus=files",
            f"--config.data.files={corpus}", "--config.data.vocab_size=60",
            "--config.data.seq_len=16", "--config.model.hidden_size=16",
            "--config.train.steps=4", "--config.train.batch_size=8",
            "--config.train.eval_batch_size=16", "--config.train.log_every=2",
            "--config.train.eval_every=4", "--config.train.checkpoint_every=4",
            "--config.optim.warmup_steps=1"]
    assert cli.run(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["final_step"] == 4
    test = summary["eval"]["test"]
    for name in ("forward", "backward"):
        assert test[f"{name}_perplexity"] == pytest.approx(np.exp(test[f"{name}_loss"]))
        assert 0 <= test[f"{name}_accuracy"] <= 1
    assert test["loss"] == pytest.approx((test["forward_loss"] + test["backward_loss"]) / 2)
    assert set(summary["baseline"]["unigram"]) == {"loss", "perplexity", "accuracy"}
