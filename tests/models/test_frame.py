"""The frame: how each input kind is viewed, pooled, and checked (shapes traced abstractly)."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.core import tag_shapes
from phosjax.layers import Sequence, TransformerBlock
from phosjax.layers._common import takes_keyword
from phosjax.models import Frame, ModelConfig, Patches, build_model
from phosjax.models._frame import POOLS, pool_tokens
from phosjax.models._kinds import choose_kind
from phosjax.models._masks import padding_mask
from phosjax.models.graph import graph_model


def _out_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """``{path: shape}`` of the frame's tags for a batch of 2, without running anything."""
    model = build_model(config)
    x = jnp.zeros((2, *config.input_shape))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    shapes = tag_shapes(model, variables, x)
    return {path: s.shape for path, s in shapes.items() if path.endswith(("out", "features"))}


def test_cnn1d_views_a_vector_as_a_one_channel_sequence():
    assert _out_shapes(ModelConfig("cnn1d", 10, (40,))) == {
        "blocks_0/out": (2, 20, 25),
        "blocks_1/out": (2, 10, 25),
        "blocks_2/out": (2, 5, 25),
        "features": (2, 125),
    }


def test_an_image_is_a_sequence_of_pixels_for_sequence_models():
    shapes = _out_shapes(ModelConfig("gru", 10, (8, 8, 1), width=4))
    assert shapes == {"blocks_0/out": (2, 64, 4), "features": (2, 4)}  # pool="last"


@pytest.mark.parametrize(
    ("input_shape", "options", "stage_1"),
    [
        ((40,), {}, (2, 20, 32)),
        ((8, 8, 1), {}, (2, 4, 4, 32)),
        ((8, 8, 1), {"input_kind": "sequence"}, (2, 32, 32)),
    ],
)
def test_resnet_takes_sequences_and_images_and_downsamples_per_stage(input_shape, options, stage_1):
    shapes = _out_shapes(ModelConfig("resnet", 10, input_shape, options=options))
    assert shapes["blocks_1/out"] == stage_1 and shapes["features"] == (2, 32)


def test_a_kind_the_model_cannot_take_is_an_error_when_resolved():
    # resolving (a bench's plan) refuses it, not only building
    with pytest.raises(ValueError, match=r"'cnn2d' takes image inputs; input_shape \(40,\)"):
        ModelConfig("cnn2d", 10, (40,)).resolved()
    with pytest.raises(ValueError, match=r"'cnn2d' .* can only be viewed as vector, sequence\.$"):
        ModelConfig("cnn2d", 10, (40,)).resolved()
    with pytest.raises(
        ValueError, match=r"^model 'mlp' does not take input_kind 'sequence'; it takes vector$"
    ):
        ModelConfig("mlp", 10, (40,), options={"input_kind": "sequence"}).resolved()
    with pytest.raises(
        ValueError, match=r"^model 'resnet' does not take input_kind 'vector'; it takes image, seq"
    ):
        ModelConfig("resnet", 10, (8, 8, 1), options={"input_kind": "vector"}).resolved()
    message = (
        r"^model 'resnet': input_shape \(40,\) \(vector\) cannot be viewed as 'image'; "
        r"it can be viewed as vector, sequence$"
    )
    with pytest.raises(ValueError, match=message):
        ModelConfig("resnet", 10, (40,), options={"input_kind": "image"}).resolved()
    with pytest.raises(ValueError, match=r"input_kind 'pixels' is not one of"):
        ModelConfig("mlp", 10, (40,), options={"input_kind": "pixels"}).resolved()


def test_an_input_kind_option_given_a_list_is_named_in_one_short_line():
    """The message held the whole list, 40 names."""
    config = ModelConfig("mlp", 10, (40,), options={"input_kind": ["image"] * 40})
    with pytest.raises(ValueError) as error:
        config.resolved()
    assert str(error.value) == (
        "model 'mlp': input_kind ('image', 'image', 'image', 'image', 'image', 'image', 'ima… "
        "is not one of ('vector', 'sequence', 'image')"
    )


def test_a_grayscale_image_without_its_channel_axis_is_told_the_image_shape():
    """(28, 28) for cnn2d said only that it can be viewed as a sequence or a vector."""
    hint = r" \(a one-channel image is input_shape \(28, 28, 1\): x\[\.\.\., None\]\)"
    with pytest.raises(ValueError, match=r"viewed as sequence, vector" + hint + r"\.$"):
        ModelConfig("cnn2d", 10, (28, 28)).resolved()
    with pytest.raises(ValueError, match=r"cannot be viewed as 'image'; .*" + hint + "$"):
        ModelConfig("resnet", 10, (28, 28), options={"input_kind": "image"}).resolved()


def test_a_batch_of_the_wrong_shape_is_an_error():
    model = build_model(ModelConfig("logreg", 3, (40,)))
    with pytest.raises(ValueError, match=r"built for examples of shape \(40,\); got .* \(2, 41\)"):
        jax.eval_shape(model.init, jax.random.key(0), jnp.ones((2, 41)))


def test_a_batch_given_as_a_list_is_read_as_an_array_and_no_array_is_named():
    """It raised AttributeError: 'list' object has no attribute 'shape' (a dict too)."""
    model = build_model(ModelConfig("logreg", 3, (2,)))
    variables = model.init(jax.random.key(0), jnp.ones((1, 2)))
    assert model.apply(variables, [[1.0, 2.0]]).shape == (1, 3)
    with pytest.raises(TypeError, match=r"^Frame takes x, a batch array of .* got a dict\b"):
        model.apply(variables, {"x": [[1.0, 2.0]]})
    objects = np.array([[1.0, 2.0]], dtype=object)  # was "got an ndarray", the right shape
    with pytest.raises(TypeError, match=r"got an ndarray of dtype object, no numbers\b"):
        model.apply(variables, objects)


def test_a_complex_batch_is_refused_naming_its_dtype():
    """It gave complex logits (mlp, resnet), or the gru dropped its imaginary part."""
    model = build_model(ModelConfig("logreg", 3, (2,)))
    x = jax.ShapeDtypeStruct((1, 2), jnp.complex64)
    with pytest.raises(TypeError, match=r"^Frame takes real inputs, got x of dtype complex64;"):
        jax.eval_shape(model.init, jax.random.key(0), x)


@pytest.mark.parametrize(
    ("pool", "expected"),
    [("mean", lambda x: x.mean(1)), ("max", lambda x: x.max(1)), ("last", lambda x: x[:, -1])],
)
def test_pooling(pool, expected):
    frame = Frame(3, (5, 2), "sequence", widths=(), depth=0, pool=pool)
    head = {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}
    x = jnp.arange(20.0).reshape(2, 5, 2) % 7
    _, found = px.probe(frame, {"params": {"head": head}}, x, "features")
    np.testing.assert_array_equal(found["features"], expected(x))


def test_dropout_before_the_head_acts_in_training_only():
    """Dropout 0.5 on the pooled features: in training each feature is zeroed or doubled
    (inverted dropout); in inference the logits are the plain head of the features."""
    frame = Frame(2, (4,), "vector", widths=(), depth=0, dropout=0.5)
    head = {"kernel": jnp.eye(4, 2), "bias": jnp.zeros(2)}
    x = jnp.arange(1.0, 9.0).reshape(2, 4)
    variables = {"params": {"head": head}}
    np.testing.assert_array_equal(frame.apply(variables, x), x[:, :2])
    trained = frame.apply(variables, x, train=True, rngs={"dropout": jax.random.key(0)})
    kept = np.asarray(trained) != 0
    assert kept.any() and not kept.all()
    np.testing.assert_array_equal(np.asarray(trained)[kept], 2 * np.asarray(x[:, :2])[kept])


@pytest.mark.parametrize(
    ("input_shape", "supported", "kind"),
    [
        ((40,), ("sequence", "vector"), "vector"),  # the input's own kind first
        ((8, 8, 1), ("sequence", "image"), "image"),
        ((8, 8, 1), ("vector", "sequence"), "vector"),  # else the first listed...
        ((40,), ("image", "sequence"), "sequence"),  # ...that can view the input
    ],
)
def test_choose_kind_prefers_the_inputs_own_kind_then_the_models_order(
    input_shape, supported, kind
):
    assert choose_kind(input_shape, supported, None, "m") == kind


def test_a_frame_in_a_container_is_given_the_mask_only_when_its_blocks_take_it():
    dense = Frame(2, (5, 4), "sequence", (4,), 1, blocks=(nn.Dense(4),))
    attending = Frame(2, (5, 4), "sequence", (4,), 1, blocks=(TransformerBlock(2),))
    x, real = jnp.ones((2, 5, 4)), jnp.arange(5) < jnp.array([[5], [3]])
    layer = Sequence([TransformerBlock(2), dense])
    variables = layer.init(jax.random.key(0), x, mask=real)
    params = variables["params"]
    h = TransformerBlock(2).apply({"params": params["layers_0"]}, x, mask=real)
    expected = dense.apply({"params": params["layers_1"]}, h)
    np.testing.assert_allclose(layer.apply(variables, x, mask=real), expected, atol=1e-6)
    assert takes_keyword(attending, "mask")
    with pytest.raises(TypeError, match=r"Frame was called with the keyword 'mask'"):
        dense.init(jax.random.key(0), x, mask=real)


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("num_classes", 0, r"Frame num_classes must be an int >= 1, got 0"),
        ("dropout", 1.5, r"Frame dropout must be a number in \[0, 1\), got 1.5"),
        ("input_kind", "vectors", r"Frame input_kind must be one of .*'vector'.*, got 'vectors'"),
        # it ran, its convolutions Dense layers
        ("input_kind", "image", r"input_shape \(4,\) \(vector\) cannot be viewed as 'image'"),
    ],
)
def test_a_frame_built_by_hand_checks_its_attributes(attribute, value, message):
    attributes = {"num_classes": 3, "input_kind": "vector", "dropout": 0.0, attribute: value}
    frame = Frame(input_shape=(4,), widths=(5,), depth=1, blocks=(nn.Dense(5),), **attributes)
    with pytest.raises(ValueError, match=message):
        frame.init(jax.random.key(0), jnp.ones((2, 4)))


def test_a_block_that_changes_the_token_count_under_a_padding_mask_is_an_error():
    strided = nn.Conv(2, (2,), strides=2)
    frame = Frame(3, (8, 2), "sequence", (2,), 2, blocks=(TransformerBlock(1), strided))
    x, real = jnp.ones((1, 8, 2)), jnp.arange(8) < jnp.array([[5]])
    message = (
        r"block 'blocks_1' \(Conv\) maps the tokens \(1, 8\) to \(1, 4\), so Frame's padding "
        r"mask \(1, 8\) does not fit the tokens its head pools"
    )
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(frame.init, jax.random.key(0), x, mask=real)
    pairs = real[:, None, :, None] & real[:, None, None, :]  # a per-pair mask: every token pooled
    run = lambda x, mask: frame.apply(frame.init(jax.random.key(0), x, mask=mask), x, mask=mask)
    assert jax.eval_shape(run, x, pairs).shape == (1, 3)  # traced, its checks run: no compile


def test_a_mask_of_the_tokens_before_a_block_that_changes_them_gives_the_shape_after():
    strided = nn.Conv(2, (2,), strides=2)  # no block before it takes the mask
    frame = Frame(3, (8, 2), "sequence", (2,), 2, blocks=(strided, TransformerBlock(1)))
    x, real = jnp.ones((1, 8, 2)), jnp.arange(8) < jnp.array([[5]])
    message = (
        r"^Frame's mask has shape \(1, 8\), which fits the tokens \(1, 8\) of block 'blocks_0' "
        r"\(Conv\), but no block up to it takes the mask, and those after it see the tokens "
        r"of its output \(1, 4, 2\): give a mask of shape \(1, 4\) \(true: a real token\)\."
    )
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(frame.init, jax.random.key(0), x, mask=real)
    real = real[:, ::2]  # a mask of the tokens the TransformerBlock sees
    run = lambda x, mask: frame.apply(frame.init(jax.random.key(0), x, mask=mask), x, mask=mask)
    assert jax.eval_shape(run, x, real).shape == (1, 3)  # traced, its checks run: no compile


def test_a_per_pair_mask_of_the_tokens_before_a_change_of_their_count_gives_the_shape_after():
    """A per-pair mask of the input's tokens reached the attention, whose error named
    neither the stem or block that changed the tokens nor the shape to give."""
    x, real = jnp.ones((1, 8, 2)), jnp.arange(8) < jnp.array([[5]])
    pairs = nn.make_attention_mask(real, real, dtype=bool)  # (1, 1, 8, 8)
    attention = TransformerBlock(1)
    patched = Frame(3, (8, 2), "sequence", (4,), 1, (attention,), stem=Patches(4, 2))
    message = (
        r"^Frame's mask has shape \(1, 1, 8, 8\), which fits the input's tokens \(1, 8\), "
        r"but its blocks see the tokens of its stem's output \(Patches, \(1, 4, 4\)\): give "
        r"a mask of shape \(1, H, 4, 4\) \(true: the pair may attend\)\."
    )
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(patched.init, jax.random.key(0), x, mask=pairs)
    strided = Frame(3, (8, 2), "sequence", (2,), 2, (nn.Conv(2, (2,), 2), attention))
    message = (
        r"^Frame's mask has shape \(1, 1, 8, 8\), which fits the tokens \(1, 8\) of block "
        r"'blocks_0' \(Conv\), but no block up to it takes the mask, and those after it see "
        r"the tokens of its output \(1, 4, 2\): give a mask of shape \(1, H, 4, 4\) \(true: "
        r"the pair may attend\)\."
    )
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(strided.init, jax.random.key(0), x, mask=pairs)
    pairs = pairs[:, :, ::2, ::2]  # a per-pair mask of the tokens the TransformerBlock sees
    run = lambda x, mask: strided.apply(strided.init(jax.random.key(0), x, mask=mask), x, mask=mask)
    assert jax.eval_shape(run, x, pairs).shape == (1, 3)  # traced, its checks run: no compile


def test_an_images_mask_is_flattened_as_the_image_for_a_model_that_sees_pixels():
    model = build_model(ModelConfig("gru", 3, (4, 4, 1), width=4))  # 16 pixel tokens
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 1))
    variables = model.init(jax.random.key(1), x)
    real = jnp.arange(4) < jnp.array([[4], [2]])[..., None]  # (2, 1, 4): ex. 1's columns 2, 3
    pixels = jnp.broadcast_to(real, (2, 4, 4)).reshape(2, 16)
    logits = model.apply(variables, x, mask=real)  # was an error: GRUBlock wants (2, 16)
    np.testing.assert_array_equal(logits, model.apply(variables, x, mask=pixels))
    unmasked = model.apply(variables, x)
    np.testing.assert_allclose(logits[0], unmasked[0], atol=1e-6)  # example 0: no padding
    assert not np.allclose(logits[1], unmasked[1])  # example 1's padding skipped


@pytest.mark.parametrize(
    ("name", "options", "shape", "mask"),
    [
        ("moenet", {}, (8, 3), (2, 8)),
        ("choicenet", {"per_example": True}, (8, 3), (2, 8)),
        ("moenet", {}, (4, 4, 1), (2, 4, 4)),
    ],
)
def test_a_mask_of_tokens_a_vector_view_flattened_away_is_named_by_the_frame(
    name, options, shape, mask
):
    """The blocks failed on it, naming tokens the call never had: MixtureOfExperts' 'mask
    must have the shape of the tokens (2,)', Choice's 'needs a token axis ... got (2, 64)'."""
    model = build_model(ModelConfig(name, 3, shape, width=8, options=options))
    x, flat = jnp.ones((2, *shape)), int(np.prod(shape))
    message = (
        rf"^Frame views its input {re.escape(str(x.shape))} as a vector \(2, {flat}\), which "
        rf"has no tokens for the mask {re.escape(str(mask))} \(of the input's tokens "
        rf"{re.escape(str(x.shape[:-1]))}\) to pad: call it without a mask \(a model that"
    )
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(lambda: model.init(jax.random.key(0), x, mask=jnp.ones(mask, bool)))


def test_a_mask_of_examples_on_a_one_axis_input_is_named_by_the_block_it_does_not_fit():
    """A (B,) mask of a (B, L) input was reshaped to the L tokens the frame views, a
    TypeError 'cannot reshape array of shape (2,) (size 2) into shape (2, 12)'."""
    model = build_model(ModelConfig("gru", 3, (12,), width=4))
    message = r"^GRUBlock mask must have the shape of the tokens \(2, 12\) .* but got \(2,\)\."
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(model.init, jax.random.key(0), jnp.ones((2, 12)), mask=jnp.ones(2, bool))


def test_a_wrong_image_mask_is_named_as_given_with_its_flattened_shape():
    """The error named the flattened mask (2, 16) alone, a shape the call never gave."""
    model = build_model(ModelConfig("transformer", 3, (4, 4, 1), width=4, depth=1))
    message = (
        r"^Frame's mask has shape \(2, 4, 4\) \(flattened as the input: \(2, 16\)\), which "
        r"fits the input's tokens \(2, 16\), but its blocks see the tokens of its stem's "
        r"output \(Patches, \(2, 4, 4\)\): give a mask of shape \(2, 4\)"
    )
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(
            model.init, jax.random.key(0), jnp.ones((2, 4, 4, 1)), mask=jnp.ones((2, 4, 4), bool)
        )


@pytest.mark.parametrize("name", ["gru", "transformer"])
def test_a_zoo_model_refuses_a_float_mask_as_the_layers_do(name):
    """An additive mask (0: real, -inf: not) made the GRU skip the real tokens and the
    pooling average the padded ones, without a word."""
    model = build_model(ModelConfig(name, 3, (8, 2), width=4, depth=1))
    x, real = jnp.ones((2, 8, 2)), jnp.arange(8) < jnp.array([[8], [5]])
    real = real if name == "gru" else real[:, ::4]  # the transformer's 2 patches of 4
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, mask=real))
    with pytest.raises(TypeError, match=r"mask must be booleans \(or integers; nonzero: "):
        jax.eval_shape(lambda v: model.apply(v, x, mask=jnp.where(real, 0.0, -jnp.inf)), variables)


def test_a_jitted_zoo_model_and_its_twin_take_a_mask_given_as_a_list():
    """jax.jit traces a list's items one by one, so reading the mask's shape failed (a
    TracerArrayConversionError) where the unjitted call took the list."""
    from phosjax.models.graph import graph_model

    config = ModelConfig("transformer", 3, (8, 2), width=4, depth=1, options={"patch_size": 1})
    x, real = jnp.ones((1, 8, 2)), [[True] * 5 + [False] * 3]
    model, twin = build_model(config), graph_model(config).clone(returns="head")
    variables = jax.jit(model.init)(jax.random.key(0), x)
    run = lambda v, real: [m.apply(v, x, mask=real) for m in (model, twin)]
    zoo, graph = jax.jit(run)(variables, real)
    expected = jax.jit(model.apply)(variables, x, mask=jnp.array(real))
    np.testing.assert_allclose(zoo, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(graph, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(jax.jit(model.apply)(variables, x), expected, atol=1e-3)


@pytest.mark.parametrize("pairs", [False, True], ids=["padding", "pairs"])
def test_what_padded_input_tokens_hold_reaches_neither_the_stem_nor_the_gradients(pairs):
    """A per-pair mask (Flax's make_attention_mask) too: its padded tokens reached the
    stem as they were, and a NaN there the gradients."""
    frame = Frame(
        num_classes=3,
        input_shape=(5, 4),
        input_kind="sequence",
        widths=(4,),
        depth=1,
        blocks=(TransformerBlock(2),),
        stem=nn.Dense(4),  # takes no mask: the frame zeroes the padded tokens it is given
    )
    x = jax.random.normal(jax.random.key(0), (2, 5, 4))
    real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: 2 padded tokens
    mask = nn.make_attention_mask(real, real, dtype=bool) if pairs else real
    variables = frame.init(jax.random.key(1), x)
    loss = lambda params, x: (frame.apply({"params": params}, x, mask=mask) ** 2).sum()
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    grads = grad(variables["params"], x.at[1, 3].set(jnp.inf).at[1, 4].set(jnp.nan))
    expected = grad(variables["params"], x.at[1, 3:].set(0.0))
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(grads))
    jax.tree.map(np.testing.assert_array_equal, grads, expected)


@pytest.mark.parametrize("pairs", [False, True], ids=["padding", "pairs"])
def test_what_padded_patches_hold_reaches_no_gradient_of_the_transformer(pairs):
    """A per-pair mask of the patches too: Patches gave no input tokens for it, so the
    padded ones reached the stem as they were, and a NaN there the gradients."""
    options = {"patch_size": 2, "num_heads": 2, "mlp_features": 8}
    model = build_model(ModelConfig("transformer", 3, (9,), width=4, depth=1, options=options))
    x = jax.random.normal(jax.random.key(0), (2, 9))
    real = jnp.arange(4) < jnp.array([[4], [2]])  # 4 patches; example 1: 2 padded (tokens 4-7)
    real = nn.make_attention_mask(real, real, dtype=bool) if pairs else real
    variables = jax.jit(model.init)(jax.random.key(1), x)
    loss = lambda params, x: (model.apply({"params": params}, x, mask=real) ** 2).sum()
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    grads = grad(variables["params"], x.at[1, 4].set(jnp.inf).at[1, 5:].set(jnp.nan))
    expected = grad(variables["params"], x.at[1, 4:].set(0.0))  # token 8, dropped, too
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(grads))
    jax.tree.map(np.testing.assert_array_equal, grads, expected)


def test_the_head_computes_in_the_frame_dtype_and_stores_its_params_in_its_param_dtype():
    def head(**dtypes):
        return Frame(3, input_shape=(4,), input_kind="vector", widths=(), depth=0, **dtypes)

    x = jax.random.normal(jax.random.key(0), (2, 4))
    variables = head().init(jax.random.key(1), x)
    logits = head().apply(variables, x)
    assert logits.dtype == jnp.float32  # the default: as before, what x and params promote to
    in_bfloat16 = head(dtype=jnp.bfloat16).apply(variables, x)
    assert in_bfloat16.dtype == jnp.float32  # computed in bfloat16, given as the loss takes it
    assert not np.array_equal(in_bfloat16, logits)
    np.testing.assert_allclose(in_bfloat16, logits, rtol=2e-2, atol=2e-2)
    stored = head(param_dtype=jnp.bfloat16).init(jax.random.key(1), x)["params"]["head"]
    assert {leaf.dtype for leaf in jax.tree.leaves(stored)} == {jnp.dtype(jnp.bfloat16)}


class _Strided(nn.Module):
    """A stem that halves the token count: ``(batch, 8, C)`` to ``(batch, 4, 4)``."""

    @nn.compact
    def __call__(self, x):
        return nn.Conv(4, (2,), 2)(x)


class _StridedSaysIts(_Strided):
    def input_mask(self, mask, x):  # each of its tokens is made of two input tokens
        return jnp.repeat(jnp.asarray(mask, jnp.float32), 2, axis=1)


class _StridedTakesAsIs(_Strided):
    def input_mask(self, mask, x):
        return None


def test_a_stem_changing_the_token_count_with_no_input_mask_is_an_error_under_a_mask():
    """Such a stem got the padded input tokens as they were: what they held (a NaN)
    reached the real tokens, without a word."""

    def frame(stem):
        blocks = (TransformerBlock(2),)
        return Frame(3, (8, 2), "sequence", widths=(4,), depth=1, blocks=blocks, stem=stem)

    x = jax.random.normal(jax.random.key(0), (2, 8, 2))
    real = jnp.array([[True] * 4, [True, True, False, False]])  # the stem's 4 tokens
    variables = frame(_Strided()).init(jax.random.key(1), x)
    message = (
        r"^Frame's stem \(_Strided\) maps the tokens \(2, 8\) to \(2, 4\), and the mask "
        r"\(2, 4\) pads some of its tokens, but the frame cannot tell which input tokens make "
        r"them up, so what those hold \(an infinity, a NaN\) would reach the real tokens: "
        r"give the stem an input_mask\(mask, x\) method that returns them as weights of "
        r"shape \(2, 8\) \(1: a real token, as Patches does\), or None to take the input as "
        r"it is\."
    )
    with pytest.raises(ValueError, match=message):
        frame(_Strided()).apply(variables, x, mask=real)
    pairs = nn.make_attention_mask(real, real, dtype=bool)
    with pytest.raises(ValueError, match=r"the mask \(2, 1, 4, 4\) pads some of its tokens"):
        frame(_Strided()).apply(variables, x, mask=pairs)
    held = x.at[1, 4:].set(jnp.nan)  # example 1's padded input tokens
    said = frame(_StridedSaysIts()).apply(variables, held, mask=real)
    zeroed = frame(_StridedSaysIts()).apply(variables, x.at[1, 4:].set(0.0), mask=real)
    np.testing.assert_array_equal(said, zeroed)
    as_is = frame(_StridedTakesAsIs()).apply(variables, held, mask=real)  # its NaN tokens:
    np.testing.assert_array_equal(as_is, said)  # padded ones, which the block zeroes


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("masked", [False, True])
def test_pooling_an_empty_batch_gives_an_empty_output(pool, masked):
    # a reshape to (0, -1, C) raised ZeroDivisionError 'integer modulo by zero' (cnn1d's
    # flatten of an empty batch), as the layers' token means did
    h = jnp.ones((0, 3, 2, 4))
    real = jnp.ones((0, 6)) if masked else None
    width = 24 if pool == "flatten" else 4
    assert pool_tokens(h, pool, real).shape == (0, width)
    assert padding_mask(jnp.ones((0, 3, 2), bool), h).shape == (0, 6)


def test_a_frame_built_by_hand_views_an_input_of_4_axes_as_a_vector_or_sequence_not_image():
    make = lambda kind: Frame(2, (2, 2, 2, 3), kind, widths=(4,), depth=1, blocks=(nn.Dense(4),))
    x = jnp.ones((1, 2, 2, 2, 3))
    for kind in ("vector", "sequence"):  # a volume flattened (they ran before kinds were checked)
        assert jax.eval_shape(make(kind).init, jax.random.key(0), x)["params"]
    refused = (
        r"input_shape \(2, 2, 2, 3\) \(4 axes\) cannot be viewed as 'image'; it can be viewed as"
    )
    with pytest.raises(ValueError, match=refused):
        jax.eval_shape(make("image").init, jax.random.key(0), x)


def test_a_frame_built_by_hand_views_a_scalar_example_as_a_vector_only():
    # input_shape=() skipped the kind check: as a sequence it failed in a bare reshape
    # ("cannot reshape array of shape (2,) ... into shape (2, 1, 2)"), as an image later.
    make = lambda kind: Frame(3, (), kind, widths=(4,), depth=1, blocks=(nn.Dense(4),))
    x = jnp.ones((2,))
    assert jax.eval_shape(make("vector").init_with_output, jax.random.key(0), x)[0].shape == (2, 3)
    refused = (
        r"^model 'Frame': input_shape \(\) has 0 axes; .*: a scalar example is input_shape \(1,\)"
    )
    for kind in ("sequence", "image"):
        with pytest.raises(ValueError, match=refused):
            jax.eval_shape(make(kind).init, jax.random.key(0), x)


def test_a_zoo_model_refuses_a_train_flag_that_is_no_bool():
    """apply(..., train="false") trained (dropout on), without a word."""
    model, key = ModelConfig("mlp", 3, (2,), options={"dropout": 0.5}).build(), jax.random.key(0)
    with pytest.raises(TypeError, match=r"^Frame train must be True or False, got 'false'"):
        jax.eval_shape(
            lambda: model.init({"params": key, "dropout": key}, jnp.ones((1, 2)), "false")
        )


@pytest.mark.parametrize("field", ["pool", "input_kind"])
def test_a_frame_s_pool_or_kind_given_as_a_long_list_is_shown_cut(field):
    # The pool was shown whole ("pool (0, 1, 2, ...) is not one of ..."), thousands of
    # characters, while its sibling input_kind was cut.
    fields = {"pool": "mean", "input_kind": "vector", field: list(range(1000))}
    frame = Frame(3, (4,), widths=(4,), depth=1, blocks=(nn.Dense(4),), **fields)
    with pytest.raises(ValueError, match=rf"^Frame {field} must be one of \(.*\), got \(0, 1, 2"):
        jax.eval_shape(frame.init, jax.random.key(0), jnp.ones((2, 4)))
    with pytest.raises(ValueError) as caught:
        jax.eval_shape(frame.init, jax.random.key(0), jnp.ones((2, 4)))
    assert len(str(caught.value)) < 200


def test_an_example_of_padding_alone_pools_to_zeros_with_every_pool():
    """'last' pooled an all-padding example's last token (9.0 here) where the other pools
    give zeros, so what the blocks made of padding reached its logits."""
    h = jnp.array([[[1.0], [3.0], [9.0]], [[4.0], [5.0], [9.0]]])
    real = jnp.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # example 1: padding alone
    pooled = {pool: pool_tokens(h, pool, real).tolist() for pool in POOLS}
    expected = {
        "mean": [[2.0], [0.0]],
        "max": [[3.0], [0.0]],
        "flatten": [[1.0, 3.0, 0.0], [0.0, 0.0, 0.0]],
        "last": [[3.0], [0.0]],
    }
    assert pooled == expected
    blocks = (TransformerBlock(1), nn.Dense(2, bias_init=nn.initializers.ones))  # 1s: padding too
    frame = Frame(3, (4, 2), "sequence", widths=(2,), depth=2, blocks=blocks, pool="last")
    x = jax.random.normal(jax.random.key(0), (2, 4, 2))
    variables = frame.init(jax.random.key(1), x)
    mask = jnp.array([[True, True, False, False], [False] * 4])
    logits = frame.apply(variables, x, mask=mask)
    np.testing.assert_array_equal(logits[1], [0.0, 0.0, 0.0])  # features 0, bias 0


@pytest.mark.parametrize("pool", POOLS)
def test_a_per_pair_mask_leaves_the_padded_tokens_out_of_the_pooling_as_a_padding_mask_does(pool):
    """Flax's make_attention_mask(real, real) pooled every token: example 1's logits were
    those of its 3 real tokens and 2 padded ones (their outputs those of a zero input)."""
    options = {"num_heads": 2, "mlp_features": 8, "patch_size": 4, "pool": pool}
    config = ModelConfig("transformer", 3, (20,), depth=1, width=8, options=options)
    model = build_model(config)
    x = jax.random.normal(jax.random.key(0), (2, 20))
    variables = model.init(jax.random.key(1), x)
    real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: patches 3 and 4 padded
    pairs = nn.make_attention_mask(real, real, dtype=bool)
    np.testing.assert_array_equal(padding_mask(pairs, jnp.ones((2, 5, 8))), real)
    logits = model.apply(variables, x, mask=real)
    np.testing.assert_allclose(model.apply(variables, x, mask=pairs), logits, atol=1e-6)
    twin = graph_model(config).clone(returns="head")
    np.testing.assert_allclose(twin.apply(variables, x, mask=pairs), logits, atol=1e-6)


class _ProjectsToOut(nn.Module):
    """A block whose last layer is a submodule named ``out``, as the frame names the tag of
    each block's output."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(4, name="out")(nn.relu(x))


def test_a_block_with_a_submodule_named_out_is_probed_and_injected():
    # probe and inject raised "Cannot record 'blocks_0/out' in 'intermediates': 'out' is
    # also a submodule of blocks_0, which recorded nothing in 'intermediates' but holds
    # the name"
    frame = Frame(2, (5,), "vector", (4,), 1, blocks=(_ProjectsToOut(),), stem=nn.Dense(4))
    x = jax.random.normal(jax.random.key(1), (3, 5))
    variables = frame.init(jax.random.key(0), x)
    _, found = px.probe(frame, variables, x, "**")
    assert sorted(found) == ["blocks_0/out", "features", "logits", "stem/out"]
    block = _ProjectsToOut().apply({"params": variables["params"]["blocks_0"]}, found["stem/out"])
    np.testing.assert_array_equal(found["blocks_0/out"], block)
    head = variables["params"]["head"]
    injected = px.inject(frame, variables, x, {"blocks_0/out": jnp.ones((3, 4))})
    np.testing.assert_allclose(
        injected, jnp.ones((3, 4)) @ head["kernel"] + head["bias"], rtol=1e-6
    )


class _TagsItsOwnOut(nn.Module):
    """Tags its pre-activation ``out``: the path of the frame's tag of a block's output."""

    @nn.compact
    def __call__(self, x):
        return nn.relu(px.tag(self, "out", nn.Dense(4)(x))) + 1


def test_a_block_that_tags_out_itself_is_an_error_naming_it():
    # probe returned 'blocks_0/out' as two calls (the tag inside, then the block's output),
    # grad_of two gradients, with no word of the clash the graph model refuses.
    frame = Frame(2, (5,), "vector", (4,), 1, blocks=(_TagsItsOwnOut(),), stem=nn.Dense(4))
    x = jax.random.normal(jax.random.key(1), (3, 5))
    variables = frame.init(jax.random.key(0), x)
    with pytest.raises(ValueError) as error:
        px.probe(frame, variables, x, "logits")
    assert str(error.value) == (
        "block 'blocks_0' (_TagsItsOwnOut) tags a value named 'out' itself, at "
        "'blocks_0/out', where the frame tags the block's output, so the two would be read "
        "as two calls of one tag; give that tag another name in _TagsItsOwnOut."
    )
    params = variables["params"]
    h = nn.Dense(4).apply({"params": params["stem"]}, x)
    h = _TagsItsOwnOut().apply({"params": params["blocks_0"]}, h)
    logits = nn.Dense(2).apply({"params": params["head"]}, h)
    np.testing.assert_allclose(frame.apply(variables, x), logits, rtol=1e-6)  # not recorded
