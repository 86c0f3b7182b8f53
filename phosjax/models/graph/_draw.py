"""Drawing a graph: Graphviz DOT text and a JSON description for the web viewer."""

import functools
import json
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax

from phosjax.core import flatten
from phosjax.models.graph._abstract import eval_shape_as_applied
from phosjax.models.graph._spec import SEP, Graph, Input, Node


def _callable_name(fn: Any) -> str:
    """A module's class name, a named combine's name, a function's ``__name__`` (that of
    the function a `functools.partial` wraps).

    Examples:
      >>> _callable_name(nn.Dense(2)), _callable_name("add"), _callable_name(max)
      ('Dense', 'add', 'max')
      >>> _callable_name(functools.partial(round, ndigits=2))
      'round'
    """
    if isinstance(fn, str):
        return fn
    if isinstance(fn, functools.partial):
        return _callable_name(fn.func)
    if isinstance(fn, nn.Module):
        return type(fn).__name__
    return getattr(fn, "__name__", type(fn).__name__)


def op_name(spec: Node | Input) -> str:
    """A short label for what a node computes: ``Conv``, ``relu``, ``add``, ``Input``; a
    ``fn`` applied to its combined inputs shows both, ``Dense(concat)``.

    Examples:
      >>> op_name(Node(nn.Dense(2), ("a", "b"), "concat")), op_name(Node(None, ("a",)))
      ('Dense(concat)', 'identity')
    """
    if isinstance(spec, Input):
        return "Input"
    combine = None if spec.combine is None else _callable_name(spec.combine)
    if spec.fn is None:
        return combine or "identity"
    fn = _callable_name(spec.fn)
    return fn if combine is None else f"{fn}({combine})"


def param_counts(graph: Graph, variables: Mapping[str, Any]) -> dict[str, int]:
    """``{node: number of parameters}`` (the ``params`` collection; arrays or shapes, boxed
    ones such as `nn.with_partitioning`'s counted by their arrays)."""
    counts = dict.fromkeys(graph.nodes, 0)
    for path, leaf in flatten(nn.meta.unbox(variables.get("params", {}))).items():
        owner = next(
            (p for p in graph.nodes if path.startswith(p + SEP)), None
        )  # the node whose module holds it
        if owner is not None:
            counts[owner] += math.prod(leaf.shape)
    return counts


def output_fields(output: Any) -> dict[str, Any]:
    """A node's ``shape`` and ``dtype`` where its output (a `jax.ShapeDtypeStruct` tree)
    is one array, else its ``parts``: ``{key path: {"shape", "dtype"}}`` of each array of
    a tuple, list or dict; None for what is not known (no output traced).

    Examples:
      >>> one = jax.ShapeDtypeStruct((2, 4), "float32")
      >>> output_fields(one)
      {'shape': [2, 4], 'dtype': 'float32', 'parts': None}
      >>> output_fields((one, one))["parts"]
      {'[0]': {'shape': [2, 4], 'dtype': 'float32'}, '[1]': {'shape': [2, 4], 'dtype': 'float32'}}
      >>> output_fields(None)
      {'shape': None, 'dtype': None, 'parts': None}
    """
    if isinstance(output, jax.ShapeDtypeStruct):
        return {"shape": list(output.shape), "dtype": str(output.dtype), "parts": None}
    parts = {
        jax.tree_util.keystr(key): {"shape": list(leaf.shape), "dtype": str(leaf.dtype)}
        for key, leaf in jax.tree_util.tree_leaves_with_path(output)
    }
    return {"shape": None, "dtype": None, "parts": parts or None}


def describe(graph: Graph, x: Any = None, model: nn.Module | None = None) -> dict[str, Any]:
    """The graph as plain data: nodes (path, group, op, inputs, shape, dtype, parts,
    params), edges, inputs and outputs. Shapes and parameter counts need an example input
    ``x``, or none for a graph without input nodes."""
    shapes: dict[str, Any] = {}
    counts: dict[str, int] = {}
    if model is not None and (x is not None or not graph.inputs):
        shapes, variables = eval_shape_as_applied(
            lambda x: model.init_with_output(jax.random.key(0), x, outputs=graph.order), x
        )
        counts = param_counts(graph, variables)
    nodes = []
    for path in graph.order:
        *group, name = path.split(SEP)
        nodes.append(
            {
                "id": path,
                "name": name,
                "group": SEP.join(group),
                "op": op_name(graph.nodes[path]),
                "inputs": list(graph.inputs_of(path)),
                **output_fields(shapes.get(path)),
                "params": counts.get(path),
            }
        )
    return {
        "nodes": nodes,
        "edges": [{"source": s, "target": t} for s, t in graph.edges],
        "inputs": list(graph.inputs),
        "outputs": list(graph.sinks),
    }


def to_json(graph: Graph, x: Any = None, model: nn.Module | None = None) -> str:
    """`describe` as JSON text."""
    return json.dumps(describe(graph, x, model))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    return f'"{_escape(text)}"'


class _Cluster(dict[str, Any]):
    """A group's nodes and subgroups, while drawing."""


def to_dot(graph: Graph, x: Any = None, model: nn.Module | None = None) -> str:
    """Graphviz DOT text: one box per node (name, op, shape), one cluster per group."""
    description = describe(graph, x, model)
    root = _Cluster()
    for entry in description["nodes"]:
        cluster = root
        for part in entry["group"].split(SEP) if entry["group"] else []:
            cluster = cluster.setdefault(part, _Cluster())
        cluster[entry["name"]] = entry

    def emit(cluster: _Cluster, prefix: str, indent: str) -> list[str]:
        lines = []
        for key, item in cluster.items():
            if isinstance(item, _Cluster):
                lines.append(f"{indent}subgraph {_quote('cluster_' + prefix + key)} {{")
                lines.append(f"{indent}  label={_quote(key)};")
                lines += emit(item, prefix + key + SEP, indent + "  ")
                lines.append(f"{indent}}}")
                continue
            label = [item["name"], item["op"]]
            if item["shape"] is not None:
                label.append(str(tuple(item["shape"])))
            for key, part in (item["parts"] or {}).items():
                label.append(f"{key} {tuple(part['shape'])}")
            shape = "ellipse" if item["op"] == "Input" else "box"
            text = "\\n".join(_escape(part) for part in label)
            lines.append(f'{indent}{_quote(item["id"])} [label="{text}", shape={shape}];')
        return lines

    edges = [f"  {_quote(e['source'])} -> {_quote(e['target'])};" for e in description["edges"]]
    return "\n".join(["digraph graph_model {", "  rankdir=TB;", *emit(root, "", "  "), *edges, "}"])
