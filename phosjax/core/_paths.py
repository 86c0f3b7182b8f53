"""Flat ``{"a/b/name": value}`` views of nested variable trees.

A Flax collection is a nested dict keyed by module names. phosjax names each entry by
its module path joined with ``/``, the variable (or tag) name last. Values recorded
with ``sow`` are tuples (one item per call); `flatten` unwraps single-call tuples.
"""

from collections.abc import Mapping
from typing import Any

from phosjax._callables import shown

SEP = "/"


def _is_record(value: Any) -> bool:
    return isinstance(value, tuple)


def flatten(tree: Mapping[str, Any], *, unwrap: bool = True) -> dict[str, Any]:
    """Flattens a nested collection to ``{path: value}``.

    Args:
      tree: a nested mapping, as Flax returns a collection.
      unwrap: a ``sow`` record of one call (a 1-tuple) becomes its value; a record of
        several calls stays a tuple.

    Raises:
      TypeError: ``tree`` is no mapping (None, an array): a value at the root has no path.

    Examples:
      >>> flatten({"blocks_0": {"pre_act": (1.0,)}, "w": 2.0})
      {'blocks_0/pre_act': 1.0, 'w': 2.0}
      >>> flatten(None)
      Traceback (most recent call last):
      TypeError: flatten takes a nested mapping of values by name, such as a Flax ...
    """
    if not isinstance(tree, Mapping):  # it was {'': tree}: no path names a value at the root
        raise TypeError(
            "flatten takes a nested mapping of values by name, such as a Flax collection "
            f"(variables['params']), got {shown(tree)}."
        )
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, child in node.items():
                walk(f"{prefix}{SEP}{key}" if prefix else str(key), child)
        elif unwrap and _is_record(node) and len(node) == 1:
            flat[prefix] = node[0]
        else:
            flat[prefix] = node

    walk("", tree)
    return flat


def keys_joined(path: Any) -> str | None:
    """What to give for ``path``, a tuple of keys (as Flax's ``flatten_dict`` and
    ``module.path`` give), in a message: its keys joined by `SEP`; None for another path.

    Examples:
      >>> keys_joined(("blocks_0", "dense")), keys_joined(0)
      ("'blocks_0/dense', its keys joined by '/'", None)
    """
    if isinstance(path, tuple) and all(isinstance(key, str) for key in path):
        return f"{SEP.join(path)!r}, its keys joined by {SEP!r}"
    return None


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Builds a nested dict from ``{path: value}``; the inverse of `flatten` for plain trees.

    Raises:
      ValueError: one path is a prefix of another (``"a"`` and ``"a/b"``): a tree cannot
        hold a value at ``a`` and another below it; both paths are named.
      TypeError: a path is no str (``{1: x}``; a tuple of keys, as Flax's
        ``flatten_dict`` gives), named.

    Examples:
      >>> unflatten({"a/b": 1, "a/c": 2})
      {'a': {'b': 1, 'c': 2}}
      >>> unflatten({"a/b": 1, "a": 2})
      Traceback (most recent call last):
      ValueError: Paths 'a' and 'a/b' cannot both be in one tree: 'a' holds a value, ...
    """
    tree: dict[str, Any] = {}
    made = {id(tree)}  # the dicts built here, not values that happen to be dicts
    for path, value in flat.items():
        if not isinstance(path, str):
            fix = keys_joined(path) or "str(path)"
            raise TypeError(
                f"unflatten takes {{path: value}} with paths such as 'blocks_0/pre_act', got "
                f"the path {path!r} ({type(path).__name__}); give {fix}."
            )
        *parents, leaf = path.split(SEP)
        node = tree
        for depth, key in enumerate(parents):
            if key in node and id(node[key]) not in made:
                _collide(SEP.join(parents[: depth + 1]), path)
            node = node.setdefault(key, {})
            made.add(id(node))
        if leaf in node:
            _collide(path, next(p for p in flat if p.startswith(path + SEP)))
        node[leaf] = value
    return tree


def _collide(value_path: str, below: str) -> None:
    raise ValueError(
        f"Paths {value_path!r} and {below!r} cannot both be in one tree: {value_path!r} holds "
        f"a value, and {below!r} would put another below it."
    )


def check_name(name: Any, what: str) -> None:
    """Raises unless ``name`` can be the last segment of a path: a non-empty string
    without ``/`` (else `flatten` and `unflatten` would split it into two segments).

    Examples:
      >>> check_name("pre/act", "tag")
      Traceback (most recent call last):
      ValueError: tag name 'pre/act' must be a non-empty string without '/': ...
    """
    if not (isinstance(name, str) and name and SEP not in name):
        raise ValueError(
            f"{what} name {name!r} must be a non-empty string without {SEP!r}: it is the last "
            f"segment of a path (the module's path, then the name); e.g. 'pre_act'."
        )


def check_path(module: Any, name: str, what: str) -> None:
    """Raises unless ``name`` (see `check_name`) and every segment of ``module``'s path
    can be segments of a path: Flax accepts a ``/`` in a submodule's name (``name="a/b"``,
    a dict key ``{"a/b": ...}``), but the path would split there, and an empty name
    (``name=""``), a segment no selector names; inject, grad_of and tweak would silently
    miss the value."""
    check_name(name, what)
    for segment in module.path:
        if segment and SEP not in segment:
            continue
        why = f"holds {SEP!r}" if segment else "is empty"
        fix = f"without {SEP!r}" if segment else "to a non-empty name"
        raise ValueError(
            f"{what} {name!r} is in module {SEP.join(module.path)!r}, whose path segment "
            f"{segment!r} {why}: phosjax joins path segments with {SEP!r}, so it could not "
            f"find the {what} again. Rename that submodule (its name= or dict key) {fix}."
        )


def module_path(module: Any, name: str) -> str:
    """The phosjax path of variable ``name`` in a bound Flax module."""
    return SEP.join((*module.path, name))
