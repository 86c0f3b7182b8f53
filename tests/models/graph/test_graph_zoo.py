"""Graph versions of the zoo's ResNet and transformer: same parameters, same outputs."""

import dataclasses
import functools
import types
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.models import ModelConfig, build_model, model_spec, param_count
from phosjax.models.graph import graph_model
from phosjax.models.graph._zoo import TWIN_OPTIONS
from phosjax.train._state import _check_classes

BLOCK_NODES = ("conv_0", "norm_0", "act_0", "conv_1", "norm_1", "proj", "proj_norm", "add", "act")


@functools.cache
def _zoo_variables(config: ModelConfig, dtype: Any = jnp.float32) -> Any:
    """``build_model(config)``'s variables for inputs of that dtype (the `key` fixture's
    key), initialized once for the tests that only read them: compiling an init takes
    seconds."""
    x = jnp.zeros((1, *config.input_shape), dtype)
    return jax.jit(build_model(config).init)(jax.random.key(0, impl="rbg"), x)


CONFIGS = [
    ModelConfig("resnet", num_classes=10, input_shape=(40,)),
    ModelConfig("resnet", num_classes=3, input_shape=(6, 6, 1), width=(4, 8)),
    ModelConfig("transformer", num_classes=10, input_shape=(40,)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.name}{c.input_shape}")
def test_graph_twin_has_the_zoo_parameters_and_outputs(config, key):
    zoo, graph = build_model(config), graph_model(config)
    x = jax.random.normal(key, (3, *config.input_shape))
    zoo_vars = _zoo_variables(config)
    graph_shapes = jax.eval_shape(graph.init, jax.random.fold_in(key, 1), x)
    count = sum(leaf.size for leaf in jax.tree.leaves(graph_shapes["params"]))
    assert count == param_count(config)
    assert jax.tree.map(np.shape, graph_shapes) == jax.tree.map(np.shape, zoo_vars)

    # The zoo's variables run the graph twin unchanged, in eval and in train mode.
    def both(model, variables, x):
        evaluated = model.apply(variables, x)
        trained = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return evaluated, trained

    zoo_eval, (zoo_train, zoo_state) = jax.jit(both, static_argnums=0)(zoo, zoo_vars, x)
    out, (graph_train, graph_state) = jax.jit(both, static_argnums=0)(graph, zoo_vars, x)
    np.testing.assert_allclose(out["head"], zoo_eval, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(graph_train["head"], zoo_train, rtol=1e-5, atol=1e-6)
    jax.tree.map(np.testing.assert_allclose, graph_state, zoo_state)


@pytest.mark.parametrize("pool", ["mean", "last", "flatten"])
def test_the_transformer_twin_takes_the_zoo_models_padding_mask(pool, key):
    options = {"num_heads": 2, "mlp_features": 8, "patch_size": 8, "pool": pool}
    config = ModelConfig("transformer", 3, (40,), depth=2, width=8, options=options)
    zoo, twin = build_model(config), graph_model(config).clone(returns="head")
    x = jax.random.normal(key, (2, 40))
    variables = zoo.init(jax.random.fold_in(key, 1), x)
    real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: its last 2 patches padded
    twin_apply = jax.jit(twin.apply)  # jitted: eagerly, each op compiled apart
    logits = twin_apply(variables, x, mask=real)
    np.testing.assert_allclose(logits, jax.jit(zoo.apply)(variables, x, mask=real), atol=1e-5)
    assert not np.allclose(logits, twin_apply(variables, x), atol=1e-3)  # the mask counts
    other = x.at[1, 24:].set(50.0)  # new values in example 1's padded patches
    np.testing.assert_allclose(twin_apply(variables, other, mask=real), logits, atol=1e-5)


def test_what_the_transformer_twins_padded_patches_hold_reaches_no_gradient(key):
    options = {"num_heads": 2, "mlp_features": 8, "patch_size": 8}
    config = ModelConfig("transformer", 3, (40,), depth=1, width=8, options=options)
    twin = graph_model(config).clone(returns="head")
    x = jax.random.normal(key, (2, 40))
    params = build_model(config).init(jax.random.fold_in(key, 1), x)["params"]
    real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: its last 2 patches padded
    loss = lambda params, x: (twin.apply({"params": params}, x, mask=real) ** 2).sum()
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    grads = grad(params, x.at[1, 24].set(jnp.inf).at[1, 25:].set(jnp.nan))
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(grads))
    jax.tree.map(np.testing.assert_array_equal, grads, grad(params, x.at[1, 24:].set(0.0)))


@pytest.mark.parametrize(
    ("shape", "mask", "wanted"), [((16, 3), (2, 16), (2, 4)), ((2, 2, 2, 3), (2, 8), (2, 2))]
)
def test_a_mask_of_the_inputs_tokens_is_refused_as_the_zoo_model_refuses_it(shape, mask, wanted):
    # The twin failed inside node blocks_0/attention ("MultiHeadSelfAttention mask must
    # have the shape ..."), naming neither the stem nor the input's tokens.
    config = ModelConfig("transformer", 3, shape, width=4, depth=1)
    x, real = jnp.ones((2, *shape)), jnp.ones(mask, bool)
    told = (
        rf"'s mask has shape \({mask[0]}, {mask[1]}\), which fits the input's tokens "
        rf"\({mask[0]}, {mask[1]}\), but its blocks see the tokens of its stem's output "
        rf"\(Patches, \({wanted[0]}, {wanted[1]}, 4\)\): give a mask of shape "
        rf"\({wanted[0]}, {wanted[1]}\) \(true: a real token\)\."  # jit adds a note
    )
    for model, owner in ((build_model(config), "Frame"), (graph_model(config), "graph_model")):
        variables = jax.eval_shape(model.init, jax.random.key(0), x)
        with pytest.raises(ValueError, match=rf"^{owner}(\('transformer'\))?{told}"):
            jax.jit(model.apply)(variables, x, mask=real)
    # A mask of the stem's tokens runs the twin (the loop's last model), jitted too; its
    # variables as numpy arrays (an eager init compiled each of its ops).
    variables = jax.tree.map(lambda leaf: np.ones(leaf.shape, leaf.dtype), variables)
    assert jax.jit(model.apply)(variables, x, mask=jnp.ones(wanted, bool))["head"].shape == (2, 3)


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig("resnet", 3, (40,), width=4),
        # No block to take it: the zoo's Frame refused the mask, the twin took it.
        ModelConfig("transformer", 3, (40,), depth=0, width=4, options={"num_heads": 1}),
    ],
    ids=["resnet", "transformer-depth-0"],
)
def test_a_twin_without_attention_refuses_a_mask_as_the_zoo_model_does(config, key):
    x = jnp.ones((2, 40))
    mask = jnp.ones((2, 40 // dict(config.resolved().options).get("patch_size", 1)), bool)
    with pytest.raises(TypeError, match=r"^Frame was called with the keyword 'mask'"):
        jax.eval_shape(build_model(config).init, key, x, mask=mask)
    with pytest.raises(TypeError, match=r"^GraphModel was called with the keyword 'mask'"):
        jax.eval_shape(graph_model(config).init, key, x, mask=mask)


def test_every_layer_of_the_twin_is_a_node(key):
    config = CONFIGS[0]
    graph = graph_model(config)
    assert graph.nodes[:4] == ("input", "view", "stem/Conv_0", "stem/act")
    assert ("stem/act", "blocks_0/add") in graph.edges  # the identity shortcut
    assert ("blocks_0/act", "blocks_1/proj") in graph.edges  # the projection shortcut
    x = jax.ShapeDtypeStruct((2, 40), np.float32)
    variables = jax.eval_shape(graph.init, key, x)
    found = jax.eval_shape(lambda v, x: px.probe(graph, v, x, "blocks_1/*/out")[1], variables, x)
    assert sorted(found) == [f"blocks_1/{n}/out" for n in sorted(BLOCK_NODES)]
    assert found["blocks_1/add/out"].shape == (2, 20, 32)
    with pytest.raises(ValueError, match=r"'mlp' has no graph version; these have: \['resnet'"):
        graph_model(ModelConfig("mlp", num_classes=2, input_shape=(3,)))
    with pytest.raises(ValueError, match=r"^unknown model 'resnt'\. Did you mean 'resnet'\?"):
        graph_model(ModelConfig("resnt", num_classes=2, input_shape=(3,)))  # had no graph version


def test_blurb_gives_each_block_of_the_twin_its_nodes_sum_and_last_output(key):
    config = CONFIGS[1]
    graph = graph_model(config)
    x = jax.random.normal(key, (2, *config.input_shape))
    # The zoo model's variables, which run the twin unchanged.
    b = px.blurb(graph, _zoo_variables(config), x, measure_latency=False)
    groups = [m for m in b.root.children if m.type == "Group"]
    assert [g.path for g in groups] == ["stem", "blocks_0", "blocks_1"]
    for group in groups:
        assert group.flops == sum(n.flops for n in group.children)
        assert group.outputs == group.children[-1].outputs == b[f"{group.path}/act"].outputs
    assert b["blocks_0/add"].flops == x.size * 4  # 4 channels at full resolution


def test_the_transformer_twin_computes_in_the_dtype_option(key):
    options = {"dtype": "bfloat16", "causal": True, "dropout_rate": 0.1}
    config = ModelConfig("transformer", num_classes=3, input_shape=(16,), width=8, options=options)
    zoo, graph = build_model(config), graph_model(config)
    x = jax.random.normal(key, (3, 16))
    variables = jax.jit(zoo.init)(key, x)
    out = graph.apply(variables, x)
    assert out["stem"].dtype == jnp.bfloat16  # the patches' embedding, not float32
    assert out["blocks_0/mlp_out"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(out["head"], zoo.apply(variables, x))


def test_the_transformer_twin_stores_its_params_in_the_param_dtype_option(key):
    options = {"param_dtype": "bfloat16"}
    config = ModelConfig("transformer", num_classes=3, input_shape=(16,), width=8, options=options)
    zoo, graph = build_model(config), graph_model(config)
    x = jax.random.normal(key, (3, 16))
    variables = jax.jit(zoo.init)(key, x)
    dtypes = lambda tree: jax.tree.map(lambda leaf: leaf.dtype, tree)
    graph_dtypes = dtypes(jax.eval_shape(graph.init, key, x)["params"])
    assert graph_dtypes == dtypes(variables["params"])
    assert set(jax.tree.leaves(dtypes(variables["params"]))) == {jnp.dtype(jnp.bfloat16)}
    logits = jax.jit(graph.apply)(variables, x)["head"]  # jitted: eagerly, each op compiled apart
    np.testing.assert_allclose(logits, jax.jit(zoo.apply)(variables, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.name}{c.input_shape}")
def test_two_twins_of_one_config_are_equal_and_a_static_jit_traces_once(config):
    """Each twin held functions of its own (closures): no two were equal, so a jit taking
    the model as a static argument traced and compiled again for each twin."""
    traces = []

    def logits(model, variables, x):
        traces.append(model)
        return model.apply(variables, x)["head"]

    first, second = graph_model(config), graph_model(config)
    assert first == second and hash(first) == hash(second)
    x = jax.ShapeDtypeStruct((2, *config.input_shape), jnp.float32)
    variables = jax.eval_shape(first.init, jax.random.key(0), x)
    jitted = jax.jit(logits, static_argnums=0)
    assert jax.eval_shape(jitted, first, variables, x) == jax.eval_shape(
        jitted, second, variables, x
    )
    assert len(traces) == 1
    other = dataclasses.replace(config, num_classes=config.num_classes + 1)
    assert graph_model(other) != first


@pytest.mark.parametrize("name", sorted(TWIN_OPTIONS))
def test_every_twin_supports_every_option_of_its_zoo_model(name):
    assert model_spec(name).accepted_options() <= TWIN_OPTIONS[name]


def test_an_option_the_twin_would_ignore_is_an_error(monkeypatch):
    monkeypatch.setitem(TWIN_OPTIONS, "transformer", TWIN_OPTIONS["transformer"] - {"dtype"})
    config = ModelConfig("transformer", 3, (16,), options={"dtype": "bfloat16"})
    with pytest.raises(ValueError, match=r"graph_model\('transformer'\) does not support option"):
        graph_model(config)


def test_the_twin_checks_the_input_shape(key):
    graph = graph_model(CONFIGS[0])
    x = jax.ShapeDtypeStruct((2, 44), np.float32)
    with pytest.raises(
        ValueError, match=r"graph_model\('resnet'\) was built for examples of shape \(40,\)"
    ):
        jax.eval_shape(graph.init, key, x)
    with pytest.raises(TypeError, match=r"^graph_model\('resnet'\) takes x, a batch array"):
        graph.init(key, "x")  # refused before anything runs


@dataclasses.dataclass(frozen=True)
class _TwinConfig:
    """A model config (as the training engine takes) that builds a graph twin."""

    returns: str | None

    def build(self):
        return graph_model(CONFIGS[0]).clone(returns=self.returns)


def test_the_training_engine_needs_returns_head():
    data = types.SimpleNamespace(name="toy", input_shape=(40,), num_classes=10)
    with pytest.raises(
        ValueError,
        match=r"returns a dict, not an array of logits; a graph model returns \{node: value\}: "
        r"build it with GraphModel\(spec, returns='head'\)",
    ):
        _check_classes(types.SimpleNamespace(model=_TwinConfig(None)), data)
    _check_classes(types.SimpleNamespace(model=_TwinConfig("head")), data)


@pytest.mark.parametrize("build", [build_model, graph_model], ids=lambda f: f.__name__)
def test_a_model_name_instead_of_a_config_is_a_type_error_naming_what_to_pass(build):
    """build_model('resnet') and graph_model('resnet') died in "'str' object has no
    attribute 'name'"."""
    said = (
        f"{build.__name__} takes a ModelConfig, got 'resnet' (a str): pass "
        f"{build.__name__}(ModelConfig('resnet', num_classes=10, input_shape=(40,)))."
    )
    with pytest.raises(TypeError) as error:
        build("resnet")
    assert str(error.value) == said
    with pytest.raises(TypeError, match=r"got \{'name': 'mlp'\} \(a dict\).*from_dict\(it\)"):
        build({"name": "mlp"})


def test_training_resnet_and_its_twin_on_an_empty_batch_keeps_their_batch_stats(key):
    """An empty batch in train mode made every running mean and variance NaN for good
    (BatchNorm averaged over no example); both now run as in evaluation, stats kept."""
    config = ModelConfig("resnet", num_classes=3, input_shape=(4,), width=2, depth=1)
    for model in (build_model(config), graph_model(config)):
        shapes = jax.eval_shape(model.init, key, jnp.ones((1, 4)))
        variables = jax.tree.map(lambda leaf: jnp.ones(leaf.shape, leaf.dtype), shapes)
        _, updated = model.apply(variables, jnp.ones((0, 4)), True, mutable=["batch_stats"])
        for kept in jax.tree.leaves(updated["batch_stats"]):
            np.testing.assert_array_equal(kept, 1.0)


@pytest.mark.parametrize("name", sorted(TWIN_OPTIONS))
def test_every_node_of_every_twin_can_be_probed_and_injected(name, key):
    # MultiHeadSelfAttention's output projection is named "out", the name of the tag of
    # the attention node's output: probing it (and injecting anything) was refused.
    config = ModelConfig(name, num_classes=3, input_shape=(8,), width=(8,), depth=1)
    zoo, graph = build_model(config), graph_model(config)
    x = jax.random.normal(key, (2, 8))
    variables = zoo.init(jax.random.fold_in(key, 1), x)
    _, found = px.probe(graph, variables, x, "**")
    assert {f"{node}/out" for node in graph.nodes} <= set(found)
    _, state = zoo.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    last = "blocks_0/mlp_add" if name == "transformer" else "blocks_0/act"
    zoo_block = state["intermediates"]["blocks_0"]["__call__"][0]
    np.testing.assert_array_equal(found[f"{last}/out"], zoo_block)
    if name == "transformer":
        zoo_attention = state["intermediates"]["blocks_0"]["attention"]["__call__"][0]
        np.testing.assert_array_equal(found["blocks_0/attention/out"], zoo_attention)
        zero = jnp.zeros_like(zoo_attention)
        summed = graph.apply(variables, x, inject={"blocks_0/attention": zero})
        np.testing.assert_array_equal(summed["blocks_0/attention_add"], found["stem/out"])
        injected = px.inject(graph, variables, x, {"blocks_0/attention/out": zero})
        np.testing.assert_array_equal(injected["blocks_0/attention_add"], found["stem/out"])


def test_the_transformer_twin_normalizes_tokens_sharing_a_large_offset_as_float64_does(key):
    """Flax's default LayerNorm variance (the mean square less the squared mean)
    cancelled in float32 where the tokens' features share a large offset (the stem's
    bias of 3000 here): the twin's logits, at most 751, were off from float64's by 934."""
    options = {"num_heads": 2, "mlp_features": 8, "patch_size": 8}
    config = ModelConfig("transformer", 3, (40,), depth=1, width=8, options=options)
    twin = graph_model(config).clone(returns="head")
    x = jax.random.normal(key, (2, 40))
    params = build_model(config).init(key, x)["params"]
    params["stem"]["embed"]["bias"] = jnp.full(8, 3000.0)
    apply = jax.jit(twin.apply)  # jitted: eagerly, each op compiled apart (twice: float64)
    logits = apply({"params": params}, x)
    with jax.enable_x64(True):
        wide = jax.tree.map(lambda a: np.asarray(a, np.float64), (params, x))
        expected = np.asarray(apply({"params": wide[0]}, wide[1]))
    assert expected.dtype == np.float64
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("twin", [False, True], ids=["zoo", "twin"])
def test_the_resnet_in_training_normalizes_channels_sharing_a_large_offset_as_float64(twin, key):
    """Flax's default BatchNorm variance (the mean square less the squared mean)
    cancelled in float32 where a channel's values share a large offset (the stem's bias
    of 3000 here, through 1x1 convs): the logits, about 2000, were off from float64's
    by 0.46, in the zoo model and its twin alike."""
    config = ModelConfig("resnet", 3, (12,), width=4, depth=1, options={"kernel_size": 1})
    model = graph_model(config).clone(returns="head") if twin else build_model(config)
    x = jax.random.normal(key, (6, 12))
    variables = build_model(config).init(key, x)
    variables["params"]["stem"]["Conv_0"]["bias"] = jnp.full(4, 3000.0)
    # jitted: eagerly, each op compiled apart (twice: float64)
    train = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
    logits, _ = train(variables, x)
    with jax.enable_x64(True):
        wide = jax.tree.map(lambda a: np.asarray(a, np.float64), (variables, x))
        expected, _ = train(*wide)
    assert expected.dtype == np.float64
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("twin", [False, True], ids=["zoo", "twin"])
def test_the_transformers_bfloat16_dropouts_scale_by_the_exact_keep_rate(twin, key):
    """Flax's Dropout divided bfloat16 values by 0.9 rounded to 0.8984 (every kept value
    0.17% too large on average): the blocks' residual branches and the frame's features
    before the head; each is x / 0.9 rounded once now."""
    options = {"dtype": "bfloat16", "dropout_rate": 0.1, "dropout": 0.1}
    config = ModelConfig("transformer", 3, (16,), depth=1, width=8, options=options)
    model = graph_model(config) if twin else build_model(config)
    x = jax.random.normal(key, (4, 16), jnp.bfloat16)
    variables = _zoo_variables(config, x.dtype)
    calls = []

    def record(call, args, kwargs, context):
        out = call(*args, **kwargs)
        if isinstance(context.module, nn.Dropout) and args[0].dtype == jnp.bfloat16:
            calls.append((np.asarray(args[0], np.float32), np.asarray(out, np.float32)))
        return out

    with nn.intercept_methods(record):
        model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert len(calls) == 3  # the two residual branches and the features
    for given, out in calls:
        kept = out != 0
        assert 0.8 < kept.mean() < 1
        exact = (given / np.float32(0.9)).astype(jnp.bfloat16).astype(np.float32)
        np.testing.assert_array_equal(out[kept], exact[kept])
