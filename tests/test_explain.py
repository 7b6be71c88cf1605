"""Attributions: gradient×input and integrated gradients (exact on linear models, complete on
MLPs, CNNs and BERT's embeddings, convergent in the steps), attention maps, plots, `dlx explain`."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import cli, explain
from dlx.errors import DlxError
from dlx.nn.attention import MultiHeadAttention
from dlx.nn.bert import BertConfig, BertTextClassifier
from dlx.nn.cnn import SimpleCNN
from dlx.nn.mlp import MLP

from conftest import MLP_CONFIG

KEY = jax.random.PRNGKey(0)


def model_fn(module, x):
    """(fn, x as float32): `fn(x_B...) -> logits` of `module` initialised on `x`, with random
    biases: with zero biases a ReLU network is positively homogeneous, f(x) = x·∇f(x), and
    gradient×input would be complete too."""
    x = jnp.asarray(x, jnp.float32)
    variables = jax.jit(module.init)(KEY, x)
    rng = np.random.default_rng(9)  # NumPy: jax.random would compile once per bias shape.
    variables = jax.tree.map(
        lambda v: v + 0.3 * rng.normal(size=v.shape).astype(np.float32) if v.ndim == 1 else v,
        variables)
    return jax.jit(lambda x_B: module.apply(variables, x_B)), x


@pytest.fixture(scope="module")
def linear():
    w_FC = jax.random.normal(KEY, (6, 3))
    b_C = jnp.array([0.5, -1.0, 2.0])
    x_BF = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    return (lambda x_BF: x_BF @ w_FC + b_C[None]), w_FC, x_BF


@pytest.fixture(scope="module")
def mlp():
    x_BF = jax.random.normal(jax.random.PRNGKey(2), (8, 40))
    return model_fn(MLP(features=(32, 32), num_outputs=10), x_BF)


@pytest.fixture(scope="module")
def cnn():
    x_BHW = jax.random.uniform(jax.random.PRNGKey(3), (4, 8, 8))
    return model_fn(SimpleCNN(num_outputs=10, dropout=0.0, hidden=32), x_BHW)


def test_gradient_x_input_is_x_times_the_gradient_on_a_linear_model(linear):
    fn, w_FC, x_BF = linear
    target_B = jnp.array([0, 1, 2, 1])
    got = explain.gradient_x_input(fn, x_BF, target_B)
    for b in range(4):
        grad_F = jax.grad(lambda x_F: fn(x_F[None])[0, target_B[b]])(x_BF[b])
        np.testing.assert_allclose(got[b], x_BF[b] * grad_F, rtol=1e-6)
    np.testing.assert_allclose(got, x_BF * w_FC[:, target_B].T, rtol=1e-6)


@pytest.mark.parametrize("method", explain.IG_METHODS)
def test_integrated_gradients_equal_gradient_x_input_on_a_linear_model(linear, method):
    fn, w_FC, x_BF = linear
    ig = explain.integrated_gradients(fn, x_BF, 2, steps=3, method=method)
    np.testing.assert_allclose(ig, explain.gradient_x_input(fn, x_BF, 2), rtol=1e-5, atol=1e-6)
    baseline_F = jnp.linspace(-1, 1, 6)
    shifted = explain.integrated_gradients(fn, x_BF, 2, baseline=baseline_F, steps=3,
                                           method=method)
    np.testing.assert_allclose(shifted, (x_BF - baseline_F[None]) * w_FC[:, 2][None],
                               rtol=1e-5, atol=1e-6)


def predicted(fn, x):
    return np.asarray(fn(x).argmax(-1))


@pytest.mark.parametrize("network", ["mlp", "cnn"])
@pytest.mark.parametrize("baseline", ["zeros", "noise"])
def test_integrated_gradients_are_complete_within_one_percent(network, baseline, request):
    fn, x = request.getfixturevalue(network)
    base = (jnp.zeros_like(x) if baseline == "zeros"
            else 0.3 * jax.random.normal(KEY, x.shape[1:])[None])
    # The class whose logit moves most from the baseline, so the relative gap means something.
    target_B = np.asarray(jnp.abs(fn(x) - fn(jnp.broadcast_to(base, x.shape))).argmax(-1))
    ig = explain.integrated_gradients(fn, x, target_B, baseline=base, steps=256)
    check = explain.completeness(fn, x, ig, target_B, baseline=base)
    assert ig.shape == x.shape
    assert np.all(np.abs(check.delta) > 0.1)
    assert check.gap.max() < 0.01, check.gap
    np.testing.assert_array_equal(check.gap, explain.completeness_gap(fn, x, ig, target_B, base))
    # Gradient×input is not complete on a ReLU network: the check can tell them apart.
    if baseline == "zeros":
        gxi = explain.gradient_x_input(fn, x, target_B)
        assert explain.completeness_gap(fn, x, gxi, target_B).max() > 0.05


def test_riemann_and_gauss_converge_to_the_same_integral_as_steps_grow():
    x_BF = jax.random.normal(jax.random.PRNGKey(4), (4, 20))
    fn, x_BF = model_fn(MLP(features=(16,), num_outputs=3, activation=jnp.tanh), x_BF)
    ig = lambda steps, method: explain.integrated_gradients(  # One compile: 17-point calls.
        fn, x_BF, 1, steps=steps, method=method, max_points=17)
    reference = ig(128, "gauss_legendre")
    errors = {method: [float(jnp.abs(ig(steps, method) - reference).max())
                       for steps in (2, 4, 8, 32)] for method in explain.IG_METHODS}
    for method, error in errors.items():  # Down to float32 rounding (~1e-7).
        assert all(a > b or a < 1e-6 for a, b in zip(error, error[1:])), (method, error)
    assert errors["riemann_trapezoid"][-1] < 1e-3 and errors["gauss_legendre"][-1] < 1e-5
    assert errors["gauss_legendre"][2] < errors["riemann_trapezoid"][2]  # Smooth: Gauss wins.


def test_path_points_in_chunks_give_the_same_attributions(mlp):
    fn, x = mlp
    whole = explain.integrated_gradients(fn, x, 3, steps=20)
    np.testing.assert_allclose(explain.integrated_gradients(fn, x, 3, steps=20, max_points=6),
                               whole, rtol=1e-5, atol=1e-7)


def test_quadrature_weights_integrate_polynomials():
    for steps in (1, 5, 64):
        alphas, weights = explain.path_quadrature(steps, "gauss_legendre")
        assert len(alphas) == steps and weights.sum() == pytest.approx(1.0, abs=1e-6)
        if steps >= 2:
            assert weights @ alphas ** 3 == pytest.approx(0.25, abs=1e-6)
    alphas, weights = explain.path_quadrature(4)
    np.testing.assert_allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(weights, [0.125, 0.25, 0.25, 0.25, 0.125])


@pytest.mark.parametrize("call, message", [
    (lambda fn, x: explain.integrated_gradients(fn, x.astype(jnp.int32), 0),
     "attributions need float inputs"),
    (lambda fn, x: explain.integrated_gradients(fn, x, 0, steps=0), "steps=0 must be a positive"),
    (lambda fn, x: explain.integrated_gradients(fn, x, 0, method="simpson"),
     "'simpson' is unknown"),
    (lambda fn, x: explain.integrated_gradients(fn, x, 10), "out of range for 10 classes"),
    (lambda fn, x: explain.integrated_gradients(fn, x, 0, baseline=jnp.zeros(3)),
     r"baseline of shape \(3,\) does not broadcast"),
    (lambda fn, x: explain.gradient_x_input(lambda x: x.sum(), x, 0), "to logits"),
    (lambda fn, x: explain.completeness(fn, x, x[:, :3], 0), "attributions have shape"),
])
def test_bad_input_is_one_line(mlp, call, message):
    fn, x = mlp
    with pytest.raises(DlxError, match=message) as info:
        call(fn, x)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def tiny_bert():
    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    ids_BT = jnp.array([[2, 7, 8, 9, 3, 0, 0, 0], [2, 11, 12, 13, 14, 15, 3, 0]])
    module = BertTextClassifier(config, num_labels=3)
    variables = jax.jit(module.init)(KEY, ids_BT)
    # The 0.02 init barely moves the logits; larger weights make the attributions informative.
    variables = jax.tree.map(lambda v: v * 20 if v.ndim == 2 else v, variables)
    return module, variables, ids_BT


def test_token_attributions_through_the_embeddings_are_complete(tiny_bert):
    module, variables, ids_BT = tiny_bert
    embeds_BTE, fn = explain.embedding_function(module, variables, ids_BT)
    table_VE = variables["params"]["bert"]["embeddings"]["word_embeddings"]["embedding"]
    np.testing.assert_array_equal(embeds_BTE, table_VE[ids_BT])
    np.testing.assert_allclose(fn(embeds_BTE), module.apply(variables, ids_BT), rtol=1e-6)
    target_B = predicted(fn, embeds_BTE)
    ig_BTE = explain.integrated_gradients(fn, embeds_BTE, target_B, steps=32)
    assert explain.completeness_gap(fn, embeds_BTE, ig_BTE, target_B).max() < 0.01
    per_token_BT = np.asarray(ig_BTE.sum(-1))
    assert np.all(per_token_BT[ids_BT == 0] == 0)  # Padding is masked out of every attention.
    assert np.all(np.abs(per_token_BT[ids_BT != 0]) > 0)
    with pytest.raises(DlxError, match="no nn.Embed named 'tokens'"):
        explain.embedding_function(module, variables, ids_BT, embed_name="tokens")


def test_attention_maps_are_the_weights_the_layer_uses():
    x_BTM = jax.random.normal(KEY, (2, 5, 8))
    mask = jnp.array([True, True, True, False, False])[None, None, None, :]
    layer = MultiHeadAttention(num_heads=2)
    variables = jax.jit(layer.init)(KEY, x_BTM)
    (name, weights_BHTS), = explain.attention_maps(layer, variables, x_BTM, mask=mask).items()
    assert name == "" and weights_BHTS.shape == (2, 2, 5, 5)
    p = variables["params"]
    v_BSHD = (x_BTM @ p["value"]["kernel"] + p["value"]["bias"][None, None]).reshape(2, 5, 2, 4)
    out_BTF = jnp.einsum("bhts,bshd->bthd", weights_BHTS, v_BSHD).reshape(2, 5, 8)
    np.testing.assert_allclose(out_BTF @ p["out"]["kernel"] + p["out"]["bias"][None, None],
                               jax.jit(layer.apply)(variables, x_BTM, mask=mask), rtol=1e-5,
                               atol=1e-6)
    assert np.all(weights_BHTS[..., 3:] == 0)


def test_bert_attention_maps_cover_every_layer_and_skip_padding(tiny_bert):
    module, variables, ids_BT = tiny_bert
    maps = explain.attention_maps(module, variables, ids_BT)
    assert list(maps) == [f"bert/encoder/layer_{k}/attention" for k in range(2)]
    for weights_BHTS in maps.values():
        assert weights_BHTS.shape == (2, 2, 8, 8)
        np.testing.assert_allclose(weights_BHTS.sum(-1), 1.0, rtol=1e-5)
        assert np.all(weights_BHTS[0, :, :, 5:] == 0) and np.all(weights_BHTS[1, :, :, 7:] == 0)
    assert explain.attention_maps(MLP(features=(4,), num_outputs=2),
                                  MLP((4,), 2).init(KEY, jnp.ones((1, 3))), jnp.ones((1, 3))) == {}


PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("shape", [(40,), (8, 8), (8, 8, 3)])
def test_plots_are_pngs(tmp_path, shape):
    x = np.random.default_rng(0).normal(size=shape)
    explain.plot_attributions(x, -x, tmp_path / "a.png", title="t")
    assert (tmp_path / "a.png").read_bytes().startswith(PNG)


def test_token_and_attention_plots_and_bad_shapes(tmp_path):
    explain.plot_attributions(np.arange(3), np.array([0.5, -1.0, 0.1]), tmp_path / "t.png",
                              tokens=["[CLS]", "cat", "[SEP]"])
    explain.plot_attention({"enc/layer_0/attention": np.full((2, 3, 3), 1 / 3)},
                           tmp_path / "m.png", tokens=["a", "b", "c"])
    assert all((tmp_path / n).read_bytes().startswith(PNG) for n in ("t.png", "m.png"))
    with pytest.raises(DlxError, match="expected x's"):
        explain.plot_attributions(np.zeros(4), np.zeros(5), tmp_path / "bad.png")
    with pytest.raises(DlxError, match=r"got x of shape \(2, 2, 2, 2\)"):
        explain.plot_attributions(np.zeros((2,) * 4), np.zeros((2,) * 4), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_dlx_explain_on_a_trained_mnist1d_mlp(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    assert cli.run(["train", "--config", MLP_CONFIG, "--workdir", workdir,
                    "--config.train.steps=200", "--config.train.eval_every=200",
                    "--config.train.checkpoint_every=200"]) == 0
    capsys.readouterr()
    assert cli.run(["explain", "--config", MLP_CONFIG, "--workdir", workdir,
                    "--examples", "3"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["methods"] == ["ig", "gxi"] and summary["examples"] == 3
    out = tmp_path / "run" / "explain"
    assert sorted(p.name for p in out.iterdir()) == [
        "explain.json", *[f"{m}_{i}.png" for m in ("gxi", "ig") for i in range(3)]]
    assert all((out / f"ig_{i}.png").read_bytes().startswith(PNG) for i in range(3))
    report = json.loads((out / "explain.json").read_text())
    assert report["ig_steps"] == summary["ig_steps"] >= 64
    for record in report["examples"]:
        assert 0 <= record["predicted"] < 10 and 0 <= record["target"] < 10
        ig = record["ig"]
        assert ig["completeness_gap"] <= explain.TOLERANCE or report["ig_steps"] == 1024
        assert ig["total"] == pytest.approx(ig["output_minus_baseline"], rel=0.011, abs=1e-4)
        assert len(ig["top"]) == explain.TOP_K and 0 <= ig["top"][0]["position"] < 40
        tops = [abs(t["attribution"]) for t in ig["top"]]
        assert tops == sorted(tops, reverse=True)
    assert summary["ig_completeness_gap_max"] == max(
        r["ig"]["completeness_gap"] for r in report["examples"])

    for argv, message in [(["--method", "attention"], "needs a Transformer; model.name='mlp'"),
                          (["--method", "lime"], "--method 'lime' is unknown"),
                          (["--examples", "0"], "--examples must be >= 1")]:
        with pytest.raises(DlxError, match=message):
            cli.run(["explain", "--config", MLP_CONFIG, "--workdir", workdir, *argv])


def test_dlx_explain_refuses_language_models_and_missing_checkpoints(tmp_path):
    with pytest.raises(DlxError, match="needs a classifier; gpt_tiny trains model.name='gpt'"):
        cli.run(["explain", "--config", "gpt_tiny", "--workdir", str(tmp_path)])
    with pytest.raises(DlxError, match="no checkpoints in"):
        cli.run(["explain", "--config", MLP_CONFIG, "--workdir", str(tmp_path)])
