"""Surgery: extract, merge, rewire, stitch with a least-squares adapter, train_only."""

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
from phosjax.models.graph import (
    GraphError,
    GraphModel,
    Input,
    default_adapter,
    extract,
    fill_missing,
    fit_adapter,
    merge,
    node,
    node_variables,
    rewire,
    stitch,
    train_only,
)


def conv_net(width: int = 6) -> GraphModel:
    return GraphModel(
        {
            "channels": lambda x: x[..., None],
            "conv1": nn.Conv(width, (3,)),
            "act1": nn.relu,
            "block": {
                "conv": nn.Conv(width, (3,)),
                "act": nn.relu,
                "add": node(inputs=("act", "../act1"), combine="add"),
            },
            "pool": lambda h: h.mean(axis=1),
            "logits": nn.Dense(3),
        }
    )


@pytest.fixture
def net(key):
    model = conv_net()
    x = jax.random.normal(key, (4, 10))
    return model, model.init(key, x), x


def test_extract_keeps_the_needed_nodes_and_their_params(net):
    model, variables, x = net
    full = model.apply(variables, x)
    sub, sub_vars = extract(model, variables, inputs=["act1"], outputs=["pool"])
    assert sub.nodes == ("act1", "block/conv", "block/act", "block/add", "pool")
    assert sub.graph.inputs == ("act1",)
    assert jax.tree.map(jnp.shape, sub_vars) == {
        "params": {"block": {"conv": {"kernel": (3, 6, 6), "bias": (6,)}}}
    }
    out = sub.apply(sub_vars, full["act1"])
    np.testing.assert_allclose(out["pool"], full["pool"], rtol=1e-6)
    injected = model.apply(variables, None, outputs="pool", inject={"act1": 2 * full["act1"]})
    np.testing.assert_allclose(sub.apply(sub_vars, 2 * full["act1"])["pool"], injected["pool"])
    # Cutting inside the residual block: the skip still needs act1, which becomes an input.
    inner, inner_vars = extract(model, variables, inputs=["block/act", "act1"], outputs="logits")
    feeds = {"block/act": full["block/act"], "act1": full["act1"]}
    np.testing.assert_allclose(inner.apply(inner_vars, feeds)["logits"], full["logits"], rtol=1e-6)
    assert sorted(inner_vars["params"]) == ["logits"]


def test_extract_leaves_out_the_variables_of_a_node_whose_name_extends_a_kept_one(key):
    # "dense" is computed, "dense2" is not: a name prefix that is not a whole path
    # segment must not pull the other node's variables in.
    model = GraphModel({"dense": nn.Dense(3), "dense2": nn.Dense(2)})
    variables = model.init(key, jnp.ones((1, 4)))
    sub, sub_vars = extract(model, variables, outputs=["dense"])
    assert sub.nodes == ("input", "dense")
    shapes = {"params": {"dense": {"kernel": (4, 3), "bias": (3,)}}}
    assert jax.tree.map(jnp.shape, sub_vars) == shapes


def test_extract_takes_one_input_name_as_a_string(net):
    model, variables, _ = net
    one, one_vars = extract(model, variables, inputs="act1", outputs="pool")
    listed, listed_vars = extract(model, variables, inputs=["act1"], outputs=["pool"])
    assert one.nodes == listed.nodes and one.graph.inputs == ("act1",)
    assert jax.tree.structure(one_vars) == jax.tree.structure(listed_vars)


def test_node_variables_takes_one_node_path_as_a_string():
    variables = {"params": {"a": {"w": 1}, "b": {"w": 2}, "ab": {"w": 3}}}
    # "ab" is one node, not the nodes "a" and "b" (its characters).
    assert node_variables(variables, "ab") == {"params": {"ab": {"w": 3}}}
    assert node_variables(variables, ["a", "b"]) == {"params": {"a": {"w": 1}, "b": {"w": 2}}}
    # A path that is no str failed with "'int' object is not iterable" (or has no 'split').
    with pytest.raises(GraphError, match=r"^node_variables' nodes is 3 \(of type int\), not a"):
        node_variables(variables, 3)
    with pytest.raises(GraphError, match=r"^node_variables' nodes names 3 \(of type int\), but"):
        node_variables(variables, ["a", 3])


def test_node_variables_given_the_model_names_a_misspelt_node_and_the_nearest():
    """A misspelt node returned {}, as an activation does, without a word."""
    model = GraphModel({"conv1": nn.Dense(2), "act1": nn.relu, "g": {"c": nn.Dense(3)}})
    variables = {"params": {"conv1": {"w": 1}, "g": {"c": {"w": 3}}}}
    picked = node_variables(variables, ["act1", "g"], model=model)  # no variables; a group
    assert picked == {"params": {"g": {"c": {"w": 3}}}}
    with pytest.raises(
        GraphError, match=r"^node_variables' nodes names 'cnv1', but 'cnv1' is not a node; "
    ) as caught:
        node_variables(variables, ["act1", "cnv1"], model=model)
    assert str(caught.value).endswith("Did you mean 'conv1'?")


def test_extract_front_keeps_original_inputs_and_rejects_unneeded_cuts(net):
    model, variables, x = net
    front, front_vars = extract(model, variables, outputs=["act1"])
    assert front.nodes == ("input", "channels", "conv1", "act1")
    np.testing.assert_array_equal(
        front.apply(front_vars, x)["act1"], model.apply(variables, x)["act1"]
    )
    message = (
        r"^extract's input 'logits' is not needed by the outputs 'pool' \(it comes after them, "
        r"or on another branch\), so cutting there would cut nothing; cut at a node they need "
        r"\('input', 'channels', 'conv1', 'act1', 'block/conv', 'block/act', 'block/add'\), or "
    )
    with pytest.raises(GraphError, match=message):  # the nodes to cut at were not named
        extract(model, variables, inputs=["logits"], outputs=["pool"])
    # conv1 comes before pool, but only through act1: it said "it comes after them".
    message = (
        r"^extract's input 'conv1' is not needed by the outputs 'pool' \(they need it only "
        r"through the input\(s\) 'act1', cut too\), so cutting there would cut nothing; leave "
        r"'conv1' out of the inputs\.$"
    )
    with pytest.raises(GraphError, match=message):
        extract(model, variables, inputs=["conv1", "act1"], outputs=["pool"])
    with pytest.raises(GraphError, match=r"extract's inputs names 'act2', but 'act2' is not"):
        extract(model, variables, inputs=["act2"])


def test_merge_two_branches_into_one_model(net, key):
    model, variables, x = net
    other_vars = model.init(jax.random.fold_in(key, 1), x)
    both, both_vars = merge(
        {"a": (model, variables), "b": (model, other_vars)},
        {"mean": node(inputs=("a/logits", "b/logits"), combine=lambda u, v: (u + v) / 2)},
    )
    assert both.graph.inputs == ("a/input", "b/input")
    both = rewire(both, "b/input", "a/input")
    assert both.graph.inputs == ("a/input",)
    out = both.apply(both_vars, x, outputs="mean")["mean"]
    expected = (model.apply(variables, x)["logits"] + model.apply(other_vars, x)["logits"]) / 2
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert jax.tree.structure(both_vars["params"]["b"]) == jax.tree.structure(other_vars["params"])


def test_merge_rejects_new_nodes_that_clash_with_the_parts(net):
    model, variables, _ = net
    with pytest.raises(
        GraphError,
        match="merge's new node 'a/logits' is already a node of a part; give the new node "
        "another path",
    ):
        merge({"a": (model, variables)}, {"a/logits": node(inputs="/a/pool")})
    with pytest.raises(GraphError, match="merge's new node 'a/logits' is already a node"):
        merge({"a": (model, variables)}, {"a": {"logits": node(inputs="pool")}})
    with pytest.raises(GraphError, match="Node 'a' is also the group of node 'a/input'"):
        merge({"a": (model, variables)}, {"a": node(inputs="/a/logits")})
    merged, _ = merge({"a": (model, variables)}, {"a": {"head": node(inputs="logits")}})
    assert merged.nodes[-2:] == ("a/logits", "a/head")


def test_merge_refuses_a_first_new_node_without_inputs(net):
    """It took the last part's last node, 'b/logits' here, silently."""
    model, variables, _ = net
    message = (
        r"^merge's new node 'head/dense' names no inputs, so it would take the last node of "
        r"the parts \('b/logits'\), whichever part comes last; give it its inputs, e\.g\. "
        r"node\(\.\.\., inputs='b/logits'\)\.$"
    )
    parts = {"a": (model, variables), "b": (model, variables)}
    with pytest.raises(GraphError, match=message):
        merge(parts, {"head": {"dense": nn.Dense(2), "act": nn.relu}})
    head = {"dense": node(nn.Dense(2), inputs="/a/logits"), "act": nn.relu}  # the next follows
    merged, _ = merge(parts, {"head": head})
    assert merged.edges[-2:] == (("a/logits", "head/dense"), ("head/dense", "head/act"))


def test_merge_names_a_part_that_is_not_a_model_and_its_variables(net):
    model, variables, _ = net
    for part, kind in ((model, "GraphModel"), ((model,), "tuple")):
        with pytest.raises(
            GraphError,
            match=rf"merge's part 'b' is a {kind}, not a pair \(model, variables\); pass "
            r"\{'b': \(model, variables\), ...\}",
        ):
            merge({"a": (model, variables), "b": part})


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("x/y", "a part is one group, so its name cannot contain '/'"),
        ("..", "a path segment cannot be empty, '.' or '..'"),
        ("", "a path segment cannot be empty"),
        ("a*", "'\\*' makes it a selector pattern"),
        ("params", "its variables would be at 'params/params'.*a part name is one plain path"),
        (3, "a part is named by a str, not an int; rename it"),  # was "'int' is not iterable"
    ],
)
def test_merge_rejects_part_names_that_are_not_one_plain_segment(net, name, why):
    model, variables, _ = net
    with pytest.raises(GraphError, match=f"merge's part name {re.escape(repr(name))}: {why}"):
        merge({name: (model, variables)})


def test_rewire_changes_inputs_and_checks_them(net):
    model, variables, x = net
    no_skip = rewire(model, "block/add", ["block/act", "block/act"])
    assert ("act1", "block/add") not in no_skip.edges
    out = no_skip.apply(variables, x)
    np.testing.assert_allclose(out["block/add"], 2 * out["block/act"])
    with pytest.raises(
        GraphError,
        match=r"^rewire gives node 'block/add' the input 'block/ac', but 'block/ac' is not a "
        r"node; "
        r"existing nodes: 'input', 'channels', 'conv1'",
    ):
        rewire(model, "block/add", "block/ac")
    with pytest.raises(GraphError, match=r"rewire names 'blok/add', but 'blok/add' is not a node"):
        rewire(model, "blok/add", "act1")
    with pytest.raises(GraphError, match="cycle: conv1 -> act1 -> block/conv -> conv1"):
        rewire(model, "conv1", "block/conv")
    with pytest.raises(
        GraphError,
        match=r"rewire gives node 'block/add' the input '\.\./act1', which goes above the root "
        r"of the graph \(read at the top level\)",
    ):
        rewire(model, "block/add", "../act1")
    with pytest.raises(GraphError, match="rewire gives node 'block/add' no inputs; name at least"):
        rewire(model, "block/add", [])
    with pytest.raises(GraphError, match=r"rewire\(inputs=\{.*\}\): inputs is a node name or a"):
        rewire(model, "block/add", {"block/act", "act1"})  # a concat's order would vary
    with pytest.raises(GraphError, match=r"rewire\(inputs=\['act1', 2\]\): inputs is a node"):
        rewire(model, "block/add", ["act1", 2])
    with pytest.raises(
        GraphError,
        match=r"rewire gives node 'input' 2 inputs \('conv1', 'act1'\), but it passes one "
        "value through and has no combine; rewire it to one node",
    ):
        rewire(model, "input", ["conv1", "act1"])


def test_rewire_given_variables_names_them_in_one_short_line():
    """Given variables after the model, as extract takes them, the message held their
    whole repr, every weight of every kernel."""
    variables = {"params": {"a": {"kernel": jnp.zeros((40, 40))}}}
    with pytest.raises(GraphError) as error:
        rewire(GraphModel({"a": nn.relu}), variables, "a")
    assert str(error.value) == (
        "rewire names {'params': {'a': {'kernel': Array([[0., 0., 0., ..., 0., 0.… (of type "
        "dict), but a node is named by a str, such as 'a'."
    )


def test_fit_adapter_recovers_a_linear_map(key):
    h_a = jax.random.normal(key, (5, 7, 3))
    kernel = jax.random.normal(jax.random.fold_in(key, 1), (3, 4))
    h_b = h_a @ kernel + jnp.array([1.0, 2.0, 3.0, 4.0])
    fitted = fit_adapter(h_a, h_b)
    np.testing.assert_allclose(fitted["kernel"], kernel[None], atol=1e-4)
    np.testing.assert_allclose(fitted["bias"], [1.0, 2.0, 3.0, 4.0], atol=1e-4)
    adapter = default_adapter(h_a.shape, h_b.shape)
    np.testing.assert_allclose(adapter.apply({"params": fitted}, h_a), h_b, atol=1e-4)
    assert isinstance(default_adapter((5, 3), (5, 8)), nn.Dense)
    with pytest.raises(GraphError, match=r"shape \(5, 7, 3\) to \(5, 6, 4\)"):
        default_adapter((5, 7, 3), (5, 6, 4))


@pytest.mark.parametrize("shape_b", [(5, 6, 4), (7, 4), (35, 4)])
def test_fit_adapter_refuses_activations_whose_positions_do_not_pair_up(shape_b):
    # (35, 4) has as many rows as (5, 7, 3): it was fitted, pairing unrelated positions.
    with pytest.raises(GraphError, match=rf"shape \(5, 7, 3\) to {re.escape(str(shape_b))}"):
        fit_adapter(jnp.ones((5, 7, 3)), jnp.ones(shape_b))


def test_fit_adapter_solves_bfloat16_activations_in_float32(key):
    h_a = jax.random.normal(key, (16, 5, 3)).astype(jnp.bfloat16)
    h_b = jax.random.normal(jax.random.fold_in(key, 1), (16, 5, 4)).astype(jnp.bfloat16)
    fitted = fit_adapter(h_a, h_b)
    expected = fit_adapter(h_a.astype(jnp.float32), h_b.astype(jnp.float32))
    assert fitted["kernel"].dtype == jnp.float32
    jax.tree.map(np.testing.assert_array_equal, fitted, expected)


def test_stitching_a_model_to_itself_is_the_model(net):
    model, variables, x = net
    expected = model.apply(variables, x)["logits"]
    for layer in ("conv1", "block/conv"):
        stitched, stitched_vars = stitch(model, variables, layer, model, variables, layer, x=x)
        assert stitched.graph.inputs == ("a/input",)
        assert set(stitched_vars["params"]) == {"a", "adapter", "b"}
        out = stitched.apply(stitched_vars, x, outputs="b/logits")["b/logits"]
        np.testing.assert_allclose(out, expected, atol=1e-4)
    # block/conv's 6 channels have full rank, so least squares finds the identity; the
    # skip inside b's back (from b/act1) reads a's input.
    assert ("a/input", "b/input") in stitched.edges
    np.testing.assert_allclose(
        stitched_vars["params"]["adapter"]["kernel"][0], jnp.eye(6), atol=1e-4
    )
    assert sorted(stitched_vars["params"]["a"]) == ["block", "conv1"]
    custom, custom_vars = stitch(
        model, variables, "act1", model, variables, "act1", nn.Dense(6), x=x
    )
    assert custom_vars["params"]["adapter"]["kernel"].shape == (6, 6)
    assert custom.apply(custom_vars, x, outputs="b/logits")["b/logits"].shape == (4, 3)


def test_stitching_a_two_input_model_to_itself_is_the_model(key):
    # 'extra' is read only after 'h' and 'act': the front must still keep it for b's back.
    model = GraphModel(
        {
            "input": Input(),
            "extra": Input(),
            "h": node(nn.Dense(4), inputs="input"),
            "act": nn.relu,
            "mix": node(inputs=("act", "extra"), combine="add"),
            "head": nn.Dense(2),
        },
        returns="head",
    )
    x = {"input": jnp.ones((6, 5)), "extra": jax.random.normal(key, (6, 4))}
    variables = model.init(key, x)
    expected = model.apply(variables, x)
    for layer in ("h", "act", "mix"):
        stitched, stitched_vars = stitch(model, variables, layer, model, variables, layer, x=x)
        assert stitched.graph.inputs == ("a/input", "a/extra")
        out = stitched.apply(stitched_vars, {"a/input": x["input"], "a/extra": x["extra"]})
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_a_given_adapter_is_initialised_with_the_given_key(net):
    model, variables, x = net
    adapter = nn.Conv(6, (1,))
    h = model.apply(variables, x, outputs=["act1"])["act1"]
    for key in (None, jax.random.key(3), jax.random.key(4)):
        _, stitched = stitch(
            model, variables, "act1", model, variables, "act1", adapter, x=x, key=key
        )
        expected = adapter.init(jax.random.key(0) if key is None else key, h)["params"]
        got = stitched["params"]["adapter"]
        assert jax.tree.structure(got) == jax.tree.structure(expected)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_given_adapter_may_be_a_function_and_nothing_else(net):
    # A function failed with AttributeError: 'function' object has no attribute 'init'.
    model, variables, x = net
    stitched, stitched_vars = stitch(
        model, variables, "act1", model, variables, "act1", lambda h: h, x=x
    )
    assert "adapter" not in stitched_vars["params"]
    out = stitched.apply(stitched_vars, x)
    np.testing.assert_allclose(out["b/logits"], model.apply(variables, x)["logits"], rtol=1e-6)
    for bad, kind in ((nn.Conv, "type"), ("conv", "str")):
        with pytest.raises(
            GraphError,
            match=rf"stitch's adapter is .* \(of type {kind}\), not a Flax module instance or a",
        ):
            stitch(model, variables, "act1", model, variables, "act1", bad, x=x)


def test_a_given_adapter_of_the_wrong_width_is_named_not_broadcast(net):
    """b's 'block/act' feeds a sum with its 'act1': one channel would broadcast silently."""
    model, variables, x = net
    with pytest.raises(
        GraphError,
        match=r"stitch: the adapter maps a's 'block/act' of shape \(4, 10, 6\) to shape "
        r"\(4, 10, 1\), but b's 'block/act' has shape \(4, 10, 6\); give an adapter",
    ):
        stitch(model, variables, "block/act", model, variables, "block/act", nn.Conv(1, (1,)), x=x)


def test_returns_is_kept_where_its_node_is(net):
    model, variables, x = net
    logits = model.clone(returns="logits")
    expected = model.apply(variables, x)["logits"]
    back, back_vars = extract(logits, variables, inputs=["act1"])
    assert back.returns == "logits"
    h = model.apply(variables, x, outputs="act1")["act1"]
    assert back.graph.inputs == ("act1",)
    np.testing.assert_array_equal(back.apply(back_vars, h), expected)
    assert extract(logits, variables, outputs=["pool"])[0].returns is None  # cut off
    assert rewire(logits, "pool", "block/add").returns == "logits"
    stitched, stitched_vars = stitch(logits, variables, "conv1", logits, variables, "conv1", x=x)
    assert stitched.returns == "b/logits"
    np.testing.assert_allclose(stitched.apply(stitched_vars, x), expected, atol=1e-4)
    assert merge({"p": (logits, variables)})[0].returns is None
    pooled = model.clone(returns="pool")  # stitched after it: b's back has no 'pool'
    assert stitch(pooled, variables, "pool", pooled, variables, "logits", x=x)[0].returns is None


def test_a_stitched_model_does_not_return_b_s_node_before_the_cut_that_a_skip_keeps(net):
    # block/add reads act1 around the cut at block/conv, so b's back keeps act1; the
    # stitched model returned 'b/act1', b's own act1 of x, whatever a and the adapter do.
    model, variables, x = net
    acted = model.clone(returns="act1")
    stitched, stitched_vars = stitch(
        acted, variables, "block/conv", acted, variables, "block/conv", x=x
    )
    assert "b/act1" in stitched.nodes and stitched.returns is None
    out = stitched.apply(stitched_vars, x)  # the dict of every node, b's logits too
    assert list(out) == list(stitched.nodes) and "b/logits" in out


def test_a_stitched_model_does_not_return_b_s_node_on_a_branch_apart_from_the_cut(key):
    # 'aux' reads 'h', not 'logits': cut at 'logits', b's back computes aux from a's
    # input as b does, so returning 'b/aux' would be b's own aux of x, a ignored.
    model = GraphModel(
        {"h": nn.Dense(2), "logits": nn.Dense(2), "aux": node(nn.Dense(2), inputs="h")},
        returns="aux",
    )
    x = jax.random.normal(key, (4, 3))
    variables = model.init(key, x)
    stitched, stitched_vars = stitch(
        model, variables, "h", model, variables, "logits", lambda h: h, x=x
    )
    assert stitched.returns is None
    out = stitched.apply(stitched_vars, x)
    np.testing.assert_allclose(out["b/aux"], model.apply(variables, x), rtol=1e-6)


def test_surgery_on_a_model_that_is_not_a_graph_model_names_the_argument(net):
    model, variables, x = net
    dense = nn.Dense(3)  # e.g. a zoo model instead of its graph twin
    calls = {
        "extract's model": lambda: extract(dense, {}, outputs="logits"),
        "merge's part 'b'": lambda: merge({"a": (model, variables), "b": (dense, {})}),
        "rewire's model": lambda: rewire(dense, "logits", "pool"),
        "stitch's a": lambda: stitch(dense, {}, "act1", model, variables, "act1", x=x),
        "stitch's b": lambda: stitch(model, variables, "act1", dense, {}, "act1", x=x),
    }
    for what, call in calls.items():
        with pytest.raises(GraphError, match=f"^{what} is a Dense, not a GraphModel; surgery"):
            call()


def test_surgery_given_a_module_class_says_to_pass_an_instance(net):
    """It said "extract's model is a type, not a GraphModel"."""
    model, variables, x = net
    calls = {
        "extract's model": lambda: extract(GraphModel, {}, outputs="logits"),
        "rewire's model": lambda: rewire(nn.Dense, "logits", "pool"),
        "stitch's b": lambda: stitch(model, variables, "act1", GraphModel, {}, "act1", x=x),
    }
    for what, call in calls.items():
        with pytest.raises(GraphError) as error:
            call()
        name = "Dense" if what == "rewire's model" else "GraphModel"
        assert str(error.value) == (
            f"{what} is the class {name}, not a graph model: pass an instance, "
            "GraphModel(graph) (for a zoo model, its twin graph_model(config))."
        )


def test_surgery_names_variables_that_are_the_params_alone_or_none(net, key):
    # The params alone were taken for collections: extract kept no variables, and
    # fill_missing initialized every param again (the given ones ended up beside them).
    model, variables, x = net
    params = variables["params"]
    calls = {
        "extract: variables": lambda v: extract(model, v, inputs="act1"),
        "merge: the variables of part 'a'": lambda v: merge({"a": (model, v)}),
        "fill_missing: variables": lambda v: fill_missing(model, v, key, x),
        "stitch: vars_a": lambda v: stitch(model, v, "act1", model, variables, "act1", x=x),
        "stitch: vars_b": lambda v: stitch(model, variables, "act1", model, v, "act1", x=x),
        "node_variables: variables": lambda v: node_variables(v, "conv1"),  # gave {}
    }
    for what, call in calls.items():
        with pytest.raises(
            GraphError,
            match=rf"^{what} have the key 'conv1', a top-level node of the model, where the "
            r"collections belong: pass the variables that model.init makes, \{'params'",
        ):
            call(params)
        # As probe and the other transforms say it: one error, a GraphError and TypeError
        none = rf"^{what} must be what model.init returns, a mapping of collection names to "
        for error in (GraphError, TypeError):
            with pytest.raises(error, match=none + r"trees \(\{'params': \.\.\.\}\), got None"):
                call(None)


def test_stitch_names_the_wrong_layer_and_missing_inputs(net, key):
    model, variables, x = net
    with pytest.raises(GraphError, match=r"stitch's layer_a \(a node of a\) names 'nope'"):
        stitch(model, variables, "nope", model, variables, "act1", x=x)
    with pytest.raises(GraphError, match=r"stitch's layer_b \(a node of b\) names 'nope'"):
        stitch(model, variables, "act1", model, variables, "nope", x=x)
    with pytest.raises(
        GraphError,
        match=r"stitch: a's 'pool' to b's 'act1': Cannot stitch activations of shape \(4, 6\) "
        r"to \(4, 10, 6\): .* Cut at layers whose shapes do, or give an adapter",
    ):
        stitch(model, variables, "pool", model, variables, "act1", x=x)
    split = GraphModel({"dense": nn.Dense(4), "split": lambda h: {"p": h, "q": h}})
    split_vars = split.init(key, x)
    with pytest.raises(
        GraphError,
        match=r"stitch: a's 'split' computes a dict \(shapes \{'p': \(4, 4\), 'q': \(4, 4\)\}\), "
        r"not an array, which the default 1x1 adapter maps; cut at a node that computes an",
    ):
        stitch(split, split_vars, "split", split, split_vars, "split", x=x)
    with pytest.raises(GraphError, match=r"stitch: b's 'split' computes a dict"):
        stitch(split, split_vars, "dense", split, split_vars, "split", x=x)
    scalar = GraphModel({"dense": nn.Dense(4), "mean": lambda h: float(h.mean())})
    scalar_vars = scalar.init(key, x)
    with pytest.raises(GraphError, match=r"stitch: a's 'mean' computes a float \(shapes \(\)\)"):
        stitch(scalar, scalar_vars, "mean", split, split_vars, "dense", x=x)
    # A NumPy array is an array too (stitch runs the models eagerly).
    numpy = GraphModel({"dense": nn.Dense(4), "host": lambda h: np.asarray(h)})
    numpy_vars = numpy.init(key, x)
    stitched, _ = stitch(numpy, numpy_vars, "host", numpy, numpy_vars, "host", x=x)
    assert stitched.nodes[-1] == "b/host"
    # b's skip connection reads its input node 'raw' past the cut; a has no 'raw'.
    other = GraphModel(
        {
            "raw": Input(),
            "channels": lambda x: x[..., None],
            "conv1": nn.Conv(6, (3,)),
            "act1": nn.relu,
            "skip": node(lambda h, r: h + r[..., None], inputs=("act1", "raw")),
        }
    )
    other_vars = other.init(key, x)
    with pytest.raises(
        GraphError,
        match=r"stitch: b from 'act1' on still reads b's input node 'raw' \(a connection that "
        r"skips over 'act1'\), but a has no input node 'raw' \(a's input nodes: 'input'\)",
    ):
        stitch(model, variables, "act1", other, other_vars, "act1", x=x)


def test_train_only_moves_the_adapter_alone(net):
    model, variables, x = net
    stitched, stitched_vars = stitch(model, variables, "act1", model, variables, "act1", x=x)
    optimizer = train_only(optax.sgd(0.1), "adapter/**")
    params = stitched_vars["params"]

    @jax.jit
    def step(params):
        grads = jax.grad(lambda p: stitched.apply({"params": p}, x)["b/logits"].sum())(params)
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
        return optax.apply_updates(params, updates)

    new = step(params)
    changed = jax.tree.map(lambda u, v: bool((u != v).any()), params, new)
    assert changed["adapter"] == {"kernel": True, "bias": True}
    assert not any(jax.tree.leaves({k: v for k, v in changed.items() if k != "adapter"}))
    with pytest.raises(KeyError, match="'adaptor/\\*\\*' matched no parameter"):
        train_only(optax.sgd(0.1), "adaptor/**").init(params)


def test_fill_missing_initializes_merged_new_nodes_and_keeps_the_parts(net, key):
    model, variables, x = net
    other_vars = model.init(jax.random.fold_in(key, 1), x)
    both, both_vars = merge(
        {"a": (model, variables), "b": (model, other_vars)},
        {"head": node(nn.Dense(5), inputs="a/pool")},
    )
    both = rewire(both, "b/input", "a/input")
    assert "head" not in both_vars["params"]  # merge has nothing to give it
    with pytest.raises(flax.errors.ScopeParamNotFoundError, match="head"):
        both.apply(both_vars, x, outputs="head")
    filled = fill_missing(both, both_vars, jax.random.fold_in(key, 2), x)
    assert filled["params"]["head"]["kernel"].shape == (6, 5)
    jax.tree.map(np.testing.assert_array_equal, filled["params"]["b"], other_vars["params"])
    out = both.apply(filled, x, outputs=("a/logits", "b/logits", "head"))
    np.testing.assert_allclose(out["a/logits"], model.apply(variables, x)["logits"], rtol=1e-6)
    np.testing.assert_allclose(out["b/logits"], model.apply(other_vars, x)["logits"], rtol=1e-6)
    assert out["head"].shape == (4, 5)


def test_fill_missing_keeps_boxed_variables(key):
    # nn.with_partitioning boxes params in nn.Partitioned, which has no .shape of its own.
    init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
    part = GraphModel({"hidden": nn.Dense(4, kernel_init=init)})
    x = jnp.ones((2, 3))
    variables = part.init(key, x)
    model, merged = merge({"a": (part, variables)}, {"head": node(nn.Dense(2), inputs="a/hidden")})
    filled = fill_missing(model, merged, key, x)
    assert filled["params"]["a"]["hidden"]["kernel"] is variables["params"]["hidden"]["kernel"]
    assert filled["params"]["head"]["kernel"].shape == (4, 2)
    wide = GraphModel({"hidden": nn.Dense(5, kernel_init=init)})
    with pytest.raises(GraphError, match=r"'params/hidden/kernel' is float32\[3, 4\], but the"):
        fill_missing(wide, variables, key, x)


def test_fill_missing_refuses_a_given_variable_of_another_shape(net, key):
    _, variables, x = net
    wide = conv_net(width=8)
    with pytest.raises(
        GraphError,
        match=re.escape(
            "fill_missing: the given variable 'params/conv1/kernel' is float32[3, 1, 6]"
        )
        + r", but the model makes float32\[3, 1, 8\] there",
    ):
        fill_missing(wide, variables, key, x)


def test_stitch_errors_about_x_name_the_model_it_was_fed_to(key):
    two = GraphModel({"input": Input(), "extra": Input(), "h": node(nn.Dense(3), inputs="input")})
    other = GraphModel({"input": Input(), "side": Input(), "h": node(nn.Dense(3), inputs="input")})
    x = {"input": jnp.ones((4, 5)), "extra": jnp.ones((4, 5))}
    two_vars = two.init(key, x)
    other_vars = other.init(key, {"input": x["input"], "side": x["extra"]})
    with pytest.raises(GraphError, match=r"^stitch's x, fed to a \(up to its 'h'\): The outputs"):
        stitch(two, two_vars, "h", two, two_vars, "h", x=None)
    with pytest.raises(
        GraphError, match=r"^stitch's x, fed to b \(up to its 'h'\): x has keys that are not input"
    ):
        stitch(two, two_vars, "h", other, other_vars, "h", x=x)
    dense = GraphModel({"h": nn.Dense(3)})
    wide, narrow = dense.init(key, x["input"]), dense.init(key, jnp.ones((4, 2)))
    with pytest.raises(flax.errors.ScopeParamShapeError) as raised:
        stitch(dense, wide, "h", dense, narrow, "h", x=x["input"])
    assert "(raised feeding stitch's x to b, up to its 'h')" in raised.value.__notes__


def test_the_default_adapter_hands_a_bfloat16_back_half_bfloat16(key):
    net = GraphModel({"hidden": nn.Dense(3), "act": nn.relu, "logits": nn.Dense(2)})
    x = jnp.sin(jnp.arange(40.0)).reshape(8, 5)
    bf16 = lambda tree: jax.tree.map(lambda leaf: leaf.astype(jnp.bfloat16), tree)
    vars_a, vars_b = net.init(key, x), bf16(net.init(jax.random.fold_in(key, 1), x))
    x_low = x.astype(jnp.bfloat16)  # b computes bfloat16 on it, a (float32 params) float32
    model, variables = stitch(net, vars_a, "act", net, vars_b, "act", x=x_low)
    out = model.apply(variables, x_low)
    assert out["a/act"].dtype == jnp.float32
    assert [out[p].dtype for p in ("adapter", "b/act", "b/logits")] == [jnp.bfloat16] * 3
    assert variables["params"]["adapter"]["kernel"].dtype == jnp.float32  # fitted in float32
    expected = net.apply(vars_b, None, outputs="logits", inject={"act": out["adapter"]})
    np.testing.assert_array_equal(out["b/logits"], expected["logits"])


def test_the_default_adapter_of_float32_models_follows_mixed_precision(key):
    net = GraphModel({"hidden": nn.Dense(3), "act": nn.relu, "logits": nn.Dense(2)})
    x = jnp.sin(jnp.arange(40.0)).reshape(8, 5)
    vars_a, vars_b = net.init(key, x), net.init(jax.random.fold_in(key, 1), x)
    model, variables = stitch(net, vars_a, "act", net, vars_b, "act", x=x)
    bf16 = lambda tree: jax.tree.map(lambda leaf: leaf.astype(jnp.bfloat16), tree)
    out = model.apply(bf16(variables), x.astype(jnp.bfloat16))  # as precision_apply runs it
    assert [out[p].dtype for p in ("a/act", "adapter", "b/logits")] == [jnp.bfloat16] * 3
    assert model.apply(variables, x)["adapter"].dtype == jnp.float32


def test_rewiring_the_only_input_to_a_constant_gives_a_graph_without_inputs(key):
    model = GraphModel(
        {
            "c": node(lambda: jnp.full((1, 3), 2.0), inputs=()),
            "h": node(nn.Dense(2), inputs="input"),
        }
    )
    variables = model.init(key, jnp.ones((1, 3)))
    fixed = rewire(model, "input", "c")  # "input" is now a pass-through of "c"
    assert fixed.graph.inputs == () and fixed.edges == (("c", "input"), ("input", "h"))
    expected = model.apply(variables, jnp.full((1, 3), 2.0))["h"]
    np.testing.assert_array_equal(fixed.apply(variables, None)["h"], expected)
    with pytest.raises(
        GraphError,
        match=r"^The graph has no input node \(its nodes compute from constants\), but x is "
        r"given \(of type ArrayImpl\); call it without x \(x=None\)\.",
    ):
        fixed.apply(variables, jnp.ones((1, 3)))


def test_extracting_a_part_fed_by_constants_alone_gives_a_graph_without_inputs(key):
    model = GraphModel(
        {
            "bias": node(lambda: jnp.ones((1, 3)), inputs=()),
            "d": nn.Dense(2),
            "x": node(nn.Dense(2), inputs="input"),
            "sum": node(inputs=("d", "x"), combine="add"),
        }
    )
    variables = model.init(key, jnp.ones((1, 4)))
    sub, sub_vars = extract(model, variables, outputs="d")
    assert sub.nodes == ("bias", "d") and sub.graph.inputs == ()
    out = sub.apply(sub_vars, None)
    assert sorted(out) == ["bias", "d"]  # no input node among the outputs
    np.testing.assert_array_equal(out["d"], model.apply(variables, jnp.ones((1, 4)))["d"])


def test_a_graph_without_inputs_is_called_and_initialised_without_x(key):
    model = GraphModel({"bias": node(lambda: jnp.ones((1, 3)), inputs=()), "d": nn.Dense(2)})
    variables = model.init(key)
    assert jax.tree.map(jnp.shape, variables) == {"params": {"d": {"kernel": (3, 2), "bias": (2,)}}}
    np.testing.assert_array_equal(model.apply(variables)["d"], model.apply(variables, None)["d"])
    # Injecting said "x is given (of type dict); call it without x": the shape check's x.
    injected = model.apply(variables, inject={"bias": jnp.zeros((1, 3))})["d"]
    np.testing.assert_array_equal(
        injected, jnp.broadcast_to(variables["params"]["d"]["bias"], (1, 2))
    )
    with pytest.raises(GraphError, match=r"^inject gives node 'bias' float32\[1, 4\], but the"):
        model.apply(variables, inject={"bias": jnp.zeros((1, 4))})


def test_fill_missing_initialises_a_graph_without_inputs_without_x(key):
    part = GraphModel({"bias": node(lambda: jnp.ones((1, 3)), inputs=()), "d": nn.Dense(2)})
    part_vars = part.init(key)
    both, both_vars = merge({"a": (part, part_vars)}, {"head": node(nn.Dense(4), inputs="a/d")})
    filled = fill_missing(both, both_vars, key)
    assert jax.tree.map(jnp.shape, filled["params"]["head"]) == {"kernel": (2, 4), "bias": (4,)}


def test_a_graph_without_inputs_is_drawn_with_its_shapes():
    model = GraphModel({"bias": node(lambda: jnp.ones((1, 3)), inputs=()), "d": nn.Dense(2)})
    assert {p: s.shape for p, s in model.shapes().items()} == {"bias": (1, 3), "d": (1, 2)}
    described = json.loads(model.to_json())["nodes"]
    assert [(n["shape"], n["params"]) for n in described] == [([1, 3], 0), ([1, 2], 8)]
    assert '"d" [label="d\\nDense\\n(1, 2)", shape=box];' in model.to_dot()


def test_a_misspelt_node_is_named_by_the_nearest_where_the_listing_is_cut():
    """A graph of more than 40 nodes listed the first 40 only, without the one meant."""
    spec = {f"block{i}": nn.relu for i in range(45)}
    model = GraphModel({**spec, "head": nn.Dense(2)})
    with pytest.raises(
        GraphError, match=r"^rewire names 'haed', .*'block38' and 7 more\. Did you mean 'head'\?$"
    ):
        rewire(model, "haed", "block3")


def test_a_graph_without_inputs_is_blurbed_without_x(key):
    """blurb required x (TypeError: missing 1 required positional argument: 'x'), though
    such a graph is called, initialised and drawn without one."""
    model = GraphModel({"bias": node(lambda: jnp.ones((1, 3)), inputs=()), "d": nn.Dense(2)})
    summary = px.blurb(model, model.init(key), measure_latency=False)
    assert summary["d"].params == 8 and summary["d"].outputs[""].shape == (1, 2)
    assert summary.root.params == 8


def test_an_error_a_given_adapter_raises_is_noted_as_the_adapter_s(net):
    model, variables, x = net
    with pytest.raises(TypeError, match="dot_general requires contracting dimensions") as raised:
        adapter = lambda h: h @ jnp.ones((4, 6))  # a's act1 has 6 channels
        stitch(model, variables, "act1", model, variables, "act1", adapter=adapter, x=x)
    assert raised.value.__notes__[-1] == (
        "(raised running stitch's adapter on a's 'act1' of shape (4, 10, 6))"
    )


def test_merge_given_lists_instead_of_dicts_says_to_name_the_parts_and_nodes(net):
    """merge([(model, variables)]) and merge(parts, [node(...)]) died in AttributeError:
    'list' object has no attribute 'items'."""
    model, variables, _ = net
    with pytest.raises(GraphError, match=r"^merge's parts are a list, not a dict \{group: "):
        merge([(model, variables), (model, variables)])
    with pytest.raises(GraphError, match=r"^merge's nodes are a list, not a dict \{path: node\}"):
        merge({"a": (model, variables)}, [node(abs, inputs="a/logits")])


def test_merge_of_no_parts_is_an_error():
    """merge({}, nodes) made a model of the new nodes alone, joining nothing."""
    with pytest.raises(GraphError, match=r"^merge's parts are empty \(\{\}\), so it would join"):
        merge({}, {"head": nn.Dense(2)})


def test_fill_missing_refuses_a_given_variable_the_model_does_not_make(key):
    """A node renamed in the spec ('logits' -> 'head') kept its trained variables at the
    old path, unused, and initialized the new node's afresh, without a word."""
    x = jnp.ones((2, 3))
    variables = GraphModel({"logits": nn.Dense(2)}).init(key, x)
    message = (
        "fill_missing: the given variable 'params/logits/kernel' is none the model makes (a "
        "node renamed or removed?), so it would be kept unused. Did you mean "
        "'params/head/kernel'? Give variables"
    )
    with pytest.raises(GraphError, match=re.escape(message)):
        fill_missing(GraphModel({"head": nn.Dense(2)}), variables, key, x)


def test_stitching_at_a_node_without_a_batch_axis_says_so(key):
    """A constant node's (4,) to (4,) was refused as shapes that 'differ only in their
    channels', though they are one shape: the reason, no batch axis, went unsaid."""
    bias = GraphModel(
        {"b": node(lambda: jnp.ones(4), inputs=()), "h": node(jnp.add, ("input", "b"))}
    )
    x = jnp.ones((2, 4))
    with pytest.raises(
        GraphError,
        match=r"stitch: a's 'b' to b's 'b': Cannot stitch activations of shape \(4,\) to \(4,\): "
        r"a 1x1 adapter needs \(batch, \.\.\., channels\) shapes, and \(4,\) has no batch axis",
    ):
        stitch(bias, {}, "b", bias, {}, "b", x=x)
    stitched, variables = stitch(bias, {}, "b", bias, {}, "b", lambda h: h, x=x)
    np.testing.assert_array_equal(stitched.apply(variables, x)["b/h"], 2 * x)


class _Bias(nn.Module):
    """A learned constant: a node of no inputs."""

    @nn.compact
    def __call__(self):
        return self.param("b", nn.initializers.normal(), (4,))


def every_kind_of_node() -> GraphModel:
    """Two inputs, a constant, a combine, a tuple-valued node, a pass-through, a nested
    graph model and a module given its inputs concatenated."""
    inner = GraphModel({"d": nn.Dense(4), "r": nn.relu}, returns="r")
    return GraphModel(
        {
            "x": Input(),
            "y": Input(),
            "const": node(_Bias(), inputs=()),
            "dx": node(nn.Dense(4), inputs="x"),
            "dy": node(nn.Dense(4), inputs="y"),
            "sum": node(inputs=("dx", "dy", "const"), combine=lambda *values: sum(values)),
            "split": lambda h: (h[..., :2], h[..., 2:]),
            "join": lambda parts: jnp.concatenate(parts, -1),
            "pass": node(inputs="join"),
            "inner": inner,
            "mix": node(nn.Dense(4), inputs=("inner", "pass"), combine="concat"),
            "head": nn.Dense(2),
        },
        returns="head",
    )


@pytest.fixture(scope="module")
def every_kind():
    model = every_kind_of_node()
    keys = jax.random.split(jax.random.key(0), 3)
    x = {"x": jax.random.normal(keys[0], (3, 5)), "y": jax.random.normal(keys[1], (3, 6))}
    return model, model.init(keys[2], x), x


@pytest.mark.parametrize("cut", every_kind_of_node().nodes[:-1])
def test_cutting_and_stitching_at_every_kind_of_node_gives_the_model_back(every_kind, cut):
    model, variables, x = every_kind
    expected = model.apply(variables, x)
    cut_value = model.apply(variables, x, outputs=cut)[cut]
    back, back_vars = extract(model, variables, inputs=[cut])
    feeds = {path: cut_value if path == cut else x[path] for path in back.graph.inputs}
    np.testing.assert_allclose(back.apply(back_vars, feeds), expected, rtol=1e-6)
    stitched, stitched_vars = stitch(model, variables, cut, model, variables, cut, lambda h: h, x=x)
    out = stitched.apply(stitched_vars, {"a/x": x["x"], "a/y": x["y"]})
    np.testing.assert_allclose(out, expected, rtol=1e-6)
