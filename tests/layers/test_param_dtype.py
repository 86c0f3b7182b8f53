"""``param_dtype``: every public layer with parameters stores them in it, as Flax's do."""

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax.core as px
from phosjax import layers as L
from phosjax.layers._common import CheckedFields


class _Widen(nn.Module):
    """A parameter-free block that doubles the width (so `Residual` projects)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate([x, x], axis=-1)


Make = Callable[..., nn.Module]

# One example per public layer with parameters (and each way it creates them), built
# with ``**kwargs`` (``param_dtype``). Blocks given to containers are parameter-free,
# so every parameter is the layer's own.
EXAMPLES: dict[str, tuple[Make, tuple[int, ...]]] = {
    "choice": (lambda **kw: L.Choice([L.ActivityL1(), L.DropPath(0.5)], **kw), (4, 6)),
    "choice_per_example": (
        lambda **kw: L.Choice([L.ActivityL1(), L.DropPath(0.5)], per_example=True, **kw),
        (4, 3, 6),
    ),
    "gated_skip": (lambda **kw: L.GatedSkip(L.ActivityL1(), **kw), (4, 5)),
    "residual_projected": (lambda **kw: L.Residual(_Widen(), **kw), (4, 5)),
    "rezero": (lambda **kw: L.ReZero(L.ActivityL1(), **kw), (4, 5)),
    "self_attention": (lambda **kw: L.MultiHeadSelfAttention(2, causal=True, **kw), (2, 5, 4)),
    "transformer": (lambda **kw: L.TransformerBlock(num_heads=2, **kw), (2, 5, 4)),
    "glu": (lambda **kw: L.GLU(3, **kw), (4, 5)),
    "swiglu": (lambda **kw: L.SwiGLU(hidden_features=6, **kw), (4, 5)),
    "squeeze_excite": (lambda **kw: L.SqueezeExcite(**kw), (2, 3, 3, 8)),
    "layer_scale": (lambda **kw: L.LayerScale(0.1, **kw), (4, 5)),
    "fourier_features_trainable": (lambda **kw: L.FourierFeatures(3, True, **kw), (4, 5)),
    "hyper_dense": (lambda **kw: L.HyperDense(3, **kw), (4, 5)),
    "lipschitz_dense": (lambda **kw: L.LipschitzDense(3, **kw), (4, 5)),
    "orthogonal_dense": (lambda **kw: L.OrthogonalDense(3, **kw), (4, 5)),
    "orthogonal_dense_wide": (lambda **kw: L.OrthogonalDense(7, use_bias=False, **kw), (4, 5)),
    "moe": (lambda **kw: L.MixtureOfExperts(num_experts=3, top_k=2, **kw), (2, 5, 6)),
}

# The public layers that create no parameters of their own, each with an example whose
# blocks are parameter-free too. Any other public layer must take ``param_dtype``.
PARAMETER_FREE: dict[str, Make] = {
    "ActivityL1": lambda: L.ActivityL1(),
    "DropPath": lambda: L.DropPath(0.5),
    "Repeat": lambda: L.Repeat(L.ActivityL1(), num_layers=2),
    "Sequence": lambda: L.Sequence([L.DropPath(0.5), L.ActivityL1()]),
}

by_example = pytest.mark.parametrize("name", sorted(EXAMPLES))


def _x(shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(jax.random.key(1), shape, jnp.float32)


def _dtypes(tree: Any) -> set[Any]:
    return {leaf.dtype for leaf in jax.tree.leaves(tree)}


def test_every_public_layer_either_has_an_example_or_is_parameter_free():
    with_params = {type(make()).__name__ for make, _ in EXAMPLES.values()}
    assert not with_params & set(PARAMETER_FREE)
    assert with_params | set(PARAMETER_FREE) == set(L.__all__)


@pytest.mark.parametrize("name", sorted(PARAMETER_FREE))
def test_parameter_free_layers_create_no_parameters(name):
    layer = PARAMETER_FREE[name]()
    variables = jax.eval_shape(layer.init, jax.random.key(0), _x((4, 5)))  # traced, not run
    assert not jax.tree.leaves(variables.get("params", {}))


@pytest.mark.parametrize("name", sorted(set(L.__all__) - set(PARAMETER_FREE)))
def test_every_public_layer_with_parameters_takes_param_dtype(name):
    fields = getattr(L, name).__dataclass_fields__
    assert "param_dtype" in fields, f"{name} creates parameters but takes no param_dtype"
    assert fields["param_dtype"].default is jnp.float32  # Flax's default


@by_example
def test_params_are_float32_by_default_and_stored_in_param_dtype(name):
    make, shape = EXAMPLES[name]
    x = _x(shape)
    default, half = make(), make(param_dtype=jnp.bfloat16)
    # the default's dtypes and shapes alone are read: traced, not run (nothing compiles)
    full_vars = jax.eval_shape(default.init, jax.random.key(0), x)

    @jax.jit  # one program: Flax's init and apply run eagerly compile op by op
    def run(x):
        half_vars = half.init(jax.random.key(0), x)
        upcast = jax.tree.map(lambda leaf: leaf.astype(jnp.float32), half_vars)
        return half_vars, half.apply(half_vars, x), default.apply(upcast, x)

    half_vars, out, upcast_out = run(x)
    assert jax.tree.leaves(full_vars["params"])
    assert _dtypes(full_vars["params"]) == {jnp.dtype(jnp.float32)}
    assert _dtypes(half_vars["params"]) == {jnp.dtype(jnp.bfloat16)}
    shapes = lambda tree: jax.tree.map(lambda leaf: leaf.shape, tree)
    assert shapes(half_vars["params"]) == shapes(full_vars["params"])

    # The computation dtype is unchanged (the input's here): the output keeps float32, and
    # equals the default layer's applied to the bfloat16 parameters cast up.
    assert jax.eval_shape(default.apply, full_vars, x).dtype == out.dtype == jnp.float32
    np.testing.assert_allclose(out, upcast_out, rtol=1e-5, atol=1e-6)


@by_example
def test_bfloat16_params_with_a_bfloat16_input_give_a_bfloat16_output(name):
    make, shape = EXAMPLES[name]
    layer, x = make(param_dtype=jnp.bfloat16), _x(shape).astype(jnp.bfloat16)
    out = jax.jit(lambda x: layer.apply(layer.init(jax.random.key(0), x), x))(x)
    assert out.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(out, np.float32)).all()


def test_fixed_fourier_frequencies_are_stored_in_param_dtype_too():
    x = _x((4, 5))
    for param_dtype in (jnp.float32, jnp.bfloat16):
        variables = L.FourierFeatures(3, param_dtype=param_dtype).init(jax.random.key(0), x)
        assert "params" not in variables
        assert variables["constants"]["frequencies"].dtype == param_dtype
    assert L.FourierFeatures(3).init(jax.random.key(0), x)["constants"]["frequencies"].dtype == (
        jnp.float32
    )


# Containers with a user block of parameters: ``(make, the block's output width)``.
CONTAINERS: dict[str, tuple[Make, int]] = {
    "choice": (lambda block, **kw: L.Choice([block], **kw), 5),
    "choice_per_example": (lambda block, **kw: L.Choice([block], per_example=True, **kw), 5),
    "gated_skip": (L.GatedSkip, 5),
    "residual_projected": (L.Residual, 7),
    "rezero": (L.ReZero, 5),
}


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_containers_leave_the_dtype_of_their_blocks_parameters_alone(name):
    contain, width = CONTAINERS[name]
    layer = contain(nn.Dense(width), param_dtype=jnp.bfloat16)
    params = jax.eval_shape(layer.init, jax.random.key(0), _x((4, 5)))["params"]  # dtypes alone
    blocks = {key: value for key, value in params.items() if key.startswith(("block", "branch"))}
    own = {key: value for key, value in params.items() if key not in blocks}
    assert blocks and own
    assert _dtypes(blocks) == {jnp.dtype(jnp.float32)}
    assert _dtypes(own) == {jnp.dtype(jnp.bfloat16)}


def _with_dtypes() -> list[type]:
    """The public layer and zoo block classes that take ``dtype`` or ``param_dtype``."""
    from phosjax import models

    classes = [getattr(module, name) for module in (L, models) for name in module.__all__]
    return [
        cls
        for cls in classes
        if isinstance(cls, type)
        and issubclass(cls, nn.Module)
        and {"dtype", "param_dtype"} & {f.name for f in dataclasses.fields(cls)}
    ]


def test_every_layer_with_dtypes_checks_them_when_made():
    unchecked = [cls.__name__ for cls in _with_dtypes() if not issubclass(cls, CheckedFields)]
    assert len(_with_dtypes()) > 20 and not unchecked


@pytest.mark.parametrize(
    ("make", "field", "value"),
    [
        (lambda **kw: L.LayerScale(**kw), "param_dtype", jnp.int32),
        (lambda **kw: L.TransformerBlock(2, **kw), "dtype", "int8"),
        (lambda **kw: L.MultiHeadSelfAttention(2, **kw), "dtype", "bfloat"),
        (lambda **kw: L.Residual(nn.Dense(2), **kw), "param_dtype", np.int64),
    ],
)
def test_a_non_floating_dtype_is_refused_when_the_layer_is_made(make, field, value):
    """An integer param_dtype silently rounded LayerScale's scale (1e-4) to 0, an integer
    dtype failed in Flax ('Dtype must be inexact'), a misspelled one in numpy ('data type
    not understood'), none naming the layer or the attribute."""
    name = type(make()).__name__
    shown = repr(value if isinstance(value, str) else np.dtype(value).name)
    message = rf"^{name} {field} must be a floating dtype \(such as .*\), got {shown}\.$"
    with pytest.raises(ValueError, match=message):
        make(**{field: value})


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (
            jnp.zeros((40, 40)),
            "Array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… (shape (40, 40), "
            "dtype float32) (an ArrayImpl)",
        ),
        (np.float32(1), "np.float32(1.0) (a float32)"),  # was taken: numpy reads its dtype
        (dict, "<class 'dict'> (a type)"),  # numpy reads a class as 'object'
    ],
    ids=["array", "number", "class"],
)
def test_a_value_that_is_no_dtype_is_named_as_what_it_is(value, shown):
    """An array was named by its dtype, 'got 'float32'' for a floating dtype; a numpy
    number was taken for one (and, cached, made 1.0 and True pass too)."""
    with pytest.raises(ValueError) as error:
        L.LayerScale(param_dtype=value)
    assert str(error.value) == (
        "LayerScale param_dtype must be a floating dtype (such as jnp.float32 or "
        f"'bfloat16'), got {shown}, not a dtype."
    )


@pytest.mark.parametrize(
    ("make", "field", "value"),
    [
        (lambda **kw: L.MultiHeadSelfAttention(2, **kw), "causal", "false"),
        (lambda **kw: L.TransformerBlock(2, **kw), "causal", 1),
        (lambda **kw: L.Choice([abs], **kw), "per_example", "yes"),
        (lambda **kw: L.LipschitzDense(3, **kw), "use_bias", None),
    ],
)
def test_a_flag_that_is_no_bool_is_refused_when_the_layer_is_made(make, field, value):
    """causal="false" made the attention causal, without a word."""
    name = type(make()).__name__
    message = rf"^{name} {field} must be True or False, got {re.escape(repr(value))} \(a"
    with pytest.raises(TypeError, match=message):
        make(**{field: value})
    assert getattr(make(**{field: np.bool_(True)}), field)  # numpy's bool is one


@pytest.mark.parametrize("flag", [np.array(True), jnp.array(True)])
def test_a_flag_given_as_a_0d_bool_array_is_accepted(flag):
    """causal=jnp.array(True) worked before flags were checked, then was refused as no bool."""
    layer = L.MultiHeadSelfAttention(2, causal=flag)
    x = jnp.ones((1, 3, 4))
    run = lambda x: layer.apply(layer.init(jax.random.key(0), x), x)
    assert jax.eval_shape(run, x).shape == (1, 3, 4)  # traced, its checks run: no compile
    with pytest.raises(TypeError, match="causal must be True or False"):
        L.MultiHeadSelfAttention(2, causal=jnp.ones(2, bool))


def test_a_flag_given_as_a_numpy_array_names_it_an_ndarray():
    """The error named its type "a ndarray"."""
    with pytest.raises(TypeError, match=r"causal must be True or False, .* \(an ndarray\)\.$"):
        L.MultiHeadSelfAttention(2, causal=np.ones(2, bool))


def test_the_flag_check_keeps_no_class_alive_that_nn_vmap_made():
    """nn.vmap (and remat, scan) make a class per call; the flag check's cache of each
    class's bool fields held every one for good."""
    import gc
    import weakref

    from phosjax.layers import _common

    made = nn.vmap(L.LayerScale, variable_axes={"params": 0}, split_rngs={"params": True})
    made(param_dtype=jnp.float32)  # checks its fields, caching them
    assert made in _common._FLAG_FIELDS
    alive = weakref.ref(made)
    del made
    gc.collect()
    assert alive() is None


_F64 = {"param_dtype": "float64"}
_WIDENED: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "self_attention": (lambda: L.MultiHeadSelfAttention(2, **_F64), (1, 3, 4)),
    "choice_per_example": (
        lambda: L.Choice([L.GLU(**_F64), L.ActivityL1()], per_example=True, **_F64),
        (2, 2, 3),
    ),
    "gated_skip": (lambda: L.GatedSkip(L.GLU(**_F64), **_F64), (2, 3)),
    "hyper_dense": (lambda: L.HyperDense(2, **_F64), (2, 3)),
    "lipschitz_dense": (lambda: L.LipschitzDense(2, **_F64), (2, 3)),
    "activity_l1": (lambda: L.ActivityL1(), (2, 3)),
    "orthogonal_dense": (lambda: L.OrthogonalDense(2, **_F64), (2, 3)),
    "mixture_of_experts": (lambda: L.MixtureOfExperts(3, top_k=2, **_F64), (2, 3)),
}


@pytest.mark.parametrize("name", _WIDENED)
def test_float64_gradients_match_finite_differences(name):
    """These layers computed their softmax, gate, router, SVD or penalty in float32 even
    for float64 params and inputs: their derivatives were off from the float64 central
    differences by 5e-4 to 6e-2 relative. Both the output's and the aux losses' terms."""
    layer, (params_and_x, direction) = _WIDENED[name][0](), _random_point(name)

    def terms(params, x):  # the output's (weighted at random) and the aux losses'
        out, state = layer.apply({"params": params}, x, mutable=["aux_loss"])
        weights = jax.random.normal(jax.random.key(2), out.shape, out.dtype)
        return jnp.stack([jnp.sum(out * weights), px.aux_total(state.get("aux_loss", {}))[0]])

    @jax.jit  # one program: the derivative along direction, and the central difference
    def derivatives(point, direction, eps):
        _, analytic = jax.jvp(terms, point, direction)
        step = lambda s: terms(*jax.tree.map(lambda a, d: a + s * d, point, direction))
        up, down = jax.vmap(step)(jnp.array([eps, -eps]))
        return analytic, (up - down) / (2 * eps)

    with jax.enable_x64(True):
        analytic, numeric = derivatives(params_and_x, direction, 1e-6)
    assert analytic.dtype == jnp.float64
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


def _random_point(name: str) -> tuple[Any, Any]:
    """Random float64 ``(params, x)`` for ``_WIDENED[name]`` (not the init's: its zero
    gates and orthogonal kernels are special points), and a random direction."""
    make, shape = _WIDENED[name]
    rng = np.random.default_rng(0)
    normal = lambda a: np.asarray(rng.normal(size=np.shape(a)))
    with jax.enable_x64(True):
        x = normal(np.empty(shape))
        params = jax.eval_shape(make().init, jax.random.key(0), x).get("params", {})
        point = (jax.tree.map(normal, params), x)
    return point, jax.tree.map(normal, point)


def test_a_per_example_choice_gates_a_float64_input_in_float64():
    """Its gate logits, computed from a float64 input with float32 params in float64
    (as flax's Dense promotes them), were cast to float32 before the softmax: the output
    was off from float64's by 2e-7, as MixtureOfExperts' router is not."""
    layer = L.Choice([jnp.abs, jnp.sin], per_example=True)
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(3, 2)).astype(np.float32), np.float32([0.5, -0.5])
    with jax.enable_x64(True):
        x = rng.normal(size=(4, 3))
        out = layer.apply({"params": {"gate": {"kernel": kernel, "bias": bias}}}, x)
    logits = x @ kernel.astype(np.float64) + bias
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = weights[:, :1] * np.abs(x) + weights[:, 1:] * np.sin(x)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-14, atol=0)


def test_float16_attention_logits_do_not_overflow():
    """The logits were summed in float16 and cast to float32 after: inputs of magnitude
    100 made them overflow to inf, and the float16 output NaN where float32's is finite."""
    x = 100 * jax.random.normal(jax.random.key(1), (2, 6, 16))

    @jax.jit  # the float32 reference in one program; the float16 layer runs eagerly
    def reference(x):
        variables = L.MultiHeadSelfAttention(2).init(jax.random.key(0), x)
        return variables, L.MultiHeadSelfAttention(2).apply(variables, x)

    variables, expected = reference(x)
    out = L.MultiHeadSelfAttention(2, dtype=jnp.float16).apply(variables, x)
    assert out.dtype == jnp.float16
    scale = float(np.abs(expected).max())  # about 600; float16 keeps 3 digits
    np.testing.assert_allclose(np.asarray(out, np.float32), expected, rtol=0, atol=2e-3 * scale)
