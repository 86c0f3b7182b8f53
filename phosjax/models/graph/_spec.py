"""The graph spec: named nodes, their inputs, and the checked `Graph` built from them.

A spec is a (nested) dict. Each value is a node: a Flax module, a plain function, a
`node(...)` (a module or function with named inputs and a way to combine them), an
`Input()`, or a nested dict (a group, whose nodes get paths ``group/name``). A node
without ``inputs`` takes the node before it in insertion order. Input names are
relative to the node's group (``"conv"``, ``"../stem"``) or absolute (``"/stem"``).
"""

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from phosjax import _listing
from phosjax._callables import a_type, callable_name, cut_repr
from phosjax._nearest import did_you_mean
from phosjax.core import SelectorError, select
from phosjax.layers._common import TRAIN_FLAGS, train_args

SEP = "/"
OUT = "out"
"""The tag name of a node's output: node ``block/conv`` is tagged ``block/conv/out``."""
DEFAULT_INPUT = "input"
_MAX_LISTED = 40
_PATTERN_CHARS = "*?[]"

Combine = Callable[..., Any] | str

COMBINES: dict[str, Callable[..., Any]] = {
    "add": lambda *values: sum(values[1:], values[0]),
    "concat": lambda *values: jnp.concatenate(values, axis=-1),
}
"""The named ways to combine several inputs (``node(..., combine="add")``)."""


class GraphError(ValueError):
    """A graph spec that cannot be built: a missing node, a cycle, a bad name.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models.graph import GraphModel
      >>> GraphModel({"h": node(abs, inputs="nope")}).init(jax.random.key(0), jnp.ones(2))
      Traceback (most recent call last):
      ...
      phosjax.models.graph._spec.GraphError: Node 'h' takes input 'nope', but 'nope' is not ...
    """


@dataclasses.dataclass(frozen=True)
class Input:
    """Marks an input node: its value is fed to the model (``model.apply(v, x)``).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.models.graph import GraphModel
      >>> model = GraphModel({"x": Input(), "h": node(nn.Dense(3), inputs="x")})
      >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
      >>> {path: out.shape for path, out in model.apply(variables, x).items()}
      {'x': (2, 4), 'h': (2, 3)}
    """


@dataclasses.dataclass(frozen=True)
class Node:
    """A node: ``fn`` applied to its inputs (see `node`, which builds one).

    Examples:
      >>> node(abs, inputs=("a", "b"), combine="add")
      Node(fn=<built-in function abs>, inputs=('a', 'b'), combine='add')
    """

    fn: nn.Module | Callable[..., Any] | None = None
    inputs: tuple[str, ...] | None = None
    combine: Combine | None = None


def node(
    fn: nn.Module | Callable[..., Any] | None = None,
    inputs: str | Iterable[str] | None = None,
    combine: Combine | None = None,
) -> Node:
    """A graph node: ``fn`` (a Flax module or a function) applied to the named inputs.

    Args:
      fn: the computation; ``None`` passes its (combined) input through unchanged.
      inputs: node names, relative to the node's group (``"conv"``, ``"../stem"``) or
        absolute (``"/stem"``); ``None`` takes the previous node in insertion order.
      combine: how several inputs become one: ``"add"`` (of arrays of one shape; it does
        not broadcast), ``"concat"`` (last axis) or a function of the input values. Without
        it ``fn`` gets every input as an argument.

    Examples:
      >>> node(inputs="a").inputs
      ('a',)
    """
    if isinstance(combine, str) and combine not in COMBINES:
        raise GraphError(
            f"Unknown combine {combine!r}; use one of {sorted(COMBINES)} or a function."
        )
    return Node(fn, None if inputs is None else input_names(inputs), combine)


def input_names(inputs: str | Iterable[str], call: str = "node") -> tuple[str, ...]:
    """``inputs`` of ``call`` (`node` or `rewire`) as a tuple of names, or a `GraphError`
    saying what they are.

    Examples:
      >>> input_names(3)
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: node(inputs=3): inputs is a node name or ...
    """
    names = (inputs,) if isinstance(inputs, str) else inputs
    held = ""
    if isinstance(names, Iterable) and not isinstance(names, Set):
        names = tuple(names)
        others = [(i, name) for i, name in enumerate(names) if not isinstance(name, str)]
        if not others:
            return names
        if isinstance(inputs, list | tuple):  # a long one's cut repr may not show it
            i, name = others[0]
            held = (
                f"; inputs[{i}] is {cut_repr(name)} (of type {type(name).__name__}), not a "
                "node name (a str)"
            )
    raise GraphError(
        f"{call}(inputs={cut_repr(inputs)}): inputs is a node name or a tuple of node names, "
        f"e.g. inputs='conv' or inputs=('conv', 'stem') (in order: a set has none){held}."
    )


def as_names(value: str | Iterable[str], what: str, example: str, kind: str = "node") -> list[str]:
    """``value``, a name or an iterable of names, as a list; or a `GraphError` naming
    ``what``, the wrong value's type and an ``example`` name of a ``kind``.

    Examples:
      >>> as_names("logits", "outputs", "logits")
      ['logits']
      >>> as_names(3, "outputs", "logits")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: outputs is 3 (of type int), not a node name ...
    """
    if not isinstance(value, str | Iterable):
        raise GraphError(
            f"{what} is {cut_repr(value)} (of type {type(value).__name__}), not a {kind} "
            f"name (a str) or a list of them, such as {example!r} or [{example!r}]."
        )
    names = [value] if isinstance(value, str) else list(value)
    for name in names:
        if not isinstance(name, str):
            raise GraphError(
                f"{what} names {cut_repr(name)} (of type {type(name).__name__}), but a {kind} is "
                f"named by a str, such as {example!r}."
            )
    return names


def as_selectors(
    value: str | Iterable[str], what: str, example: str, kind: str = "node", default: str = ""
) -> list[str]:
    """`as_names` of selectors, of which there must be one at least (an empty list would
    select nothing, silently), none of them ``""``; ``default`` ends the error, saying
    what else to give.

    Examples:
      >>> as_selectors([], "train_only's selectors", "adapter/**", "parameter")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: train_only's selectors is empty ([]), so it ...
      >>> as_selectors("", "outputs", "logits")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: outputs names '', which selects no node; give ...
    """
    names = as_names(value, what, example, kind)
    if not names or "" in names:
        empty = "names '', which" if names else f"is empty ({value!r}), so it"
        raise GraphError(
            f"{what} {empty} selects no {kind}; give a {kind} selector, "
            f"such as {example!r} or '**' for every {kind}{default}."
        )
    return names


def listing(paths: Iterable[str]) -> str:
    """``'a', 'b'`` for error messages, cut after `_MAX_LISTED` with a count of the rest.

    Examples:
      >>> listing(["a", "b"]), listing(map(str, range(42)))[-21:]
      ("'a', 'b'", "'38', '39' and 2 more")
    """
    return _listing.listing([repr(p) for p in paths], _MAX_LISTED)


def resolve(name: str, group: tuple[str, ...], what: str) -> str:
    """The absolute path of input ``name`` written in ``group``; ``what`` starts the error
    for a name that goes above the root.

    Examples:
      >>> [resolve(name, ("x",), "input") for name in ("../stem", "/a/b", "c")]
      ['stem', 'a/b', 'x/c']
      >>> resolve("../../a", ("g",), "Node 'g/b' takes input")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 'g/b' takes input '../../a', which goes ...
      >>> resolve("a/", (), "Node 'b' takes input")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 'b' takes input 'a/', which has an empty ...
    """
    parts = list(group)
    segments = name.split(SEP)
    if name.startswith(SEP):
        parts, segments = [], segments[1:]
    named = [s for s in segments if s]
    # "a/", "a//b"; not "", "/", "./" or "../": a group or the root however written (the
    # caller says so)
    if len(named) < len(segments) and not set(named) <= {".", ".."}:
        meant = SEP * name.startswith(SEP) + SEP.join(named)
        raise GraphError(
            f"{what} {name!r}, which has an empty path segment (a '/' at its end or doubled); "
            f"write {meant!r}."
        )
    for segment in segments:
        if segment == "..":
            if not parts:
                where = f"in group {SEP.join(group)!r}" if group else "at the top level"
                raise GraphError(
                    f"{what} {name!r}, which goes above the root of the graph (read {where}); "
                    f"name it from the root, e.g. '/{segments[-1]}'."
                )
            parts.pop()
        elif segment not in ("", "."):
            parts.append(segment)
    return SEP.join(parts)


def bad_name(name: str) -> str | None:
    """Why ``name`` (one path segment) cannot name a node or group; None when it can.

    Examples:
      >>> bad_name("conv_1") is None, bad_name("..")
      (True, "a path segment cannot be empty, '.' or '..'")
    """
    if name in ("", ".", ".."):
        return "a path segment cannot be empty, '.' or '..'"
    chars = [c for c in _PATTERN_CHARS if c in name]
    if chars:
        return (
            f"{chars[0]!r} makes it a selector pattern, so outputs=, probe and inject "
            "could not pick it by name"
        )
    if name.startswith("re:"):
        return "'re:' makes it a regular expression for selectors"
    return None


def top_level_why(name: str) -> str | None:
    """Why ``name`` cannot name a top-level node or group; None when it can.

    Examples:
      >>> top_level_why("params")
      "its variables would be at 'params/params', which Flax takes for a params dict ..."
    """
    if name != "params":
        return None
    return (
        "its variables would be at 'params/params', which Flax takes for a params dict "
        "passed inside another"
    )


def walk(spec: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """``(path, node)`` of each node of a (nested) spec, in spec order; a `GraphError`
    names a key that cannot name a node, or an empty group (it would be dropped).

    Examples:
      >>> [path for path, _ in walk({"a": abs, "g": {"b": abs}})]
      ['a', 'g/b']
      >>> list(walk({"a": abs, "g": {"h": {}}}))
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Group 'g/h' is empty: a group is a dict of ...
    """
    for key, value in spec.items():
        if not isinstance(key, str):
            where = f"in group {SEP.join(prefix)!r}" if prefix else "at the top level"
            raise GraphError(
                f"Node key {cut_repr(key)} {where} is of type {type(key).__name__}, not a str: a "
                "node or group is named by a str, such as 'dense' (its variables' path)."
            )
        parts = tuple(key.split(SEP))
        why = next((bad_name(part) for part in parts if bad_name(part)), None)
        why = why or (None if prefix else top_level_why(parts[0]))
        if why:
            where = f"in group {SEP.join(prefix)!r}" if prefix else "at the top level"
            raise GraphError(f"Bad node name {key!r} {where}: {why}; rename it.")
        if isinstance(value, Mapping) and not value:
            raise GraphError(
                f"Group {SEP.join(prefix + parts)!r} is empty: a group is a dict of nodes, "
                "so it would add none; give it its nodes, or leave it out of the spec."
            )
        if isinstance(value, Mapping):
            yield from walk(value, prefix + parts)
        else:
            yield SEP.join(prefix + parts), value


def _check_groups(paths: Iterable[str]) -> None:
    """Raises a `GraphError` when a node's path is also the group of another node.

    Examples:
      >>> _check_groups(["a", "a/b"])
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 'a' is also the group of node 'a/b'; ...
    """
    paths = list(paths)
    known = set(paths)
    for path in paths:
        parts = path.split(SEP)
        for end in range(1, len(parts)):
            group = SEP.join(parts[:end])
            if group in known:
                raise GraphError(
                    f"Node {group!r} is also the group of node {path!r}; a path is either "
                    "a node or a group, so rename one of them."
                )


def _as_node(path: str, value: Any) -> Node | Input:
    """``value`` as a node, or a `GraphError` naming node ``path``.

    Examples:
      >>> _as_node("act", "relu")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 'act' is a str ('relu' names no node: give ...
      >>> _as_node("d", nn.Dense)
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 'd' is the class Dense, not an instance; ...
    """
    fn = value.fn if isinstance(value, Node) else value
    if isinstance(value, Node) and isinstance(fn, Input):
        raise GraphError(
            f"Node {path!r} is node(Input(), ...), but an input node takes no inputs; "
            f"write {path.split(SEP)[-1]!r}: Input() in the spec."
        )
    if isinstance(fn, type) and issubclass(fn, nn.Module | Input):
        instance = "Input()" if fn is Input else f"{fn.__name__}(...) with its attributes"
        raise GraphError(
            f"Node {path!r} is the class {fn.__name__}, not an instance; pass an instance "
            f"such as {instance}."
        )
    if isinstance(value, Node):
        _check_callables(path, value)
    if isinstance(value, Node | Input):
        return value
    if isinstance(value, nn.Module) or callable(value):
        return Node(value)
    found = getattr(nn, value, None) if isinstance(value, str) else None
    hint = ""
    if callable(found):  # a layer or activation named as in Keras
        made = isinstance(found, type)
        give = f"an instance, nn.{value}(...)" if made else f"the function itself, nn.{value}"
        hint = f" ({value!r} names no node: give {give})"
    raise GraphError(
        f"Node {path!r} is {a_type(value)}{hint}; a node is a Flax module, a function, "
        "node(...), Input() or a dict of nodes."
    )


def _check_callables(path: str, n: Node) -> None:
    """Raises a `GraphError` when node ``path``'s ``fn`` or ``combine`` cannot be called.

    Examples:
      >>> _check_callables("c", node(3, inputs="a"))
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 'c' has fn=3 (of type int), which cannot ...
    """
    choices = (
        ("fn", n.fn, "a Flax module or a function"),
        ("combine", n.combine, "'add', 'concat' or a function"),
    )
    for what, value, right in choices:
        if value is not None and not isinstance(value, str) and not callable(value):
            raise GraphError(
                f"Node {path!r} has {what}={cut_repr(value)} (of type {type(value).__name__}), "
                f"which cannot be called; give {right}."
            )


def _signature(fn: Any) -> inspect.Signature | None:
    """The call signature of a function or module (``self`` left out); None when it has
    none (some builtins)."""
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _described(fn: Any, signature: inspect.Signature) -> str:
    """``name(parameters)`` of a function or module, for error messages.

    Examples:
      >>> _described(lambda p, q=1: p, inspect.signature(lambda p, q=1: p))
      '<lambda>(p, q)'
      >>> import functools; where = functools.partial(jnp.where, True)
      >>> _described(where, inspect.signature(where))
      'partial(where, True)(x, y, size, fill_value)'
    """
    return f"{callable_name(fn)}({', '.join(signature.parameters)})"


def node_train_args(
    path: str, fn: Any, train: bool, inputs: int
) -> tuple[tuple[bool, ...], dict[str, bool]]:
    """`train_args` of node ``path``'s ``fn`` given ``inputs`` values (positional when the
    flag follows the inputs, so a node lifted with ``nn.remat`` can mark it static); a
    `GraphError` naming the node when ``fn`` needs more than these and a train flag.

    Examples:
      >>> node_train_args("c", lambda x, train=False: x, True, 1)
      ((True,), {})
      >>> node_train_args("c", abs, False, 0)
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 'c': abs requires the parameter ... Node 'c'
      takes no inputs (inputs=()); give it the nodes its fn takes, e.g. inputs=('input',), ...
    """
    if fn is None:
        return (), {}
    try:
        return train_args(fn, train, inputs)
    except TypeError as error:
        hint = (
            f" Node {path!r} takes no inputs (inputs=()); give it the nodes its fn takes, e.g. "
            f"inputs=({DEFAULT_INPUT!r},), or a fn that needs no argument (a constant)."
            if inputs == 0
            else ""
        )
        raise GraphError(f"Node {path!r}: {error}{hint}") from error


def _check_fn_arity(path: str, n: Node, inputs: tuple[str, ...]) -> None:
    """Raises a `GraphError` when node ``path``'s ``fn`` cannot take what it is given (its
    inputs, or one combined value): too many positional arguments, one that would land on
    its train flag, or too few for a parameter it requires (see `node_train_args`).

    Examples:
      >>> _check_fn_arity("c", node(lambda p: p, inputs=("a", "b")), ("a", "b"))
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 'c' gives its fn <lambda>(p) its 2 inputs ...
    """
    signature = None if n.fn is None else _signature(n.fn)
    if signature is None:
        return
    combined = n.combine is not None
    try:
        bound = signature.bind_partial(*((None,) if combined else inputs))
        flag = next((name for name in bound.arguments if name in TRAIN_FLAGS), None)
        if flag is not None:
            raise TypeError(f"an input would be its train flag {flag!r}")
    except TypeError as error:
        fn = f"Node {path!r} gives its fn {_described(n.fn, signature)}"
        raise GraphError(
            f"{fn} the one value its combine makes of its inputs, but it cannot take it "
            f"({error}); give it a fn of one argument."
            if combined
            else f"{fn} its {len(inputs)} inputs ({listing(inputs)}) as arguments, but it "
            f"cannot take them ({error}); combine them with combine='add', 'concat' or a "
            f"function, or give it a fn of {len(inputs)} arguments."
        ) from None
    node_train_args(path, n.fn, False, 1 if combined else len(inputs))


def _check_arity(path: str, n: Node, inputs: tuple[str, ...]) -> None:
    """Raises a `GraphError` when node ``path`` cannot take its ``inputs``: a pass-through
    (no ``fn``) without a combine gets other than one, a named combine gets none, its
    combine function cannot take them, or its ``fn`` cannot take what it is given.

    Examples:
      >>> _check_arity("c", node(inputs=("a", "b")), ("a", "b"))
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 'c' passes its input through ...
    """
    count = len(inputs)
    if n.fn is None and n.combine is None and count != 1:
        raise GraphError(
            f"Node {path!r} passes its input through (no fn, no combine) but takes {count} "
            f"inputs ({listing(inputs)}); give it combine='add', 'concat' or a function of "
            f"{count} values, or a single input."
        )
    if isinstance(n.combine, str) and count == 0:
        raise GraphError(
            f"Node {path!r} combines its inputs with {n.combine!r} but takes none "
            "(inputs=()); give it the nodes to combine, e.g. inputs=('a', 'b')."
        )
    _check_fn_arity(path, n, inputs)
    signature = None if isinstance(n.combine, str | None) else _signature(n.combine)
    if signature is None:
        return
    try:
        signature.bind(*inputs)
    except TypeError as error:
        raise GraphError(
            f"Node {path!r} combines {count} inputs ({listing(inputs)}), but its combine "
            f"{_described(n.combine, signature)} cannot take them ({error}); give it a function "
            f"of {count} values, e.g. lambda *values: ..."
        ) from None


def _outer_hint(name: str, group: tuple[str, ...], nodes: Iterable[str]) -> str:
    """For input ``name``, written in ``group`` where it names no node, the way to write
    the node it names from an enclosing group (input names are relative); "" if none.

    Examples:
      >>> _outer_hint("stem", ("block", "inner"), ["stem", "block/inner/add"])
      ". Input names are relative to the node's group 'block/inner': write '../../stem' ...
    """
    if name.startswith(SEP):
        return ""
    for depth in range(len(group) - 1, -1, -1):
        try:
            outer = resolve(name, group[:depth], "")
        except GraphError:  # goes above the root from there
            return ""
        if outer in nodes:
            return (
                f". Input names are relative to the node's group {SEP.join(group)!r}: write "
                f"{_relative(outer, group)!r} or {SEP + outer!r} for node {outer!r}."
            )
    return ""


def _relative(path: str, group: tuple[str, ...]) -> str:
    """The shortest name of node ``path`` from ``group`` (no ``.`` or needless ``..``).

    Examples:
      >>> _relative("stem", ("block", "inner")), _relative("block/stem", ("block", "inner"))
      ('../../stem', '../stem')
    """
    parts = path.split(SEP)
    shared = 0
    while shared < min(len(group), len(parts) - 1) and group[shared] == parts[shared]:
        shared += 1
    return "../" * (len(group) - shared) + SEP.join(parts[shared:])


def _with_default_input(entries: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The ``(path, value)`` entries of a spec without `Input` nodes, with the default
    input node first; as they are when a node is named like it and the first node names
    its inputs (an input `rewire` made a pass-through: the graph has no input), else a
    `GraphError`.

    Examples:
      >>> [path for path, _ in _with_default_input([("h", abs)])]
      ['input', 'h']
      >>> _with_default_input([("input", abs)])
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: The graph has no Input() node and a node ...
    """
    if all(path != DEFAULT_INPUT for path, _ in entries):
        return [(DEFAULT_INPUT, Input()), *entries]
    first = entries[0][1]
    if isinstance(first, Node) and first.inputs is not None:
        return entries
    raise GraphError(
        f"The graph has no Input() node and a node named {DEFAULT_INPUT!r}; "
        f"mark the input with {DEFAULT_INPUT!r}: Input() or rename the node."
    )


def _without_unread_default_input(nodes: dict[str, Node | Input]) -> dict[str, Node | Input]:
    """The resolved ``nodes`` of a spec without `Input` nodes, less the default input
    `_with_default_input` added when no node reads it and it is not alone: a graph whose
    nodes compute from constants has no input.

    Examples:
      >>> list(_without_unread_default_input({"input": Input(), "c": Node(lambda: 1, ())}))
      ['c']
    """
    read = any(DEFAULT_INPUT in (n.inputs or ()) for n in nodes.values() if isinstance(n, Node))
    if read or len(nodes) == 1 or not isinstance(nodes.get(DEFAULT_INPUT), Input):
        return nodes
    return {path: n for path, n in nodes.items() if path != DEFAULT_INPUT}


class Graph:
    """A checked graph: every input resolved to an existing node, no cycles.

    Attributes:
      nodes: ``{path: Node | Input}`` in spec order; each `Node`'s inputs are absolute.
      order: the paths in an order where every node follows its inputs.
      inputs: the paths of the `Input` nodes; none when the spec has no `Input` and no
        node reads the default ``"input"`` (its nodes compute from constants).
      sinks: the paths no node takes as input (the graph's outputs).
      edges: ``(source, target)`` pairs.

    Examples:
      >>> block = {"a": abs, "b": node(inputs=("a", "/h"), combine="add")}
      >>> g = Graph({"h": node(abs), "block": block})
      >>> g.order
      ('input', 'h', 'block/a', 'block/b')
      >>> g.edges[-2:]
      (('block/a', 'block/b'), ('h', 'block/b'))
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping):
            raise GraphError(
                f"A graph spec is a dict {{name: node}}, not {a_type(spec)}; e.g. "
                "{'dense': nn.Dense(8), 'act': nn.relu} (nodes run in insertion order)."
            )
        if not spec:
            raise GraphError(
                "The graph spec is empty ({}), so the model would have no node but the "
                "input it adds; give it its nodes, e.g. {'dense': nn.Dense(8), 'act': nn.relu}."
            )
        entries = list(walk(spec))
        added = not any(isinstance(value, Input) for _, value in entries)
        if added:
            entries = _with_default_input(entries)
        nodes: dict[str, Node | Input] = {}
        for path, value in entries:
            if path in nodes:
                raise GraphError(
                    f"Node {path!r} is defined twice: a key with '/' in it names the same "
                    f"path as a nested group's key (such as {path!r} and a group "
                    f"{path.split(SEP)[0]!r} holding the rest); keep one of them."
                )
            nodes[path] = _as_node(path, value)
        _check_groups(nodes)
        resolved = self._resolve(nodes)
        self.nodes = _without_unread_default_input(resolved) if added else resolved
        self.inputs = tuple(p for p, n in self.nodes.items() if isinstance(n, Input))
        self.edges = tuple(
            (source, path)
            for path, n in self.nodes.items()
            if isinstance(n, Node)
            for source in n.inputs or ()
        )
        taken = {source for source, _ in self.edges}
        self.sinks = tuple(p for p in self.nodes if p not in taken)
        self.order = self._sorted()

    def _resolve(self, nodes: dict[str, Node | Input]) -> dict[str, Node | Input]:
        resolved: dict[str, Node | Input] = {}
        previous: str | None = None
        for path, n in nodes.items():
            if isinstance(n, Node):
                group = tuple(path.split(SEP)[:-1])
                if n.inputs is None:
                    if previous is None:  # so the spec has Input nodes, none before it
                        own = [p for p, spec in nodes.items() if isinstance(spec, Input)]
                        raise GraphError(
                            f"Node {path!r} comes first, so it needs inputs=: the spec has "
                            f"its own input nodes ({listing(own)}), so no {DEFAULT_INPUT!r} "
                            "node is added before it. Give it inputs=, or put an Input() "
                            "first in the spec."
                        )
                    names: tuple[str, ...] = (SEP + previous,)
                else:
                    names = n.inputs
                absolute = tuple(
                    resolve(name, group, f"Node {path!r} takes input") for name in names
                )
                for name, source in zip(names, absolute, strict=True):
                    if source not in nodes:
                        what = f"Node {path!r} takes input {name!r}"
                        raise self.missing(source, nodes, what, _outer_hint(name, group, nodes))
                _check_arity(path, n, absolute)
                n = dataclasses.replace(n, inputs=absolute)
            resolved[path] = n
            previous = path
        return resolved

    @staticmethod
    def missing(path: str, nodes: Iterable[str], what: str, hint: str = "") -> GraphError:
        """The error for a name that is not a node (it lists the existing nodes, and the
        nearest, as a list of many is cut, or ends with ``hint`` when given).

        Examples:
          >>> print(Graph.missing("", ["a", "g/b"], "Node 'g/b' takes input '..'"))
          Node 'g/b' takes input '..', which names the root of the graph, a group, not a
          node; existing nodes: 'a', 'g/b'.
          >>> nodes = [f"block{i}/conv" for i in range(50)] + ["head"]
          >>> print(Graph.missing("haed", nodes, "rewire names 'haed'"))
          rewire names 'haed', but 'haed' is not a node; existing nodes: 'block0/conv', ...,
          'block39/conv' and 11 more. Did you mean 'head'?
        """
        nodes = list(nodes)
        if not path:  # '..' from a top-level group, or '/'
            return GraphError(
                f"{what}, which names the root of the graph, a group, not a node; existing "
                f"nodes: {listing(nodes)}."
            )
        below = [p for p in nodes if p.startswith(path + SEP)]
        kind = f"is a group (its nodes: {listing(below)})" if below else "is not a node"
        hint = hint or ("" if below else did_you_mean([path], nodes))
        return GraphError(
            f"{what}, but {path!r} {kind}; existing nodes: {listing(nodes)}{hint or '.'}"
        )

    def _sorted(self) -> tuple[str, ...]:
        order: list[str] = []
        state: dict[str, str] = {}  # "open" while on the stack, then "done"
        for start in self.nodes:
            stack: list[tuple[str, Iterator[str]]] = []
            if state.get(start) != "done":
                state[start] = "open"
                stack.append((start, iter(self.inputs_of(start))))
            while stack:
                path, pending = stack[-1]
                source = next(pending, None)
                if source is None:
                    stack.pop()
                    state[path] = "done"
                    order.append(path)
                elif state.get(source) == "open":
                    on_stack = [p for p, _ in stack]
                    cycle = [*on_stack[on_stack.index(source) :], source]
                    raise GraphError("The graph has a cycle: " + " -> ".join(reversed(cycle)))
                elif source not in state:
                    state[source] = "open"
                    stack.append((source, iter(self.inputs_of(source))))
        return tuple(order)

    def inputs_of(self, path: str) -> tuple[str, ...]:
        """The absolute paths of the inputs of node ``path`` (none for an `Input`).

        Examples:
          >>> block = {"a": abs, "b": node(inputs=("a", "/h"), combine="add")}
          >>> g = Graph({"h": node(abs), "block": block})
          >>> g.inputs_of("block/b"), g.inputs_of("block/a"), g.inputs_of("input")
          (('block/a', 'h'), ('h',), ())
        """
        n = self.nodes[path]
        return n.inputs or () if isinstance(n, Node) else ()

    def needed(self, targets: Iterable[str], given: Iterable[str] = ()) -> tuple[str, ...]:
        """The nodes that computing ``targets`` needs when the ``given`` nodes are known.

        Returned in `order`; the search stops at given nodes, which are included.

        Examples:
          >>> block = {"a": abs, "b": node(inputs=("a", "/h"), combine="add")}
          >>> g = Graph({"h": node(abs), "block": block})
          >>> g.needed(["h"]), g.needed(["block/b"], given=["h"])
          (('input', 'h'), ('h', 'block/a', 'block/b'))
        """
        given, seen = set(given), set()
        todo = list(targets)
        while todo:
            path = todo.pop()
            if path not in seen:
                seen.add(path)
                if path not in given:
                    todo.extend(self.inputs_of(path))
        return tuple(p for p in self.order if p in seen)

    def select(self, selectors: str | Iterable[str], what: str) -> tuple[str, ...]:
        """The nodes that any of ``selectors`` (the argument ``what``) match (see
        `phosjax.select`), each must match.

        Raises:
          SelectorError: a selector matches no node (the nearest are listed; a group's
            path is said to be one, with the selector of its nodes).
          GraphError: ``selectors`` are not a str or an iterable of them, or none (an
            empty list would select nothing, silently).

        Examples:
          >>> Graph({"h": abs}).select([], "outputs")
          Traceback (most recent call last):
          phosjax.models.graph._spec.GraphError: outputs is empty ([]), so it selects no ...
        """
        default = " (or None, the default: the graph's outputs)"
        selectors = as_selectors(selectors, what, self.order[-1], default=default)
        paths = []
        for selector in selectors:
            found = select(self.order, selector, what="node", allow_empty=True)
            below = [p for p in self.order if p.startswith(selector + SEP)]
            if not found and below:
                raise SelectorError(
                    f"{what} selects {selector!r}, a group, not a node (its nodes: "
                    f"{listing(below)}); select them with '{selector}/**', or name one."
                )
            inside = "" if found else self.inside_graph_node(selector)
            if inside:
                raise SelectorError(f"{what} selects {selector!r}, which is no node{inside}")
            paths += found or select(self.order, selector, what="node")  # raises: nearest
        return tuple(dict.fromkeys(paths))

    def check_nodes(self, paths: Iterable[str], what: str) -> None:
        """Raises a `GraphError` naming the first of ``paths`` that is not a node (or not
        a name at all).

        Examples:
          >>> Graph({"h": abs}).check_nodes([["h"]], "returns")
          Traceback (most recent call last):
          phosjax.models.graph._spec.GraphError: returns names ['h'] (of type list), but a node ...
        """
        for path in as_names(paths, what, self.order[-1]):
            if path not in self.nodes:
                hint = self.inside_graph_node(path)
                raise self.missing(path, self.nodes, f"{what} names {path!r}", hint)

    def inside_graph_node(self, path: str) -> str:
        """For ``path``, which names no node, how to reach it when it lies inside a node
        that is a graph model (whose nodes are tagged inside it, no nodes of this graph):
        its value by its tag, with `phosjax.probe` and `phosjax.inject`, the node itself
        (`rewire`, `extract`) in that graph model; "" otherwise.

        Examples:
          >>> from phosjax.models.graph import GraphModel
          >>> print(Graph({"inner": GraphModel({"d": abs})}).inside_graph_node("inner/d"))
          ; it lies inside node 'inner', a graph model, whose nodes are not this graph's:
          px.probe(model, variables, x, 'inner/d/out') reaches its value (px.inject
          replaces it there), and rewire or extract goes on that graph model itself.
        """
        node = next((n for n in self.order if path.startswith(n + SEP)), None)
        fn = getattr(self.nodes[node], "fn", None) if node is not None else None
        if not isinstance(getattr(fn, "graph", None), Graph):
            return ""
        tag = f"{path}{SEP}{OUT}"
        return (
            f"; it lies inside node {node!r}, a graph model, whose nodes are not this "
            f"graph's: px.probe(model, variables, x, {tag!r}) reaches its value (px.inject "
            "replaces it there), and rewire or extract goes on that graph model itself."
        )

    def spec(self) -> dict[str, Node | Input]:
        """A flat spec ``{path: node}`` with absolute inputs, which rebuilds this graph.

        Examples:
          >>> block = {"a": abs, "b": node(inputs=("a", "/h"), combine="add")}
          >>> g = Graph({"h": node(abs), "block": block})
          >>> list(g.spec()), g.spec()["block/b"].inputs
          (['input', 'h', 'block/a', 'block/b'], ('/block/a', '/h'))
          >>> Graph(g.spec()).edges == g.edges
          True
        """
        return {
            p: dataclasses.replace(n, inputs=tuple(SEP + s for s in n.inputs or ()))
            if isinstance(n, Node)
            else n
            for p, n in self.nodes.items()
        }

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} nodes, inputs={self.inputs}, sinks={self.sinks})"

    def __eq__(self, other: object) -> bool:
        """Graphs of the same nodes, in the same order, are equal (as are models built
        from one spec twice: a `GraphModel` compares its fields).

        Examples:
          >>> Graph({"h": abs, "y": abs}) == Graph({"h": abs, "y": abs}), Graph({"h": abs}) == 1
          (True, False)
        """
        if not isinstance(other, Graph):
            return NotImplemented
        try:
            return list(self.nodes.items()) == list(other.nodes.items())
        except (ValueError, TypeError):  # two modules holding arrays: the same ones alone
            return False

    def __hash__(self) -> int:  # of the paths alone: a node's fn may be unhashable
        return hash(tuple(self.nodes))
