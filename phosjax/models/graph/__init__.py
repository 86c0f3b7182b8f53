"""phosjax.models.graph: models defined by an explicit graph of named nodes, and surgery."""

from phosjax.models.graph._model import OUT, GraphModel
from phosjax.models.graph._spec import COMBINES, Graph, GraphError, Input, Node, node

__all__ = [
    "COMBINES",
    "OUT",
    "Graph",
    "GraphError",
    "GraphModel",
    "Input",
    "Node",
    "node",
]
