"""The step's loss terms (label smoothing, aux losses, regularizers on params and on
tagged values) with dropout and BatchNorm, against a plain optax loop written by hand."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import phosjax as px
from phosjax.data import batch_indices
from phosjax.train import (
    Cell,
    HParams,
    Regularizer,
    device_arrays,
    init_group,
    make_train_step,
    plan_groups,
    run_group,
    train_grid,
)
from tests.train.tiny import Builds, NormsAlways, Tiny

TOL = {"rtol": 2e-5, "atol": 2e-6}
STRENGTHS = [(1e-2, 3e-2), (1e-1, 0.0)]  # (L1 on a kernel, L2 on a tagged value) per cell


def rich_cell(seed: int, l1: float, l2: float) -> Cell:
    regularizers = (
        Regularizer("**/head_0/kernel", "l1", l1),
        Regularizer("**/pre_act_1", "l2", l2, on="activations"),
    )
    hp = HParams(
        optimizer="adamw",
        learning_rate=1e-2,
        weight_decay=0.1,
        label_smoothing=0.1 * seed,
        batch_size=16,
        steps=5,
        regularizers=regularizers,
    )
    return Cell(Tiny(rich=True), "toy", hp, seed)


@functools.partial(jax.jit, static_argnames=("model", "learning_rate", "weight_decay", "batch"))
def _step_by_hand(
    carry, i, keys, x, y, smoothing, l1, l2, *, model, learning_rate, weight_decay, batch
):
    """One step of `train_by_hand`; what differs between cells is traced, so both cells'
    loops share one compiled step."""
    params, stats, knobs, opt_state = carry
    data_key, dropout_key = keys
    tx = optax.adamw(learning_rate, weight_decay=weight_decay)
    idx = batch_indices(data_key, i, x.shape[0], batch)
    targets = optax.smooth_labels(jax.nn.one_hot(y[idx], 3), smoothing)

    def loss_fn(p):
        logits, written = model.apply(
            {"params": p, "batch_stats": stats, "knobs": knobs},
            x[idx],
            train=True,
            rngs={"dropout": jax.random.fold_in(dropout_key, i)},
            mutable=["batch_stats", "aux_loss", "intermediates"],
        )
        task = optax.softmax_cross_entropy(logits, targets).mean()
        aux = sum(jnp.sum(v) for v in jax.tree.leaves(written["aux_loss"]))
        tagged = jax.tree_util.tree_leaves_with_path(written["intermediates"])
        pre_act_1 = [v for path, v in tagged if "pre_act_1" in jax.tree_util.keystr(path)]
        assert len(pre_act_1) == 1
        reg = l1 * jnp.abs(p["head_0"]["kernel"]).sum() + l2 * jnp.mean(pre_act_1[0] ** 2)
        return task + aux + reg, written["batch_stats"]

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), stats, knobs, opt_state), loss


def train_by_hand(cell: Cell, data, l1: float, l2: float):
    """Params, batch_stats and losses of ``cell`` from a jitted loop of plain JAX and optax:
    keys ``split(key(seed), 3)`` (init, data, dropout), dropout ``fold_in(key, step)``."""
    hp, model = cell.hparams, cell.model.build()
    init_key, data_key, dropout_key = jax.random.split(jax.random.key(cell.seed), 3)
    variables = model.init(init_key, jnp.zeros((1, 8)), train=False)
    params, stats, knobs = variables["params"], variables["batch_stats"], variables["knobs"]
    tx = optax.adamw(hp.learning_rate, weight_decay=hp.weight_decay)
    carry = (params, stats, knobs, tx.init(params))
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    static = {
        "model": model,
        "learning_rate": hp.learning_rate,
        "weight_decay": hp.weight_decay,
        "batch": hp.batch_size,
    }
    losses = []
    for i in range(hp.steps):
        carry, loss = _step_by_hand(
            carry, i, (data_key, dropout_key), x, y, hp.label_smoothing, l1, l2, **static
        )
        losses.append(loss)
    params, stats, _, _ = carry
    return params, stats, np.asarray(losses)


def test_a_groups_losses_regularizers_dropout_and_batch_stats_equal_a_loop_by_hand(toy):
    cells = [rich_cell(seed, l1, l2) for seed, (l1, l2) in enumerate(STRENGTHS)]
    [group] = plan_groups(cells)  # one group: the strengths and the smoothing are per cell
    state, run = run_group(group, init_group(group, toy), toy, strategy="vmap", chunk_steps=5)
    [chunk] = run.chunks
    assert (chunk.train["regularizer"] > 0).all() and (chunk.train["aux/l1"] > 0).all()
    for i, (cell, (l1, l2)) in enumerate(zip(cells, STRENGTHS, strict=True)):
        params, stats, losses = train_by_hand(cell, toy, l1, l2)
        mine = jax.tree.map(lambda a, i=i: a[i], (state.params, state.collections["batch_stats"]))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), mine, (params, stats))
        np.testing.assert_allclose(chunk.train["loss"][i], losses, **TOL)


class _Overflows(nn.Module):
    """Tags two values its output does not use: one whose squares overflow float32, and
    one of infinities."""

    @nn.compact
    def __call__(self, x, train=False):
        h = nn.Dense(3)(x)
        px.tag(self, "big", h * 1e30)
        px.tag(self, "inf", h + jnp.inf)
        return h


def test_a_strength_0_regularizer_whose_penalty_overflows_trains_as_without_it(toy):
    """0 * inf was NaN: the cell was marked diverged at its first step and stopped."""

    def cell(*strengths):
        names = ("big", "inf", "Dense_0/kernel")
        ons = ("activations", "activations", "params")
        regs = tuple(
            Regularizer(n, "l2", s, on=on) for n, s, on in zip(names, strengths, ons, strict=False)
        )
        return Cell(Builds(_Overflows()), "toy", HParams(batch_size=16, steps=2, regularizers=regs))

    [group] = plan_groups([cell(0.0, 0.0, 0.0), cell(0.0, 0.0, 1e-3)])  # one compiled step
    state, run = run_group(group, init_group(group, toy), toy, strategy="vmap")
    [plain] = plan_groups([cell()])
    expected, plain_run = run_group(plain, init_group(plain, toy), toy, strategy="vmap")
    assert state.diverged_at.tolist() == [-1, -1]
    [chunk], [plain_chunk] = run.chunks, plain_run.chunks
    assert chunk.train["regularizer"][0].tolist() == [0.0, 0.0]
    assert (chunk.train["regularizer"][1] > 0).all()
    np.testing.assert_array_equal(chunk.train["loss"][0], plain_chunk.train["loss"][0])
    mine = jax.tree.map(lambda a: a[0], state.params)
    jax.tree.map(np.testing.assert_array_equal, mine, jax.tree.map(lambda a: a[0], expected.params))


class _Noisy(nn.Module):
    """Draws noise in training from a stream of its own, not ``dropout``."""

    @nn.compact
    def __call__(self, x, train=False):
        if train:
            x = x + jax.random.normal(self.make_rng("noise"), x.shape)
        return nn.Dense(3)(x)


def test_a_model_drawing_from_another_rng_stream_is_told_to_draw_from_dropout(toy):
    """Flax's error said only ``None needs PRNG for "noise"``."""
    cell = Cell(Builds(_Noisy()), "toy", HParams(batch_size=16, steps=1), 0)
    with pytest.raises(ValueError, match=r"the rng stream 'noise', but training gives a model"):
        train_grid([cell], datasets={"toy": toy}, strategy="sequential")


@pytest.mark.parametrize(
    "regularizer, message",
    [
        (  # on="params", the default, for a tagged value
            Regularizer("**/pre_act_1", "l2", 1e-2),
            r"^HParams regularizers\[0\] \(l2 on params\): Selector '\*\*/pre_act_1' "
            r"matched no param among 8; nearest: .*\. It matches tagged value 'pre_act_1', "
            r"not a param: give on='activations'\.\n",
        ),
        (
            Regularizer("**/head_0/kernel", "l1", 1e-2, on="activations"),
            r"^HParams regularizers\[0\] \(l1 on activations\): Selector '\*\*/head_0/kernel' "
            r"matched no tagged value among 2; nearest: .*\. It matches param 'head_0/kernel', "
            r"not a tagged value: give on='params'\.\n",
        ),
    ],
)
def test_a_regularizer_selecting_the_other_side_is_told_which_on_to_give(toy, regularizer, message):
    """It listed the nearest params (tagged values) alone, though the selector matched a
    tagged value (a param): on='params' is the default."""
    cell = Cell(
        Tiny(rich=True), "toy", HParams(batch_size=16, steps=1, regularizers=(regularizer,))
    )
    with pytest.raises(px.SelectorError, match=message):
        train_grid([cell], datasets={"toy": toy}, strategy="sequential")


class _Member(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", nn.Dense(3)(x))


class _Members(nn.Module):
    """Tags ``inp``, and its members ``members/h``, which nn.vmap drops: its variable_axes
    omit ``intermediates``."""

    @nn.compact
    def __call__(self, x, train=False):
        x = px.tag(self, "inp", nn.Dense(4)(x))
        members = nn.vmap(
            _Member,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            axis_size=2,
        )
        return members(name="members")(x).mean(0)


def test_a_regularizer_of_a_tag_a_lifted_transform_dropped_is_told_how_to_keep_it(toy):
    """It said only "matched no tagged value among 1; nearest: 'inp'", as of a typo."""
    regularizers = (Regularizer("members/h", "l2", 1.0, on="activations"),)
    cell = Cell(
        Builds(_Members()), "toy", HParams(batch_size=16, steps=1, regularizers=regularizers)
    )
    message = (
        r"^tagged value 'members/h' was tagged but not recorded: a lifted transform .* so "
        r"HParams regularizers\[0\] \('members/h'\) would not penalize it\. .*"
        r"px\.scan_axes\(params=0\)"
    )
    with pytest.raises(ValueError, match=message):
        train_grid([cell], datasets={"toy": toy}, strategy="sequential")


def test_a_regularizer_selecting_a_param_of_a_model_norming_in_evaluation_is_told_so(toy):
    """The hint was traced in an evaluation, where NormsAlways writes its batch_stats:
    Flax's ModifyScopeVariableError hid the selector's error."""
    regularizers = (Regularizer("**/kernel", "l2", 1.0, on="activations"),)
    cell = Cell(
        Builds(NormsAlways()), "toy", HParams(batch_size=16, steps=1, regularizers=regularizers)
    )
    message = r"It matches param 'Dense_0/kernel', not a tagged value: give on='params'\.\n"
    with pytest.raises(px.SelectorError, match=message):
        train_grid([cell], datasets={"toy": toy}, strategy="sequential")


class _TagsAPair(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        h = nn.Dense(3)(x)
        px.tag(self, "pair", (h, 2 * h))
        return h


def test_a_regularizer_on_a_tagged_pair_averages_over_the_entries_of_both(toy):
    """It raised AttributeError: 'tuple' object has no attribute 'astype'."""
    regularizers = (Regularizer("pair", "l2", 0.5, "activations"),)
    hp = HParams(batch_size=16, steps=1, regularizers=regularizers)
    [group] = plan_groups([Cell(Builds(_TagsAPair()), "toy", hp)])
    cell = jax.tree.map(lambda a: a[0], init_group(group, toy))
    arrays = device_arrays(toy)
    x, y = arrays["x_train"][:16], arrays["y_train"][:16]
    _, metrics = jax.jit(make_train_step(_TagsAPair(), group.hparams))(cell, arrays, (x, y))
    _, found = px.probe(_TagsAPair(), {"params": cell.params}, x, "pair")
    h, twice = found["pair"]
    expected = 0.5 * (jnp.square(h).sum() + jnp.square(twice).sum()) / (2 * h.size)
    np.testing.assert_allclose(metrics["regularizer"], expected, rtol=1e-6)
