"""Orbax checkpoints of the train state plus a JSON record (data position, log window, wall time)."""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger("dlx")


class Checkpointer:
    """Saves `state` + `meta` every call to `save`; keeps the newest `keep`; restores the newest good one."""

    def __init__(self, directory: pathlib.Path, keep: int):
        self.directory = directory.resolve()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "meta"))

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Starts an async save; the arrays are copied off the devices before this returns."""
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
        """(step, state, meta) of the newest readable checkpoint; unreadable ones are skipped loudly."""
        for step in reversed(self.steps()):
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
                return step, restored["state"], restored["meta"]
            except Exception as e:  # Orbax raises many types for truncated or missing files.
                log.warning("checkpoint %s/%d is unreadable (%s: %s); trying an earlier one",
                            self.directory, step, type(e).__name__, str(e).splitlines()[0][:200])
        return None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Shape/dtype/sharding skeleton of `tree` for a restore target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
