"""GraphModel: the spec, outputs / inject planning, tags, transforms, listing, drawing."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.models.graph import GraphError, GraphModel, Input, node


def residual_graph(calls: list[str] | None = None) -> GraphModel:
    def counted(name):
        def fn(h):
            if calls is not None:
                calls.append(name)
            return nn.relu(h)

        fn.__name__ = name
        return fn

    return GraphModel(
        {
            "stem": nn.Dense(4),
            "block": {
                "dense": nn.Dense(4),
                "act": counted("act"),
                "add": node(inputs=("act", "../stem"), combine="add"),
            },
            "side": node(counted("side"), inputs="/stem"),
            "head": nn.Dense(3, name="ignored"),
        }
    )


@pytest.fixture
def model_and_variables(key):
    model = residual_graph()
    x = jax.random.normal(key, (2, 5))
    return model, model.init(key, x), x


def test_spec_resolves_defaults_relative_and_absolute_names():
    model = residual_graph()
    assert model.nodes == ("input", "stem", "block/dense", "block/act", "block/add", "side", "head")
    assert set(model.edges) == {
        ("input", "stem"),
        ("stem", "block/dense"),
        ("block/dense", "block/act"),
        ("block/act", "block/add"),
        ("stem", "block/add"),
        ("stem", "side"),
        ("side", "head"),
    }
    assert model.graph.inputs == ("input",)
    assert model.graph.sinks == ("block/add", "head")


def test_outputs_match_a_hand_written_forward_pass(model_and_variables):
    model, variables, x = model_and_variables
    params = variables["params"]
    assert set(params) == {"stem", "block", "head"}  # node paths; functions have none
    out = model.apply(variables, x)
    dense = lambda name, h: h @ name["kernel"] + name["bias"]
    stem = dense(params["stem"], x)
    block = nn.relu(dense(params["block"]["dense"], stem)) + stem
    head = dense(params["head"], nn.relu(stem))
    np.testing.assert_allclose(out["block/add"], block, rtol=1e-6)
    np.testing.assert_allclose(out["head"], head, rtol=1e-6)
    assert set(out) == set(model.nodes)


def test_outputs_computes_only_what_they_need(key):
    calls: list[str] = []
    model = residual_graph(calls)
    x = jnp.ones((2, 5))
    variables = model.init(key, x)
    calls.clear()
    out = model.apply(variables, x, outputs=["block/*"])
    assert calls == ["act"]
    assert list(out) == ["block/dense", "block/act", "block/add"]
    with pytest.raises(px.SelectorError, match="'nope' matched no node"):
        model.apply(variables, x, outputs="nope")


def test_inject_replaces_a_node_and_skips_its_upstream(key):
    calls: list[str] = []
    model = residual_graph(calls)
    x = jnp.ones((2, 5))
    variables = model.init(key, x)
    stem = 3 * jnp.ones((2, 4))
    calls.clear()
    out = model.apply(variables, None, outputs="side", inject={"stem": stem})
    assert calls == ["side"] and list(out) == ["side"]
    np.testing.assert_array_equal(out["side"], stem)
    # The full model fed the same hidden value agrees, and the input is not needed.
    full = model.apply(variables, x, inject={"stem": stem})
    assert "input" not in full and "block/add" in full
    with pytest.raises(GraphError, match=r"outputs need input node 'input', but x gives no value"):
        model.apply(variables, None, outputs="head")
    with pytest.raises(GraphError, match=r"inject names 'stm'.*existing nodes: 'input', 'stem'"):
        model.apply(variables, x, inject={"stm": stem})


def test_node_outputs_are_tagged_for_probe_inject_and_grad_of(model_and_variables):
    model, variables, x = model_and_variables
    out, found = px.probe(model, variables, x, "**/out")
    assert set(found) == {f"{p}/out" for p in model.nodes}
    for path in model.nodes:
        np.testing.assert_array_equal(found[f"{path}/out"], out[path])
    stem = jnp.zeros((2, 4))
    injected = px.inject(model, variables, x, {"stem/out": stem})
    direct = model.apply(variables, None, inject={"stem": stem})
    assert set(injected) == set(direct)  # px.inject skips the input node too
    np.testing.assert_allclose(injected["head"], direct["head"])

    def loss(out):
        return (out["head"] ** 2).sum()

    _, grads = jax.jit(lambda v, x: px.grad_of(loss, model, v, x, wrt="block/add/out"))(
        variables, x
    )
    np.testing.assert_array_equal(grads["block/add/out"], jnp.zeros((2, 4)))  # not upstream
    _, grads = px.grad_of(loss, model, variables, x, wrt="side/out")
    h = out["side"]
    head = variables["params"]["head"]
    expected = 2 * (h @ head["kernel"] + head["bias"]) @ head["kernel"].T
    np.testing.assert_allclose(grads["side/out"], expected, rtol=1e-5)


def test_blurb_lists_every_node(model_and_variables):
    model, variables, x = model_and_variables
    table = px.blurb(model, variables, x).table()
    for path in model.nodes[1:]:  # the input node computes nothing
        assert f"  {path} " in table
    row = next(line for line in table.splitlines() if " block/act " in line)
    assert row.split()[1:3] == ["Function", "0"]


def test_jit_vmap_and_grad(model_and_variables):
    model, variables, x = model_and_variables
    eager = model.apply(variables, x)["head"]
    np.testing.assert_allclose(jax.jit(model.apply)(variables, x)["head"], eager, rtol=1e-6)
    stacked = jnp.stack([x, 2 * x])
    batched = jax.vmap(lambda x: model.apply(variables, x)["head"])(stacked)
    np.testing.assert_allclose(batched[1], model.apply(variables, 2 * x)["head"], rtol=1e-6)
    grads = jax.grad(lambda v: model.apply(v, x, outputs="head")["head"].sum())(variables)
    block = jax.tree.leaves(grads["params"]["block"])
    assert all((g == 0).all() for g in block)  # not on the path to head
    np.testing.assert_array_equal(grads["params"]["head"]["bias"], [2.0, 2.0, 2.0])


def test_train_mode_reaches_dropout_and_batchnorm(key):
    model = GraphModel({"norm": nn.BatchNorm(momentum=0.5), "drop": nn.Dropout(0.5)})
    x = jax.random.normal(key, (8, 3)) + 1.0
    variables = model.init(key, x)
    assert set(variables) == {"params", "batch_stats"}
    evaluated = model.apply(variables, x)
    np.testing.assert_allclose(evaluated["drop"], evaluated["norm"])  # no dropout
    out, state = model.apply(
        variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
    )
    np.testing.assert_allclose(state["batch_stats"]["norm"]["mean"], 0.5 * x.mean(0), rtol=1e-5)
    kept = out["drop"] != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(out["drop"][kept], 2 * out["norm"][kept], rtol=1e-6)


class _Training(nn.Module):
    @nn.compact
    def __call__(self, x, training=False):
        return x + 1 if training else x


def test_train_mode_is_passed_as_sequence_passes_it(key):
    """Flags fixed by the constructor are left alone; ``training`` and ``is_training`` get
    the mode, also as a function's parameter."""
    model = GraphModel(
        {
            "drop": nn.Dropout(0.5, deterministic=True),
            "norm": nn.BatchNorm(use_running_average=True),
            "module": _Training(),
            "function": lambda h, is_training=False: h + 10 * is_training,
        }
    )
    x = jnp.ones((4, 3))
    variables = model.init(key, x)
    for train, added in ((False, 0.0), (True, 11.0)):
        out = model.apply(variables, x, train=train)
        np.testing.assert_array_equal(out["drop"], x)
        np.testing.assert_allclose(out["norm"], x, rtol=1e-5)  # running statistics: 0 and 1
        np.testing.assert_allclose(out["function"], out["norm"] + added)


def test_a_node_that_cannot_take_its_inputs_is_named():
    spec = {"sum": node(lambda p, q: p + q, inputs=("input", "input"), combine="add")}
    with pytest.raises(GraphError, match=r"Node 'sum': .*<lambda> requires the parameter 'q'"):
        GraphModel(spec).init(jax.random.key(0), jnp.ones((1, 2)))


def test_a_module_class_as_a_node_is_an_error():
    message = r"Node 'block/d' is the class Dense, not a module; pass an instance such as Dense\("
    with pytest.raises(GraphError, match=message):
        GraphModel({"block": {"d": nn.Dense}})
    with pytest.raises(GraphError, match="Node 'd' is the class Dense"):
        GraphModel({"d": node(nn.Dense, inputs="input")})


def test_several_inputs_and_combines():
    model = GraphModel(
        {
            "a": Input(),
            "b": Input(),
            "cat": node(inputs=("a", "b"), combine="concat"),
            "max": node(jnp.maximum, inputs=("a", "b")),
            "diff": node(lambda h: 2 * h, inputs=("a", "b"), combine=lambda u, v: u - v),
        }
    )
    a, b = jnp.array([[1.0, 5.0]]), jnp.array([[3.0, 2.0]])
    out = model.apply({}, {"a": a, "b": b})
    np.testing.assert_array_equal(out["cat"], [[1.0, 5.0, 3.0, 2.0]])
    np.testing.assert_array_equal(out["max"], [[3.0, 5.0]])
    np.testing.assert_array_equal(out["diff"], [[-4.0, 6.0]])
    with pytest.raises(GraphError, match="2 input nodes \\('a', 'b'\\); pass x as a dict"):
        model.apply({}, a)
    with pytest.raises(
        GraphError,
        match="x has keys that are not input nodes: 'bb'; the input nodes are 'a', 'b', "
        "and x gives no value for 'b'",
    ):
        model.apply({}, {"a": a, "bb": b})
    with pytest.raises(GraphError, match="Unknown combine 'sum'; use one of \\['add', 'concat'\\]"):
        node(inputs=("a", "b"), combine="sum")


def test_missing_input_names_it_and_lists_the_nodes():
    with pytest.raises(
        GraphError,
        match="Node 'block/add' takes input 'relu', but 'block/relu' is not a node; "
        "existing nodes: 'input', 'stem', 'block/act', 'block/add'",
    ):
        GraphModel({"stem": nn.Dense(2), "block": {"act": nn.relu, "add": node(inputs="relu")}})
    with pytest.raises(GraphError, match="'block' is a group \\(its nodes: 'block/act'\\)"):
        GraphModel({"block": {"act": nn.relu}, "out": node(inputs="block")})
    with pytest.raises(GraphError, match=r"Input name '\.\./\.\./x' goes above the root"):
        GraphModel({"block": {"act": node(inputs="../../x")}})


def test_a_node_that_is_also_a_group_is_an_error():
    with pytest.raises(
        GraphError, match="Node 'a' is also the group of node 'a/b'; a path is either a node"
    ):
        GraphModel({"a": nn.Dense(3), "a/b": nn.Dense(2)})
    with pytest.raises(GraphError, match="Node 'g/a' is also the group of node 'g/a/b/c'"):
        GraphModel({"g": {"a/b": {"c": nn.relu}, "a": nn.relu}})


def test_a_cycle_is_named():
    spec = {"a": node(inputs="c"), "b": nn.relu, "c": nn.relu, "d": nn.relu}
    with pytest.raises(GraphError, match="The graph has a cycle: a -> b -> c -> a"):
        GraphModel(spec)


def test_shapes_without_computing(model_and_variables):
    model, variables, x = model_and_variables
    shapes = model.shapes(jax.ShapeDtypeStruct((7, 5), jnp.float32))
    assert {p: s.shape for p, s in shapes.items()} == {
        "input": (7, 5),
        "stem": (7, 4),
        "block/dense": (7, 4),
        "block/act": (7, 4),
        "block/add": (7, 4),
        "side": (7, 4),
        "head": (7, 3),
    }
    assert model.shapes(x, variables)["head"].shape == (2, 3)


def test_to_dot_draws_every_node_and_edge(model_and_variables):
    model, _, x = model_and_variables
    dot = model.to_dot(x)
    assert dot.startswith("digraph graph_model {") and dot.endswith("}")
    for path in model.nodes:
        assert f'"{path}" [label="{path.split("/")[-1]}\\n' in dot
    for source, target in model.edges:
        assert f'"{source}" -> "{target}";' in dot
    assert dot.count(" -> ") == len(model.edges)
    assert 'subgraph "cluster_block" {' in dot and '"block/add" [label="add\\nadd\\n(2, 4)"' in dot
    assert '"stem" [label="stem\\nDense\\n(2, 4)", shape=box];' in dot


def test_to_json_describes_nodes_edges_shapes_and_params(model_and_variables):
    model, _, x = model_and_variables
    described = json.loads(model.to_json(x))
    nodes = {n["id"]: n for n in described["nodes"]}
    assert list(nodes) == list(model.nodes)
    assert nodes["block/add"] == {
        "id": "block/add",
        "name": "add",
        "group": "block",
        "op": "add",
        "inputs": ["block/act", "stem"],
        "shape": [2, 4],
        "dtype": "float32",
        "params": 0,
    }
    assert nodes["stem"]["params"] == 5 * 4 + 4 and nodes["side"]["op"] == "side"
    assert [(e["source"], e["target"]) for e in described["edges"]] == list(model.edges)
    assert described["inputs"] == ["input"] and described["outputs"] == ["block/add", "head"]
    assert json.loads(model.to_json())["nodes"][1]["shape"] is None


def test_public_names():
    import phosjax.models.graph as graph

    assert graph.__all__ == [
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
        "fit_adapter",
        "graph_model",
        "merge",
        "node",
        "node_variables",
        "rewire",
        "stitch",
        "train_only",
    ]
    assert all(hasattr(graph, name) for name in graph.__all__)
