"""Checkpointer: the JSON record is the one given to `save`, whatever the caller does next."""

import jax
import jax.numpy as jnp

from dlx.train.checkpoint import Checkpointer


def test_save_records_the_meta_as_it_was_when_called(tmp_path):
    checkpointer = Checkpointer(tmp_path / "checkpoints", keep=None)
    state = {"w": jnp.arange(3.0)}
    meta = {"window": {"loss": 1.0}, "data": {"epoch": 0, "index": 2}}
    checkpointer.save(2, state, meta)
    # The training loop goes on adding to its log window while the save writes in the background.
    meta["window"]["loss"] += 5.0
    meta["data"]["index"] = 3
    checkpointer.wait()
    step, restored_state, restored_meta = checkpointer.restore(jax.eval_shape(lambda: state))
    checkpointer.close()
    assert step == 2
    assert restored_meta == {"window": {"loss": 1.0}, "data": {"epoch": 0, "index": 2}}
    assert restored_state["w"].tolist() == [0.0, 1.0, 2.0]
