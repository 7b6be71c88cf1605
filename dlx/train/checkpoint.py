"""Orbax checkpoints of the train state plus a JSON record (data position, log window, wall time)."""

from __future__ import annotations

import copy
import logging
import pathlib
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from dlx.errors import DlxError

log = logging.getLogger("dlx")


def _signature(abstract_state: Any) -> dict[str, tuple]:
    """Leaf name (as Orbax writes it: path keys joined by dots) -> (shape, dtype)."""
    flat = jax.tree_util.tree_flatten_with_path(abstract_state)[0]
    return {jax.tree_util.keystr(path, simple=True, separator="."): (tuple(x.shape), str(x.dtype))
            for path, x in flat}


class Checkpointer:
    """Saves `state` + `meta` every call to `save`; keeps the newest `keep` (None: all); restores the
    newest good one."""

    def __init__(self, directory: pathlib.Path, keep: int | None):
        self.directory = directory.resolve()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "meta": ocp.JsonCheckpointHandler()})

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Starts an async save; the arrays are copied off the devices before this returns, and
        `meta` is copied now: Orbax writes it in the background, while the caller goes on
        changing its dicts (the loop's log window)."""
        meta = copy.deepcopy(meta)
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def delete(self, steps) -> None:
        """Removes the checkpoints of `steps` (after any save in flight has finished)."""
        self.manager.wait_until_finished()
        for step in steps:
            self.manager.delete(step)

    def restore(self, abstract_state: Any, quarantine: bool = False) -> tuple[int, Any, dict] | None:
        """(step, state, meta) of the newest readable checkpoint; unreadable ones are skipped loudly.

        With `quarantine`, an unreadable step directory is moved to `checkpoints.unreadable/` (kept
        for inspection, never deleted) so that training can save that step again.
        """
        for step in reversed(self.steps()):
            try:
                self._check_matches(step, abstract_state)
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
                return step, restored["state"], restored["meta"]
            except DlxError:
                raise
            except Exception as e:  # Orbax raises many types for truncated or missing files.
                reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                if quarantine:
                    aside = self.directory.with_name(self.directory.name + ".unreadable")
                    aside.mkdir(exist_ok=True)
                    shutil.move(str(self.directory / str(step)), str(aside / str(step)))
                    self.manager.reload()
                    reason += f"; moved to {aside / str(step)}"
                log.warning("checkpoint %s/%d is unreadable (%s); trying an earlier one",
                            self.directory, step, reason)
        return None

    def _check_matches(self, step: int, abstract_state: Any) -> None:
        """Raises DlxError if checkpoint `step` holds other leaves, shapes or dtypes than the target.

        That means the config changed (optimiser, model), which no earlier checkpoint can fix.
        """
        metadata = self.manager.item_metadata(step)["state"]
        saved = {leaf.name: (tuple(leaf.shape), str(leaf.dtype))
                 for leaf in jax.tree.leaves(getattr(metadata, "tree", metadata))}
        wanted = _signature(abstract_state)
        if saved != wanted:
            differing = sorted(set(saved.items()) ^ set(wanted.items()))
            names = list(dict.fromkeys(name for name, _ in differing))
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise DlxError(f"checkpoint {self.directory}/{step} holds a different train state "
                           f"than this config builds (differing leaves: {shown}); the model "
                           f"or optimiser changed, so use the original config or another --workdir")

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_like(tree: Any, shardings: Any) -> Any:
    """Shape/dtype/sharding skeleton of `tree` for a restore target; `shardings` has a sharding
    per leaf, so a checkpoint saved on one mesh is restored straight onto another."""
    return jax.tree.map(lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                                 sharding=sharding),
                        tree, shardings)
