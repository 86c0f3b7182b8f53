"""Recording what a model does: `record`, the one place where phosjax writes to a transient
collection, and `collecting`, what a trace declares by the way (knobs, constant notes)."""

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import flax.linen as nn
import flax.linen.module as linen_module
import jax
import numpy as np
from flax import serialization

from phosjax.core._paths import SEP, flatten, module_path
from phosjax.core._selectors import misgiven_paths

_V = TypeVar("_V")
_COLLECTED: set[contextvars.ContextVar[Any]] = set()
"""Every variable `collecting` has filled (`set_aside` silences them)."""


@jax.tree_util.register_pytree_with_keys_class
class Calls(tuple[Any, ...]):
    """What `record` keeps at one name: a tuple, one item per call, that also knows the
    number of axes of each call's leaves as recorded. Its items have the keys of a tuple's
    (``[0]``), as those of Flax's own ``sow`` do.

    That count is static (the pytree's aux data), so it survives ``jit``, ``nn.scan``
    and ``nn.vmap`` while the leaves gain the axes those stack the calls on: `lifted_axes`
    tells a scanned block's ``(layers, ...)`` value from one tagged with that shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> calls = add_call(Calls(), jnp.ones((2, 3)))
      >>> stacked = jax.tree.map(lambda a: jnp.stack([a, a]), calls)  # as nn.scan stacks
      >>> calls.lifted_axes(0), stacked.lifted_axes(0), stacked == (stacked[0],)
      (0, 1, True)
      >>> [jax.tree_util.keystr(key) for key, _ in jax.tree.leaves_with_path({"h": calls})]
      ["['h'][0]"]
    """

    ndims: tuple[tuple[int, ...], ...]

    def __new__(cls, items: Any = (), ndims: Any = ()) -> "Calls":
        calls = super().__new__(cls, items)
        calls.ndims = tuple(ndims)
        return calls

    def lifted_axes(self, call: int) -> int:
        """How many leading axes a lifted transform added to ``call``'s value (0 if none).

        The first leaf tells: a transform stacks a whole collection on one axis.
        """
        leaves, ndims = jax.tree.leaves(self[call]), self.ndims[call]
        return max(np.ndim(leaves[0]) - ndims[0], 0) if leaves else 0

    def tree_flatten_with_keys(
        self,
    ) -> tuple[tuple[tuple[Any, Any], ...], tuple[tuple[int, ...], ...]]:
        keyed = tuple((jax.tree_util.SequenceKey(i), item) for i, item in enumerate(self))
        return keyed, self.ndims

    def tree_flatten(self) -> tuple[tuple[Any, ...], tuple[tuple[int, ...], ...]]:
        return tuple(self), self.ndims

    @classmethod
    def tree_unflatten(cls, ndims: tuple[tuple[int, ...], ...], items: Any) -> "Calls":
        return cls(items, ndims)


def _calls_state_dict(calls: Calls) -> dict[str, Any]:
    """``calls`` as Flax's serialization writes a tuple: ``{"0": item, ...}``."""
    return {str(i): serialization.to_state_dict(item) for i, item in enumerate(calls)}


def _calls_from_state_dict(target: Calls, state: Mapping[str, Any]) -> Calls:
    """``target`` with the items of ``state`` (as `_calls_state_dict` wrote them).

    Raises:
      ValueError: ``state`` holds another number of calls or keys other than a tuple's
        (``"0"``, ``"1"``...), both counts, its keys and the record's path in the state
        named (as Flax names a tuple's).
    """
    keys = [str(i) for i in range(len(target))]
    if sorted(state) != sorted(keys):
        raise ValueError(
            f"Cannot restore the record at {serialization.current_path()}, of "
            f"{len(target)} call(s), from a state dict of {len(state)} item(s) (keys "
            f"{sorted(state)}): give the state of the same calls, keyed {keys}."
        )
    items = [
        serialization.from_state_dict(t, state[str(i)], name=str(i))  # its path in errors
        for i, t in enumerate(target)
    ]
    return Calls(items, target.ndims)


# a state holding records (Flax's to_bytes, msgpack) is written as one holding tuples is
serialization.register_serialization_state(Calls, _calls_state_dict, _calls_from_state_dict)


def _ndims(value: Any) -> tuple[int, ...]:
    return tuple(np.ndim(leaf) for leaf in jax.tree.leaves(value))


def add_call(calls: tuple[Any, ...], value: Any) -> Calls:
    """``calls`` and one more, recording ``value``; ``calls`` may be a plain tuple (a
    collection passed in as variables), whose values count as recorded as they are."""
    known = calls.ndims if isinstance(calls, Calls) else tuple(map(_ndims, calls))
    return Calls((*calls, value), (*known, _ndims(value)))


def record(
    module: nn.Module, collection: str, name: str, value: Any, *, beside_submodule: bool = False
) -> None:
    """Sows ``value`` into ``collection`` when the caller made it mutable; never during init.

    Skipping init keeps ``model.init`` from handing back transient collections as state.
    The collection holds a `Calls` there, a tuple with one item per call. With
    ``beside_submodule``, a submodule made before that recorded nothing in ``collection``
    does not stop it: the record is put beside it, without Flax's name (for a name that
    ``module``'s caller chose, as a graph model tags a node's output ``<node>/out``).

    Raises:
      ValueError: ``name`` is the name of a submodule made before: one that recorded in
        ``collection`` has its values under that path, which the record would swallow,
        and one that did not holds the name, which Flax refuses to give the record. One
        made after (which Flax refuses: "Name in use"; init, which records nothing,
        cannot tell) is refused as it is made. ``module``'s own path holds a record of its
        parent's, put beside it (``beside_submodule``) in an earlier call.
    """
    if module.is_initializing() or not module.is_mutable_collection(collection):
        return
    submodule = isinstance(module._state.children.get(name), nn.Module)
    recorded = isinstance(module.get_variable(collection, name), Mapping)
    if submodule and beside_submodule and not recorded:
        calls = module.get_variable(collection, name, Calls())
        module.put_variable(collection, name, add_call(calls, value))  # reserves no name
        return
    if submodule or recorded:
        clash = (
            f"whose values there sit under {module_path(module, name) + SEP!r}, so the paths "
            "would collide"
            if recorded
            else f"which recorded nothing in {collection!r} but holds the name (Flax gives "
            "one name to one thing)"
        )
        raise _clash(module, collection, name, clash)
    try:
        module.sow(collection, name, value, reduce_fn=add_call, init_fn=Calls)
    except TypeError:  # Flax's "'Calls' object does not support item assignment"
        if not _recorded_at_own_path(module, collection):
            raise
        place = SEP.join(module.path)
        raise ValueError(
            f"Cannot record {module_path(module, name)!r} in {collection!r}: {place!r} holds "
            f"the output of {SEP.join(module.path[:-1]) or 'the top module'}, tagged there "
            f"beside the submodule {module.name!r} in an earlier call, when that recorded "
            "nothing. Give the submodule another name."
        ) from None
    names = module.__dict__.get("_name_taken")
    if not isinstance(names, _RecordedNames):  # Flax asks it of a new submodule's name
        object.__setattr__(module, "_name_taken", names := _RecordedNames(module))
    names.recorded.setdefault(name, collection)


def _recorded_at_own_path(module: nn.Module, collection: str) -> bool:
    """Whether ``module``'s own path in ``collection`` holds a record of its parent's (put
    there beside it by ``beside_submodule``), where its values would go."""
    scope = module.scope
    if scope is None or scope.parent is None or scope.name is None:
        return False
    return isinstance(scope.parent.get_variable(collection, scope.name), tuple)


def _clash(module: nn.Module, collection: str, name: str, clash: str) -> ValueError:
    """The error for a record of ``name`` in ``collection`` that is also the name of a
    submodule of ``module``, ``clash`` telling how."""
    return ValueError(
        f"Cannot record {module_path(module, name)!r} in {collection!r}: {name!r} is also "
        f"a submodule of {SEP.join(module.path) or 'the top module'}, {clash}. "
        "Give the value or the submodule another name."
    )


class _RecordedNames:
    """A recording module's ``_name_taken``, Flax's check of a name given to a new
    submodule or variable: a submodule named like a record made before is refused naming
    both, not with Flax's bare "Name in use": at the record, its variables cannot tell
    (it may have none; a dict-valued variable of the module, which Flax allows beside the
    record in another collection, looks the same)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.recorded: dict[str, str] = {}
        """The names recorded, each with its collection."""

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> bool:
        module = self.module
        taken: bool = type(module)._name_taken(module, name, *args, **kwargs)
        collection = kwargs.get("collection", args[1] if len(args) > 1 else None)
        if taken and collection is None and name in self.recorded:  # None: a submodule
            clash = (
                "made after the record, which Flax refuses to make once the record holds the name"
            )
            raise _clash(module, self.recorded[name], name, clash)
        return taken


class _Found(dict[str, _V]):
    """What `collecting` yields: a dict that knows how many Flax applies ran around
    the context (`apply_depth`) when it was entered."""

    depth: int


def apply_depth() -> int:
    """How many Flax ``apply``/``init`` calls run here, one inside another.

    Linen keeps one entry per running apply or init on its stack of
    ``capture_intermediates`` filters; a lifted transform (``nn.vmap``, ``nn.scan``...)
    adds none, so it tells a nested ``.apply`` from the lifted scopes of one call. A
    Flax without that (private) stack reads 0 everywhere: a nested apply then counts as
    the call's own, as it did before phosjax told them apart.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp
      >>> class Depth(nn.Module):
      ...     def __call__(self, x):
      ...         return apply_depth()
      >>> apply_depth(), Depth().apply({}, jnp.ones(2))
      (0, 1)
    """
    stack = getattr(getattr(linen_module, "_context", None), "capture_stack", None)
    return 0 if stack is None else len(stack)


def applied_apart(depth: int) -> bool:
    """Whether the code run here is inside a Flax ``.apply`` (``.init``) nested in a call
    begun where `apply_depth` was ``depth``: a model that call applies inside itself (a
    frozen teacher), whose modules and records are not the call's."""
    return apply_depth() > depth + 1


@contextlib.contextmanager
def collecting(var: contextvars.ContextVar[dict[str, _V] | None]) -> Iterator[dict[str, _V]]:
    """Within it, ``var`` holds a new dict, yielded, that the code run there fills (the
    knobs a trace declares, the notes it keeps aside); ``var``'s value before is restored.

    Only the calls run there fill it, not an ``.apply`` (or ``.init``) nested in them,
    e.g. a frozen teacher a model applies in its own call: `taking` tells.

    Examples:
      >>> var = contextvars.ContextVar("found", default=None)
      >>> with collecting(var) as found:
      ...     var.get()["a"] = 1
      >>> found, var.get()
      ({'a': 1}, None)
    """
    found: _Found[_V] = _Found()
    found.depth = apply_depth()
    _COLLECTED.add(var)
    token = var.set(found)
    try:
        yield found
    finally:
        var.reset(token)


def taking(var: contextvars.ContextVar[dict[str, _V] | None]) -> dict[str, _V] | None:
    """The dict `collecting` put in ``var`` where the code run here is one of that
    context's calls; None outside any, or inside a Flax ``.apply`` (``.init``) nested
    in such a call: the nested model's records are not the caller's (its collections
    are its own), so they are neither what the call declares nor what it dropped.

    Lifted transforms (``nn.vmap``, ``nn.scan``...) stay the call's own: what is written
    inside them is the call's, kept or dropped.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp
      >>> var = contextvars.ContextVar("found", default=None)
      >>> class Inner(nn.Module):
      ...     def __call__(self, x):
      ...         taken = taking(var)
      ...         if taken is not None:
      ...             taken[type(self).__name__] = 1
      ...         return x
      >>> apart = Inner()  # unbound: applied apart
      >>> class Outer(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return Inner()(apart.apply({}, x))
      >>> with collecting(var) as found:
      ...     _ = Outer().apply({}, jnp.ones(2))
      >>> found  # the call's own Inner, not the one applied apart (named None)
      {'Inner': 1}
    """
    found = var.get()
    if not isinstance(found, _Found) or applied_apart(found.depth):
        return None
    return found


@contextlib.contextmanager
def set_aside() -> Iterator[None]:
    """Within it, no `collecting` context takes what the code run there declares (the
    tags, knobs, aux losses and path weights of a trace whose variables are not the
    caller's, e.g. a shape check tracing a detached copy of the model): the caller's
    checks see only its own call.

    Examples:
      >>> var = contextvars.ContextVar("found", default=None)
      >>> with collecting(var) as found:
      ...     with set_aside():
      ...         print(var.get())  # not collecting: nothing is taken
      None
      >>> found
      {}
    """
    tokens = [(var, var.set(None)) for var in _COLLECTED]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def check_recorded(
    collection: str, seen: Iterable[str], recorded: Mapping[str, Any], what: str, lost: str
) -> None:
    """Raises unless every path in ``seen`` (what a call wrote to ``collection``, kept
    whether or not it was recorded) is in ``recorded``, the ``collection`` the call
    returned. A lifted transform (``nn.vmap``, ``nn.scan``...) whose ``variable_axes``
    omit ``collection`` makes it immutable inside: what is written there is dropped.
    A model the call applies inside itself (``.apply`` of a frozen teacher) is not
    checked: `taking` leaves its paths out of ``seen``.

    Raises:
      ValueError: naming the first path missing (as ``what.format(path)``), what is
        ``lost`` and the fix.
      TypeError: ``seen`` is a str (one path, whose characters would be taken for paths)
        or no iterable (None).

    Examples:
      >>> check_recorded("aux_loss", ["a/l1"], {}, "aux loss {!r} was raised", "it is lost")
      Traceback (most recent call last):
      ValueError: aux loss 'a/l1' was raised but not recorded: a lifted transform ...
      >>> check_recorded("aux_loss", "a/l1", {}, "aux loss {!r} was raised", "it is lost")
      Traceback (most recent call last):
      TypeError: The paths written to 'aux_loss' must be a list of them; got the str 'a/l1' as ...
    """
    given = misgiven_paths(seen)
    if given is not None:
        raise TypeError(f"The paths written to {collection!r} must be a list of them; got {given}.")
    kept = flatten(recorded, unwrap=False)
    missed = [path for path in seen if path not in kept]
    if missed:
        raise ValueError(
            f"{what.format(missed[0])} but not recorded: a lifted transform (nn.vmap, "
            f"nn.scan...) whose variable_axes omit {collection!r} dropped it, so {lost}. "
            f"Give that transform variable_axes listing {collection!r}, e.g. "
            "px.scan_axes(params=0), which lists all of phosjax's collections."
        )
