"""phosjax.models.graph: models defined by an explicit graph of named nodes, and surgery."""

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
