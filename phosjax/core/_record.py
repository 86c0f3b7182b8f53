"""The one place where phosjax writes to a transient collection."""

from typing import Any

import flax.linen as nn


def record(module: nn.Module, collection: str, name: str, value: Any) -> None:
    """Sows ``value`` into ``collection`` when the caller made it mutable; never during init.

    Skipping init keeps ``model.init`` from handing back transient collections as state.
    """
    if module.is_initializing() or not module.is_mutable_collection(collection):
        return
    module.sow(collection, name, value)
