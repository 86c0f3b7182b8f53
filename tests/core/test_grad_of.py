"""grad_of against a hand-written closed form, and inside a jitted optax train step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import phosjax as px
from phosjax.core._grad import _zeros_per_call
from tests.core.models import Pytrees


class TwoLayer(nn.Module):
    """y = W2 relu(W1 x + b1) + b2, with the hidden pre-activation tagged."""

    @nn.compact
    def __call__(self, x):
        h = px.tag(self, "pre_act", nn.Dense(5, name="hidden")(x))
        return nn.Dense(3, name="out")(nn.relu(h))


X = jax.random.normal(jax.random.key(1), (4, 2))
Y = jax.random.normal(jax.random.key(2), (4, 3))


def loss_fn(y_hat):
    return 0.5 * jnp.sum((y_hat - Y) ** 2)


def test_grad_of_matches_closed_form():
    model = TwoLayer()
    variables = model.init(jax.random.key(0), X)
    p = variables["params"]
    h = X @ p["hidden"]["kernel"] + p["hidden"]["bias"]
    y_hat = jnp.maximum(h, 0) @ p["out"]["kernel"] + p["out"]["bias"]
    expected = ((y_hat - Y) @ p["out"]["kernel"].T) * (h > 0)  # dL/dh
    value, grads = px.grad_of(loss_fn, model, variables, X, wrt="pre_act")
    np.testing.assert_allclose(grads["pre_act"], expected, rtol=1e-5, atol=1e-6)
    assert float(value) == pytest.approx(float(loss_fn(y_hat)), rel=1e-6)


def test_grad_of_matches_finite_differences():
    model = TwoLayer()
    variables = model.init(jax.random.key(0), X)
    _, grads = px.grad_of(loss_fn, model, variables, X, wrt="pre_act")
    _, found = px.probe(model, variables, X, "pre_act")
    h = found["pre_act"]
    at = jax.jit(lambda h: loss_fn(px.inject(model, variables, X, {"pre_act": h})))
    eps = 1e-2
    for index in [(0, 0), (1, 3), (3, 4)]:
        bump = jnp.zeros_like(h).at[index].set(eps)
        numeric = (at(h + bump) - at(h - bump)) / (2 * eps)
        assert float(grads["pre_act"][index]) == pytest.approx(float(numeric), rel=1e-2, abs=1e-4)


def test_grad_of_with_aux_output():
    model = TwoLayer()
    variables = model.init(jax.random.key(0), X)
    (value, y_hat), _ = px.grad_of(
        lambda y: (loss_fn(y), y), model, variables, X, wrt="pre_act", has_aux=True
    )
    np.testing.assert_allclose(y_hat, model.apply(variables, X))
    assert float(value) == pytest.approx(float(loss_fn(y_hat)))


def test_gradients_to_tags_and_params_in_one_jitted_train_step():
    """A train step that uses the tag gradient (here: its norm as a metric) alongside params."""
    model = TwoLayer()
    variables = model.init(jax.random.key(0), X)
    optimizer = optax.sgd(0.05)
    perturbation = px.perturbations(model, variables, X, "pre_act")

    @jax.jit
    def step(params, opt_state):
        def loss(params, perturbation):
            out = model.apply({"params": params, "perturbations": perturbation}, X)
            return loss_fn(out)

        value, (g_params, g_tags) = jax.value_and_grad(loss, argnums=(0, 1))(params, perturbation)
        updates, opt_state = optimizer.update(g_params, opt_state)
        return optax.apply_updates(params, updates), opt_state, value, g_tags["pre_act"]

    params, opt_state = variables["params"], optimizer.init(variables["params"])
    _, expected = px.grad_of(loss_fn, model, variables, X, wrt="pre_act")
    losses = []
    for i in range(20):
        if i == 0:
            _, _, _, g_tag = step(params, opt_state)
            np.testing.assert_allclose(g_tag, expected["pre_act"], rtol=1e-5, atol=1e-7)
        params, opt_state, value, _ = step(params, opt_state)
        losses.append(float(value))
    assert losses[-1] < 0.5 * losses[0]


class Shared(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", x)


class CalledTwice(nn.Module):
    """sum(sin(h1)) + 10 * sum(h2**2), both tagged by one module ``s``; h2 is shorter."""

    short: bool = True

    @nn.compact
    def __call__(self, x):
        shared = Shared(name="s")
        second = x[:2] if self.short else x
        return jnp.sum(jnp.sin(shared(x))) + 10 * jnp.sum(shared(second) ** 2)


V = jnp.array([0.5, -1.0, 2.0])


@pytest.mark.parametrize("short", [True, False], ids=["shapes_differ", "same_shape"])
def test_grad_of_a_value_tagged_by_two_calls_has_one_gradient_per_call(short):
    model = CalledTwice(short)
    second = V[:2] if short else V
    value, grads = jax.jit(lambda x: px.grad_of(lambda y: y, model, {}, x, wrt="s/h"))(V)
    _, found = px.probe(model, {}, V, "s/h")
    assert len(grads["s/h"]) == len(found["s/h"]) == 2
    np.testing.assert_allclose(grads["s/h"][0], jnp.cos(V), rtol=1e-6)
    np.testing.assert_allclose(grads["s/h"][1], 20 * second, rtol=1e-6)
    assert float(value) == pytest.approx(float(model.apply({}, V)))


class TaggedTwice(nn.Module):
    """Tags h twice, as x and as x**2, and returns x + sin(x) + x**2."""

    @nn.compact
    def __call__(self, x, _):
        h1 = px.tag(self, "h", x)
        h2 = px.tag(self, "h", x**2)
        return h1 + jnp.sin(h1) + h2, None


class TwoLayerScan(nn.Module):
    @nn.compact
    def __call__(self, x):
        layers = nn.scan(TaggedTwice, variable_axes=px.scan_axes(), length=2)
        return layers(name="layers")(x, None)[0]


def test_grad_of_two_calls_per_layer_under_scan():
    _, grads = px.grad_of(jnp.sum, TwoLayerScan(), {}, V, wrt="layers/h")
    x1 = TaggedTwice().apply({}, V, None)[0]  # the second layer's input
    d_x1 = 1 + jnp.cos(x1) + 2 * x1  # d loss / d x1
    first_call, second_call = grads["layers/h"]
    np.testing.assert_allclose(first_call[0], d_x1 * (1 + jnp.cos(V)), rtol=1e-5)
    np.testing.assert_allclose(first_call[1], 1 + jnp.cos(x1), rtol=1e-5)
    np.testing.assert_allclose(second_call, jnp.stack([d_x1, jnp.ones(3)]), rtol=1e-5)


def test_perturbations_for_several_calls_need_mutable_intermediates():
    model = CalledTwice(short=False)
    zeros = px.perturbations(model, {}, V, "s/h")
    assert [z.shape for z in zeros["s"]["h"]] == [(3,), (3,)]
    with pytest.raises(ValueError, match=r"'s/h' has a perturbation for each of 2 calls.*"):
        model.apply({"perturbations": zeros}, V)
    grads = jax.grad(lambda p: model.apply({"perturbations": p}, V, mutable=["intermediates"])[0])(
        zeros
    )
    np.testing.assert_allclose(grads["s"]["h"][1], 20 * V, rtol=1e-6)


def test_grad_of_pytree_tags_has_their_structure():
    _, grads = px.grad_of(lambda y: y, Pytrees(), {}, V, wrt=["d", "pair"])
    assert jax.tree.structure(grads["d"]) == jax.tree.structure({"a": 0, "b": 0})
    np.testing.assert_allclose(grads["d"]["a"], 2 * V, rtol=1e-6)
    np.testing.assert_allclose(grads["d"]["b"], jnp.cos(2 * V), rtol=1e-6)
    assert isinstance(grads["pair"], tuple) and len(grads["pair"]) == 2
    np.testing.assert_allclose(grads["pair"][0], 3 * V, rtol=1e-6)
    np.testing.assert_allclose(grads["pair"][1], V, rtol=1e-6)


def test_grad_of_pytree_with_an_integer_leaf_names_the_leaf():
    class Mixed(nn.Module):
        @nn.compact
        def __call__(self, x):
            return px.tag(self, "m", {"x": x, "n": jnp.sum(x > 0)})["x"].sum()

    # it said to leave 'm'['n'] out, which no selector reaches apart from its 'm'
    with pytest.raises(
        TypeError,
        match=r"'m'\['n'\]: its dtype is int32, and only floating-point values have a "
        r"gradient; wrt '\*\*' selects it: give selectors that leave 'm' out, or tag its "
        r"floats apart\.$",
    ):
        px.grad_of(lambda y: y, Mixed(), {}, V, wrt="**")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda v: px.grad_of(None, TwoLayer(), v, X, wrt="pre_act"), r"^grad_of: fn must be"),
        (lambda v: px.regularize(v["params"], "**/kernel", "l2"), r"^regularize: fn must be"),
    ],
)
def test_an_fn_that_is_no_function_is_refused_naming_it(call, message):
    # it failed after the model ran: "'NoneType' object is not callable"
    variables = TwoLayer().init(jax.random.key(0), X)
    with pytest.raises(TypeError, match=message + r" .*, got (None|'l2'); call it as "):
        call(variables)


ARRAY_SHOWN = (
    "Array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… (shape (40, 40), dtype float32)"
)
"""How an error names a (40, 40) array of zeros given where a function goes: cut to
60 characters, with its shape and dtype."""


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: px.grad_of(jnp.zeros((40, 40)), TwoLayer(), {}, X, wrt="pre_act"),
            "grad_of: fn must be a function of the model's output to a scalar (e.g. jnp.sum, "
            f"or the loss), got {ARRAY_SHOWN}; call it as grad_of(fn, model, variables, x, "
            "wrt=...).",
        ),
        (
            lambda: px.regularize({"w": jnp.ones(2)}, "w", jnp.zeros((40, 40))),
            "regularize: fn must be a function of one value to a scalar (e.g. lambda h: "
            f"jnp.abs(h).mean()), got {ARRAY_SHOWN}; call it as regularize(values, "
            "selector, fn).",
        ),
    ],
    ids=["grad_of", "regularize"],
)
def test_an_array_given_for_fn_is_named_in_one_short_line(call, message):
    """The message held the whole array's repr, 40 lines of zeros."""
    with pytest.raises(TypeError) as error:
        call()
    assert str(error.value) == message


@pytest.mark.parametrize("has_aux", [False, True])
def test_an_fn_giving_no_scalar_is_named_with_its_shape(has_aux):
    """JAX said 'Gradient only defined for scalar-output functions', naming no fn."""
    fn = (lambda y: (y, y.mean())) if has_aux else (lambda y: y)
    variables = TwoLayer().init(jax.random.key(0), X)
    with pytest.raises(
        TypeError, match=r"^grad_of: fn gave a value of shape \(4, 3\), not a scalar"
    ):
        px.grad_of(fn, TwoLayer(), variables, X, wrt="pre_act", has_aux=has_aux)


def test_an_fn_giving_a_pair_without_has_aux_is_told_to_pass_it():
    # it raised TracerArrayConversionError: "The numpy.ndarray conversion method __array__()"
    variables = TwoLayer().init(jax.random.key(0), X)
    message = r"^grad_of: fn gave a tuple of 2 values, not a scalar; .* pass has_aux=True\."
    with pytest.raises(TypeError, match=message):
        px.grad_of(lambda y: (y.sum(), y), TwoLayer(), variables, X, wrt="pre_act")
    # three were told to pass has_aux=True too; with it, one value or three were JAX's
    # "expected function with aux output to return a two-element tuple, but got ...Tracer"
    with pytest.raises(
        TypeError,
        match=r"^grad_of: fn gave a list of 3 values, not a scalar; give the loss alone\.",
    ):
        px.grad_of(lambda y: [y.sum()] * 3, TwoLayer(), variables, X, wrt="pre_act")
    pair = r"^grad_of: with has_aux=True, fn must give a pair \(loss, aux\), got "
    for fn, given in [(jnp.sum, "one value"), (lambda y: (y.sum(),) * 3, "a tuple of 3 values")]:
        with pytest.raises(TypeError, match=rf"{pair}{given}\."):
            px.grad_of(fn, TwoLayer(), variables, X, wrt="pre_act", has_aux=True)


@pytest.mark.parametrize(
    ("fn", "given"),
    [
        (lambda y: None, "None, not a scalar"),  # JAX: "Output was None"
        (lambda y: {"loss": y.sum()}, "a dict, not a scalar"),
        (lambda y: 3, "a value of dtype int32, and only a real floating-point one has a gradient"),
        (
            lambda y: y.sum() > 0,
            "a value of dtype bool, and only a real floating-point one has a gradient",
        ),
        (
            lambda y: jax.random.key(0),  # its dtype was no numpy one to name
            "a value of dtype key<fry>, and only a real floating-point one has a gradient",
        ),
    ],
)
def test_an_fn_giving_no_float_is_told_to_return_the_loss(fn, given):
    """JAX said "Gradient only defined for scalar-output functions" or "grad requires
    real-valued outputs", naming no grad_of nor fn."""
    variables = TwoLayer().init(jax.random.key(0), X)
    message = f"grad_of: fn gave {given}; return the loss, e.g. lambda y: jnp.sum(y ** 2)."
    for has_aux in (False, True):
        with pytest.raises(TypeError) as info:
            aux_fn = (lambda y: (fn(y), y)) if has_aux else fn
            px.grad_of(aux_fn, TwoLayer(), variables, X, wrt="pre_act", has_aux=has_aux)
        assert str(info.value) == message
    value, _ = px.grad_of(lambda y: 2.0, TwoLayer(), variables, X, wrt="pre_act")
    assert value == 2.0  # a Python float is a loss, of zero gradient


class Tempered(nn.Module):
    """x / T, T a knob declared with a Python number: weakly typed, it keeps x's bfloat16."""

    @nn.compact
    def __call__(self, x):
        return x / px.tag(self, "temperature", px.knob(self, "T", 2.0))


def test_grad_of_a_weakly_typed_tag_leaves_a_bfloat16_output_bfloat16():
    """Its perturbation was a float32 array, not weakly typed: fn got a float32 output."""
    x = jnp.array([1.0, 3.0], jnp.bfloat16)
    variables = Tempered().init(jax.random.key(0), x)
    assert Tempered().apply(variables, x).dtype == jnp.bfloat16
    value, grads = px.grad_of(jnp.sum, Tempered(), variables, x, wrt="temperature")
    assert value.dtype == jnp.bfloat16 and float(value) == 2.0  # 0.5 + 1.5
    assert float(grads["temperature"]) == -1.0  # -(1 + 3) / 2**2


def test_grad_of_a_float32_knob_made_without_x64_stays_float32_with_it():
    """Under jax_enable_x64 its weakly typed zeros were float64: so was its gradient."""
    x = jnp.array([1.0, 3.0])
    variables = Tempered().init(jax.random.key(0), x)  # T: a weakly typed float32
    with jax.enable_x64(True):
        value, grads = px.grad_of(jnp.sum, Tempered(), variables, x, wrt="temperature")
        assert value.dtype == grads["temperature"].dtype == jnp.float32
        assert float(grads["temperature"]) == -1.0  # -(1 + 3) / 2**2


@pytest.mark.parametrize("weak", [True, False])
def test_the_zeros_of_a_tagged_value_are_made_by_one_operation(weak):
    """Weakly typed ones were made twice: zeros, then a weakly typed copy (a scatter)."""
    spec = jax.ShapeDtypeStruct((2,), jnp.float32, weak_type=weak)
    jaxpr = jax.make_jaxpr(lambda: _zeros_per_call("T", (spec,), "T"))()
    assert len(jaxpr.eqns) == 1
    (zeros,) = jaxpr.out_avals
    assert zeros.weak_type == weak and zeros.dtype == jnp.float32
