"""Loops: morph follows channels through `lax.scan` (nn.scan, nn.RNN, Repeat) exactly."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.layers import Repeat, Residual, ReZero
from phosjax.morph import (
    COSTS,
    UnsupportedOpError,
    alive_channels,
    channel_groups,
    cost_polynomial,
    evaluate,
    importance,
    mask,
    shrink,
)
from tests.morph.perturb import perturbed


class MLP(nn.Module):
    """Dense(inner), (BatchNorm,) relu, Dense(width): a block whose inner width is not
    its carry's."""

    inner: int
    width: int
    norm: bool = False

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.inner, name="hidden")(x)
        h = nn.BatchNorm(use_running_average=True, name="norm")(h) if self.norm else h
        return nn.Dense(self.width, name="out")(nn.relu(h))


class Repeated(nn.Module):
    """Dense stem, a `Repeat` of three blocks, Dense head; ``widths``: (stream, inner).

    ``looped`` applies three blocks of their own in a Python for loop instead; ``norm``
    puts a BatchNorm in the block (its statistics are stacked too)."""

    widths: tuple[int, ...] = (6, 8)
    rezero: bool = False
    looped: bool = False
    norm: bool = False

    @nn.compact
    def __call__(self, x):
        stream = self.widths[0]
        h = nn.Dense(stream, name="stem")(x)
        if self.rezero:
            block = lambda suffix="": ReZero(nn.Dense(stream, name=f"dense{suffix}"))
        else:
            mlp = lambda suffix: MLP(self.widths[1], stream, self.norm, name=f"mlp{suffix}")
            block = lambda suffix="": Residual(mlp(suffix))
        if self.looped:
            for layer in range(3):
                h = block(f"_{layer}")(h)
        else:
            h = Repeat(block(), num_layers=3)(h)
        return nn.Dense(2, name="head")(h)


class Step(nn.Module):
    """One step: the state mixed with the input, and an output of another width."""

    width: int
    inner: int

    @nn.compact
    def __call__(self, state, x):
        state = nn.tanh(nn.Dense(self.width, name="mix")(state) + x)
        return state, nn.relu(nn.Dense(self.inner, name="emit")(state))


class Scanned(nn.Module):
    """`nn.scan` over the time axis of ``(batch, time, features)``, its params shared by
    every step (consts of the scan); the head reads the last state and the outputs."""

    widths: tuple[int, ...] = (6, 5)

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.widths[0], name="embed")(x)
        steps = nn.scan(
            Step,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
        )
        state = jnp.zeros((x.shape[0], self.widths[0]))
        state, ys = steps(self.widths[0], self.widths[1], name="steps")(state, h)
        return nn.Dense(2, name="head")(jnp.concatenate([state, ys.mean(1)], -1))


class RNN(nn.Module):
    """``cell`` over the sequence by `nn.RNN` (a scan), or by a Python loop over the steps."""

    widths: tuple[int, ...] = (6,)
    cell: str = "gru"
    looped: bool = False

    @nn.compact
    def __call__(self, x):
        cells = {"gru": nn.GRUCell, "lstm": nn.LSTMCell, "optimized_lstm": nn.OptimizedLSTMCell}
        cell = cells[self.cell](self.widths[0], name="cell")
        if self.looped:
            carry = cell.initialize_carry(jax.random.key(0), x[:, 0].shape)
            for step in range(x.shape[1]):
                carry, h = cell(carry, x[:, step])
        else:
            h = nn.RNN(cell)(x)[:, -1]
        return nn.Dense(2, name="head")(h)


class Bidirectional(nn.Module):
    """A GRU forward and one backward (a reversed scan) over the sequence, concatenated."""

    widths: tuple[int, ...] = (6, 5)

    @nn.compact
    def __call__(self, x):
        forward, backward = (nn.RNN(nn.GRUCell(width)) for width in self.widths)
        return nn.Dense(2, name="head")(nn.Bidirectional(forward, backward)(x).mean(1))


MODELS = {
    "Repeat of ReZero(Dense)": (Repeated(rezero=True), (6,), ("dense",)),
    "Repeat of Residual(MLP)": (Repeated(), (6,), ("mlp/out", "mlp/hidden")),
    "Repeat of Residual(MLP with BatchNorm)": (
        Repeated(norm=True),
        (6,),
        ("mlp/out", "mlp/hidden"),
    ),
    "nn.scan": (Scanned(), (4, 3), ("embed", "steps/emit")),
    "nn.RNN(GRUCell)": (RNN(), (5, 3), ("cell/hn",)),
    "nn.RNN(LSTMCell)": (RNN(cell="lstm"), (5, 3), ("cell/hf",)),
    "nn.RNN(OptimizedLSTMCell)": (RNN(cell="optimized_lstm"), (5, 3), ("cell/hf",)),
    "GRUCell looped in Python": (RNN(looped=True), (5, 3), ("cell/hn",)),
    "nn.Bidirectional": (Bidirectional(), (5, 3), ("GRUCell_0/hn", "GRUCell_1/hn")),
}
"""``(model, input shape without the batch, its groups' names in the order of its widths)``."""


@pytest.mark.parametrize("name", sorted(MODELS))
def test_scanned_models_shrunk_equal_masked_and_shrinking_twice_changes_nothing(name):
    model, shape, names = MODELS[name]
    x = jax.random.normal(jax.random.key(1), (3, *shape))
    variables = perturbed(model.init(jax.random.key(0), x))
    groups = channel_groups(model, variables, x)
    assert sorted(groups.names) == sorted(names)
    alive = {g.name: np.arange(g.size) % 3 != 1 for g in groups.groups}
    small = shrink(variables, alive, groups)
    smaller = model.clone(widths=tuple(small.widths[n] for n in names))

    masked_out = model.apply(mask(variables, alive, groups), x)
    np.testing.assert_allclose(smaller.apply(small.variables, x), masked_out, atol=1e-5)
    assert not np.allclose(masked_out, model.apply(variables, x), atol=1e-3)

    again = channel_groups(smaller, small.variables, x)
    assert sorted(again.names) == sorted(names)
    twice = shrink(small.variables, again.full(), again)
    assert jax.tree.all(jax.tree.map(np.array_equal, twice.variables, small.variables))


def test_a_repeated_block_s_channels_are_axes_after_the_layer_axis_of_its_stacked_leaves():
    """The stream (stem, each block's output) and the block's inner width are groups over
    all three layers: the leaves' leading layer axis is no member, and a mask cuts the
    same channels in every layer."""
    model = Repeated()
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    assert variables["params"]["mlp"]["hidden"]["kernel"].shape == (3, 6, 8)
    groups = channel_groups(model, variables, x)
    members = {g.name: {(m.path, m.axis) for m in g.members} for g in groups.groups}
    mlp = "params/mlp"
    assert members["mlp/out"] == {
        ("params/stem/kernel", 1),
        ("params/stem/bias", 0),
        (f"{mlp}/hidden/kernel", 1),
        (f"{mlp}/out/kernel", 2),
        (f"{mlp}/out/bias", 1),
        ("params/head/kernel", 0),
    }
    assert members["mlp/hidden"] == {
        (f"{mlp}/hidden/kernel", 2),
        (f"{mlp}/hidden/bias", 1),
        (f"{mlp}/out/kernel", 1),
    }
    alive = {"mlp/hidden": np.arange(8) < 5}
    hidden = mask(variables, alive, groups)["params"]["mlp"]["hidden"]
    assert not np.any(hidden["kernel"][:, :, 5:]) and not np.any(hidden["bias"][:, 5:])
    assert np.all(
        hidden["kernel"][:, :, :5] == variables["params"]["mlp"]["hidden"]["kernel"][:, :, :5]
    )


def test_a_repeated_channel_s_importance_adds_up_over_the_layers():
    """A channel dead in one layer but not in the others is alive: its group lasso is
    the norm of its slices in every layer."""
    model = Repeated()
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    hidden = variables["params"]["mlp"]["hidden"]
    hidden["kernel"] = hidden["kernel"].at[0, :, 1].set(0.0).at[:, :, 2].set(0.0)
    hidden["bias"] = hidden["bias"].at[0, 1].set(0.0).at[:, 2].set(0.0)
    scores = importance(groups, variables)[groups.names.index("mlp/hidden")]
    expected = np.sqrt(np.sum(hidden["kernel"] ** 2, (0, 1)) + np.sum(hidden["bias"] ** 2, 0))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert (
        alive_channels(groups, variables)["mlp/hidden"].tolist()
        == [True] * 2 + [False] + [True] * 5
    )


def _carried(feed):
    """A Dense stem, then three steps ``state -> relu(state @ w) + feed(p)``, then a head."""
    keys = jax.random.split(jax.random.key(0), 5)
    p = {
        "stem": jax.random.normal(keys[0], (3, 5)),
        "w": jax.random.normal(keys[1], (5, 5)),
        "b": jax.random.normal(keys[2], (5,)),
        "head": jax.random.normal(keys[3], (5, 2)),
    }

    def apply(p, x):
        step = lambda state, _: (jax.nn.relu(state @ p["w"]) + feed(p), None)
        state, _ = jax.lax.scan(step, x @ p["stem"], None, length=3)
        return state @ p["head"]

    return apply, p, jax.random.normal(keys[4], (4, 3))


def test_a_carry_a_learned_bias_feeds_is_pruned_and_one_a_constant_feeds_is_pinned():
    """A dead channel of the state stays zero through the loop when the bias added to it
    is a param (mask zeroes it too); a constant makes it non-zero from the second step on,
    so its channels reach ``w`` live: that only shows once the body is walked again with
    the state it returns, which the first step's zero state hides."""
    apply, p, x = _carried(lambda p: p["b"])
    groups = channel_groups(apply, p, x)
    (group,) = groups.groups
    assert {(m.path, m.axis) for m in group.members} == {
        ("stem", 1),
        ("w", 0),
        ("w", 1),
        ("b", 0),
        ("head", 0),
    }
    alive = {"stem": np.array([True, False, True, True, False])}
    np.testing.assert_allclose(
        apply(shrink(p, alive, groups).variables, x), apply(mask(p, alive, groups), x), atol=1e-5
    )

    apply, p, x = _carried(lambda p: 1.0)
    groups = channel_groups(apply, p, x)
    assert groups.groups == ()
    assert "sums over channels that are not zero when dead" in groups.pinned["stem:1"]


def test_a_fori_loop_with_int_bounds_is_followed_and_a_while_loop_is_refused():
    apply, p, x = _carried(lambda p: p["b"])
    fori = lambda p, x: (
        jax.lax.fori_loop(0, 3, lambda _, h: jax.nn.relu(h @ p["w"]) + p["b"], x @ p["stem"])
        @ p["head"]
    )
    assert channel_groups(fori, p, x).groups == channel_groups(apply, p, x).groups

    def until(p, x):
        more = lambda h: h.sum() < 10.0
        h = jax.lax.while_loop(more, lambda h: jax.nn.relu(h @ p["w"]) + p["b"], x @ p["stem"])
        return h @ p["head"]

    with pytest.raises(
        UnsupportedOpError,
        match=r"the primitive 'while' is a while loop .* a fixed number of steps: lax.scan",
    ):
        channel_groups(until, p, x)


def _layers_of_steps(p, x, unrolled=False):
    """A stem, then three layers (their params stacked) each running a recurrence over the
    sequence's steps: a scan in a scan, or (``unrolled``) the same in Python loops."""
    h = x @ p["stem"]

    def step(layer, state, h_t):
        w, u, b = layer
        state = jnp.tanh(state + jax.nn.relu(h_t @ w + b) @ u)
        return state, state

    def layer(h, params):
        state = jnp.zeros((h.shape[0], p["u"].shape[-1]))
        _, states = jax.lax.scan(functools.partial(step, params), state, jnp.swapaxes(h, 0, 1))
        return jnp.swapaxes(states, 0, 1), None

    stacked = (p["w"], p["u"], p["b"])
    if not unrolled:
        return jax.lax.scan(layer, h, stacked)[0].mean(1) @ p["head"]
    for params in zip(*stacked, strict=True):
        state, states = jnp.zeros((h.shape[0], p["u"].shape[-1])), []
        for t in range(h.shape[1]):
            state, _ = step(params, state, h[:, t])
            states.append(state)
        h = jnp.stack(states, 1)
    return h.mean(1) @ p["head"]


def test_nested_scans_prune_exactly_and_cost_what_their_unrolled_loops_cost():
    keys = iter(jax.random.split(jax.random.key(0), 6))
    shapes = {"stem": (4, 5), "w": (3, 5, 7), "u": (3, 7, 5), "b": (3, 7), "head": (5, 2)}
    p = {name: jax.random.normal(next(keys), shape) for name, shape in shapes.items()}
    x = jax.random.normal(next(keys), (3, 6, 4))
    scanned = channel_groups(_layers_of_steps, p, x)
    unrolled = channel_groups(functools.partial(_layers_of_steps, unrolled=True), p, x)
    members = [{(m.path, m.axis) for m in g.members} for g in scanned.groups]
    assert members == [
        {("stem", 1), ("w", 1), ("u", 2), ("head", 0)},
        {("w", 2), ("b", 1), ("u", 1)},
    ]
    assert scanned.groups == unrolled.groups
    for counts in ([5, 7], [2, 3]):
        assert evaluate(cost_polynomial(scanned), counts) == pytest.approx(
            evaluate(cost_polynomial(unrolled), counts)
        )

    alive = {"stem": np.arange(5) % 2 == 0, "w": np.arange(7) % 3 != 1}
    np.testing.assert_allclose(
        _layers_of_steps(shrink(p, alive, scanned).variables, x),
        _layers_of_steps(mask(p, alive, scanned), x),
        atol=1e-5,
    )


def _counts(groups, stream):
    """Alive counts: ``stream`` channels for the group the head reads, 4 for any other."""
    heads = [any(m.path == "params/head/kernel" for m in g.members) for g in groups.groups]
    return [stream if head else 4 for head in heads]


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("name", ["Repeat", "nn.RNN(GRUCell)", "nn.RNN(LSTMCell)"])
def test_a_scanned_model_costs_what_its_loop_unrolled_in_python_costs(name, cost):
    """The body's contractions count once per step; a stacked leaf is all its layers'."""
    scanned, looped, shape = {
        "Repeat": (Repeated(), Repeated(looped=True), (6,)),
        "nn.RNN(GRUCell)": (RNN(), RNN(looped=True), (5, 3)),
        "nn.RNN(LSTMCell)": (RNN(cell="lstm"), RNN(cell="lstm", looped=True), (5, 3)),
    }[name]
    x = jnp.ones((2, *shape))
    costs = []
    for model in (scanned, looped):
        groups = channel_groups(model, model.init(jax.random.key(0), x), x)
        poly = cost_polynomial(groups, cost)
        costs.append([evaluate(poly, _counts(groups, stream)) for stream in (6, 3)])
    assert costs[0][0] > costs[0][1]
    np.testing.assert_allclose(costs[0], costs[1], rtol=1e-9)


def test_an_optimized_lstm_cell_has_the_groups_and_costs_of_an_lstm_cell():
    """`nn.OptimizedLSTMCell` concatenates its gates' kernels (and biases) and applies
    them in one matmul: the concatenated leaves are followed as the kernels `nn.LSTMCell`
    applies one by one, on the same variables."""
    x = jnp.ones((2, 5, 3))
    lstm, optimized = RNN(cell="lstm"), RNN(cell="optimized_lstm")
    variables = lstm.init(jax.random.key(0), x)
    groups = [channel_groups(model, variables, x) for model in (lstm, optimized)]
    assert groups[0].groups == groups[1].groups
    for cost in ("params", "flops"):
        polys = [cost_polynomial(g, cost) for g in groups]
        for counts in ([6], [2]):
            assert evaluate(polys[1], counts) == pytest.approx(evaluate(polys[0], counts))
