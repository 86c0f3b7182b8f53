"""Recording what a model does: `record`, the one place where phosjax writes to a transient
collection, and `collecting`, what a trace declares by the way (knobs, constant notes)."""

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, TypeVar

import flax.linen as nn

_V = TypeVar("_V")


def record(module: nn.Module, collection: str, name: str, value: Any) -> None:
    """Sows ``value`` into ``collection`` when the caller made it mutable; never during init.

    Skipping init keeps ``model.init`` from handing back transient collections as state.
    """
    if module.is_initializing() or not module.is_mutable_collection(collection):
        return
    module.sow(collection, name, value)


@contextlib.contextmanager
def collecting(var: contextvars.ContextVar[dict[str, _V] | None]) -> Iterator[dict[str, _V]]:
    """Within it, ``var`` holds a new dict, yielded, that the code run there fills (the
    knobs a trace declares, the notes it keeps aside); ``var``'s value before is restored.

    Examples:
      >>> var = contextvars.ContextVar("found", default=None)
      >>> with collecting(var) as found:
      ...     var.get()["a"] = 1
      >>> found, var.get()
      ({'a': 1}, None)
    """
    found: dict[str, _V] = {}
    token = var.set(found)
    try:
        yield found
    finally:
        var.reset(token)
