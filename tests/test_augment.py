"""Image augmentation: shift and flip per example, the spec parser, and training steps only."""

import functools
import itertools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import config as config_lib
from dlx import tasks
from dlx.data import augment
from dlx.errors import DlxError

from conftest import MLP_CONFIG

KEY = jax.random.PRNGKey(0)


def images(shape, seed=0):
    """Noise images, so every shift and flip of one is distinguishable from the others."""
    return np.random.default_rng(seed).uniform(0.1, 1.0, shape).astype(np.float32)


@functools.cache
def jitted(spec):
    return jax.jit(augment.get(spec))  # One compile per shape is faster than many eager ops.


def run(spec, x, key=KEY):
    return np.asarray(jitted(spec)(key, x))


def numpy_shift(x_HW, dy, dx):
    """`np.roll` by (dy, dx) with the rows and columns that wrapped around set to zero."""
    out = np.roll(x_HW, (dy, dx), axis=(0, 1))
    source_rows, source_cols = np.arange(x_HW.shape[0]) - dy, np.arange(x_HW.shape[1]) - dx
    out[(source_rows < 0) | (source_rows >= x_HW.shape[0])] = 0
    out[:, (source_cols < 0) | (source_cols >= x_HW.shape[1])] = 0
    return out


def offsets(x_BHW, out_BHW, pad):
    """The (dy, dx) each output image was shifted by; fails if it is no shift within `pad`."""
    found = []
    for x, out in zip(x_BHW, out_BHW):
        matches = [(dy, dx) for dy, dx in itertools.product(range(-pad, pad + 1), repeat=2)
                   if np.array_equal(numpy_shift(x, dy, dx), out)]
        assert len(matches) == 1, matches
        found.append(matches[0])
    return found


def flipped(x_BHW, out_BHW):
    """Per example: True if mirrored left-right, False if unchanged; fails if neither."""
    mirrored = [np.array_equal(out, x[:, ::-1]) for x, out in zip(x_BHW, out_BHW)]
    same = [np.array_equal(out, x) for x, out in zip(x_BHW, out_BHW)]
    assert all(m != s for m, s in zip(mirrored, same))
    return np.array(mirrored)


@pytest.mark.parametrize("shape", [(4, 9, 7), (4, 9, 7, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_shape_and_dtype_are_kept(shape, dtype):
    x = (images(shape) * 255).astype(dtype)
    for spec in ("shift:2", "flip", "shift:4,flip"):
        out = jax.eval_shape(augment.get(spec), KEY, x)
        assert out.shape == x.shape and out.dtype == x.dtype, spec


def test_shift_by_a_known_offset_equals_numpy_roll_with_zero_fill():
    x_HWC = images((6, 5, 2))
    for dy, dx in itertools.product(range(-2, 3), repeat=2):
        np.testing.assert_array_equal(augment.shift(x_HWC, dy, dx, pad=2),
                                      numpy_shift(x_HWC, dy, dx))


def test_random_shift_draws_an_offset_per_example_within_pad():
    x_BHW = images((32, 8, 8))
    found = offsets(x_BHW, run("shift:2", x_BHW), pad=2)
    assert len(set(found)) >= 10  # 25 possible offsets, 32 draws.


def test_flip_is_an_involution_and_happens_about_half_the_time():
    x_BHW = images((400, 5, 6))
    once = run("flip", x_BHW)
    assert 0.4 < flipped(x_BHW, once).mean() < 0.6
    np.testing.assert_array_equal(run("flip", once), x_BHW)  # Same key, same examples flipped.


def test_composition_shifts_and_flips():
    x_BHWC = images((64, 8, 8, 3))
    out = run("shift:1,flip", x_BHWC)
    mirrored = [any(np.array_equal(numpy_shift(x[:, ::-1], dy, dx), o)
                    for dy, dx in itertools.product(range(-1, 2), repeat=2))
                for x, o in zip(x_BHWC, out)]
    assert 0.2 < np.mean(mirrored) < 0.8


def test_deterministic_given_the_key():
    x_BHW = images((8, 8, 8))
    np.testing.assert_array_equal(run("shift:3,flip", x_BHW), run("shift:3,flip", x_BHW))
    assert not np.array_equal(run("shift:3,flip", x_BHW),
                              run("shift:3,flip", x_BHW, key=jax.random.PRNGKey(1)))


class JitTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_equals_no_jit(self):
        x_BHWC = images((8, 10, 10, 3))
        reference = augment.get("shift:4,flip")(KEY, x_BHWC)
        got = self.variant(augment.get("shift:4,flip"))(KEY, x_BHWC)
        chex.assert_trees_all_equal(got, reference)


class Linear(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
        return nn.Dense(3)(x.reshape((x.shape[0], -1)))


def test_only_training_steps_are_augmented():
    batch = {"x": jnp.asarray(images((8, 6, 6))), "y": jnp.arange(8) % 3}
    plain, shifted = tasks.Classification(Linear()), tasks.Classification(
        Linear(), augment=augment.get("shift:2"))
    params, batch_stats = plain.init(KEY, batch)

    def loss(task, train):
        return task.loss(params, batch_stats, batch, KEY, train=train)[0]

    assert loss(shifted, train=False) == loss(plain, train=False)
    assert loss(shifted, train=True) != loss(plain, train=True)
    assert loss(plain, train=True) == loss(plain, train=False)


def test_empty_spec_is_no_augmentation():
    assert augment.get("") is None and augment.get(" , ") is None


@pytest.mark.parametrize("spec, item", [("rotate", "rotate"), ("shift", "shift"),
                                        ("shift:0", "shift:0"), ("shift:two", "shift:two"),
                                        ("flip:1", "flip:1"), ("shift:2,crop", "crop")])
def test_bad_spec_names_the_item_and_the_allowed_ones(spec, item):
    with pytest.raises(DlxError) as info:
        augment.get(spec)
    message = str(info.value)
    assert f"bad item {item!r}" in message and "shift:N" in message and "flip" in message
    assert "\n" not in message


def test_non_image_inputs_are_refused():
    with pytest.raises(DlxError, match=r"\(batch, H, W\).*got inputs of shape \(4, 40\)"):
        augment.get("flip")(KEY, jnp.zeros((4, 40)))


def test_config_validates_the_spec():
    assert config_lib.build(MLP_CONFIG, []).data.augment == ""
    with pytest.raises(DlxError, match="data.augment='shift:2,spin': bad item 'spin'"):
        config_lib.build(MLP_CONFIG, ["--config.data.augment=shift:2,spin"])
