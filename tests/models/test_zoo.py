"""One table runs every zoo model through the same checks.

Each case builds a tiny version of a zoo model (depth/width overrides keep compile
time low) on MNIST-1D's shape ``(40,)`` and on digits' ``(8, 8, 1)`` where the model
takes it, and checks: output shape, jit == eager, vmap over two stacked variable sets ==
two applies, finite outputs and gradients in training mode, the frame's tags, and that
the config round-trips and rebuilds the same parameter shapes.
"""

import dataclasses
import functools
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import phosjax as px
from phosjax.core import flatten
from phosjax.models import ModelConfig, build_model, model_spec, param_count
from tests.models.zoo import zoo_models

MNIST1D, DIGITS = (40,), (8, 8, 1)
TINY: dict[str, dict[str, Any]] = {
    "logreg": {},
    "mlp": {"width": 8},
    "cnn1d": {"depth": 2, "width": 4},
    "cnn2d": {"width": (4, 8)},
    "resnet": {"width": (4, 8)},
    "transformer": {
        "depth": 1,
        "width": 8,
        "options": {"num_heads": 2, "mlp_features": 8, "patch_size": 8},
    },
    "gru": {"width": 4},
    "choicenet": {"depth": 1, "width": 8},
    "moenet": {"width": 8, "options": {"num_experts": 2, "hidden_features": 8}},
}
IMAGE_ONLY = {"cnn2d"}
ON_DIGITS = {"cnn2d", "resnet", "mlp", "cnn1d"}  # one of each way to view an image
CASES = [
    pytest.param(name, shape, id=f"{name}-{'x'.join(map(str, shape))}")
    for name in TINY
    for shape in (MNIST1D, DIGITS)
    if (shape == MNIST1D and name not in IMAGE_ONLY) or (shape == DIGITS and name in ON_DIGITS)
]
BATCH, NUM_CLASSES = 3, 5


@dataclasses.dataclass(frozen=True)
class Case:
    config: ModelConfig
    model: Any
    x: jax.Array
    stacked: Any  # two variable sets stacked on a leading model axis
    variables: Any  # the first of them
    probe: Any  # jitted: variables -> ((logits, aux_loss and path_weights), every tag)


@functools.cache
def case(name: str, input_shape: tuple[int, ...]) -> Case:
    """Builds and initializes a tiny model once; the checks share its compiled functions."""
    config = ModelConfig(name, NUM_CLASSES, input_shape, **TINY[name])
    model = build_model(config)
    x = jax.random.normal(jax.random.key(1, impl="rbg"), (BATCH, *input_shape))
    keys = jax.random.split(jax.random.key(0, impl="rbg"), 2)  # rbg: init compiles ~10x faster
    stacked = jax.jit(jax.vmap(model.init, in_axes=(0, None)))(keys, x)
    collect = [px.AUX_LOSS, px.PATH_WEIGHTS]
    probe = jax.jit(lambda v: px.probe(model, v, x, mutable=collect))
    return Case(config, model, x, stacked, jax.tree.map(lambda v: v[0], stacked), probe)


def test_the_table_covers_the_whole_zoo():
    assert set(zoo_models()) == set(TINY)


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_jit_equals_eager_and_logits_shape(name, shape):
    c = case(name, shape)
    eager = c.model.apply(c.variables, c.x)
    (jitted, _), _ = c.probe(c.variables)
    assert eager.shape == (BATCH, NUM_CLASSES) and eager.dtype == jnp.float32
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_vmap_over_stacked_variables_equals_separate_applies(name, shape):
    c = case(name, shape)
    together = jax.jit(jax.vmap(c.model.apply, in_axes=(0, None)))(c.stacked, c.x)
    for i in range(2):
        (one, _), _ = c.probe(jax.tree.map(lambda v, i=i: v[i], c.stacked))
        np.testing.assert_allclose(together[i], one, rtol=1e-5, atol=1e-6)
    assert not np.allclose(together[0], together[1])  # two different models


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_training_step_has_finite_outputs_and_gradients(name, shape):
    c = case(name, shape)
    labels = jnp.arange(BATCH) % NUM_CLASSES
    params, state = c.variables["params"], {k: v for k, v in c.variables.items() if k != "params"}

    def loss(params):
        logits, updates = c.model.apply(
            {"params": params, **state},
            c.x,
            train=True,
            rngs={"dropout": jax.random.key(2, impl="rbg")},
            mutable=["batch_stats"],
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), updates

    (value, updates), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    assert np.isfinite(value)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
    assert any(np.abs(g).sum() > 0 for g in jax.tree.leaves(grads))
    if "batch_stats" in state:  # training updates BatchNorm's running statistics
        before, after = jax.tree.leaves(state["batch_stats"]), jax.tree.leaves(updates)
        assert len(before) == len(after) and not all(map(np.array_equal, before, after))
    else:
        assert updates == {}


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_tags_are_present(name, shape):
    c = case(name, shape)
    (out, _), found = c.probe(c.variables)
    widths = c.config.resolved().widths or ()
    blocks = {f"blocks_{i}/out": widths[i // c.model.depth] for i in range(len(c.model.blocks))}
    stem = {"stem/out": widths[0]} if c.model.stem is not None else {}
    outs = {path: value.shape[-1] for path, value in found.items() if path.endswith("/out")}
    assert outs == {**stem, **blocks}
    np.testing.assert_array_equal(found["logits"], out)
    assert found["features"].shape[0] == BATCH


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_bfloat16_params_and_inputs_compute_in_bfloat16(name, shape):
    """As mixed precision casts them (`compute_dtype="bfloat16"`): nothing promotes to
    float32 on the way (a GRU's float32 initial state did); one of them bfloat16 works."""
    c = case(name, shape)

    def cast(v):
        return v.astype(jnp.bfloat16) if jnp.issubdtype(v.dtype, jnp.floating) else v

    logits = jax.eval_shape(c.model.apply, jax.tree.map(cast, c.variables), cast(c.x))
    assert logits.dtype == jnp.bfloat16
    for variables, x in [(c.variables, cast(c.x)), (jax.tree.map(cast, c.variables), c.x)]:
        assert jax.eval_shape(c.model.apply, variables, x).shape == (BATCH, NUM_CLASSES)


def _param_shapes(config: ModelConfig) -> Any:
    model = build_model(config)
    x = jax.ShapeDtypeStruct((1, *config.input_shape), jnp.float32)
    return jax.tree.map(lambda s: s.shape, jax.eval_shape(model.init, jax.random.key(0), x))


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_config_round_trip_rebuilds_the_same_shapes(name, shape):
    c = case(name, shape)
    recorded = json.loads(json.dumps(c.config.resolved().to_dict()))
    rebuilt = ModelConfig.from_dict(recorded)
    assert rebuilt == c.config.resolved() and hash(rebuilt) == hash(c.config.resolved())
    assert ModelConfig.from_dict(c.config.to_dict()) == c.config
    assert _param_shapes(rebuilt) == jax.tree.map(jnp.shape, c.variables)
    sizes = [math.prod(v.shape) for v in jax.tree.leaves(c.variables["params"])]
    assert param_count(c.config) == sum(sizes)


@pytest.mark.parametrize("name", sorted(TINY))
def test_defaults_rebuild_from_their_recorded_config(name):
    config = ModelConfig(name, 10, MNIST1D if name not in IMAGE_ONLY else DIGITS)
    resolved = config.resolved()
    assert isinstance(resolved.depth, int) and isinstance(resolved.width, tuple)
    assert _param_shapes(ModelConfig.from_dict(resolved.to_dict())) == _param_shapes(config)


def test_default_mlp_is_40_100_100_10_and_cnn1d_3_convs_of_25():
    mlp = ModelConfig("mlp", 10, MNIST1D)
    assert param_count(mlp) == (40 * 100 + 100) + (100 * 100 + 100) + (100 * 10 + 10)
    cnn1d = ModelConfig("cnn1d", 10, MNIST1D)
    convs = (3 * 1 * 25 + 25) + 2 * (3 * 25 * 25 + 25)
    assert param_count(cnn1d) == convs + (5 * 25 * 10 + 10)  # 40 -> 20 -> 10 -> 5, flattened


def test_moenet_raises_a_nonzero_aux_loss():
    c = case("moenet", MNIST1D)
    (_, state), _ = c.probe(c.variables)
    total, by_name = px.aux_total(state[px.AUX_LOSS])
    assert float(total) > 0 and set(by_name) == {"balance"}
    assert len(flatten(state[px.AUX_LOSS])) == len(c.model.blocks)


def test_moenet_on_an_empty_batch_raises_a_zero_aux_loss_not_nan():
    """Its balance loss was the mean over no token, NaN, which made the loss NaN."""
    model = ModelConfig("moenet", 3, (4,), width=4, options={"hidden_features": 2}).build()
    variables = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 4)))
    apply = jax.jit(functools.partial(model.apply, mutable=[px.AUX_LOSS]))
    _, state = apply(variables, jnp.ones((0, 4)))
    assert float(px.aux_total(state[px.AUX_LOSS])[0]) == 0.0


@pytest.mark.parametrize("name", list(TINY))
def test_every_zoo_model_hashes_so_a_static_jit_traces_once(name):
    """choicenet's Choice held its branches in a list: hashing the model failed, so a
    jit taking it as a static argument raised instead of tracing."""
    shape = DIGITS if name in IMAGE_ONLY else MNIST1D
    config = ModelConfig(name, NUM_CLASSES, shape, **TINY[name])
    first, second = build_model(config), build_model(config)
    assert first == second and hash(first) == hash(second)
    traces = []

    def logits(model, variables, x):
        traces.append(model)
        return model.apply(variables, x)

    x = jax.ShapeDtypeStruct((BATCH, *shape), jnp.float32)
    variables = jax.eval_shape(first.init, jax.random.key(0), x)
    jitted = jax.jit(logits, static_argnums=0)
    assert jax.eval_shape(jitted, first, variables, x).shape == (BATCH, NUM_CLASSES)
    jax.eval_shape(jitted, second, variables, x)
    assert len(traces) == 1


def test_choicenet_records_path_weights():
    c = case("choicenet", MNIST1D)
    (_, state), _ = c.probe(c.variables)
    weights = flatten(state[px.PATH_WEIGHTS])
    assert sorted(weights) == [f"blocks_0/branch_{j}" for j in range(3)]
    np.testing.assert_allclose(sum(weights.values()), 1.0, rtol=1e-6)  # softmax over branches


@pytest.mark.parametrize("width", [(8, 16), (16, 8)])
def test_choicenet_stages_of_different_widths_skip_through_a_projection(width):
    model = build_model(ModelConfig("choicenet", NUM_CLASSES, MNIST1D, width=width))
    logits, variables = model.init_with_output(jax.random.key(0), jnp.ones((BATCH, *MNIST1D)))
    assert logits.shape == (BATCH, NUM_CLASSES)
    # depth 2 per stage: only the first block of the second stage changes the width
    projected = [
        b for b, p in variables["params"].items() if "projection" in p.get("branches_2", {})
    ]
    assert projected == ["blocks_2"]


@pytest.mark.parametrize("width", [(8, 16), (16, 8)])
def test_moenet_stages_of_different_widths_project_the_residual(width):
    options = {"num_experts": 2, "hidden_features": 8}
    model = build_model(ModelConfig("moenet", NUM_CLASSES, MNIST1D, width=width, options=options))
    x = jax.ShapeDtypeStruct((BATCH, *MNIST1D), jnp.float32)
    logits, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
    assert logits.shape == (BATCH, NUM_CLASSES)
    # only the first block of the second stage changes the width
    projected = [b for b, p in variables["params"].items() if "projection" in p]
    assert projected == ["blocks_1"]


@pytest.mark.parametrize(
    ("rate", "wrong"),
    [
        (1.5, r"must be a number in \[0, 1\), got 1.5"),
        (-0.1, r"must be a number in \[0, 1\), got -0.1"),
        ("0.1", r"takes a number \(float\), got '0.1'"),  # the block's annotation
    ],
)
def test_transformer_dropout_rate_out_of_range_is_refused_when_the_config_resolves(rate, wrong):
    config = ModelConfig("transformer", NUM_CLASSES, MNIST1D, options={"dropout_rate": rate})
    message = rf"^model 'transformer': option dropout_rate {wrong}$"
    with pytest.raises(ValueError, match=message):
        config.resolved()  # as a bench plans, before any model is built


@pytest.mark.parametrize(("name", "shape"), [("mlp", MNIST1D), ("logreg", DIGITS)])
def test_a_pool_is_refused_where_the_input_is_a_vector_and_it_would_change_nothing(name, shape):
    config = ModelConfig(name, NUM_CLASSES, shape, options={"pool": "max"})
    message = (
        rf"^model '{name}': option pool 'max' would change nothing: the model views its input "
        r"as a vector, which has no axes to pool \(pool reduces a sequence's or an image's\); "
        r"leave it out$"
    )
    with pytest.raises(ValueError, match=message):
        config.resolved()
    resolved = config.replace(options={}).resolved()  # the default, which resolved configs hold
    assert dict(resolved.options)["pool"] == "mean" and resolved.resolved() == resolved
    sequence = ModelConfig("cnn1d", NUM_CLASSES, MNIST1D, options={"pool": "max"}).resolved()
    assert dict(sequence.options)["pool"] == "max"  # (40,) viewed as a sequence: pooled


@pytest.mark.parametrize("name", ["mlp", "choicenet", "moenet"])
@pytest.mark.parametrize("option", ["kernel_size", "stride"])
def test_vector_models_refuse_convolution_options_that_would_change_nothing(name, option):
    config = ModelConfig(name, NUM_CLASSES, MNIST1D, options={option: 5})
    with pytest.raises(ValueError, match=rf"model '{name}' has no option\(s\) \['{option}'\]"):
        config.resolved()


PARAM_DTYPE_MODELS = [name for name in TINY if "param_dtype" in model_spec(name).accepted_options()]


def test_every_zoo_model_takes_the_dtype_options():
    assert set(PARAM_DTYPE_MODELS) == set(TINY)  # logreg, a head alone, too
    for name in PARAM_DTYPE_MODELS:
        assert "dtype" in model_spec(name).accepted_options(), name


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_a_zoo_model_computing_in_bfloat16_gives_logits_of_its_params_dtype(name):
    """The head of ``logreg`` (a head alone) computes in its ``dtype``, yet its logits are
    float32 with float32 params, as the loss expects and the other zoo models give: what
    the last features (logreg's: the float32 input) and the head's params promote to."""
    x = jax.random.normal(jax.random.key(1), (2, *DIGITS))
    logits = {}
    for dtype, param_dtype in ((None, "float32"), ("bfloat16", "float32"), ("bfloat16",) * 2):
        options = {"dtype": dtype, "param_dtype": param_dtype}
        model = build_model(ModelConfig(name, NUM_CLASSES, DIGITS, **TINY[name], options=options))
        logits[dtype, param_dtype] = model.apply(model.init(jax.random.key(0), x), x)
    assert {key: str(value.dtype) for key, value in logits.items()} == {
        (None, "float32"): "float32",
        ("bfloat16", "float32"): "float32",
        ("bfloat16", "bfloat16"): "float32" if name == "logreg" else "bfloat16",
    }
    computed, exact = logits["bfloat16", "float32"], logits[None, "float32"]
    assert not np.array_equal(computed, exact)  # computed in bfloat16, rounded
    np.testing.assert_allclose(computed, exact, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("name", PARAM_DTYPE_MODELS)
def test_every_param_is_stored_in_the_param_dtype_option(name):
    tiny, shape = TINY[name], DIGITS if name in IMAGE_ONLY else MNIST1D
    options = {**tiny.get("options", {}), "param_dtype": "bfloat16"}
    config = ModelConfig(name, NUM_CLASSES, shape, **{**tiny, "options": options})
    x = jnp.ones((1, *shape))
    params = jax.eval_shape(build_model(config).init, jax.random.key(0), x)["params"]
    assert {path: leaf.dtype for path, leaf in flatten(params).items()} == {
        path: jnp.dtype(jnp.bfloat16) for path in flatten(params)
    }


@pytest.mark.parametrize("option", ["dtype", "param_dtype"])
@pytest.mark.parametrize("value", ["float16x", "int32", 3])
def test_a_bad_dtype_option_is_an_error_at_resolve_naming_it_and_the_dtypes(option, value):
    config = ModelConfig("transformer", NUM_CLASSES, MNIST1D, options={option: value})
    message = rf"model 'transformer': option {option} must be a floating dtype, one of .*'bfloat16'"
    with pytest.raises(ValueError, match=message):
        config.resolved()


def test_the_dtype_options_take_dtype_names_and_none_where_it_is_the_default():
    options = {"dtype": "bfloat16", "param_dtype": "float16"}
    assert ModelConfig("transformer", NUM_CLASSES, MNIST1D, options=options).resolved()
    assert ModelConfig("transformer", NUM_CLASSES, MNIST1D, options={"dtype": None}).resolved()
    with pytest.raises(ValueError, match=r"option param_dtype must be .*, got None"):
        ModelConfig("transformer", NUM_CLASSES, MNIST1D, options={"param_dtype": None}).resolved()


def test_transformer_mlp_features_none_is_four_times_the_width():
    options = {**TINY["transformer"]["options"], "mlp_features": None}
    config = ModelConfig("transformer", NUM_CLASSES, MNIST1D, width=8, depth=1, options=options)
    assert dict(config.resolved().options)["mlp_features"] is None
    params = jax.eval_shape(build_model(config).init, jax.random.key(0), jnp.ones((1, *MNIST1D)))
    assert params["params"]["blocks_0"]["mlp_in"]["kernel"].shape == (8, 32)


def test_transformer_num_heads_none_is_still_refused():
    config = ModelConfig("transformer", NUM_CLASSES, MNIST1D, options={"num_heads": None})
    with pytest.raises(ValueError, match=r"option num_heads must be an int >= 1 .*, got None"):
        config.resolved()


@pytest.mark.parametrize(
    ("name", "input_shape", "options", "match"),
    [
        (
            "transformer",
            MNIST1D,
            {"num_heads": 3},
            r"option num_heads 3 does not divide the width 32",
        ),
        (
            "transformer",
            MNIST1D,
            {"patch_size": 41},
            r"option patch_size 41 is longer than the input",
        ),
        (
            "transformer",
            DIGITS,
            {"patch_size": 65},
            r"option patch_size 65 .* \(64 long for input_shape",
        ),
        ("moenet", MNIST1D, {"top_k": 5}, r"option top_k 5 is more than num_experts 4"),
        ("cnn2d", DIGITS, {"kernel_size": 0}, r"option kernel_size must be an int >= 1 .*got 0"),
        ("resnet", DIGITS, {"kernel_size": 0}, r"option kernel_size must be an int >= 1 .*got 0"),
        ("resnet", MNIST1D, {"stride": 0}, r"option stride must be an int >= 1 .*got 0"),
    ],
)
def test_options_that_cannot_build_are_refused_when_the_config_resolves(
    name, input_shape, options, match
):
    config = ModelConfig(name, NUM_CLASSES, input_shape, options=options)
    with pytest.raises(ValueError, match=rf"model '{name}': {match}"):
        config.resolved()


def test_a_patch_as_long_as_the_sequence_and_top_k_of_every_expert_resolve():
    assert ModelConfig("transformer", NUM_CLASSES, (8,), options={"patch_size": 8}).resolved()
    assert ModelConfig("moenet", NUM_CLASSES, MNIST1D, options={"top_k": 4}).resolved()


def test_the_transformer_takes_a_padding_mask_that_its_blocks_honour():
    config = ModelConfig("transformer", NUM_CLASSES, MNIST1D, **TINY["transformer"])
    model = build_model(config)  # patch_size 8: 5 tokens
    x = jax.random.normal(jax.random.key(0), (2, *MNIST1D))
    variables = jax.jit(model.init)(jax.random.key(1), x)  # op by op, each op compiles
    everything = jnp.ones((2, 5), bool)
    masked_init = functools.partial(model.init, mask=everything)
    masked = jax.eval_shape(masked_init, jax.random.key(1), x)  # shapes alone: nothing runs
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, masked)
    np.testing.assert_allclose(
        model.apply(variables, x, mask=everything), model.apply(variables, x), atol=1e-6
    )
    real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: tokens 3 and 4 padded
    other = x.at[1, 24:].set(50.0)  # new values in example 1's padded tokens
    outs = [px.probe(model, variables, v, "blocks_0/out", mask=real)[1] for v in (x, other)]
    first, second = (found["blocks_0/out"] for found in outs)
    np.testing.assert_allclose(first[1, :3], second[1, :3], atol=1e-5)
    np.testing.assert_allclose(first[0], second[0], atol=1e-5)


def test_a_mask_of_the_input_tokens_where_the_blocks_see_patches_gives_their_shape():
    config = ModelConfig("transformer", NUM_CLASSES, MNIST1D, **TINY["transformer"])
    model = build_model(config)  # patch_size 8: 5 tokens
    x = jnp.ones((2, *MNIST1D))
    message = (
        r"^Frame's mask has shape \(2, 40\), which fits the input's tokens \(2, 40\), but its "
        r"blocks see the tokens of its stem's output \(Patches, \(2, 5, 8\)\): give a mask of "
        r"shape \(2, 5\) \(true: a real token\)\."
    )
    with pytest.raises(ValueError, match=message):
        model.init(jax.random.key(0), x, mask=jnp.ones((2, 40), bool))


def test_the_gru_skips_padded_tokens_wherever_they_are():
    config = ModelConfig("gru", NUM_CLASSES, (6, 2), width=4)
    model, short = build_model(config), build_model(config.replace(input_shape=(4, 2)))
    x = jax.random.normal(jax.random.key(0), (2, 6, 2))
    variables = jax.jit(model.init)(jax.random.key(1), x)  # op by op, each op compiles
    masked_init = functools.partial(model.init, mask=jnp.ones((2, 6), bool))
    masked = jax.eval_shape(masked_init, jax.random.key(1), x)  # shapes alone: nothing runs
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, masked)
    np.testing.assert_array_equal(
        model.apply(variables, x, mask=jnp.ones((2, 6), bool)), model.apply(variables, x)
    )
    real = jnp.array([[0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]], bool)  # padded before, between
    padded = jnp.where(real[..., None], x, 50.0)
    logits = model.apply(variables, padded, mask=real)
    alone = short.apply(variables, jnp.stack([x[0, 2:], x[1, jnp.array([0, 1, 4, 5])]]))
    np.testing.assert_allclose(logits, alone, atol=1e-5)  # as if the padding were not there


def test_a_mask_for_a_model_whose_blocks_take_none_names_them():
    model = build_model(ModelConfig("mlp", NUM_CLASSES, MNIST1D, **TINY["mlp"]))
    x = jnp.ones((2, *MNIST1D))
    with pytest.raises(TypeError, match=r"Frame .* keyword 'mask'.* \(DenseBlock\)"):
        model.init(jax.random.key(0), x, mask=jnp.ones((2, 40), bool))


@pytest.mark.parametrize("pool", ["mean", "max", "last", "flatten"])
def test_a_padding_mask_leaves_padded_tokens_out_of_the_logits(pool):
    options = {**TINY["transformer"]["options"], "pool": pool}
    config = ModelConfig(
        "transformer", NUM_CLASSES, MNIST1D, **{**TINY["transformer"], "options": options}
    )
    model = build_model(config)  # patch_size 8: 5 tokens
    x = jax.random.normal(jax.random.key(0), (2, *MNIST1D))
    variables = model.init(jax.random.key(1), x)
    real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: tokens 3 and 4 padded
    other = x.at[1, 24:].set(50.0)
    logits, other_logits = (model.apply(variables, v, mask=real) for v in (x, other))
    np.testing.assert_allclose(logits, other_logits, atol=1e-5)
    short = model.apply(variables, x, mask=jnp.ones((2, 5), bool))
    np.testing.assert_allclose(short[0], logits[0], atol=1e-5)  # example 0 has no padding


@pytest.mark.parametrize(("name", "viewed"), [("mlp", (24,)), ("resnet", (8, 3))])
def test_a_zoo_model_views_an_input_of_4_axes_as_it_views_that_input_flattened(name, viewed):
    # build_model refused every input of 4 axes ("has 4 axes; the frame takes ..."), with
    # input_kind='vector' too, though the frame views a volume as a vector or a sequence
    x = jax.random.normal(jax.random.key(0), (2, 2, 2, 2, 3))
    volume = build_model(ModelConfig(name, 3, (2, 2, 2, 3), **TINY[name]))
    flat = build_model(ModelConfig(name, 3, viewed, **TINY[name]))
    variables = flat.init(jax.random.key(1), x.reshape(2, *viewed))
    np.testing.assert_allclose(
        volume.apply(variables, x), flat.apply(variables, x.reshape(2, *viewed)), rtol=1e-6
    )
    refused = (
        r"^model 'cnn2d' takes image inputs; input_shape \(2, 2, 2, 3\) \(4 axes\) can only "
        r"be viewed as sequence, vector\.$"
    )
    with pytest.raises(ValueError, match=refused):
        build_model(ModelConfig("cnn2d", 3, (2, 2, 2, 3)))


def test_an_input_of_no_axes_is_told_what_the_frame_takes_volumes_too():
    # It said the frame takes "(features,), (length, channels) or (height, width,
    # channels)", untrue since a volume (4 axes or more) is viewed as a sequence or vector;
    # and it lacked the "model 'mlp': " its sibling errors of build_model begin with.
    with pytest.raises(
        ValueError,
        match=r"^model 'mlp': input_shape \(\) has 0 axes; the frame takes \(features,\), "
        r"\(length, channels\), \(height, width, channels\) or more axes \(a volume, viewed "
        r"as a sequence or a vector\): a scalar example is "
        r"input_shape \(1,\), x\[\.\.\., None\]\.$",
    ):
        build_model(ModelConfig("mlp", 3, ()))


def test_a_volume_s_mask_flattened_is_not_said_to_be_an_image_s():
    # A mask of a volume's tokens, flattened as the volume is, was said "flattened as the image".
    model = build_model(ModelConfig("transformer", 3, (2, 2, 2, 3), **TINY["transformer"]))
    x = jnp.ones((2, 2, 2, 2, 3))
    variables = model.init(jax.random.key(0), x)
    with pytest.raises(
        ValueError,
        match=r"^Frame's mask has shape \(2, 2, 2, 2\) \(flattened as the input: \(2, 8\)\), ",
    ):
        model.apply(variables, x, mask=jnp.ones((2, 2, 2, 2), bool))
