"""Sequence to sequence: the reversal data, the encoder–decoder models (padding, causality, one
step at a time), greedy and beam-search decoding against references, and a short training run."""

import itertools
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import REPO
from dlx import cli, tasks
from dlx import nn as nn_lib
from dlx.data import reverse
from dlx.errors import DlxError
from dlx.nn import seq2seq

VOCAB = reverse.FIRST_SYMBOL + 6
IDS = dict(bos_id=reverse.BOS, eos_id=reverse.EOS, pad_id=reverse.PAD)


def _data_config(**settings) -> ml_collections.ConfigDict:
    values = dict(seed=0, num_train=300, num_test=100, num_symbols=6, min_length=2,
                  max_length=7) | settings
    return ml_collections.ConfigDict(values)


def _batch(rows: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    sources_NS = reverse.distinct_sources(rows, np.random.default_rng(seed), 6, 2, 7)
    return reverse.pairs(sources_NS)


MODELS = {
    "lstm_additive": seq2seq.Seq2Seq(VOCAB, 8, 12, "lstm", attention="additive",
                                     attention_dim=10),
    "gru_dot_2layers": seq2seq.Seq2Seq(VOCAB, 8, 12, "gru", num_layers=2, attention="dot"),
    "lstm_none_unidirectional": seq2seq.Seq2Seq(VOCAB, 8, 12, "lstm", bidirectional=False,
                                                attention="none"),
    "transformer": seq2seq.TransformerSeq2Seq(VOCAB, hidden_size=16, num_layers=2, num_heads=2,
                                              mlp_dim=32),
}


_JITTED = {}


def _jitted(model, method: str):
    """`model.apply(variables, *args, method=method)` compiled once per model, method and shapes."""
    if (model, method) not in _JITTED:
        _JITTED[model, method] = jax.jit(
            lambda variables, *args: model.apply(variables, *args, method=getattr(model, method)))
    return _JITTED[model, method]


def _init(model, batch):
    """Params of the model's shapes drawn from N(0, 0.5²) in NumPy: the properties tested hold
    for any weights, and this skips compiling the initialisers (orthogonal ones are slow)."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch["src"],
                            batch["src_lengths"], batch["tgt_in"])["params"]
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.5, s.shape), s.dtype), shapes)


def _forward(model, params, batch):
    return _jitted(model, "__call__")({"params": params}, batch["src"], batch["src_lengths"],
                                      batch["tgt_in"])


# --- Data -------------------------------------------------------------------------------------


def test_targets_are_the_reversed_sources_between_bos_and_eos():
    data = reverse.load(_data_config()).train
    n, steps = data["src"].shape
    assert steps == 7 and data["tgt_in"].shape == data["tgt_out"].shape == (n, 8)
    assert all(data[k].dtype == np.int32 for k in data)
    for src_S, length, tgt_in_T, tgt_out_T in zip(data["src"], data["src_lengths"],
                                                  data["tgt_in"], data["tgt_out"]):
        symbols = list(src_S[:length])
        assert 2 <= length <= 7 and min(symbols) >= reverse.FIRST_SYMBOL
        assert (src_S[length:] == reverse.PAD).all()
        assert list(tgt_out_T) == symbols[::-1] + [reverse.EOS] + [reverse.PAD] * (7 - length)
        assert list(tgt_in_T) == [reverse.BOS] + symbols[::-1] + [reverse.PAD] * (7 - length)
    np.testing.assert_array_equal(data["tgt_lengths"], data["src_lengths"] + 1)


def test_splits_are_deterministic_distinct_and_held_out():
    first, second = reverse.load(_data_config()), reverse.load(_data_config())
    for split in ("train", "test"):
        for key in first.train:
            np.testing.assert_array_equal(first.named(split)[key], second.named(split)[key])
    other = reverse.load(_data_config(seed=1))
    assert not np.array_equal(other.train["src"], first.train["src"])
    train = {tuple(row) for row in first.train["src"]}
    test = {tuple(row) for row in first.test["src"]}
    assert len(train) == 300 and len(test) == 100 and not train & test
    assert first.num_classes == VOCAB and first.metadata["seq2seq_ids"]["eos"] == reverse.EOS


def test_impossible_sizes_are_one_line_errors():
    with pytest.raises(DlxError, match="allow only 12"):  # 2 + 4 + ... sequences of length <= 3.
        reverse.load(_data_config(num_symbols=2, min_length=2, max_length=3, num_train=5,
                                  num_test=2))
    with pytest.raises(DlxError, match="min_length <= max_length"):
        reverse.load(_data_config(min_length=5, max_length=4))


# --- Models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_padding_is_ignored_decoding_is_causal_and_steps_equal_teacher_forcing(name):
    model, batch = MODELS[name], _batch()
    variables = {"params": _init(model, batch)}
    logits_BTV, attention_BTS = _forward(model, variables["params"], batch)
    # Source padding: three more padded steps, and junk symbols in every padded step.
    src_BS = np.concatenate([batch["src"], np.zeros((5, 3), np.int32)], axis=1)
    junk_BS = np.random.default_rng(1).integers(reverse.FIRST_SYMBOL, VOCAB, src_BS.shape)
    padded = dict(batch, src=np.where(src_BS == reverse.PAD, junk_BS, src_BS).astype(np.int32))
    padded_logits_BTV, padded_attention_BTS = _forward(model, variables["params"], padded)
    np.testing.assert_allclose(padded_logits_BTV, logits_BTV, atol=2e-5)
    np.testing.assert_allclose(padded_attention_BTS[:, :, :7], attention_BTS, atol=1e-6)
    real_BS = np.arange(10)[None, :] < batch["src_lengths"][:, None]
    assert np.abs(np.asarray(padded_attention_BTS) * ~real_BS[:, None, :]).max() == 0
    if model.__dict__.get("attention") != "none":
        np.testing.assert_allclose(np.asarray(attention_BTS).sum(-1), 1.0, atol=1e-5)
    shorter = dict(batch, src_lengths=np.maximum(batch["src_lengths"] - 1, 1))
    assert not np.allclose(_forward(model, variables["params"], shorter)[0], logits_BTV,
                           atol=1e-4)
    # Causality: a changed target token t leaves every earlier step's logits alone.
    for t in (1, 3, 6):
        changed = dict(batch, tgt_in=batch["tgt_in"].copy())
        changed["tgt_in"][:, t] = reverse.FIRST_SYMBOL + (changed["tgt_in"][:, t] + 1) % 6
        new_logits_BTV, _ = _forward(model, variables["params"], changed)
        np.testing.assert_allclose(new_logits_BTV[:, :t], logits_BTV[:, :t], atol=1e-6)
        assert np.abs(new_logits_BTV[:, t] - logits_BTV[:, t]).max() > 1e-4
    # One decoder step at a time gives the teacher-forced logits and attention.
    memory = _jitted(model, "encode")(variables, batch["src"], batch["src_lengths"])
    carry = model.apply(variables, memory, 8, method=model.init_carry)
    for t in range(8):
        logits_BV, attention_BS, carry = _jitted(model, "decode_step")(
            variables, memory, carry, batch["tgt_in"][:, t])
        np.testing.assert_allclose(logits_BV, logits_BTV[:, t], atol=1e-5)
        np.testing.assert_allclose(attention_BS, attention_BTS[:, t], atol=1e-6)


def test_bad_settings_and_inputs_are_one_line_errors():
    batch = _batch()
    with pytest.raises(DlxError, match="attention='luong' is unknown"):
        _init(seq2seq.Seq2Seq(VOCAB, attention="luong"), batch)
    with pytest.raises(DlxError, match="expected integer token ids"):
        _init(MODELS["lstm_additive"], dict(batch, src=batch["src"].astype(np.float32)))
    with pytest.raises(DlxError, match=r"expected \(B, T\) with the same B"):
        _init(MODELS["transformer"], dict(batch, tgt_in=batch["tgt_in"][:3]))


# --- Decoding ---------------------------------------------------------------------------------


def _reference_greedy(step, carry, batch: int, max_length: int):
    """Argmax decoding one step at a time in Python: `(token lists up to EOS, log-probs)`."""
    token_B = jnp.full((batch,), reverse.BOS, jnp.int32)
    outputs, scores = [[] for _ in range(batch)], np.zeros(batch)
    for _ in range(max_length):
        logits_BV, carry = step(carry, token_B)
        logp_BV = np.asarray(jax.nn.log_softmax(logits_BV))
        token_B = logp_BV.argmax(-1)
        for row, (out, token) in enumerate(zip(outputs, token_B)):
            if not out or out[-1] != reverse.EOS:
                out.append(int(token))
                scores[row] += logp_BV[row, token]
        token_B = jnp.asarray(token_B, jnp.int32)
    return outputs, scores


def _check_greedy_and_beam_of_one(outputs, greedy, beam):
    """Greedy results equal the reference `outputs`; beam search with K = 1 equals greedy."""
    (tokens_BL, lengths_B, scores_B), (reference, reference_scores) = greedy, outputs
    for tokens_L, length, out in zip(np.asarray(tokens_BL), np.asarray(lengths_B), reference):
        assert list(tokens_L[:length]) == out and (tokens_L[length:] == reverse.PAD).all()
    np.testing.assert_allclose(scores_B, reference_scores, rtol=1e-5)
    np.testing.assert_array_equal(beam[0], tokens_BL)
    np.testing.assert_array_equal(beam[1], lengths_B)
    np.testing.assert_allclose(beam[2], scores_B, rtol=1e-6)


def _table_step(logits_BVV):
    """A step function whose next-token logits depend only on the row and the previous token."""
    def step_fn(carry_BVV, token_B):
        return carry_BVV[jnp.arange(token_B.shape[0]), token_B], carry_BVV
    return step_fn, jnp.asarray(logits_BVV, jnp.float32)


def test_greedy_loop_equals_a_python_loop_and_beam_size_one():
    logits_BVV = np.random.default_rng(0).normal(size=(16, 6, 6)) * 2
    logits_BVV[:, :, reverse.EOS] += 0.5
    step_fn, carry = _table_step(logits_BVV)
    greedy = jax.jit(lambda c: seq2seq.greedy_loop(step_fn, c, 16, 6, **IDS))(carry)
    beam = jax.jit(lambda c: seq2seq.beam_loop(step_fn, c, 16, 6, beam_size=1, **IDS))(carry)
    reference = _reference_greedy(step_fn, carry, 16, 6)
    assert len({len(out) for out in reference[0]}) >= 3  # Rows end at different steps.
    _check_greedy_and_beam_of_one(reference, greedy, beam)


def test_greedy_decode_of_a_model_equals_a_python_loop_and_beam_size_one():
    model, batch = MODELS["lstm_additive"], _batch(seed=2)
    variables = {"params": _init(model, batch)}
    memory = _jitted(model, "encode")(variables, batch["src"], batch["src_lengths"])
    carry = model.apply(variables, memory, 8, method=model.init_carry)
    step = lambda carry, token_B: (lambda out: (out[0], out[2]))(
        _jitted(model, "decode_step")(variables, memory, carry, token_B))
    greedy = seq2seq.greedy_decode(model, variables["params"], batch["src"],
                                   batch["src_lengths"], max_length=8, **IDS)
    beam = seq2seq.beam_search(model, variables["params"], batch["src"], batch["src_lengths"],
                               max_length=8, beam_size=1, **IDS)
    _check_greedy_and_beam_of_one(_reference_greedy(step, carry, 5, 8), greedy, beam)


def _score(logp_VV, sequence, alpha):
    logp = sum(logp_VV[prev, token] for prev, token in zip([reverse.BOS] + sequence, sequence))
    return logp / ((5 + len(sequence)) / 6) ** alpha


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_a_wide_beam_finds_the_best_sequence_of_a_brute_force_search(alpha):
    vocab, length = 4, 3
    logits_BVV = np.random.default_rng(3).normal(size=(8, vocab, vocab)) * 2
    step_fn, carry = _table_step(logits_BVV)
    tokens_BL, lengths_B, scores_B = jax.jit(
        lambda c: seq2seq.beam_loop(step_fn, c, 8, length, beam_size=vocab ** length,
                                    length_penalty=alpha, **IDS))(carry)
    for row in range(8):
        logp_VV = np.asarray(jax.nn.log_softmax(logits_BVV[row]))
        finished = [list(body) + [reverse.EOS] for n in range(length)
                    for body in itertools.product(
                        [v for v in range(vocab) if v != reverse.EOS], repeat=n)]
        best = max(finished, key=lambda seq: _score(logp_VV, seq, alpha))
        assert list(np.asarray(tokens_BL[row])[:lengths_B[row]]) == best
        np.testing.assert_allclose(scores_B[row], _score(logp_VV, best, alpha), rtol=1e-5)


def test_beam_search_beats_greedy_where_the_first_choice_misleads():
    # From BOS, a (p 0.6) beats b (p 0.4); after a every token is equally likely, after b
    # EOS is almost certain. Greedy takes a; the beam keeps b and ends with a likelier sequence.
    a, b, vocab = 3, 4, 5
    probs_VV = np.full((vocab, vocab), 1e-6)
    probs_VV[reverse.BOS, [a, b]] = [0.6, 0.4]
    probs_VV[a] = 1.0 / vocab
    probs_VV[b, reverse.EOS] = 1.0
    probs_VV[reverse.EOS, reverse.EOS] = 1.0
    step_fn, carry = _table_step(np.log(probs_VV)[None])
    greedy = seq2seq.greedy_loop(step_fn, carry, 1, 4, **IDS)
    beam = seq2seq.beam_loop(step_fn, carry, 1, 4, beam_size=2, **IDS)
    assert list(np.asarray(beam[0][0])) == [b, reverse.EOS, reverse.PAD, reverse.PAD]
    assert int(beam[1][0]) == 2 and np.asarray(greedy[0][0])[0] == a
    assert float(beam[2][0]) > float(greedy[2][0]) + 0.5
    np.testing.assert_allclose(beam[2][0], np.log(0.4), atol=1e-4)


def test_beam_search_of_a_model_reports_the_log_probability_of_its_output():
    model, batch = MODELS["lstm_additive"], _batch(seed=4)
    params = _init(model, batch)
    tokens_BL, lengths_B, scores_B = seq2seq.beam_search(
        model, params, batch["src"], batch["src_lengths"], max_length=8, beam_size=3,
        length_penalty=0.5, **IDS)
    # The beams' decoder states were reordered correctly if teacher forcing scores the output
    # as the search did.
    tgt_in = np.concatenate([np.full((5, 1), reverse.BOS), np.asarray(tokens_BL)[:, :-1]], 1)
    logits_BTV, _ = _forward(model, params, dict(batch, tgt_in=tgt_in.astype(np.int32)))
    logp_BT = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits_BTV)),
                                 np.asarray(tokens_BL)[:, :, None], axis=2)[:, :, 0]
    real_BT = np.arange(8)[None, :] < np.asarray(lengths_B)[:, None]
    expected_B = (logp_BT * real_BT).sum(1) / seq2seq.length_penalty_of(lengths_B, 0.5)
    np.testing.assert_allclose(scores_B, expected_B, rtol=1e-5)
    with pytest.raises(DlxError, match="beam_size=0"):
        seq2seq.beam_search(model, params, batch["src"], batch["src_lengths"], max_length=8,
                            beam_size=0, **IDS)


# --- Task, registry and the experiment --------------------------------------------------------


def test_task_counts_exact_matches_of_greedy_decoding_on_real_rows():
    model, batch = MODELS["lstm_additive"], _batch(seed=5)
    task = tasks.Seq2Seq(model, pad_id=reverse.PAD, bos_id=reverse.BOS, eos_id=reverse.EOS)
    params = _init(model, batch)
    bias = params["output"]["bias"]  # Favour EOS, so that greedy outputs end within 8 steps.
    params["output"]["bias"] = bias.at[reverse.EOS].set(bias.max() + 3)
    tokens_BL, _, _ = seq2seq.greedy_decode(model, params, batch["src"], batch["src_lengths"],
                                            max_length=8, **IDS)
    # Rows 0-2 ask for what greedy decoding says, so they match exactly; row 4 is padding.
    tgt_out = batch["tgt_out"].copy()
    tgt_out[:3] = np.asarray(tokens_BL)[:3]
    tgt_out[:3, -1] = np.where((tgt_out[:3] == reverse.EOS).any(1), tgt_out[:3, -1], reverse.EOS)
    real_B = np.arange(5) < 4
    evaluated = dict(batch, tgt_out=tgt_out, mask=real_B)
    loss = jax.jit(lambda b, train: task.loss(params, {}, b, jax.random.PRNGKey(1), train)[1][0],
                   static_argnums=1)
    sums = loss(evaluated, False)
    expected = sum(list(tokens_BL[i]) == list(tgt_out[i]) for i in range(3))
    assert expected > 0 and float(sums["exact"]) == expected and float(sums["sequences"]) == 4
    assert float(sums["count"]) == float(((tgt_out != reverse.PAD) & real_B[:, None]).sum())
    assert "exact" not in loss(batch, True)
    means = task.summarize({k: float(v) for k, v in sums.items()})
    assert means["exact_match"] == expected / 4


def test_registry_builds_both_models_and_the_task_needs_pair_data():
    config = ml_collections.ConfigDict({
        "name": "seq2seq", "cell_type": "gru", "embed_dim": 8, "hidden_size": 12,
        "num_layers": 1, "bidirectional": True, "attention": "dot", "attention_dim": 8,
        "dropout": 0.0})
    model = nn_lib.build(config, num_outputs=VOCAB)
    assert isinstance(model, seq2seq.Seq2Seq) and model.attention == "dot"
    transformer = nn_lib.build(ml_collections.ConfigDict({
        "name": "seq2seq_transformer", "hidden_size": 16, "num_layers": 1, "num_heads": 2,
        "mlp_dim": 32, "dropout": 0.1}), num_outputs=VOCAB)
    assert isinstance(transformer, seq2seq.TransformerSeq2Seq)
    del config.attention
    with pytest.raises(DlxError, match="needs the key model.*attention"):
        nn_lib.build(config, num_outputs=VOCAB)
    run_config = ml_collections.ConfigDict({"model": {"name": "seq2seq"},
                                            "data": {"name": "mnist1d", "augment": ""}})
    with pytest.raises(DlxError, match="set data.name='reverse'"):
        tasks.build(run_config, model, {})


@pytest.mark.slow(26)
def test_short_reversal_run_learns_resumes_and_plots_attention(tmp_path, capsys):
    args = ["train", "--config", str(REPO / "experiments" / "seq2seq_reverse.py"),
            "--workdir", str(tmp_path), "--config.data.max_length=8",
            "--config.data.num_train=4000", "--config.data.num_test=200",
            "--config.model.hidden_size=64", "--config.train.eval_every=150",
            "--config.train.log_every=50", "--config.train.checkpoint_every=150"]
    assert cli.run(args + ["--config.train.steps=150"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli.run(args + ["--config.train.steps=300"]) == 0
    captured = capsys.readouterr()
    assert "resuming seq2seq_reverse from checkpoint at step 150" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["final_step"] == 300
    test = summary["eval"]["test"]
    assert first["final_step"] == 150 and "exact_match" in first["eval"]["test"]
    assert test["exact_match"] > 0.9 and test["accuracy"] > 0.95  # Chance: < 1e-5 a sequence.
    assert summary["artifacts"] == {"attention": "attention.png"}
    assert (tmp_path / "attention.png").read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(50, 301, 50))
    assert "eval_test_exact_match" in rows[-1]
