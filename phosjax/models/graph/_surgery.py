"""Surgery on graph models, as pure functions over ``(model, variables)``: `extract` a
sub-model, `merge` several into one, `rewire` a node's inputs, `fill_missing` the
variables of new nodes."""

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import flax.linen as nn

from phosjax._callables import a_type
from phosjax._nearest import did_you_mean
from phosjax.core import flatten, unflatten
from phosjax.core._apply import checked_variables
from phosjax.models.graph._model import GraphModel
from phosjax.models.graph._spec import (
    SEP,
    Graph,
    GraphError,
    Input,
    Node,
    as_names,
    bad_name,
    input_names,
    listing,
    resolve,
    top_level_why,
    walk,
)

Variables = Mapping[str, Any]


def _graph(model: GraphModel, what: str = "model") -> Graph:
    """The graph of ``model``, or a `GraphError` naming ``what`` when it is no `GraphModel`.

    Examples:
      >>> import flax.linen as nn
      >>> _graph(nn.Dense(2), "extract's model")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: extract's model is a Dense, not a GraphModel; ...
      >>> _graph(GraphModel, "extract's model")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: extract's model is the class GraphModel, not a
      graph model: pass an instance, GraphModel(graph) (for a zoo model, its twin
      graph_model(config)).
    """
    if isinstance(model, type):  # "is a type" said too little
        raise GraphError(
            f"{what} is the class {model.__name__}, not a graph model: pass an instance, "
            "GraphModel(graph) (for a zoo model, its twin graph_model(config))."
        )
    if not isinstance(model, GraphModel):
        raise GraphError(
            f"{what} is {a_type(model)}, not a GraphModel; surgery needs a graph "
            "model (for a zoo model, its twin graph_model(config))."
        )
    assert isinstance(model.graph, Graph)
    return model.graph


class VariablesError(GraphError, TypeError):
    """Surgery's variables are not what ``model.init`` makes: a `GraphError`, as every
    surgery error, and a TypeError, as `phosjax.probe` and the other transforms raise."""


def check_variables(variables: Any, nodes: Iterable[str], caller: str, name: str) -> None:
    """Raises a `VariablesError` unless ``variables`` (``caller``'s argument ``name``) is
    a mapping of collections, as ``model.init`` makes it: not a mapping (as
    `phosjax.core._apply.checked_variables` says), or the params alone (keyed by
    top-level ``nodes`` of the model, with no ``"params"``), whose trees surgery would
    not find.

    Examples:
      >>> check_variables({"stem": {"kernel": 1}}, ["stem"], "extract", "variables")
      Traceback (most recent call last):
      phosjax.models.graph._surgery.VariablesError: extract: variables have the key 'stem', ...
    """
    checked_variables(variables, caller, name=name, error=VariablesError)
    tops = {n.split(SEP)[0] for n in nodes}
    keys = [k for k in variables if k in tops]
    if keys and "params" not in variables:
        raise VariablesError(
            f"{caller}: {name} have the key {keys[0]!r}, a top-level node of the model, "
            "where the collections belong: pass the variables that model.init makes, "
            "{'params': params, ...}, not the params alone."
        )


def node_variables(
    variables: Variables, nodes: str | Iterable[str], *, model: GraphModel | None = None
) -> dict[str, Any]:
    """The variables (every collection) of the modules at the node path or paths ``nodes``
    (none for a node without variables, an activation). Given ``model``, each path must
    be one of its nodes or groups: a misspelt one, which has no variables either, is an
    error naming it and the nearest nodes, not an empty result.

    Raises:
      GraphError: ``variables`` are no mapping, or the params alone (keyed by a node's
        top-level name, not by collection: `check_variables`), which would give none;
        ``nodes`` are not a str or an iterable of them; given ``model``, a path is no node
        or group of it.

    Examples:
      >>> v = {"params": {"a": {"w": 1}, "b": {"w": 2}, "g": {"c": {"w": 3}}}}
      >>> node_variables(v, ["a", "g/c"])
      {'params': {'a': {'w': 1}, 'g': {'c': {'w': 3}}}}
      >>> node_variables(v, "g/c")
      {'params': {'g': {'c': {'w': 3}}}}
      >>> node_variables(v, "gc", model=GraphModel({"a": abs, "g": {"c": abs}}))
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: node_variables' nodes names 'gc', but 'gc' is ...
    """
    nodes = as_names(nodes, "node_variables' nodes", "conv")
    check_variables(variables, nodes, "node_variables", "variables")
    if model is not None:
        graph = _graph(model, "node_variables' model")
        groups = {
            SEP.join(p.split(SEP)[:i]) for p in graph.nodes for i in range(1, p.count(SEP) + 1)
        }
        graph.check_nodes([n for n in nodes if n not in groups], "node_variables' nodes")
    prefixes = tuple(n + SEP for n in nodes)
    picked = {}
    for collection, tree in variables.items():
        kept = {p: v for p, v in flatten(tree, unwrap=False).items() if p.startswith(prefixes)}
        if kept:
            picked[collection] = unflatten(kept)
    return picked


def extract(
    model: GraphModel,
    variables: Variables,
    inputs: str | Iterable[str] = (),
    outputs: str | Iterable[str] | None = None,
) -> tuple[GraphModel, dict[str, Any]]:
    """The part of ``model`` that computes ``outputs`` from the hidden values at ``inputs``.

    The nodes named in ``inputs`` become `Input` nodes (fed by ``x``, a dict when there
    are several); the sub-model keeps the node paths and exactly the variables of the
    nodes it computes. Its outputs equal the full model's with the same values injected.
    Original input nodes that the outputs still need stay inputs (a part fed by constants
    alone has none: call it without ``x``). The model's `returns`
    node is kept when the sub-model computes it.

    Args:
      model: a `GraphModel`.
      variables: its variables.
      inputs: the node (a name) or nodes to cut at.
      outputs: node selectors; default: the graph's sinks.

    Raises:
      GraphError: an input is not a node, the outputs do not need it, ``inputs`` or
        ``outputs`` are not a str or an iterable of them, or ``variables``
        are not what ``model.init`` makes (the params alone, None: `check_variables`).
      SelectorError: an output selector matches no node.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.models.graph import GraphModel
      >>> model = GraphModel({"a": nn.Dense(3), "b": nn.Dense(4), "c": nn.Dense(2)})
      >>> x = jnp.ones((1, 5)); variables = model.init(jax.random.key(0), x)
      >>> sub, sub_vars = extract(model, variables, inputs=["a"], outputs=["b"])
      >>> sub.nodes, sorted(sub_vars["params"])
      (('a', 'b'), ['b'])
    """
    graph = _graph(model, "extract's model")
    check_variables(variables, graph.nodes, "extract", "variables")
    inputs = as_names(inputs, "extract's inputs", graph.order[-1])
    graph.check_nodes(inputs, "extract's inputs")
    targets = graph.sinks if outputs is None else graph.select(outputs, "extract's outputs")
    kept = graph.needed(targets, given=inputs)
    unused = [p for p in inputs if p not in kept]
    if unused:
        shadows = [p for p in inputs if p in kept and unused[0] in graph.needed([p])]
        upstream = [p for p in kept if p not in targets]
        where = (
            f"they need it only through the input(s) {listing(shadows)}, cut too"
            if shadows
            else "it comes after them, or on another branch"
        )
        fix = (
            f"leave {unused[0]!r} out of the inputs"
            if shadows
            else f"cut at a node they need ({listing(upstream) or 'none: they are inputs'}), "
            "or give outputs that need it"
        )
        raise GraphError(
            f"extract's input {unused[0]!r} is not needed by the outputs {listing(targets)} "
            f"({where}), so cutting there would cut nothing; {fix}."
        )
    spec = graph.spec()
    sub = {p: Input() if p in inputs else spec[p] for p in spec if p in kept}
    computed = [p for p, n in sub.items() if isinstance(n, Node)]
    returns = model.returns if model.returns in computed else None
    return GraphModel(sub, returns=returns), node_variables(variables, computed)


def _under(name: str, spec: dict[str, Node | Input]) -> dict[str, Node | Input]:
    """A flat spec moved into group ``name`` (absolute inputs rewritten)."""
    return {
        f"{name}{SEP}{p}": dataclasses.replace(
            n, inputs=tuple(f"{SEP}{name}{s}" for s in n.inputs or ())
        )
        if isinstance(n, Node)
        else n
        for p, n in spec.items()
    }


def _check_part_name(name: Any) -> None:
    """Raises a `GraphError` unless ``name`` can name a group of `merge`: one path segment
    that can name a top-level group.

    Examples:
      >>> _check_part_name("x/y")
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: merge's part name 'x/y': a part is one group, ...
    """
    if not isinstance(name, str):  # an int failed in the test for SEP: "not iterable"
        why: str | None = f"a part is named by a str, not {a_type(name)}"
    elif SEP in name:
        why = f"a part is one group, so its name cannot contain {SEP!r}"
    else:
        why = bad_name(name) or top_level_why(name)
    if why:
        raise GraphError(
            f"merge's part name {name!r}: {why}; rename it (a part name is one plain path "
            "segment, such as 'a', other than 'params')."
        )


def _check_first_inputs(nodes: Mapping[str, Any], parts: list[str]) -> None:
    """Raises a `GraphError` when the first of `merge`'s new ``nodes`` names no inputs:
    it would take the last of the ``parts``' nodes, which depends on their order.

    Examples:
      >>> _check_first_inputs({"head": abs}, ["a/input", "a/logits", "b/input", "b/logits"])
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: merge's new node 'head' names no inputs, so ...
    """
    path, first = next(iter(nodes.items()), (None, None))
    if path is None or not parts or isinstance(first, Input):
        return
    if not (isinstance(first, Node) and first.inputs is not None):
        raise GraphError(
            f"merge's new node {path!r} names no inputs, so it would take the last node "
            f"of the parts ({parts[-1]!r}), whichever part comes last; give it its inputs, "
            f"e.g. node(..., inputs={parts[-1]!r})."
        )


def _check_merge_mappings(parts: Any, nodes: Any) -> None:
    """Raises a `GraphError` when `merge`'s ``parts`` or ``nodes`` is no dict (a list of
    parts has no group names; a list of nodes, no paths), or there are no parts.

    Examples:
      >>> _check_merge_mappings([("model", "variables")], None)
      Traceback (most recent call last):
      phosjax.models.graph._spec.GraphError: merge's parts are a list, not a dict {group: ...
    """
    if not isinstance(parts, Mapping):
        raise GraphError(
            f"merge's parts are {a_type(parts)}, not a dict {{group: (model, variables)}}: "
            "each part goes in its own group, so name it, e.g. merge({'a': (model_a, "
            "vars_a), 'b': (model_b, vars_b)})."
        )
    if not parts:
        raise GraphError(
            "merge's parts are empty ({}), so it would join no model; give it the parts, "
            "{group: (model, variables)}, e.g. merge({'a': (model_a, vars_a)}, nodes)."
        )
    if nodes is not None and not isinstance(nodes, Mapping):
        raise GraphError(
            f"merge's nodes are {a_type(nodes)}, not a dict {{path: node}} as in a spec: "
            "name each new node, e.g. nodes={'head': node(nn.Dense(2), inputs='a/logits')}."
        )


def merge(
    parts: Mapping[str, tuple[GraphModel, Variables]],
    nodes: Mapping[str, Any] | None = None,
) -> tuple[GraphModel, dict[str, Any]]:
    """Joins graph models into one, each in its own group, plus new ``nodes``.

    Part ``"a"``'s node ``conv`` becomes ``a/conv`` and its variables move to
    ``params/a/conv``. Each part keeps its input nodes (``a/input``); `rewire` one to
    another to share an input.

    Args:
      parts: ``{group: (model, variables)}``.
      nodes: more nodes, as in a spec (e.g. a head that combines ``a/logits`` and
        ``b/logits``); write their inputs explicitly.

    Returns:
      ``(model, variables)``; a new node with parameters has none yet: `fill_missing`
      initializes them.

    Raises:
      GraphError: ``parts`` or ``nodes`` is no dict (a list), there are no parts, a part
        is not a pair ``(model, variables)``, a part name is not one plain path segment
        (``"x/y"``, ``".."``, ``""``) or is ``"params"``, a new node has the path of a
        part's node (use `rewire` to change a node's inputs), the first new node names no
        inputs (it would take the last part's last node), a path is both a node and a
        group, or a part's variables are not what its ``init`` makes (`check_variables`).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.models.graph import GraphModel, node
      >>> part = GraphModel({"logits": nn.Dense(2)})
      >>> x = jnp.ones((1, 3)); v = part.init(jax.random.key(0), x)
      >>> both, both_vars = merge(
      ...     {"a": (part, v), "b": (part, v)},
      ...     {"sum": node(inputs=("a/logits", "b/logits"), combine="add")},
      ... )
      >>> both = rewire(both, "b/input", "a/input")
      >>> both.apply(both_vars, x, outputs="sum")["sum"].shape
      (1, 2)
    """
    _check_merge_mappings(parts, nodes)
    spec: dict[str, Any] = {}
    merged: dict[str, dict[str, Any]] = {}
    for name, part in parts.items():
        _check_part_name(name)
        if not (isinstance(part, tuple | list) and len(part) == 2):
            raise GraphError(
                f"merge's part {name!r} is {a_type(part)}, not a pair (model, "
                f"variables); pass {{{name!r}: (model, variables), ...}}."
            )
        model, variables = part
        graph = _graph(model, f"merge's part {name!r}")
        check_variables(variables, graph.nodes, "merge", f"the variables of part {name!r}")
        spec.update(_under(name, graph.spec()))
        for collection, tree in variables.items():
            merged.setdefault(collection, {})[name] = tree
    nodes = dict(walk(nodes or {}))
    taken = [path for path in nodes if path in spec]
    if taken:
        raise GraphError(
            f"merge's new node {taken[0]!r} is already a node of a part; give the new "
            "node another path, or use rewire to change that node's inputs."
        )
    _check_first_inputs(nodes, list(spec))
    spec.update(nodes)
    return GraphModel(spec), merged


def fill_missing(
    model: GraphModel, variables: Variables, key: Any, x: Any = None, **init_kwargs: Any
) -> dict[str, Any]:
    """``variables`` with every variable ``model.init(key, x)`` makes that they lack:
    those of the nodes `merge` (or a spec edit) added, initialized; the given ones kept
    (``x`` left out for a model without input nodes).

    Raises:
      GraphError: a given variable has another shape or dtype than ``model`` makes
        there (its path and both named), or is one it does not make (a renamed node's:
        its path and the nearest named, as it would be kept unused), or ``variables``
        are not what ``init`` makes (the params alone, None: `check_variables`).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.models.graph import GraphModel, node
      >>> part = GraphModel({"logits": nn.Dense(2)})
      >>> x = jnp.ones((1, 3)); v = part.init(jax.random.key(0), x)
      >>> both, both_vars = merge({"a": (part, v)}, {"head": node(nn.Dense(4), inputs="a/logits")})
      >>> both_vars = fill_missing(both, both_vars, jax.random.key(1), x)
      >>> both.apply(both_vars, x, outputs="head")["head"].shape
      (1, 4)
      >>> kept = both_vars["params"]["a"]["logits"]["kernel"]
      >>> bool((kept == v["params"]["logits"]["kernel"]).all())
      True
    """
    made = model.init(key, x, **init_kwargs)
    check_variables(variables, made.get("params", {}), "fill_missing", "variables")
    fresh = flatten(dict(made))
    given = flatten(dict(variables))
    stale = [path for path in given if path not in fresh]
    if stale:
        nearest = did_you_mean(stale[:1], fresh) or "."
        raise GraphError(
            f"fill_missing: the given variable {stale[0]!r} is none the model makes (a node "
            f"renamed or removed?), so it would be kept unused{nearest} Give variables made "
            "for this model: move it to its node's path, or leave it out."
        )
    for path, boxed in given.items():
        made, leaf = nn.meta.unbox(fresh.get(path)), nn.meta.unbox(boxed)  # Partitioned too
        if made is not None and (made.shape, made.dtype) != (leaf.shape, leaf.dtype):
            raise GraphError(
                f"fill_missing: the given variable {path!r} is {leaf.dtype}{list(leaf.shape)}, "
                f"but the model makes {made.dtype}{list(made.shape)} there; give variables "
                "made for this model (or leave that one out to initialize it)."
            )
    return unflatten({**fresh, **given})


def rewire(model: GraphModel, path: str, inputs: str | Iterable[str]) -> GraphModel:
    """``model`` with node ``path`` taking ``inputs`` (full node paths, like every surgery
    function). An `Input` node becomes a pass-through of its new input (a graph whose only
    input is rewired to a constant node has none: call it without ``x``). The variables
    do not change.

    Raises:
      GraphError: ``path`` or an input is not a node (existing nodes listed), ``inputs``
        is empty or not node names in order (a set), an input node or pass-through gets
        several, or the new edges make a cycle (named).

    Examples:
      >>> import flax.linen as nn
      >>> from phosjax.models.graph import GraphModel
      >>> model = GraphModel({"a": nn.relu, "b": nn.relu, "c": nn.relu})
      >>> rewire(model, "c", "a").edges
      (('input', 'a'), ('a', 'b'), ('a', 'c'))
    """
    graph = _graph(model, "rewire's model")
    graph.check_nodes([path], "rewire")
    names = input_names(inputs, "rewire")
    if not names:
        raise GraphError(
            f"rewire gives node {path!r} no inputs; name at least one node. To feed "
            f"{path!r} from outside, cut there with extract(..., inputs=[{path!r}])."
        )
    what = f"rewire gives node {path!r} the input"
    sources = [resolve(name, (), what) for name in names]
    for name, source in zip(names, sources, strict=True):
        if source not in graph.nodes:  # named as written, not as the spec's '/block/ac'
            raise graph.missing(source, graph.nodes, f"{what} {name!r}")
    absolute = tuple(SEP + source for source in sources)
    spec = graph.spec()
    old = spec[path]
    passes = isinstance(old, Input) or (old.fn is None and old.combine is None)
    if passes and len(names) > 1:
        raise GraphError(
            f"rewire gives node {path!r} {len(names)} inputs ({listing(names)}), but it "
            "passes one value through and has no combine; rewire it to one node (first "
            "add a node that combines them, e.g. with merge's nodes=)."
        )
    spec[path] = (
        dataclasses.replace(old, inputs=absolute) if isinstance(old, Node) else Node(None, absolute)
    )
    return GraphModel(spec, returns=model.returns)
