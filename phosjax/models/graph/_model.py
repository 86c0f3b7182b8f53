"""`GraphModel`: a Flax module that runs a `Graph` and returns every node's output."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax

from phosjax.core import INJECTIONS, flatten, tag
from phosjax.layers._common import train_kwargs
from phosjax.models.graph import _draw
from phosjax.models.graph._spec import COMBINES, SEP, Graph, GraphError, Node, listing

OUT = "out"
"""The tag name of a node's output: node ``block/conv`` is tagged ``block/conv/out``."""


def _feed_error(x: Any, inputs: tuple[str, ...]) -> GraphError:
    """The error for an ``x`` that does not fit a graph with several ``inputs``.

    Examples:
      >>> print(_feed_error({"a": 1, "bb": 2}, ("a", "b")))
      x has keys that are not input nodes: 'bb'; the input nodes are 'a', 'b',
      and x gives no value for 'b'.
    """
    if not isinstance(x, Mapping):
        return GraphError(
            f"The graph has {len(inputs)} input nodes ({listing(inputs)}); "
            "pass x as a dict {input node: value}."
        )
    unknown = [key for key in x if key not in inputs]
    missing = [path for path in inputs if path not in x]
    gives = f", and x gives no value for {listing(missing)}" if missing else ""
    return GraphError(
        f"x has keys that are not input nodes: {listing(unknown)}; "
        f"the input nodes are {listing(inputs)}{gives}."
    )


class Function(nn.Module):
    """Gives a function node (or an identity) a scope, so its output can be tagged."""

    fn: Callable[..., Any] | None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return args[0] if self.fn is None else self.fn(*args, **kwargs)


def _run_node(
    owner: nn.Module,
    groups: dict[str, "Group"],
    prefix: tuple[str, ...],
    rel: tuple[str, ...],
    args: tuple[Any, ...] | None,
    value: Any,
    train: bool,
) -> Any:
    """Computes (``args`` given) or takes ``value`` for the node ``prefix + rel``, tagged.

    Nodes in groups run inside a `Group` module per group, so a node's variables live
    at its path (``params/block/conv``).
    """
    graph: Graph = owner.graph
    key = rel[0]
    if len(rel) > 1:
        if key not in groups:
            groups[key] = Group(graph, (*prefix, key), name=key)
        return groups[key](rel[1:], args, value, train)
    path = SEP.join((*prefix, key))
    spec = graph.nodes[path]
    fn = spec.fn if isinstance(spec, Node) else None
    if isinstance(fn, nn.Module):
        child = fn.clone(parent=owner, name=key)
    else:
        child = Function(fn, parent=owner, name=key)
    if args is not None:
        assert isinstance(spec, Node)
        if spec.combine is not None:
            combine = COMBINES[spec.combine] if isinstance(spec.combine, str) else spec.combine
            args = (combine(*args),)
        value = child(*args, **_node_train_kwargs(path, fn, train, len(args)))
    return tag(child, OUT, value)


def _node_train_kwargs(path: str, fn: Any, train: bool, inputs: int) -> dict[str, bool]:
    """`train_kwargs` of node ``path``'s ``fn``, its errors naming the node."""
    if fn is None:
        return {}
    try:
        return train_kwargs(fn, train, inputs)
    except TypeError as error:
        raise GraphError(f"Node {path!r}: {error}") from error


class Group(nn.Module):
    """The nodes of one nested group of a graph (one node per call)."""

    graph: Graph
    prefix: tuple[str, ...]

    @nn.compact
    def __call__(self, rel: tuple[str, ...], args: Any, value: Any, train: bool) -> Any:
        return _run_node(self, {}, self.prefix, rel, args, value, train)


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

    def __post_init__(self) -> None:
        if not isinstance(self.graph, Graph):
            object.__setattr__(self, "graph", Graph(self.graph))
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        x: Any,
        train: bool = False,
        *,
        outputs: str | Iterable[str] | None = None,
        inject: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Runs the nodes that ``outputs`` need.

        Args:
          x: the input; a dict ``{input node: value}`` when the graph has several.
            May be ``None`` when no input node is needed.
          train: training mode, passed to the nodes that take it.
          outputs: node selectors (``"logits"``, ``"block/*"``); only what they need is
            computed and only they are returned. ``None``: the graph's sinks and all
            they need, every computed node returned.
          inject: ``{node: value}`` used instead of computing those nodes; nodes only
            needed to compute them are skipped. Values injected with `phosjax.inject`
            at ``<node>/out`` skip their upstream nodes too.

        Returns:
          ``{path: value}``.
        """
        graph = self._graph
        inject = dict(inject or {})
        graph.check_nodes(inject, "inject")
        suffix = SEP + OUT
        injected = flatten(self.variables.get(INJECTIONS, {}))
        tagged = {p.removesuffix(suffix) for p in injected if p.endswith(suffix)}
        given = set(inject) | (tagged & set(graph.nodes))
        targets = graph.sinks if outputs is None else graph.select(outputs)
        plan = graph.needed(targets, given)
        feeds = self._feeds(x, [p for p in plan if p in graph.inputs and p not in given])
        values: dict[str, Any] = {}
        groups: dict[str, Group] = {}
        for path in plan:
            if path in inject or path in feeds or path in given:
                args, value = None, inject.get(path, feeds.get(path))
            else:
                args, value = tuple(values[s] for s in graph.inputs_of(path)), None
            values[path] = _run_node(self, groups, (), tuple(path.split(SEP)), args, value, train)
        return values if outputs is None else {t: values[t] for t in targets}

    def _feeds(self, x: Any, needed: list[str]) -> dict[str, Any]:
        inputs = self._graph.inputs
        if isinstance(x, Mapping) and set(x) <= set(inputs) and (x or len(inputs) > 1):
            feeds = dict(x)
        elif len(inputs) == 1 and x is not None:
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
        return feeds

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node paths, every node after its inputs."""
        return self._graph.order

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """``(source, target)`` pairs."""
        return self._graph.edges

    def shapes(self, x: Any, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{path: jax.ShapeDtypeStruct}`` of every node on input ``x`` (which may itself be
        a `jax.ShapeDtypeStruct`), traced with `jax.eval_shape`: nothing is computed."""
        if variables is None:
            return jax.eval_shape(lambda x: self.init_with_output(jax.random.key(0), x)[0], x)
        return jax.eval_shape(lambda v, x: self.apply(v, x), variables, x)

    def to_dot(self, x: Any = None) -> str:
        """Graphviz DOT text of the graph (`dot -Tsvg`); with an example input ``x`` the
        boxes show output shapes.

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
        "shape", "dtype", "params"}], "edges": [{"source", "target"}], "inputs",
        "outputs"}``; shapes and parameter counts are filled in when ``x`` is given."""
        return _draw.to_json(self._graph, x, self)

    @property
    def _graph(self) -> Graph:
        assert isinstance(self.graph, Graph)
        return self.graph
