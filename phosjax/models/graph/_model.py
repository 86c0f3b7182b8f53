"""`GraphModel`: a Flax module that runs a `Graph` and returns every node's output."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from phosjax._callables import a_type, cut_repr
from phosjax._nearest import did_you_mean
from phosjax.core import INJECTIONS
from phosjax.core._inject import in_dtypes_of
from phosjax.core._knobs import holds_exactly, what_holds
from phosjax.core._numbers import numbers_as_array, numbers_read_together
from phosjax.core._record import set_aside
from phosjax.core._selectors import select
from phosjax.core._tags import calls_tagged, tag_output
from phosjax.layers._common import (
    batch_train,
    block_keywords,
    check_keywords,
    checked_train,
    takes_keyword,
    zero_mask_padding,
)
from phosjax.models.graph import _draw
from phosjax.models.graph._abstract import eval_shape_as_applied
from phosjax.models.graph._spec import (
    COMBINES,
    OUT,
    SEP,
    Graph,
    GraphError,
    Input,
    Node,
    listing,
    node_train_args,
)


def _feed_error(x: Any, inputs: tuple[str, ...]) -> GraphError:
    """The error for an ``x`` that does not fit a graph's ``inputs``.

    Examples:
      >>> print(_feed_error({"a": 1, "bb": 2}, ("a", "b")))
      x has keys that are not input nodes: 'bb'; the input nodes are 'a', 'b',
      and x gives no value for 'b'. Did you mean 'b'?
    """
    if not isinstance(x, Mapping):
        return GraphError(
            f"The graph has {len(inputs)} input nodes ({listing(inputs)}); "
            "pass x as a dict {input node: value}."
        )
    unknown = [key for key in x if key not in inputs]
    missing = [path for path in inputs if path not in x]
    gives = f", and x gives no value for {listing(missing)}" if missing else ""
    value = (
        f" To feed a dict as the value of {inputs[0]!r}, pass {{{inputs[0]!r}: the dict}} (a "
        "dict whose keys name no node and no input node is fed as one value as it is)."
        if len(inputs) == 1
        else ""
    )
    near = did_you_mean([k for k in unknown if isinstance(k, str)], missing)  # given: no hint
    return GraphError(
        f"x has keys that are not input nodes: {listing(unknown)}; "
        f"the input nodes are {listing(inputs)}{gives}{near or '.'}{value}"
    )


def _misnamed_feeds(x: Mapping[Any, Any], graph: Graph) -> list[str]:
    """The keys of the dict ``x`` that look like an input node's name without being one:
    a node of ``graph``, or a path that ends like one of its input nodes (``'input'`` for
    ``'a/input'``, and the other way round).

    Examples:
      >>> _misnamed_feeds({"a/input": 1, "p": 2, "h": 3}, Graph({"h": abs}))
      ['a/input', 'h']
    """
    ends = {path.split(SEP)[-1] for path in graph.inputs}
    return [
        key
        for key in x
        if isinstance(key, str)
        and key not in graph.inputs
        and (key in graph.nodes or key.split(SEP)[-1] in ends)
    ]


def _entry(tree: Any, keys: Iterable[str]) -> Any:
    """The entry of the nested mapping ``tree`` at ``keys``, or None.

    Examples:
      >>> _entry({"d": {"out": {"p": 1}}}, ["d"]), _entry({"d": 1}, ["d", "out"])
      ({'out': {'p': 1}}, None)
    """
    for key in keys:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _injected(graph: Graph, injections: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """The nodes with values in ``injections`` (the collection `phosjax.inject` fills):
    those whose output tag ``<path>/out`` has one (a dict, a tuple or an array), and
    those with one for a tag inside them, which must run to reach it.

    Examples:
      >>> graph = Graph({"a": abs, "b": abs})
      >>> [sorted(nodes) for nodes in _injected(graph, {"a": {"out": 1}, "b": {"pre": 3}})]
      [['a'], ['b']]
    """
    entries = {p: _entry(injections, p.split(SEP)) for p in graph.nodes}
    tagged = {p for p, e in entries.items() if isinstance(e, Mapping) and OUT in e}
    inside = {p for p, e in entries.items() if isinstance(e, Mapping) and set(e) - {OUT}}
    return tagged, inside


def _check_out_submodules(
    tagged: set[str], injections: Mapping[str, Any], variables: Mapping[str, Any]
) -> None:
    """Raises a `GraphError` where a node of ``tagged`` holds variables under
    ``<path>/out`` (a submodule named ``out``) and ``injections`` a dict there: the tags of
    that submodule, or a dict for the node's output tag, which cannot be told apart.

    Examples:
      >>> _check_out_submodules(
      ...     {"block"}, {"block": {"out": {"h": 1}}}, {"params": {"block": {"out": {"w": 0}}}}
      ... )
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: The injections hold a dict at 'block/out', the
      output tag of node 'block', but 'out' is also a submodule of it (its variables sit at
      'params/block/out'), whose tags would sit there too, so the graph model cannot tell
      which they are; give the submodule another name.
    """
    for path in sorted(tagged):
        keys = [*path.split(SEP), OUT]
        if not isinstance(_entry(injections, keys), Mapping):
            continue  # an array: the node's value
        for collection, tree in variables.items():
            if collection != INJECTIONS and _entry(tree, keys) is not None:
                raise GraphError(
                    f"The injections hold a dict at '{path}{SEP}{OUT}', the output tag of node "
                    f"{path!r}, but {OUT!r} is also a submodule of it (its variables sit at "
                    f"'{collection}{SEP}{path}{SEP}{OUT}'), whose tags would sit there too, so "
                    "the graph model cannot tell which they are; give the submodule another name."
                )


def _checked_inject(inject: Any, graph: Graph, tagged: set[str]) -> dict[str, Any]:
    """``inject`` (None: none) as a dict, or a `GraphError` naming what it is instead of
    a mapping ``{node: value}``, the first key that is no node of ``graph``, or the first
    that is one of the ``tagged`` nodes, whose output `phosjax.inject` replaces too (it
    would replace this value, silently).

    Examples:
      >>> _checked_inject("h", Graph({"h": abs}), set())
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: inject is a str, not a dict {node: value}; ...
      >>> _checked_inject({"h": 1}, Graph({"h": abs}), {"h"})
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: inject gives node 'h' a value, and px.inject ...
    """
    if inject is not None and not isinstance(inject, Mapping):
        raise GraphError(
            f"inject is {a_type(inject)}, not a dict {{node: value}}; give the value each "
            f"node takes instead of computing it, e.g. inject={{{graph.order[-1]!r}: value}}."
        )
    inject = dict(inject or {})
    graph.check_nodes(inject, "inject")
    twice = [path for path in inject if path in tagged]
    if twice:
        raise GraphError(
            f"inject gives node {twice[0]!r} a value, and px.inject gives its output tag "
            f"'{twice[0]}{SEP}{OUT}' one too, which would replace it; give the node one value, "
            "by inject= or by px.inject."
        )
    return inject


def _describe(tree: Any) -> str:
    """``float32[3, 4]`` for an array, the same per leaf for a pytree.

    Examples:
      >>> _describe({"p": jnp.ones((2, 3)), "q": jnp.int32(1)})
      "{'p': 'float32[2, 3]', 'q': 'int32[]'}"
    """
    described = jax.tree.map(lambda leaf: f"{jnp.dtype(leaf.dtype).name}{list(leaf.shape)}", tree)
    return str(described)


def _describe_given(value: Any) -> str:
    """`_describe` of an injected ``value``, its leaves read as arrays (a numpy one in its
    own dtype, not the one JAX reads it in); a leaf that is no number nor array (a str), or
    an int no dtype holds, as itself and its type.

    Examples:
      >>> _describe_given([1, 2.0]), _describe_given("zeros"), _describe_given(np.ones(2, int))
      ("['int32[]', 'float32[]']", "'zeros' (a str)", 'int64[2]')
      >>> print(_describe_given((jnp.ones(2), "z")))
      ('float32[2]', "'z' (a str)")
    """

    def leaf(v: Any) -> str:
        if isinstance(v, np.ndarray | np.generic) and v.dtype.kind in "biufc":
            return _describe(v)
        try:
            return _describe(jnp.asarray(v))
        except (TypeError, OverflowError):  # JAX's names no node: "Value 'zeros' with..."
            return f"{cut_repr(v)} ({a_type(v)})"

    return str(jax.tree.map(leaf, value))


def _checked_injected(path: str, value: Any, expected: Any) -> Any:
    """``value`` with what has no dtype of its own in ``expected``'s (`in_dtypes_of`), once
    it has the structure, shapes and dtypes of ``expected`` (what node ``path`` computes);
    else a `GraphError` naming the node, what it was given and what it computes (as
    `phosjax.inject` names the tag; where only the containers differ, it says so), a
    Python int out of its dtype's range too.

    Examples:
      >>> _checked_injected("h", [2**70], jax.ShapeDtypeStruct((1,), jnp.int32))
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: inject gives node 'h' a number out of the range of
      the dtype it computes, int32[1]: got [1180591620717411303424].
    """
    try:
        value = in_dtypes_of(value, expected)
    except TypeError:  # a str: named below
        pass
    except OverflowError:  # JAX's names no node: "Python int 2**200 too large to convert..."
        raise GraphError(
            f"inject gives node {path!r} a number out of the range of the dtype it computes, "
            f"{_describe(expected)}: got {cut_repr(value)}."
        ) from None
    given, wanted = _describe_given(value), _describe(expected)
    if given != wanted:
        leaves = [_describe_given(leaf) for leaf in jax.tree.leaves(value)]
        held_otherwise = leaves == [_describe(leaf) for leaf in jax.tree.leaves(expected)]
        fix = (
            "its arrays are the node's, held otherwise (a list for a tuple, other keys): "
            "inject them as the node holds them"
            if held_otherwise
            else "inject a value of that shape and dtype"
        )
        raise GraphError(
            f"inject gives node {path!r} {given}, but the node computes {wanted}; {fix}."
        )
    return value


def _numbers_read(giving: str, value: Any) -> Any:
    """`numbers_as_array` of ``value``, a node's unchecked value (an input's, or one
    injected with ``x=None``); a GraphError starting ``giving`` (who gives it to which
    node) if a Python number in it lies beyond the dtype JAX reads it in
    (`holds_exactly`: 1e300, a float32 inf; 2**40, no int32), with that dtype's range, as
    `phosjax.inject` names it. A list of numbers is read as one array, of one dtype
    (`numbers_read_together`: in a dict too).

    Examples:
      >>> _numbers_read("inject gives node 'h'", [1e300, 2])
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: inject gives node 'h' a number out of the range of
      float32, the dtype it is read in (a number between ...): got [1e+300, 2].
    """
    for read_as, read_together in numbers_read_together(value):
        if not holds_exactly(read_as, read_together):
            raise GraphError(
                f"{giving} a number out of the range of {read_as}, the dtype "
                f"it is read in ({what_holds(read_as)}): got {cut_repr(value)}."
            )
    return numbers_as_array(value)


def _stacked(value: Any) -> jax.Array | None:
    """The one array a (nested) list or tuple of arrays makes, as a node's layer reads
    it; None for anything else, or ragged arrays.

    Examples:
      >>> _stacked([jnp.ones(2), jnp.ones(2)]).shape, _stacked([jnp.ones(2), jnp.ones(3)])
      ((2, 2), None)
    """
    leaves = jax.tree.leaves(value)
    arrays = all(isinstance(v, jax.Array | np.ndarray) for v in leaves)
    if not isinstance(value, list | tuple) or not leaves or not arrays:
        return None
    try:
        return jnp.asarray(value)
    except (TypeError, ValueError):  # ragged: no one array
        return None


def _padding_zeroed(module: nn.Module, value: Any, keywords: Mapping[str, Any]) -> Any:
    """An input's ``value`` with the tokens the call's ``mask`` pads read as zeros
    (`zero_mask_padding`): an array, or a list or tuple of arrays that a node's layer
    reads as one (`_stacked`, then passed on as that array); ``value`` as it is otherwise
    (no array, ragged arrays, or a mask of other tokens).

    Examples:
      >>> rows, mask = [jnp.array([[1.0], [jnp.nan]])], {"mask": jnp.array([[True, False]])}
      >>> _padding_zeroed("GraphModel", rows, mask).tolist()
      [[[1.0], [0.0]]]
    """
    if isinstance(value, jax.Array | np.ndarray):
        return zero_mask_padding(module, jnp.asarray(value), dict(keywords))
    array = _stacked(value)
    if array is None:
        return value
    zeroed = zero_mask_padding(module, array, dict(keywords))
    return value if zeroed is array else zeroed


def _note_unchecked(error: Exception, injected: Mapping[str, Any]) -> None:
    """Adds a note to ``error``, raised by a node, naming each of its inputs in
    ``injected``: values `inject` gave that could not be checked (``x`` did not give what
    computes them), so one of another shape or dtype is the likely cause.

    Examples:
      >>> error = ValueError("bad kernel"); _note_unchecked(error, {"h": jnp.ones((3, 5))})
      >>> print(error.__notes__[0])
      (its input 'h' is the value inject gave, float32[3, 5], unchecked: x did not give ...
    """
    for source, value in injected.items():
        error.add_note(
            f"(its input {source!r} is the value inject gave, "
            f"{_describe_given(value)}, unchecked: x did not give the "
            f"inputs that compute {source!r}, so its shape and dtype were not compared with "
            "what that node computes)"
        )


def _note_whole_graphs(error: Exception, graph: Graph, inputs: Mapping[str, Any]) -> None:
    """Adds a note to ``error``, raised by a node, naming each of its ``inputs`` (``{node:
    value}``) that is a graph model without ``returns``: it passed on the dict ``{node:
    output}`` of its nodes, not one output, the likely cause when the node takes an array.

    Examples:
      >>> error = IndexError("tuple index out of range")
      >>> graph = Graph({"inner": GraphModel({"d": abs})})
      >>> _note_whole_graphs(error, graph, {"inner": {"input": 1, "d": 1}})
      >>> print(error.__notes__[0])
      (its input 'inner' is a graph model without returns=, so it passes on the dict ...
    """
    for source, value in inputs.items():
        inner = getattr(graph.nodes[source], "fn", None)
        if isinstance(inner, GraphModel) and inner.returns is None and isinstance(value, Mapping):
            error.add_note(
                f"(its input {source!r} is a graph model without returns=, so it passes on "
                f"the dict {{node: output}} of its nodes; to pass one node's output on, give "
                f"it returns=, e.g. returns={inner.nodes[-1]!r})"
            )


def _check_nested(graph: Graph) -> None:
    """Raises a `GraphError` when a node is a graph model with a top-level node or group
    named `OUT`: it would take the path ``<node>/out`` where the node's output is tagged."""
    for path, spec in graph.nodes.items():
        inner = spec.fn if isinstance(spec, Node) else None
        if isinstance(inner, GraphModel):
            clash = [p for p in inner.nodes if p.split(SEP)[0] == OUT]
            if clash:
                raise GraphError(
                    f"Node {path!r} is a graph model with the node {clash[0]!r}, but {OUT!r} "
                    f"is a reserved name there: the output of {path!r} is tagged "
                    f"'{path}{SEP}{OUT}', the path that node would take. Rename {clash[0]!r} "
                    "in the inner graph."
                )


class Function(nn.Module):
    """Gives a function node (or an identity: an input node) a scope, so its output can
    be tagged; it combines the inputs itself, so `blurb` counts the combine on the node,
    and lists it as ``blurb_type``, the node's op (``relu``, ``add``, ``Input``)."""

    fn: Callable[..., Any] | None
    combine: Callable[..., Any] | None = None
    blurb_type: str = "identity"

    def __call__(self, inputs: tuple[Any, ...], *flag_args: Any, **flag_kwargs: Any) -> Any:
        if self.combine is not None:
            inputs = (self.combine(*inputs),)
        return inputs[0] if self.fn is None else self.fn(*inputs, *flag_args, **flag_kwargs)


def _combine_of(spec: Node | Input) -> Callable[..., Any] | None:
    """The function that combines node ``spec``'s inputs, if any."""
    combine = spec.combine if isinstance(spec, Node) else None
    return COMBINES[combine] if isinstance(combine, str) else combine


def _run_node(
    owner: nn.Module,
    groups: dict[str, "Group"],
    prefix: tuple[str, ...],
    rel: tuple[str, ...],
    args: tuple[Any, ...] | None,
    value: Any,
    train: bool,
    keywords: Mapping[str, Any],
) -> Any:
    """Computes (``args`` given) or takes ``value`` for the node ``prefix + rel``, tagged;
    a computed node's fn gets those of the model's call ``keywords`` it takes.

    Nodes in groups run inside a `Group` module per group, so a node's variables live
    at its path (``params/block/conv``).
    """
    graph: Graph = owner.graph
    key = rel[0]
    if len(rel) > 1:
        if key not in groups:
            groups[key] = Group(graph, (*prefix, key), name=key)
        return groups[key](rel[1:], args, value, train, keywords)
    path = SEP.join((*prefix, key))
    spec = graph.nodes[path]
    fn = spec.fn if isinstance(spec, Node) else None
    if isinstance(fn, nn.Module):
        child = fn.clone(parent=owner, name=key)
    else:
        child = Function(fn, _combine_of(spec), _draw.op_name(spec), parent=owner, name=key)
    if args is not None:
        assert isinstance(spec, Node)
        tagged = calls_tagged(child, OUT)
        value = _call_node(path, spec, child, args, train, keywords)
        if calls_tagged(child, OUT) > tagged:
            raise GraphError(
                f"Node {path!r} tags a value named {OUT!r} itself, at '{path}{SEP}{OUT}', where "
                "the graph model tags the node's output, so the two would be read as two calls "
                f"of one tag; give that tag another name in {type(fn).__name__}."
            )
    elif isinstance(spec, Input):  # passed through its module, so `blurb` lists it
        value = child((value,))
    return tag_output(child, OUT, value)  # beside a submodule named OUT of the node's


def _check_add(path: str, spec: Node, args: tuple[Any, ...]) -> None:
    """Raises a `GraphError` when node ``path`` adds (``combine="add"``) arrays of
    different shapes, which would broadcast silently (a ``(3, 1)`` branch onto ``(3, 4)``),
    or the values of a node of several (a tuple, which ``+`` would concatenate; a dict).

    Examples:
      >>> _check_add("s", Node(None, ("a", "b"), "add"), (jnp.ones((3, 4)), jnp.ones((3, 1))))
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 's' adds inputs of different shapes ('a' ...
      >>> _check_add("s", Node(None, ("a", "b"), "add"), ((jnp.ones(2),), (jnp.ones(2),)))
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: Node 's' adds its inputs, but 'a' is a tuple ...
    """
    if spec.combine != "add" or len(args) < 2:  # one value: passed through as it is
        return
    named = zip(spec.inputs or (), args, strict=True)
    tree = next(((source, a) for source, a in named if isinstance(a, list | tuple | Mapping)), None)
    if tree is not None:
        raise GraphError(
            f"Node {path!r} adds its inputs, but {tree[0]!r} is {a_type(tree[1])} of values, "
            "which + does not add value by value (tuples and lists it concatenates); combine "
            "them with a function, e.g. combine=lambda *trees: jax.tree.map(lambda *v: sum(v), "
            "*trees)."
        )
    if not all(isinstance(a, jax.Array | np.ndarray) for a in args):
        return
    shapes = [tuple(a.shape) for a in args]
    if len(set(shapes)) > 1:
        named = zip(spec.inputs or (), shapes, strict=True)
        given = ", ".join(f"{source!r} {shape}" for source, shape in named)
        raise GraphError(
            f"Node {path!r} adds inputs of different shapes ({given}); combine='add' does "
            "not broadcast: give them one shape, or combine them with a function that "
            "broadcasts (combine=lambda *values: sum(values))."
        )


def _call_node(
    path: str,
    spec: Node,
    child: nn.Module,
    args: tuple[Any, ...],
    train: bool,
    keywords: Mapping[str, Any],
) -> Any:
    """Node ``path``'s (combined) ``args`` through ``child`` (a module's combine runs in
    the scope of its group), with the ``keywords`` its fn takes; an error of the call
    gets a note naming the node (its type and message unchanged)."""
    try:
        _check_add(path, spec, args)
        combine = _combine_of(spec)
        inputs = len(args) if combine is None else 1
        flag_args, flag_kwargs = node_train_args(path, spec.fn, train, inputs)
        if spec.fn is not None:
            flag_kwargs = {
                **flag_kwargs,
                **block_keywords(spec.fn, args[-1] if args else None, dict(keywords)),
            }
        if isinstance(child, Function):
            return child(args, *flag_args, **flag_kwargs)
        if combine is not None:
            args = (combine(*args),)
        return child(*args, *flag_args, **flag_kwargs)
    except Exception as error:
        note = f"(raised computing graph node {path!r})"
        if not isinstance(error, GraphError) and note not in getattr(error, "__notes__", ()):
            error.add_note(note)  # once, however often the error passes here
        raise


class Group(nn.Module):
    """The nodes of one nested group of a graph (one node per call; `blurb` sums them)."""

    graph: Graph
    prefix: tuple[str, ...]
    blurb_sums_calls: ClassVar[bool] = True

    @nn.compact
    def __call__(
        self,
        rel: tuple[str, ...],
        args: Any,
        value: Any,
        train: bool,
        keywords: Mapping[str, Any],
    ) -> Any:
        return _run_node(self, {}, self.prefix, rel, args, value, train, keywords)


class GraphModel(nn.Module):
    """A model defined by an explicit graph of named nodes (see `node` and `Graph`).

    Calling it returns ``{path: output}`` for the nodes it computed. Every output is
    also tagged ``<path>/out``, so `probe`, `inject`, `grad_of` and `blurb` see it.
    A node's variables live at its path (``params/block/conv/kernel``). Nodes whose call
    takes a train flag are told the mode the way `phosjax.layers.Sequence` tells its
    layers (``train``, ``training``, ``is_training``, or ``deterministic`` and
    ``use_running_average`` unless the constructor set them).

    Attributes:
      graph: a spec (nested dict of nodes) or a `Graph`.
      returns: a node; calling the model without ``outputs`` then returns that node's
        value alone, not the dict (e.g. ``returns="head"``: the logits, as the training
        engine, `phosjax.morph` and the zoo models expect). ``outputs=`` still returns
        the dict; ``init`` still creates every node's variables. `extract` (when it
        computes the node), `rewire` and `stitch` (``b``'s, computed from its ``layer_b``)
        keep it; `merge` does not.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.models.graph import GraphModel, node
      >>> model = GraphModel({
      ...     "dense": nn.Dense(3),
      ...     "act": nn.relu,
      ...     "skip": node(inputs=("act", "dense"), combine="add"),
      ...     "logits": nn.Dense(2),
      ... })
      >>> x = jnp.ones((4, 5)); variables = model.init(jax.random.key(0), x)
      >>> {path: out.shape for path, out in model.apply(variables, x).items()}
      {'input': (4, 5), 'dense': (4, 3), 'act': (4, 3), 'skip': (4, 3), 'logits': (4, 2)}
      >>> h = jnp.zeros((4, 3))
      >>> model.apply(variables, None, outputs="logits", inject={"skip": h})["logits"].shape
      (4, 2)
    """

    graph: Graph | Mapping[str, Any]
    returns: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.graph, Graph):
            object.__setattr__(self, "graph", Graph(self.graph))
        _check_nested(self._graph)
        if self.returns is not None:
            self._graph.check_nodes([self.returns], "returns")
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        x: Any = None,
        train: bool = False,
        *,
        outputs: str | Iterable[str] | None = None,
        inject: Mapping[str, Any] | None = None,
        **keywords: Any,
    ) -> Any:
        """Runs the nodes that ``outputs`` need.

        Args:
          x: the input; a dict ``{input node: value}`` when the graph has several
            (with one, either; an input's nested list of Python numbers, or of any
            scalars (0-d arrays, numpy scalars, bools), is read as its array, under
            `jax.jit` too; a dict with the input's name and other keys, or with a key
            that names a node or ends like the input's name, is an error). May be
            ``None`` (the default) when no input node is needed; must be for a graph
            without input nodes (all its nodes compute from constants), which is
            therefore called without it (``model.apply(variables)``).
          train: training mode, passed to the nodes that take it (not on an empty
            batch, fed or injected: they then run as in evaluation, ``batch_stats`` kept).
          outputs: node selectors (``"logits"``, ``"block/*"``); only what they need is
            computed and only they are returned. ``None``: the `returns` node, or
            without one the graph's sinks and all they need, every computed node returned
            (``init`` computes the sinks either way, so every node gets its variables).
          inject: ``{node: value}`` used instead of computing those nodes; nodes only
            needed to compute them are skipped. When ``x`` gives the inputs a node
            needs, its value must have the node's shape and dtype (checked abstractly,
            with `jax.eval_shape`); with ``x=None`` nothing can be compared. Values
            injected with `phosjax.inject` at ``<node>/out`` skip their upstream nodes too
            (a value it injects at a skipped node is taken, unused), unless the node has
            one for a tag inside it too: it then runs.
          **keywords: passed to the nodes whose fn's call names them (or takes
            ``**kwargs``), as `phosjax.layers.Sequence` passes them to its layers: an
            attention ``mask`` reaches the attention nodes. One that no node takes is a
            TypeError naming it. A ``mask`` that is a padding mask of an input's tokens
            (or a per-pair one) makes the model read that input's padded tokens as
            zeros, as those containers do, so what they hold reaches no node.

        Returns:
          ``{path: value}``, or the `returns` node's value.

        Raises:
          GraphError: an injected value of another shape or dtype (node, both named),
            ``inject`` no mapping, a node given a value by ``inject`` and by
            `phosjax.inject` at its tag (named), or ``outputs`` not a str or an iterable of
            them.
        """
        checked_train(self, train, handed_on=True)
        graph = self._graph
        check_keywords(self, self._fns(), keywords)
        injections = self.variables.get(INJECTIONS, {})  # px.inject's
        tagged, inside = _injected(graph, injections)
        _check_out_submodules(tagged, injections, self.variables)
        inject = _checked_inject(inject, graph, tagged)
        given = set(inject) | (tagged - inside)
        targets = self._targets(outputs)
        if outputs is None and self.is_initializing():  # all variables, returns or not
            targets = tuple(dict.fromkeys((*graph.sinks, *targets)))
        plan = graph.needed((*targets, *tagged, *inside), given)  # px.inject's reach their tags
        feeds = self._feeds(x, [p for p in plan if p in graph.inputs and p not in given])
        injected = (inject, injections)  # with x=None, the batch
        train = batch_train(train, (feeds, injected))  # empty: batch_stats kept as they are
        if keywords.get("mask") is not None:  # padding read as zeros, by all nodes
            feeds = {path: _padding_zeroed(self, v, keywords) for path, v in feeds.items()}
        checked = self._check_inject(inject, feeds, train, keywords)
        unchecked = set(inject) - set(checked)
        inject = {
            p: checked[p] if p in checked else _numbers_read(f"inject gives node {p!r}", v)
            for p, v in inject.items()
        }
        values: dict[str, Any] = {}
        groups: dict[str, Group] = {}
        for path in plan:
            if path in inject or path in feeds or path in given:
                args, value = None, inject.get(path, feeds.get(path))
            else:
                args, value = tuple(values[s] for s in graph.inputs_of(path)), None
            rel = tuple(path.split(SEP))
            try:
                values[path] = _run_node(self, groups, (), rel, args, value, train, keywords)
            except Exception as error:
                sources = graph.inputs_of(path) if args is not None else ()
                _note_unchecked(error, {s: inject[s] for s in sources if s in unchecked})
                _note_whole_graphs(error, graph, {s: values[s] for s in sources})
                raise
        if outputs is None and self.returns is not None:
            return values[self.returns]
        return values if outputs is None else {t: values[t] for t in targets}

    def _check_inject(
        self,
        inject: Mapping[str, Any],
        feeds: Mapping[str, Any],
        train: bool,
        keywords: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Checks each injected value whose node ``feeds`` can compute against the node's
        output, traced with `jax.eval_shape` on an unbound copy with the model's variables
        (no values computed; params cast to bfloat16 compute bfloat16; missing variables
        are made, as ``init`` makes them), given the call's ``keywords`` as they are (a
        Python flag such as ``double=True`` stays a Python value, not a tracer); returns
        ``{node: value}`` for the nodes checked, Python numbers in the node's dtypes where
        they hold them exactly (as `phosjax.inject` reads them)."""
        graph = self._graph
        checked = [p for p in inject if set(graph.needed([p])) & set(graph.inputs) <= set(feeds)]
        if not checked:
            return {}
        model = self.clone(parent=None, returns=None)
        rngs = {"params": jax.random.key(0)}  # Flax falls back to it for other streams

        def outputs(variables: Any, given: Any) -> Any:  # keywords as given: a bool stays one
            run = model.apply(
                variables, given, train, outputs=checked, rngs=rngs, mutable=True, **keywords
            )
            return run[0]

        given = dict(feeds) or None  # no feeds: x=None ({} is an x, refused without inputs)
        with set_aside():  # the copy's aux losses, path weights... are not this call's
            expected = eval_shape_as_applied(outputs, dict(self.variables), given)
        return {path: _checked_injected(path, inject[path], expected[path]) for path in checked}

    def _feeds(self, x: Any, needed: list[str]) -> dict[str, Any]:
        inputs = self._graph.inputs
        if not inputs and x is not None:
            raise GraphError(
                "The graph has no input node (its nodes compute from constants), but x is "
                f"given (of type {type(x).__name__}); call it without x (x=None)."
            )
        if isinstance(x, Mapping) and set(x) <= set(inputs) and (x or len(inputs) > 1):
            feeds = dict(x)
        elif isinstance(x, Mapping) and (inputs[0] in x or _misnamed_feeds(x, self._graph)):
            raise _feed_error(x, inputs)  # a feed dict with other keys, or a misnamed one
        elif len(inputs) == 1 and x is not None:  # any other value, a dict too, feeds it
            feeds = {inputs[0]: x}
        elif x is not None:
            raise _feed_error(x, inputs)
        else:
            feeds = {}
        for path in needed:
            if path not in feeds:
                raise GraphError(
                    f"The outputs need input node {path!r}, but x gives no value for it."
                )
        return {
            path: _numbers_read(f"x gives input node {path!r}", value)
            for path, value in feeds.items()
        }

    def _targets(self, outputs: Any) -> tuple[str, ...]:
        """The nodes a call with ``outputs`` returns (`__call__`)."""
        chosen = self.returns if outputs is None else outputs
        if chosen is None:
            return self._graph.sinks
        return self._graph.select(chosen, "outputs" if outputs is not None else "returns")

    def _untagged_reason(self, selector: str, kwargs: Mapping[str, Any]) -> str | None:
        """Why a call with ``kwargs`` (``model.apply``'s) made no tag ``<node>/out`` that
        ``selector`` matches, where it skipped that node (`phosjax.inject`, `probe`,
        `grad_of` add it to their `SelectorError`); None where it did not.

        Examples:
          >>> model = GraphModel({"dense": nn.Dense(3), "act": nn.relu})
          >>> print(model._untagged_reason("dense/out", {"inject": {"act": 0}}))
          Node 'dense' is not computed: inject= gives 'act', which is computed from it, a
          value; select another tag, or leave 'act' out of inject=.
        """
        graph = self._graph
        tags = {f"{path}{SEP}{OUT}": path for path in graph.nodes}
        found = select(list(tags), selector, allow_empty=True)
        inject = kwargs.get("inject") or {}
        if not found or not isinstance(inject, Mapping):
            return None
        path = tags[found[0]]
        after = [p for p in inject if p != path and path in graph.needed([p])]
        if after:
            return (
                f"Node {path!r} is not computed: inject= gives {after[0]!r}, which is computed "
                f"from it, a value; select another tag, or leave {after[0]!r} out of inject=."
            )
        outputs = kwargs.get("outputs")
        if path not in graph.needed(self._targets(outputs)):
            return (
                f"Node {path!r} is not computed: the outputs ({cut_repr(outputs)}) do not "
                f"need it; add {path!r} to outputs."
            )
        return None

    def _fns(self) -> list[Any]:
        """The fns of the nodes (modules and functions)."""
        nodes = self._graph.nodes.values()
        return [n.fn for n in nodes if isinstance(n, Node) and n.fn is not None]

    def takes_keyword(self, name: str) -> bool:
        """Whether one of the nodes takes the call keyword ``name`` (see `__call__`), so a
        graph model used as a node of another is given only the keywords its nodes take.

        Examples:
          >>> from phosjax.layers import TransformerBlock
          >>> inner = GraphModel({"dense": nn.Dense(4)})
          >>> attention = GraphModel({"block": TransformerBlock(2)})
          >>> inner.takes_keyword("mask"), attention.takes_keyword("mask")
          (False, True)
        """
        return any(takes_keyword(fn, name) for fn in self._fns())

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node paths, every node after its inputs."""
        return self._graph.order

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """``(source, target)`` pairs."""
        return self._graph.edges

    def shapes(self, x: Any = None, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{path: jax.ShapeDtypeStruct}`` of every node on input ``x`` (which may itself be
        a `jax.ShapeDtypeStruct`; None for a graph without input nodes), traced with
        `jax.eval_shape`: nothing is computed.

        Examples:
          >>> import flax.linen as nn, jax.numpy as jnp
          >>> from phosjax.models.graph import GraphModel, Input, node
          >>> model = GraphModel({"x": Input(), "h": node(nn.Dense(4), inputs="x"), "y": nn.relu})
          >>> {path: s.shape for path, s in model.shapes(jnp.ones((2, 3))).items()}
          {'h': (2, 4), 'x': (2, 3), 'y': (2, 4)}
        """
        every = self.nodes
        if variables is None:
            init = lambda x: self.init_with_output(jax.random.key(0), x, outputs=every)[0]
            return eval_shape_as_applied(init, x)
        return eval_shape_as_applied(lambda v, x: self.apply(v, x, outputs=every), variables, x)

    def to_dot(self, x: Any = None) -> str:
        """Graphviz DOT text of the graph (`dot -Tsvg`); with an example input ``x`` (or
        without one for a graph without input nodes) the boxes show output shapes.

        Examples:
          >>> import flax.linen as nn, jax.numpy as jnp
          >>> from phosjax.models.graph import GraphModel
          >>> print(GraphModel({"dense": nn.Dense(2)}).to_dot(jnp.ones((1, 3))))
          digraph graph_model {
            rankdir=TB;
            "input" [label="input\\nInput\\n(1, 3)", shape=ellipse];
            "dense" [label="dense\\nDense\\n(1, 2)", shape=box];
            "input" -> "dense";
          }
        """
        return _draw.to_dot(self._graph, x, self)

    def to_json(self, x: Any = None) -> str:
        """JSON for the web viewer: ``{"nodes": [{"id", "name", "group", "op", "inputs",
        "shape", "dtype", "parts", "params"}], "edges": [{"source", "target"}], "inputs",
        "outputs"}``; shapes and parameter counts are filled in when ``x`` is given (always
        for a graph without input nodes); a node returning a tuple has its arrays' shapes
        in ``parts`` (`phosjax.models.graph._draw.output_fields`).

        Examples:
          >>> import flax.linen as nn, jax.numpy as jnp
          >>> from phosjax.models.graph import GraphModel, Input, node
          >>> model = GraphModel({"x": Input(), "h": node(nn.Dense(4), inputs="x"), "y": nn.relu})
          >>> import json
          >>> drawn = json.loads(model.to_json(jnp.ones((2, 3))))
          >>> [(n["id"], n["shape"], n["params"]) for n in drawn["nodes"]], drawn["outputs"]
          ([('x', [2, 3], 0), ('h', [2, 4], 16), ('y', [2, 4], 0)], ['y'])
        """
        return _draw.to_json(self._graph, x, self)

    @property
    def _graph(self) -> Graph:
        assert isinstance(self.graph, Graph)
        return self.graph
