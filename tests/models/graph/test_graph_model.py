"""GraphModel: the spec, outputs / inject planning, tags, transforms, listing, drawing."""

import functools
import json
import re

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import phosjax as px
from phosjax.core import INJECTIONS, ArraySpec
from phosjax.layers import SwiGLU, TransformerBlock
from phosjax.models.graph import (
    OUT,
    GraphError,
    GraphModel,
    Input,
    extract,
    node,
    rewire,
    train_only,
)


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


def test_a_model_built_twice_from_one_spec_equals_it_and_no_other():
    """A `Graph` compared by identity: two models of one spec were unequal."""
    spec = {"h": nn.Dense(3), "a": nn.relu, "y": node(inputs=("h", "a"), combine="add")}
    one, again = GraphModel(spec), GraphModel(dict(spec))
    assert one == again and hash(one) == hash(again)
    assert one != GraphModel({**spec, "h": nn.Dense(4)})
    assert one != GraphModel({"a": nn.relu, "h": nn.Dense(3), "y": spec["y"]})  # a after h


class _Scale(nn.Module):
    """A module holding an array, compared elementwise by its dataclass `==`."""

    w: np.ndarray

    def __call__(self, x):
        return x * self.w


def test_models_of_one_paths_whose_modules_hold_arrays_compare_unequal_not_raise():
    """Graphs hashed by their paths alike were compared node by node: two models whose
    modules hold arrays raised 'The truth value of an array ... is ambiguous' (in a jit
    cache taking them as static arguments, say) where they were unequal before."""
    one, other = (GraphModel({"h": _Scale(np.full(4, w))}) for w in (1.0, 2.0))
    assert hash(one.graph) == hash(other.graph)
    assert one != other and one == one.clone()


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
    b = px.blurb(model, variables, x)
    table = b.table()
    for path in model.nodes:
        assert f"  {path} " in table
    assert b["input"].outputs[""].shape == x.shape and b["input"].params == 0
    row = next(line for line in table.splitlines() if " block/act " in line)
    assert row.split()[1:3] == ["act", "0"]  # a function node's type is its op (its name)
    assert [b[p].type for p in ("input", "stem", "block", "block/add")] == [
        "Input",
        "Dense",
        "Group",
        "add",
    ]


def test_blurb_of_a_group_sums_its_nodes_and_gives_its_last_output(key):
    model = GraphModel(
        {
            "stem": nn.Dense(4),
            "block": {
                "dense": nn.Dense(4),
                "act": nn.relu,
                "add": node(inputs=("act", "../stem"), combine="add"),
                "wide": nn.Dense(6),
            },
            "head": nn.Dense(2),
        }
    )
    x = jax.random.normal(key, (3, 5))
    variables = model.init(key, x)
    b = px.blurb(model, variables, x, measure_latency=False)
    group, nodes = b["block"], b["block"].children
    assert [n.path for n in nodes] == ["block/dense", "block/act", "block/add", "block/wide"]
    assert b["block/add"].flops == 3 * 4  # the combine counts on its node
    assert group.flops == sum(n.flops for n in nodes)
    assert group.params == sum(n.params for n in nodes)
    assert group.outputs == b["block/wide"].outputs == {"": ArraySpec((3, 6), "float32")}
    whole = jax.jit(model.apply).lower(variables, x).compile().cost_analysis()
    assert b.root.flops == whole["flops"]


def test_jit_vmap_and_grad(model_and_variables):
    model, variables, x = model_and_variables
    eager = model.apply(variables, x)["head"]
    close = functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7)  # rounding
    close(jax.jit(model.apply)(variables, x)["head"], eager)
    stacked = jnp.stack([x, 2 * x])
    batched = jax.vmap(lambda x: model.apply(variables, x)["head"])(stacked)
    close(batched[1], model.apply(variables, 2 * x)["head"])
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


def test_a_train_flag_that_is_no_bool_is_an_error(key):
    """train="false" trained (dropout on), without a word."""
    model = GraphModel({"drop": nn.Dropout(0.5)})
    with pytest.raises(TypeError, match=r"^GraphModel train must be True or False, got 'false'"):
        jax.eval_shape(
            lambda: model.init({"params": key, "dropout": key}, jnp.ones((2, 3)), "false")
        )


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


def test_a_remat_node_with_a_static_flag_gets_the_mode(key):
    """The flag goes positionally, so ``nn.remat(..., static_argnums=(2,))`` sees it static
    (a traced flag would fail the Python branch)."""
    remat_training = nn.remat(_Training, static_argnums=(2,))
    model = GraphModel({"dense": nn.Dense(3), "module": remat_training()})
    x = jnp.ones((4, 3))
    variables = model.init(key, x)
    for train, added in ((False, 0.0), (True, 1.0)):
        out = model.apply(variables, x, train=train)
        np.testing.assert_allclose(out["module"], out["dense"] + added)


def test_a_node_that_cannot_take_its_inputs_is_named_when_built():
    spec = {"sum": node(lambda p, q: p + q, inputs=("input", "input"), combine="add")}
    with pytest.raises(GraphError, match=r"Node 'sum': .*<lambda> requires the parameter 'q'"):
        GraphModel(spec)


@pytest.mark.parametrize(
    ("fn", "flag"),
    [(nn.Dropout(0.5), "deterministic"), (lambda h, train=False: h, "train")],
)
def test_an_input_that_would_be_the_train_flag_is_named_when_built(fn, flag):
    with pytest.raises(
        GraphError,
        match=rf"Node 'c' gives its fn .* its 2 inputs \('a', 'b'\) as arguments, but it "
        rf"cannot take them \(an input would be its train flag '{flag}'\)",
    ):
        GraphModel({"a": nn.relu, "b": nn.relu, "c": node(fn, inputs=("a", "b"))})


class _Constant(nn.Module):
    @nn.compact
    def __call__(self, train=False):
        return self.param("c", nn.initializers.ones, (2,)) * (1 + train)


@pytest.mark.parametrize(
    ("fn", "parameter"),
    [(jnp.tanh, "x"), (nn.Dense(2), "inputs"), (lambda h, train=False: h, "h")],
)
def test_a_node_of_no_inputs_whose_fn_needs_one_is_refused_when_built(fn, parameter):
    with pytest.raises(
        GraphError,
        match=rf"Node 'g/c': .* requires the parameter '{parameter}', .* Node 'g/c' takes no "
        r"inputs \(inputs=\(\)\); give it the nodes its fn takes, e.g. inputs=\('input',\), "
        r"or a fn that needs no argument \(a constant\)\.",
    ):
        GraphModel({"a": nn.relu, "g": {"c": node(fn, inputs=())}})


def test_nodes_of_no_inputs_that_need_none_compute_constants(key):
    model = GraphModel(
        {
            "a": nn.relu,
            "ones": node(lambda: jnp.ones(2), inputs=()),
            "module": node(_Constant(), inputs=()),
            "made": node(jnp.tanh, inputs=(), combine=lambda: jnp.zeros(2)),
        }
    )
    variables = model.init(key, jnp.ones((1, 2)))
    out = model.apply(variables, jnp.ones((1, 2)), train=True)
    np.testing.assert_array_equal(out["ones"], [1.0, 1.0])
    np.testing.assert_array_equal(out["module"], [2.0, 2.0])  # told the mode
    np.testing.assert_array_equal(out["made"], [0.0, 0.0])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (node(3, inputs="a"), r"Node 'c' has fn=3 \(of type int\), which cannot be called"),
        (
            node(inputs=("a", "b"), combine=3),
            r"Node 'c' has combine=3 \(of type int\), which cannot be called; give 'add', "
            r"'concat' or a function\.",
        ),
        (
            node(lambda p: p, inputs=("a", "b")),
            r"Node 'c' gives its fn <lambda>\(p\) its 2 inputs \('a', 'b'\) as arguments, but "
            r"it cannot take them \(too many positional arguments\); combine them",
        ),
        (
            node(nn.Dense(2), inputs=("a", "b")),
            r"Node 'c' gives its fn Dense\(inputs\) its 2 inputs",
        ),
        (
            node(lambda: 0, inputs=("a", "b"), combine="add"),
            r"Node 'c' gives its fn <lambda>\(\) the one value its combine makes of its inputs",
        ),
    ],
)
def test_a_node_that_cannot_be_called_is_named_when_built(bad, message):
    with pytest.raises(GraphError, match=message):
        GraphModel({"a": nn.Dense(2), "b": nn.Dense(2), "c": bad})


def test_an_array_given_as_a_node_fn_is_named_in_one_short_line():
    """The message held the whole array's repr, 40 lines of zeros."""
    with pytest.raises(GraphError) as error:
        GraphModel({"c": node(jnp.zeros((40, 40)), inputs="input")})
    assert str(error.value) == (
        "Node 'c' has fn=Array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… (shape "
        "(40, 40), dtype float32) (of type ArrayImpl), which cannot be called; give a Flax "
        "module or a function."
    )


NAMES = ["blocks_0/conv", "blocks_1/conv", "blocks_2/conv", "blocks_3/conv"]
"""Node names whose list is longer than an error shows of a value."""


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (
            lambda: node(abs, inputs=[*NAMES, 2]),
            "node(inputs=['blocks_0/conv', 'blocks_1/conv', 'blocks_2/conv', 'blocks…): ",
        ),
        (
            lambda: rewire(GraphModel({"a": nn.relu}), "a", [*NAMES, 2]),
            "rewire(inputs=['blocks_0/conv', 'blocks_1/conv', 'blocks_2/conv', 'blocks…): ",
        ),
    ],
    ids=["node", "rewire"],
)
def test_a_long_list_of_inputs_names_the_one_that_is_no_str(call, said):
    """The list was cut before its 2, which the message named nowhere else."""
    with pytest.raises(GraphError) as error:
        call()
    assert str(error.value) == said + (
        "inputs is a node name or a tuple of node names, e.g. inputs='conv' or "
        "inputs=('conv', 'stem') (in order: a set has none); inputs[4] is 2 (of type int), "
        "not a node name (a str)."
    )


def test_an_error_in_a_node_call_keeps_its_type_and_names_the_node(key):
    model = GraphModel({"stem": nn.Dense(2), "group": {"bad": lambda h: h + "text"}})
    with pytest.raises(TypeError) as caught:
        model.init(key, jnp.ones((1, 3)))
    assert "(raised computing graph node 'group/bad')" in caught.value.__notes__


def test_a_module_class_as_a_node_is_an_error():
    message = (
        r"Node 'block/d' is the class Dense, not an instance; pass an instance such as Dense\("
    )
    with pytest.raises(GraphError, match=message):
        GraphModel({"block": {"d": nn.Dense}})
    with pytest.raises(GraphError, match="Node 'd' is the class Dense"):
        GraphModel({"d": node(nn.Dense, inputs="input")})
    message = r"Node 'x' is the class Input, not an instance; pass an instance such as Input\(\)\."
    for spec in ({"x": Input}, {"a": Input(), "x": node(Input, inputs="a")}):
        with pytest.raises(GraphError, match=message):
            GraphModel(spec)


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
        match=r"x has keys that are not input nodes: 'bb'; the input nodes are 'a', 'b', "
        r"and x gives no value for 'b'\. Did you mean 'b'\?",  # a misspelt key: the nearest
    ):
        model.apply({}, {"a": a, "bb": b})
    with pytest.raises(  # 'b' given too: renaming 'bb' to it would not help
        GraphError, match=r"not input nodes: 'bb'; the input nodes are 'a', 'b'\.(?! Did)"
    ):
        model.apply({}, {"a": a, "b": b, "bb": b})
    with pytest.raises(GraphError, match="Unknown combine 'sum'; use one of \\['add', 'concat'\\]"):
        node(inputs=("a", "b"), combine="sum")


def test_an_injected_input_node_wins_over_the_value_x_gives_it():
    model = GraphModel({"a": Input(), "b": Input(), "sum": node(inputs=("a", "b"), combine="add")})
    a, b, injected = jnp.array([1.0, 2.0]), jnp.array([10.0, 20.0]), jnp.array([5.0, 7.0])
    out = model.apply({}, {"a": a, "b": b}, inject={"b": injected})
    np.testing.assert_array_equal(out["b"], injected)
    np.testing.assert_array_equal(out["sum"], [6.0, 9.0])  # a + injected, not a + b
    np.testing.assert_array_equal(model.apply({}, {"a": a, "b": b})["sum"], [11.0, 22.0])


def test_one_input_takes_a_value_a_feed_dict_or_a_dict_value():
    model = GraphModel({"sum": lambda h: h["p"] + h["q"] if isinstance(h, dict) else 2 * h})
    one = jnp.ones(2)
    np.testing.assert_array_equal(model.apply({}, one)["sum"], 2 * one)
    np.testing.assert_array_equal(model.apply({}, {"input": one})["sum"], 2 * one)
    np.testing.assert_array_equal(model.apply({}, {"p": one, "q": one})["sum"], 2 * one)
    with pytest.raises(
        GraphError,
        match="x has keys that are not input nodes: 'extra'; the input nodes are 'input'",
    ):
        model.apply({}, {"input": one, "extra": one})


@pytest.mark.parametrize("key", ["a/input", "sum"])
def test_one_input_refuses_a_dict_keyed_like_an_input_node(key):
    """A key that names a node, or ends like the input node's name, is a misnamed feed:
    fed as the value, it would fail in the first node with an unrelated error."""
    model = GraphModel({"sum": lambda h: h["p"] + h["q"] if isinstance(h, dict) else 2 * h})
    with pytest.raises(
        GraphError,
        match=rf"^x has keys that are not input nodes: '{key}'; the input nodes are 'input', "
        r"and x gives no value for 'input'(\. Did you mean 'input'\?|\.) To feed a dict as the "
        r"value of 'input', pass "
        r"\{'input': the dict\} \(a dict whose keys name no node and no input node is fed",
    ):
        model.apply({}, {key: jnp.ones(2)})
    wrapped = {"input": {"p": jnp.ones(2), "q": jnp.ones(2), key: jnp.ones(2)}}
    np.testing.assert_array_equal(model.apply({}, wrapped)["sum"], [2.0, 2.0])
    stitched = GraphModel({"a": {"input": Input()}, "h": node(abs, inputs="a/input")})
    with pytest.raises(GraphError, match=r"^x has keys that are not input nodes: 'input'; the"):
        stitched.apply({}, {"input": jnp.ones(2)})


def test_missing_input_names_it_and_lists_the_nodes():
    with pytest.raises(
        GraphError,
        match="Node 'block/add' takes input 'relu', but 'block/relu' is not a node; "
        "existing nodes: 'input', 'stem', 'block/act', 'block/add'",
    ):
        GraphModel({"stem": nn.Dense(2), "block": {"act": nn.relu, "add": node(inputs="relu")}})
    with pytest.raises(GraphError, match="'block' is a group \\(its nodes: 'block/act'\\)"):
        GraphModel({"block": {"act": nn.relu}, "out": node(inputs="block")})
    with pytest.raises(
        GraphError,
        match=r"Node 'block/act' takes input '\.\./\.\./x', which goes above the root of the "
        r"graph \(read in group 'block'\); name it from the root, e.g. '/x'\.",
    ):
        GraphModel({"block": {"act": node(inputs="../../x")}})


def test_an_input_named_as_from_the_top_level_says_how_to_write_it_from_its_group():
    block = {"d": nn.Dense(2), "g": {"add": node(inputs=("../d", "stem"), combine="add")}}
    with pytest.raises(
        GraphError,
        match=r"^Node 'block/g/add' takes input 'stem', but 'block/g/stem' is not a node; "
        r"existing nodes: 'input', 'stem', 'block/d', 'block/g/add'\. Input names are "
        r"relative to the node's group 'block/g': write '\.\./\.\./stem' or '/stem' for node "
        r"'stem'\.$",
    ):
        GraphModel({"stem": nn.Dense(2), "block": block})


@pytest.mark.parametrize("name", ["..", "/"])
def test_an_input_naming_the_root_says_so(name):
    """inputs='..' in a top-level group (or '/') said "'' is not a node"."""
    message = (
        rf"^Node 'g/c' takes input '{re.escape(name)}', which names the root of the graph, a "
        r"group, not a node; existing nodes: 'input', 'a', 'g/b', 'g/c'\.$"
    )
    with pytest.raises(GraphError, match=message):
        GraphModel({"a": abs, "g": {"b": abs, "c": node(abs, inputs=name)}})


@pytest.mark.parametrize(
    ("name", "meant"), [("b/", "b"), ("/g//b", "/g/b"), ("../a/", "../a"), ("//a", "/a")]
)
def test_an_input_with_an_empty_path_segment_is_an_error_saying_how_to_write_it(name, meant):
    """'b/' (a trailing slash) or 'g//b' was read as 'b' or 'g/b', silently."""
    with pytest.raises(GraphError) as raised:
        GraphModel({"a": abs, "g": {"b": abs, "c": node(abs, inputs=("../a", name))}})
    assert str(raised.value) == (
        f"Node 'g/c' takes input {name!r}, which has an empty path segment (a '/' at its end "
        f"or doubled); write {meant!r}."
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("./", "but 'g' is a group (its nodes: 'g/b', 'g/c')"),
        ("../", "which names the root of the graph, a group, not a node"),
        ("//", "which names the root of the graph, a group, not a node"),
    ],
)
def test_an_input_naming_a_group_with_a_slash_at_its_end_says_it_names_a_group(name, why):
    """'./' was told to write '.', which names the group too (and '../' '..', '//' '/')."""
    with pytest.raises(GraphError) as raised:
        GraphModel({"a": abs, "g": {"b": abs, "c": node(abs, inputs=name)}})
    assert str(raised.value) == (
        f"Node 'g/c' takes input {name!r}, {why}; existing nodes: 'input', 'a', 'g/b', 'g/c'."
    )


@pytest.mark.parametrize(("name", "meant"), [("a/", "a"), ("g//b", "g/b")])
def test_rewire_to_an_input_with_an_empty_path_segment_is_an_error(name, meant):
    model = GraphModel({"a": abs, "g": {"b": abs, "c": abs}})
    with pytest.raises(GraphError) as raised:
        rewire(model, "g/c", name)
    assert str(raised.value) == (
        f"rewire gives node 'g/c' the input {name!r}, which has an empty path segment (a '/' "
        f"at its end or doubled); write {meant!r}."
    )


@pytest.mark.parametrize("name", ["./a", "a/../a"])
def test_the_way_to_write_an_outer_input_is_the_shortest(name):
    """It prefixed '../' to the name as written: write '.././a' (or '../a/../a')."""
    with pytest.raises(GraphError, match=r"group 'g': write '\.\./a' or '/a' for node 'a'\."):
        GraphModel({"a": abs, "g": {"b": abs, "c": node(abs, inputs=name)}})


def test_a_node_that_is_also_a_group_is_an_error():
    with pytest.raises(
        GraphError, match="Node 'a' is also the group of node 'a/b'; a path is either a node"
    ):
        GraphModel({"a": nn.Dense(3), "a/b": nn.Dense(2)})
    with pytest.raises(GraphError, match="Node 'g/a' is also the group of node 'g/a/b/c'"):
        GraphModel({"g": {"a/b": {"c": nn.relu}, "a": nn.relu}})


def test_empty_outputs_are_an_error_not_an_empty_result(model_and_variables):
    """outputs=[] returned {} (extract's, a model of the input node alone), silently."""
    model, variables, x = model_and_variables
    message = (
        r"^outputs is empty \(\[\]\), so it selects no node; give a node selector, such as "
        r"'head' or '\*\*' for every node \(or None, the default: the graph's outputs\)\."
    )
    with pytest.raises(GraphError, match=message):
        model.apply(variables, x, outputs=[])
    with pytest.raises(GraphError, match=r"^extract's outputs is empty \(\(\)\), so it selects"):
        extract(model, variables, outputs=())


@pytest.mark.parametrize("outputs", ["", ["head", ""]])
def test_an_empty_selector_in_outputs_is_named_as_outputs(model_and_variables, outputs):
    """It was the core's "ValueError: A selector must be a non-empty string, got ''.",
    naming neither extract's outputs nor what they take."""
    model, variables, x = model_and_variables
    message = (
        "names '', which selects no node; give a node selector, such as 'head' or '**' for "
        "every node (or None, the default: the graph's outputs)."
    )
    with pytest.raises(GraphError) as info:
        extract(model, variables, outputs=outputs)
    assert str(info.value) == f"extract's outputs {message}"
    with pytest.raises(GraphError) as info:
        model.apply(variables, x, outputs=outputs)
    assert str(info.value) == f"outputs {message}"


def test_outputs_naming_a_group_say_it_is_one_and_how_to_select_its_nodes(model_and_variables):
    """It was 'matched no node among 7; nearest: ...', as for a typo."""
    model, variables, x = model_and_variables
    message = (
        r"^outputs selects 'block', a group, not a node \(its nodes: 'block/dense', "
        r"'block/act', 'block/add'\); select them with 'block/\*\*', or name one\."
    )
    with pytest.raises(px.SelectorError, match=message):
        model.apply(variables, x, outputs=["head", "block"])
    assert list(model.apply(variables, x, outputs="block/**")) == [
        "block/dense",
        "block/act",
        "block/add",
    ]
    with pytest.raises(px.SelectorError, match=r"^extract's outputs selects 'block', a group"):
        extract(model, variables, outputs="block")


def test_a_node_key_that_is_no_str_is_an_error():
    """{1: nn.Dense(2)} was node '1' (its params at 'params/1'), silently renamed."""
    message = r"^Node key 1 at the top level is of type int, not a str: a node or group is named"
    with pytest.raises(GraphError, match=message):
        GraphModel({1: nn.Dense(2)})
    with pytest.raises(GraphError, match=r"^Node key \('a', 'b'\) in group 'g' is of type tuple"):
        GraphModel({"g": {("a", "b"): nn.relu}})


def test_a_long_node_key_that_is_no_str_is_named_in_one_short_line():
    """The message held the key's whole repr, 40 names."""
    with pytest.raises(GraphError) as error:
        GraphModel({tuple(f"layer_{i}" for i in range(40)): nn.relu})
    assert str(error.value) == (
        "Node key ('layer_0', 'layer_1', 'layer_2', 'layer_3', 'layer_4', 'la… at the top "
        "level is of type tuple, not a str: a node or group is named by a str, such as "
        "'dense' (its variables' path)."
    )


def test_an_empty_group_is_an_error_naming_its_path():
    message = r"^Group 'block/inner' is empty: a group is a dict of nodes, so it would add none"
    with pytest.raises(GraphError, match=message):
        GraphModel({"stem": nn.Dense(2), "block": {"d": nn.Dense(2), "inner": {}}})
    with pytest.raises(GraphError, match=r"^Group 'g' is empty"):
        GraphModel({"g": {}, "head": nn.Dense(2)})


def test_an_empty_spec_is_an_error_as_an_empty_group_is():
    """GraphModel({}) made a model of the added input node alone, which returned x."""
    with pytest.raises(GraphError, match=r"^The graph spec is empty \(\{\}\), so the model"):
        GraphModel({})


def test_a_node_defined_twice_says_how():
    """It said only "Node 'g/h' is defined twice.", though a dict cannot hold a key twice."""
    message = (
        r"^Node 'g/h' is defined twice: a key with '/' in it names the same path as a nested "
        r"group's key \(such as 'g/h' and a group 'g' holding the rest\); keep one of them\."
    )
    with pytest.raises(GraphError, match=message):
        GraphModel({"g": {"h": nn.relu}, "g/h": nn.relu})


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


def test_shapes_and_drawings_take_a_nested_list_as_apply_does(key):
    """A nested list failed with a tracer error (one traced scalar per number, which
    Flax's Dense reads with numpy), though apply takes it; and shapes read it as its
    array where apply handed a relu node the list (a TypeError): both read the array."""
    model = GraphModel(
        {"x": Input(), "h": node(nn.Dense(2), inputs="x"), "r": node(nn.relu, inputs="x")}
    )
    rows = [[1.0, -2.0, 3.0]]
    variables = model.init(key, rows)
    applied = model.apply(variables, rows)
    np.testing.assert_array_equal(applied["r"], jnp.array([[1.0, 0.0, 3.0]]))
    assert {p: v.shape for p, v in applied.items()} == {
        p: v.shape for p, v in model.shapes(rows).items()
    }
    assert model.shapes(rows)["h"].shape == model.shapes(rows, variables)["h"].shape == (1, 2)
    dot = model.to_dot(rows)  # the list drawn as its array, not one part per number
    assert '"x" [label="x\\nInput\\n(1, 3)", shape=ellipse];' in dot
    assert '"h" [label="h\\nDense\\n(1, 2)", shape=box];' in dot
    assert [n["shape"] for n in json.loads(model.to_json(rows))["nodes"]] == [
        [1, 3],
        [1, 2],
        [1, 3],
    ]


def test_a_jitted_apply_reads_a_nested_list_as_apply_does(key):
    """Under jax.jit each number of a nested list is traced as a scalar of its own, so an
    Embed node failed on the list ('list' object has no attribute 'dtype'), and a masked
    transformer got no padding zeroed (a tracer error on the list): both read its array."""
    tokens = [[1, 2, 3]]
    model = GraphModel({"emb": nn.Embed(5, 4), "h": nn.Dense(2)})
    variables = jax.jit(model.init)(key, jnp.asarray(tokens))
    jitted = jax.jit(model.apply)(variables, tokens)
    np.testing.assert_allclose(jitted["h"], model.apply(variables, tokens)["h"], rtol=1e-6)
    masked = GraphModel({"d": nn.Dense(4), "t": TransformerBlock(2)})
    rows, mask = [[[1.0, 2.0], [float("nan"), 3.0]]], jnp.array([[True, False]])
    variables = jax.jit(functools.partial(masked.init, mask=mask))(key, jnp.asarray(rows))
    run = lambda v, *xs: [masked.apply(v, x, mask=mask)["t"] for x in xs]
    out, expected = jax.jit(run)(variables, rows, jnp.asarray(rows))  # a list, its array
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert not jnp.isnan(out).any()


@pytest.mark.parametrize(
    "tokens",
    [[[np.int32(1), np.int32(2)]], [[True, False]], [[1, jnp.int32(2)]]],
    ids=["numpy scalars", "bools", "numbers and arrays"],
)
def test_apply_reads_a_list_of_scalars_as_a_jitted_apply_does(tokens):
    """A jitted apply reads a list of any scalars as its array (jax.jit traces each one
    as a 0-d array), but apply passed on a list of numpy scalars, of bools, or of numbers
    mixed with 0-d arrays as the list: a node reading it as an array failed ('list'
    object has no attribute 'astype') on what its jitted twin took."""
    model = GraphModel({"f": lambda t: t.astype(jnp.float32)})
    expected = jax.jit(model.apply)({}, tokens)["f"]
    np.testing.assert_array_equal(model.apply({}, tokens)["f"], expected)
    assert expected.shape == (1, 2)


def test_an_injection_is_checked_on_a_nested_list_as_on_its_array(key):
    """The check of an injected value traced a nested list as one scalar per number: a
    tracer error where the list's array was checked."""
    model = GraphModel({"x": Input(), "h": node(nn.Dense(2), inputs="x"), "y": nn.relu})
    rows = [[1.0, 2.0, 3.0]]
    variables = model.init(key, rows)
    injected = model.apply(variables, rows, inject={"h": -jnp.ones((1, 2))}, outputs="y")
    np.testing.assert_array_equal(injected["y"], jnp.zeros((1, 2)))
    with pytest.raises(
        GraphError, match=r"inject gives node 'h' float32\[1, 3\], but the node computes "
    ):
        model.apply(variables, rows, inject={"h": jnp.ones((1, 3))}, outputs="y")


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
        "parts": None,
        "params": 0,
    }
    assert nodes["stem"]["params"] == 5 * 4 + 4 and nodes["side"]["op"] == "side"
    assert [(e["source"], e["target"]) for e in described["edges"]] == list(model.edges)
    assert described["inputs"] == ["input"] and described["outputs"] == ["block/add", "head"]
    assert json.loads(model.to_json())["nodes"][1]["shape"] is None


def test_a_node_returning_a_tuple_is_drawn_with_the_shape_of_each_element():
    """Its shape and dtype were None in to_json and to_dot: only one array had them."""
    split = lambda h: (h[:, :1], h[:, 1:])
    model = GraphModel({"h": nn.Dense(3), "pair": split, "y": lambda pair: pair[1]})
    x = jax.ShapeDtypeStruct((2, 5), jnp.float32)
    pair = json.loads(model.to_json(x))["nodes"][2]
    assert (pair["id"], pair["shape"], pair["dtype"]) == ("pair", None, None)
    assert pair["parts"] == {
        "[0]": {"shape": [2, 1], "dtype": "float32"},
        "[1]": {"shape": [2, 2], "dtype": "float32"},
    }
    assert '"pair" [label="pair\\n<lambda>\\n[0] (2, 1)\\n[1] (2, 2)", shape=box];' in model.to_dot(
        x
    )


def test_a_node_that_combines_its_inputs_for_its_fn_shows_both(key):
    model = GraphModel(
        {
            "a": nn.Dense(3),
            "cat": node(nn.Dense(2), inputs=("input", "a"), combine="concat"),
            "sum": node(jnp.tanh, inputs=("a", "a"), combine="add"),
            "odd": node(inputs=("a", "a"), combine=jnp.maximum),
        }
    )
    x = jnp.ones((2, 3))
    ops = {n["id"]: n["op"] for n in json.loads(model.to_json(x))["nodes"]}
    assert ops == {
        "input": "Input",
        "a": "Dense",
        "cat": "Dense(concat)",
        "sum": "tanh(add)",
        "odd": "maximum",
    }
    assert '"sum" [label="sum\\ntanh(add)\\n(2, 3)"' in model.to_dot(x)
    b = px.blurb(model, model.init(key, x), x, measure_latency=False)
    assert b["sum"].type == "tanh(add)"


def test_a_partial_node_is_drawn_and_blurbed_by_the_function_it_wraps(key):
    larger = functools.partial(jnp.maximum)
    model = GraphModel(
        {
            "clip": functools.partial(jnp.clip, min=0.0),
            "sum": node(inputs=("clip", "input"), combine=larger),
        }
    )
    x = jnp.ones((2, 3))
    ops = {n["id"]: n["op"] for n in json.loads(model.to_json(x))["nodes"]}
    assert ops == {"input": "Input", "clip": "clip", "sum": "maximum"}
    assert '"clip" [label="clip\\nclip\\n(2, 3)"' in model.to_dot(x)
    assert px.blurb(model, model.init(key, x), x, measure_latency=False)["clip"].type == "clip"


def select_rows(a, b, rows):
    return a[rows] + b


def test_a_partial_node_that_cannot_take_its_inputs_is_named_with_what_it_binds():
    where = functools.partial(jnp.where, True)
    spec = {"a": nn.relu, "c": node(where, inputs=("a", "input", "a", "input"))}
    with pytest.raises(GraphError, match=r"its fn partial\(where, True\)\(x, y, size, fill"):
        GraphModel(spec)
    stack = functools.partial(jnp.concatenate, axis=0)
    spec = {"a": nn.relu, "c": node(inputs=("a", "input"), combine=stack)}
    with pytest.raises(GraphError, match=r"its combine partial\(concatenate, axis=0\)\(arrays,"):
        GraphModel(spec)
    spec = {"c": node(functools.partial(select_rows, rows=[0]), inputs="input")}
    message = r"^Node 'c': partial\(select_rows, rows=\[0\]\) requires the parameter 'b'"
    with pytest.raises(GraphError, match=message):
        GraphModel(spec)


def test_a_call_keyword_no_node_takes_names_a_partial_node_by_what_it_wraps(key):
    model = GraphModel({"clip": functools.partial(jnp.clip, min=0.0), "dense": nn.Dense(2)})
    message = r"none of its blocks takes \(partial\(clip, min=0\.0\), Dense\)"
    with pytest.raises(TypeError, match=message):
        model.init(key, jnp.ones((1, 3)), mask=1)


def test_to_json_counts_boxed_params_by_their_arrays():
    kernel_init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
    model = GraphModel({"dense": nn.Dense(4, kernel_init=kernel_init)})
    nodes = json.loads(model.to_json(jnp.ones((2, 5))))["nodes"]
    assert [n["params"] for n in nodes] == [0, 5 * 4 + 4]
    assert "(2, 4)" in model.to_dot(jnp.ones((2, 5)))


def test_a_pass_through_of_several_inputs_needs_a_combine():
    spec = {"a": nn.relu, "c": node(None, inputs=("a", "input"))}
    message = (
        r"Node 'c' passes its input through \(no fn, no combine\) but takes 2 inputs "
        r"\('a', 'input'\); give it combine='add', 'concat' or a function of 2 values"
    )
    with pytest.raises(GraphError, match=message):
        GraphModel(spec)
    summed = GraphModel({"a": nn.relu, "c": node(None, inputs=("a", "input"), combine="add")})
    x = -jnp.ones((1, 2))
    np.testing.assert_array_equal(summed.apply({}, x)["c"], x)


def test_training_on_an_injected_empty_batch_keeps_the_batch_stats(key):
    # With x=None only the fed batch was looked at: BatchNorm's running stats became NaN.
    model = GraphModel({"stem": nn.Dense(2), "norm": nn.BatchNorm(), "head": nn.Dense(3)})
    variables = model.init(key, jnp.ones((1, 4)))
    empty, stats = jnp.ones((0, 2)), ["batch_stats"]
    tagged = {**variables, INJECTIONS: {"stem": {OUT: empty}}}  # as px.inject gives it
    for updated in (
        model.apply(variables, None, True, inject={"stem": empty}, mutable=stats)[1],
        model.apply(tagged, None, True, mutable=stats)[1],
    ):
        jax.tree.map(
            np.testing.assert_array_equal, updated["batch_stats"], variables["batch_stats"]
        )


def test_add_refuses_inputs_of_different_shapes_instead_of_broadcasting(key):
    spec = {"a": nn.Dense(4), "b": node(nn.Dense(1), inputs="input")}
    model = GraphModel({**spec, "sum": node(inputs=("a", "b"), combine="add")})
    message = (
        r"^Node 'sum' adds inputs of different shapes \('a' \(3, 4\), 'b' \(3, 1\)\); "
        r"combine='add' does not broadcast: give them one shape, or combine them with a "
        r"function that broadcasts \(combine=lambda \*values: sum\(values\)\)\."
    )
    with pytest.raises(GraphError, match=message):
        model.init(key, jnp.ones((3, 5)))
    # What the error advises, for any number of inputs (it said lambda a, b: a + b, which
    # a node of three inputs cannot take).
    advised = lambda *values: sum(values)
    three = node(inputs=("a", "b", "input"), combine=advised)
    broadcast = GraphModel({**spec, "sum": three})
    variables = broadcast.init(key, jnp.ones((3, 4)))
    out = broadcast.apply(variables, jnp.ones((3, 4)))
    np.testing.assert_array_equal(out["sum"], out["a"] + out["b"] + out["input"])


def test_add_refuses_nodes_of_several_values_which_plus_would_concatenate():
    # Two tuples were concatenated: 's' was a tuple of 4 arrays, not the sums of 2.
    pair = lambda h: (h, 2 * h)
    spec = {"p": pair, "q": node(pair, inputs="input")}
    model = GraphModel({**spec, "s": node(inputs=("p", "q"), combine="add")})
    message = (
        r"^Node 's' adds its inputs, but 'p' is a tuple of values, which \+ does not add value "
        r"by value \(tuples and lists it concatenates\); combine them with a function, e\.g\. "
        r"combine=lambda \*trees: jax\.tree\.map\(lambda \*v: sum\(v\), \*trees\)\."
    )
    with pytest.raises(GraphError, match=message):
        model.apply({}, jnp.ones(2))
    advised = lambda *trees: jax.tree.map(lambda *v: sum(v), *trees)
    out = GraphModel({**spec, "s": node(inputs=("p", "q"), combine=advised)}).apply({}, jnp.ones(2))
    np.testing.assert_array_equal(jnp.stack(out["s"]), [[2.0, 2.0], [4.0, 4.0]])
    # One input is passed through as it is, a tuple too (that was refused as well).
    alone = GraphModel({**spec, "s": node(inputs="p", combine="add")}).apply({}, jnp.ones(2))
    assert isinstance(alone["s"], tuple)
    np.testing.assert_array_equal(jnp.stack(alone["s"]), [[1.0, 1.0], [2.0, 2.0]])


@pytest.mark.parametrize("combine", ["add", "concat"])
def test_a_named_combine_of_no_inputs_is_an_error(combine):
    message = rf"Node 'c' combines its inputs with '{combine}' but takes none \(inputs=\(\)\)"
    with pytest.raises(GraphError, match=message):
        GraphModel({"a": nn.relu, "c": node(jnp.tanh, inputs=(), combine=combine)})


def test_a_combine_that_cannot_take_the_inputs_names_the_node():
    spec = {"a": nn.relu, "b": node(inputs=("a", "input"), combine=lambda p: p)}
    with pytest.raises(
        GraphError,
        match=r"Node 'b' combines 2 inputs \('a', 'input'\), but its combine <lambda>\(p\) "
        "cannot take them",
    ):
        GraphModel(spec)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a[0]", "'\\[' makes it a selector pattern"),
        ("b*", "'\\*' makes it a selector pattern"),
        ("re:x", "'re:' makes it a regular expression"),
        (".", "a path segment cannot be empty, '.' or '..'"),
        ("", "a path segment cannot be empty"),
    ],
)
def test_a_name_that_selectors_cannot_pick_is_an_error(name, why):
    with pytest.raises(
        GraphError, match=f"Bad node name '{re.escape(name)}' at the top level: {why}"
    ):
        GraphModel({name: nn.relu})
    with pytest.raises(GraphError, match=f"in group 'g': {why}"):
        GraphModel({"g": {name: nn.relu}})


def test_a_top_level_node_or_group_named_params_is_an_error(key):
    message = r"Bad node name '{}' at the top level: its variables would be at 'params/params'"
    with pytest.raises(GraphError, match=message.format("params")):
        GraphModel({"params": nn.Dense(2)})
    with pytest.raises(GraphError, match=message.format("params/dense")):
        GraphModel({"params/dense": nn.Dense(2)})
    grouped = GraphModel({"g": {"params": nn.Dense(2)}})  # params/g/params: no clash
    x = jnp.ones((3, 5))
    assert grouped.apply(grouped.init(key, x), x)["g/params"].shape == (3, 2)


def test_unclear_specs_are_named():
    with pytest.raises(GraphError, match=r"A graph spec is a dict \{name: node\}, not a list"):
        GraphModel([nn.relu])
    with pytest.raises(GraphError, match=r"^Node 'a' is an int; a node is"):  # was "a int"
        GraphModel({"a": 3})
    # An activation named as in Keras ('relu') was refused as 'a str' without the fix.
    message = r"^Node 'act' is a str \('relu' names no node: give the function itself, nn.relu\);"
    with pytest.raises(GraphError, match=message):
        GraphModel({"dense": nn.Dense(2), "act": "relu"})
    with pytest.raises(GraphError, match=r"^Node 'd' is a str \('Dense' names no node: give an "):
        GraphModel({"d": "Dense"})
    with pytest.raises(GraphError, match=r"^Node 'act' is a str; a node is"):
        GraphModel({"act": "no_such_layer"})
    with pytest.raises(
        GraphError,
        match=r"Node 'c' is node\(Input\(\), ...\), but an input node takes no inputs; "
        "write 'c': Input\\(\\)",
    ):
        GraphModel({"a": nn.relu, "c": node(Input(), inputs="a")})
    with pytest.raises(GraphError, match=r"node\(inputs=3\): inputs is a node name or a tuple"):
        node(abs, inputs=3)
    with pytest.raises(GraphError, match=r"node\(inputs=\['a', 2\]\)"):
        node(abs, inputs=["a", 2])
    assert node(abs, inputs=(n for n in "ab")).inputs == ("a", "b")
    with pytest.raises(GraphError, match=r"inputs=\('conv', 'stem'\) \(in order: a set has"):
        node(abs, inputs={"a", "b"})  # the order of a concat would change with the hash seed
    # An Input() anywhere means no default 'input' node before the first node.
    with pytest.raises(
        GraphError,
        match=r"Node 'act' comes first, so it needs inputs=: the spec has its own input nodes "
        r"\('meta/x'\), so no 'input' node is added before it. Give it inputs=, or put",
    ):
        GraphModel({"act": nn.relu, "meta": {"x": Input()}})


def test_a_node_name_that_is_no_string_is_named(model_and_variables):
    model, variables, x = model_and_variables
    # Each failed with a TypeError: unhashable type: 'list', or on 'int' + 'str'.
    with pytest.raises(GraphError, match=r"^returns names \['head'\] \(of type list\), but a node"):
        model.clone(returns=["head"])
    with pytest.raises(
        GraphError, match=r"^inject names 3 \(of type int\), but a node is named by a str"
    ):
        model.apply(variables, x, inject={3: jnp.ones((2, 4))})
    with pytest.raises(
        GraphError, match=r"^extract's inputs names \('stem',\) \(of type tuple\), but"
    ):
        extract(model, variables, inputs=[("stem",)])


def test_inject_that_is_no_mapping_is_named(model_and_variables):
    model, variables, x = model_and_variables
    # A str failed in dict(): "dictionary update sequence element #0 has length 1".
    for given, kind in (("stem", "a str"), ([("stem", jnp.ones((2, 4)))], "a list")):
        with pytest.raises(
            GraphError, match=rf"^inject is {kind}, not a dict {{node: value}}; .*inject=\{{'head'"
        ):
            model.apply(variables, x, inject=given)


def test_inject_checks_shape_and_dtype_when_x_is_given(model_and_variables):
    model, variables, x = model_and_variables  # x: (2, 5), stem: (2, 4)
    with pytest.raises(
        GraphError,
        match=r"inject gives node 'stem' float32\[2, 7\], but the node computes "
        r"float32\[2, 4\]; inject a value of that shape and dtype",
    ):
        model.apply(variables, x, inject={"stem": jnp.ones((2, 7))})
    with pytest.raises(GraphError, match=r"node 'block/act' int32\[2, 4\], but the node comp"):
        jax.jit(lambda v, h: model.apply(v, x, inject={"block/act": h}))(
            variables, jnp.ones((2, 4), jnp.int32)
        )
    with pytest.raises(GraphError, match=r"node 'stem' float32\[1, 4\]"):  # no broadcasting
        model.apply(variables, x, train=True, inject={"stem": jnp.ones((1, 4))})
    stem = jnp.ones((2, 4))
    np.testing.assert_array_equal(model.apply(variables, x, inject={"stem": stem})["side"], stem)
    # With x=None nothing says what stem computes: the value is used as given.
    out = model.apply(variables, None, outputs="side", inject={"stem": stem[:1]})
    assert out["side"].shape == (1, 4)


def test_an_unchecked_injected_value_is_named_by_the_node_it_breaks(model_and_variables):
    """With x=None a value of the wrong shape reached the next node, whose error (Flax's
    kernel shape) named that node alone, not the value injected into its input."""
    model, variables, _ = model_and_variables
    with pytest.raises(flax.errors.ScopeParamShapeError) as error:
        model.apply(variables, None, outputs="head", inject={"side": jnp.ones((2, 7))})
    assert "(its input 'side' is the value inject gave, float32[2, 7], unchecked: x did " in (
        "\n".join(error.value.__notes__)
    )


def test_inject_checks_against_what_the_given_variables_compute(key):
    # Mixed precision casts the params: the node then computes bfloat16, not what a fresh
    # init's float32 params would (the check traced those and refused the right value).
    model = GraphModel({"stem": nn.Dense(4), "head": nn.Dense(2)})
    x = jnp.ones((2, 5), jnp.bfloat16)
    cast = jax.tree.map(lambda p: p.astype(jnp.bfloat16), model.init(key, x))
    stem = model.apply(cast, x)["stem"]
    assert stem.dtype == jnp.bfloat16
    out = model.apply(cast, x, inject={"stem": stem})
    np.testing.assert_array_equal(out["head"], model.apply(cast, x)["head"])
    with pytest.raises(GraphError, match=r"'stem' float32\[2, 4\], but the node computes bf"):
        model.apply(cast, x, inject={"stem": stem.astype(jnp.float32)})


class _Penalized(nn.Module):
    """A node that raises an aux loss under a path weight."""

    @nn.compact
    def __call__(self, x):
        px.aux_loss(self, "l1", jnp.abs(x).mean())
        with px.path_weight(self, "branch", 0.5):
            return nn.Dense(4)(x)


def test_the_check_of_an_injected_value_records_nothing_the_callers_checks_see(key):
    """The check traces a detached copy of the model: its aux loss and path weight (at the
    copy's paths, and recorded nowhere) made the train step's checks say a lifted
    transform had dropped them ('pen/l1' was raised but not recorded)."""

    class Outer(nn.Module):
        @nn.compact
        def __call__(self, x):
            graph = GraphModel({"stem": nn.Dense(4), "pen": _Penalized(), "head": nn.Dense(2)})
            return graph(x, inject={"pen": jnp.zeros((x.shape[0], 4))})["head"]

    x = jnp.ones((3, 5))
    variables = Outer().init(key, x)
    with px.core.aux_losses_raised() as raised, px.core.path_weights_opened() as opened:
        _, state = Outer().apply(variables, x, mutable=["aux_loss", "path_weights"])
    assert (list(raised), list(opened), state) == ([], [], {})  # pen is injected: not run


def test_px_inject_of_a_dict_valued_node_skips_its_upstream(key):
    calls: list[str] = []

    def stem(h):
        calls.append("stem")
        return 2 * h

    model = GraphModel(
        {
            "stem": stem,
            "split": lambda h: {"p": h, "q": 2 * h},
            "head": node(lambda t: t["p"] + t["q"], inputs="split"),
        }
    )
    x = jnp.ones((2, 3))
    value = {"p": jnp.zeros((2, 3)), "q": jnp.ones((2, 3))}
    calls.clear()
    out = px.inject(model, {}, x, {"split/out": value}, outputs="head")
    np.testing.assert_array_equal(out["head"], value["q"])
    assert calls == ["stem"]  # traced once by inject's shape check, not run again
    _, found = px.probe(model, {"injections": {"split": {"out": value}}}, x, "**/out")
    assert sorted(found) == ["head/out", "split/out"]


def test_px_inject_at_a_node_and_at_nodes_upstream_of_it(model_and_variables):
    # block/dense and block/act feed only block/add, injected too: their values go unused,
    # but px.inject takes them (it failed: "never reached its tag: a lifted transform").
    model, variables, x = model_and_variables
    h = jnp.full((2, 4), 3.0)
    out = px.inject(model, variables, x, {"block/*/out": h})
    expected = model.apply(variables, x, inject={"block/add": h})
    np.testing.assert_array_equal(out["block/add"], h)
    np.testing.assert_array_equal(out["head"], expected["head"])


def test_a_node_given_a_value_by_inject_and_by_px_inject_is_an_error(model_and_variables):
    # px.inject's value at 'stem/out' replaced inject=' value for 'stem', silently: the
    # model ran on 5s, not on the 3s the call gave.
    model, variables, x = model_and_variables
    given, tagged = jnp.full((2, 4), 3.0), jnp.full((2, 4), 5.0)
    with pytest.raises(
        GraphError,
        match=r"^inject gives node 'stem' a value, and px\.inject gives its output tag "
        r"'stem/out' one too, which would replace it; give the node one value, by inject= "
        r"or by px\.inject\.",
    ):
        px.inject(model, variables, x, {"stem/out": tagged}, inject={"stem": given})
    out = px.inject(model, variables, x, {"side/out": tagged}, inject={"stem": given})
    np.testing.assert_array_equal(
        out["block/add"], model.apply(variables, x, inject={"stem": given})["block/add"]
    )
    np.testing.assert_array_equal(out["side"], tagged)  # one value each: both taken


def test_a_tag_of_a_node_the_call_skips_is_said_to_be_skipped_and_why(model_and_variables):
    # it said only "matched no tagged value" of a node the graph has
    model, variables, x = model_and_variables
    h = jnp.full((2, 4), 3.0)
    nearest = "Selector 'block/dense/out' matched no tagged value among 5; nearest: "
    skipped = (
        "Node 'block/dense' is not computed: inject= gives 'block/add', which is computed "
        "from it, a value; select another tag, or leave 'block/add' out of inject=."
    )
    with pytest.raises(px.SelectorError) as inject_error:
        px.inject(model, variables, x, {"block/dense/out": h}, inject={"block/add": h})
    with pytest.raises(px.SelectorError) as probe_error:
        px.probe(model, variables, x, "block/dense/out", inject={"block/add": h})
    for error in (inject_error, probe_error):
        assert str(error.value).startswith(nearest) and str(error.value).endswith(skipped)
    with pytest.raises(px.SelectorError) as outputs_error:
        px.inject(model, variables, x, {"head/out": h}, outputs="side")
    assert str(outputs_error.value).endswith(
        ". Node 'head' is not computed: the outputs ('side') do not need it; add 'head' to outputs."
    )


class _TagsInOut(nn.Module):
    """Tags ``h`` in a submodule named ``out``: at the path of its graph node's output tag."""

    @nn.compact
    def __call__(self, x):
        class Inner(nn.Module):
            @nn.compact
            def __call__(self, x):
                return px.tag(self, "h", nn.Dense(3)(x))

        return Inner(name="out")(x)


def test_hand_built_injections_for_a_submodule_named_out_are_told_to_rename_it(key):
    # read as the node's value: an IndexError in 'head' without inject=, and with it
    # "px.inject gives its output tag 'block/out' one too"
    model = GraphModel({"block": _TagsInOut(), "head": nn.Dense(2)})
    x, h = jnp.ones((4, 5)), jnp.zeros((4, 3))
    variables = model.init(key, x)
    message = (
        "The injections hold a dict at 'block/out', the output tag of node 'block', but 'out' "
        "is also a submodule of it (its variables sit at 'params/block/out'), whose tags "
        "would sit there too, so the graph model cannot tell which they are; give the "
        "submodule another name."
    )
    hand_built = {**variables, "injections": {"block": {"out": {"h": h}}}}
    for inject in (None, {"block": h}):
        with pytest.raises(GraphError) as error:
            model.apply(hand_built, x, inject=inject)
        assert str(error.value) == message
    as_value = model.apply({**variables, "injections": {"block": {"out": h}}}, x)  # an array
    np.testing.assert_array_equal(
        as_value["head"], model.apply(variables, None, inject={"block": h})["head"]
    )


class _ProjectsToOut(nn.Module):
    """Tags ``pre``, then projects through a submodule named ``out`` that tags nothing."""

    @nn.compact
    def __call__(self, x):
        h = px.tag(self, "pre", nn.Dense(4, name="hidden")(x))
        return nn.Dense(3, name="out")(nn.relu(h))


def test_a_node_with_a_submodule_named_out_that_tags_nothing_is_probed_injected_and_differentiated(
    key,
):
    # probe, inject and grad_of raised "Cannot record 'block/out' in 'intermediates': 'out'
    # is also a submodule of block, which recorded nothing in 'intermediates' but holds the
    # name": a user's module had to rename its submodule, as phosjax's layers worked around.
    model = GraphModel({"block": _ProjectsToOut(), "head": nn.Dense(2)})
    x = jax.random.normal(key, (2, 5))
    variables = model.init(key, x)
    assert sorted(variables["params"]["block"]) == ["hidden", "out"]
    _, found = px.probe(model, variables, x, "**")
    assert sorted(found) == ["block/out", "block/pre", "head/out", "input/out"]
    block = _ProjectsToOut().apply({"params": variables["params"]["block"]}, x)
    np.testing.assert_array_equal(found["block/out"], block)
    h = jnp.full((2, 3), 2.0)
    for given in ({"block/out": h}, {"block/pre": jnp.zeros((2, 4)), "block/out": h}):
        out = px.inject(model, variables, x, given)  # the second runs the node
        np.testing.assert_array_equal(
            out["head"], model.apply(variables, None, inject={"block": h})["head"]
        )
    _, grads = px.grad_of(lambda o: o["head"].sum(), model, variables, x, wrt="block/out")
    row = variables["params"]["head"]["kernel"].sum(1)
    np.testing.assert_allclose(grads["block/out"], jnp.broadcast_to(row, (2, 3)), rtol=1e-6)


class _TagsOneExample(nn.Module):
    """Tags its output ``h`` on a batch of one example only."""

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(3)(x)
        return px.tag(self, "h", h) if x.shape[0] == 1 else h


class _OutTagsOneExample(nn.Module):
    @nn.compact
    def __call__(self, x):
        return _TagsOneExample(name="out")(x)


class _AppliesTwice(nn.Module):
    """Applies one graph model to ``a``, then to ``b``."""

    @nn.compact
    def __call__(self, a, b):
        graph = GraphModel({"block": _OutTagsOneExample()}, returns="block", name="g")
        return graph(a), graph(b)


def test_a_submodule_named_out_that_tags_only_in_a_later_call_is_told_to_rename(key):
    # the first call tags the node's output 'g/block/out' beside the submodule out, which
    # tagged nothing; its tag in the second raised "TypeError: 'Calls' object does not
    # support item assignment", naming nothing.
    a, b = jnp.ones((2, 5)), jnp.ones((1, 5))
    variables = _AppliesTwice().init(key, a, b)
    with pytest.raises(ValueError) as error:
        _AppliesTwice().apply(variables, a, b, mutable=["intermediates"])
    assert str(error.value) == (
        "Cannot record 'g/block/out/h' in 'intermediates': 'g/block/out' holds the output of "
        "g/block, tagged there beside the submodule 'out' in an earlier call, when that "
        "recorded nothing. Give the submodule another name."
    )


class _TagsItsOwnOut(nn.Module):
    """Tags its pre-activation ``out``: the path of its graph node's output tag."""

    @nn.compact
    def __call__(self, x):
        return nn.relu(px.tag(self, "out", nn.Dense(3)(x))) + 1


def test_a_node_whose_module_tags_out_itself_is_an_error_naming_it(key):
    # probe returned 'block/out' as two calls (the tag inside, then the node's output), and
    # px.inject of them fed 'head' the first, the pre-activation: another output, silently.
    model = GraphModel({"block": _TagsItsOwnOut(), "head": nn.Dense(2)})
    x = jax.random.normal(key, (2, 5))
    variables = model.init(key, x)
    message = (
        "Node 'block' tags a value named 'out' itself, at 'block/out', where the graph model "
        "tags the node's output, so the two would be read as two calls of one tag; give that "
        "tag another name in _TagsItsOwnOut."
    )
    with pytest.raises(GraphError) as error:
        px.probe(model, variables, x, "head/out")
    assert str(error.value) == message
    np.testing.assert_array_equal(
        model.apply(variables, x)["block"],
        1 + nn.relu(nn.Dense(3).apply({"params": variables["params"]["block"]["Dense_0"]}, x)),
    )  # not recorded: it runs


def test_a_swiglu_node_can_be_probed_and_injected(key):
    # SwiGLU's output projection was a submodule named "out", the name of the tag of the
    # node's output: "Cannot record 'mlp/out' in 'intermediates'", as the attention's was.
    model = GraphModel({"mlp": SwiGLU()})
    x = jax.random.normal(key, (2, 3))
    variables = model.init(key, x)
    assert sorted(variables["params"]["mlp"]) == ["gate_proj", "out", "value_proj"]
    variables["params"]["mlp"]["out"]["bias"] = jnp.arange(3.0)
    _, found = px.probe(model, variables, x, "**")
    plain = SwiGLU().apply({"params": variables["params"]["mlp"]}, x)
    np.testing.assert_array_equal(found["mlp/out"], plain)
    injected = px.inject(model, variables, x, {"mlp/gate": jnp.zeros((2, 6))})
    np.testing.assert_array_equal(injected["mlp"], [[0.0, 1.0, 2.0]] * 2)  # the bias alone


def test_px_inject_of_every_tag_probed_on_another_input_patches_it_all(key):
    # Node "scaled" tags a value inside it; px.inject of its output and of that tag runs
    # it (it skipped it: "scaled/pre" never reached its tag).
    class Scaled(nn.Module):
        @nn.compact
        def __call__(self, h):
            return 2 * px.tag(self, "pre", h)

    model = GraphModel({"stem": nn.Dense(4), "scaled": Scaled(), "head": nn.Dense(2)})
    x, other = jax.random.normal(key, (2, 2, 5))
    variables = model.init(key, x)
    _, found = px.probe(model, variables, other, "**")
    assert "scaled/pre" in found and "scaled/out" in found
    out = px.inject(model, variables, x, found)
    np.testing.assert_array_equal(out["head"], model.apply(variables, other)["head"])


def test_a_graph_model_node_with_a_node_named_out_is_an_error(key):
    inner = GraphModel({"out": nn.Dense(2)})
    with pytest.raises(
        GraphError,
        match=r"Node 'sub' is a graph model with the node 'out', but 'out' is a reserved name "
        r"there: the output of 'sub' is tagged 'sub/out'",
    ):
        GraphModel({"sub": inner, "head": node(lambda d: d["out"], inputs="sub")})
    x = jnp.ones((2, 3))
    model = GraphModel({"sub": GraphModel({"dense": nn.Dense(2)}), "head": lambda d: d["dense"]})
    variables = model.init(key, x)
    _, found = px.probe(model, variables, x, "**/out")
    assert sorted(found) == ["head/out", "input/out", "sub/dense/out", "sub/input/out", "sub/out"]


def test_returns_gives_one_node_as_the_output(model_and_variables):
    model, variables, x = model_and_variables
    logits = model.clone(returns="head")
    np.testing.assert_array_equal(logits.apply(variables, x), model.apply(variables, x)["head"])
    assert list(logits.apply(variables, x, outputs="stem")) == ["stem"]
    assert logits.shapes(x)["head"].shape == (2, 3)
    assert len(json.loads(logits.to_json(x))["nodes"]) == len(model.nodes)
    with pytest.raises(GraphError, match=r"returns names 'logits', but 'logits' is not a node"):
        model.clone(returns="logits")


def test_a_returns_model_initialises_every_node_as_without_returns(key):
    # 'aux' is a sink that the returns node 'head' does not need.
    spec = {"stem": nn.Dense(4), "head": nn.Dense(2), "aux": node(nn.Dense(3), inputs="stem")}
    x = jnp.ones((3, 5))
    plain = GraphModel(spec)
    variables = GraphModel(spec, returns="head").init(key, x)
    expected = plain.init(key, x)
    assert jax.tree.structure(variables) == jax.tree.structure(expected)
    jax.tree.map(np.testing.assert_array_equal, variables, expected)
    out = GraphModel(spec, returns="head").apply(variables, x, outputs="aux")["aux"]
    np.testing.assert_array_equal(out, plain.apply(variables, x)["aux"])


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
    assert all(hasattr(graph, name) for name in graph.__all__)


def test_outputs_that_are_no_names_are_named(model_and_variables):
    model, variables, x = model_and_variables
    # Each failed with a bare TypeError: 'int' object is not iterable.
    with pytest.raises(
        GraphError, match=r"^outputs is 3 \(of type int\), not a node name \(a str\) or a list"
    ):
        model.apply(variables, x, outputs=3)
    with pytest.raises(GraphError, match=r"^extract's outputs is 3 \(of type int\), .* such as"):
        extract(model, variables, outputs=3)
    with pytest.raises(GraphError, match=r"^extract's inputs is 3 \(of type int\)"):
        extract(model, variables, inputs=3)
    with pytest.raises(
        GraphError, match=r"^train_only's selectors is 3 \(of type int\), not a parameter name"
    ):
        train_only(optax.sgd(1.0), 3)


def test_train_only_of_no_optimizer_says_so_when_made_not_at_init():
    """optax.adam not called (or None) failed at init: 'function' object has no attribute
    'init'."""
    with pytest.raises(
        TypeError,
        match=r"^train_only's optimizer must be an optax .*, got "
        r"<function adam .*\(a function\), which makes one: call it\.$",
    ):
        train_only(optax.adam, "adapter/**")
    with pytest.raises(TypeError, match=r"got None \(a NoneType\)\.$"):
        train_only(None, "adapter/**")


def test_train_only_of_no_selectors_is_an_error_not_every_parameter_frozen():
    message = (
        r"^train_only's selectors is empty \(\[\]\), so it selects no parameter; give a "
        r"parameter selector, such as 'adapter/\*\*' or '\*\*' for every parameter\.$"
    )
    with pytest.raises(GraphError, match=message):
        train_only(optax.sgd(1.0), [])


def test_call_keywords_reach_the_nodes_that_take_them_in_any_group(key):
    model = GraphModel(
        {"norm": nn.LayerNorm(), "g": {"block": TransformerBlock(2)}, "out": nn.Dense(3)},
        returns="out",
    )
    x = jax.random.normal(key, (2, 5, 4))
    real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: 2 padded tokens
    variables = model.init(key, x, mask=real)  # LayerNorm's mask is another thing: not given
    params = variables["params"]
    h = nn.LayerNorm().apply({"params": params["norm"]}, x)
    h = TransformerBlock(2).apply({"params": params["g"]["block"]}, h, mask=real)
    expected = nn.Dense(3).apply({"params": params["out"]}, h)
    np.testing.assert_allclose(model.apply(variables, x, mask=real), expected, atol=1e-5)
    injected = model.apply(variables, x, outputs="out", inject={"norm": x}, mask=real)["out"]
    assert injected.shape == (2, 5, 3)
    with pytest.raises(TypeError, match=r"^GraphModel was called with the keyword 'maks'"):
        model.apply(variables, x, maks=real)


def test_a_python_flag_keyword_reaches_the_nodes_when_a_value_is_injected(key):
    def scaled(h, *, double=False):
        return 2 * h if double else h  # a Python bool: a traced one cannot be branched on

    model = GraphModel({"a": nn.Dense(4), "s": scaled, "b": nn.Dense(4), "t": scaled})
    x = jnp.ones((3, 5))
    variables = model.init(key, x)
    h = jnp.full((3, 4), 0.5)
    out = model.apply(variables, x, inject={"s": h}, double=True)
    b = nn.Dense(4).apply({"params": variables["params"]["b"]}, h)
    np.testing.assert_array_equal(out["t"], 2 * b)


def test_a_graph_model_node_gets_only_the_call_keywords_its_nodes_take(key):
    inner = GraphModel({"dense": nn.Dense(4)}, returns="dense")  # takes no mask
    model = GraphModel({"inner": inner, "block": TransformerBlock(2)}, returns="block")
    x = jax.random.normal(key, (2, 5, 4))
    real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: 2 padded tokens
    variables = model.init(key, x, mask=real)
    params = variables["params"]
    h = inner.apply({"params": params["inner"]}, x)
    expected = TransformerBlock(2).apply({"params": params["block"]}, h, mask=real)
    np.testing.assert_allclose(model.apply(variables, x, mask=real), expected, atol=1e-6)
    with pytest.raises(TypeError, match=r"^GraphModel was called with the keyword 'maks'"):
        model.apply(variables, x, maks=real)


def test_a_numpy_input_s_padded_tokens_are_read_as_zeros_too(key):
    """A NumPy input (as a data pipeline gives it) went to the nodes as it was: a NaN in
    its padded tokens reached the gradients through the node that takes no mask."""
    model = GraphModel({"dense": nn.Dense(4), "block": TransformerBlock(2)}, returns="block")
    x = jax.random.normal(key, (2, 5, 4))
    real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: 2 padded tokens
    variables = model.init(key, x, mask=real)

    def grads(x):  # x closed over: a NumPy x reaches apply as NumPy under jit too
        loss = lambda v: (jnp.where(real[..., None], model.apply(v, x, mask=real), 0) ** 2).sum()
        return jax.jit(jax.grad(loss))(variables)

    held = np.array(x)
    held[1, 3:] = np.nan
    expected = grads(x.at[1, 3:].set(0.0))
    jax.tree.map(np.testing.assert_array_equal, grads(held), expected)


def test_a_list_of_examples_padded_tokens_are_read_as_zeros_too():
    """An input given as a list of arrays (one per example), which a Dense node reads as
    their stacked array, went to the nodes as it was: a NaN in its padded tokens reached
    the gradients through the node that takes no mask (and under jax.jit the Dense
    failed on the list of tracers)."""
    zeroed = lambda h, mask=None: jnp.where(mask[..., None], h, 0.0)  # takes the mask
    model = GraphModel({"dense": nn.Dense(2), "zeroed": zeroed}, returns="zeroed")
    real = np.array([[True, True, True], [True, False, False]])  # example 1: 2 padded
    variables = {"params": {"dense": {"kernel": np.eye(2), "bias": np.zeros(2)}}}
    loss = jax.value_and_grad(lambda v, x: (model.apply(v, x, mask=real) ** 2).sum())
    held = np.arange(12.0, dtype=np.float32).reshape(2, 3, 2)
    tokens = held[real]  # the real ones: the loss is their squares
    held[1, 1:] = np.nan  # numpy all through: no op compiled but the jitted loss
    value, grads = jax.jit(loss)(variables, list(held))
    assert value == (tokens**2).sum()
    np.testing.assert_array_equal(grads["params"]["dense"]["kernel"], 2 * tokens.T @ tokens)
    np.testing.assert_array_equal(grads["params"]["dense"]["bias"], 2 * tokens.sum(0))


def test_a_node_failing_on_a_nested_graph_models_dict_is_told_of_returns(key):
    """A node after a graph model without returns= failed on the dict of its outputs
    (a Dense with a bare IndexError: tuple index out of range), naming neither."""
    inner = GraphModel({"d": nn.Dense(2), "r": nn.relu})
    outer = GraphModel({"inner": inner, "h": lambda h: 2 * h})
    with pytest.raises(TypeError, match="unsupported operand") as raised:
        outer.init(key, jnp.ones((1, 3)))
    assert (
        "(its input 'inner' is a graph model without returns=, so it passes on the dict "
        "{node: output} of its nodes; to pass one node's output on, give it returns=, e.g. "
        "returns='r')"
    ) in raised.value.__notes__
    outer = GraphModel({"inner": inner.clone(returns="r"), "h": lambda h: 2 * h})
    assert outer.init_with_output(key, jnp.ones((1, 3)))[0]["h"].shape == (1, 2)


def test_selecting_a_node_of_a_nested_graph_model_says_how_to_reach_it(key):
    """outputs='inner/d' (a node of a graph model used as node 'inner') failed as a typo,
    'matched no node; nearest: 'inner', ...', though px.probe reaches it at 'inner/d/out'."""
    inner = GraphModel({"d": nn.Dense(3), "e": nn.relu}, returns="e")
    outer = GraphModel({"inner": inner, "head": nn.Dense(2)})
    x = jnp.ones((2, 4))
    variables = outer.init(key, x)
    how = (
        "; it lies inside node 'inner', a graph model, whose nodes are not this graph's: "
        "px.probe(model, variables, x, 'inner/d/out') reaches its value (px.inject replaces "
        "it there), and rewire or extract goes on that graph model itself."
    )
    with pytest.raises(px.SelectorError) as error:
        outer.apply(variables, x, outputs=["head", "inner/d"])
    assert str(error.value) == "outputs selects 'inner/d', which is no node" + how
    with pytest.raises(GraphError) as error:
        outer.apply(variables, x, inject={"inner/d": jnp.ones((2, 3))})
    assert str(error.value).endswith("existing nodes: 'input', 'inner', 'head'" + how)
    with pytest.raises(GraphError) as error:  # surgery: on the inner model, not by probe
        rewire(outer, "inner/d", "input")
    assert str(error.value).endswith("existing nodes: 'input', 'inner', 'head'" + how)
    _, found = px.probe(outer, variables, x, "inner/d/out")  # the way the error gives
    dense = inner.graph.nodes["d"].fn
    expected = dense.apply({"params": variables["params"]["inner"]["d"]}, x)
    np.testing.assert_allclose(found["inner/d/out"], expected, rtol=1e-6)
    with pytest.raises(px.SelectorError, match="matched no node among 3; nearest: 'head'"):
        outer.apply(variables, x, outputs="head/kernel")  # inside a module: no such hint


def test_a_list_of_numbers_injected_is_read_as_one_array_as_px_inject_reads_it(
    model_and_variables,
):
    """It was read as a pytree of scalars: refused, the error writing every number's
    'float32[]' (3 MB for a 400x600 list)."""
    model, variables, x = model_and_variables
    h = model.apply(variables, x, outputs="stem")["stem"]
    out = model.apply(variables, x, outputs="head", inject={"stem": h.tolist()})["head"]
    np.testing.assert_allclose(out, model.apply(variables, x, outputs="head")["head"], rtol=1e-6)
    with pytest.raises(GraphError, match=r"gives node 'stem' float32\[2, 7\], but the node"):
        model.apply(variables, x, inject={"stem": [[0.0] * 7] * 2})
    # a numpy array is named in its own dtype, not in the one JAX reads it in (int32)
    with pytest.raises(GraphError, match=r"gives node 'stem' int64\[2, 4\], but the node"):
        model.apply(variables, x, inject={"stem": np.zeros((2, 4), np.int64)})
    # since then a ragged one raised numpy's bare 'setting an array element with a sequence'
    with pytest.raises(GraphError, match=r"^inject gives node 'stem' \[\['float32\[\]', "):
        model.apply(variables, x, inject={"stem": [[0.0] * 4, [0.0] * 3]})


def test_an_injected_value_held_otherwise_than_the_node_s_is_told_so_not_its_shape():
    # It said "inject a value of that shape and dtype", which the arrays already had.
    model = GraphModel({"pair": lambda h: (h, 2 * h), "sum": node(lambda t: t[0] + t[1])})
    x = jnp.ones((2, 3))
    variables = model.init(jax.random.key(0), x)
    held = r"; its arrays are the node's, held otherwise \(a list for a tuple, other keys\)"
    with pytest.raises(
        GraphError, match=rf"^inject gives node 'pair' \['float32\[2, 3\]', .*{held}"
    ):
        model.apply(variables, x, inject={"pair": [x, x]})
    with pytest.raises(GraphError, match=r"float32\[2, 3\]'\); inject a value of that shape and"):
        model.apply(variables, x, inject={"pair": (x, x[:1])})
    summed = model.apply(variables, x, inject={"pair": (x, 3 * x)}, outputs="sum")["sum"]
    np.testing.assert_array_equal(summed, np.full((2, 3), 4.0))


def test_an_injected_str_is_named_with_its_node_and_what_the_node_computes(model_and_variables):
    # JAX's bare "Value 'zeros' with dtype <U5 is not a valid JAX array type" named no node;
    # with x=None it came from the note on the node's error, and hid that error.
    model, variables, x = model_and_variables
    message = (
        r"^inject gives node 'stem' 'zeros' \(a str\), but the node computes float32\[2, 4\]; "
        r"inject a value of that shape and dtype\."
    )
    with pytest.raises(GraphError, match=message):
        model.apply(variables, x, inject={"stem": "zeros"})
    note = r"\(its input 'stem' is the value inject gave, \{'h': \"'zeros' \(a str\)\"\}, unchecked"
    with pytest.raises(TypeError, match=note):  # relu's own error, the node noted
        model.apply(variables, None, outputs="side", inject={"stem": {"h": "zeros"}})


def test_a_list_of_python_ints_injected_takes_the_nodes_float_dtype_as_px_inject_does(
    model_and_variables,
):
    """It became int32 and was refused where the node computes float32."""
    model, variables, x = model_and_variables
    ints = [[0, 1, 2, 3], [4, 5, 6, 7]]
    out = model.apply(variables, x, outputs="side", inject={"stem": ints})["side"]
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(out, np.asarray(ints, np.float32))


def test_an_injected_int_out_of_the_nodes_range_is_named_with_its_node_as_px_inject_names_it():
    # JAX's bare "Python int ... too large to convert to int32" named no node
    model = GraphModel({"n": lambda x: x.astype(jnp.int32), "out": lambda n: jnp.add(n, 1)})
    x = jnp.ones((1, 2))
    variables = model.init(jax.random.key(0), x)
    message = (
        r"^inject gives node 'n' a number out of the range of the dtype it computes, "
        r"int32\[1, 2\]: got \[\[1180591620717411303424, 0\]\]\."
    )
    with pytest.raises(GraphError, match=message):
        model.apply(variables, x, inject={"n": [[2**70, 0]]})
    # unchecked (x=None): JAX's bare OverflowError, noted, or [1e300] read as a float32 inf,
    # with numpy's overflow warning; each is named with the range of the dtype it is read in
    unchecked = r"^inject gives node 'n' a number out of the range of {}: got "
    int32 = r"int32, the dtype it is read in \(a whole number from -2147483648 to 2147483647\)"
    float32 = (
        r"float32, the dtype it is read in \(a number between -3.40282e\+38 and 3.40282e\+38\)"
    )
    for given, read_as in [(2**70, int32), ([1e300, 0], float32), ({"a": 2**40}, int32)]:
        with pytest.raises(GraphError, match=unchecked.format(read_as)):
            model.apply(variables, None, outputs="out", inject={"n": given})
    # x's nested list of numbers, read as its input's array, too
    with pytest.raises(GraphError, match=r"^x gives input node 'input' a number out of the range"):
        model.apply(variables, [[1e300, 0.0]])
    # a list inside a dict is one array too: [2**40, 0.5] a float32 one, not 2**40 an int32
    rows = GraphModel({"out": lambda x: jnp.asarray(x["a"]) * 2})
    out = rows.apply({}, {"a": [2**40, 0.5]})["out"]
    np.testing.assert_array_equal(out, np.array([2.0**41, 1.0], np.float32))


def test_a_list_of_numbers_and_other_scalars_is_checked_in_the_dtype_it_is_read_in():
    """Only Python numbers were grouped, their dtype from their own types: [2**40, a float32]
    was named out of int32's range though read as float32, [1e5, a float16] read as inf."""
    model = GraphModel({"out": lambda x: x * 2})
    out = model.apply({}, [2**40, jnp.float32(1)])["out"]
    np.testing.assert_array_equal(out, np.array([2.0**41, 2.0], np.float32))
    for given, read_as in [([1e5, np.float16(1)], "float16"), ([2**40, True], "int32")]:
        message = rf"^x gives input node 'input' a number out of the range of {read_as}, the dtype"
        with pytest.raises(GraphError, match=message):
            model.apply({}, given)


def test_a_long_value_out_of_the_nodes_range_is_cut_with_a_mark_not_mid_number():
    """It was cut at 60 characters with no mark: '..., 11, 1.' read as a value ending in 1."""
    model = GraphModel({"n": lambda x: x.astype(jnp.int32), "out": lambda n: jnp.add(n, 1)})
    x = jnp.ones((1, 32))
    variables = model.init(jax.random.key(0), x)
    long = [[2**70, *range(31)]]
    for given in (x, None):  # checked against the node's output, and read unchecked
        with pytest.raises(GraphError) as raised:
            model.apply(variables, given, outputs="out", inject={"n": long})
        message = str(raised.value).split("\n")[0]  # JAX adds a note on its frames below
        assert message.endswith(
            ": got [[1180591620717411303424, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,…."
        )
