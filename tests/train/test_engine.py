"""The engine trains each cell of a group as if it were trained alone: its init, batches and
dropout from its own seed, its numbers bit for bit those alone under map, sequential and
stepwise, and up to float rounding under vmap (docs/engine.md)."""

import collections
import dataclasses
import functools
import io
import types
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import phosjax as px
from phosjax.core import SelectorError
from phosjax.data import ArrayDataset, batch_indices, random_dataset
from phosjax.models import ModelConfig
from phosjax.train import (
    STRATEGIES,
    Cell,
    Chunk,
    GridResult,
    GroupRun,
    GroupState,
    HParams,
    Regularizer,
    _grid,
    _strategy,
    init_group,
    plan_groups,
    precision_apply,
    run_group,
    train_grid,
)
from phosjax.train._reduce import global_norm
from phosjax.train._run import _stops
from phosjax.train._state import _layout_difference
from phosjax.train._step import (
    check_batch,
    device_array_specs,
    device_arrays,
    make_evaluate,
    make_train_step,
)
from tests.train.tiny import Builds, Counts, NormsAlways, Tiny, toy_data

TOL = {"rtol": 2e-5, "atol": 2e-6}
ADAM = HParams(batch_size=16, steps=8, eval_every=4)
CELLS = [
    Cell(Tiny(), "toy", HParams(**{**ADAM.__dict__, "learning_rate": lr}), seed)
    for seed, lr in [(0, 1e-2), (1, 1e-2), (2, 3e-3), (3, 3e-2)]
]


def assert_trees_close(a, b, **tol):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **(tol or TOL)), a, b)


def evaluate_directly(params, data):
    """Test loss and accuracy of ``params`` on the whole test split, in one plain apply."""
    logits = Tiny().build().apply({"params": params}, jnp.asarray(data.x_test), train=False)
    y = jnp.asarray(data.y_test)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return {"loss": float(loss), "accuracy": float(jnp.mean(jnp.argmax(logits, -1) == y))}


def train_alone(cell: Cell, data, steps: int, make_tx=None):
    """An independent plain-JAX loop: params and per-step losses of one cell.

    ``make_tx`` builds the cell's optimizer with plain optax from its hparams (default:
    ``optax.adam``); the loss is the cross-entropy against ``optax.smooth_labels`` of the
    one-hot labels. The hparams' numbers are arguments of the jitted step, so cells that
    differ only in those share one compiled step (`_alone_step`)."""
    hp = cell.hparams
    make_tx = make_tx or _adam
    numbers = {name: jnp.float32(getattr(hp, name)) for name in ALONE_NUMBERS}
    model = cell.model.build()
    init_key, data_key, _ = jax.random.split(jax.random.key(cell.seed), 3)
    params = model.init(init_key, jnp.zeros((1, 8)))["params"]
    opt_state = make_tx(hp).init(params)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    static = (cell.model, make_tx, hp.batch_size, hp.steps)
    losses = []
    for i in range(steps):
        params, opt_state, loss = _alone_step(
            params, opt_state, i, data_key, x, y, numbers, *static
        )
        losses.append(loss)
    return params, np.asarray(losses)


ALONE_NUMBERS = ("learning_rate", "weight_decay", "momentum", "label_smoothing")
"""The hparams that `_alone_step` takes as arguments (traced), not compiled in."""


def _adam(h):
    return optax.adam(h.learning_rate)


@functools.partial(jax.jit, static_argnums=(7, 8, 9, 10))
def _alone_step(params, opt_state, i, data_key, x, y, numbers, model, make_tx, batch_size, steps):
    """One step of `train_alone`: ``make_tx`` sees the hparams' `ALONE_NUMBERS` and steps."""
    tx = make_tx(types.SimpleNamespace(steps=steps, **numbers))
    idx = batch_indices(data_key, i, x.shape[0], batch_size)
    targets = optax.smooth_labels(jax.nn.one_hot(y[idx], 3), numbers["label_smoothing"])

    def loss_fn(p):
        return optax.softmax_cross_entropy(
            model.build().apply({"params": p}, x[idx]), targets
        ).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def test_group_equals_each_cell_trained_alone(toy):
    [group] = plan_groups(CELLS)
    seen = []
    state, run = run_group(
        group, init_group(group, toy), toy, strategy="vmap", chunk_steps=8, on_chunk=seen.append
    )
    assert [c.steps.tolist() for c in run.chunks] == [[1, 2, 3, 4], [5, 6, 7, 8]]  # eval_every=4
    assert seen == run.chunks and all(set(c.eval) == {"loss", "accuracy"} for c in run.chunks)
    losses = np.concatenate([c.train["loss"] for c in run.chunks], axis=1)
    assert losses.shape == (4, 8)
    for i, cell in enumerate(CELLS):
        params, alone_losses = train_alone(cell, toy, 8)
        assert_trees_close(jax.tree.map(lambda a, i=i: a[i], state.params), params)
        np.testing.assert_allclose(losses[i], alone_losses, **TOL)
    assert np.asarray(state.step).tolist() == [8] * 4


CLIP = 0.05  # below every step's gradient norm in the clip case: each step is clipped
FAMILIES = {  # shared hparams, each cell's values, the cell's optimizer in plain optax
    "adam-l2-label-smoothing": (
        HParams(optimizer="adam", learning_rate=1e-2),
        [
            {"weight_decay": 0.0, "label_smoothing": 0.0},
            {"weight_decay": 0.3, "label_smoothing": 0.2},
        ],
        lambda h: optax.chain(
            optax.add_decayed_weights(h.weight_decay), optax.adam(h.learning_rate)
        ),
    ),
    "adamw": (
        HParams(optimizer="adamw", learning_rate=3e-2),
        [{"weight_decay": 0.1}, {"weight_decay": 0.5}],
        lambda h: optax.adamw(h.learning_rate, weight_decay=h.weight_decay),
    ),
    "momentum": (
        HParams(optimizer="momentum", learning_rate=0.1),
        [{"momentum": 0.5}, {"momentum": 0.8, "weight_decay": 0.1}],
        lambda h: optax.chain(
            optax.add_decayed_weights(h.weight_decay),
            optax.sgd(h.learning_rate, momentum=h.momentum),
        ),
    ),
    "sgd-grad-clip": (
        HParams(optimizer="sgd", learning_rate=0.5, grad_clip=CLIP),
        [{"weight_decay": 0.0}, {"weight_decay": 0.1}],
        lambda h: optax.chain(
            optax.clip_by_global_norm(CLIP),
            optax.add_decayed_weights(h.weight_decay),
            optax.sgd(h.learning_rate),
        ),
    ),
    "adamw-warmup-cosine": (
        HParams(optimizer="adamw", learning_rate=3e-2, lr_schedule="cosine", warmup_steps=2),
        [{"weight_decay": 0.1}, {"weight_decay": 0.5, "learning_rate": 1e-2}],
        lambda h: optax.adamw(  # the peak scales a unit schedule: optax's tests it (a tracer)
            lambda n: h.learning_rate * optax.warmup_cosine_decay_schedule(0.0, 1.0, 2, h.steps)(n),
            weight_decay=h.weight_decay,
        ),
    ),
    "momentum-linear-decay": (
        HParams(optimizer="momentum", learning_rate=0.1, lr_schedule="linear"),
        [{"momentum": 0.5}, {"momentum": 0.8, "learning_rate": 0.2}],
        lambda h: optax.sgd(optax.linear_schedule(h.learning_rate, 0.0, h.steps), h.momentum),
    ),
    "adam-warmup-only": (
        HParams(optimizer="adam", learning_rate=1e-2, warmup_steps=3),
        [{"weight_decay": 0.0}, {"weight_decay": 0.2}],
        lambda h: optax.chain(
            optax.add_decayed_weights(h.weight_decay),
            optax.adam(optax.linear_schedule(0.0, h.learning_rate, 3)),
        ),
    ),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_optimizer_setting_equals_plain_optax_trained_alone(toy, family):
    """Decay (L2 or decoupled), momentum, gradient clipping, label smoothing and learning
    rate schedules (each cell's own peak), each cell with its own values in one group,
    equal a plain-optax loop of the cell alone."""
    shared, values, reference = FAMILIES[family]
    shared = dataclasses.replace(shared, batch_size=16, steps=6)
    cells = [
        Cell(Tiny(), "toy", dataclasses.replace(shared, **v), seed) for seed, v in enumerate(values)
    ]
    [group] = plan_groups(cells)  # one group: the schedule's shape is shared, its peak not
    state, run = run_group(group, init_group(group, toy), toy, strategy="vmap", chunk_steps=6)
    [chunk] = run.chunks
    if shared.grad_clip is not None:
        assert (chunk.train["grad_norm"] > 2 * CLIP).all()  # the clip is active
    for i, cell in enumerate(cells):
        params, losses = train_alone(cell, toy, 6, reference)
        assert_trees_close(jax.tree.map(lambda a, i=i: a[i], state.params), params)
        np.testing.assert_allclose(chunk.train["loss"][i], losses, **TOL)


def test_evaluation_over_padded_batches_equals_one_plain_apply(toy):
    """40 test examples in batches of 16: 16 + 16 + 8, the last padded with 8 zeros."""
    [group] = plan_groups(CELLS[:1])
    cell = jax.tree.map(lambda a: a[0], init_group(group, toy))  # untrained serves as well
    arrays = device_arrays(toy, eval_batch_size=16)
    assert arrays["x_test"].shape == (3, 16, 8)
    assert arrays["test_mask"].sum(1).tolist() == [16, 16, 8]
    got = jax.jit(make_evaluate(Tiny().build()))(cell, arrays)
    direct = evaluate_directly(cell.params, toy)
    assert 0 < direct["accuracy"] < 1  # padded rows counted as examples would move it
    np.testing.assert_allclose(float(got["accuracy"]), direct["accuracy"], **TOL)
    np.testing.assert_allclose(float(got["loss"]), direct["loss"], **TOL)


@pytest.mark.parametrize(
    "size, message",
    [
        (0, r"must be >= 1, got 0"),  # was a ZeroDivisionError
        (-5, r"must be >= 1, got -5"),  # was numpy's "can only specify one unknown dimension"
        (16.0, r"must be an int, got 16.0 \(float\)"),
    ],
)
def test_an_eval_batch_size_below_one_or_no_int_is_refused_by_name(toy, size, message):
    with pytest.raises(ValueError, match=r"device_arrays eval_batch_size " + message):
        device_arrays(toy, eval_batch_size=size)


class _UnitNorm(nn.Module):
    """Scales each example to unit length: NaN logits on an all-zero (padding) row."""

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3)(x / jnp.linalg.norm(x, axis=-1, keepdims=True))


def test_padding_rows_whose_logits_are_nan_do_not_reach_the_test_loss(toy):
    """Padding is masked by selection, not by multiplying with 0 (NaN * 0 is NaN), even
    where XLA does not rewrite the product (eagerly, op by op)."""
    model = _UnitNorm()
    params = model.init(jax.random.key(0), toy.x_test[:1])["params"]
    arrays = device_arrays(toy, eval_batch_size=16)  # 16 + 16 + 8 examples, 8 zero rows
    cell = types.SimpleNamespace(params=params, collections={})
    with jax.disable_jit():
        got = make_evaluate(model)(cell, arrays)
    logits = model.apply({"params": params}, jnp.asarray(toy.x_test))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(toy.y_test))
    np.testing.assert_allclose(float(got["loss"]), float(loss.mean()), **TOL)


class _Bfloat16(nn.Module):
    """A head computing in and storing its params in bfloat16 (a zoo model's options)."""

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)(x)


def test_a_model_with_bfloat16_logits_is_evaluated_in_float32():
    # its evaluation summed the losses and the correct examples in bfloat16, which counts
    # by 2s above 256: 353 correct of 1000 came out as accuracy 0.3515625 (bfloat16)
    data = random_dataset("toy", (8,), 3, num_test=1000)
    model = _Bfloat16()
    params = model.init(jax.random.key(0), data.x_test[:1])["params"]
    cell = types.SimpleNamespace(params=params, collections={})
    got = make_evaluate(model)(cell, device_arrays(data))
    assert {name: value.dtype for name, value in got.items()} == {
        "loss": jnp.float32,
        "accuracy": jnp.float32,
    }
    logits = model.apply({"params": params}, jnp.asarray(data.x_test)).astype(jnp.float32)
    labels = jnp.asarray(data.y_test)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = int(jnp.sum(jnp.argmax(logits, -1) == labels))
    np.testing.assert_allclose(float(got["accuracy"]), correct / 1000, atol=1.5e-3, rtol=0)
    assert float(got["accuracy"]) * 1000 == pytest.approx(round(float(got["accuracy"]) * 1000))
    np.testing.assert_allclose(float(got["loss"]), float(loss.mean()), rtol=1e-5)


def test_a_model_with_bfloat16_logits_takes_its_train_loss_in_float32(toy):
    # its log-softmax ran in bfloat16: the task loss was off by ~1e-4 of itself, and its
    # gradient rounded so
    hp = HParams(batch_size=16, steps=1, label_smoothing=0.1)
    [group] = plan_groups([Cell(Builds(_Bfloat16()), "toy", hp, 0)])
    cell = jax.tree.map(lambda a: a[0], init_group(group, toy))
    step, arrays = make_train_step(_Bfloat16(), hp), device_arrays(toy)
    x, y = arrays["x_train"][:16], arrays["y_train"][:16]  # the step's batch, given
    _, metrics = jax.jit(step)(cell, arrays, (x, y))
    logits = jax.jit(_Bfloat16().apply)({"params": cell.params}, x).astype(jnp.float32)
    targets = jax.nn.one_hot(y, 3) * 0.9 + 0.1 / 3
    task = optax.softmax_cross_entropy(logits, targets).mean()
    np.testing.assert_allclose(float(metrics["task_loss"]), float(task), rtol=1e-6)


def test_a_model_storing_its_params_in_bfloat16_reports_float32_metrics(toy):
    # its grad_norm came out bfloat16 (numpy's ml_dtypes), which pandas refused: train_grid
    # failed building its frames ("no types given") once the steps had run
    hp = HParams(optimizer="sgd", batch_size=16, steps=1)
    [group] = plan_groups([Cell(Builds(_Bfloat16()), "toy", hp, 0)])
    cell = jax.tree.map(lambda a: a[0], init_group(group, toy))
    _, metrics = jax.jit(make_train_step(_Bfloat16(), hp))(cell, device_arrays(toy))
    assert {name: value.dtype for name, value in metrics.items()} == dict.fromkeys(
        metrics, jnp.float32
    )
    train = {name: np.asarray(value).reshape(1, 1) for name, value in metrics.items()}
    frame = _grid.chunk_frame(Chunk(np.ones(1, np.int64), train, {}, np.full(1, -1)), [0])
    assert frame["grad_norm"].dtype == np.float32


def test_the_grad_norm_of_bfloat16_gradients_is_summed_in_float32():
    # their squares were summed in bfloat16: the step's grad_norm (and grad_clip's norm,
    # where it overflows) read 64.5 for a norm of 64.631, 2e-3 off
    grads = {"w": jax.random.normal(jax.random.key(0), (4097,)).astype(jnp.bfloat16)}
    want = np.linalg.norm(np.asarray(grads["w"], np.float64))
    got = global_norm(grads)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), want, rtol=1e-6)


class _WideBfloat16(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3, param_dtype=jnp.bfloat16)(nn.Dense(512, param_dtype=jnp.bfloat16)(x))


@pytest.mark.parametrize("kind, elementwise", [("l2", np.square), ("l1", np.abs)])
def test_a_regularizer_of_bfloat16_params_is_summed_in_float32(toy, kind, elementwise):
    # it was summed in bfloat16: l2 read 518.97 for 518.37, l1 1247 for 1244
    l1_or_l2 = (Regularizer("**/kernel", kind, 1.0),)
    hp = HParams(optimizer="sgd", batch_size=16, steps=1, regularizers=l1_or_l2)
    [group] = plan_groups([Cell(Builds(_WideBfloat16()), "toy", hp, 0)])
    cell = jax.tree.map(lambda a: a[0], init_group(group, toy))
    _, metrics = jax.jit(make_train_step(_WideBfloat16(), hp))(cell, device_arrays(toy))
    kernels = [np.asarray(cell.params[name]["kernel"], np.float64) for name in cell.params]
    want = sum(elementwise(kernel).sum() for kernel in kernels)
    np.testing.assert_allclose(float(metrics["regularizer"]), want, rtol=1e-6)


def test_a_bfloat16_state_saved_with_np_savez_resumes(toy):
    # np.savez stores bfloat16 as raw bytes ('|V2'): run_group refused the state np.load
    # read, "... is void16[3] in the state, bfloat16[3] for this group"
    [group] = plan_groups([Cell(Builds(_Bfloat16()), "toy", HParams(batch_size=16, steps=2), 0)])
    state, _ = run_group(group, init_group(group, toy), toy, 1, strategy="vmap")
    leaves, tree = jax.tree.flatten(jax.device_get(state))
    saved = io.BytesIO()
    np.savez(saved, *leaves)
    saved.seek(0)
    loaded = jax.tree.unflatten(tree, list(np.load(saved).values()))
    assert loaded.params["Dense_0"]["bias"].dtype.kind == "V"
    resumed, _ = run_group(group, loaded, toy, strategy="vmap")
    whole, _ = run_group(group, state, toy, strategy="vmap")
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed), jax.device_get(whole))


class _Partitioned(nn.Module):
    """A Dense whose kernel is boxed for a mesh axis of its own (``nn.with_partitioning``)."""

    @nn.compact
    def __call__(self, x, train=False):
        kernel = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
        return nn.Dense(3, kernel_init=kernel)(x)


def test_a_model_with_partitioned_params_gets_a_state_of_plain_arrays(toy):
    # its state kept the kernel boxed, which then asked the mesh of vmap and map, whose one
    # axis is 'grid', for its 'model' axis: the first chunk failed, "Resource axis: model
    # of P(None, 'model') is not found in mesh"
    model = Builds(_Partitioned())
    [group] = plan_groups([Cell(model, "toy", HParams(batch_size=16), seed) for seed in (0, 1)])
    state = jax.device_get(init_group(group, toy))
    assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(state.params))
    assert state.params["Dense_0"]["kernel"].shape == (2, 8, 3)


class _Constrained(nn.Module):
    """A hidden activation constrained by logical axis names (``nn.with_logical_constraint``)."""

    @nn.compact
    def __call__(self, x, train=False):
        hidden = nn.with_logical_constraint(nn.Dense(8)(x), ("batch", "hidden"))
        return nn.Dense(3)(nn.relu(hidden))


def test_a_model_constraining_activations_trains_under_the_callers_logical_rules(toy):
    # the rules named mesh axes ('data', 'model') of the caller's, which the engine's mesh
    # lacks: the first chunk failed, "Resource axis: data of P('data', 'model') is not
    # found in mesh: ('grid',)"; each cell runs whole, so it trains as without rules
    [group] = plan_groups([Cell(Builds(_Constrained()), "toy", HParams(batch_size=16, steps=1))])
    state = init_group(group, toy)
    with nn.logical_axis_rules([("batch", "data"), ("hidden", "model")]):
        ruled, _ = run_group(group, state, toy, strategy="vmap")  # "map": the same mesh
    plain, _ = run_group(group, state, toy, strategy="vmap")
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(ruled), jax.device_get(plain))


class _KnobsAlone(nn.Module):
    """No params: logits from the first features at a temperature knob."""

    @nn.compact
    def __call__(self, x, train=False):
        return x[:, :3] / px.knob(self, "T", 1.0)


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_a_model_without_params_trains_a_grid_over_its_knobs(toy, compute_dtype):
    # init_group failed with a bare KeyError 'params'
    hp = HParams(batch_size=16, steps=1, knobs={"T": 2.0}, compute_dtype=compute_dtype)
    cells = [Cell(Builds(_KnobsAlone()), "toy", hp)]
    result = train_grid(cells, datasets={"toy": toy}, strategy="vmap")
    logits = jnp.asarray(toy.x_test[:, :3]) / 2
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(toy.y_test))
    rtol = 1e-6 if compute_dtype == "float32" else 1e-2  # its input cast to bfloat16
    np.testing.assert_allclose(result.final["test_loss"][0], float(loss.mean()), rtol=rtol)


def test_chunks_end_at_every_evaluation():
    assert _stops(0, 8, 3, 4) == [3, 4, 7, 8]
    assert _stops(2, 9, 5, 0) == [7, 9]
    assert _stops(4, 4, 5, 4) == []


def test_resumed_run_equals_uninterrupted(toy):
    [group] = plan_groups(CELLS)
    whole, whole_run = run_group(group, init_group(group, toy), toy, strategy="vmap", chunk_steps=4)
    half, first = run_group(group, init_group(group, toy), toy, 4, strategy="vmap", chunk_steps=4)
    saved = jax.device_get(half)  # host numpy, as a checkpoint would hold it
    assert isinstance(jax.tree.leaves(saved)[0], np.ndarray)
    resumed, second = run_group(group, saved, toy, strategy="vmap", chunk_steps=4)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed), jax.device_get(whole))
    for a, b in zip(first.chunks + second.chunks, whole_run.chunks, strict=True):
        jax.tree.map(np.testing.assert_array_equal, (a.train, a.eval), (b.train, b.eval))
    with pytest.raises(ValueError, match=r"until_step=2 must lie between the state's step 4"):
        run_group(group, saved, toy, 2)


def test_sharded_equals_unsharded_and_pads_five_cells_on_four_devices(toy):
    assert len(jax.local_devices()) == 4
    cells = [*CELLS, Cell(Tiny(), "toy", ADAM, seed=9)]
    [group] = plan_groups(cells)
    outs = {}
    for name, devices in [("one", jax.local_devices()[:1]), ("four", jax.local_devices())]:
        state, run = run_group(
            group, init_group(group, toy), toy, strategy="vmap", chunk_steps=8, devices=devices
        )
        assert jax.tree.leaves(state)[0].shape[0] == 5
        assert run.chunks[-1].train["loss"].shape == (5, 4)
        assert run.chunks[-1].eval["loss"].shape == (5,)
        outs[name] = (jax.device_get(state), [(c.train, c.eval) for c in run.chunks])
    assert_trees_close(outs["one"], outs["four"])


@pytest.mark.parametrize("seeds, devices", [(6, 3), (5, 1)])
def test_a_padded_groups_state_comes_back_sharded_not_copied_to_every_device(toy, seeds, devices):
    """6 cells on 4 devices train as 8; the state returned holds each cell once, 2 on
    each of 3 devices (5 cells: all on the first), where it was copied whole to each of
    the 4; a run resumed from it gives the same numbers as one on one device. The 5 cells
    are those of the test above, whose programs serve them."""
    more = [Cell(Tiny(), "toy", ADAM, seed) for seed in range(9, 9 + seeds - len(CELLS))]
    [group] = plan_groups([*CELLS, *more])
    half, _ = run_group(group, init_group(group, toy), toy, 4, strategy="vmap")
    for leaf in jax.tree.leaves(half):
        assert [shard.device for shard in leaf.addressable_shards] == jax.devices()[:devices]
        assert {shard.data.shape[0] for shard in leaf.addressable_shards} == {seeds // devices}
    resumed, _ = run_group(group, half, toy, strategy="vmap")
    one = jax.devices()[:1]
    whole, _ = run_group(group, init_group(group, toy), toy, strategy="vmap", devices=one)
    assert_trees_close(jax.device_get(resumed), jax.device_get(whole))


def test_divergent_cell_is_frozen_and_leaves_its_neighbours_alone(toy):
    sgd = HParams(optimizer="sgd", learning_rate=0.1, batch_size=16, steps=8)
    good = [Cell(Tiny(), "toy", sgd, seed) for seed in range(4)]
    bad = Cell(Tiny(), "toy", HParams(**{**sgd.__dict__, "learning_rate": 1e6}), seed=7)
    results = {}  # the same group shape, so one compiled program serves both runs
    for name, cells in [
        ("with", [good[0], bad, *good[1:3]]),
        ("without", [good[0], good[3], *good[1:3]]),
    ]:
        [group] = plan_groups(cells)
        state, run = run_group(group, init_group(group, toy), toy, strategy="vmap")
        results[name] = jax.device_get(state), run.chunks[-1]
    state, chunk = results["with"]
    assert state.diverged.tolist() == [False, True, False, False]
    at = int(state.diverged_at[1])
    assert 1 <= at <= 8 and chunk.diverged_at.tolist() == [-1, at, -1, -1]
    assert not np.isfinite(chunk.train["loss"][1, at - 1])
    assert all(np.isfinite(leaf[1]).all() for leaf in jax.tree.leaves(state.params))  # frozen
    keep = [0, 2, 3]
    without_state, without_chunk = results["without"]
    take = lambda tree: jax.tree.map(lambda a: a[keep], tree)
    assert_trees_close(take(state.params), take(without_state.params))
    assert_trees_close(take(chunk.eval), take(without_chunk.eval))
    assert not without_state.diverged.any()


def test_a_frozen_cell_whose_logits_are_nan_reports_a_nan_accuracy_not_argmaxs(toy):
    """SGD at 1e30 makes finite params so large that the next step's logits hold NaN (or
    +inf: how a CPU sums terms overflowing with both signs) in every row: an argmax would
    pick its class and count right the labels of that class (0.425 on one CPU, above the
    healthy cell's 0.4: the diverged cell would rank best; 0.3 on another)."""
    sgd = HParams(optimizer="sgd", learning_rate=0.01, batch_size=16, steps=4)
    mlp = ModelConfig("mlp", 3, (8,), width=8)
    cells = [
        Cell(mlp, "toy", sgd, 0),
        Cell(mlp, "toy", dataclasses.replace(sgd, learning_rate=1e30), 0),
    ]
    [group] = plan_groups(cells)
    state, run = run_group(group, init_group(group, toy), toy, strategy="vmap")
    state, [chunk] = jax.device_get(state), run.chunks
    assert chunk.diverged_at.tolist() == [-1, 2]
    for i in range(2):
        variables = {"params": jax.tree.map(lambda a, i=i: a[i], state.params)}
        logits = np.asarray(mlp.build().apply(variables, toy.x_test))
        plain = np.mean(np.argmax(logits, -1) == toy.y_test)
        overflowed = ~np.isfinite(logits.max(-1))  # NaN or +inf
        expected = np.nan if overflowed.any() else plain
        np.testing.assert_allclose(chunk.eval["accuracy"][i], expected, **TOL)
    assert overflowed.all() and plain > 0 and np.isnan(chunk.eval["accuracy"][1])  # not argmax's
    assert np.isnan(chunk.train["accuracy"][1, 1:]).all()
    assert np.isfinite(chunk.train["accuracy"][:, 0]).all()


MOMENTUM = HParams(optimizer="momentum", learning_rate=0.05, batch_size=16, steps=8)
BLOWS_UP = dataclasses.replace(MOMENTUM, learning_rate=1e6)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_cell_diverging_mid_chunk_is_frozen_at_its_last_finite_step(toy, strategy):
    """Chunks run unguarded; the chunk a cell diverges in runs again, guarded."""
    [group] = plan_groups([Cell(Tiny(), "toy", MOMENTUM, 0), Cell(Tiny(), "toy", BLOWS_UP, 7)])
    whole, run = run_group(group, init_group(group, toy), toy, strategy=strategy, chunk_steps=8)
    at = int(whole.diverged_at[1])
    assert 2 <= at <= 8 and run.chunks[0].diverged_at.tolist() == [-1, at]  # mid-chunk
    in_small_chunks, _ = run_group(  # later chunks stay guarded
        group, init_group(group, toy), toy, strategy=strategy, chunk_steps=2
    )
    assert_trees_close(jax.device_get(in_small_chunks), jax.device_get(whole))
    # In chunks of 2 as well: the unguarded program of 2 steps just compiled serves it.
    before, _ = run_group(
        group, init_group(group, toy), toy, at - 1, strategy=strategy, chunk_steps=2
    )
    bad = lambda state: jax.tree.map(lambda a: a[1], (state.params, state.opt_state))
    assert_trees_close(bad(whole), bad(before))  # frozen after step at - 1


def test_an_unguarded_step_sets_the_divergence_flags_but_applies_the_update(toy):
    [group] = plan_groups([Cell(Tiny(), "toy", BLOWS_UP, 7)])
    state = jax.tree.map(lambda a: a[0], init_group(group, toy))
    arrays = jax.device_put(device_arrays(toy))
    steps = {
        guard: jax.jit(make_train_step(Tiny().build(), BLOWS_UP, guard=guard))
        for guard in (True, False)
    }
    for _ in range(8):
        state, _ = steps[True](state, arrays)
    at = int(state.diverged_at)
    assert state.diverged and at > 1
    frozen = state.params
    guarded, _ = steps[True](state, arrays)
    unguarded, _ = steps[False](state, arrays)
    assert_trees_close(guarded.params, frozen)
    assert not all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(unguarded.params))
    assert (unguarded.diverged, int(unguarded.diverged_at)) == (True, at)


def test_a_diverged_cell_stays_frozen_even_when_its_next_step_is_finite(toy):
    """A cell diverged once (say its gradient norm overflowed while its params stayed
    finite) is frozen for good: a later finite step does not bring it back."""
    [group] = plan_groups([Cell(Tiny(), "toy", MOMENTUM, 3)])
    state = jax.tree.map(lambda a: a[0], init_group(group, toy))
    state = state.replace(diverged=jnp.asarray(True), diverged_at=jnp.int32(1))
    step = jax.jit(make_train_step(Tiny().build(), MOMENTUM))
    after, metrics = step(state, jax.device_put(device_arrays(toy)))
    assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
    jax.tree.map(
        np.testing.assert_array_equal,
        (after.params, after.opt_state),
        (state.params, state.opt_state),
    )
    assert (bool(after.diverged), int(after.diverged_at), int(after.step)) == (True, 1, 1)


class _Linear(nn.Module):
    """Logits ``x @ kernel``: a batch of zero inputs has a zero gradient."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(3, use_bias=False)(x)


def _params_overflow_at_step_3(toy):
    """``(group, start, data)``: a cell whose update of step 3 overflows its params
    (loss and gradient finite), beside one that trains on."""
    huge = dataclasses.replace(MOMENTUM, learning_rate=1e37)
    [group] = plan_groups(
        [Cell(Builds(_Linear()), "toy", MOMENTUM, 0), Cell(Builds(_Linear()), "toy", huge, 7)]
    )
    zeros = dataclasses.replace(toy, x_train=np.zeros_like(toy.x_train))
    start = init_group(group, zeros)
    one = jax.tree.map(lambda a: a[1], start)
    drawn = make_train_step(_Linear(), huge).batches(one, device_arrays(zeros), 3)
    x_train = np.zeros_like(toy.x_train)
    x_train[int(drawn[2, 0])] = 1e4  # only step 3's batch has a nonzero gradient
    return group, start, dataclasses.replace(toy, x_train=x_train)


def test_an_update_that_overflows_the_params_freezes_the_cell_before_it(toy):
    """The loss and the gradient of step 3 are finite, but its update overflows float32:
    the cell is marked diverged at step 3 and keeps its params and optimizer state from
    before it (the chunk runs unguarded, then again guarded)."""
    group, start, data = _params_overflow_at_step_3(toy)
    state, run = run_group(group, start, data, strategy="vmap", chunk_steps=8)
    assert state.diverged_at.tolist() == [-1, 3]
    train = run.chunks[0].train
    assert np.isfinite([train["loss"][1, 2], train["grad_norm"][1, 2]]).all()
    cell = lambda s: jax.device_get(jax.tree.map(lambda a: a[1], (s.params, s.opt_state)))
    before, _ = run_group(group, start, data, 2, strategy="vmap")
    jax.tree.map(np.testing.assert_array_equal, cell(state), cell(before))
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state.params))


def test_train_grids_rows_say_from_which_step_a_cell_had_diverged(toy):
    """The frozen cell's metrics from step 3 on are finite (those of its state before
    it): its rows there, and only those, have ``diverged``."""
    group, _, data = _params_overflow_at_step_3(toy)
    metrics = train_grid(list(group.cells), datasets={"toy": data}, strategy="vmap").metrics
    assert np.isfinite(metrics[["loss", "accuracy"]].to_numpy()).all()
    expected = (metrics.cell == 1) & (metrics.step >= 3)
    assert metrics.diverged.tolist() == expected.tolist() and expected.any()
    assert set(metrics.split) == {"train", "test"}


@pytest.mark.parametrize("grad_clip", [None, 1.0])
def test_a_finite_gradient_whose_squares_overflow_is_not_divergence(toy, grad_clip):
    """Inputs of ~1e21 give a gradient of finite entries whose global norm is above the
    ~1.8e19 where float32's sum of squares overflows: the cell is not diverged, its
    ``grad_norm`` is finite, and clipping scales the gradient to the clip's norm (the
    clip's overflowed norm, inf, made it zeros)."""
    huge = dataclasses.replace(toy, x_train=toy.x_train * np.float32(1e21))
    after, metrics, moved = _sgd_step(huge, grad_clip)
    assert not after.diverged and int(after.diverged_at) == -1
    assert 1e20 < float(metrics["grad_norm"]) < 1e23
    expected = metrics["grad_norm"] if grad_clip is None else grad_clip
    np.testing.assert_allclose(moved, 0.1 * expected, rtol=1e-5)


@pytest.mark.parametrize("grad_clip", [None, 1.0])
def test_a_finite_gradient_whose_norm_float32_cannot_hold_is_not_divergence(toy, grad_clip):
    """Zero weights on inputs of 3e38 in four features, every label 0: a gradient of
    finite entries (3e38 · (-2/3, 1/3, 1/3) per feature) whose global norm, ~4.9e38, is
    above float32's largest value. The cell is not diverged (it was: its norm read inf),
    ``grad_norm`` reads inf, and the step moves the params by the learning rate times
    the gradient's norm, or clipped, the clip's."""
    x = np.zeros_like(toy.x_train)
    x[:, :4] = np.float32(3e38)
    huge = dataclasses.replace(toy, x_train=x, y_train=np.zeros_like(toy.y_train))
    after, metrics, moved = _sgd_step(huge, grad_clip, zero_params=True)
    assert not after.diverged and int(after.diverged_at) == -1
    assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) == np.inf
    norm = np.sqrt(4 * 6 / 9) * 3e38
    np.testing.assert_allclose(moved, 0.1 * (norm if grad_clip is None else grad_clip), rtol=1e-5)


def _sgd_step(
    data: ArrayDataset, grad_clip: float | None, zero_params: bool = False
) -> tuple[GroupState, dict, float]:
    """``(state after, metrics, how far the params moved)`` of one SGD step (learning rate
    0.1, ``grad_clip``) of `_Linear` on ``data``, from zero weights if ``zero_params``."""
    hp = HParams(optimizer="sgd", learning_rate=0.1, batch_size=16, steps=8, grad_clip=grad_clip)
    [group] = plan_groups([Cell(Builds(_Linear()), data.name, hp, 0)])
    state = jax.tree.map(lambda a: a[0], init_group(group, data))
    if zero_params:
        state = state.replace(params=jax.tree.map(jnp.zeros_like, state.params))
    after, metrics = jax.jit(make_train_step(_Linear(), hp))(
        state, jax.device_put(device_arrays(data))
    )
    moves = jax.tree.map(
        lambda a, b: np.subtract(a, b, dtype=np.float64), after.params, state.params
    )
    return after, metrics, np.sqrt(sum(np.sum(np.square(m)) for m in jax.tree.leaves(moves)))


class _Tracks(nn.Module):
    """``_Linear``, keeping the batch's sum of squares in ``batch_stats``: one that a
    batch of inputs of -1e22 overflows, and which the logits do not read."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        energy = self.variable("batch_stats", "energy", jnp.zeros, ())
        if train:
            energy.value = jnp.sum(x * x)
        return nn.Dense(3, use_bias=False)(x)


@pytest.mark.parametrize(
    "model, hp",
    [
        (Builds(_Linear()), dataclasses.replace(MOMENTUM, optimizer="adam", learning_rate=1e-3)),
        (Builds(_Tracks()), dataclasses.replace(MOMENTUM, optimizer="sgd", learning_rate=1e-22)),
    ],
    ids=["adam-second-moment", "batch-stats"],
)
def test_an_overflow_of_the_optimizer_state_or_a_collection_freezes_the_cell_before_it(
    toy, model, hp
):
    """Step 3's batch holds an input of -1e22: its loss, gradient norm and params stay
    finite, but Adam's second moment (the gradient squared) or a running statistic
    overflows. The cell is marked diverged at step 3 and keeps its state from before it
    (with an inf second moment Adam no longer moves those params: a dead cell)."""
    [group] = plan_groups([Cell(model, "toy", hp, 0)])
    zeros = dataclasses.replace(toy, x_train=np.zeros_like(toy.x_train))
    start = init_group(group, zeros)
    one = jax.tree.map(lambda a: a[0], start)
    drawn = make_train_step(model.build(), hp).batches(one, device_arrays(zeros), 3)
    x_train = np.zeros_like(toy.x_train)
    x_train[int(drawn[2, 0])] = -1e22  # (+1e22 classifies it right: a zero gradient)
    data = dataclasses.replace(toy, x_train=x_train)
    kept = lambda s: jax.device_get((s.params, s.opt_state, s.collections))
    before, _ = run_group(group, start, data, 2, strategy="vmap")
    for chunk_steps in (8, 2):  # step 3 mid-chunk, first of a chunk
        state, run = run_group(group, start, data, strategy="vmap", chunk_steps=chunk_steps)
        assert state.diverged_at.tolist() == [3]
        at_3 = {
            k: np.concatenate([c.train[k] for c in run.chunks], 1)[0, 2]
            for k in ("loss", "grad_norm")
        }
        assert np.isfinite(at_3["loss"]) and 1e20 < at_3["grad_norm"] < np.inf
        jax.tree.map(np.testing.assert_array_equal, kept(state), kept(before))


class _Bfloat16Stats(nn.Module):
    """Flax's BatchNorm storing its running statistics in bfloat16: it writes float32 ones."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        norm = nn.BatchNorm(
            use_running_average=not train, force_float32_reductions=False, param_dtype=jnp.bfloat16
        )
        return nn.Dense(3)(norm(x))


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_a_running_statistic_stored_in_bfloat16_keeps_its_dtype(toy, compute_dtype):
    """Its update, float32, is stored back in bfloat16 (a scan's carry keeps its dtype)."""
    hp = HParams(batch_size=16, steps=2, compute_dtype=compute_dtype)
    [group] = plan_groups([Cell(Builds(_Bfloat16Stats()), "toy", hp, 0)])
    state, _ = run_group(group, init_group(group, toy), toy, strategy="vmap")
    stats = jax.device_get(state.collections["batch_stats"]["BatchNorm_0"])
    assert {str(a.dtype) for a in stats.values()} == {"bfloat16"}
    mean = stats["mean"].astype(np.float32)
    assert np.isfinite(mean).all() and np.abs(mean).max() > 0  # moved from its zeros


def test_a_collection_held_in_a_frozen_dict_is_stored_back_in_its_dtype(toy):
    """The cast back to the stored dtype met a state whose collection is a FrozenDict (the
    written one a dict) with a pytree structure error; unguarded, that step had worked."""
    hp = HParams(batch_size=16, steps=2)
    [group] = plan_groups([Cell(Builds(_Bfloat16Stats()), "toy", hp, 0)])
    cell = jax.tree.map(lambda a: a[0], init_group(group, toy))
    frozen = cell.replace(collections={k: flax.core.freeze(v) for k, v in cell.collections.items()})
    step = jax.jit(make_train_step(_Bfloat16Stats(), hp, guard=False))
    stats = step(frozen, device_arrays(toy))[0].collections["batch_stats"]["BatchNorm_0"]
    assert {str(a.dtype) for a in stats.values()} == {"bfloat16"}
    assert np.abs(np.asarray(stats["mean"], np.float32)).max() > 0  # moved from its zeros


class _StatInTrainingAlone(nn.Module):
    """Makes a ``batch_stats`` variable in training alone: init does not make it."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if train:
            count = self.variable("batch_stats", "count", jnp.zeros, ())
            count.value = count.value + 1
        self.variable("batch_stats", "kept", jnp.zeros, ())
        return nn.Dense(3)(x)


def test_a_collection_written_with_a_variable_init_did_not_make_is_named(toy):
    [group] = plan_groups([Cell(Builds(_StatInTrainingAlone()), "toy", MOMENTUM, 0)])
    with pytest.raises(ValueError, match=r"wrote its 'batch_stats' collection with count \(not"):
        run_group(group, init_group(group, toy), toy, strategy="vmap")


@pytest.mark.parametrize(
    "model, message",
    [
        (
            Counts(),
            "Counts writes variable 'calls' of its collection 'counter' (at '/') in training, "
            "but a train step writes only 'batch_stats' (running statistics, carried from "
            "step to step) and reads the other collections as init made them: keep what the "
            "model updates in training in 'batch_stats'",
        ),
        (
            NormsAlways(),
            "NormsAlways writes variable 'mean' of its collection 'batch_stats' (at "
            "'/BatchNorm_0') in an evaluation (train=False), which writes nothing and reads "
            "what training left: write it only when train is true (Flax's BatchNorm: "
            "use_running_average=not train)",
        ),
    ],
    ids=["training", "evaluation"],
)
def test_a_write_to_a_collection_the_step_or_evaluation_does_not_write_is_named(
    toy, model, message
):
    """Flax's ModifyScopeVariableError said only that the collection "is immutable"."""
    with pytest.raises(ValueError) as raised:  # refused before any cell trains: traced alone
        train_grid([Cell(Builds(model), "toy", MOMENTUM, 0)], datasets={"toy": toy})
    assert str(raised.value) == message


ONE_CELL = "state must be one cell's GroupState (step of shape ()), got one of 2 cells"
MAPPING = "arrays must be a mapping holding x_train, y_train, got a"


@pytest.mark.parametrize(
    "call, error, message",
    [
        ("step-group", ValueError, f"the train step: {ONE_CELL}"),
        ("step-dataset", TypeError, f"the train step: {MAPPING}n ArrayDataset; pass device_arrays"),
        ("step-dict", TypeError, f"the train step: {MAPPING} dict, which lacks y_train; pass"),
        ("batches-group", ValueError, f"the train step: {ONE_CELL}"),
        ("evaluate-group", ValueError, f"evaluate: {ONE_CELL}"),
    ],
)
def test_a_step_or_evaluation_given_a_groups_state_or_no_arrays_says_what_to_pass(
    toy, call, error, message
):
    """Not a batch of keys, an unsubscriptable data set, a KeyError or a param shape."""
    [group] = plan_groups([Cell(Tiny(), "toy", MOMENTUM, 0), Cell(Tiny(), "toy", MOMENTUM, 1)])
    state, arrays = init_group(group, toy), device_arrays(toy)
    cell = jax.tree.map(lambda a: a[0], state)
    step = make_train_step(Tiny().build(), MOMENTUM)
    calls = {
        "step-group": lambda: step(state, arrays),
        "step-dataset": lambda: step(cell, toy),
        "step-dict": lambda: step(cell, {"x_train": arrays["x_train"]}),
        "batches-group": lambda: step.batches(state, arrays, 2),
        "evaluate-group": lambda: make_evaluate(Tiny().build())(state, arrays),
    }
    with pytest.raises(error) as raised:
        calls[call]()
    assert str(raised.value).startswith(message), raised.value


def test_the_check_of_a_steps_arguments_takes_what_worked_before_it(toy):
    """A state that is no GroupState (a namespace of params and collections, no ``step``)
    is evaluated, and a step given its batch's examples reads no arrays (none given)."""
    [group] = plan_groups([Cell(Tiny(), "toy", MOMENTUM, 0)])
    cell = jax.tree.map(lambda a: a[0], init_group(group, toy))
    arrays = device_arrays(toy)
    evaluate = make_evaluate(Tiny().build())
    plain = types.SimpleNamespace(params=cell.params, collections=cell.collections)
    assert evaluate(plain, arrays) == evaluate(cell, arrays)
    step = make_train_step(Tiny().build(), MOMENTUM)
    batch = jax.tree.map(lambda b: b[0], step.batches(cell, arrays, 1, budget_bytes=1e9))
    stepped, _ = step(cell, None, batch)
    jax.tree.map(np.testing.assert_array_equal, stepped, step(cell, arrays)[0])


def test_a_step_drawing_its_own_batch_checks_its_arguments_once(toy, monkeypatch):
    """`TrainStep.__call__` checked them and then `TrainStep.batches` again."""
    import phosjax.train._step as step_module

    checks = []
    check = step_module.check_cell_arguments
    monkeypatch.setattr(step_module, "check_cell_arguments", lambda *a: checks.append(check(*a)))
    [group] = plan_groups([Cell(Tiny(), "toy", MOMENTUM, 0)])
    cell = jax.tree.map(lambda a: a[0], init_group(group, toy))
    make_train_step(Tiny().build(), MOMENTUM)(cell, device_arrays(toy))
    assert len(checks) == 1


def test_a_chunks_batches_drawn_at_once_are_each_steps_own(toy):
    """`TrainStep.batches` (drawn before a chunk's scan) == `batch_indices` step by step,
    across epoch ends, from any start step."""
    [group] = plan_groups([Cell(Tiny(), "toy", MOMENTUM, 3)])
    state = jax.tree.map(lambda a: a[0], init_group(group, toy)).replace(step=jnp.int32(5))
    arrays = device_arrays(toy)
    step = make_train_step(Tiny().build(), MOMENTUM)
    num_train, size = len(arrays["x_train"]), MOMENTUM.batch_size
    key = jax.random.wrap_key_data(state.data_key)
    steps = range(5, 5 + 3 * num_train // size)  # three epochs
    expected = [batch_indices(key, s, num_train, size) for s in steps]
    np.testing.assert_array_equal(step.batches(state, arrays, len(steps)), np.stack(expected))


def test_a_chunks_examples_gathered_at_once_within_the_budget(toy):
    """With room in ``budget_bytes`` `TrainStep.batches` gathers the examples of the
    indices it draws; with too little it returns the indices."""
    [group] = plan_groups([Cell(Tiny(), "toy", MOMENTUM, 3)])
    state = jax.tree.map(lambda a: a[0], init_group(group, toy))
    arrays = device_arrays(toy)
    step = make_train_step(Tiny().build(), MOMENTUM)
    idx = step.batches(state, arrays, 4)
    need = idx.size * (arrays["x_train"][0].nbytes + arrays["y_train"][0].nbytes)
    x, y = step.batches(state, arrays, 4, budget_bytes=need)
    np.testing.assert_array_equal(x, arrays["x_train"][idx])
    np.testing.assert_array_equal(y, arrays["y_train"][idx])
    np.testing.assert_array_equal(step.batches(state, arrays, 4, budget_bytes=need - 1), idx)


@pytest.mark.parametrize("strategy", ["vmap", "map", "stepwise"])
def test_gathering_before_the_scan_or_in_each_step_gives_the_same_numbers(
    toy, strategy, monkeypatch
):
    [group] = plan_groups(CELLS[:2])
    make_step = lambda: make_train_step(group.model.build(), group.hparams)
    out = []
    for prefetch in (0, 2**30):
        monkeypatch.setattr(_strategy, "PREFETCH_BYTES", prefetch)
        executor = _strategy.Executor(strategy, 2)
        state = executor.put_state(init_group(group, toy))
        data = executor.put_data(device_arrays(toy))
        key = ("test-prefetch", prefetch, group.signature())
        out.append(jax.device_get(executor.run_steps(key, make_step, state, data, 5)))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), *out)


def test_train_grid_returns_tidy_frames(toy):
    result = train_grid(CELLS, datasets={"toy": toy}, strategy="vmap", chunk_steps=4)
    assert result.index == (0, 1, 2, 3)
    assert result.final["cell"].tolist() == [0, 1, 2, 3]
    assert set(result.final["strategy"]) == {"vmap"}
    m = result.metrics
    assert len(m) == 4 * 8 + 4 * 2  # a train row per step, a test row per evaluation
    test = m[m.split == "test"]
    assert test["step"].tolist() == [4, 8] * 4
    for cell in range(4):  # by step, a step's train row before its evaluation
        rows = m[m.cell == cell]
        assert rows["step"].tolist() == [1, 2, 3, 4, 4, 5, 6, 7, 8, 8]
        assert rows["split"].tolist() == (["train"] * 4 + ["test"]) * 2
    last = test[test.step == 8]
    [state] = result.states
    # on the host: kept on the devices, the states of a grid's groups added up there
    assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(state))
    for i in range(4):  # the final evaluation is of the final params
        direct = evaluate_directly(jax.tree.map(lambda a, i=i: a[i], state.params), toy)
        np.testing.assert_allclose(last["accuracy"].iloc[i], direct["accuracy"], **TOL)
        np.testing.assert_allclose(last["loss"].iloc[i], direct["loss"], **TOL)
        np.testing.assert_allclose(result.final["test_accuracy"][i], direct["accuracy"], **TOL)
        np.testing.assert_allclose(result.final["test_loss"][i], direct["loss"], **TOL)
    assert {"loss", "task_loss", "accuracy", "grad_norm"} <= set(m.columns)


def test_a_process_without_cells_gets_frames_with_the_columns_and_dtypes_of_one_with(toy):
    result = train_grid(CELLS[:1], datasets={"toy": toy}, strategy="vmap", chunk_steps=4)
    none = train_grid(CELLS[:1], datasets={"toy": toy}, process=(1, 2))  # cell 0 is process 0's
    assert (none.index, len(none.final), len(none.metrics)) == ((), 0, 0)
    for got, want in [(none.final, result.final), (none.metrics, result.metrics)]:
        assert got.dtypes.to_dict() == want.dtypes.to_dict()
        assert list(got.columns) == list(want.columns)


def test_run_group_refuses_a_state_made_for_another_number_of_cells(toy):
    [one] = plan_groups(CELLS[:1])
    [two] = plan_groups(CELLS[:2])
    with pytest.raises(ValueError, match=r"1 cells \(step shape \(1,\)\) but the group has 2"):
        run_group(two, init_group(one, toy), toy, strategy="vmap")


def _other(**changes):
    """`CELLS[0]` with other hparams (``model=...``: another model)."""
    model = changes.pop("model", Tiny())
    return Cell(model, "toy", dataclasses.replace(CELLS[0].hparams, **changes), 0)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (
            _other(model=Tiny(width=16)),
            r"Dense_0'\]\['kernel'\] is float32\[1, 8, 3\] in the "
            r"state, float32\[1, 16, 3\] for this group",
        ),
        (
            _other(regularizers=(Regularizer("**/kernel", "l2", 1e-3),)),
            r"the state lacks \.hparams\['regularizer_strength'\]",
        ),
        (_other(learning_rate=0.5), r"learning_rate of cell 0 is 0.01 in the state but 0.5 in"),
        (_other(label_smoothing=0.1), r"label_smoothing of cell 0 is 0.0 in the state but 0.1"),
        (
            Cell(Tiny(), "toy", CELLS[0].hparams, CELLS[0].seed + 1),
            rf"cell 0 holds the keys of another seed than its {CELLS[0].seed + 1}",
        ),
    ],
)
def test_run_group_refuses_a_state_made_for_another_group_saying_what_differs(toy, cell, message):
    [made_for] = plan_groups(CELLS[:1])
    [group] = plan_groups([cell])
    state = jax.device_get(init_group(made_for, toy))  # a checkpoint's host numpy, too
    with pytest.raises(ValueError, match=r"the state was made for another group.*" + message):
        run_group(group, state, toy, strategy="vmap")


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (
            _other(optimizer="sgd"),
            r"its optimizer state was made for another optimizer family, gradient clipping or "
            r"learning-rate schedule: the state has extra \.opt_state\.inner_state.*\.mu\[",
        ),
        (
            _other(lr_schedule="cosine"),
            r"optimizer state was made for another .* learning-rate schedule: the state lacks",
        ),
    ],
)
def test_a_state_that_records_no_settings_is_told_its_optimizer_state_differs(toy, cell, message):
    """Without its settings (a checkpoint of an older phosjax) only its tree tells."""
    [made_for] = plan_groups(CELLS[:1])
    [group] = plan_groups([cell])
    state = jax.device_get(init_group(made_for, toy)).replace(settings={})
    with pytest.raises(ValueError, match=r"the state was made for another group.*" + message):
        run_group(group, state, toy, strategy="vmap")


SCHEDULED = HParams(
    batch_size=16, steps=8, lr_schedule="cosine", warmup_steps=2, grad_clip=1.0, eval_every=4
)
"""Settings a state's tree does not show: a cosine's steps, a warmup's, a clip's norm."""


@pytest.mark.parametrize(
    ("changes", "saved", "given", "why"),
    [
        (
            {"steps": 16},
            "steps=8",
            "steps=16",
            " (lr_schedule 'cosine' decays the learning rate over steps: resumed under "
            "others, the rate would jump; steps may change under lr_schedule 'constant' alone)",
        ),
        ({"lr_schedule": "linear"}, "lr_schedule='cosine'", "lr_schedule='linear'", ""),
        ({"warmup_steps": 1}, "warmup_steps=2", "warmup_steps=1", ""),
        ({"grad_clip": 2.0}, "grad_clip=1.0", "grad_clip=2.0", ""),
        ({"batch_size": 8}, "batch_size=16", "batch_size=8", ""),
        ({"compute_dtype": "bfloat16"}, "compute_dtype='float32'", "compute_dtype='bfloat16'", ""),
        # settings its tree shows too (the optimizer state's), named all the same
        ({"optimizer": "sgd"}, "optimizer='adam'", "optimizer='sgd'", ""),
        ({"lr_schedule": "constant"}, "lr_schedule='cosine'", "lr_schedule='constant'", ""),
        ({"grad_clip": None}, "grad_clip=1.0", "grad_clip=None", ""),
    ],
)
def test_run_group_refuses_to_resume_a_state_under_other_settings(toy, changes, saved, given, why):
    """None of them was in the state: it resumed under the new ones (a cosine's rate jumped
    where its steps changed)."""
    [made_for] = plan_groups([Cell(Tiny(), "toy", SCHEDULED, 0)])
    [group] = plan_groups([Cell(Tiny(), "toy", dataclasses.replace(SCHEDULED, **changes), 0)])
    state = jax.device_get(init_group(made_for, toy))  # a checkpoint's host numpy, too
    with pytest.raises(ValueError) as raised:
        run_group(group, state, toy, strategy="vmap")
    assert str(raised.value) == (
        f"run_group: the state was trained under hparams {saved} but the group has {given}"
        f"{why}; resume it under {saved}, or train the group from its start (init_group) as "
        "a new run."
    )


def test_a_constant_schedule_extends_its_steps_as_one_run_would_train_them(toy):
    """Its rate (a warmup's too) does not depend on steps: a run trained to 4 steps and
    resumed to 8 is the run of 8 steps, bit for bit, and records 8."""
    warm = HParams(batch_size=16, steps=4, warmup_steps=2)
    [short] = plan_groups([Cell(Tiny(), "toy", warm, 0)])
    [long] = plan_groups([Cell(Tiny(), "toy", dataclasses.replace(warm, steps=8), 0)])
    half, _ = run_group(short, init_group(short, toy), toy, strategy="vmap", chunk_steps=4)
    resumed, _ = run_group(long, jax.device_get(half), toy, strategy="vmap", chunk_steps=4)
    whole, _ = run_group(long, init_group(long, toy), toy, strategy="vmap", chunk_steps=4)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed), jax.device_get(whole))
    assert resumed.settings["steps"].tolist() == [8]


def test_a_state_past_the_groups_steps_is_refused_naming_both_not_an_until_step(toy):
    """Resumed under a constant schedule with fewer steps than it has trained, a state was
    refused naming until_step=2, which the call never gave."""
    hp = HParams(batch_size=16, steps=3)
    [long] = plan_groups([Cell(Tiny(), "toy", hp, 0)])
    [short] = plan_groups([Cell(Tiny(), "toy", dataclasses.replace(hp, steps=2), 0)])
    state, _ = run_group(long, init_group(long, toy), toy, strategy="vmap")
    with pytest.raises(ValueError) as raised:
        run_group(short, state, toy, strategy="vmap")
    assert str(raised.value) == (
        "run_group: the state is at step 3, past the group's hparams.steps=2, the step it "
        "trains to; to train it on, resume it in a group of steps > 3"
    )


def test_a_run_group_call_reads_the_shared_hparams_its_group_made_once(toy, monkeypatch):
    """`HParams.shared` checks the hparams anew (~0.1 ms): each call made them 7 times, a
    quarter of a one-step call's time under cProfile."""
    [group] = plan_groups(CELLS[:1])
    state, _ = run_group(group, init_group(group, toy), toy, 1, strategy="vmap")
    shared, made = HParams.shared, []
    monkeypatch.setattr(HParams, "shared", lambda hp: made.append(hp) or shared(hp))
    state, _ = run_group(group, state, toy, 2, strategy="vmap")
    assert state.step.tolist() == [2]
    assert made == []


def test_a_state_that_records_no_settings_resumes_as_the_uninterrupted_run(toy):
    """A state (a checkpoint) written before states recorded their settings resumes,
    unchecked, and comes back recording the group's."""
    [group] = plan_groups([Cell(Tiny(), "toy", SCHEDULED, 0)])
    whole, _ = run_group(group, init_group(group, toy), toy, strategy="vmap", chunk_steps=4)
    half, _ = run_group(group, init_group(group, toy), toy, 4, strategy="vmap", chunk_steps=4)
    old = jax.device_get(half).replace(settings={})
    resumed, _ = run_group(group, old, toy, strategy="vmap", chunk_steps=4)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed), jax.device_get(whole))


def test_a_state_of_other_paths_names_three_of_each_side_and_counts_the_rest():
    """It said "lacks ['x0'], ['x1'], ['x2'] (and 2 more) and has extra ['a']"."""
    like = {f"x{i}": np.zeros(1) for i in range(5)}
    assert _layout_difference({"a": np.zeros(1)}, like) == (
        "the state lacks ['x0'], ['x1'], ['x2'] and 2 more; it has extra ['a']"
    )


class _Counted(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(3)(x) * px.knob(self, "k", 2)  # an int32 knob


@pytest.mark.parametrize(
    ("value", "shown"), [(2.5, "2.5"), (-0.5, "-0.5"), (2**40, "1099511627776.0")]
)
def test_an_integer_knob_refuses_a_value_it_cannot_hold(toy, value, shown):
    ok = HParams(batch_size=16, steps=2, knobs={"k": 3.0})
    [group] = plan_groups([Cell(Builds(_Counted()), "toy", ok, 0)])
    assert init_group(group, toy).collections["knobs"]["k"].tolist() == [3]
    bad = dataclasses.replace(ok, knobs={"k": value})
    [group] = plan_groups(
        [Cell(Builds(_Counted()), "toy", ok, 0), Cell(Builds(_Counted()), "toy", bad, 1)]
    )
    with pytest.raises(
        ValueError,
        match=rf"cell 1 sets knob 'k' \(int32\) to {shown}.*, which it cannot hold; give",
    ):
        init_group(group, toy)


class _Tempered(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(3)(x) / px.knob(self, "T", 1.0, valid=px.Range(gt=0))


def test_a_knob_value_out_of_its_range_is_refused_naming_the_cell(toy):
    """It was set in the vmapped init, traced: the cell trained with NaN logits."""
    ok = HParams(batch_size=16, steps=2, knobs={"T": 2.0})
    bad = dataclasses.replace(ok, knobs={"T": -1.0})
    [group] = plan_groups(
        [Cell(Builds(_Tempered()), "toy", ok, 0), Cell(Builds(_Tempered()), "toy", bad, 1)]
    )
    with pytest.raises(
        ValueError,
        match=r"init_group: cell 1 \(HParams knobs 'T'\): knob 'T' must be a finite "
        r"number > 0, got -1.0\.",
    ):
        init_group(group, toy)


def test_a_knob_value_its_dtype_holds_out_of_range_is_refused(toy):
    """1e-50 > 0 passed, but float32 holds it as 0.0: the cell trained with NaN logits."""
    tiny = HParams(batch_size=16, steps=2, knobs={"T": 1e-50})
    [group] = plan_groups([Cell(Builds(_Tempered()), "toy", tiny, 0)])
    with pytest.raises(ValueError, match=r"1e-50 held as float32: knob 'T' .* got 0\.0\.$"):
        init_group(group, toy)


@pytest.mark.parametrize(
    "wrong, error, message",
    [
        ({"batch_size": 65}, ValueError, r"HParams.batch_size=65 is larger than the train split"),
        (
            {"regularizers": (Regularizer("**/kernal", "l2", 1e-3),)},
            SelectorError,
            r"^HParams regularizers\[0\] \(l2 on params\): Selector '\*\*/kernal' matched no param",
        ),
        (  # it did not say which regularizer of HParams held the selector
            {"regularizers": (Regularizer("**/kernel", "l1"), Regularizer("**/nope", "morph"))},
            SelectorError,
            r"^HParams regularizers\[1\] \(morph on params\): Selector '\*\*/nope' matched no "
            "channel group",
        ),
        ({"model": Builds(_Tempered()), "knobs": {"T": -1.0}}, ValueError, r"knob 'T' must be"),
    ],
)
def test_a_grid_refuses_a_later_groups_error_before_any_group_trains(toy, wrong, error, message):
    """It was raised once that group came to train, losing the earlier groups' results."""
    cells = [CELLS[0], CELLS[1], _other(**wrong)]
    chunks = []
    with pytest.raises(error, match=message) as raised:
        train_grid(
            cells, datasets={"toy": toy}, strategy="vmap", on_chunk=lambda *a: chunks.append(a)
        )
    assert chunks == []
    assert raised.value.__notes__[-1:] == [  # under a trace, after jax's own
        f"train_grid: raised for cells [2] (model {cells[2].model!r}, data set 'toy'), before "
        "any cell trained"
    ]


@pytest.mark.parametrize(
    "on_chunk, grid_message, group_message",
    [
        (
            5,
            r"must be a function, called as on_chunk\(group, chunk\); got 5",
            r"must be a function, called as on_chunk\(chunk\); got 5",
        ),
        (
            lambda chunk: None,  # run_group's, given to train_grid
            r"is called as on_chunk\(group, chunk\), but <lambda>\(chunk\) cannot take that",
            None,
        ),
        (
            lambda group, chunk: None,  # train_grid's, given to run_group
            None,
            r"is called as on_chunk\(chunk\), but <lambda>\(group, chunk\) cannot take that",
        ),
    ],
)
def test_an_on_chunk_that_cannot_be_called_so_is_refused_before_anything_trains(
    toy, monkeypatch, on_chunk, grid_message, group_message
):
    """It failed once the first chunk had trained (train_grid lost it, and its result)."""
    [group] = plan_groups(CELLS[:1])
    state = init_group(group, toy)
    monkeypatch.setattr(_strategy.Executor, "run_steps", lambda *a, **k: pytest.fail("trained"))
    for where, message, call in [
        (
            "train_grid",
            grid_message,
            lambda: train_grid(CELLS[:1], datasets={"toy": toy}, on_chunk=on_chunk),
        ),
        ("run_group", group_message, lambda: run_group(group, state, toy, on_chunk=on_chunk)),
    ]:
        if message is not None:
            with pytest.raises(TypeError, match=rf"^{where}: on_chunk {message}"):
                call()


@pytest.mark.parametrize(
    "should_stop, message",
    [
        (True, r"must be a function, called as should_stop\(\); got True"),
        (lambda run: True, r"is called as should_stop\(\), but <lambda>\(run\) cannot take that"),
    ],
)
def test_a_should_stop_that_cannot_be_called_so_is_refused_before_anything_trains(
    toy, monkeypatch, should_stop, message
):
    """One taking an argument failed once the first chunk had trained, losing it."""
    [group] = plan_groups(CELLS[:1])
    state = init_group(group, toy)
    monkeypatch.setattr(_strategy.Executor, "run_steps", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(TypeError, match=rf"^run_group: should_stop {message}"):
        run_group(group, state, toy, should_stop=should_stop)


def test_a_knob_selector_matching_no_knob_names_the_cell_and_the_model(toy):
    hp = HParams(batch_size=16, steps=2, knobs={"**/TT": 2.0})
    [group] = plan_groups([Cell(Tiny(rich=True), "toy", hp, 0)])
    with pytest.raises(
        SelectorError,
        match=r"^init_group: cell 0 \(HParams knobs '\*\*/TT'\) of model "
        r"Tiny\(width=8, rich=True\): Selector '\*\*/TT' matched no knob among 1; "
        r"nearest: 'T'\.",
    ):
        init_group(group, toy)


class _ScannedKnob(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        return x * px.knob(self, "T", 1.0), None


class _DroppingKnob(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        layers = nn.scan(_ScannedKnob, variable_axes={}, length=2)  # no knobs: dropped
        return nn.Dense(3)(layers(name="layers")(x, None)[0])


@pytest.mark.parametrize(
    ("model", "said"),
    [  # it said '(params alone?)', then 'there are none' for a knob dropped, and how an
        # nn.scan drops one for a model without any
        (
            Builds(_DroppingKnob()),
            r"none\. It matches 'layers/T', which a lifted transform dropped",
        ),
        (Tiny(), r"matched no knob: there are none\.$"),
    ],
)
def test_a_knob_selector_says_a_scan_dropped_its_knob_only_where_one_did(toy, model, said):
    hp = HParams(batch_size=16, steps=2, knobs={"**/T": 2.0})
    [group] = plan_groups([Cell(model, "toy", hp, 0)])
    with pytest.raises(SelectorError, match=said):
        init_group(group, toy)


def test_run_group_refuses_a_state_with_other_knob_values(toy):
    hp = dataclasses.replace(DIVERGING, knobs={"**/T": 2.0})
    [made_for] = plan_groups([Cell(Tiny(rich=True), "toy", hp, 0)])
    [group] = plan_groups(
        [Cell(Tiny(rich=True), "toy", dataclasses.replace(hp, knobs={"**/T": 3.0}), 0)]
    )
    with pytest.raises(ValueError, match=r"knob 'T' of cell 0 is 2.0 in the state but 3.0"):
        run_group(group, init_group(made_for, toy), toy, strategy="vmap")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            Tiny(),
            r"model Tiny\(width=8, rich=False\) returns 3 logits per example but data set "
            r"'six' has num_classes=6",
        ),
        (
            ModelConfig("mlp", 4, (8,)),
            r"model 'mlp' returns 4 logits per example but data set "
            r"'six' has num_classes=6; build the model for 6 classes",
        ),
    ],
)
def test_a_model_whose_logits_are_not_the_data_sets_classes_is_refused(toy, model, message):
    six = dataclasses.replace(toy, name="six", num_classes=6)
    [group] = plan_groups([Cell(model, "six", ADAM, 0)])
    with pytest.raises(ValueError, match=message):
        init_group(group, six)
    [fits] = plan_groups([Cell(Tiny(), "six", ADAM, 0)])
    with pytest.raises(ValueError, match=r"returns 3 logits per example.*num_classes=6"):
        run_group(fits, init_group(plan_groups(CELLS[:1])[0], toy), six)  # the state's data


class _Unpooled(nn.Module):
    """Logits per position of a sequence, ``(batch, 2, 3)``: no pooling before the head."""

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3)(jnp.stack([x, x], axis=1))


def test_a_model_with_logits_per_position_is_told_to_pool_not_to_change_its_classes(toy):
    """It said the model had logits of shape (2, 3) "but 'toy' has num_classes=3"."""
    [group] = plan_groups([Cell(Builds(_Unpooled()), "toy", ADAM, 0)])
    with pytest.raises(ValueError, match=r"shape \(2, 3\) per example, where one vector of "):
        init_group(group, toy)


class _WithExtras(nn.Module):
    """Returns ``(logits, extras)``."""

    @nn.compact
    def __call__(self, x, train=False):
        logits = nn.Dense(3)(x)
        return logits, {"hidden": x}


def test_a_model_returning_a_tuple_is_told_to_return_its_logits_alone(toy):
    """It was told to build a graph model with returns='head'."""
    [group] = plan_groups([Cell(Builds(_WithExtras()), "toy", ADAM, 0)])
    with pytest.raises(ValueError, match=r"returns a tuple, not an array of logits; return the "):
        init_group(group, toy)


class _Predictions(nn.Module):
    """Returns its predicted classes, one-hot as integers: no gradient reaches its params."""

    @nn.compact
    def __call__(self, x, train=False):
        return jax.nn.one_hot(jnp.argmax(nn.Dense(3)(x), -1), 3, dtype=jnp.int32)


class _Complex(nn.Module):
    """Returns complex logits, which the softmax cross-entropy does not take."""

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3)(x) * (1 + 1j)


@pytest.mark.parametrize(
    "module, said",
    [
        (
            _Predictions(),
            "returns int32 outputs, not float logits: the loss has no gradient through them, "
            "so no cell would learn; return the float logits (before an argmax, a rounding or "
            "a cast)",
        ),
        (
            _Complex(),
            "returns complex outputs (complex64), not float logits: the softmax cross-entropy "
            "takes real logits; return a real float array (e.g. the magnitudes, jnp.abs, or "
            "the real parts)",
        ),
    ],
    ids=["integers", "complex"],
)
def test_a_model_returning_no_real_float_logits_is_told_to_return_them(toy, module, said):
    """Integer outputs trained: every cell's loss stayed log(3), its params unchanged."""
    [group] = plan_groups([Cell(Builds(module), "toy", ADAM, 0)])
    with pytest.raises(ValueError) as error:
        init_group(group, toy)
    assert str(error.value) == f"model Builds(module={module!r}) {said}"


def test_a_model_built_for_other_examples_than_the_data_sets_is_refused(toy):
    [group] = plan_groups([Cell(ModelConfig("mlp", 3, (9,)), "toy", ADAM, 0)])
    with pytest.raises(
        ValueError,
        match=r"model 'mlp' is built for examples of shape \(9,\) \(its config's input_shape\) "
        r"but data set 'toy' has examples of shape \(8,\); build the model with "
        r"input_shape=\(8,\)",
    ):
        init_group(group, toy)


class _BatchMean(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(3)(x.mean(0, keepdims=True))  # one row of logits for the whole batch


def test_a_model_whose_logits_do_not_follow_the_examples_is_refused(toy):
    [group] = plan_groups([Cell(Builds(_BatchMean()), "toy", ADAM, 0)])
    with pytest.raises(ValueError, match=r"shape \(1, 3\) for a batch of 2 examples; .*= \(2, 3\)"):
        init_group(group, toy)


class _NoTrain(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(3)(x)


class _Training(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, training: bool = False) -> jax.Array:
        return nn.Dense(3)(x)


class _Deterministic(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        return nn.Dropout(0.5, deterministic=deterministic)(nn.Dense(3)(x))


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (
            _NoTrain(),
            r"^model 'Builds\(module=_NoTrain\(.*\)\)': its build returned _NoTrain, "
            r"whose __call__ takes no train argument; a model is called as "
            r"model\(x, train=...\): add `train: bool = False` to it$",
        ),
        (lambda x, train=False: x, r"its build returned <function .*>, not a Flax module"),
        # a block's train flag: it said the model took no train argument, naming neither
        (_Training(), r"takes 'training', not 'train'; .*: rename 'training' to 'train'$"),
        (
            _Deterministic(),
            r"takes 'deterministic', not 'train'; .*: take `train: bool = False` in its place "
            r"\(deterministic is `not train`\)$",
        ),
    ],
)
def test_a_model_that_cannot_be_called_with_train_is_refused_by_name(toy, module, message):
    [group] = plan_groups([Cell(Builds(module), "toy", ADAM, 0)])
    with pytest.raises(TypeError, match=message):
        init_group(group, toy)


@pytest.mark.parametrize("seeds", [[0, 7, 2**31 - 1], [-1, 2**31, 2**32 + 5, 2**63 - 2]])
def test_any_seed_jax_random_key_takes_gives_the_keys_of_the_cell_alone(toy, seeds):
    [group] = plan_groups([Cell(Tiny(), "toy", ADAM, seed) for seed in seeds])
    state = init_group(group, toy)
    for i, seed in enumerate(seeds):
        _, data_key, dropout_key = jax.random.split(jax.random.key(seed), 3)
        np.testing.assert_array_equal(state.data_key[i], jax.random.key_data(data_key))
        np.testing.assert_array_equal(state.dropout_key[i], jax.random.key_data(dropout_key))


def _flipped_threefry() -> Any:
    return jax.threefry_partitionable(not jax.config.values["jax_threefry_partitionable"])


@pytest.mark.parametrize(
    "model, seed, setting",
    [
        (Tiny(), 2**32 + 5, lambda: jax.enable_x64(True)),
        (Tiny(rich=True), 0, lambda: jax.enable_x64(True)),
        (Tiny(), 7, _flipped_threefry),
    ],
    ids=["x64-big-seed", "x64-weak-knob", "threefry"],
)
def test_a_state_made_under_another_jax_setting_is_checked_as_such(toy, model, seed, setting):
    # x64 shapes a big seed's keys and a weakly typed knob's dtype, jax_threefry_partitionable
    # the keys jax.random.split derives: the checks' caches kept what they found under the
    # other setting and refused the state (another seed; float64 knob T)
    [group] = plan_groups([Cell(model, "toy", ADAM, seed)])
    run_group(group, init_group(group, toy), toy, 0)  # checked: nothing runs
    with setting():
        state = init_group(group, toy)
        resumed, run = run_group(group, state, toy, 0)
    assert resumed is state and run.chunks == []


@pytest.mark.parametrize(
    "seed, setting, made, now",
    [
        (3, _flipped_threefry, "jax_threefry_partitionable={}", "jax_threefry_partitionable={}"),
        (-1, lambda: jax.enable_x64(True), "jax_enable_x64=True", "jax_enable_x64=False"),
    ],
    ids=["threefry", "x64-negative-seed"],
)
def test_a_state_whose_seeds_made_its_keys_under_another_setting_is_told_to_resume_under_it(
    toy, seed, setting, made, now
):
    # it was refused as holding "the keys of another seed than its 3": the seed was the
    # same, the keys were those JAX derives from it under the setting it was saved with
    partitionable = jax.config.values["jax_threefry_partitionable"]
    made, now = made.format(not partitionable), now.format(partitionable)
    [group] = plan_groups([Cell(Tiny(), "toy", ADAM, seed)])
    with setting():
        saved = jax.device_get(init_group(group, toy))
    name, value = made.split("=")
    with pytest.raises(ValueError) as raised:
        run_group(group, saved, toy, 0)
    assert str(raised.value) == (
        f"run_group: cell 0 of the state holds the keys its seed {seed} makes under {made}, "
        f"not under this session's {now}: resume it under the setting it was made with "
        f"(jax.config.update({name!r}, {value})), or train the group from init_group as a "
        "new run"
    )
    with setting():  # under the setting named, it resumes
        _, run = run_group(group, saved, toy, 0)
    assert run.chunks == []


def test_a_big_seed_against_a_state_of_its_low_32_bits_says_the_seeds_may_differ(toy):
    # with x64 on, seed 2**32 + 5 against a state made from seed 5 was told only to resume
    # under jax_enable_x64=False (where 2**32 + 5 makes seed 5's keys)
    with jax.enable_x64(True):
        [five] = plan_groups([Cell(Tiny(), "toy", ADAM, 5)])
        [big] = plan_groups([Cell(Tiny(), "toy", ADAM, 2**32 + 5)])
        saved = jax.device_get(init_group(five, toy))
        with pytest.raises(ValueError) as raised:
            run_group(big, saved, toy, 0)
    assert str(raised.value) == (
        "run_group: cell 0 of the state holds the keys its seed 4294967301 makes under "
        "jax_enable_x64=False, not under this session's jax_enable_x64=True; they are also "
        "the keys seed 5 (its low 32 bits) makes under this session's: if the state was made "
        "from seed 5, the seeds differ: train the group from init_group as a new run; else "
        "resume it under the setting it was made with (jax.config.update('jax_enable_x64', "
        "False))"
    )


def test_a_state_made_under_rbg_resumed_under_unsafe_rbg_is_told_to_resume_under_rbg(toy):
    # its keys (of one shape under both) were refused as "the keys of another seed than its 3"
    [group] = plan_groups([Cell(Tiny(), "toy", ADAM, 3)])
    with jax.default_prng_impl("rbg"):
        saved = jax.device_get(init_group(group, toy))
    with jax.default_prng_impl("unsafe_rbg"), pytest.raises(ValueError) as raised:
        run_group(group, saved, toy, 0)
    assert str(raised.value) == (
        "run_group: cell 0 of the state holds the keys its seed 3 makes under "
        "jax_default_prng_impl='rbg', not under this session's "
        "jax_default_prng_impl='unsafe_rbg': resume it under the setting it was made with "
        "(jax.config.update('jax_default_prng_impl', 'rbg')), or train the group from "
        "init_group as a new run"
    )


def test_a_run_after_the_threefry_setting_changed_trains_as_one_made_under_it(toy, monkeypatch):
    # the compiled programs were kept by argument signature alone: the run after toggling
    # jax_threefry_partitionable drew its batches and dropout as traced under the old one
    from phosjax.train import _strategy

    [group] = plan_groups([Cell(Tiny(rich=True), "toy", ADAM, 3)])
    before, _ = run_group(group, init_group(group, toy), toy, 1, strategy="vmap")  # compiled
    with _flipped_threefry():
        after, _ = run_group(group, init_group(group, toy), toy, 1, strategy="vmap")
        monkeypatch.setattr(_strategy, "_LIFTED", collections.OrderedDict())  # compiled anew
        fresh, _ = run_group(group, init_group(group, toy), toy, 1, strategy="vmap")
    assert_trees_close(after.params, fresh.params, rtol=0, atol=0)
    # the setting changes what the step draws: else the old program would pass as well
    differ = jax.tree.leaves(
        jax.tree.map(lambda a, b: bool((a != b).any()), before.params, fresh.params)
    )
    assert any(differ)


def test_the_state_checks_keep_the_keys_and_layouts_of_the_last_groups_alone(toy, monkeypatch):
    # a session sweeping models and seeds kept a tree of shapes and keys for every group
    from phosjax.train import _state

    monkeypatch.setattr(_state, "INIT_PROGRAMS_KEPT", 2)
    monkeypatch.setattr(_state, "_LAYOUTS", collections.OrderedDict())
    monkeypatch.setattr(_state, "_SEED_DATA_KEYS", collections.OrderedDict())
    made = []
    for name, what in (("_init_fn", "layout"), ("_data_keys", "keys")):
        fn = getattr(_state, name)
        monkeypatch.setattr(_state, name, lambda *a, fn=fn, what=what: made.append(what) or fn(*a))
    groups = [plan_groups([Cell(Tiny(width), "toy", ADAM, 40 + width)])[0] for width in (2, 3, 4)]
    states = [init_group(group, toy) for group in groups]
    made.clear()
    for group, state in zip(groups, states, strict=True):
        run_group(group, state, toy, 0)  # checked: nothing runs
    assert (made, len(_state._LAYOUTS), len(_state._SEED_DATA_KEYS)) == (
        ["layout", "keys"] * 3,
        2,
        2,
    )
    made.clear()
    run_group(groups[2], states[2], toy, 0)  # kept: not made again
    run_group(groups[0], states[0], toy, 0)  # let go: checked again
    assert (made, len(_state._LAYOUTS), len(_state._SEED_DATA_KEYS)) == (["layout", "keys"], 2, 2)


def test_a_seed_jax_random_key_refuses_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Cell seed must lie in .*, got 18446744073709551616"):
        Cell(Tiny(), "toy", ADAM, 2**64)  # refused when made, not at init_group


@pytest.mark.parametrize("on, what", [("params", "param"), ("activations", "tagged value")])
def test_a_regularizer_matching_nothing_names_what_it_looked_among(toy, on, what):
    hp = dataclasses.replace(ADAM, regularizers=(Regularizer("**/nope", "l2", 1e-3, on=on),))
    [group] = plan_groups([Cell(Tiny(), "toy", hp, 0)])
    with pytest.raises(SelectorError, match=rf"'\*\*/nope' matched no {what}"):
        run_group(group, init_group(group, toy), toy)


class _Member(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        logits = nn.Dense(3)(x)
        px.aux_loss(self, "l1", jnp.abs(logits).mean())
        return logits


class _WeightedMember(nn.Module):
    """A branch weighted by a learned gate, no aux loss."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        gate = jax.nn.sigmoid(self.param("gate", nn.initializers.zeros, ()))
        with px.path_weight(self, "branch", gate):
            return gate * nn.Dense(3)(x)


class _Ensemble(nn.Module):
    axes: tuple[tuple[str, int], ...]
    weighted: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        members = nn.vmap(
            _WeightedMember if self.weighted else _Member,
            variable_axes=dict(self.axes),
            split_rngs={"params": True},
            in_axes=None,
            axis_size=2,
        )
        return members(name="members")(x).mean(0)


@dataclasses.dataclass(frozen=True)
class _EnsembleConfig:
    axes: tuple[tuple[str, int], ...]
    weighted: bool = False

    def build(self) -> nn.Module:
        return _Ensemble(self.axes, self.weighted)


class _TaggedMember(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return px.tag(self, "h", nn.Dense(3)(x))


class _TaggedEnsemble(nn.Module):
    """Two `_TaggedMember` under nn.vmap, whose variable_axes are ``axes``, and their
    mean tagged ``h`` too."""

    axes: tuple[tuple[str, int], ...]

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        members = nn.vmap(_TaggedMember, variable_axes=dict(self.axes),
                          split_rngs={"params": True}, in_axes=None, axis_size=2)  # fmt: skip
        return px.tag(self, "h", members(name="members")(x).mean(0))


def test_a_regularizer_on_a_tagged_value_a_lifted_transform_drops_is_refused(toy):
    """'**/h' penalized the ensemble's mean alone, the members' values dropped, silently."""
    on_h = Regularizer("**/h", "l2", 1.0, on="activations")
    hp = HParams(batch_size=16, steps=1, regularizers=(on_h,))
    [group] = plan_groups([Cell(Builds(_TaggedEnsemble((("params", 0),))), "toy", hp, 0)])
    with pytest.raises(
        ValueError,
        match=r"^tagged value 'members/h' was tagged but not recorded: .* variable_axes omit "
        r"'intermediates' .* HParams regularizers\[0\] \('\*\*/h'\) would not penalize it",
    ):
        run_group(group, init_group(group, toy), toy)


def test_an_aux_loss_a_lifted_transform_drops_is_refused_naming_it_and_the_fix(toy):
    hp = HParams(batch_size=16, steps=2)
    dropped = _EnsembleConfig((("params", 0),))
    kept = _EnsembleConfig(tuple(px.scan_axes(params=0).items()))
    [group] = plan_groups([Cell(dropped, "toy", hp, 0)])
    with pytest.raises(
        ValueError,
        match=r"aux loss 'members/l1' was raised but not recorded.*"
        r"variable_axes omit 'aux_loss'.*px.scan_axes\(params=0\)",
    ):
        run_group(group, init_group(group, toy), toy, strategy="vmap")
    [group] = plan_groups([Cell(kept, "toy", hp, 0)])
    _, run = run_group(group, init_group(group, toy), toy, strategy="vmap")
    [chunk] = run.chunks  # both members' losses, in the loss
    assert (chunk.train["aux/l1"] > 0).all()
    np.testing.assert_allclose(
        chunk.train["loss"], chunk.train["task_loss"] + chunk.train["aux/l1"], rtol=1e-6
    )


def test_a_path_weight_a_lifted_transform_drops_is_refused_naming_it_and_the_fix(toy):
    """Its path_weight/<path> metric was silently missing."""
    hp = HParams(batch_size=16, steps=2)
    dropped = _EnsembleConfig((("params", 0),), weighted=True)
    kept = _EnsembleConfig(tuple(px.scan_axes(params=0).items()), weighted=True)
    [group] = plan_groups([Cell(dropped, "toy", hp, 0)])
    with pytest.raises(
        ValueError,
        match=r"path weight 'members/branch' was opened but not recorded.*"
        r"variable_axes omit 'path_weights'.*px.scan_axes\(params=0\)",
    ):
        run_group(group, init_group(group, toy), toy, strategy="vmap")
    [group] = plan_groups([Cell(kept, "toy", hp, 0)])
    _, run = run_group(group, init_group(group, toy), toy, strategy="vmap")
    [chunk] = run.chunks  # the mean over both members' gates (0.5 at init)
    np.testing.assert_allclose(chunk.train["path_weight/members/branch"][:, 0], 0.5)


class _Teacher(nn.Module):
    """Raises an aux loss in a weighted branch."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        with px.path_weight(self, "branch", 0.5):
            return _Member(name="member")(x)


class _Distilled(nn.Module):
    """Applies a frozen teacher in its own call, its records not the call's."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        teacher = _Teacher()
        soft = teacher.apply(teacher.init(jax.random.key(0), x), x)
        return nn.Dense(3)(x) + jax.lax.stop_gradient(soft)


def test_a_teacher_applied_inside_a_model_is_no_lifted_transform_dropping_its_records(toy):
    """Its aux loss and path weight were refused as dropped by a lifted transform."""
    [group] = plan_groups([Cell(Builds(_Distilled()), "toy", HParams(batch_size=16, steps=2), 0)])
    _, run = run_group(group, init_group(group, toy), toy, strategy="vmap")
    [chunk] = run.chunks  # the teacher's loss and weight are its apply's, not the model's
    assert not [m for m in chunk.train if m.startswith(("aux/", "path_weight/"))]
    np.testing.assert_array_equal(chunk.train["loss"], chunk.train["task_loss"])


DIVERGING = HParams(optimizer="sgd", batch_size=16, steps=9)  # its own compiled programs


@pytest.mark.parametrize("strategy", ["vmap", "map"])
def test_a_callers_state_with_a_diverged_cell_stays_usable(toy, strategy):
    cells = [
        Cell(Tiny(), "toy", dataclasses.replace(DIVERGING, learning_rate=lr), seed)
        for seed, lr in enumerate([1e-2, 1e30])
    ]
    [group] = plan_groups(cells)
    # All chunks of 3 steps: this first one's programs serve the run from the state too.
    state, _ = run_group(group, init_group(group, toy), toy, 3, strategy=strategy, chunk_steps=3)
    assert state.diverged.tolist() == [False, True]
    before = jax.device_get(state)
    run_group(group, state, toy, strategy=strategy, chunk_steps=3)  # steps 4-6 and 7-9
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state), before)
    # Its first guarded chunk donated a copy of the caller's state: one program for all.
    donated = {
        donate
        for key, used, _, donate in _strategy._LIFTED  # key: ((name, signature), steps, ...)
        if key[:2] == (("train-guarded", group.program_signature), 3) and used == strategy
    }
    assert donated == {True}


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_split_is_refused_by_name(split):
    data = toy_data("toy", **{split: 0})
    with pytest.raises(
        ValueError,
        match=rf"data set 'toy' has an empty {split} split \(x_{split} shape \(0, 8\)\).*"
        rf"at least one {split} example",
    ):
        device_arrays(data)
    with pytest.raises(ValueError, match=rf"empty {split} split"):  # before any step
        train_grid(CELLS[:1], datasets={"toy": data}, strategy="auto")
    chunks = []  # a later group's: before the first group trains, as its other errors
    cells = [CELLS[0], dataclasses.replace(CELLS[0], dataset="empty")]
    with pytest.raises(ValueError, match=rf"empty {split} split") as raised:
        datasets = {"toy": toy_data(), "empty": data}
        train_grid(cells, datasets=datasets, on_chunk=lambda *a: chunks.append(a))
    assert chunks == [] and "raised for cells [1]" in raised.value.__notes__[-1]


def within_ulps(a, b, ulps):
    """``|a - b| <= ulps`` float32 ulps of ``b``'s largest magnitude, entry by entry."""
    np.testing.assert_allclose(a, b, rtol=0, atol=ulps * np.finfo(np.float32).eps * np.abs(b).max())


def test_with_a_diverging_cell_resuming_equals_the_uninterrupted_run_within_rounding(toy):
    """Not bit for bit: the guarded program rounds the healthy cells differently, and a
    resumed run guards other chunks (docs/engine.md, Divergence): measured at most one
    ulp of each leaf's largest value; two allowed."""
    cells = [
        Cell(Tiny(rich=True), "toy", dataclasses.replace(DIVERGING, learning_rate=lr), seed)
        for seed, lr in enumerate([1e-2, 1e3, 3e-3])
    ]
    [group] = plan_groups(cells)
    whole, _ = run_group(group, init_group(group, toy), toy, strategy="vmap", chunk_steps=3)
    half, _ = run_group(group, init_group(group, toy), toy, 1, strategy="vmap", chunk_steps=3)
    resumed, _ = run_group(group, jax.device_get(half), toy, strategy="vmap", chunk_steps=3)
    whole, resumed = jax.device_get((whole, resumed))
    assert whole.diverged.tolist() == resumed.diverged.tolist() == [False, True, False]
    np.testing.assert_array_equal(resumed.diverged_at, whole.diverged_at)
    healthy = lambda state: jax.tree.map(lambda a: a[[0, 2]], (state.params, state.collections))
    jax.tree.map(lambda a, b: within_ulps(a, b, 2), *map(healthy, (resumed, whole)))


def test_a_state_already_at_until_step_comes_back_without_measuring(toy, monkeypatch):
    import phosjax.train._run as run_module

    monkeypatch.setattr(run_module, "choose_strategy", lambda *a, **k: pytest.fail("measured"))
    [group] = plan_groups(CELLS)
    state = init_group(group, toy).replace(step=np.full(len(CELLS), 4, np.int32))
    again, run = run_group(group, state, toy, 4, strategy="auto")
    assert again is state and run == GroupRun("auto", {}, [])


def test_a_state_whose_cells_are_at_different_steps_is_refused(toy):
    [group] = plan_groups(CELLS)
    state = init_group(group, toy).replace(step=np.asarray([4, 3, 4, 4], np.int32))
    with pytest.raises(ValueError, match=r"cells are at different steps \[4, 3"):
        run_group(group, state, toy, strategy="vmap")


def test_a_misspelt_data_set_names_those_given_before_any_group_trains(toy):
    cells = [_other(), dataclasses.replace(_other(), dataset="tyo")]
    chunks = []
    with pytest.raises(
        ValueError, match=r"^data set 'tyo' is not one of those datasets= gives \('toy', 'b'\)"
    ):
        train_grid(cells, datasets={"b": toy, "toy": toy}, on_chunk=lambda *a: chunks.append(a))
    assert chunks == []


@pytest.mark.parametrize(
    ("chunk_steps", "message"),
    [(0, "must be >= 1, got 0"), (2.5, r"must be an int, got 2\.5 \(float\)")],
)
def test_train_grid_refuses_a_chunk_steps_by_its_name_before_any_data_set_loads(
    chunk_steps, message
):
    # it was refused by run_group, named so, once the data sets had loaded and a group
    # had been initialized: here a data set that does not load would have failed first
    with pytest.raises(ValueError, match=rf"^train_grid: chunk_steps {message}"):
        train_grid([Cell(Tiny(), "no_such_set", ADAM, 0)], chunk_steps=chunk_steps)


def test_a_batch_size_above_the_train_split_names_the_data_set_and_hparams(toy):
    cell = _other(batch_size=100)  # toy's train split holds 64 examples
    with pytest.raises(
        ValueError,
        match=r"^HParams\.batch_size=100 is larger than the train split of data set 'toy', "
        r"which has 64 examples; set HParams\.batch_size to at most 64\ntrain_grid: raised for "
        r"cells \[0\] \(model Tiny\(width=8, rich=False\), data set 'toy'\), before any cell "
        r"trained$",
    ):
        train_grid([cell], datasets={"toy": toy}, strategy="auto")


def test_a_grid_run_again_traces_no_train_step_its_check_traced_before(toy, monkeypatch):
    """train_grid's check before any group trains traced each group's train step on every
    call: 20 tiny groups run again took 2.1 s, 1.9 s of it that check (0.2 s without it).
    A step checked without error (per signature and train split) is not traced again; one
    that raised is checked, and raises, again."""
    monkeypatch.setattr(_grid, "_STEPS_CHECKED", collections.OrderedDict(), raising=False)
    traced = []

    def tracing(*args: Any, **kwargs: Any) -> Any:
        traced.append(args[1])
        return make_train_step(*args, **kwargs)

    monkeypatch.setattr(_grid, "make_train_step", tracing)
    [good] = plan_groups([Cell(Tiny(), "toy", ADAM, 0)])
    bad_hp = dataclasses.replace(ADAM, regularizers=(Regularizer("**/no_such_param"),))
    [bad] = plan_groups([Cell(Tiny(), "toy", bad_hp, 0)])
    for _ in range(2):
        _grid._check_group(good, toy)
        with pytest.raises(SelectorError, match="no_such_param"):
            _grid._check_group(bad, toy)
    assert traced == [good.hparams, bad.hparams, bad.hparams]


def test_the_check_traces_one_train_step_for_groups_differing_only_in_steps(toy, monkeypatch):
    """A grid over ``steps`` traced each group's train step in train_grid's check, though
    the groups share one program (`Group.program_signature`)."""
    monkeypatch.setattr(_grid, "_STEPS_CHECKED", collections.OrderedDict())
    traced = []

    def tracing(*args: Any, **kwargs: Any) -> Any:
        traced.append(args[1].steps)
        return make_train_step(*args, **kwargs)

    monkeypatch.setattr(_grid, "make_train_step", tracing)
    for steps in (5, 10, 20):
        [group] = plan_groups([Cell(Tiny(), "toy", dataclasses.replace(ADAM, steps=steps), 0)])
        _grid._check_group(group, toy)
    assert traced == [5]


class _NoisyInTraining(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if train:  # noise of the default float dtype: float64 under x64, x float32
            x = jax.lax.add(x, jax.random.normal(self.make_rng("dropout"), x.shape))
        return nn.Dense(3)(x)


def test_a_step_checked_without_x64_is_checked_again_under_it(toy, monkeypatch):
    # the check's cache was keyed without the x64 setting: a step that raises only under
    # x64 (float64 noise added to float32 inputs) passed the check once checked without
    monkeypatch.setattr(_grid, "_STEPS_CHECKED", collections.OrderedDict())
    [group] = plan_groups([Cell(Builds(_NoisyInTraining()), "toy", ADAM, 0)])
    _grid._check_group(group, toy)
    with jax.enable_x64(True), pytest.raises(TypeError, match=r"lax\.add requires .* same dtypes"):
        _grid._check_group(group, toy)


def test_run_group_accepts_a_state_made_under_another_prng_implementation(toy):
    [group] = plan_groups(CELLS[:1])
    run_group(group, init_group(group, toy), toy, 1, strategy="sequential")  # threefry keys
    with jax.default_prng_impl("rbg"):  # keys of 4 words, not 2
        state, _ = run_group(group, init_group(group, toy), toy, 1, strategy="sequential")
    assert state.data_key.shape == (1, 4)


@pytest.mark.parametrize("impl", ["rbg", "unsafe_rbg"])
def test_under_rbg_keys_a_cell_draws_its_init_and_keys_as_it_would_alone(toy, impl):
    # jax.vmap over rbg keys draws each key's numbers from the other keys of the batch too:
    # init_group, vmapped, gave the cell of seed 3 other params beside seed 0 than alone
    # (by ~1.0), and under unsafe_rbg other data and dropout keys
    def cell_three(cells: list[Cell]) -> Any:
        [group] = plan_groups(cells)
        state = jax.device_get(init_group(group, toy))
        return jax.tree.map(lambda a: a[-1], (state.params, state.data_key, state.dropout_key))

    with jax.default_prng_impl(impl):
        alone = cell_three([Cell(Tiny(), "toy", ADAM, 3)])
        beside = cell_three([Cell(Tiny(), "toy", ADAM, s) for s in (0, 3)])
        keys = jax.random.key_data(jax.random.split(jax.random.key(3), 3)[1:])
    assert_trees_close(alone, beside, rtol=0, atol=0)
    np.testing.assert_array_equal(alone[1:], keys)  # data, dropout: those of its seed


def test_a_group_under_unsafe_rbg_after_one_under_rbg_gets_unsafe_rbgs_keys(toy):
    # init's program and the keys run_group checks against were kept by model and shape,
    # not by PRNG implementation: after rbg (keys of the same shape), unsafe_rbg ran rbg's
    [group] = plan_groups([Cell(Tiny(), "toy", ADAM, 3)])
    for impl in ("rbg", "unsafe_rbg"):
        with jax.default_prng_impl(impl):
            state = init_group(group, toy)
            _, run = run_group(group, state, toy, 0)  # its keys checked: nothing runs
            keys = jax.random.key_data(jax.random.split(jax.random.key(3), 3)[1:])
        np.testing.assert_array_equal(np.stack([state.data_key[0], state.dropout_key[0]]), keys)
        assert run.chunks == []


def test_a_vmapped_strategy_is_refused_under_rbg_keys_naming_the_others(toy):
    # its dropout drew a cell's mask from its neighbours' keys too, silently
    [group] = plan_groups(CELLS[:2])
    with jax.default_prng_impl("rbg"):
        state = init_group(group, toy)
        with pytest.raises(ValueError) as raised:
            run_group(group, state, toy, strategy="vmap_matmul")
    assert str(raised.value) == (
        "run_group: strategy 'vmap_matmul' batches the cells with jax.vmap, under which "
        "jax_default_prng_impl='rbg' draws a cell's random numbers (its dropout) from the "
        "other cells' keys too; use 'map', 'sequential' or 'stepwise' ('auto' leaves the "
        "vmapped ones out), or the threefry2x32 implementation"
    )


def test_vmap_trains_a_cell_as_alone_under_threefry4x32(toy):
    # vmap was refused under every implementation but threefry2x32, as drawing "a cell's
    # random numbers from the other cells' keys too": threefry4x32's draws each key's alone
    def trained(seeds: tuple[int, ...]) -> Any:
        [group] = plan_groups([Cell(Tiny(rich=True), "toy", ADAM, s) for s in seeds])
        state, _ = run_group(group, init_group(group, toy), toy, 2, strategy="vmap")
        return jax.tree.map(lambda a: a[-1], state.params)

    with jax.default_prng_impl("threefry4x32"):
        assert_trees_close(trained((3,)), trained((0, 3)))


def test_vmap_under_philox_is_refused_as_xla_fails_to_compile_it(toy):
    # it was refused as drawing from the other cells' keys, which philox's does not
    with jax.default_prng_impl("philox2x32"), pytest.raises(ValueError) as raised:
        train_grid(CELLS[:2], datasets={"toy": toy}, strategy="vmap")
    assert str(raised.value) == (
        "train_grid: strategy 'vmap' batches the cells with jax.vmap, under which "
        "jax_default_prng_impl='philox2x32' XLA fails to compile a cell's random draws (its "
        "dropout) batched; use 'map', 'sequential' or 'stepwise' ('auto' leaves the vmapped "
        "ones out), or the threefry2x32 implementation"
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda g, d: init_group([g], d), r"init_group: group must be one Group, got a list; "),
        (lambda g, d: run_group([g], init_group(g, d), d), r"run_group: group must be one Group"),
        (lambda g, d: init_group(g, (d.x_train, d.y_train)), r"got a tuple, which has no name, "),
        (lambda g, d: run_group(g, init_group(g, d), {}), r"ArrayDataset .*got a dict, which "),
        (  # it raised AttributeError: 'dict' object has no attribute 'x_train'
            lambda g, d: device_arrays(device_arrays(d)),
            r"^device_arrays: data must be a data set, a phosjax.data.ArrayDataset \(e.g. "
            r"phosjax.data.load\('mnist1d'\)\), got a dict, which has no name, x_train, y_train, ",
        ),
    ],
)
def test_a_group_or_data_set_of_another_type_is_named(toy, call, message):
    [group] = plan_groups(CELLS[:1])
    with pytest.raises(TypeError, match=message):
        call(group, toy)


@pytest.mark.parametrize("devices", [jax.devices()[0], "cpu", [0]], ids=["device", "str", "int"])
def test_devices_other_than_a_sequence_of_devices_are_refused_by_name(toy, devices):
    [group] = plan_groups(CELLS[:1])
    with pytest.raises(TypeError, match=r"run_group: devices must be a sequence of jax devices"):
        run_group(group, init_group(group, toy), toy, strategy="vmap", devices=devices)


@pytest.mark.parametrize(
    "devices, message",
    [
        ([], r"run_group: devices is empty; pass at least one device"),
        ([jax.devices()[0], jax.devices()[0]], r"run_group: devices lists a device more than once"),
    ],
    ids=["empty", "repeated"],
)
def test_no_devices_or_a_repeated_device_are_refused_by_name(toy, devices, message):
    [group] = plan_groups(CELLS[:2])
    with pytest.raises(ValueError, match=message):
        run_group(group, init_group(group, toy), toy, strategy="vmap", devices=devices)


def test_train_grid_takes_devices_once_for_every_group(toy):
    """An iterator of devices serves each group, not only the first (which exhausted it)."""
    other = dataclasses.replace(CELLS[1], hparams=dataclasses.replace(ADAM, steps=2))
    cells = [CELLS[0], other]
    assert len(plan_groups(cells)) == 2
    devices = (device for device in jax.local_devices()[:2])
    result = train_grid(cells, datasets={"toy": toy}, strategy="vmap", devices=devices)
    assert result.final["cell"].tolist() == [0, 1]
    assert [len(state.step) for state in result.states] == [1, 1]


def test_train_grid_initializes_each_group_on_its_devices_not_the_default_one(toy, monkeypatch):
    # every group's initial state, all of its cells, was made on the default device,
    # though train_grid was given others (e.g. to leave that one to another job)
    placed = []

    def recording(group, state, *args, **kwargs):
        placed.append({device for leaf in jax.tree.leaves(state) for device in leaf.devices()})
        return run_group(group, state, *args, **kwargs)

    monkeypatch.setattr(_grid, "run_group", recording)
    devices = jax.local_devices()[2:]
    train_grid(CELLS[:2], datasets={"toy": toy}, strategy="vmap", devices=devices)
    assert placed == [{devices[0]}]


@dataclasses.dataclass(frozen=True)
class _WithActivation:
    """A model config holding a function: its repr has the function's address."""

    act: Any

    def build(self) -> nn.Module:
        return Tiny().build()


def _activation() -> Any:
    return lambda x: x


def test_processes_given_different_cells_are_refused_before_any_trains(toy, monkeypatch):
    """Each process trains its share of its own list: lists that differ (hparams drawn at
    random in each process) trained some cells twice and others never, silently. Two
    processes are stood for by their gather (two real ones print the same message in
    each); a function's address in a model's repr, which differs from one process to
    another, is not compared."""
    rows = []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_grid, "gather_rows", lambda row: rows.append(row) or np.stack([row, row]))
    alike = [Cell(_WithActivation(_activation()), "toy") for _ in range(2)]
    assert repr(alike[0]) != repr(alike[1])  # both alive: at two addresses
    for cell in alike:
        _grid._check_same_cells([cell])
    np.testing.assert_array_equal(*rows)
    other = np.array([0, 1], np.uint32)  # process 1: the same count, another digest
    monkeypatch.setattr(_grid, "gather_rows", lambda row: np.stack([row, row + other]))
    monkeypatch.setattr(_grid, "barrier", lambda name: None)
    monkeypatch.setattr(_grid, "run_group", None)  # nothing trains
    message = (
        r"train_grid: the 2 processes were given different cells \(process 0: 4 cells, "
        r"digest ([0-9a-f]{8}); process 1: 4 cells, digest (?!\1)[0-9a-f]{8}\)\. Give every "
        r"process the whole grid, built alike"
    )
    with pytest.raises(ValueError, match=message):
        train_grid(CELLS, datasets={"toy": toy}, strategy="vmap")


@dataclasses.dataclass(frozen=True)
class _WithFrozenset(_WithActivation):
    """A hashable model config holding a set: its repr lists it in its iteration order."""

    names: frozenset = frozenset()


def test_cells_alike_but_a_sets_order_are_not_refused_as_different(monkeypatch):
    """A frozenset of strings iterates in an order of their hashes, salted in each
    process: cells built alike were refused as different cells. Two equal frozensets
    listed in two orders in one process stand for them."""
    rows = []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_grid, "gather_rows", lambda row: rows.append(row) or np.stack([row, row]))
    first, second = frozenset([8, 0]), frozenset([0, 8])
    assert first == second and repr(first) != repr(second)
    for names in (first, second):
        _grid._check_same_cells([Cell(_WithFrozenset(abs, names), "toy")])
    np.testing.assert_array_equal(*rows)


def test_devices_are_checked_even_when_the_state_is_at_until_step(toy):
    [group] = plan_groups(CELLS[:1])
    state = init_group(group, toy)
    with pytest.raises(ValueError, match=r"run_group: devices lists a device more than once"):
        run_group(group, state, toy, 0, strategy="vmap", devices=[jax.devices()[0]] * 2)


class _DropsAtEvaluation(nn.Module):
    """Dropout on whatever the train flag: its evaluation, which has no rng, fails."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(3)(nn.Dropout(0.5)(x, deterministic=False))


def test_a_later_group_failing_only_in_its_evaluation_fails_before_any_group_trains(toy):
    # its train step traces (it has a dropout rng): only the evaluation raised, once the
    # first group had trained and the second had run its steps
    cells = [_other(), _other(model=Builds(_DropsAtEvaluation()))]
    chunks = []
    with pytest.raises(flax.errors.InvalidRngError, match='needs PRNG for "dropout"') as raised:
        train_grid(cells, datasets={"toy": toy}, on_chunk=lambda *a: chunks.append(a))
    assert chunks == [] and "raised for cells [1]" in raised.value.__notes__[-1]


def _traced_under_strict_promotion(toy, config, hp):
    """A group's init, train step and evaluation traced (nothing compiled) under strict
    dtype promotion: where it refuses a promotion, it does so while tracing."""
    [group] = plan_groups([Cell(config, "toy", hp)])
    model, arrays = config.build(), device_array_specs(toy)
    with jax.numpy_dtype_promotion("strict"):
        state = jax.eval_shape(lambda: init_group(group, toy))
        cell = jax.eval_shape(lambda s: jax.tree.map(lambda a: a[0], s), state)
        _, metrics = jax.eval_shape(make_train_step(model, hp), cell, arrays)
        jax.eval_shape(make_evaluate(model, hp.compute_dtype), cell, arrays)
    return cell, metrics


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_strict_clean_model_trains_under_strict_promotion(toy, optimizer):
    # its evaluation divided float32 sums by an int32 count, and adam's bias correction in
    # optax raised a float to the int32 step count: strict promotion refused both
    hp = HParams(optimizer=optimizer, batch_size=16, steps=2, grad_clip=1.0, lr_schedule="cosine")
    _, metrics = _traced_under_strict_promotion(toy, Tiny(), hp)
    assert metrics["grad_norm"].dtype == jnp.float32


def test_a_model_storing_its_params_in_bfloat16_trains_under_strict_promotion(toy):
    # its grad_norm, grad_clip and regularizer widened bfloat16 with jnp.promote_types, the
    # finiteness check concatenated float32 and bfloat16 leaves, and optax.apply_updates
    # added float32 updates to bfloat16 params: strict promotion refused each
    l2 = (Regularizer("**/kernel", "l2", 1e-3),)
    hp = HParams(optimizer="adam", batch_size=16, steps=2, grad_clip=1.0, regularizers=l2)
    cell, metrics = _traced_under_strict_promotion(toy, Builds(_Bfloat16()), hp)
    assert jax.tree.leaves(cell.params)[0].dtype == jnp.bfloat16
    assert metrics["regularizer"].dtype == jnp.float32


class _Bfloat16Hidden(nn.Module):
    """A hidden layer and a head, computing in and storing their params in bfloat16."""

    @nn.compact
    def __call__(self, x, train=False):
        dense = functools.partial(nn.Dense, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
        return dense(3)(nn.relu(dense(8)(x)))


def test_a_morph_regularizer_of_bfloat16_params_is_taken_in_float32_under_strict_promotion(toy):
    # its channel importances were summed in bfloat16, and the bfloat16 penalty was added
    # to the float32 loss: strict promotion refused it
    hp = HParams(batch_size=16, steps=2, regularizers=(Regularizer("**", "morph", 1e-3),))
    _, metrics = _traced_under_strict_promotion(toy, Builds(_Bfloat16Hidden()), hp)
    assert metrics["regularizer"].dtype == jnp.float32


def test_a_train_step_on_an_empty_batch_is_refused_by_name_not_a_nan_divergence():
    """It took a mean over no example: NaN loss, the cell marked diverged."""
    step = make_train_step(Tiny().build(), ADAM)
    empty = (jnp.zeros((0, 8)), jnp.zeros((0,), jnp.int32))
    with pytest.raises(ValueError, match=r"empty batch \(x of shape \(0, 8\), y of shape \(0,\)"):
        step(None, {}, empty)


@pytest.mark.parametrize(
    "make", [make_train_step, make_evaluate, precision_apply], ids=lambda f: f.__name__
)
def test_a_model_config_given_for_its_module_is_refused_saying_to_build_it(make):
    """A config (what a Cell takes) raised AttributeError: no attribute 'apply'."""
    config = ModelConfig("mlp", 3, (8,), width=8)
    with pytest.raises(
        TypeError, match=rf"^{make.__name__}: model must be a Flax module, got a ModelConfig: "
    ):
        make(config, ADAM) if make is make_train_step else make(config, "float32")


@pytest.mark.parametrize(
    "make", [make_train_step, make_evaluate, precision_apply], ids=lambda f: f.__name__
)
def test_a_module_class_given_for_its_module_is_refused_saying_to_instantiate_it(make):
    """It said 'got a type: e.g. ModelConfig('mlp', 10, (40,)).build()'."""
    message = rf"^{make.__name__}: model is the class Dense, not a module: pass an instance, "
    with pytest.raises(TypeError, match=message + r"Dense\(\.\.\.\)\.$"):
        make(nn.Dense, ADAM) if make is make_train_step else make(nn.Dense, "float32")


@pytest.mark.parametrize(
    "hp, fix",
    [({"batch_size": 16}, r"HParams\(\*\*hp\)"), ("adam", r"one, e\.g\. HParams\(batch_size=16\)")],
)
def test_hparams_given_as_no_hparams_are_refused_by_type(hp, fix):
    """A dict raised AttributeError: 'dict' object has no attribute 'optimizer'."""
    message = rf"^make_train_step: hp must be an HParams, got a {type(hp).__name__}: pass {fix}$"
    with pytest.raises(TypeError, match=message):
        make_train_step(Tiny().build(), hp)


def test_the_empty_batch_check_reads_inputs_given_as_a_dict():
    # it took jnp.shape of x itself: a dict of inputs (a graph model's) warned, then failed
    check_batch(({"a": jnp.zeros((2, 3)), "b": jnp.zeros((2, 1))}, jnp.zeros((2,), jnp.int32)))
    with pytest.raises(ValueError, match=r"x of shape \{'a': \(0, 3\)\}, y of shape \(0,\)"):
        check_batch(({"a": jnp.zeros((0, 3))}, jnp.zeros((0,), jnp.int32)))


def test_a_grid_result_prints_as_a_one_line_summary():
    """It printed every param of every group's state and both frames (32,757 characters
    for 3 cells of a width-8 MLP after 4 steps)."""
    final, metrics = _grid._frames_without_rows()
    groups = tuple(plan_groups([*CELLS[:2], _other(batch_size=8)]))
    runs = (GroupRun("vmap", {}, []), GroupRun("stepwise", {}, []))
    states = (np.zeros((2, 1000)), np.zeros((1, 1000)))  # as big as a model's params
    result = GridResult((0, 1, 2), final, metrics, groups, states, runs)  # type: ignore[arg-type]
    assert repr(result) == (
        "GridResult(3 cells in 2 groups (strategy vmap, stepwise): final 0 rows, metrics 0 "
        "rows of ['cell', 'step', 'split', 'diverged', 'accuracy', 'grad_norm', 'loss', "
        "'task_loss'])"
    )


def test_a_group_run_prints_as_a_one_line_summary():
    """It printed every metric of every chunk, a line per chunk and array."""
    cells = np.full(3, -1)
    chunks = [
        Chunk(np.arange(a, b), {"loss": np.zeros((3, 500))}, {}, cells) for a, b in ((1, 3), (3, 6))
    ]
    run = GroupRun("auto", {"vmap": 0.00123456, "stepwise": 0.5}, chunks)
    assert repr(run) == (
        "GroupRun(strategy 'auto': 2 chunks, steps 1 to 5, of 3 cells; seconds per step "
        "{'vmap': 0.00123, 'stepwise': 0.5})"
    )
    assert repr(GroupRun("vmap", {}, [])) == "GroupRun(strategy 'vmap': 0 chunks)"


def test_a_chunk_prints_as_a_one_line_summary():
    """It printed every metric of every cell and step (what ``on_chunk=print`` shows)."""
    train = {"loss": np.zeros((3, 250)), "accuracy": np.ones((3, 250))}
    chunk = Chunk(np.arange(1, 251), train, {"loss": np.zeros(3)}, np.array([-1, 7, -1]))
    chunk = dataclasses.replace(chunk, compile_s=1.23456, compiles=2, train_s=0.0123456)
    assert repr(chunk) == (
        "Chunk(steps 1 to 250, of 3 cells: train ['accuracy', 'loss'], eval ['loss'], "
        "diverged at [-1, 7, -1]; compile_s 1.23 (2 programs), train_s 0.0123, eval_s 0)"
    )
    empty = Chunk(np.arange(0), {}, {}, np.full(1, -1))
    assert repr(empty) == (
        "Chunk(no steps, of 1 cell: train [], eval [], none diverged; compile_s 0 (0 programs), "
        "train_s nan, eval_s 0)"
    )


def test_a_group_state_prints_as_a_one_line_summary():
    """It printed every param and optimizer moment of every cell (22,988 characters for
    2 cells of a width-64 MLP)."""
    cells = np.zeros(2, np.int32)
    params = {"dense": {"kernel": np.zeros((2, 1000, 3)), "bias": np.zeros((2, 3))}}
    at = np.array([-1, 4])
    state = GroupState(params, {}, params, {}, cells, cells, cells + 7, at >= 0, at)
    assert repr(state) == (
        "GroupState(2 cells, 3,003 params each in 2 arrays, at steps [7, 7], diverged at [-1, 4])"
    )
    shapes = jax.eval_shape(lambda: state)
    assert repr(shapes) == "GroupState(2 cells, 3,003 params each in 2 arrays, no values)"


def test_the_reprs_of_a_large_group_summarise_its_cells_on_one_short_line():
    """A Chunk or GroupState of 1,000 cells, one diverged, listed every cell's diverged_at
    (and step): 4,000 characters."""
    at = np.full(1000, -1)
    at[[3, 500]] = [7, 9]
    chunk = Chunk(np.arange(1, 11), {"loss": np.zeros((1000, 10))}, {}, at)
    assert repr(chunk) == (
        "Chunk(steps 1 to 10, of 1,000 cells: train ['loss'], eval [], 2 of 1,000 cells "
        "diverged: cell 3 at step 7, cell 500 at step 9; compile_s 0 (0 programs), "
        "train_s nan, eval_s 0)"
    )
    params = {"scale": np.zeros(1000)}
    cells = np.zeros(1000, np.int32)
    state = GroupState(params, {}, params, {}, cells, cells, cells + 10, at >= 0, at)
    assert repr(state) == (
        "GroupState(1,000 cells, 1 param each in 1 array, at step 10 (every cell), 2 of 1,000 "
        "cells diverged: cell 3 at step 7, cell 500 at step 9)"
    )
    state = state.replace(step=np.arange(1000))
    assert "at steps 0 to 999, " in repr(state)


def test_one_cell_of_a_group_state_prints_its_params_count():
    """A cell's slice (or a vmap over the cells) printed 3 params each: the first axis
    of each of its params was read as the cells'."""
    cells, at = np.zeros(2, np.int32), np.array([-1, 4])
    params = {"dense": {"kernel": np.zeros((2, 1000, 3)), "bias": np.zeros((2, 3))}}
    state = GroupState(params, {}, params, {}, cells, cells, cells + 7, at >= 0, at)
    one = jax.tree.map(lambda leaf: leaf[1, ...], state)  # 0-d arrays, not scalars
    assert repr(one) == (
        "GroupState(1 cell, 3,003 params each in 2 arrays, at steps 7, diverged at 4)"
    )
    printed = []
    jax.vmap(lambda cell: printed.append(repr(cell)))(state)
    assert printed == ["GroupState(1 cell, 3,003 params each in 2 arrays, no values)"]


def test_a_group_state_of_one_param_each_says_param():
    """It said '1 params each'."""
    cells = np.zeros(2, np.int32)
    params = {"scale": np.zeros(2)}
    state = GroupState(params, {}, params, {}, cells, cells, cells, cells < 0, cells - 1)
    assert (
        repr(state)
        == "GroupState(2 cells, 1 param each in 1 array, at steps [0, 0], none diverged)"
    )
