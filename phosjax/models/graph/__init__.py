"""phosjax.models.graph: models defined by an explicit graph of named nodes, and surgery.

Example:
  >>> import flax.linen as nn, jax, jax.numpy as jnp
  >>> from phosjax.models.graph import Graph, GraphModel, node
  >>> graph = Graph({"h": node(nn.Dense(4)), "out": node(nn.relu)})  # each reads the one before
  >>> model, x = GraphModel(graph, returns="out"), jnp.ones((2, 3))
  >>> variables = model.init(jax.random.key(0), x)
  >>> every = model.apply(variables, x, outputs=("h", "out"))  # any node's output
  >>> bool(jnp.array_equal(every["out"], nn.relu(every["h"])))
  True
"""

from phosjax.models.graph._model import OUT, GraphModel
from phosjax.models.graph._spec import COMBINES, Graph, GraphError, Input, Node, node
from phosjax.models.graph._stitch import ADAPTER, default_adapter, fit_adapter, stitch, train_only
from phosjax.models.graph._surgery import extract, fill_missing, merge, node_variables, rewire
from phosjax.models.graph._zoo import graph_model

__all__ = [
    "ADAPTER",
    "COMBINES",
    "OUT",
    "Graph",
    "GraphError",
    "GraphModel",
    "Input",
    "Node",
    "default_adapter",
    "extract",
    "fill_missing",
    "fit_adapter",
    "graph_model",
    "merge",
    "node",
    "node_variables",
    "rewire",
    "stitch",
    "train_only",
]
