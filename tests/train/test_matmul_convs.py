"""Convolutions as matrix products: the same numbers as XLA's convolutions, forward,
backward and under every transformation the engine applies."""

import collections

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from phosjax.models import ModelConfig
from phosjax.train import (
    MATMUL_STRATEGIES,
    STRATEGIES,
    Cell,
    HParams,
    conv_as_matmul,
    convs_as_matmuls,
    device_arrays,
    has_convs,
    init_group,
    make_train_step,
    plan_groups,
    rewrite_before_grad,
    run_group,
)
from phosjax.train._matmul_convs import _Phases
from tests.train.tiny import assert_same_run, toy_data

TOL = {"rtol": 2e-5, "atol": 2e-5}


def conv_params(
    x,
    k,
    layout,
    strides=None,
    padding=None,
    lhs_dilation=None,
    rhs_dilation=None,
    feature_groups=1,
    batch_groups=1,
):
    spatial = len(layout[0]) - 2
    return dict(
        window_strides=strides or (1,) * spatial,
        padding=padding or ((0, 0),) * spatial,
        lhs_dilation=lhs_dilation or (1,) * spatial,
        rhs_dilation=rhs_dilation or (1,) * spatial,
        dimension_numbers=lax.conv_dimension_numbers(x.shape, k.shape, layout),
        feature_group_count=feature_groups,
        batch_group_count=batch_groups,
    )


CASES = {  # (input shape, kernel shape, layout, conv_params' keywords)
    "1d": ((2, 9, 3), (3, 3, 4), ("NWC", "WIO", "NWC"), {"padding": ((1, 1),)}),
    "1d strided, dilated": (
        (2, 11, 3),
        (3, 3, 4),
        ("NWC", "WIO", "NWC"),
        {"strides": (2,), "padding": ((2, 0),), "rhs_dilation": (2,)},
    ),
    "1d transposed (lhs dilation)": (
        (2, 5, 3),
        (3, 3, 4),
        ("NWC", "WIO", "NWC"),
        {"padding": ((2, 2),), "lhs_dilation": (2,)},
    ),
    "2d every option": (
        (2, 7, 8, 3),
        (3, 3, 3, 5),
        ("NHWC", "HWIO", "NHWC"),
        {
            "strides": (2, 1),
            "padding": ((1, 1), (0, 2)),
            "lhs_dilation": (2, 1),
            "rhs_dilation": (1, 2),
        },
    ),
    "2d channels first": ((2, 3, 6, 6), (5, 3, 3, 3), ("NCHW", "OIHW", "NCHW"), {}),
    "2d feature groups": (
        (2, 6, 6, 6),
        (3, 3, 2, 9),
        ("NHWC", "HWIO", "NHWC"),
        {"feature_groups": 3, "padding": ((1, 1), (1, 1))},
    ),
    "2d batch groups": ((4, 6, 6, 3), (3, 3, 3, 6), ("NHWC", "HWIO", "NHWC"), {"batch_groups": 2}),
    "2d output smaller than the kernel (a kernel's gradient)": (
        (3, 10, 10, 4),
        (8, 8, 4, 6),
        ("NHWC", "HWIO", "NHWC"),
        {},
    ),
    "2d batch groups, output smaller than the kernel": (
        (4, 10, 10, 4),
        (8, 9, 4, 6),
        ("NHWC", "HWIO", "NHWC"),
        {"batch_groups": 2},
    ),
    "3d": ((1, 4, 5, 6, 2), (2, 2, 3, 2, 3), ("NDHWC", "DHWIO", "NDHWC"), {"strides": (1, 2, 1)}),
}


@pytest.mark.parametrize("case", CASES)
def test_conv_as_matmul_computes_xla_s_convolution(case):
    x_shape, k_shape, layout, options = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.normal(size=x_shape).astype(np.float32)
    k = rng.normal(size=k_shape).astype(np.float32)
    params = conv_params(x, k, layout, **options)
    expected = lax.conv_general_dilated(x, k, **params)
    np.testing.assert_allclose(conv_as_matmul(x, k, **params), expected, rtol=1e-5, atol=1e-4)


def test_conv_as_matmul_pads_negatively_by_cropping():
    """A negative padding crops the input (the transpose of a strided convolution makes
    them), compared with cropping first: XLA:CPU's own convolution computed wrong
    numbers for this case with jax 0.10.2."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
    k = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    layout = ("NHWC", "HWIO", "NHWC")
    cropped = np.pad(x[:, 1:], ((0, 0), (0, 1), (0, 0), (0, 0)))
    expected = lax.conv_general_dilated(cropped, k, **conv_params(cropped, k, layout))
    got = conv_as_matmul(x, k, **conv_params(x, k, layout, padding=((-1, 1), (0, 0))))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_conv_as_matmul_keeps_the_precision_and_output_type():
    x = jnp.ones((2, 8, 3), jnp.bfloat16)
    k = jnp.ones((3, 3, 4), jnp.bfloat16)
    params = conv_params(x, k, ("NWC", "WIO", "NWC"))
    wide = conv_as_matmul(x, k, **params, preferred_element_type=jnp.float32)
    assert wide.dtype == jnp.float32 and conv_as_matmul(x, k, **params).dtype == jnp.bfloat16
    np.testing.assert_array_equal(
        wide, lax.conv_general_dilated(x, k, **params, preferred_element_type=jnp.float32)
    )


class SmallCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3))(x))
        x = nn.relu(nn.Conv(6, (3, 3), strides=2, feature_group_count=2)(x))
        x = nn.ConvTranspose(4, (2, 2), strides=(2, 2))(x)
        return nn.Dense(3)(x.mean((1, 2)))


def cnn_loss():
    model = SmallCNN()
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    params = model.init(jax.random.key(1), x)
    return lambda p, x: jnp.sum(model.apply(p, x) ** 2), params, x


def cnn_grad():
    loss, params, x = cnn_loss()
    return jax.grad(loss), params, x


def count(primitive, fn, *args):
    """How many equations of ``primitive`` ``fn``'s jaxpr has, inner jaxprs included."""
    return str(jax.make_jaxpr(fn)(*args)).count(f" {primitive}[")


def count_convs(fn, *args):
    return count("conv_general_dilated", fn, *args)


def test_gradients_of_a_flax_cnn_match_with_every_convolution_rewritten():
    """Forward, input and kernel gradients, grouped and transposed convolutions."""
    grad, params, x = cnn_grad()
    assert count_convs(grad, params, x) > 6
    rewritten = convs_as_matmuls(grad)
    assert count_convs(rewritten, params, x) == 0
    assert has_convs(grad, params, x) and not has_convs(rewritten, params, x)
    # jitted: run op by op, the rewritten gradient alone took 2.5 s
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, **TOL),
        jax.jit(rewritten)(params, x),
        jax.jit(grad)(params, x),
    )
    xs = jnp.stack([x, -x])  # a batch of two inputs: a batched matmul, not a grouped conv
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, **TOL),
        jax.jit(jax.vmap(rewritten, (None, 0)))(params, xs),
        jax.jit(jax.vmap(grad, (None, 0)))(params, xs),
    )


def test_a_loss_rewritten_before_its_gradient_stacks_slices_in_its_forward_pass_only():
    """Differentiated after the rewrite, a kernel's gradient is a product of the forward's
    slices and an input's a sum of slices' gradients: no stack of slices of their own."""
    loss, params, x = cnn_loss()
    assert rewrite_before_grad(loss) is loss  # outside convs_as_matmuls: untouched
    first = convs_as_matmuls(lambda p, x: jax.grad(rewrite_before_grad(loss))(p, x))
    after = convs_as_matmuls(jax.grad(loss))
    forward = count("stack", convs_as_matmuls(loss), params, x)
    assert forward >= 3  # one stack per convolution, or per phase of the transposed one
    assert count("stack", first, params, x) == forward < count("stack", after, params, x)
    assert count_convs(first, params, x) == 0
    jax.tree.map(  # jitted: run op by op, the two took about 3 s
        lambda a, b: np.testing.assert_allclose(a, b, **TOL),
        jax.jit(first)(params, x),
        jax.jit(after)(params, x),
    )


def test_the_engine_s_step_rewrites_its_loss_before_differentiating_it():
    step = make_train_step(CNN.build(), HParams(batch_size=16, steps=4))
    [group] = plan_groups([Cell(CNN, "toy", HParams(batch_size=16, steps=4), 0)])
    toy = toy_data()
    state = jax.tree.map(lambda a: a[0], init_group(group, toy))
    arrays = device_arrays(toy)
    model = CNN.build()
    forward = convs_as_matmuls(lambda params, x: model.apply({"params": params}, x))
    stacks = count("stack", forward, state.params, arrays["x_train"][:16])
    assert stacks == CNN.depth  # one per convolution
    assert count("stack", convs_as_matmuls(step), state, arrays) == stacks


def conv(y, k):
    return lax.conv_general_dilated(y, k, (1,), "SAME")


def nested(x, k):
    """Convolutions inside jit, checkpoint, cond, while and scan."""

    def twice(iy):
        return iy[0] + 1, jax.checkpoint(conv)(iy[1], k) * 0.5

    def body(carry, _):
        y = lax.cond(carry.sum() > 0, jax.jit(conv), lambda c, k: c * 2, carry, k)
        _, y = lax.while_loop(lambda iy: iy[0] < 2, twice, (0, y))
        return jnp.tanh(y), carry.sum()

    return lax.scan(body, x, None, length=3)


X, K = jnp.linspace(-1, 2, 48).reshape(2, 3, 8), jnp.full((3, 3, 3), 0.3)


def test_convolutions_inside_calls_loops_and_conditionals_are_rewritten():
    x, k = X, K
    rewritten = convs_as_matmuls(nested)
    assert count_convs(nested, x, k) >= 2 and count_convs(rewritten, x, k) == 0
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, **TOL), rewritten(x, k), nested(x, k)
    )


def test_a_rewritten_loop_keeps_its_varying_mesh_axes_under_shard_map():
    """The engine's strategies rewrite inside `jax.shard_map`, whose arrays carry the mesh
    axes they vary over: a loop body traced again must keep them."""
    x, k = X, K
    mesh = Mesh(np.asarray(jax.devices()[:2]), ("grid",))
    spec = PartitionSpec("grid")
    sharded = jax.shard_map(
        convs_as_matmuls(jax.vmap(nested, (0, None))),
        mesh=mesh,
        in_specs=(spec, PartitionSpec()),
        out_specs=spec,
    )
    xs = jnp.stack([x, -x])  # the cond takes either branch
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, **TOL),
        jax.jit(sharded)(xs, k),
        jax.vmap(nested, (0, None))(xs, k),
    )


CNN = ModelConfig("cnn1d", 3, (8,), depth=2, width=4)


def _cnn_group():
    cells = [
        Cell(CNN, "toy", HParams(batch_size=16, steps=4, learning_rate=lr), seed)
        for seed, lr in enumerate([1e-2, 3e-2, 1e-3])
    ]
    [group] = plan_groups(cells)
    return group


@pytest.fixture(scope="module")
def cnn_runs(toy):
    group = _cnn_group()
    return {
        strategy: run_group(group, init_group(group, toy), toy, strategy=strategy)
        for strategy in ("auto", "vmap", *MATMUL_STRATEGIES)
    }


def test_the_matmul_strategies_train_a_cnn_grid_as_vmap_does(cnn_runs):
    for strategy in MATMUL_STRATEGIES:
        assert cnn_runs[strategy][1].strategy == strategy
        assert_same_run(jax.device_get(cnn_runs[strategy]), jax.device_get(cnn_runs["vmap"]), **TOL)


def test_auto_times_the_matmul_strategies_for_a_model_with_convolutions(cnn_runs):
    _, run = cnn_runs["auto"]
    assert set(run.timings) == set(STRATEGIES) and run.strategy in STRATEGIES


def test_auto_leaves_out_a_strategy_that_runs_out_of_device_memory(toy, cnn_runs, monkeypatch):
    """The matmul strategies' slices take more memory: one that does not fit is no candidate.

    The group is `cnn_runs`' (whose programs are compiled), measured afresh."""
    from phosjax.train._strategy import Executor

    original = Executor.run_steps

    def run_steps(self, *args, **kwargs):
        if self.strategy in MATMUL_STRATEGIES:
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 9 GiB")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Executor, "run_steps", run_steps)
    # cnn_runs' choice: not kept
    monkeypatch.setattr("phosjax.train._auto._CHOICES", collections.OrderedDict())
    group = _cnn_group()
    _, run = run_group(group, init_group(group, toy), toy, strategy="auto")
    assert set(run.timings) == set(STRATEGIES) - set(MATMUL_STRATEGIES)
    with pytest.raises(jax.errors.JaxRuntimeError, match="RESOURCE_EXHAUSTED"):
        run_group(group, init_group(group, toy), toy, strategy="vmap_matmul")


def dilated_reference(x, k, layout, lhs_dilation, padding, rhs_dilation):
    """XLA's convolution of ``x`` dilated, padded and cropped by hand (NWC / NHWC)."""
    spatial = x.ndim - 2
    shape = [
        x.shape[0],
        *((n - 1) * s + 1 for n, s in zip(x.shape[1:-1], lhs_dilation, strict=True)),
        x.shape[-1],
    ]
    dilated = np.zeros(shape, x.dtype)
    dilated[(slice(None), *(slice(None, None, s) for s in lhs_dilation))] = x
    grown = np.pad(dilated, [(0, 0), *((max(lo, 0), max(hi, 0)) for lo, hi in padding), (0, 0)])
    crop = tuple(
        slice(max(-lo, 0), n - max(-hi, 0))
        for (lo, hi), n in zip(padding, grown.shape[1:-1], strict=True)
    )
    cropped = grown[(slice(None), *crop)]
    return lax.conv_general_dilated(
        cropped,
        k,
        (1,) * spatial,
        "VALID",
        rhs_dilation=rhs_dilation,
        dimension_numbers=layout,
        feature_group_count=x.shape[-1] // k.shape[-2],
    )


def phase_cases(count=24):
    """Random input dilations of 1 and 2 spatial axes whose output has a position per
    kernel offset at least (`_Phases.worth_it`)."""
    rng, cases = np.random.default_rng(2), []
    while len(cases) < count:
        spatial = 1 + len(cases) % 2
        size, kernel = rng.integers(2, 6, spatial), rng.integers(1, 4, spatial)
        s, d = rng.integers(2, 4, spatial), rng.integers(1, 3, spatial)
        pads = [(int(a), int(b)) for a, b in rng.integers(-1, 3, (spatial, 2))]
        if _Phases(size, kernel, pads, s, d).worth_it():
            cases.append((size, kernel, s, d, pads))
    return cases


@pytest.mark.parametrize("case", phase_cases(), ids=str)
def test_an_input_dilation_is_computed_phase_by_phase_as_by_xla(case):
    """The gradient of a strided convolution's input: the output's phases modulo the
    dilation, each from the kernel offsets that reach it (some reach none: zeros)."""
    size, kernel, s, d, pads = case
    spatial = len(size)
    layout = ("NWC", "WIO", "NWC") if spatial == 1 else ("NHWC", "HWIO", "NHWC")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, *size, 4)).astype(np.float32)
    k = rng.normal(size=(*kernel, 2, 6)).astype(np.float32)
    params = conv_params(
        x, k, layout, padding=pads, lhs_dilation=tuple(s), rhs_dilation=tuple(d), feature_groups=2
    )
    expected = dilated_reference(x, k, params["dimension_numbers"], s, pads, tuple(d))
    got = jax.jit(lambda x, k: conv_as_matmul(x, k, **params))(x, k)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def random_conv(rng):
    """A random convolution of 1-3 spatial axes: strides, padding, both dilations, feature
    or batch groups, channels-first input and kernel, channels-last output."""
    spatial = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2]))
    batch_groups = 1 if groups > 1 else int(rng.choice([1, 2]))
    per_group, outputs = int(rng.integers(1, 3)), int(rng.integers(1, 3)) * groups * batch_groups
    size, kernel = rng.integers(1, 7, spatial), rng.integers(1, 4, spatial)
    options = {
        "window_strides": tuple(int(s) for s in rng.integers(1, 3, spatial)),
        "padding": tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (spatial, 2))),
        "lhs_dilation": tuple(int(s) for s in rng.integers(1, 3, spatial)),
        "rhs_dilation": tuple(int(s) for s in rng.integers(1, 3, spatial)),
        "feature_group_count": groups,
        "batch_group_count": batch_groups,
    }
    x = rng.normal(size=(2 * batch_groups, per_group * groups, *size)).astype(np.float32)
    k = rng.normal(size=(outputs, per_group, *kernel)).astype(np.float32)
    axes = "DHW"[-spatial:]
    layout = ("NC" + axes, "OI" + axes, "N" + axes + "C")
    return (
        x,
        k,
        {**options, "dimension_numbers": lax.conv_dimension_numbers(x.shape, k.shape, layout)},
    )


def test_random_convolutions_match_xla_s():
    """40 random convolutions, some with no output position (a sweep of 300 matched too),
    computed both ways in one program (compiling 80 programs took twice the time)."""
    rng, cases = np.random.default_rng(7), []
    while len(cases) < 40:
        x, k, params = random_conv(rng)
        try:
            jax.eval_shape(
                lambda x, k, params=params: lax.conv_general_dilated(x, k, **params), x, k
            )
        except (TypeError, ValueError):  # a window longer than the padded input
            continue
        cases.append((x, k, params))

    def both_ways(arrays):
        return [
            (conv_as_matmul(x, k, **params), lax.conv_general_dilated(x, k, **params))
            for (x, k), (_, _, params) in zip(arrays, cases, strict=True)
        ]

    computed = jax.jit(both_ways)([(x, k) for x, k, _ in cases])
    for (got, expected), (_, _, params) in zip(computed, cases, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=str(params))


def test_an_empty_input_axis_stays_empty_when_dilated():
    """XLA dilates an axis of no positions to none (not to -1): the gradient of a
    strided convolution's input where its output was empty."""
    x, k = jnp.ones((2, 0, 3)), jnp.ones((3, 3, 4))
    layout = ("NWC", "WIO", "NWC")
    params = conv_params(x, k, layout, padding=((3, 5),), lhs_dilation=(2,), rhs_dilation=(2,))
    expected = lax.conv_general_dilated(x, k, **params)
    np.testing.assert_array_equal(
        jax.jit(lambda x, k: conv_as_matmul(x, k, **params))(x, k), expected
    )


@pytest.mark.parametrize(
    ("x_shape", "k_shape", "lhs_dilation"),
    [((2, 0, 8), (3, 0, 3), 1), ((2, 3, 8), (0, 3, 3), 1), ((2, 3, 8), (0, 3, 3), 2)],
    ids=["no input channel", "no output channel", "no output channel, dilated input"],
)
def test_convolutions_without_channels_and_their_gradients_match(x_shape, k_shape, lhs_dilation):
    def conv_and_grads(x, k):
        def padded(x, k):
            return lax.conv_general_dilated(x, k, (1,), ((1, 1),), (lhs_dilation,))

        return padded(x, k), jax.grad(lambda x, k: jnp.sum(padded(x, k) ** 2), (0, 1))(x, k)

    x, k = jnp.ones(x_shape), jnp.ones(k_shape)
    jax.tree.map(  # jitted: run op by op, the three cases took about 8 s
        np.testing.assert_array_equal,
        jax.jit(convs_as_matmuls(conv_and_grads))(x, k),
        jax.jit(conv_and_grads)(x, k),
    )


def test_a_linear_solve_keeps_its_named_jaxprs():
    """`lax.custom_linear_solve` holds its jaxprs in a named tuple (``jaxprs.matvec``...):
    rewritten, it must stay one, convolutions in its matvec included."""
    a = jnp.eye(3) * 2 + 0.1

    def fn(x, k):
        def matvec(v):
            return a @ v + 0 * conv(x, k)[0, :, 0]

        b = x[0, :, 0]
        solved = lax.custom_linear_solve(matvec, b, lambda _, b: jnp.linalg.solve(a, b))
        return conv(x, k) * solved.sum()

    rewritten = convs_as_matmuls(fn)
    assert count_convs(fn, X, K) == 2 and count_convs(rewritten, X, K) == 0
    np.testing.assert_allclose(jax.jit(rewritten)(X, K), jax.jit(fn)(X, K), **TOL)


@pytest.mark.parametrize("lhs_dilation", [1, 2])
def test_a_convolution_of_weakly_typed_arrays_stays_weakly_typed(lhs_dilation):
    """As XLA's (its caller then adds it to bfloat16 as bfloat16, not as float32)."""

    def fn(x, k):
        return lax.conv_general_dilated(x, k, (1,), ((1, 1),), (lhs_dilation,))

    x, k = jnp.full((2, 3, 8), 1.0), jnp.full((4, 3, 3), 0.5)  # weakly typed
    expected = jax.typeof(jax.jit(fn)(x, k))
    assert expected.weak_type
    assert jax.typeof(jax.jit(convs_as_matmuls(fn))(x, k)) == expected


def test_a_checkpoint_stays_one_and_keeps_its_barrier():
    """A gradient recomputes a `jax.checkpoint` behind an optimization barrier, which keeps
    XLA from merging it with the forward pass (and so from keeping the activations it
    frees): rewritten inside, the checkpoint keeps it."""

    def loss(x, k):
        block = jax.checkpoint(lambda x: jnp.sin(conv(jnp.sin(conv(x, k)), k)))
        return jnp.sum(block(block(x)) ** 2)

    grad = jax.grad(loss, (0, 1))
    rewritten = convs_as_matmuls(grad)

    def barriers(fn):
        return jax.jit(fn).lower(X, K).as_text().count("optimization_barrier")

    assert barriers(grad) > 0 and barriers(rewritten) == barriers(grad)
    assert count_convs(rewritten, X, K) == 0
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, **TOL),
        jax.jit(rewritten)(X, K),
        jax.jit(grad)(X, K),
    )
