"""Every transform under jit, vmap and grad, on plain, nn.remat and nn.scan stacks."""

import functools
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.core._numbers import in_type_of
from tests.core.models import (
    DEPTH,
    KINDS,
    WIDTH,
    Block,
    Pytrees,
    ScanBlock,
    Stack,
    pre_act_path,
)

X = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)


def injected_shape(kind):
    return (DEPTH, 2, WIDTH) if kind == "scan" else (2, WIDTH)


def run_probe(kind, variables, x):
    return px.probe(Stack(kind), variables, x, "**/pre_act")[1]


def run_tweak(kind, variables, x):
    return px.tweak(Stack(kind), variables, x, {"**/T": 2.0})


def run_inject(kind, variables, x):
    value = jnp.full(injected_shape(kind), 0.3)
    return px.inject(Stack(kind), variables, x, {pre_act_path(kind): value})


def run_grad_of(kind, variables, x):
    loss = lambda out: jnp.sum(out**2)
    return px.grad_of(loss, Stack(kind), variables, x, wrt="**/pre_act")[1]


TRANSFORMS = {
    "probe": run_probe,
    "tweak": run_tweak,
    "inject": run_inject,
    "grad_of": run_grad_of,
}
CASES = [(t, k) for t in TRANSFORMS for k in KINDS]


@functools.cache
def init(kind, seed=0):
    return Stack(kind).init(jax.random.key(seed), X)


def assert_trees_close(a, b, **tol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, **tol), a, b)


@pytest.mark.parametrize("transform, kind", CASES)
def test_jit_equals_eager(transform, kind):
    fn = functools.partial(TRANSFORMS[transform], kind)
    assert_trees_close(jax.jit(fn)(init(kind), X), fn(init(kind), X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("transform, kind", CASES)
def test_vmap_over_stacked_variables(transform, kind):
    fn = functools.partial(TRANSFORMS[transform], kind)
    each = [init(kind, seed) for seed in (0, 1)]
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *each)
    batched = jax.vmap(fn, in_axes=(0, None))(stacked, X)
    expected = jax.tree.map(lambda *v: jnp.stack(v), *(fn(v, X) for v in each))
    assert_trees_close(batched, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("transform, kind", CASES)
def test_grad_matches_finite_differences(transform, kind):
    """The directional derivative along a random direction in params space, in float64:
    central differences with eps=1e-5 agree to <= 1e-8 relative here (truncation ~eps**2,
    rounding ~1e-16 / eps), so rel=1e-6 catches any wrong gradient term."""
    made = init(kind)  # outside float64: the cache would keep float64 knobs for later tests
    with jax.enable_x64(True):
        variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), made)
        x = jnp.asarray(X, jnp.float64)

        @jax.jit
        def scalar(params):
            out = TRANSFORMS[transform](kind, {**variables, "params": params}, x)
            return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(out))

        params = variables["params"]
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(7), len(leaves))
        direction = treedef.unflatten(
            [jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves, strict=True)]
        )
        grad = jax.grad(scalar)(params)
        assert all(g.dtype == jnp.float64 for g in jax.tree.leaves(grad))  # really float64
        pairs = zip(jax.tree.leaves(grad), jax.tree.leaves(direction), strict=True)
        analytic = sum(jnp.vdot(g, d) for g, d in pairs)
        eps = 1e-5
        shifted = lambda s: jax.tree.map(lambda p, d: p + s * eps * d, params, direction)
        numeric = (scalar(shifted(1.0)) - scalar(shifted(-1.0))) / (2 * eps)
        assert abs(float(analytic)) > 1e-2  # a nonzero derivative: rel is meaningful
        assert float(analytic) == pytest.approx(float(numeric), rel=1e-6, abs=0)


# --- what each transform means -------------------------------------------------------


def test_probe_returns_what_the_forward_pass_computed():
    model, variables = Stack(), init("plain")
    out, found = px.probe(model, variables, X, ["blocks_0/out", "blocks_1/pre_act"])
    assert list(found) == ["blocks_0/out", "blocks_1/pre_act"]
    dense = variables["params"]["blocks_1"]["dense"]
    np.testing.assert_allclose(
        found["blocks_1/pre_act"],
        found["blocks_0/out"] @ dense["kernel"] + dense["bias"],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(out, model.apply(variables, X))


def unrolled(variables):
    """The variables of a plain `Stack` with the scanned one's weights: layer i gets
    slice i of the scanned params and knobs."""

    def layers(tree):
        block = tree["blocks"]["Block_0"]
        return {f"blocks_{i}": jax.tree.map(lambda a, i=i: a[i], block) for i in range(DEPTH)}

    params = variables["params"]
    return {
        "params": {"stem": params["stem"], "head": params["head"], **layers(params)},
        "knobs": layers(variables["knobs"]),
    }


def test_probe_under_scan_stacks_layers():
    variables = init("scan")
    temperatures = jnp.array([0.5, 1.0, 2.0])  # distinct per layer: a mixed-up slice shows
    variables = {**variables, "knobs": {"blocks": {"Block_0": {"T": temperatures}}}}
    out, scanned = px.probe(Stack("scan"), variables, X, "**/pre_act")
    stacked = scanned["blocks/Block_0/pre_act"]
    assert stacked.shape == (DEPTH, 2, WIDTH)
    plain = unrolled(variables)
    plain_out, found = px.probe(Stack("plain"), plain, X, "**/pre_act")
    assert list(found) == [f"blocks_{i}/pre_act" for i in range(DEPTH)]
    for i in range(DEPTH):
        np.testing.assert_allclose(stacked[i], found[f"blocks_{i}/pre_act"], rtol=1e-6, atol=1e-7)
    assert not np.allclose(stacked[0], stacked[1])  # layers differ: the check has teeth
    np.testing.assert_allclose(out, plain_out, rtol=1e-6, atol=1e-7)


def regularized(kind, params, variables, fn):
    """`regularize` over the ``pre_act`` values a `Stack` records in ``intermediates``."""
    _, state = Stack(kind).apply({**variables, "params": params}, X, mutable=["intermediates"])
    return px.regularize(state["intermediates"], "**/pre_act", fn)


@pytest.mark.parametrize(
    "fn", [lambda h: jnp.mean(jnp.abs(h)), lambda h: jnp.sqrt(jnp.sum(h**2))], ids=["l1", "norm"]
)
def test_regularize_under_scan_adds_up_each_layer_as_the_unrolled_stack_does(fn):
    scanned = init("scan")
    plain = unrolled(scanned)
    value, grads = jax.value_and_grad(regularized, 1)("scan", scanned["params"], scanned, fn)
    plain_value, plain_grads = jax.value_and_grad(regularized, 1)(
        "plain", plain["params"], plain, fn
    )
    assert float(value) == pytest.approx(float(plain_value), rel=1e-6)
    as_plain = unrolled({**scanned, "params": grads})["params"]
    assert_trees_close(as_plain, plain_grads, rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(grads["blocks"]["Block_0"]["dense"]["kernel"]).min()) > 0  # every layer


class _ScanOfScans(nn.Module):
    """Two scanned groups of three scanned blocks: the values stack on two layer axes."""

    @nn.compact
    def __call__(self, x):
        inner = nn.scan(
            ScanBlock, variable_axes=px.scan_axes(params=0), length=3, split_rngs={"params": True}
        )
        outer = nn.scan(
            lambda parent, x, _: (inner(parent=parent)(x, None)[0], None),
            variable_axes=px.scan_axes(params=0),
            length=2,
            split_rngs={"params": True},
        )
        return outer(self, x, None)[0]


def test_regularize_under_nested_scans_adds_up_each_layer():
    model, x = _ScanOfScans(), jnp.ones((2, WIDTH))
    variables = model.init(jax.random.key(0), x)
    _, state = model.apply(variables, x, mutable=["intermediates"])
    [stacked] = px.probe(model, variables, x, "**/pre_act")[1].values()
    assert stacked.shape == (2, 3, 2, WIDTH)
    norm = lambda h: jnp.sqrt(jnp.sum(h**2))
    expected = sum(float(norm(stacked[i, j])) for i in range(2) for j in range(3))
    assert float(px.regularize(state["intermediates"], "**/pre_act", norm)) == pytest.approx(
        expected, rel=1e-6
    )


def test_probe_unknown_selector_lists_tags():
    with pytest.raises(px.SelectorError, match=r"'blocks_9/pre_act'.*nearest: 'blocks_"):
        px.probe(Stack(), init("plain"), X, "blocks_9/pre_act")


def test_probe_keeps_user_mutable_state():
    (out, state), found = px.probe(Stack(), init("plain"), X, "**/out", mutable=["aux_loss"])
    assert set(state) == {"aux_loss"} and len(found) == DEPTH
    assert out.shape == (2, 2)
    for mutable in (["intermediates"], True):  # as model.apply returns it
        (_, state), _ = px.probe(Stack(), init("plain"), X, "**/out", mutable=mutable)
        _, applied = Stack().apply(init("plain"), X, mutable=mutable)
        assert set(state) == set(applied) and "intermediates" in state


def _inject_keeping_state(mutable):
    value = jnp.full((2, WIDTH), 0.3)
    return px.inject(Stack(), init("plain"), X, {"blocks_0/pre_act": value}, mutable=mutable)[1]


def _grad_of_keeping_state(mutable):
    loss = lambda out: (jnp.sum(out[0] ** 2), out[1])
    wrt = "**/pre_act"
    (_, state), _ = px.grad_of(
        loss, Stack(), init("plain"), X, wrt=wrt, has_aux=True, mutable=mutable
    )
    return state


@pytest.mark.parametrize("run", [_inject_keeping_state, _grad_of_keeping_state])
def test_the_state_handed_back_is_the_model_s_not_what_the_transform_put_in(run):
    # under mutable=True it held the injections (or zeros) given: variables updated from
    # it injected the values again in every later call
    for mutable in (["intermediates"], True):  # as model.apply returns it
        state = run(mutable)
        _, applied = Stack().apply(init("plain"), X, mutable=mutable)
        assert set(state) == set(applied)
    updated = {**init("plain"), **run(True)}
    assert_trees_close(Stack().apply(updated, X), Stack().apply(init("plain"), X), rtol=0)


@pytest.mark.parametrize("run", [_inject_keeping_state, _grad_of_keeping_state])
def test_a_deny_list_as_mutable_hands_back_the_state_model_apply_does(run):
    # mutable=nn.DenyList("params"), one of Flax's filters, raised TypeError: 'DenyList'
    # object is not iterable
    mutable = nn.DenyList("params")
    _, applied = Stack().apply(init("plain"), X, mutable=mutable)
    assert set(run(mutable)) == set(applied) == {"aux_loss", "intermediates", "knobs"}
    (_, state), _ = px.probe(Stack(), init("plain"), X, "**/out", mutable=mutable)
    assert set(state) == set(applied)


@pytest.mark.parametrize("mutable", [True, nn.DenyList("params")])
@pytest.mark.parametrize("with_knobs", [True, False])
def test_tweak_hands_back_the_variables_knobs_not_the_tweaked_ones(mutable, with_knobs):
    # the state held the tweaked knobs: variables updated from it stayed tweaked for good
    variables = init("plain") if with_knobs else {"params": init("plain")["params"]}
    _, state = px.tweak(Stack(), variables, X, {"**/T": 2.0}, mutable=mutable)
    _, applied = Stack().apply(variables, X, mutable=mutable)
    assert_trees_close(state["knobs"], applied["knobs"], rtol=0)
    updated = {**variables, **state}
    assert_trees_close(Stack().apply(updated, X), Stack().apply(variables, X), rtol=0)
    _, named = px.tweak(Stack(), variables, X, {"**/T": 2.0}, mutable=["knobs"])
    assert {float(t) for t in jax.tree.leaves(named)} == {2.0}  # named: as asked


@pytest.mark.parametrize("transform", ["probe", "grad_of"])
def test_intermediates_merged_back_into_the_variables_add_nothing(transform):
    # the usual Flax idiom after an apply: variables = {**variables, **mutated}
    _, mutated = Stack().apply(init("plain"), X, mutable=["intermediates"])
    merged = {**init("plain"), **mutated}
    run = TRANSFORMS[transform]
    assert_trees_close(run("plain", merged, X), run("plain", init("plain"), X), rtol=0)


def test_tweak_changes_only_the_targeted_module():
    model, variables = Stack(), init("plain")
    _, base = px.probe(model, variables, X)
    tweaked_vars = px.set_knobs(variables, {"blocks_1/**/T": 10.0})
    out, after = px.probe(model, tweaked_vars, X)
    np.testing.assert_array_equal(after["blocks_0/out"], base["blocks_0/out"])
    np.testing.assert_array_equal(after["blocks_1/pre_act"], base["blocks_1/pre_act"])
    np.testing.assert_allclose(after["blocks_1/out"], jnp.tanh(base["blocks_1/pre_act"] / 10.0))
    assert not np.allclose(after["blocks_1/out"], base["blocks_1/out"])
    np.testing.assert_array_equal(px.tweak(model, variables, X, {"blocks_1/**/T": 10.0}), out)
    knobs = px.core.flatten(tweaked_vars["knobs"])
    assert {p: float(v) for p, v in knobs.items()} == {
        "blocks_0/T": 1.0,
        "blocks_1/T": 10.0,
        "blocks_2/T": 1.0,
    }


def test_tweak_without_knob_collection_uses_defaults():
    model, variables = Stack(), init("plain")
    params_only = {"params": variables["params"]}
    np.testing.assert_array_equal(model.apply(params_only, X), model.apply(variables, X))
    np.testing.assert_array_equal(
        px.tweak(model, params_only, X, {"**/T": 3.0}),
        px.tweak(model, variables, X, {"**/T": 3.0}),
    )


def test_tweak_keeps_the_knobs_the_variables_already_set():
    model, variables = Stack(), init("plain")
    set_before = px.set_knobs(variables, {"blocks_0/T": 4.0})
    both = px.set_knobs(variables, {"blocks_0/T": 4.0, "blocks_1/T": 10.0})
    out = px.tweak(model, set_before, X, {"blocks_1/T": 10.0})
    np.testing.assert_array_equal(out, model.apply(both, X))
    assert not np.allclose(out, px.tweak(model, variables, X, {"blocks_1/T": 10.0}))
    kept = px.core.with_knobs(model, set_before, X)["knobs"]
    assert {p: float(v) for p, v in px.core.flatten(kept).items()} == {
        "blocks_0/T": 4.0,
        "blocks_1/T": 1.0,
        "blocks_2/T": 1.0,
    }


class _Codec(nn.Module):
    """Knobs declared in setup; ``__call__`` takes two inputs, ``decode`` one."""

    def setup(self):
        self.gain = px.knob(self, "gain", 1.0)

    def __call__(self, x, y):
        return x + y

    def decode(self, z):
        return self.gain * z


def test_tweak_runs_the_method_given_and_finds_its_knobs_through_it():
    z = jnp.array([1.0, 2.0])
    out = px.tweak(_Codec(), {}, z, {"gain": 3.0}, method="decode")
    np.testing.assert_array_equal(out, [3.0, 6.0])


def test_tweak_unknown_knob_lists_knobs():
    with pytest.raises(px.SelectorError, match=r"matched no knob.*'blocks_0/T'"):
        px.tweak(Stack(), init("plain"), X, {"**/temperature": 2.0})


def test_tweak_of_a_tagged_value_says_it_is_no_knob():
    """It listed the nearest knobs alone ('T'), as if 'h' were a typo."""
    with pytest.raises(px.SelectorError, match=r"nearest: 'gain'\. It matches tagged value 'h', "):
        px.tweak(Gained(), Gained().init(jax.random.key(0), X), X, {"h": 0.0})
    # variables the model cannot run on: the knob's error, not tag_shapes' of no params
    with pytest.raises(px.SelectorError, match=r"^Selector 'h' matched no knob among 1; "):
        px.tweak(Gained(), {}, X, {"h": 0.0})


def test_tweak_of_a_param_says_it_is_no_knob():
    """It listed the nearest knobs alone, as if 'blocks_0/dense/kernel' were a typo."""
    with pytest.raises(px.SelectorError) as info:
        px.tweak(Stack(), init("plain"), X, {"blocks_0/*/kernel": 0.0})
    assert str(info.value).endswith(
        ". It matches param 'blocks_0/dense/kernel', which is no knob: variables['params'] "
        "holds it."
    )


def test_set_knobs_on_variables_without_knobs_says_how_to_add_them():
    params_only = {"params": init("plain")["params"]}
    with pytest.raises(px.SelectorError, match=r"'\*\*/T' .* no 'knobs' collection.*with_knobs"):
        px.set_knobs(params_only, {"**/T": 2.0})


@pytest.mark.parametrize("values", [3.0, "blocks_1/T"])
def test_set_knobs_given_no_dict_names_it_even_without_knobs(values):
    """Without a knobs collection, 3.0 failed with "'float' object is not iterable" and
    'blocks_1/T' with "Selector 'b' matched no knob"."""
    params_only = {"params": init("plain")["params"]}
    with pytest.raises(TypeError, match=rf"^The values are {values!r} \(of type "):
        px.set_knobs(params_only, values)


@pytest.mark.parametrize(
    "call",
    [
        lambda: px.set_knobs(None, {"**/T": 2.0}),
        lambda: px.core.with_knobs(Stack(), None, X),
    ],
    ids=["set_knobs", "with_knobs"],
)
def test_knob_edits_given_no_variables_name_themselves(call):
    """They failed with "argument of type 'NoneType' is not iterable" and "'NoneType'
    object has no attribute 'get'"."""
    with pytest.raises(TypeError, match=r"^(set|with)_knobs: variables must be what model.init"):
        call()


def test_knobs_lists_path_default_doc():
    found = px.knobs(Stack(), X)
    assert list(found) == [f"blocks_{i}/T" for i in range(DEPTH)]
    assert found["blocks_2/T"] == px.Knob("blocks_2/T", 1.0, "activation temperature")
    assert list(px.knobs(Stack("scan"), X)) == ["blocks/Block_0/T"]


def test_knobs_given_variables_as_tweak_takes_them_says_it_takes_the_inputs():
    """Called as px.tweak is, the variables went to the model as its input and x as its
    train flag: 'Sequence train must be True or False, got Array(...)', or another
    error of the model's."""
    variables = Stack().init(jax.random.key(0), X)
    with pytest.raises(
        TypeError, match=r"^knobs takes the model's call arguments, .* not its variables"
    ):
        px.knobs(Stack(), variables, X)


class Bounded(nn.Module):
    """A knob that takes values in [0, 1): its default is ``default``."""

    default: float = 0.5

    @nn.compact
    def __call__(self, x):
        return x * px.knob(self, "p", self.default, doc="share", valid=px.Range(ge=0, lt=1))


def test_knobs_lists_the_range_a_knob_declares():
    assert px.knobs(Bounded(), X)["p"] == px.Knob("p", 0.5, "share", px.Range(ge=0, lt=1))


@pytest.mark.parametrize("valid", [(0, 1), "positive", px.Range])
def test_a_range_that_is_no_range_names_the_knob(valid):
    """It failed where the range was read: "'tuple' object has no attribute 'contains'"."""

    class Declares(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x * px.knob(self, "T", 1.0, valid=valid)

    with pytest.raises(TypeError, match=r"^knob 'T': valid must be a px.Range \(e.g. "):
        Declares().init(jax.random.key(0), X)


def test_a_default_out_of_its_own_range_is_an_error_at_declaration():
    with pytest.raises(ValueError, match=r"Bounded declares a default out of range: knob 'p' "):
        px.knobs(Bounded(default=1.0), X)
    # a complex one, which no range orders, was float()'s bare "not 'complex'" TypeError
    message = r"^knob 'p': valid=Range\(ge=0, lt=1\) takes real numbers, but the default "
    with pytest.raises(TypeError, match=message + r"0\.5j is complex64: give a real default"):
        px.knobs(Bounded(default=0.5j), X)


def test_set_knobs_checks_a_value_against_the_declared_range():
    variables = px.core.with_knobs(Bounded(), {}, X)
    declared = px.knobs(Bounded(), X)
    with pytest.raises(ValueError, match=r"knob 'p' must be a finite number >= 0 and < 1, got 1"):
        px.set_knobs(variables, {"p": 1}, declared=declared)
    assert float(px.set_knobs(variables, {"p": 0.0}, declared=declared)["knobs"]["p"]) == 0.0


def test_set_knobs_checks_a_value_as_the_knob_s_dtype_holds_it():
    """0.9999999999 is < 1 and was set, but float32 holds it as 1.0: out of range, the model
    raised when it ran, or read NaN under jit (a bench cell diverged)."""
    variables = px.core.with_knobs(Bounded(), {}, X)
    message = r"^0\.9999999999 held as float32: knob 'p' must be a finite number >= 0 and < 1, "
    message += r"got 1\.0\.$"
    with pytest.raises(ValueError, match=message):
        px.set_knobs(variables, {"p": 0.9999999999}, declared=px.knobs(Bounded(), X))


@pytest.mark.parametrize("value", ["hot", None])
def test_a_value_that_is_no_number_for_a_knob_with_a_range_names_the_knob(value):
    # the range's check came first and raised numpy's bare "could not convert ... to float"
    variables = px.core.with_knobs(Bounded(), {}, X)
    message = rf"^Knob 'p' takes a number or an array \(float32, shape \(\)\), got {value!r}\.$"
    with pytest.raises(TypeError, match=message):
        px.set_knobs(variables, {"p": value}, declared=px.knobs(Bounded(), X))
    with pytest.raises(TypeError, match=message):
        px.tweak(Bounded(), {}, X, {"p": value})


def test_tweak_checks_a_value_against_its_range_before_the_model_runs():
    # the module's own check named it too, from inside apply, prefixed by its class
    with pytest.raises(ValueError, match=r"^knob 'p' must be a finite number >= 0 and < 1"):
        px.tweak(Bounded(), {}, X, {"p": -0.5})


@pytest.mark.parametrize(
    ("bounds", "error", "match"),
    [
        ({"gt": "0"}, TypeError, r"Range gt must be a number, got '0'"),
        ({"le": np.nan}, TypeError, r"Range le must be a number, got nan"),
        ({"gt": 1, "lt": 0}, ValueError, r"Range\(gt=1, lt=0\) holds no number"),
        ({"gt": 0, "le": 0}, ValueError, r"Range\(gt=0, le=0\) holds no number"),
        # these two read 'a finite number > inf' and held none, refusing every value
        ({"ge": np.inf}, ValueError, r"Range\(ge=inf\) holds no number: .* lower bound below inf"),
        ({"lt": -np.inf}, ValueError, r"Range\(lt=-inf\) holds no number: .* above -inf\.$"),
    ],
)
def test_a_range_that_holds_no_number_is_refused(bounds, error, match):
    with pytest.raises(error, match=match):
        px.Range(**bounds)
    assert px.Range(ge=0, le=0).contains(0.0)  # one number
    assert px.Range(ge=0, le=np.inf).contains(1e30)  # an infinite bound: any finite number


def test_an_array_given_as_a_range_bound_is_named_in_one_short_line():
    """The message held the whole array's repr, 40 lines of zeros."""
    with pytest.raises(TypeError) as error:
        px.Range(gt=jnp.zeros((40, 40)))
    assert str(error.value) == (
        "Range gt must be a number, got Array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., "
        "0.,… (shape (40, 40), dtype float32)."
    )


def test_a_traced_integer_knob_with_a_range_keeps_its_dtype():
    class Index(nn.Module):  # NaN is no int: the value is left as it is
        @nn.compact
        def __call__(self, x):
            return x[px.knob(self, "i", 0, valid=px.Range(ge=0, lt=3))]

    variables = px.core.with_knobs(Index(), {}, X[0])
    pick = jax.jit(lambda i: Index().apply(px.set_knobs(variables, {"i": i}), X[0]))
    assert float(pick(1)) == float(X[0, 1])


def test_a_range_shows_its_bounds_as_given_not_rounded():
    # 6 significant digits: "must be a finite number < 1.23457e+06, got 1234567.0"
    declared = px.Knob("k", 0.0, "", px.Range(lt=1234567))
    with pytest.raises(ValueError, match=r"^knob 'k' must be a finite number < 1234567, got"):
        declared.check(1234567.0)
    assert px.Range(gt=0.9999999, le=2).short() == "(0.9999999, 2]"
    assert str(px.Range(ge=0, lt=0.5)) == "a finite number >= 0 and < 0.5"


def test_an_array_out_of_range_is_named_by_its_first_entry_out():
    # every entry was listed: 1000 of them, some 5000 characters
    values = np.ones(1000)
    values[[500, 700]] = -1.0
    with pytest.raises(ValueError) as raised:
        px.Knob("k", 1.0, "", px.Range(gt=0)).check(values)
    assert str(raised.value) == (
        "knob 'k' must be a finite number > 0, got -1.0 at index (500,) (2 of 1000 entries "
        "out of range)."
    )


def test_a_range_takes_one_lower_bound_at_most():
    with pytest.raises(ValueError, match=r"Range\(gt=0, ge=0\): give one lower"):
        px.Range(gt=0, ge=0)


def test_a_range_given_two_bounds_by_position_is_told_their_names():
    """Range(0, 1) is gt=0, ge=1: it said only to give one lower bound at most."""
    with pytest.raises(ValueError) as info:
        px.Range(0, 1)
    assert str(info.value) == (
        "Range(gt=0, ge=1): give one lower and one upper bound at most (by position, the "
        "bounds are gt, ge, lt, le: name them, e.g. Range(ge=0, le=1))."
    )


def test_knobs_of_a_model_under_nn_jit_are_found_after_its_init():
    # nn.jit reuses the trace of init: no knob is declared in Python, and tweak on
    # params alone raised a bare KeyError
    class Gain(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x * px.knob(self, "gain", 2.0, doc="output gain")

    model = nn.jit(Gain)()
    variables = model.init(jax.random.key(0), X)
    assert list(px.knobs(model, X)) == ["gain"]
    assert float(px.knobs(model, X)["gain"].default) == 2.0
    np.testing.assert_allclose(px.tweak(model, {}, X, {"gain": 3.0}), 3.0 * X)
    np.testing.assert_allclose(px.tweak(model, variables, X, {"gain": 3.0}), 3.0 * X)
    assert px.knobs(model, X)["gain"] == px.Knob("gain", 2.0, "output gain")  # doc was ''


class TwoBounded(nn.Module):
    """Two `Bounded` under one nn.jit: the second reuses the first's trace (nn.jit
    fingerprints no module name), so its knob runs no Python."""

    @nn.compact
    def __call__(self, x):
        block = nn.jit(Bounded)
        return block(name="blocks_1")(block(name="blocks_0")(x))


def test_the_knob_of_a_block_whose_nn_jit_trace_another_made_keeps_its_range():
    # it was listed with no doc nor range: tweak set 1.5, and the block read NaN, no error
    declared = px.knobs(TwoBounded(), X)
    assert declared["blocks_1/p"] == px.Knob("blocks_1/p", 0.5, "share", px.Range(ge=0, lt=1))
    with pytest.raises(ValueError) as error:
        px.tweak(TwoBounded(), {}, X, {"blocks_1/p": 1.5})
    assert str(error.value) == "knob 'blocks_1/p' must be a finite number >= 0 and < 1, got 1.5."


def test_knobs_traced_under_jax_disable_jit_leave_it_disabled():
    # knobs' trace of init turned jit back on inside it (nn.jit's blocks jitted there)
    disabled = []

    class Reads(nn.Module):
        @nn.compact
        def __call__(self, x):
            disabled.append(jax.config.jax_disable_jit)
            return x * px.knob(self, "gain", 2.0)

    with jax.disable_jit():
        assert list(px.knobs(Reads(), X)) == ["gain"]
    assert disabled == [True]


class NoLayers(nn.Module):
    """A knob and a tag after an nn.scan of no layers (length 0)."""

    @nn.compact
    def __call__(self, x):
        scanned = nn.scan(ScanBlock, variable_axes=px.scan_axes(params=0),
                          split_rngs={"params": True}, length=0)  # fmt: skip
        x = scanned(name="blocks")(x, None)[0]
        return px.tag(self, "h", x * px.knob(self, "gain", 2.0))


def test_a_model_under_nn_jit_with_a_scan_of_no_layers_runs_again():
    # a call that reused nn.jit's trace traced again with nn.jit inlined, which unrolls
    # every scan, and JAX cannot unroll one of length 0: knobs, inject and grad_of raised
    model, x = nn.jit(NoLayers)(), jnp.ones((2, WIDTH))
    variables = model.init(jax.random.key(0), x)
    for _ in range(2):
        assert float(px.knobs(model, x)["gain"].default) == 2.0
        np.testing.assert_array_equal(px.inject(model, variables, x, {"h": 3 * x}), 3 * x)
        loss, grads = px.grad_of(lambda y: jnp.sum(y**2), model, variables, x, wrt="h")
        assert float(loss) == 32.0
        np.testing.assert_array_equal(grads["h"], 4 * x)


def test_knob_can_be_vmapped_as_a_grid_axis():
    model, variables = Stack(), init("plain")
    temperatures = jnp.array([0.5, 1.0, 4.0])
    grid = jax.vmap(lambda t: model.apply(px.set_knobs(variables, {"**/T": t}), X))(temperatures)
    for t, out in zip(temperatures, grid, strict=True):
        np.testing.assert_allclose(out, px.tweak(model, variables, X, {"**/T": t}), rtol=1e-6)


class _VectorGain(nn.Module):  # a knob whose default jax computes: a tracer under init
    @nn.compact
    def __call__(self, x):
        return x * px.knob(self, "gain", jnp.full(x.shape[-1], 2.0), doc="per-feature gain")


@pytest.mark.parametrize("model", [_VectorGain(), nn.remat(_VectorGain)()])
def test_a_knob_default_made_with_jax_is_listed_tweaked_and_blurbed_as_its_value(model):
    """Under nn.remat the default is a tracer of remat's own trace, which cannot leave it."""
    [knob] = px.knobs(model, X).values()
    np.testing.assert_array_equal(knob.default, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(px.tweak(model, {}, X, {"gain": 3.0}), 3 * X)
    summary = px.blurb(model, {}, X, measure_latency=False, flops=False)
    assert summary.root.knobs["gain"].default == [2.0, 2.0, 2.0]


class _Bf16Block(nn.Module):  # the README's block, computing in bfloat16
    @nn.compact
    def __call__(self, x):
        return jnp.tanh(nn.Dense(4, dtype=jnp.bfloat16)(x) / px.knob(self, "T", 1.0))


def test_setting_a_knob_keeps_its_weak_type_so_bfloat16_stays_bfloat16():
    model = _Bf16Block()
    variables = model.init(jax.random.key(0), X)
    assert variables["knobs"]["T"].weak_type
    params_only = {"params": variables["params"]}
    assert px.core.with_knobs(model, params_only, X)["knobs"]["T"].weak_type
    assert px.set_knobs(variables, {"T": 2.0})["knobs"]["T"].weak_type
    assert px.set_knobs(variables, {"T": jnp.array(2.0)})["knobs"]["T"].weak_type
    assert model.apply(variables, X).dtype == jnp.bfloat16
    assert px.tweak(model, variables, X, {"T": 1.0}).dtype == jnp.bfloat16
    assert px.tweak(model, params_only, X, {"T": 1.0}).dtype == jnp.bfloat16


@pytest.mark.parametrize("promotion", ["standard", "strict"])
def test_a_bfloat16_knob_takes_a_float32_array(promotion):
    # set by an implicit scatter cast: a FutureWarning ("will result in an error"), and
    # an error where dtype promotion is strict
    variables = {"knobs": {"T": jnp.array(1.0, jnp.bfloat16)}}
    with jax.numpy_dtype_promotion(promotion):
        knob = px.set_knobs(variables, {"T": jnp.float32(2.5)})["knobs"]["T"]
    assert knob.dtype == jnp.bfloat16 and float(knob) == 2.5


def test_a_knob_value_of_the_wrong_shape_or_type_names_the_knob():
    variables = {"knobs": {"block": {"gain": jnp.ones(3)}}}
    np.testing.assert_array_equal(
        px.set_knobs(variables, {"**/gain": jnp.array([1.0, 2.0, 3.0])})["knobs"]["block"]["gain"],
        [1.0, 2.0, 3.0],
    )
    knob = r"^Knob 'block/gain' \(selected by '\*\*/gain'\)"
    message = rf"{knob} has shape \(3,\); a value of shape \(2,\) does not broadcast"
    with pytest.raises(ValueError, match=message):
        px.set_knobs(variables, {"**/gain": jnp.array([1.0, 2.0])})
    with pytest.raises(TypeError, match=rf"{knob} takes a number or an array .* got 'hot'"):
        px.set_knobs(variables, {"**/gain": "hot"})


@pytest.mark.parametrize("knob", [jnp.ones(()), jnp.ones((), jnp.int32)], ids=["float", "int"])
def test_a_bool_for_a_number_knob_is_refused_as_range_bounds_and_layer_sizes_refuse_it(knob):
    """True was taken as 1 (a temperature of True); a bool knob still takes 0 or 1."""
    dtype = knob.dtype.name
    with pytest.raises(TypeError, match=rf"^Knob 'T' holds {dtype}, and a bool is no number "):
        px.set_knobs({"knobs": {"T": knob}}, {"T": True})
    assert px.set_knobs({"knobs": {"T": jnp.zeros((), bool)}}, {"T": 1})["knobs"]["T"]


def test_a_false_for_a_number_knob_is_told_to_give_0():
    """It said "(1 for True)" to a False."""
    with pytest.raises(TypeError, match=r"; give a whole number .* \(1 for True, 0 for False\)\.$"):
        px.set_knobs({"knobs": {"n": jnp.ones((), jnp.int32)}}, {"n": np.False_})


class Capped(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x * px.knob(self, "T", 1.0, valid=px.Range(gt=0, le=1))


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (1.5, ValueError, "knob 'T' (selected by '**') must be a finite number > 0 and <= 1, "),
        (True, TypeError, "Knob 'T' (selected by '**') holds float32, and a bool is no "),
        (jnp.ones(2), ValueError, "Knob 'T' (selected by '**') has shape (); a value of shape"),
    ],
    ids=["range", "bool", "shape"],
)
def test_tweak_refusing_a_value_names_the_selector_that_matched_the_knob(value, error, message):
    """It named the knob alone ('T'), which a broad selector ('**') does not show."""
    with pytest.raises(error) as info:
        px.tweak(Capped(), {}, jnp.ones(1), {"**": value})
    assert str(info.value).startswith(message)


class Activation(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x * px.knob(self, "act", "gelu")


@pytest.mark.parametrize("run", [px.knobs, lambda m, x: m.init(jax.random.key(0), x)])
def test_a_knob_default_that_is_no_number_names_the_knob(run):
    with pytest.raises(TypeError, match=r"Knob 'act' takes a number or an array .* got 'gelu'"):
        run(Activation(), X)


class Defaulted(nn.Module):
    default: object = 1.0

    @nn.compact
    def __call__(self, x):
        return x * px.knob(self, "k", self.default)


@pytest.mark.parametrize(
    ("default", "said"),
    [
        (1e300, r"1e\+300, which its dtype, float32, cannot hold: give a number between"),
        (2**40, r"1099511627776, which its dtype, int32, cannot hold: give a whole number from"),
        # a complex one was told to give "a number between -3.40282e+38 and 3.40282e+38"
        (1e300j, r"1e\+300j, .* complex64, cannot hold: give a number whose real and imagin"),
    ],
)
def test_a_knob_default_its_dtype_cannot_hold_names_the_knob(default, said):
    # 1e300 was a float32 inf, with numpy's overflow warning; 2**40 JAX's bare
    # OverflowError "Python int 1099511627776 too large to convert to int32"
    with pytest.raises(ValueError, match=rf"^Knob 'k' has the default {said}"):
        px.knobs(Defaulted(default), X)


def test_a_long_default_is_cut_with_a_mark_and_its_shape_and_dtype():
    # cut at 60 characters with no mark, the last number read "10995116": another number
    said = r"^Knob 'k' has the default array\(\[1099511627776, .*, 1099511… \(shape \(40,\), "
    with pytest.raises(ValueError, match=said + r"dtype int64\), which its dtype, int32,"):
        px.knobs(Defaulted(np.full(40, 2**40)), X)


def test_a_knob_default_beyond_int64_names_int64_under_x64():
    # it said "which its dtype, int32, cannot hold", JAX's default int without x64
    said = r"^Knob 'k' has the default 1180591620717411303424, which its dtype, int64, cannot "
    with jax.enable_x64(True), pytest.raises(ValueError, match=said + r"hold: give .* to 92"):
        px.knobs(Defaulted(2**70), X)


def test_an_integer_knob_refuses_a_value_it_cannot_hold_a_float_one_rounds():
    variables = {
        "knobs": {"k": jnp.array(2), "b": jnp.array(True), "f": jnp.ones((), jnp.bfloat16)}
    }
    assert px.set_knobs(variables, {"k": 3.0})["knobs"]["k"].tolist() == 3
    assert float(px.set_knobs(variables, {"f": 0.1})["knobs"]["f"]) == pytest.approx(0.1, 0.01)
    assert px.set_knobs(variables, {"f": float("inf")})["knobs"]["f"].tolist() == float("inf")
    for selector, value in [("k", 2.5), ("k", float("nan")), ("k", 2**40), ("b", 2)]:
        with pytest.raises(ValueError, match=rf"Knob '{selector}' holds .*, which cannot hold"):
            px.set_knobs(variables, {selector: value})
    # 1e300 for a bfloat16 knob was inf, with numpy's "overflow encountered in cast"
    with pytest.raises(ValueError, match=r"'f' holds bfloat16, .* 1e\+300; give a number betw"):
        px.set_knobs(variables, {"f": 1e300})
    with pytest.raises(ValueError, match=r"'f' holds bfloat16, .* 1e\+300; give a number betw"):
        px.set_knobs(variables, {"f": np.array(1e300)})  # numpy's overflow warning came first
    # 2 + 1j for it was 2, its imaginary part dropped with numpy's ComplexWarning
    with pytest.raises(ValueError, match=r"'f' holds bfloat16, which cannot hold \(2\+1j\); give"):
        px.set_knobs(variables, {"f": 2 + 1j})
    set_under_jit = lambda value: jax.jit(lambda: px.set_knobs(variables, {"k": value}))()
    assert set_under_jit(3.0)["knobs"]["k"].tolist() == 3
    with pytest.raises(ValueError, match=r"^Knob 'k' holds int32, which cannot hold 2.5; give"):
        set_under_jit(2.5)  # it was set to 2: the check was skipped for a traced array


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (
            np.full(40, 2.5),
            "array([2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.… (shape (40,), dtype "
            "float64)",
        ),
        (  # beyond JAX's default int: the OverflowError's path
            [2**70] * 40,
            "[1180591620717411303424, 1180591620717411303424, 1180591620…",
        ),
    ],
    ids=["fraction", "overflow"],
)
def test_an_array_an_integer_knob_cannot_hold_is_named_in_one_short_line(value, said):
    """The message held every entry, on three lines, or on one of 1000 characters."""
    variables = {"knobs": {"k": jnp.zeros(40, jnp.int32)}}
    with pytest.raises(ValueError) as error:
        px.set_knobs(variables, {"k": value})
    assert str(error.value) == (
        f"Knob 'k' holds int32, which cannot hold {said}; give a whole number from "
        "-2147483648 to 2147483647."
    )


def test_inject_the_probed_value_changes_nothing():
    model, variables = Stack(), init("plain")
    out, found = px.probe(model, variables, X, "blocks_1/pre_act")
    np.testing.assert_array_equal(px.inject(model, variables, X, found), out)


def test_inject_replaces_downstream_values_only():
    model, variables = Stack(), init("plain")
    zeros = jnp.zeros((2, WIDTH))
    tree = px.core.injections(model, variables, X, {"blocks_1/pre_act": zeros})
    _, after = px.probe(model, {**variables, "injections": tree}, X)
    _, base = px.probe(model, variables, X)
    np.testing.assert_array_equal(after["blocks_0/out"], base["blocks_0/out"])
    np.testing.assert_array_equal(after["blocks_1/out"], zeros)
    assert not np.allclose(after["blocks_2/out"], base["blocks_2/out"])


def test_inject_wrong_shape_names_path_and_shapes():
    with pytest.raises(ValueError, match=r"'blocks_1/pre_act' has shape \(3, 4\).*shape \(2, 4\)"):
        px.inject(Stack(), init("plain"), X, {"blocks_1/pre_act": jnp.zeros((3, WIDTH))})


@pytest.mark.parametrize("value", [0.0, jnp.zeros(WIDTH)])
def test_inject_of_a_value_that_broadcasts_is_refused_saying_how_to_give_the_shape(value):
    # it named both shapes alone, though set_knobs broadcasts a knob's value: no way out said
    with pytest.raises(ValueError) as info:
        px.inject(Stack(), init("plain"), X, {"blocks_1/pre_act": value})
    assert str(info.value).endswith(
        f"An injected value is not broadcast: give jnp.full((2, {WIDTH}), value, jnp.float32)."
    )


class TagsKeys(nn.Module):
    @nn.compact
    def __call__(self, x):
        keys = px.tag(self, "keys", jax.random.split(jax.random.key(0), 2))
        return x + jax.random.uniform(keys[0], ())


def test_inject_of_one_key_for_tagged_keys_is_refused_naming_shapes_and_how_to_give_them():
    # building the hint raised TypeError: Cannot interpret 'key<fry>' as a data type
    with pytest.raises(
        ValueError, match=r"key<fry>\. .* give jnp\.broadcast_to\(value, \(2,\)\)\.$"
    ):
        px.inject(TagsKeys(), {}, jnp.ones(2), {"keys": jax.random.key(1)})
    hint = jnp.broadcast_to(jax.random.key(1), (2,))  # as the refusal says
    assert px.inject(TagsKeys(), {}, jnp.ones(2), {"keys": hint}).shape == (2,)


def test_inject_of_raw_keys_for_typed_ones_is_told_to_wrap_them():
    """It named both shapes and dtypes alone: uint32 (2, 2) against key<fry> (2,)."""
    raw = jax.random.split(jax.random.PRNGKey(1), 2)
    with pytest.raises(ValueError) as info:
        px.inject(TagsKeys(), {}, jnp.ones(2), {"keys": raw})
    assert str(info.value) == (
        "Injected value for 'keys' has shape (2, 2) and dtype uint32, but the tagged value "
        "there has shape (2,) and dtype key<fry>. A raw key is no typed one: give "
        "jax.random.wrap_key_data(value)."
    )
    wrapped = jax.random.wrap_key_data(raw)  # as the refusal says
    expected = 1 + jax.random.uniform(wrapped[0], ())
    out = px.inject(TagsKeys(), {}, jnp.ones(2), {"keys": wrapped})
    np.testing.assert_array_equal(out, jnp.full(2, expected))


class TagsRawKey(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x + jax.random.uniform(px.tag(self, "key", jax.random.PRNGKey(0)), ())


def test_inject_of_a_typed_key_for_a_raw_one_is_told_to_take_its_data():
    with pytest.raises(ValueError, match=r"A typed key is no raw one: give jax\.random\.key_data"):
        px.inject(TagsRawKey(), {}, jnp.ones(2), {"key": jax.random.key(1)})
    out = px.inject(TagsRawKey(), {}, jnp.ones(2), {"key": jax.random.key_data(jax.random.key(1))})
    np.testing.assert_array_equal(
        out, jnp.full(2, 1 + jax.random.uniform(jax.random.PRNGKey(1), ()))
    )


class TagsIdsAndRbgKey(nn.Module):
    @nn.compact
    def __call__(self, x):
        ids = px.tag(self, "ids", jnp.arange(5, dtype=jnp.uint32))
        key = px.tag(self, "key", jax.random.key(0, impl="rbg"))
        return x + ids.sum() + jax.random.uniform(key, ())


@pytest.mark.parametrize(
    ("path", "value", "given", "tagged"),
    [
        ("ids", jax.random.key(1), "() and dtype key<fry>", "(5,) and dtype uint32"),
        ("key", jax.random.PRNGKey(1), "(2,) and dtype uint32", "() and dtype key<rbg>"),
    ],
)
def test_inject_of_a_key_where_no_such_key_is_tagged_gives_no_key_fix(path, value, given, tagged):
    """A typed key for five uint32 ids was told to give key_data (a pair), and a raw
    threefry key for an rbg one to give wrap_key_data (a threefry key): both refused."""
    with pytest.raises(ValueError) as info:
        px.inject(TagsIdsAndRbgKey(), {}, jnp.ones(2), {path: value})
    assert str(info.value) == (
        f"Injected value for {path!r} has shape {given}, but the tagged value there has "
        f"shape {tagged}."
    )


def test_two_selectors_that_match_one_path_are_refused_naming_both():
    model, variables = Stack(), init("plain")
    zeros = jnp.zeros((2, WIDTH))
    with pytest.raises(
        ValueError,
        match=r"^Selectors '\*\*/pre_act' and 'blocks_1/pre_act' both match tagged value "
        r"'blocks_1/pre_act'; give each tagged value one value",
    ):
        px.inject(model, variables, X, {"**/pre_act": zeros, "blocks_1/pre_act": zeros + 1})
    with pytest.raises(
        ValueError, match=r"^Selectors 'blocks_\*/T' and '\*\*/T' both match knob 'blocks_0/T'"
    ):
        px.tweak(model, variables, X, {"blocks_*/T": 2.0, "**/T": 3.0})


def test_inject_wrong_dtype_names_both():
    bad = jnp.zeros((2, WIDTH), jnp.int32)
    with pytest.raises(ValueError, match=r"dtype int32.*dtype float32"):
        px.inject(Stack(), init("plain"), X, {"blocks_1/pre_act": bad})


def test_inject_of_a_bfloat16_value_for_a_float32_tag_is_told_to_cast_it():
    # it named both dtypes alone, no way out said
    value = jnp.ones((2, WIDTH), jnp.bfloat16)
    with pytest.raises(ValueError) as info:
        px.inject(Stack(), init("plain"), X, {"blocks_1/pre_act": value})
    assert str(info.value) == (
        f"Injected value for 'blocks_1/pre_act' has shape (2, {WIDTH}) and dtype bfloat16, but "
        f"the tagged value there has shape (2, {WIDTH}) and dtype float32. An injected value "
        "is not cast: give value.astype(jnp.float32)."
    )
    cast = {"blocks_1/pre_act": value.astype(jnp.float32)}  # as the refusal says
    assert px.inject(Stack(), init("plain"), X, cast).dtype == jnp.float32


class Shared(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", x)


class CalledTwice(nn.Module):
    """Returns ``2 * first + second``, the values its shared module tags at ``s/h``."""

    @nn.compact
    def __call__(self, x):
        shared = Shared(name="s")
        return 2.0 * shared(x) + shared(x + 1.0)


def test_inject_takes_one_value_per_call_of_a_module_called_several_times():
    """inject refused a value tagged by several calls (a shared layer, an RNN cell in a
    loop), though probe returns one value per call and grad_of differentiates each."""
    x, a, b = jnp.array([1.0, 2.0]), jnp.array([5.0, 6.0]), jnp.array([-1.0, 3.0])
    out, found = px.probe(CalledTwice(), {}, x)
    np.testing.assert_array_equal(px.inject(CalledTwice(), {}, x, found), out)
    np.testing.assert_array_equal(px.inject(CalledTwice(), {}, x, {"s/h": (a, b)}), 2 * a + b)
    tree = px.core.injections(CalledTwice(), {}, x, {"s/h": (a, b)})
    injected, state = CalledTwice().apply({"injections": tree}, x, mutable=["intermediates"])
    np.testing.assert_array_equal(injected, 2 * a + b)
    first, second = state["intermediates"]["s"]["h"]
    np.testing.assert_array_equal(first, a)
    np.testing.assert_array_equal(second, b)
    with pytest.raises(ValueError, match=r"'s/h' has an injected value for each of 2 calls"):
        CalledTwice().apply({"injections": tree}, x)


class SkipsWhenInjected(nn.Module):
    """Tags a placeholder instead of computing ``h`` when ``h`` is injected, as a graph
    model's skipped node does: the tag's value then has another structure."""

    @nn.compact
    def __call__(self, x):
        injected = self.has_variable("injections", "h")
        return px.tag(self, "h", None if injected else (x, 2 * x))


def test_an_injection_replaces_a_placeholder_of_another_structure_whole():
    """Per-call injections were told by structure: the injected pair, unlike the None
    tagged, was taken for one value per call (graph models' px.inject broke)."""
    x, pair = jnp.ones(2), (jnp.zeros(2), jnp.ones(2))
    out = px.inject(SkipsWhenInjected(), {}, x, {"h": pair})
    np.testing.assert_array_equal(out[0], pair[0])
    np.testing.assert_array_equal(out[1], pair[1])


@pytest.mark.parametrize(
    "value, message",
    [
        (
            jnp.zeros(2),
            r"a tuple of 2 values, one per call of tag \(as px.probe returns them\), got an "
            r"ArrayImpl of shape \(2,\)\.$",
        ),
        ((jnp.zeros(2),), r"a tuple of 2 values, one per call .*, got a tuple of 1"),
        (1.0, r"one per call of tag .*, got a float\.$"),
        ((jnp.zeros(2), jnp.zeros(3)), r"'s/h' \(call 2 of 2\) has shape \(3,\) .* \(2,\)"),
    ],
    ids=["one value", "one item", "a number", "wrong shape"],
)
def test_inject_names_what_a_value_tagged_by_several_calls_takes(value, message):
    with pytest.raises(ValueError, match=message):
        px.inject(CalledTwice(), {}, jnp.array([1.0, 2.0]), {"s/h": value})


class TagsTwice(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", x) + px.tag(self, "h", 3 * x)


def test_inject_refusing_a_value_names_the_selector_that_matched_the_tagged_value():
    """It named the path alone ('d'), which a selector matching more than meant ('*' for
    'pair') does not show."""
    pair = (V, 3 * V)
    with pytest.raises(ValueError) as info:
        px.inject(Pytrees(), {}, V, {"*": pair})
    assert str(info.value) == (
        "Injected value for 'd' (selected by '*') has structure PyTreeDef((*, *)), but the "
        "tagged value there has structure PyTreeDef({'a': *, 'b': *})."
    )
    with pytest.raises(ValueError, match=r"^Cannot inject 'h' \(selected by '\*'\): it is"):
        px.inject(TagsTwice(), {}, jnp.ones(2), {"*": jnp.zeros(2)})


class TagsAList(nn.Module):
    @nn.compact
    def __call__(self, x):
        a, b = px.tag(self, "pair", [x, 2 * x])
        return a + px.tag(self, "nested", {"n": (b,)})["n"][0]


@pytest.mark.parametrize(
    ("values", "hint"),
    [
        ({"pair": (X, X)}, "It is a tuple where the tagged value holds a list: give a list."),
        ({"nested": {"n": [X]}}, "It holds a list at ['n'] where the tagged value holds a tuple"),
    ],
    ids=["top", "nested"],
)
def test_inject_of_a_tuple_for_a_tagged_list_says_so(values, hint):
    """It showed PyTreeDef((*, *)) beside PyTreeDef([*, *]) alone, which read alike."""
    with pytest.raises(ValueError) as info:
        px.inject(TagsAList(), {}, X, values)
    assert hint in str(info.value)
    np.testing.assert_allclose(px.inject(TagsAList(), {}, X, {"pair": [X, X]}), 2 * X)


def test_inject_of_a_name_tagged_twice_in_one_call_says_so_and_takes_a_value_per_tag():
    # it said "tagged by 2 calls of one module", which a module called once is not
    with pytest.raises(ValueError, match=r"^Cannot inject 'h': it is tagged 2 times \(by a "):
        px.inject(TagsTwice(), {}, jnp.ones(2), {"h": jnp.zeros(2)})
    out = px.inject(TagsTwice(), {}, jnp.ones(2), {"h": (jnp.zeros(2), jnp.ones(2))})
    assert out.tolist() == [1.0, 1.0]


class Sown(nn.Module):
    """Tags ``h`` and also sows it, as plain Flax code does, as ``feature``."""

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(3)(x)
        self.sow("intermediates", "feature", h)
        return jnp.sum(jnp.tanh(px.tag(self, "h", h)) ** 2)


def test_a_model_under_nn_jit_is_probed_injected_and_differentiated_again_and_again():
    # nn.jit reuses its trace from an earlier call with the same mutable collections:
    # no tag runs in Python there, so none is seen (it must not read as sown or missed)
    model = nn.jit(Sown)()
    variables = model.init(jax.random.key(0), X)
    for _ in range(2):
        found = px.probe(model, variables, X)[1]
        assert set(found) == {"feature", "h"}
        grads = px.grad_of(lambda y: y, model, variables, X, wrt="h")[1]
        via_inject = jax.grad(lambda h: px.inject(model, variables, X, {"h": h}))(found["h"])
        np.testing.assert_allclose(grads["h"], via_inject, rtol=1e-6)
        assert float(jnp.max(jnp.abs(via_inject))) > 0

        with pytest.raises(
            px.SelectorError, match=r"'feature' in 'intermediates', which Flax's sow"
        ):
            px.inject(model, variables, X, {"feature": found["feature"]})  # on a reused trace too


class TwoBlocks(nn.Module):
    """Two `Block` s, each under nn.jit or not; nn.jit fingerprints no module name, so the
    second reuses the first's trace, and no tag of it runs in Python."""

    jitted: bool = True

    @nn.compact
    def __call__(self, x):
        block = nn.jit(Block) if self.jitted else Block
        for i in range(2):
            x = block(name=f"blocks_{i}")(x)
        return x


def test_tags_of_a_block_whose_nn_jit_trace_another_made_are_differentiated_and_injected():
    # the second block's tags read as Flax's sow: grad_of "**/pre_act" left it out, and
    # inject refused it
    x = jnp.linspace(-1.0, 1.0, 2 * WIDTH).reshape(2, WIDTH)
    variables = TwoBlocks(jitted=False).init(jax.random.key(0), x)
    loss = lambda out: jnp.sum(out**2)
    value = jnp.full((2, WIDTH), 0.3)
    results = [
        (
            px.grad_of(loss, model, variables, x, wrt="**/pre_act"),
            px.inject(model, variables, x, {"blocks_1/pre_act": value}),
            sorted(px.core.tag_shapes(model, variables, x)),
        )
        for model in (TwoBlocks(jitted=True), TwoBlocks(jitted=False))
    ]
    jitted, plain = results
    tags = ["blocks_0/out", "blocks_0/pre_act", "blocks_1/out", "blocks_1/pre_act"]
    assert jitted[2] == plain[2] == tags
    assert list(jitted[0][1]) == ["blocks_0/pre_act", "blocks_1/pre_act"]
    assert_trees_close(jitted[:2], plain[:2], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(jitted[1], jnp.tanh(value), rtol=1e-6)  # the injected value


def test_tag_shapes_lists_the_tags_not_what_flax_sowed():
    # its shapes are what inject takes: a sown value among them is refused there
    variables = Sown().init(jax.random.key(0), X)
    shapes = px.core.tag_shapes(Sown(), variables, X)
    assert set(shapes) == {"h"}
    zeros = {path: jnp.zeros(s.shape, s.dtype) for path, s in shapes.items()}
    assert float(px.inject(Sown(), variables, X, zeros)) == 0.0


@pytest.mark.parametrize("transform", ["inject", "grad_of"])
def test_a_value_flax_sowed_is_probed_but_refused_by_inject_and_grad_of(transform):
    # sow writes to the same collection; neither transform can reach such a value, so
    # they returned the output unchanged and a zero gradient
    variables = Sown().init(jax.random.key(0), X)
    assert set(px.probe(Sown(), variables, X)[1]) == {"feature", "h"}
    run = {
        "inject": lambda sel: px.inject(Sown(), variables, X, {sel: jnp.zeros((2, 3))}),
        "grad_of": lambda sel: px.grad_of(lambda y: y, Sown(), variables, X, wrt=sel)[1],
    }[transform]
    with pytest.raises(px.SelectorError, match=r"'feature' in 'intermediates', which Flax's sow"):
        run("feature")
    assert set(px.grad_of(lambda y: y, Sown(), variables, X, wrt="**")[1]) == {"h"}


@pytest.mark.parametrize("kind", KINDS)
def test_grad_of_equals_gradient_through_injection(kind):
    """Two mechanisms, perturbation and injection, give one gradient."""
    model, variables, path = Stack(kind), init(kind), pre_act_path(kind)
    loss = lambda out: jnp.sum(jnp.sin(out))
    _, found = px.probe(model, variables, X, path)
    value, grads = px.grad_of(loss, model, variables, X, wrt=path)
    via_inject = jax.grad(lambda h: loss(px.inject(model, variables, X, {path: h})))
    expected = via_inject(found[path])
    if kind == "scan":  # injecting every layer cuts the earlier ones off: compare the last
        grads[path], expected = grads[path][-1], expected[-1]
    assert float(jnp.max(jnp.abs(expected))) > 0
    np.testing.assert_allclose(grads[path], expected, rtol=1e-5, atol=1e-7)
    assert float(value) == pytest.approx(float(loss(model.apply(variables, X))))


def test_grad_of_rejects_integer_tags():
    class Counts(nn.Module):
        @nn.compact
        def __call__(self, x):
            px.tag(self, "count", jnp.sum(x > 0))
            return x

    with pytest.raises(TypeError, match=r"'count'.*int32"):
        px.grad_of(jnp.sum, Counts(), {}, X, wrt="count")


def test_tweak_reaches_knobs_under_scan_with_default_scan_axes():
    """``scan_axes(params=0)``, as the README says, keeps one knob per layer."""
    model, variables = Stack("scan"), init("scan")
    assert variables["knobs"]["blocks"]["Block_0"]["T"].shape == (DEPTH,)
    _, base = px.probe(model, variables, X, "**/pre_act")
    out, after = px.probe(model, px.set_knobs(variables, {"**/T": 100.0}), X, "**/pre_act")
    pre_act = after["blocks/Block_0/pre_act"]
    np.testing.assert_array_equal(pre_act[0], base["blocks/Block_0/pre_act"][0])
    head = variables["params"]["head"]
    last = jnp.tanh(pre_act[-1] / 100.0)
    np.testing.assert_allclose(out, last @ head["kernel"] + head["bias"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(px.tweak(model, variables, X, {"**/T": 100.0}), out)
    assert not np.allclose(out, model.apply(variables, X))


def test_a_scan_that_drops_phosjax_s_collections_is_named_in_the_selector_error():
    class Dropping(nn.Module):
        """A scan whose variable_axes list only params: Flax drops the other collections."""

        @nn.compact
        def __call__(self, x):
            scanned = nn.scan(
                ScanBlock, variable_axes={"params": 0}, split_rngs={"params": True}, length=DEPTH
            )
            return scanned(name="blocks")(x, None)[0]

    model, x = Dropping(), jnp.ones((2, WIDTH))
    variables = model.init(jax.random.key(0), x)
    with pytest.raises(px.SelectorError, match=r"no tagged value: .*nn.scan.*scan_axes"):
        px.probe(model, variables, x, "**/pre_act")
    with pytest.raises(px.SelectorError, match=r"no knob: .*nn.scan.*scan_axes"):
        px.tweak(model, variables, x, {"**/T": 2.0})
    # a typo, where the scan dropped every one: "there are none" alone was false
    for what, made, run in (
        ("tagged value", "'blocks/Block_0/pre_act', 'blocks/Block_0/out'", px.probe),
        ("knob", "'blocks/Block_0/T'", lambda m, v, x, s: px.tweak(m, v, x, {s: 2.0})),
    ):
        with pytest.raises(px.SelectorError) as error:
            run(model, variables, x, "typo")
        assert str(error.value) == (
            f"Selector 'typo' matched no {what}: there are none. A lifted transform dropped "
            f"every one made ({made}): nn.scan (or nn.vmap) keeps a {what} made inside it "
            "only if its variable_axes list phosjax's collections: "
            "variable_axes=px.scan_axes(params=0)."
        )


def test_a_selector_that_misses_says_how_a_scan_drops_values_only_where_one_did():
    """Every miss carried the nn.scan hint, a typo in a model without any scan too."""

    class PartlyDropping(nn.Module):
        """A tag and a knob outside a scan that drops phosjax's collections."""

        @nn.compact
        def __call__(self, x):
            x = px.tag(self, "stem", x * px.knob(self, "gain", 1.0))
            scanned = nn.scan(
                ScanBlock, variable_axes={"params": 0}, split_rngs={"params": True}, length=DEPTH
            )
            return jnp.sum(scanned(name="blocks")(x, None)[0])

    typos = {
        "probe": lambda m, v: px.probe(m, v, X, "blocks_1/pre_actt"),
        "inject": lambda m, v: px.inject(m, v, X, {"blocks_1/pre_actt": jnp.zeros((2, WIDTH))}),
        "grad_of": lambda m, v: px.grad_of(jnp.sum, m, v, X, wrt="blocks_1/pre_actt"),
    }
    model = Stack()
    variables = model.init(jax.random.key(0), X)
    for name, run in typos.items():
        with pytest.raises(px.SelectorError) as error:
            run(model, variables)
        assert str(error.value).startswith(
            "Selector 'blocks_1/pre_actt' matched no tagged value among"
        ), name
        assert "nearest: 'blocks_1/pre_act'" in str(error.value), name
        assert "nn.scan" not in str(error.value), name
    with pytest.raises(px.SelectorError) as error:
        px.tweak(model, variables, X, {"blocks_1/TT": 2.0})
    assert "nearest: 'blocks_1/T'" in str(error.value) and "nn.scan" not in str(error.value)

    model, x = PartlyDropping(), jnp.ones((2, WIDTH))
    variables = model.init(jax.random.key(0), x)
    path = "blocks/Block_0/pre_act"
    dropped = {
        "probe": lambda: px.probe(model, variables, x, path),
        "inject": lambda: px.inject(model, variables, x, {path: jnp.zeros((DEPTH, 2, WIDTH))}),
        "grad_of": lambda: px.grad_of(lambda y: y, model, variables, x, wrt=path),
    }
    said = (
        rf"^Selector '{path}' matched no tagged value among 1; nearest: 'stem'\. It matches "
        rf"'{path}', which a lifted transform dropped: nn\.scan \(or nn\.vmap\) keeps a "
        r"tagged value made inside it only if its variable_axes list phosjax's collections: "
        r"variable_axes=px\.scan_axes\(params=0\)\.$"
    )
    for run in dropped.values():
        with pytest.raises(px.SelectorError, match=said):
            run()
    knob = r"It matches 'blocks/Block_0/T', which a lifted transform dropped: .* keeps a knob"
    with pytest.raises(px.SelectorError, match=rf"^Selector '\*\*/T' matched no knob .*{knob}"):
        px.tweak(model, variables, x, {"**/T": 2.0})


def test_knobs_whose_default_jax_makes_are_listed_in_the_order_declared():
    """Read from the values init stores, they came in path order (b before z), unlike
    knobs with Python defaults."""

    class Gains(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x * px.knob(self, "z", jnp.ones(2)) * px.knob(self, "b", jnp.ones(2))

    assert list(px.knobs(Gains(), jnp.ones(2))) == ["z", "b"]


def test_a_knob_a_scan_drops_is_not_listed_as_one_to_set():
    """px.knobs listed it, though no value can be set (the engine then blamed the params
    alone), and one whose default jax makes raised KeyError in knobs, tweak and blurb;
    blurb listed one whose default is a Python number."""

    def dropping(default):
        class Scaled(nn.Module):
            @nn.compact
            def __call__(self, x, _):
                return nn.Dense(WIDTH)(x) * px.knob(self, "gain", default), None

        class Dropping(nn.Module):
            @nn.compact
            def __call__(self, x):
                return nn.scan(Scaled, variable_axes={"params": 0}, split_rngs={"params": True},
                               length=DEPTH)(name="blocks")(x, None)[0]  # fmt: skip

        return Dropping()

    x = jnp.ones((2, WIDTH))
    for default in (2.0, jnp.full(WIDTH, 2.0)):  # blurb listed the first, as knobs did
        model = dropping(default)
        assert px.knobs(model, x) == {}
        variables = model.init(jax.random.key(0), x)
        summary = px.blurb(model, variables, x, measure_latency=False, flops=False)
        assert [m.knobs for m in summary.modules().values()] == [{}, {}, {}]
    with pytest.raises(px.SelectorError, match="'blocks/gain', which a lifted transform dropped"):
        px.tweak(model, variables, x, {"**/gain": 3.0})


class KeepsIntermediates(nn.Module):
    """Flax's own idiom: a scan whose variable_axes keep the tagged values alone."""

    @nn.compact
    def __call__(self, x):
        axes = {"params": 0, "intermediates": 0, "knobs": 0}
        scanned = nn.scan(ScanBlock, variable_axes=axes, split_rngs={"params": True},
                          length=DEPTH)  # fmt: skip
        return jnp.sum(scanned(name="blocks")(x, None)[0] ** 2)


@pytest.mark.parametrize("transform", ["inject", "grad_of"])
def test_a_scan_that_keeps_intermediates_but_drops_the_transform_s_collection_is_an_error(
    transform,
):
    # probe sees the tags, but the injection or perturbation was dropped on the way in:
    # the output came back unchanged, the gradient zero
    model, x = KeepsIntermediates(), jnp.ones((2, WIDTH))
    variables = model.init(jax.random.key(0), x)
    path = "blocks/Block_0/pre_act"
    assert set(px.probe(model, variables, x)[1]) == {path, "blocks/Block_0/out"}
    run = {
        "inject": lambda: px.inject(model, variables, x, {path: jnp.zeros((DEPTH, 2, WIDTH))}),
        "grad_of": lambda: px.grad_of(lambda y: y, model, variables, x, wrt=path),
    }[transform]
    collection = {"inject": "injections", "grad_of": "perturbations"}[transform]
    match = rf"'{collection}' entry for '{path}' never reached its tag: .*scan_axes"
    with pytest.raises(ValueError, match=match):
        run()


def test_an_entry_dropped_in_a_trace_nn_jit_reuses_is_an_error_too():
    # the second call ran the first's trace, where no tag runs in Python: the injection
    # was ignored and the gradient zero, with no error
    model, x = nn.jit(KeepsIntermediates)(), jnp.ones((2, WIDTH))
    variables = model.init(jax.random.key(0), x)
    path = "blocks/Block_0/pre_act"
    for collection, run in (
        (
            "injections",
            lambda: px.inject(model, variables, x, {path: jnp.zeros((DEPTH, 2, WIDTH))}),
        ),
        ("perturbations", lambda: px.grad_of(lambda y: y, model, variables, x, wrt=path)),
    ):
        for _ in range(2):
            with pytest.raises(ValueError) as error:
                run()
            assert str(error.value).startswith(
                f"The {collection!r} entry for {path!r} never reached its tag: a lifted "
                f"transform (nn.scan, nn.vmap...) whose variable_axes omit {collection!r}"
            )


def test_tweak_under_scan_without_knob_collection_uses_stacked_defaults():
    model, variables = Stack("scan"), init("scan")
    params_only = {"params": variables["params"]}
    np.testing.assert_array_equal(
        px.tweak(model, params_only, X, {"**/T": 3.0}),
        px.tweak(model, variables, X, {"**/T": 3.0}),
    )


V = jnp.array([0.5, -1.0, 2.0])


def test_inject_a_pytree_replaces_each_leaf():
    value = {"a": jnp.array([1.0, 2.0, 3.0]), "b": jnp.zeros(3)}
    pair = (jnp.ones(3), jnp.array([1.0, 0.0, 2.0]))
    out = px.inject(Pytrees(), {}, V, {"d": value, "pair": pair})
    assert float(out) == pytest.approx(1 + 4 + 9 + 0 + 3)


def test_inject_reads_a_list_for_a_tagged_array_as_that_array():
    # it was taken for a pytree of numbers: "has structure PyTreeDef([[*, *, *, *], ...]),
    # but the tagged value there has structure PyTreeDef(*)"
    path, value = pre_act_path("plain"), jnp.full((2, WIDTH), 0.25)
    got = px.inject(Stack(), init("plain"), X, {path: value.tolist()})
    np.testing.assert_array_equal(got, px.inject(Stack(), init("plain"), X, {path: value}))
    with pytest.raises(ValueError, match=r"has shape \(1, 4\) .* shape \(2, 4\)"):
        px.inject(Stack(), init("plain"), X, {path: value[:1].tolist()})


def test_inject_reads_a_list_of_whole_numbers_as_the_tagged_dtype():
    # [[0, 1, ...]] was an int32 array: "has shape (2, 4) and dtype int32, but the tagged
    # value there has shape (2, 4) and dtype float32"
    path, value = pre_act_path("plain"), jnp.arange(2 * WIDTH).reshape(2, WIDTH)
    got = px.inject(Stack(), init("plain"), X, {path: value.tolist()})
    want = px.inject(Stack(), init("plain"), X, {path: value.astype(jnp.float32)})
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=r"dtype int32, but the tagged value .* float32"):
        px.inject(Stack(), init("plain"), X, {path: value})  # an array keeps its dtype
    # a list of complex numbers "has structure PyTreeDef([[*, *, *, *], [*, *, *, *]])"
    with pytest.raises(ValueError, match=r"dtype complex64, but the tagged value .* float32"):
        px.inject(Stack(), init("plain"), X, {path: (value + 1j).tolist()})


def test_inject_reads_a_python_number_as_the_tagged_dtype():
    """0 for a float32 tag (a scalar, or a pytree's leaf) was an int32: 'has shape () and
    dtype int32, but the tagged value there has shape () and dtype float32'."""
    assert float(px.inject(Counted(), {}, jnp.ones(3), {"s": 0})) == 3.0
    assert float(px.inject(Counted(), {}, jnp.ones(3), {"pair": (2, 0.5)})) == 7.0
    # 2**40, which float32 holds, was an OverflowError: "too large to convert to int32"
    big = [px.inject(Counted(), {}, jnp.ones(3), {"s": s}) for s in (2**40, jnp.float32(2**40))]
    assert big[0].tolist() == big[1].tolist() == 4 * 2**40  # 2**40 + 3 + 3 * 2**40, rounded
    with pytest.raises(ValueError, match=r"dtype float32, but the tagged value .* int32"):
        px.inject(Counted(), {}, jnp.ones(3), {"n": 2.5})  # an int tag cannot hold 2.5
    # 2**40 for it was JAX's bare OverflowError "Python int ... too large to convert to int32"
    message = r"^Injected value for '{}' holds a number out of the range of the tagged value's "
    message += r"dtypes there \({}\): got {}\.$"
    int32 = "int32: a whole number from -2147483648 to 2147483647"
    with pytest.raises(ValueError, match=message.format("n", int32, 2**40)):
        px.inject(Counted(), {}, jnp.ones(3), {"n": 2**40})
    float32 = r"float32: a number between -3.40282e\+38 and 3.40282e\+38"
    pair = message.format("pair", f"{float32}, {int32}", r"\(1099511627776, 0\)")
    with pytest.raises(ValueError, match=pair):
        px.inject(Counted(), {}, jnp.ones(3), {"pair": (2**40, 0)})
    # a float32 tag read 1e300 and 2**200 as inf, with numpy's "overflow encountered in cast"
    for huge, shown in [(1e300, r"1e\+300"), (2**200, str(2**200)[:59] + "…")]:
        jit_noted = message.format("s", float32, shown).removesuffix("$")  # jax adds a note
        with pytest.raises(ValueError, match=jit_noted):
            jax.jit(lambda huge=huge: px.inject(Counted(), {}, jnp.ones(3), {"s": huge}))()
    assert float(px.inject(Counted(), {}, jnp.ones(3), {"s": float("inf")})) == float("inf")
    # a numpy float64 or int64 array, which JAX reads as float32 or int32, became inf (with
    # numpy's overflow warning) or wrapped round (2**40 as 0) silently
    for tag, huge, dtype, shown in [
        ("s", np.array(1e300), float32, r"array\(1\.e\+300\)"),
        ("n", np.array(2**40), int32, r"array\(1099511627776\)"),
    ]:
        with pytest.raises(ValueError, match=message.format(tag, dtype, shown)):
            px.inject(Counted(), {}, jnp.ones(3), {tag: huge})
    assert float(px.inject(Counted(), {}, jnp.ones(3), {"n": np.array(2)})) == 11.0
    # each named as given, not as JAX reads it: "dtype int32" of an int64 array
    with pytest.raises(ValueError, match=r"dtype int64, but the tagged value .* float32"):
        px.inject(Counted(), {}, jnp.ones(3), {"s": np.array(2**40)})  # no overflow: int
    with pytest.raises(ValueError, match=r"dtype float64, but the tagged value .* int32"):
        px.inject(Counted(), {}, jnp.ones(3), {"n": np.array(1e300)})  # not numpy's warning


def test_inject_reads_python_numbers_for_an_int_tag_under_jit():
    # under jit, 2 for the int32 'n' was a TracerArrayConversionError (its traced array was
    # checked for whole numbers), and [i, 1] holding a traced int "has structure [*, *]"
    assert float(jax.jit(lambda: px.inject(Counted(), {}, jnp.ones(3), {"n": 2}))()) == 11.0

    class Picks(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x[px.tag(self, "i", jnp.arange(2))]

    pick = jax.jit(lambda i: px.inject(Picks(), {}, jnp.arange(3.0), {"i": [i, 1]}))
    assert pick(jnp.int32(2)).tolist() == [2.0, 1.0]


class Counted(nn.Module):
    """Tags a float scalar 's', an int 'n' and a pair of them."""

    @nn.compact
    def __call__(self, x):
        s = px.tag(self, "s", x.sum())
        n = px.tag(self, "n", jnp.int32(x.shape[0]))
        a, b = px.tag(self, "pair", (n, s))
        return s + n + a * b


def test_an_injected_weakly_typed_value_keeps_the_models_output_dtype():
    """jnp.full(shape, 3.0) is weakly typed: times a bfloat16 array, the output was
    bfloat16, where the model's is float32."""

    class Mixed(nn.Module):
        @nn.compact
        def __call__(self, x):
            return px.tag(self, "h", x) * jnp.ones(3, jnp.bfloat16)

    weak = jnp.full((3,), 3.0)
    assert weak.weak_type and Mixed().apply({}, jnp.ones(3)).dtype == jnp.float32
    out = px.inject(Mixed(), {}, jnp.ones(3), {"h": weak})
    assert out.dtype == jnp.float32 and out.tolist() == [3.0, 3.0, 3.0]


class _Gained(nn.Module):
    """x times a knob declared with a Python number: weakly typed, it keeps x's bfloat16."""

    @nn.compact
    def __call__(self, x):
        return x * px.tag(self, "scale", px.knob(self, "gain", 1.0))


@pytest.mark.parametrize("value", [3.0, jnp.array(3.0, jnp.float32)])
def test_a_value_injected_for_a_weakly_typed_tag_keeps_the_models_output_dtype(value):
    """The value was made a float32 array, not weakly typed: the output was float32,
    where the model's is bfloat16."""
    x = jnp.array([1.0, 2.0], jnp.bfloat16)
    assert _Gained().apply({}, x).dtype == jnp.bfloat16
    out = px.inject(_Gained(), {}, x, {"scale": value})
    assert out.dtype == jnp.bfloat16 and out.tolist() == [3.0, 6.0]


@pytest.mark.parametrize("weak", [True, False])
def test_in_type_of_casts_a_value_of_another_kind_weakly_typed_or_not_alike(weak):
    """Set into a weakly typed int32, a float warned that JAX would refuse it, where a
    strongly typed int32 took it cast."""
    spec = jax.ShapeDtypeStruct((2,), jnp.int32, weak_type=weak)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = in_type_of(jnp.array([1.5, -2.5]), spec)
    assert out.dtype == jnp.int32 and out.weak_type == weak and out.tolist() == [1, -2]


def test_inject_a_pytree_of_the_wrong_structure_names_both():
    with pytest.raises(ValueError, match=r"'d' has structure .*'a'.*'c'.*structure .*'a'.*'b'"):
        px.inject(Pytrees(), {}, V, {"d": {"a": V, "c": V}})


def test_inject_a_value_that_holds_no_numbers_names_the_tagged_value():
    # JAX said "Value 'zeros' with dtype <U5 is not a valid JAX array type", naming no tag
    with pytest.raises(
        TypeError,
        match=r"^Injected value for 'd' must be an array \(or a pytree of them\) like the "
        r"tagged value there, of structure .*'a'.*'b'.*, got \{'a': 'zeros', .*\(a dict\)\.$",
    ):
        px.inject(Pytrees(), {}, V, {"d": {"a": "zeros", "b": V}})


def test_inject_a_pytree_leaf_of_the_wrong_shape_names_its_key_and_shapes():
    with pytest.raises(ValueError, match=r"'d'\['b'\] has shape \(2,\).*shape \(3,\)"):
        px.inject(Pytrees(), {}, V, {"d": {"a": V, "b": jnp.zeros(2)}})


MORE_TRANSFORMS = {
    "injections": lambda kind, v, x: px.core.injections(Stack(kind), v, x, {}),
    "perturbations": lambda kind, v, x: px.perturbations(Stack(kind), v, x, "**"),
    "blurb": lambda kind, v, x: px.blurb(Stack(kind), v, x, measure_latency=False, flops=False),
}


@pytest.mark.parametrize("transform", [*TRANSFORMS, *MORE_TRANSFORMS])
def test_params_passed_as_variables_name_the_transform_and_what_init_returns(transform):
    """Flax said only 'Tried to access "kernel" from collection "params" ... the
    collection is empty'."""
    run = TRANSFORMS.get(transform) or MORE_TRANSFORMS[transform]
    params = init("plain")["params"]
    first = next(iter(params))
    with pytest.raises(
        TypeError,
        match=rf"^{transform}: variables hold no 'params' collection \(they hold '{first}'.*: "
        r"the params alone\?\); pass what model.init returns, \{'params': params, \.\.\.\}",
    ):
        run("plain", params, X)


@pytest.mark.parametrize(("variables", "shown"), [({}, "nothing"), ({"state": {}}, "'state'")])
def test_variables_lacking_params_but_not_the_params_alone_are_not_called_params(variables, shown):
    """A key that is no module of the model (a collection, none) was asked about as 'the
    params alone?'."""
    with pytest.raises(
        TypeError, match=rf"^probe: variables hold no 'params' collection \(they hold {shown}\); "
    ):
        TRANSFORMS["probe"]("plain", variables, X)


@pytest.mark.parametrize("transform", [*TRANSFORMS, *MORE_TRANSFORMS])
@pytest.mark.parametrize(
    ("variables", "shown"), [(None, "None"), ([{}], "a list"), (X, "an ArrayImpl")]
)  # an array: the variables and x swapped ('a ArrayImpl')
def test_variables_that_are_no_mapping_name_the_transform_and_what_init_returns(
    transform, variables, shown
):
    """None or a list failed as "'NoneType' object has no attribute 'items'" (blurb:
    "'NoneType' object is not iterable")."""
    run = TRANSFORMS.get(transform) or MORE_TRANSFORMS[transform]
    with pytest.raises(
        TypeError,
        match=rf"^{transform}: variables must be what model.init returns, a mapping of "
        rf"collection names to trees \(\{{'params': \.\.\.\}}\), got {shown}\.$",
    ):
        run("plain", variables, X)


@pytest.mark.parametrize("transform", [*TRANSFORMS, *MORE_TRANSFORMS])
@pytest.mark.parametrize(
    ("collections", "said"),
    [
        ({"params": 3}, r"variables\['params'\] .*, got an int\.$"),
        ({"stats": {0: 1.0}}, r"variables\['stats'\] .*, got the key 0 \(an int\)\.$"),
    ],
)
def test_a_collection_that_is_no_dict_of_names_is_named(transform, collections, said):
    """Flax said only that "Each collection should be a dictionary with string keys",
    and phosjax that the 'params' hold the modules 'int': another model's?"""
    run = TRANSFORMS.get(transform) or MORE_TRANSFORMS[transform]
    variables = {**init("plain"), **collections}
    with pytest.raises(TypeError, match=rf"^{transform}: {said}") as error:
        run("plain", variables, X)
    assert "must be a collection as model.init makes it, a dict of module and variable" in str(
        error.value
    )


class Gained(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", nn.Dense(2)(x)) * px.knob(self, "gain", 1.0)


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (
            lambda v: px.grad_of(jnp.sum, Gained(), v, X, wrt="gain"),
            "It matches knob 'gain', which is no tagged value: px.tweak sets a knob, and "
            "variables['knobs'] holds its value.",
        ),
        (
            lambda v: px.probe(Gained(), v, X, ["h", "**/kernel"]),
            "It matches param 'Dense_0/kernel', which is no tagged value: variables['params'] "
            "holds it (jax.grad over them, its gradient).",
        ),
        (lambda v: px.inject(Gained(), v, X, {"**/gain": 2.0}), "It matches knob 'gain'"),
        (lambda v: px.perturbations(Gained(), v, X, "**/bias"), "param 'Dense_0/bias'"),
    ],
    ids=["grad_of", "probe", "inject", "perturbations"],
)
def test_a_selector_of_a_knob_or_param_says_it_is_no_tagged_value(call, said):
    """grad_of(wrt='gain'), a knob, listed the nearest tagged values alone ('h')."""
    variables = Gained().init(jax.random.key(0), X)
    with pytest.raises(
        px.SelectorError, match="matched no tagged value among 1; nearest: 'h'"
    ) as error:
        call(variables)
    assert said in str(error.value)


class NamesAField(nn.Module):
    """A user module with a field named like the graph model's hook that explains a
    skipped node's tag."""

    untagged_reason: str = "mine"

    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", x)


def test_a_module_with_a_field_named_untagged_reason_keeps_the_selector_error():
    """probe raised "TypeError: 'str' object is not callable": the field was called as
    the graph model's hook."""
    with pytest.raises(px.SelectorError) as error:
        px.probe(NamesAField(), {}, X, "g")
    assert str(error.value) == "Selector 'g' matched no tagged value among 1; nearest: 'h'."


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        (None, r"^tag_shapes: variables must be what model.init returns"),
        ("params", r"^tag_shapes: variables hold no 'params' collection .*the params alone\?"),
    ],
)
def test_tag_shapes_given_no_variables_or_the_params_alone_names_itself(variables, said):
    """It failed with "'NoneType' object has no attribute 'items'", and on the params alone
    with Flax's 'the collection is empty', as probe did before."""
    if variables == "params":
        variables = Gained().init(jax.random.key(0), X)["params"]
    with pytest.raises(TypeError, match=said):
        px.core.tag_shapes(Gained(), variables, X)


NAMED_MODEL_CALLS = {
    "probe": lambda model: px.probe(model, {}, X, "h"),
    "inject": lambda model: px.inject(model, {}, X, {"h": X}),
    "injections": lambda model: px.core.injections(model, {}, X, {"h": X}),
    "perturbations": lambda model: px.core.perturbations(model, {}, X, "h"),
    "grad_of": lambda model: px.grad_of(jnp.sum, model, {}, X, wrt="h"),
    "knobs": lambda model: px.knobs(model, X),
    "with_knobs": lambda model: px.core.with_knobs(model, {}, X),
    "tweak": lambda model: px.tweak(model, {}, X, {}),
    "blurb": lambda model: px.blurb(model, {}, X),
    "tag_shapes": lambda model: px.core.tag_shapes(model, {}, X),
}


@pytest.mark.parametrize("name", NAMED_MODEL_CALLS)
def test_no_module_given_as_the_model_is_refused_naming_the_function(name):
    """3 for the model was an AttributeError: "'int' object has no attribute 'apply'"."""
    call = NAMED_MODEL_CALLS[name]
    with pytest.raises(TypeError, match=rf"^{name}: model must be a Flax module, got an int: "):
        call(3)
    with pytest.raises(TypeError, match=rf"^{name}: model is the class Dense, not a module: "):
        call(nn.Dense)


def test_model_spec_cuts_a_long_name_with_a_mark_and_its_shape():
    # cut at 60 characters with no mark: the last number read "10995116", another number
    from phosjax.models import model_spec

    with pytest.raises(TypeError) as raised:
        model_spec(np.full(40, 2**40))
    said = str(raised.value)
    assert "1099511… (shape (40,), dtype int64) (" in said and "\n" not in said
