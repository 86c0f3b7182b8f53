"""`Checkpoints`: each group's `GroupState` saved with orbax every few steps.

Saving copies the state to the host (`jax.device_get`) and writes it synchronously,
keeping the ``keep`` latest steps; orbax writes to a temporary directory and renames
it, so a killed process leaves either a whole checkpoint or none.
"""

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    """The checkpoints of one group in ``directory``.

    Args:
      directory: created if missing.
      keep: how many of the latest checkpoints to keep.
    """

    def __init__(self, directory: str | pathlib.Path, keep: int = 2) -> None:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, create=True
        )
        self._manager = ocp.CheckpointManager(pathlib.Path(directory).absolute(), options=options)

    def latest(self) -> int | None:
        """The step of the newest whole checkpoint (None: none yet)."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Saves ``state`` (any pytree of arrays) as the checkpoint of ``step``."""
        self._manager.save(step, args=ocp.args.StandardSave(jax.device_get(state)), force=True)
        self._manager.wait_until_finished()

    def restore(self, step: int, like: Any) -> Any:
        """The state saved at ``step``, with the structure, shapes and dtypes of ``like``."""
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self._manager.close()
