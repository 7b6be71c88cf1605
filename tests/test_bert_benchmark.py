"""benchmarks/bert.py compares the same computation: dlx and HF steps agree on the step-0 loss."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_benchmark


def _benchmark():
    return load_benchmark("bert")


@pytest.mark.parametrize("full_head", [False, True])
def test_dlx_and_hf_steps_agree_at_step_0(full_head):
    """Same weights, same masked batch, dropout off: the same MLM loss before the first update,
    whether dlx runs the head at the gathered positions or at every position as HF does."""
    pytest.importorskip("transformers", exc_type=ImportError)
    pytest.importorskip("torch", exc_type=ImportError)
    bench = _benchmark()
    batch = bench.mlm_batch(vocab=99, batch=4, seq=16, max_predictions=4)
    assert batch["mlm_mask_BT"].sum() == batch["weights_BP"].sum() > 0  # None cut by the gather.
    model = bench.hf_model(vocab=99, hidden=32, layers=2, heads=2, intermediate=64,
                           max_positions=32, dropout=0.0)
    module, params = bench.dlx_from_hf(model)
    dlx_loss = bench.dlx_step(module, params, batch, full_head=full_head)()
    hf_loss = bench.hf_step(model, batch)()
    np.testing.assert_allclose(dlx_loss, hf_loss, rtol=1e-4)


def test_dlx_and_hf_bf16_steps_agree_at_step_0():
    """`--bf16`: dlx with dtype=bfloat16 and HF under torch.autocast compute the same loss up to
    bfloat16 rounding (~1e-4 here), and not the float32 one."""
    pytest.importorskip("transformers", exc_type=ImportError)
    pytest.importorskip("torch", exc_type=ImportError)
    import jax.numpy as jnp
    bench = _benchmark()
    batch = bench.mlm_batch(vocab=99, batch=4, seq=16, max_predictions=4)
    model = bench.hf_model(vocab=99, hidden=32, layers=2, heads=2, intermediate=64,
                           max_positions=32, dropout=0.0)
    module, params = bench.dlx_from_hf(model)
    _, f32_params = bench.dlx_from_hf(model)
    dlx_loss = bench.dlx_step(module.clone(dtype=jnp.bfloat16), params, batch)()
    hf_loss = bench.hf_step(model, batch, bf16=True)()
    np.testing.assert_allclose(dlx_loss, hf_loss, rtol=1e-3)
    assert dlx_loss != bench.dlx_step(module, f32_params, batch)()  # bfloat16 really ran.


def test_keras_hub_step_takes_the_same_masked_batch(capsys):
    """benchmarks/bert_keras.py runs end to end (where KerasHub is installed) and emits a ratio."""
    pytest.importorskip("keras_hub", exc_type=ImportError)
    import json
    load_benchmark("bert_keras").main(
        ["--rounds", "1", "--warmup", "1", "--batch", "4", "--seq", "16", "--vocab", "200",
         "--hidden", "32", "--layers", "1", "--heads", "2", "--intermediate", "64",
         "--max-positions", "32", "--max-predictions", "4"])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["name"] == "bert_mlm-vs-keras-hub-jax" and record["ratio"] > 0
