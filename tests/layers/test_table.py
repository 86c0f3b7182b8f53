"""The shared table: every layer through the same checks (jit, vmap, grads, dtypes, tags, aux)."""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phosjax.core as px
from phosjax import layers as L


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """One layer in the table.

    Attributes:
      name: the test id.
      make_layer: builds the layer.
      input_shape: the input used by the checks, batch axis first.
      tags: selectors of values it must tag.
      aux: names of the aux losses it must raise.
      train: run with ``train=True`` (and a ``dropout`` rng).
      widths: input widths the shape property test may use.
      out_width: the output width for an input width.
      wrt: the tagged value whose `grad_of` is checked against finite differences
        (``""``: the first of ``tags``); it must reach the output or an aux loss.
    """

    name: str
    make_layer: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    tags: Sequence[str] = ()
    aux: Sequence[str] = ()
    train: bool = False
    widths: Sequence[int] = (2, 3, 5, 8)
    out_width: Callable[[int], int] = lambda width: width
    wrt: str = ""


def _branchy() -> list[nn.Module]:
    return [L.Sequence([L.SwiGLU(), L.ActivityL1()]), L.OrthogonalDense(6)]


CASES = [
    LayerCase(
        "choice",
        lambda: L.Choice(_branchy()),
        (4, 6),
        tags=["weights", "branches_0/layers_1/activity"],
        aux=["activity_l1", "orthogonality"],
        widths=(6,),
    ),
    LayerCase(
        "choice_per_example",
        lambda: L.Choice(_branchy(), per_example=True),
        (4, 3, 6),
        tags=["weights"],
        aux=["activity_l1", "orthogonality"],
        widths=(6,),
    ),
    LayerCase(
        "gated_skip",
        lambda: L.GatedSkip(L.Sequence([L.SwiGLU(), L.ActivityL1()])),
        (4, 5),
        tags=["gate", "block/layers_0/gate"],
        aux=["activity_l1"],
    ),
    LayerCase(
        "residual_projected",
        lambda: L.Residual(L.GLU(7)),
        (4, 5),
        tags=["residual"],
        out_width=lambda width: 7,
    ),
    LayerCase("rezero", lambda: L.ReZero(L.SwiGLU()), (4, 5), tags=["residual"]),
    LayerCase("drop_path", lambda: L.DropPath(0.5), (8, 3), tags=["keep_mask"], train=True),
    LayerCase(
        "sequence",
        lambda: L.Sequence([L.GLU(), L.DropPath(0.2), L.ActivityL1()]),
        (4, 5),
        tags=["layers_0/gate", "layers_2/activity"],
        aux=["activity_l1"],
    ),
    LayerCase(
        "repeat_transformer",
        lambda: L.Repeat(L.TransformerBlock(num_heads=2), num_layers=2),
        (2, 5, 4),
        tags=["block/attention/attention_entropy", "block/mlp_hidden"],
        widths=(2, 4, 6),
        wrt="block/mlp_hidden",  # the entropy reaches neither the output nor a loss
    ),
    LayerCase(
        "repeat_moe",
        lambda: L.Repeat(L.MixtureOfExperts(num_experts=3, top_k=2), num_layers=3),
        (4, 5),
        tags=["block/router_probs"],
        aux=["balance"],
    ),
    LayerCase(
        "moe_top1",
        lambda: L.MixtureOfExperts(num_experts=4),
        (2, 5, 6),
        tags=["router_probs", "expert_load", "balance"],
        aux=["balance"],
    ),
    LayerCase(
        "self_attention_causal",
        lambda: L.MultiHeadSelfAttention(num_heads=2, causal=True),
        (2, 5, 4),
        tags=["attention_weights", "attention_entropy"],
        widths=(2, 4, 6),
    ),
    LayerCase(
        "transformer",
        lambda: L.TransformerBlock(num_heads=2, dropout_rate=0.1),
        (2, 5, 4),
        tags=["attention/attention_weights", "mlp_hidden"],
        train=True,
        widths=(2, 4, 6),
    ),
    LayerCase("glu", lambda: L.GLU(), (4, 5), tags=["gate"]),
    LayerCase("swiglu", lambda: L.SwiGLU(hidden_features=6), (4, 5), tags=["gate"]),
    LayerCase("squeeze_excite_1d", lambda: L.SqueezeExcite(), (2, 5, 8), tags=["channel_gate"]),
    LayerCase("squeeze_excite_2d", lambda: L.SqueezeExcite(), (2, 3, 3, 8), tags=["channel_gate"]),
    LayerCase("layer_scale", lambda: L.LayerScale(0.1), (4, 5), tags=["scaled"]),
    LayerCase("activity_l1", L.ActivityL1, (4, 5), tags=["activity"], aux=["activity_l1"]),
    LayerCase(
        "orthogonal_dense",
        lambda: L.OrthogonalDense(3),
        (4, 5),
        tags=["orthogonality_penalty"],
        aux=["orthogonality"],
        out_width=lambda width: 3,
    ),
    LayerCase(
        "fourier_features",
        lambda: L.FourierFeatures(3, trainable=True),
        (4, 5),
        tags=["phases"],
        out_width=lambda width: 6,
    ),
    LayerCase(
        "hyper_dense",
        lambda: L.HyperDense(3),
        (4, 5),
        tags=["generated_kernel"],
        out_width=lambda width: 3,
    ),
    LayerCase(
        "lipschitz_dense",
        lambda: L.LipschitzDense(3),
        (4, 5),
        tags=["spectral_norm"],
        out_width=lambda width: 3,
    ),
]

by_case = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
with_aux = [c for c in CASES if c.aux]


def test_table_covers_every_public_layer():
    covered = {type(case.make_layer()).__name__ for case in CASES}
    nested = {"Sequence", "SwiGLU", "ActivityL1", "OrthogonalDense", "GLU", "TransformerBlock"}
    assert set(L.__all__) <= covered | nested
    assert {"MultiHeadSelfAttention", "TransformerBlock", "MixtureOfExperts"} <= covered


def _kwargs(case: LayerCase) -> dict[str, Any]:
    if not case.train:
        return {}
    return {"train": True, "rngs": {"dropout": jax.random.key(7)}}


def _input(case: LayerCase, dtype: Any = jnp.float32) -> jax.Array:
    """Standard normal values, drawn by NumPy (`jax.random.normal` compiled a program for
    each shape and dtype)."""
    values = np.random.default_rng(1).standard_normal(case.input_shape).astype(dtype)
    return jax.device_put(values)


def _apply(case: LayerCase, layer: nn.Module, variables: Any, x: jax.Array, **kwargs: Any):
    return layer.apply(variables, x, **_kwargs(case), **kwargs)


class _Weighted(nn.Module):
    """Runs ``layer`` inside a path weight of 0.25."""

    layer: nn.Module
    train: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        with px.path_weight(self, "quarter", 0.25):
            return self.layer(x, train=True) if self.train else self.layer(x)


@functools.cache
def _setup(name: str) -> tuple[LayerCase, nn.Module, Any, Callable[..., Any]]:
    """The case, its layer, its variables and ONE jitted forward pass that returns
    ``(output, {tag path: value}, aux losses, aux losses under a 0.25 path weight)``.

    Every check reuses the forward pass, so each case compiles it once per dtype.
    """
    case = next(c for c in CASES if c.name == name)
    layer = case.make_layer()
    variables = jax.jit(layer.init)(jax.random.key(0, impl="rbg"), _input(case))
    weighted = _Weighted(layer, case.train)

    @jax.jit
    def forward(variables, x):
        (out, state), found = (
            px.probe(layer, variables, x, "**", mutable=[px.AUX_LOSS], **_kwargs(case))
            if case.tags
            else ((_apply(case, layer, variables, x, mutable=[px.AUX_LOSS])), {})
        )
        _, scaled = weighted.apply(
            {k: {"layer": v} for k, v in variables.items()},
            x,
            rngs=_kwargs(case).get("rngs", {}),
            mutable=[px.AUX_LOSS],
        )
        aux = px.flatten(state.get(px.AUX_LOSS, {}))
        return out, found, aux, px.flatten(scaled.get(px.AUX_LOSS, {}))

    return case, layer, variables, forward


@by_case
def test_jit_matches_eager(case):
    _, layer, variables, forward = _setup(case.name)
    x = _input(case)
    eager = _apply(case, layer, variables, x)
    np.testing.assert_allclose(forward(variables, x)[0], eager, rtol=1e-5, atol=1e-6)


@by_case
def test_vmap_matches_stacked_single_calls(case):
    _, layer, variables, forward = _setup(case.name)
    xs = np.random.default_rng(2).standard_normal((2, *case.input_shape), np.float32)
    vmapped = jax.jit(jax.vmap(functools.partial(_apply, case, layer, variables)))(xs)
    stacked = np.stack([forward(variables, xs[0])[0], forward(variables, xs[1])[0]])
    # vmap batches the matmuls, so rounding differs; FourierFeatures' sin multiplies it by
    # its frequencies (about 6e-6 here, in float32).
    np.testing.assert_allclose(vmapped, stacked, rtol=1e-5, atol=2e-5)


def _rematted(case: LayerCase, layer: nn.Module) -> nn.Module:
    """``layer`` rebuilt as an ``nn.remat`` of its class, its train flag (the argument
    after the input, as `_loss_and_grads` passes it) static."""
    fields = {
        f.name: getattr(layer, f.name)
        for f in dataclasses.fields(layer)
        if f.init and f.name not in ("parent", "name")
    }
    static = (2,) if case.train else ()  # (self, x, train)
    return nn.remat(type(layer), static_argnums=static)(**fields)


@functools.cache
def _loss_and_grads(name: str, remat: bool = False) -> Callable[..., Any]:
    """A jitted ``params, x -> ((loss, (output, {tag path: value}, aux losses)), grads)``
    for the case's layer, or for it under ``nn.remat``; the loss is ``mean(out**2)`` plus
    the aux losses."""
    case, layer, variables, _ = _setup(name)
    model = _rematted(case, layer) if remat else layer
    kwargs: dict[str, Any] = {}
    if case.train:  # positionally: nn.remat marks it static by position
        kwargs = {"method": lambda module, x: module(x, True), "rngs": _kwargs(case)["rngs"]}

    def loss(params, x):
        variables_ = {**variables, "params": params}
        (out, state), found = px.probe(model, variables_, x, "**", mutable=[px.AUX_LOSS], **kwargs)
        aux = state.get(px.AUX_LOSS, {})
        return jnp.mean(out**2) + px.aux_total(aux)[0], (out, found, px.flatten(aux))

    return jax.jit(jax.value_and_grad(loss, has_aux=True))


@by_case
def test_outputs_and_param_gradients_are_finite(case):
    _, _, variables, _ = _setup(case.name)
    params = variables.get("params", {})
    (value, (out, _, _)), grads = _loss_and_grads(case.name)(params, _input(case))
    assert np.isfinite(value)
    assert np.isfinite(out).all()
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
    if params:
        assert any(np.abs(g).sum() > 0 for g in jax.tree.leaves(grads))


def _assert_trees_close(actual: Any, expected: Any, **tolerance: Any) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(
            np.asarray(a, np.float32), np.asarray(e, np.float32), **tolerance
        )


@by_case
def test_remat_matches_the_plain_layer(case):
    """Under ``nn.remat`` (the train flag static): the same output, param gradients,
    tagged values and aux losses."""
    _, _, variables, _ = _setup(case.name)
    params, x = variables.get("params", {}), _input(case)
    plain = _loss_and_grads(case.name)(params, x)
    rematted = _loss_and_grads(case.name, remat=True)(params, x)
    (_, (_, found, aux)), _ = rematted
    assert set(found) == set(plain[0][1][1]) and found  # every tag, under remat too
    assert {path.rsplit("/", 1)[-1] for path in aux} == set(case.aux)
    _assert_trees_close(rematted, plain, rtol=1e-5, atol=1e-6)


def _perturbed(variables: Any, seed: int) -> Any:
    """``variables`` with noise added to the params (numpy arrays: eager jax ops would each
    compile), so that copies differ and gates and scales leave their symmetric or identity
    init (ReZero's 0, Choice's equal logits)."""
    rng = np.random.default_rng(seed)
    noisy = lambda p: p + 0.3 * rng.standard_normal(p.shape).astype(p.dtype)
    if "params" not in variables:
        return variables
    return {**variables, "params": jax.tree.map(noisy, variables["params"])}


@functools.cache
def _eval_forward(name: str) -> Callable[..., Any]:
    """``variables, x -> (output, {tag path: value}, aux losses)`` out of training: `Repeat`
    is checked there, as it splits the dropout rng per layer. `_setup`'s forward pass for a
    case that does not train."""
    case, layer, _, forward = _setup(name)
    if not case.train:
        return lambda variables, x: forward(variables, x)[:3]

    @jax.jit
    def run(variables, x):
        out, state = layer.apply(variables, x, mutable=[px.INTERMEDIATES, px.AUX_LOSS])
        aux = px.flatten(state.get(px.AUX_LOSS, {}))
        return out, px.flatten(state.get(px.INTERMEDIATES, {})), aux

    return run


def _layer_by_layer(name: str, stacked: Any, x: jax.Array, knobs: Any) -> list[Any]:
    """``(output, tags, aux losses)`` of each layer: the case's layer applied to the previous
    output with the stacked variables sliced, its knobs set to ``{path: per-layer values}``."""
    results, h = [], x
    for i in range(2):
        sliced = jax.tree.map(lambda v, i=i: v[i], {k: v["block"] for k, v in stacked.items()})
        if knobs:
            sliced = px.set_knobs(sliced, {path: value[i] for path, value in knobs.items()})
        results.append(_eval_forward(name)(sliced, h))
        h = results[-1][0]
    return results


def _assert_stacked(actual: dict[str, Any], per_layer: Sequence[dict[str, Any]]) -> None:
    """``actual`` holds, at each layer's path under ``block/``, its values stacked on axis 0."""
    assert set(actual) == {f"block/{path}" for path in per_layer[0]}
    for path in per_layer[0]:
        expected = jax.tree.map(lambda *v: np.stack(v), *[layer[path] for layer in per_layer])
        _assert_trees_close(actual[f"block/{path}"], expected, rtol=1e-5, atol=2e-5)


def _keeps_width(case: LayerCase) -> bool:
    return case.out_width(case.input_shape[-1]) == case.input_shape[-1]


_REPEATED = [
    pytest.param(
        case,
        id=case.name,
        marks=()
        if _keeps_width(case)
        else pytest.mark.skip(reason="changes the width: Repeat's block must keep its input shape"),
    )
    for case in CASES
]


@pytest.mark.parametrize("case", _REPEATED)
def test_repeat_equals_two_copies_applied_layer_by_layer(case):
    """``Repeat(layer, 2)``, an ``nn.scan`` giving every collection a layer axis, is the
    layer applied twice with its stacked variables sliced; its tags, aux losses and knobs are
    stacked on a leading layer axis, `aux_total` adds the layers' and `tweak` sets each
    layer's knob.

    Out of training: in training each layer draws its own dropout mask, so there the
    tags' shapes alone are compared."""
    _, _, variables, forward = _setup(case.name)
    layer, x = case.make_layer(), _input(case)
    repeat = L.Repeat(layer, num_layers=2)
    stacked = jax.tree.map(lambda *v: np.stack(v), *[_perturbed(variables, i) for i in (3, 4)])
    stacked = {collection: {"block": tree} for collection, tree in stacked.items()}
    initialized = jax.eval_shape(repeat.init, jax.random.key(0, impl="rbg"), x)
    assert jax.tree.map(jnp.shape, initialized) == jax.tree.map(jnp.shape, stacked)

    declared = px.knobs(repeat, x)
    assert set(declared) == {f"block/{path}" for path in px.flatten(variables.get(px.KNOBS, {}))}
    shapes = px.flatten(stacked.get(px.KNOBS, {}))
    factors = np.array([1.5, 3.0], np.float32)  # a value per layer
    knobs = {
        path.removeprefix("block/"): knob.default
        * factors.reshape((2,) + (1,) * (shapes[path].ndim - 1))
        for path, knob in declared.items()
    }
    tags = bool(px.tag_shapes(layer, variables, x))  # DropPath tags nothing out of training

    @jax.jit
    def run(stacked, x):
        (out, state), found = (
            px.probe(repeat, stacked, x, "**", mutable=[px.AUX_LOSS])
            if tags
            else (repeat.apply(stacked, x, mutable=[px.AUX_LOSS]), {})
        )
        aux = state.get(px.AUX_LOSS, {})
        # In training the layers draw their own dropout: compare the tags' shapes alone.
        training = px.probe(repeat, stacked, x, "**", **_kwargs(case))[1] if case.train else {}
        return out, found, px.flatten(aux), px.aux_total(aux)[0], training

    @jax.jit
    def run_tweaked(stacked, x):
        tweaks = {f"block/{path}": value for path, value in knobs.items()}
        out, state = px.tweak(repeat, stacked, x, tweaks, mutable=[px.AUX_LOSS])
        return out, px.flatten(state.get(px.AUX_LOSS, {}))

    out, found, aux, total, training = run(stacked, x)
    if case.train:
        single = forward(variables, x)[1]
        assert set(training) == {f"block/{path}" for path in single}
        for path, value in single.items():
            assert training[f"block/{path}"].shape == (2, *value.shape)
            assert training[f"block/{path}"].dtype == value.dtype
    layers = _layer_by_layer(case.name, stacked, x, {})
    np.testing.assert_allclose(out, layers[-1][0], rtol=1e-5, atol=2e-5)
    _assert_stacked(found, [tags for _, tags, _ in layers])
    _assert_stacked(aux, [aux for _, _, aux in layers])
    np.testing.assert_allclose(total, sum(px.aux_total(a)[0] for _, _, a in layers), rtol=1e-5)
    if not knobs:
        return
    out_tweaked, aux_tweaked = run_tweaked(stacked, x)
    tweaked = _layer_by_layer(case.name, stacked, x, knobs)
    np.testing.assert_allclose(out_tweaked, tweaked[-1][0], rtol=1e-5, atol=2e-5)
    _assert_stacked(aux_tweaked, [aux for _, _, aux in tweaked])
    changed = jax.tree.map(
        lambda a, b: not np.allclose(a, b), (out, aux), (out_tweaked, aux_tweaked)
    )
    assert any(jax.tree.leaves(changed))  # the tweak reached the layers


@by_case
def test_grad_of_a_tagged_value_matches_finite_differences_through_inject(case):
    """The derivative of the loss along a random direction of the tagged value ``case.wrt``:
    from `grad_of`, and from central differences of the loss with the value moved by
    `inject`. The loss adds the output's and the aux losses' terms, each differenced apart
    so that neither's float32 rounding swamps the other's change."""
    _, layer, variables, forward = _setup(case.name)
    variables, x = _perturbed(variables, 5), _input(case)  # ReZero's alpha leaves 0
    found = forward(variables, x)[1]
    (path,) = px.select(found, case.wrt or case.tags[0])
    value = found[path]
    if not jnp.issubdtype(value.dtype, jnp.inexact):
        pytest.skip(f"{path} is {value.dtype}: it has no gradient")
    direction = np.random.default_rng(0).standard_normal(value.shape).astype(value.dtype)
    if isinstance(layer, L.Repeat):  # injecting every layer's value cuts the earlier ones off
        direction[:-1] = 0
    kwargs = {"mutable": [px.AUX_LOSS], **_kwargs(case)}

    def terms(result):
        out, state = result
        return jnp.sum(jnp.sin(out)), px.aux_total(state.get(px.AUX_LOSS, {}))[0]

    @jax.jit
    def run(variables, x, value, direction, eps):
        _, grads = px.grad_of(lambda r: sum(terms(r)), layer, variables, x, wrt=path, **kwargs)
        along = lambda s: terms(
            px.inject(layer, variables, x, {path: value + s * direction}, **kwargs)
        )
        numeric = [(a - b) / (2 * eps) for a, b in zip(along(eps), along(-eps), strict=True)]
        return jnp.vdot(grads[path], direction), sum(numeric)

    # float32: truncation ~eps**2, rounding ~1e-7 * |loss| / eps; both well under 1e-2.
    analytic, numeric = run(variables, x, value, direction, 3e-3)
    assert float(analytic) != 0.0
    np.testing.assert_allclose(analytic, numeric, rtol=1e-2)


@by_case
def test_dtype_kept(case):
    _, _, variables, forward = _setup(case.name)
    assert forward(variables, _input(case, jnp.float32))[0].dtype == jnp.float32
    out = forward(variables, _input(case, jnp.bfloat16))[0]
    assert out.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(out, np.float32)).all()


@by_case
def test_tagged_values_present(case):
    _, _, variables, forward = _setup(case.name)
    _, found, _, _ = forward(variables, _input(case))
    for selector in case.tags:
        assert px.select(found, selector), f"{selector} not tagged; found {sorted(found)}"
    assert all(np.isfinite(np.asarray(v, np.float32)).all() for v in jax.tree.leaves(found))


@pytest.mark.parametrize("case", with_aux, ids=[c.name for c in with_aux])
def test_aux_loss_scaled_by_enclosing_path_weight(case):
    _, _, variables, forward = _setup(case.name)
    _, _, plain, scaled = forward(variables, _input(case))
    assert {path.rsplit("/", 1)[-1] for path in plain} == set(case.aux)
    assert {f"layer/{path}" for path in plain} == set(scaled)
    for path, value in plain.items():
        assert np.all(np.asarray(value) != 0), path
        # Separately compiled programs may fuse the multiply differently: allow float32 rounding.
        np.testing.assert_allclose(scaled[f"layer/{path}"], 0.25 * np.asarray(value), rtol=1e-6)


def _shapes(case: LayerCase) -> st.SearchStrategy[tuple[int, ...]]:
    batch = st.integers(1, 3)
    middle = [st.integers(1, 4) for _ in case.input_shape[1:-1]]
    return st.tuples(batch, *middle, st.sampled_from(case.widths))


@by_case
@settings(max_examples=8, deadline=None, derandomize=True)
@given(data=st.data())
def test_output_shapes(case, data):
    shape = data.draw(_shapes(case))
    layer = case.make_layer()
    x = jax.ShapeDtypeStruct(shape, jnp.float32)

    def run(x):
        return _apply(case, layer, layer.init(jax.random.key(0, impl="rbg"), x), x)

    out = jax.eval_shape(run, x)  # abstract: nothing is compiled
    assert out.shape == (*shape[:-1], case.out_width(shape[-1]))
