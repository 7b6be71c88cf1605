"""dlx.flops: 6N + 12LHT per token against hand-counted matmuls, and MFU on known numbers."""

from __future__ import annotations

import math

import jax
import jax.extend
import numpy as np
import pytest

from dlx import flops
from dlx.errors import DlxError
from dlx.nn.transformer import Encoder

LAYERS, HIDDEN, MLP_DIM, SEQ, HEADS = 2, 8, 32, 4, 2


def test_formula_equals_a_hand_count_of_the_matmuls():
    """One sequence's forward matmuls (2 m n k each) per layer, times 3 for forward + backward,
    over its tokens."""
    matmuls_mnk = [(SEQ, HIDDEN, HIDDEN)] * 4  # q, k, v and output projections
    matmuls_mnk += [(SEQ, SEQ, HIDDEN),  # scores q·kᵀ, all heads together
                    (SEQ, HIDDEN, SEQ),  # weights · values
                    (SEQ, MLP_DIM, HIDDEN), (SEQ, HIDDEN, MLP_DIM)]  # the MLP
    forward = LAYERS * sum(2 * m * n * k for m, n, k in matmuls_mnk)
    assert forward == 2 * 6656  # 4 * 512 + 2 * 256 + 2 * 2048 per layer.
    assert flops.training_flops_per_token(LAYERS, HIDDEN, SEQ, MLP_DIM) == 3 * forward // SEQ
    assert flops.training_flops_per_token(LAYERS, HIDDEN, SEQ) == flops.training_flops_per_token(
        LAYERS, HIDDEN, SEQ, 4 * HIDDEN)


def _dot_flops(jaxpr: jax.extend.core.Jaxpr) -> int:
    """2 x (lhs size) x (rhs free size) summed over every dot_general, nested jaxprs included."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (_, rhs_contract), (_, rhs_batch) = eqn.params["dimension_numbers"]
            lhs_shape, rhs_shape = (v.aval.shape for v in eqn.invars)
            free = [d for i, d in enumerate(rhs_shape) if i not in rhs_contract + rhs_batch]
            total += 2 * math.prod(lhs_shape) * math.prod(free)
        for value in eqn.params.values():
            inner = getattr(value, "jaxpr", value)
            if isinstance(inner, jax.extend.core.Jaxpr):
                total += _dot_flops(inner)
    return total


def test_formula_equals_the_matmuls_of_the_dlx_encoder():
    encoder = Encoder(num_heads=HEADS, mlp_dim=MLP_DIM, num_layers=LAYERS, positions="none")
    x_BTM = np.zeros((1, SEQ, HIDDEN), np.float32)
    params = jax.eval_shape(encoder.init, jax.random.key(0), x_BTM)
    forward = jax.make_jaxpr(lambda p, x: encoder.apply(p, x))(params, x_BTM).jaxpr
    assert 3 * _dot_flops(forward) == SEQ * flops.training_flops_per_token(LAYERS, HIDDEN, SEQ,
                                                                           MLP_DIM)


def test_mfu_of_known_numbers():
    assert flops.mfu(1000, 156e9, "NVIDIA A100-SXM4-80GB") == pytest.approx(0.5)
    assert flops.mfu(1e5, 1e9, "NVIDIA H100 80GB HBM3") == pytest.approx(1e14 / 989.5e12)
    assert flops.mfu(1e3, 67e9, "NVIDIA H200", dtype="float32") == pytest.approx(1.0)
    assert flops.mfu(1e3, 197e9, "TPU v5 lite") == pytest.approx(1.0)
    assert flops.device_name("TPU v5") == "TPU v5p" and flops.device_name("TPU v4") == "TPU v4"
    assert flops.device_name("NVIDIA H100 PCIe") == "H100 PCIe"


@pytest.mark.parametrize("call, message", [
    (lambda: flops.mfu(1.0, 1.0, "cpu"), "device kind 'cpu' has no known peak"),
    (lambda: flops.mfu(1.0, 1.0, "TPU v4", dtype="float32"), "no published float32 peak"),
    (lambda: flops.mfu(1.0, 0.0, "TPU v4"), "expected tokens_per_s >= 0 and flops_per_token > 0"),
    (lambda: flops.training_flops_per_token(0, 8, 4), "num_layers=0"),
])
def test_bad_input_is_a_one_line_error(call, message):
    with pytest.raises(DlxError, match=message):
        call()
