"""Containers pass their call's extra keywords (an attention ``mask``) to their blocks."""

import functools
import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.layers import (
    ActivityL1,
    Choice,
    GatedSkip,
    MixtureOfExperts,
    MultiHeadSelfAttention,
    Repeat,
    Residual,
    ReZero,
    Sequence,
    SqueezeExcite,
    TransformerBlock,
)
from phosjax.layers._common import check_keywords, takes_keyword
from phosjax.models import GRUBlock
from phosjax.models.graph import GraphModel

X = jax.random.normal(jax.random.key(0), (2, 5, 8))
REAL = jnp.arange(5) < jnp.array([[5], [3]])  # example 1 has 2 padded tokens
ZEROED = jnp.where(REAL[..., None], X, 0.0)  # X as a container called with REAL reads it


def one_by_one(stacked: dict, x: jax.Array, mask: jax.Array) -> jax.Array:
    """The Repeat's blocks, each with its own params, applied in turn with ``mask``."""
    for i in range(3):
        params = jax.tree.map(lambda a, i=i: a[i], stacked)
        x = TransformerBlock(2).apply({"params": params}, x, mask=mask)
    return x


@pytest.mark.parametrize("lifted", [False, True])
def test_masked_repeat_equals_the_blocks_one_by_one(lifted):
    block = nn.remat(TransformerBlock, static_argnums=(2,))(2) if lifted else TransformerBlock(2)
    layer = Repeat(block, num_layers=3)
    variables = layer.init(jax.random.key(1), X)
    out = jax.jit(lambda v, x, m: layer.apply(v, x, mask=m))(variables, X, REAL)
    expected = one_by_one(variables["params"]["block"], X, REAL)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert not np.allclose(out, layer.apply(variables, X), atol=1e-3)  # the mask counts


def test_masked_sequence_equals_the_blocks_one_by_one():
    layer = Sequence([TransformerBlock(2), nn.Dense(8), TransformerBlock(2)])  # Dense: no mask
    variables = layer.init(jax.random.key(1), X)
    params = variables["params"]
    expected = TransformerBlock(2).apply({"params": params["layers_0"]}, X, mask=REAL)
    expected = nn.Dense(8).apply({"params": params["layers_1"]}, expected)
    expected = TransformerBlock(2).apply({"params": params["layers_2"]}, expected, mask=REAL)
    np.testing.assert_allclose(layer.apply(variables, X, mask=REAL), expected, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Repeat(TransformerBlock(2), num_layers=3),
        lambda: Sequence([TransformerBlock(2), TransformerBlock(2)]),
        lambda: Residual(Repeat(ReZero(TransformerBlock(2)), num_layers=2)),
        lambda: Choice([TransformerBlock(2), TransformerBlock(2)]),
        # containers inside that hold no block taking the mask are not given it
        lambda: Sequence([Sequence([nn.Dense(8)]), Residual(nn.Dense(8)), TransformerBlock(2)]),
        lambda: Sequence([Choice([nn.Dense(8), ReZero(nn.Dense(8))]), TransformerBlock(2)]),
    ],
)
def test_padded_inputs_do_not_change_real_outputs(make):
    layer = make()
    variables = layer.init(jax.random.key(1), X)
    other = X.at[1, 3:].set(100.0)  # new values in example 1's padded tokens
    apply = jax.jit(jax.vmap(lambda x, m: layer.apply(variables, x[None], mask=m[None])[0]))
    out, out_other = apply(X, REAL), apply(other, REAL)
    np.testing.assert_allclose(out[1, :3], out_other[1, :3], atol=1e-5)
    np.testing.assert_allclose(out[0], out_other[0], atol=1e-5)


@pytest.mark.parametrize("norm", [nn.LayerNorm, nn.RMSNorm, lambda: nn.GroupNorm(2)])
def test_a_pre_norm_stack_gives_the_mask_to_its_attention_not_to_flax_norms(norm):
    layer = Sequence([norm(), TransformerBlock(2)])  # a Flax norm's mask is another thing
    variables = layer.init(jax.random.key(1), X, mask=REAL)
    params = variables["params"]
    expected = norm().apply({"params": params["layers_0"]}, ZEROED)  # GroupNorm: stats of 0s
    expected = TransformerBlock(2).apply({"params": params["layers_1"]}, expected, mask=REAL)
    np.testing.assert_allclose(layer.apply(variables, X, mask=REAL), expected, atol=1e-5)
    with pytest.raises(TypeError, match=r"Sequence .* keyword 'mask', which none of its blocks"):
        Sequence([norm()]).init(jax.random.key(0), X, mask=REAL)


def test_a_keyword_no_block_takes_is_an_error_naming_both():
    message = r"Repeat .* keyword 'maks'.* \(TransformerBlock\).*\. Did you mean 'mask'\?"
    with pytest.raises(TypeError, match=message):
        Repeat(TransformerBlock(2), num_layers=2).init(jax.random.key(0), X, maks=REAL)
    with pytest.raises(TypeError, match=r"Sequence .* keyword 'masks'.*\. Did you mean 'mask'\?"):
        Sequence([nn.Dense(2), Residual(TransformerBlock(2))]).init(
            jax.random.key(0), X, masks=REAL
        )
    with pytest.raises(
        TypeError, match=r"Sequence .* keyword 'maks'.*\(or takes \*\*kwargs\)\.(\n|$)"
    ):
        Sequence([nn.Dense(2)]).init(jax.random.key(0), X, maks=REAL)  # nothing to mean
    # the container's own 'train', misspelt, was not meant (nor is a keyword by itself)
    with pytest.raises(TypeError, match=r"keyword 'trian'.*\. Did you mean 'train'\?(\n|$)"):
        Sequence([nn.Dense(2)]).init(jax.random.key(0), X, trian=True)
    with pytest.raises(TypeError, match=r"keyword 'mask'.*\(or takes \*\*kwargs\)\.$"):
        check_keywords(TransformerBlock(2), nn.Dense(2), {"mask": REAL})


class NeedsMask(nn.Module):
    """A block whose call requires its ``mask``."""

    @nn.compact
    def __call__(self, x, train: bool = False, *, mask):
        return x * mask[..., None]


@pytest.mark.parametrize("make", [lambda: Repeat(NeedsMask(), 2), lambda: Sequence([NeedsMask()])])
def test_a_block_that_requires_the_keyword_gets_it(make):
    out = make().apply({}, X, mask=REAL)
    np.testing.assert_array_equal(out, X * REAL[..., None])
    with pytest.raises(TypeError, match=r"requires the parameter 'mask'.* pass it to its call"):
        make().apply({}, X)


def test_an_empty_container_called_with_a_keyword_says_what_is_wrong():
    with pytest.raises(ValueError, match="Choice needs at least one branch"):
        Choice([]).init(jax.random.key(0), X, mask=REAL)
    with pytest.raises(TypeError, match=r"Sequence .* keyword 'mask'.* \(it has none\)"):
        Sequence([]).init(jax.random.key(0), X, mask=REAL)


def test_a_per_example_choice_gates_on_the_real_tokens_only():
    layer = Choice([nn.Dense(8), nn.Dense(8)], per_example=True)  # token-wise branches
    variables = layer.init(jax.random.key(1), X, mask=REAL)
    kernel = jnp.stack([jnp.ones(8), -jnp.ones(8)], 1)  # the gate starts at zeros: even
    gate = {**variables["params"]["gate"], "kernel": kernel}
    variables = {"params": {**variables["params"], "gate": gate}}
    other = X.at[1, 3:].set(100.0)  # new values in example 1's padded tokens
    out, found = px.probe(layer, variables, X, "weights", mask=REAL)
    out_other, found_other = px.probe(layer, variables, other, "weights", mask=REAL)
    np.testing.assert_allclose(found["weights"], found_other["weights"], atol=1e-6)
    np.testing.assert_allclose(out[1, :3], out_other[1, :3], atol=1e-5)
    np.testing.assert_allclose(out[0], out_other[0], atol=1e-5)
    _, unmasked = px.probe(layer, variables, other, "weights")  # without a mask: all tokens
    assert not np.allclose(unmasked["weights"][1], found["weights"][1], atol=1e-3)
    _, all_real = px.probe(layer, variables, X, "weights", mask=jnp.ones((2, 5), bool))
    _, no_mask = px.probe(layer, variables, X, "weights")
    np.testing.assert_allclose(all_real["weights"], no_mask["weights"], atol=1e-6)


def test_a_per_example_choice_says_when_its_mask_does_not_fit():
    layer = Choice([nn.Dense(8), nn.Dense(8)], per_example=True)
    with pytest.raises(ValueError, match=r"Choice mask must have the shape of the tokens \(2, 5\)"):
        layer.init(jax.random.key(0), X, mask=REAL[:, :4])


def test_a_per_example_choice_takes_a_mask_of_examples_on_vectors():
    """On (B, C) the mask (B,), the input's shape but its features as on (B, L, C), was
    refused as having no token axis, though the branches and MixtureOfExperts take it."""
    layer = Choice([nn.Dense(8), nn.Dense(8)], per_example=True)
    x, real = X[:, 0].at[1].set(jnp.nan), jnp.array([True, False])
    variables = layer.init(jax.random.key(1), x, mask=real)
    gate = {**variables["params"]["gate"], "kernel": jnp.stack([jnp.ones(8), -jnp.ones(8)], 1)}
    variables = {"params": {**variables["params"], "gate": gate}}
    out, found = px.probe(layer, variables, x, "weights", mask=real)
    alone, alone_found = px.probe(layer, variables, x[:1], "weights")
    np.testing.assert_allclose(out[:1], alone, atol=1e-6)
    np.testing.assert_allclose(found["weights"][:1], alone_found["weights"], atol=1e-6)
    assert np.isfinite(out).all() and found["weights"][1].tolist() == [0.5, 0.5]


def test_a_container_reads_a_block_class_signature_once(monkeypatch):
    class Masked(nn.Module):  # a new class: nothing cached about it yet
        @nn.compact
        def __call__(self, x, *, mask=None):
            return x if mask is None else x * mask[..., None]

    layer = Sequence([Masked(), nn.Dense(8)])
    layer.apply(layer.init(jax.random.key(0), X), X, mask=REAL)
    read = []
    signature = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda f, **kw: read.append(f) or signature(f, **kw))
    out = layer.apply(layer.init(jax.random.key(0), X), X, mask=REAL)
    assert out.shape == (2, 5, 8)
    assert Masked.__call__ not in read and nn.Dense.__call__ not in read


@pytest.mark.parametrize("padding", [jnp.inf, jnp.nan])
def test_what_padded_tokens_hold_does_not_reach_a_masked_mean(padding):
    other = X.at[1, 3:].set(padding)  # example 1's padded tokens hold an infinity, a NaN
    choice = Choice([nn.Dense(8), nn.Dense(8)], per_example=True)
    variables = choice.init(jax.random.key(1), X, mask=REAL)
    _, found = px.probe(choice, variables, X, "weights", mask=REAL)
    _, found_other = px.probe(choice, variables, other, "weights", mask=REAL)
    np.testing.assert_array_equal(found_other["weights"], found["weights"])
    moe = MixtureOfExperts(num_experts=3)
    variables = moe.init(jax.random.key(1), X)
    _, found = px.probe(moe, variables, X.at[1, 3:].set(0.0), "expert_load", mask=REAL)
    _, found_other = px.probe(moe, variables, other, "expert_load", mask=REAL)
    np.testing.assert_allclose(found_other["expert_load"], found["expert_load"], atol=1e-6)


def real_loss_grads(layer: nn.Module, mask: jax.Array, *inputs: jax.Array) -> list:
    """For each of the ``inputs``, the gradients, as to ``layer``'s params and input, of
    the squared outputs of its real tokens (those of ``REAL``) when called with ``mask``."""
    variables = layer.init(jax.random.key(1), X, mask=mask)

    def loss(params: dict, x: jax.Array) -> jax.Array:
        y = layer.apply({**variables, "params": params}, x, mask=mask)
        return (jnp.where(REAL[..., None], y, 0) ** 2).sum()

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return [grad(variables["params"], x) for x in inputs]


@pytest.mark.parametrize(
    ("make", "mask"),
    [
        (lambda: MultiHeadSelfAttention(2), REAL),
        (
            lambda: MultiHeadSelfAttention(2, causal=True),
            nn.make_attention_mask(REAL, REAL, dtype=bool),
        ),
        (lambda: TransformerBlock(2), REAL),
        (lambda: MixtureOfExperts(num_experts=3, top_k=2), REAL),
        (lambda: Choice([nn.Dense(8), nn.Dense(8)], per_example=True), REAL),
        (lambda: GRUBlock(4), REAL),
        (lambda: SqueezeExcite(2), REAL),
        # containers: a block that takes no mask, a gate, a projected residual
        (lambda: Sequence([nn.Dense(8), TransformerBlock(2)]), REAL),
        (lambda: GatedSkip(TransformerBlock(2)), REAL),
        (lambda: Residual(Sequence([TransformerBlock(2), nn.Dense(4)])), REAL),
        (lambda: Sequence([nn.Dense(8), TransformerBlock(2)]), REAL[:, None, None, :]),
        (
            lambda: Sequence([nn.Dense(8), TransformerBlock(2)]),
            nn.make_attention_mask(REAL, REAL, dtype=bool),
        ),
        (lambda: GraphModel({"dense": nn.Dense(8), "block": TransformerBlock(2)}, "block"), REAL),
    ],
    ids=[
        *("attention", "attention_pairs", "transformer", "moe", "choice", "gru", "squeeze"),
        *("sequence", "gated_skip", "residual", "sequence_keys", "sequence_pairs", "graph"),
    ],
)
def test_what_padded_tokens_hold_reaches_no_gradient(make, mask):
    held = X.at[1, 3].set(jnp.inf).at[1, 4].set(jnp.nan)  # example 1's padded tokens
    grads, expected = real_loss_grads(make(), mask, held, X.at[1, 3:].set(0.0))
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(grads))
    jax.tree.map(np.testing.assert_array_equal, grads, expected)


def test_a_masked_squeeze_excite_gates_each_example_on_its_real_tokens_alone():
    layer = SqueezeExcite(2)
    variables = layer.init(jax.random.key(1), X)
    out = layer.apply(variables, X, mask=REAL)
    np.testing.assert_allclose(out[1, :3], layer.apply(variables, X[1:, :3])[0], rtol=1e-6)
    np.testing.assert_allclose(out[0], layer.apply(variables, X[:1])[0], rtol=1e-6)
    np.testing.assert_array_equal(out[1, 3:], 0.0)  # the padding, read as zeros


def test_an_activity_penalty_under_a_mask_averages_the_real_tokens_alone():
    def penalty(x: jax.Array) -> jax.Array:
        _, state = ActivityL1().apply({}, x, mask=REAL, mutable=["aux_loss"])
        return state["aux_loss"]["activity_l1"][0]

    held = X.at[1, 3].set(jnp.inf).at[1, 4].set(jnp.nan)  # example 1's padded tokens
    expected = 1e-3 * (jnp.abs(X[0]).mean() + jnp.abs(X[1, :3]).mean()) / 2  # default strength
    np.testing.assert_allclose(penalty(held), expected, rtol=1e-6)
    grad = jax.grad(penalty)(held)
    np.testing.assert_array_equal(grad, jax.grad(penalty)(X.at[1, 3:].set(0.0)))
    assert np.isfinite(grad).all() and not grad[1, 3:].any()


def test_an_activity_penalty_leaves_an_example_of_padding_alone_out_of_its_mean():
    """It counted as an example of activity 0: a batch padded with one such example had
    its penalty cut by a third (0.00233 for 0.0035)."""
    x = jnp.array([[[1.0], [-3.0]], [[jnp.nan], [5.0]], [[jnp.inf], [9.0]]])
    real = jnp.array([[True, True], [False, True], [False, False]])  # example 2: padding
    _, state = ActivityL1().apply({}, x, mask=real, mutable=True)
    assert state["intermediates"]["activity"][0].tolist() == [2.0, 5.0, 0.0]
    penalty = state["aux_loss"]["activity_l1"][0]
    np.testing.assert_allclose(penalty, 1e-3 * (2.0 + 5.0) / 2, rtol=1e-6)  # its default strength
    _, none_real = ActivityL1().apply({}, x, mask=jnp.zeros((3, 2), bool), mutable=True)
    assert float(none_real["aux_loss"]["activity_l1"][0]) == 0.0


def test_an_activity_penalty_under_a_mask_of_real_examples_alone_is_that_of_no_mask():
    """Leaving out the examples of padding alone scaled each example's penalty by 3 and
    back by 3: 1.0000002e-4 where no mask gives 1.0000000e-4."""
    x = jnp.full((3, 2, 1), 0.1)
    _, masked = ActivityL1().apply({}, x, mask=jnp.ones((3, 2), bool), mutable=True)
    _, unmasked = ActivityL1().apply({}, x, mutable=True)
    penalty = masked["aux_loss"]["activity_l1"][0]
    assert penalty.tolist() == unmasked["aux_loss"]["activity_l1"][0].tolist()


def test_a_squeeze_excite_of_sequences_of_no_token_gets_finite_gradients(key):
    """Its channel means over no token were NaN, and so were its params' gradients."""
    layer, x = SqueezeExcite(2), jnp.ones((2, 0, 4))
    params = layer.init(key, x)["params"]
    grads = jax.grad(lambda p: layer.apply({"params": p}, x).sum())(params)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("shape", [(2, 0, 3), (0,)])
def test_an_activity_penalty_of_examples_of_no_element_is_zero_not_nan(shape):
    """A sequence of no token made the aux loss NaN (a mean over nothing), so the loss too."""
    _, state = ActivityL1().apply({}, jnp.ones(shape), mutable=["aux_loss", "intermediates"])
    assert float(state["aux_loss"]["activity_l1"][0]) == 0.0
    assert state["intermediates"]["activity"][0].shape == shape[:1] * (len(shape) > 1)


@pytest.mark.parametrize(
    "layer",
    [
        ActivityL1(),
        SqueezeExcite(2),
        MixtureOfExperts(num_experts=3, top_k=2),
        Choice([nn.Dense(8), nn.Dense(8)], per_example=True),
    ],
    ids=["activity", "squeeze", "moe", "choice"],
)
def test_a_masked_layer_after_attention_reads_a_per_pair_mask_as_attention_does(layer):
    model = Sequence([TransformerBlock(2), layer])  # the container passes the mask to both
    pairs = nn.make_attention_mask(REAL, REAL, dtype=bool)  # (2, 1, 5, 5)
    variables = model.init(jax.random.key(1), X, mask=REAL)
    out, found = model.apply(variables, X, mask=pairs, mutable=True)
    expected, found_real = model.apply(variables, X, mask=REAL, mutable=True)
    np.testing.assert_allclose(out[REAL], expected[REAL], rtol=1e-6)
    tags, tags_real = (f["intermediates"]["layers_1"] for f in (found, found_real))
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6), tags, tags_real)
    with pytest.raises(ValueError, match=r"or per attention pair \(2, H, 5, 5\), axes of size 1 "):
        layer.init(jax.random.key(1), X, mask=jnp.ones((2, 1, 4, 5)))


FLAX_ATTENTION = [
    lambda: nn.MultiHeadAttention(2),
    lambda: nn.MultiHeadDotProductAttention(2),
]


@pytest.mark.parametrize("attention", FLAX_ATTENTION)
@pytest.mark.parametrize(
    "contain",
    [
        lambda block: Sequence([block, nn.Dense(8)]),
        lambda block: Residual(block),
        lambda block: GraphModel({"attention": block}, returns="attention"),
    ],
)
def test_flax_attention_in_a_container_reads_a_padding_mask_as_the_keys(attention, contain):
    layer = contain(attention())
    variables = layer.init(jax.random.key(1), X, mask=REAL)
    other = X.at[1, 3:].set(100.0)  # new values in example 1's padded tokens
    out, out_other = layer.apply(variables, X, mask=REAL), layer.apply(variables, other, mask=REAL)
    np.testing.assert_allclose(out[1, :3], out_other[1, :3], atol=1e-5)
    np.testing.assert_allclose(out[0], out_other[0], atol=1e-5)
    pairs = nn.make_attention_mask(jnp.ones((2, 5), bool), REAL, dtype=bool)  # the keys
    np.testing.assert_array_equal(layer.apply(variables, X, mask=pairs)[REAL], out[REAL])


class PaddedAttention(nn.MultiHeadDotProductAttention):
    """A user's Flax attention whose own call reads a padding mask ``(B, L)``."""

    def __call__(self, x, *, mask=None):
        pairs = None if mask is None else nn.make_attention_mask(mask, mask)
        return super().__call__(x, mask=pairs)


def test_a_subclass_overriding_flax_attentions_call_gets_the_mask_as_given():
    layer = Sequence([PaddedAttention(2), nn.Dense(8)])
    variables = layer.init(jax.random.key(1), X, mask=REAL)
    params = variables["params"]
    expected = PaddedAttention(2).apply({"params": params["layers_0"]}, ZEROED, mask=REAL)
    expected = nn.Dense(8).apply({"params": params["layers_1"]}, expected)
    out = layer.apply(variables, X, mask=REAL)
    assert out.shape == X.shape  # not (2, 1, 2, 5, 8): a (B, 1, 1, L) mask made into pairs
    np.testing.assert_allclose(out, expected, atol=1e-5)


class ScaledNorm(nn.LayerNorm):
    """A user's LayerNorm: its call, and so its ``mask``, is Flax's."""


def test_a_subclass_of_a_flax_norm_is_not_given_the_mask_either():
    layer = Sequence([ScaledNorm(), TransformerBlock(2)])
    variables = layer.init(jax.random.key(1), X, mask=REAL)
    params = variables["params"]
    expected = ScaledNorm().apply({"params": params["layers_0"]}, X)
    expected = TransformerBlock(2).apply({"params": params["layers_1"]}, expected, mask=REAL)
    np.testing.assert_allclose(layer.apply(variables, X, mask=REAL), expected, atol=1e-5)


def test_a_mask_only_a_flax_norm_names_is_an_error_saying_why_the_norm_does_not_get_it():
    layer = Residual(nn.LayerNorm())  # LayerNorm's call names a mask, but another one
    message = (
        r"Residual was called with the keyword 'mask', which none of its blocks takes "
        r"\(LayerNorm\); .*\(or takes \*\*kwargs\); LayerNorm's own mask selects the elements "
        r"its statistics count, of the input's full shape, not the real tokens: call it "
        r"yourself to give one\."
    )
    with pytest.raises(TypeError, match=message):
        layer.init(jax.random.key(0), X, mask=REAL)


@pytest.mark.parametrize(
    ("sequential", "why"),
    [
        (
            nn.Sequential([nn.Dense(8), nn.relu]),
            r"Sequential passes its keywords to its first layer alone, Dense\.(\n|$)",
        ),
        (
            nn.Sequential([nn.Sequential([nn.LayerNorm()])]),
            r"Sequential passes its keywords to its first layer alone, LayerNorm; LayerNorm's own "
            r"mask selects the elements its statistics count",
        ),
    ],
)
def test_a_mask_a_flax_sequential_refuses_is_an_error_naming_the_first_layer(sequential, why):
    """The error said to pass it only to a block whose call takes **kwargs, as Sequential's
    does, without saying why Sequential did not take it."""
    message = r"none of its blocks takes \(Sequential\); .*\(or takes \*\*kwargs\); " + why
    with pytest.raises(TypeError, match=message):
        Residual(sequential).init(jax.random.key(0), X, mask=REAL)


FIRST_LAYERS = {
    "dense": (lambda: nn.Dense(8), {}),
    "layer_norm": (lambda: nn.LayerNorm(), {}),  # its mask is another thing
    "attention": (lambda: nn.MultiHeadDotProductAttention(2), {"mask": REAL[:, None, None, :]}),
}


@pytest.mark.parametrize("first", sorted(FIRST_LAYERS))
def test_flax_sequential_in_a_container_gets_the_mask_when_its_first_layer_takes_it(first):
    make, keywords = FIRST_LAYERS[first]
    inner = nn.Sequential([make(), nn.relu])  # Flax passes keywords to the first alone
    layer = Sequence([inner, TransformerBlock(2)])
    variables = layer.init(jax.random.key(1), X, mask=REAL)
    params = variables["params"]
    expected = inner.apply({"params": params["layers_0"]}, X, **keywords)
    expected = TransformerBlock(2).apply({"params": params["layers_1"]}, expected, mask=REAL)
    np.testing.assert_allclose(layer.apply(variables, X, mask=REAL), expected, atol=1e-5)


class MaskedSequential(nn.Sequential):
    """A user's Sequential whose own call masks every layer's output."""

    def __call__(self, x, *, mask=None):
        for layer in self.layers:
            x = layer(x) * mask[..., None]
        return x


def test_a_subclass_overriding_flax_sequentials_call_gets_the_mask_as_its_call_says():
    inner = MaskedSequential([nn.Dense(8)])  # its first layer takes no mask, its call does
    assert takes_keyword(inner, "mask")
    layer = Sequence([inner, TransformerBlock(2)])
    variables = layer.init(jax.random.key(1), X, mask=REAL)
    params = variables["params"]
    expected = inner.apply({"params": params["layers_0"]}, X, mask=REAL)
    expected = TransformerBlock(2).apply({"params": params["layers_1"]}, expected, mask=REAL)
    np.testing.assert_allclose(layer.apply(variables, X, mask=REAL), expected, atol=1e-5)
