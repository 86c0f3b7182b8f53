"""Every strategy gives the same numbers; BatchNorm, dropout, knobs, aux losses, path
weights and regularizers all reach the train step."""

import collections
import dataclasses
import functools
import gc
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.data import batch_indices
from phosjax.train import (
    MATMUL_STRATEGIES,
    STRATEGIES,
    Cell,
    HParams,
    Regularizer,
    _auto,
    _state,
    _strategy,
    device_arrays,
    init_group,
    make_train_step,
    measure_strategies,
    plan_groups,
    run_group,
)
from phosjax.train._auto import TIE, fastest
from phosjax.train._state import INIT_PROGRAMS_KEPT
from phosjax.train._strategy import (
    _LIFTED,
    COPY,
    STEPWISE_UNROLL,
    CellFn,
    CompiledProgram,
    Executor,
    compile_totals,
    program_memory,
)
from tests.compiles import compiles_seen
from tests.train.tiny import Tiny, assert_same_run

TOL = {"rtol": 2e-5, "atol": 2e-6}
REGS = (Regularizer("**/kernel", "l2", 1e-3), Regularizer("pre_act_*", "l1", 0.1, on="activations"))


def rich_cell(seed: int, temperature: float, strength: float, smoothing: float) -> Cell:
    regs = (REGS[0], Regularizer("pre_act_*", "l1", strength, on="activations"))
    hp = HParams(
        batch_size=16,
        steps=5,
        label_smoothing=smoothing,
        regularizers=regs,
        knobs={"T": temperature},
    )
    return Cell(Tiny(rich=True), "toy", hp, seed)


CELLS = [rich_cell(0, 1.0, 0.1, 0.0), rich_cell(1, 2.0, 0.0, 0.1), rich_cell(2, 1.0, 0.3, 0.0)]


@pytest.fixture(scope="module")
def runs(toy):
    """Each strategy's run of `CELLS`, "auto" first; and how often each program compiled
    for each tree of arguments on each set of devices over the runs."""
    [group] = plan_groups(CELLS)
    compiles: collections.Counter[tuple[int, object, object]] = collections.Counter()
    executable = CompiledProgram.executable

    def counting(program: CompiledProgram, *args: object) -> object:
        before = len(program.compiled)
        out = executable(program, *args)
        if len(program.compiled) > before:  # compiled here, not by an earlier test
            devices = frozenset(d for a in jax.tree.leaves(args) for d in a.sharding.device_set)
            compiles[id(program), jax.tree.structure(args), devices] += 1
        return out

    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CompiledProgram, "executable", counting)
        for strategy in ["auto", *STRATEGIES]:
            state, run = run_group(group, init_group(group, toy), toy, strategy=strategy)
            out[strategy] = jax.device_get(state), run
    return group, out, compiles


def test_every_strategy_gives_the_same_numbers(runs):
    _, out, _ = runs
    for strategy in STRATEGIES[1:]:
        _, run = out[strategy]
        assert run.strategy == strategy and run.timings == {}
        assert_same_run(out[strategy], out["vmap"], **TOL)


def test_auto_measures_every_strategy_and_keeps_the_fastest(runs):
    """Every strategy but those computing convolutions as matmuls: the model has none."""
    _, out, _ = runs
    state, run = out["auto"]
    assert set(run.timings) == set(STRATEGIES) - set(MATMUL_STRATEGIES)
    assert min(run.timings.values()) > 0
    assert run.timings[run.strategy] <= (1 + TIE) * min(run.timings.values())
    ref = out[run.strategy][0]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), state, ref)


def test_auto_times_the_programs_the_runs_then_run(runs):
    """No program compiles twice for one tree of arguments: the states auto times on keep
    the knob's weak type, as each run's own state does, so the runs reuse the programs
    timed (a host copy would lose it: another leaf type, another compile)."""
    *_, compiles = runs
    assert compiles and set(compiles.values()) == {1}


@pytest.mark.parametrize("candidate", ["auto", "fast"])
def test_measuring_an_unknown_strategy_names_the_strategies_and_not_auto(toy, candidate):
    [group] = plan_groups([Cell(Tiny(), "toy", HParams(batch_size=16, steps=2))])
    with pytest.raises(ValueError, match=rf"'{candidate}': expected one of \('vmap', .*not one"):
        measure_strategies(
            group.signature(),
            lambda: make_train_step(Tiny().build(), group.hparams),
            init_group(group, toy),
            device_arrays(toy),
            num_cells=1,
            devices=jax.devices(),
            candidates=(candidate,),
        )


@pytest.mark.parametrize("put", ["put_data", "put_state"])
def test_measuring_places_the_data_and_state_once_per_set_of_devices(toy, monkeypatch, put):
    """The candidates sharing devices share one copy of the data and of the state: one
    per candidate held every copy at once, several times each on each device."""
    placed = []
    original = getattr(Executor, put)
    monkeypatch.setattr(
        Executor,
        put,
        lambda self, a: placed.append(tuple(self.mesh.devices.flat)) or original(self, a),
    )
    [group] = plan_groups([Cell(Tiny(), "toy", HParams(batch_size=16, steps=2), s) for s in (0, 1)])
    timings = measure_strategies(
        group.signature(),
        lambda: make_train_step(Tiny().build(), group.hparams),
        init_group(group, toy),
        device_arrays(toy),
        num_cells=2,
        devices=jax.devices(),
        candidates=STRATEGIES,
        steps=1,
        repeats=1,
    )
    assert set(timings) == set(STRATEGIES)
    assert sorted(placed) == [tuple(jax.devices()[:1]), tuple(jax.devices()[:2])]


def test_measuring_without_devices_runs_on_every_local_device(toy, monkeypatch):
    """devices=None, all local devices as run_group takes it, was refused by the signature
    (devices was required) though measure_strategies took it so."""
    given = []
    original = Executor.__init__
    monkeypatch.setattr(
        Executor, "__init__", lambda self, *a, **k: given.append(a[2]) or original(self, *a, **k)
    )
    monkeypatch.setattr(Executor, "run_steps", lambda *a, **k: None)  # nothing compiles
    [group] = plan_groups([Cell(Tiny(), "toy", HParams(batch_size=16, steps=2))])
    timings = measure_strategies(
        group.signature(),
        lambda: make_train_step(Tiny().build(), group.hparams),
        init_group(group, toy),
        device_arrays(toy),
        num_cells=1,
        candidates=("vmap", "map"),
        repeats=1,
    )
    assert list(timings) == ["vmap", "map"]
    assert given == [jax.local_devices()] * 2 and len(given[0]) == 4


@pytest.mark.parametrize(
    "num_cells, devices, message",
    [
        (1, None, r"num_cells=1, but the state's leaves lead with \[2\] cells; pass the group's"),
        (3, None, r"num_cells=3, but the state's leaves lead with \[2\] cells"),
        (2, [], r"devices is empty; pass at least one device"),
        (2, [jax.devices()[0]] * 2, r"devices lists a device more than once"),
    ],
)
def test_measuring_refuses_wrong_arguments_by_name(toy, num_cells, devices, message):
    """A wrong cell count was measured as given (1: both cells on one device; 3: a third,
    padding, cell timed too); wrong devices were refused in the name of ``Executor``."""
    [group] = plan_groups([Cell(Tiny(), "toy", HParams(batch_size=16, steps=2), s) for s in (0, 1)])
    with pytest.raises(ValueError, match=rf"^measure_strategies: {message}"):
        measure_strategies(
            group.signature(),
            lambda: make_train_step(Tiny().build(), group.hparams),
            init_group(group, toy),
            device_arrays(toy),
            num_cells=num_cells,
            devices=jax.devices() if devices is None else devices,
            candidates=("vmap",),
        )


@pytest.mark.parametrize(
    "wrong, message",
    [
        ({"steps": 0}, r"steps must be >= 1, got 0"),  # was a ZeroDivisionError
        ({"steps": 2.5}, r"steps must be an int, got 2.5"),  # was a scan length error
        ({"repeats": 0}, r"repeats must be >= 1, got 0"),  # was {'vmap': inf}
        ({"candidates": ()}, r"candidates must be a list or tuple of at least one of"),  # {}
        ({"candidates": "vmap"}, r"got 'vmap'; for one, candidates=\('vmap',\)"),  # 'v'
        ({"candidates": ("vmap", "fast")}, r"'fast': expected one of"),  # after timing vmap
    ],
)
def test_measuring_refuses_wrong_settings_by_name_before_compiling(
    toy, monkeypatch, wrong, message
):
    monkeypatch.setattr(Executor, "run_steps", lambda *a, **k: pytest.fail("it compiled"))
    [group] = plan_groups([Cell(Tiny(), "toy", HParams(batch_size=16, steps=2))])
    with pytest.raises(ValueError, match=message):
        measure_strategies(
            group.signature(),
            lambda: make_train_step(Tiny().build(), group.hparams),
            init_group(group, toy),
            device_arrays(toy),
            num_cells=1,
            devices=jax.devices(),
            **{"candidates": ("vmap",), **wrong},
        )


@pytest.mark.parametrize("given, shown", [("dataset", "an ArrayDataset"), ("list", "a list")])
def test_measuring_refuses_a_data_set_given_for_its_arrays_by_type(toy, monkeypatch, given, shown):
    """The data set itself raised TypeError: 'ArrayDataset' object is not subscriptable."""
    monkeypatch.setattr(Executor, "run_steps", lambda *a, **k: pytest.fail("it compiled"))
    [group] = plan_groups([Cell(Tiny(), "toy", HParams(batch_size=16, steps=2))])
    arrays = toy if given == "dataset" else list(device_arrays(toy).values())
    message = (
        rf"^measure_strategies: arrays must be a mapping, got {shown}; pass device_arrays\(data\)$"
    )
    with pytest.raises(TypeError, match=message):
        measure_strategies(
            group.signature(),
            lambda: make_train_step(Tiny().build(), group.hparams),
            init_group(group, toy),
            arrays,
            num_cells=1,
            devices=jax.devices(),
            candidates=("vmap",),
        )


def test_auto_breaks_near_ties_in_the_order_of_strategies():
    """Timings within ``TIE`` of the fastest tie; the earliest in `STRATEGIES` wins."""
    assert fastest({"stepwise": 1.0, "map": 1.03, "vmap": 1.049}) == "vmap"
    assert fastest({"stepwise": 1.0, "map": 1.03, "vmap": 1.06}) == "map"
    assert fastest({"stepwise": 1.0, "map": 1.3, "vmap": 1.06}) == "stepwise"
    assert fastest({"sequential": 2.0, "map": 1.0}, tie=0.0) == "map"


def test_knobs_batch_stats_and_metrics_per_cell(runs, toy):
    group, out, _ = runs
    state, run = out["vmap"]
    init = jax.device_get(init_group(group, toy))
    assert state.collections["knobs"]["T"].tolist() == [1.0, 2.0, 1.0]
    assert not np.allclose(
        state.collections["batch_stats"]["BatchNorm_0"]["mean"],
        init.collections["batch_stats"]["BatchNorm_0"]["mean"],
    )
    train = run.chunks[0].train
    assert {"aux/l1", "path_weight/branch_0", "path_weight/branch_1", "grad_norm"} <= set(train)
    np.testing.assert_allclose(train["path_weight/branch_0"][:, 0], 0.5)  # sigmoid(0)
    assert set(run.chunks[-1].eval) == {"loss", "accuracy"}


def test_loss_adds_task_aux_and_each_cells_regularizers(runs, toy):
    """Step 1's loss, recomputed from the initial state with the same batch and dropout key."""
    group, out, _ = runs
    train = out["vmap"][1].chunks[0].train
    init = jax.device_get(init_group(group, toy))
    model = group.model.build()
    for i, cell in enumerate(CELLS):
        params = jax.tree.map(lambda a, i=i: a[i], init.params)
        collections = jax.tree.map(lambda a, i=i: a[i], init.collections)
        data_key = jax.random.wrap_key_data(init.data_key[i])
        idx = batch_indices(data_key, 0, toy.num_train, 16)
        rng = jax.random.fold_in(jax.random.wrap_key_data(init.dropout_key[i]), 0)
        _, found = px.probe(
            model,
            {"params": params, **collections},
            jnp.asarray(toy.x_train)[idx],
            "pre_act_*",
            train=True,
            rngs={"dropout": rng},
            mutable=["batch_stats"],
        )
        activations = sum(jnp.abs(v).mean() for v in found.values())
        kernels = sum(jnp.sum(k**2) for k in jax.tree.leaves(params) if k.ndim == 2)
        regs = cell.hparams.regularizers
        expected = regs[0].strength * kernels + regs[1].strength * activations
        extra = train["loss"][i, 0] - train["task_loss"][i, 0] - train["aux/l1"][i, 0]
        np.testing.assert_allclose(extra, expected, rtol=1e-4)
        np.testing.assert_allclose(train["regularizer"][i, 0], expected, rtol=1e-4)


STEPWISE_KEY = "test-stepwise"
"""Names the programs of `stepwise`'s runs, which the unroll test's runs reuse."""


@pytest.fixture(scope="module")
def stepwise(toy):
    """ "stepwise" steps of `CELLS[:2]` in chunks of 3, 5, 1 and 4 (from a fresh state):
    each chunk's ``loss`` shape, the steps the state reached, and the programs kept for the
    key, with how often each compiled, taken before another test adds programs to it."""
    [group] = plan_groups(CELLS[:2])
    executor = Executor("stepwise", 2)
    key = (STEPWISE_KEY, group.signature())
    state = executor.put_state(init_group(group, toy))
    data = executor.put_data(device_arrays(toy))
    make_step = functools.partial(make_train_step, group.model.build(), group.hparams)
    shapes = []
    for steps in (3, 5, 1, 4):
        state, metrics = executor.run_steps(key, make_step, state, data, steps)
        shapes.append(metrics["loss"].shape)
    kept = {k: len(v.compiled) for k, v in _LIFTED.items() if k[0][0] == key}
    return shapes, jax.device_get(state.step).tolist(), kept


def test_stepwise_compiles_two_programs_for_any_number_of_steps(stepwise):
    """ "stepwise" compiles `STEPWISE_UNROLL` steps of one cell, unrolled (no scan over
    the steps: XLA:CPU keeps its fast convolutions), and one step for an odd remainder,
    whatever the chunk lengths; the metrics of every step come back ``(cells, steps)``."""
    shapes, steps, kept = stepwise
    assert shapes == [(2, 3), (2, 5), (2, 1), (2, 4)]
    assert steps == [13, 13]
    assert sorted(k[0][1] for k in kept) == [1, STEPWISE_UNROLL]
    assert all(k[1] == "stepwise" for k in kept)
    assert list(kept.values()) == [1, 1]


def test_stepwise_gives_the_same_numbers_for_any_steps_per_dispatch(toy, stepwise):
    """Unrolling more steps per dispatch changes the program, not the numbers. (The
    programs of one and of `STEPWISE_UNROLL` steps are `stepwise`'s, compiled once.)"""
    [group] = plan_groups(CELLS[:2])
    make_step = functools.partial(make_train_step, group.model.build(), group.hparams)
    out = {}
    for unroll in (1, 2, 3):
        executor = Executor("stepwise", 2, unroll=unroll)
        state = executor.put_state(init_group(group, toy))
        data = executor.put_data(device_arrays(toy))
        key = (STEPWISE_KEY, group.signature())
        out[unroll] = jax.device_get(executor.run_steps(key, make_step, state, data, 7))
    for unroll in (2, 3):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), out[unroll], out[1])
    with pytest.raises(ValueError, match="unroll must be >= 1, got 0"):
        Executor("stepwise", 2, unroll=0)


def test_executor_checks_its_devices_as_run_group_does():
    with pytest.raises(ValueError, match=r"^Executor: devices is empty; pass at least one"):
        Executor("vmap", 2, [])
    devices = jax.local_devices()
    assert Executor("vmap", 2, np.asarray(devices)).mesh.devices.size == min(2, len(devices))


def test_padding_copying_and_taking_back_a_state_compile_one_program_each_whatever_its_leaves():
    """6 cells on 4 devices: padded to 8, copied (as `measure_strategies` does) and taken
    back by one program each, where an eager operation per leaf compiled per shape (an mlp
    group: 65 compiles, ~2 s of CPU); each leaf keeps its values, dtype (a typed key's too)
    and weak type, shares no buffer with the caller's (a copy none with its original, whose
    sharding it keeps), and comes back 2 cells on each of the first 3 devices."""
    assert len(jax.devices()) == 4
    weak = jnp.full((6, 3, 29), 0.5)  # shapes no other test uses
    assert weak.weak_type
    state = {
        "weak": weak,
        "bfloat16": jnp.ones((6, 29), jnp.bfloat16),
        "int": jnp.arange(6 * 31, dtype=jnp.int32).reshape(6, 31),
        "bool": jnp.arange(6 * 37).reshape(6, 37) % 3 == 0,
        "key": jax.random.split(jax.random.key(5), (6, 41)),
        "host": np.arange(6 * 43, dtype=np.float32).reshape(6, 43),
    }
    executor = Executor("vmap", 6)
    with compiles_seen() as compiled:
        placed = executor.put_state(state)
        padding = len(compiled)
        copied = COPY(placed)
        copying = len(compiled) - padding
        taken = executor.take(placed)
        again = executor.take(executor.put_state(taken))  # resumed from its own output
    assert padding <= 1 and copying <= 1 and len(compiled) <= 3
    raw = lambda a: (
        jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a
    )
    buffers = lambda a: {shard.data.unsafe_buffer_pointer() for shard in raw(a).addressable_shards}
    for name, leaf in state.items():
        expected = np.asarray(raw(leaf))
        padded = np.concatenate([expected, expected[:1], expected[:1]])
        np.testing.assert_array_equal(np.asarray(raw(placed[name])), padded)
        assert {shard.data.shape[0] for shard in placed[name].addressable_shards} == {2}
        copy = copied[name]
        assert (copy.dtype, jax.typeof(copy).weak_type) == (leaf.dtype, name == "weak")
        assert copy.sharding == placed[name].sharding
        np.testing.assert_array_equal(np.asarray(raw(copy)), padded)
        assert not buffers(copy) & buffers(placed[name])
        for out in (taken[name], again[name]):
            assert (out.dtype, jax.typeof(out).weak_type) == (leaf.dtype, name == "weak")
            np.testing.assert_array_equal(np.asarray(raw(out)), expected)
            assert [shard.device for shard in out.addressable_shards] == jax.devices()[:3]
        if isinstance(leaf, jax.Array):
            assert not buffers(leaf) & buffers(placed[name])


def test_placing_a_state_from_one_device_on_several_compiles_one_program_whatever_its_leaves():
    """4 cells on 4 devices, no padding: JAX split each leaf held on one device by a program
    compiled per shape and dtype (here 4; a tiny bench's mlp and choicenet groups on 2
    devices: 9); whole on every device first, then laid out by the padding program (none
    added), it compiles one. Each leaf keeps its values, dtype (a typed key's too) and weak
    type, shares no buffer with the caller's and lies one cell on each device."""
    weak = jnp.full((4, 3, 53), 0.5)  # shapes no other test uses
    state = {
        "weak": weak,
        "bfloat16": jnp.ones((4, 59), jnp.bfloat16),
        "int": jnp.arange(4 * 61, dtype=jnp.int32).reshape(4, 61),
        "key": jax.random.split(jax.random.key(5), (4, 67)),
        "host": np.arange(4 * 71, dtype=np.float32).reshape(4, 71),
    }
    with compiles_seen() as compiled:
        placed = Executor("vmap", 4).put_state(state)
    assert len(compiled) <= 1
    raw = lambda a: (
        jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a
    )
    buffers = lambda a: {shard.data.unsafe_buffer_pointer() for shard in raw(a).addressable_shards}
    for name, leaf in state.items():
        out = placed[name]
        assert (out.dtype, jax.typeof(out).weak_type) == (leaf.dtype, name == "weak")
        np.testing.assert_array_equal(np.asarray(raw(out)), np.asarray(raw(leaf)))
        assert [s.device for s in out.addressable_shards] == jax.devices()
        assert {s.data.shape[0] for s in out.addressable_shards} == {1}
        if isinstance(leaf, jax.Array):
            assert not buffers(leaf) & buffers(out)


def test_padding_a_state_computes_on_each_device_only_its_own_cells(monkeypatch):
    """6 cells on 4 devices: every device computed and held all 8 padded cells before
    keeping its 2 (4x the padded state's memory on each device at once). Now the padding
    program's output lies 2 cells on each device."""
    import phosjax.train._strategy as strategy_module

    shards = []
    padded = strategy_module.PADDED

    def spy(*args):
        out = padded(*args)
        shards.extend(shard.data.shape for shard in jax.tree.leaves(out)[0].addressable_shards)
        return out

    monkeypatch.setattr(strategy_module, "PADDED", spy)
    state = {"w": np.arange(6 * 5, dtype=np.float32).reshape(6, 5)}
    placed = Executor("vmap", 6).put_state(state)
    assert shards == [(2, 5)] * 4
    np.testing.assert_array_equal(placed["w"], state["w"][[0, 1, 2, 3, 4, 5, 0, 0]])


def test_taking_back_a_padded_state_whose_devices_hold_their_cells_copies_nothing():
    """6 cells padded to 8 on 4 devices: the first 3 devices hold the 6 cells, 2 each, as
    `take` lays them out. It cut them by one program whose output lay whole on all 4
    devices (6 cells on each) before splitting them; it now reuses those shards. (A weakly
    typed leaf, whose weak type shards lose, is still cut: the test of padding, copying
    and taking back above checks its weak type.)"""
    executor = Executor("vmap", 6)
    placed = executor.put_state({"w": np.arange(6 * 47, dtype=np.float32).reshape(6, 47)})
    with compiles_seen() as compiled:
        taken = executor.take(placed)
    assert not compiled
    np.testing.assert_array_equal(taken["w"], np.arange(6 * 47).reshape(6, 47))
    pointers = lambda a: [shard.data.unsafe_buffer_pointer() for shard in a.addressable_shards]
    assert pointers(taken["w"]) == pointers(placed["w"])[:3]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_run_steps_without_donation_leaves_the_state_usable(toy, strategy):
    """``donate=False`` keeps the start state valid: stepping it again gives the same."""
    [group] = plan_groups(CELLS[:2])
    executor = Executor(strategy, 2)
    state = executor.put_state(init_group(group, toy))
    data = executor.put_data(device_arrays(toy))
    make_step = functools.partial(make_train_step, group.model.build(), group.hparams)
    key = ("test-no-donation", group.signature())
    first, _ = executor.run_steps(key, make_step, state, data, 2, donate=False)
    again, _ = executor.run_steps(key, make_step, state, data, 2, donate=False)
    assert jax.device_get(state.step).tolist() == [0, 0]
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(first), jax.device_get(again))


def test_run_group_places_a_data_set_once(toy, monkeypatch):
    placed = []
    original = Executor.put_data
    monkeypatch.setattr(Executor, "put_data", lambda self, a: placed.append(1) or original(self, a))
    [group] = plan_groups(CELLS[:1])
    data = dataclasses.replace(toy)  # an object no other test has placed
    state = init_group(group, data)
    for until in (2, 4):
        state, _ = run_group(group, state, data, until, strategy="vmap")
    assert len(placed) == 1
    another = dataclasses.replace(data)  # equal arrays, another object: placed again
    run_group(group, init_group(group, another), another, 2, strategy="vmap")
    assert len(placed) == 2


def test_a_data_set_whose_arrays_can_be_written_is_placed_again_by_each_call(toy):
    # a tree op's data set holds what it is given: edited in place after a call, the next
    # call trained and was scored on the copy placed before the edit
    [group] = plan_groups(CELLS[:1])
    data = jax.tree.map(np.copy, toy)  # writable arrays
    start = init_group(group, data)
    _, before = run_group(group, start, data, strategy="vmap")
    data.x_train[...] *= 100
    data.x_test[...] *= 100
    state, run = run_group(group, start, data, strategy="vmap")
    fresh = dataclasses.replace(data)  # the edited arrays, copied
    expected_state, expected = run_group(group, start, fresh, strategy="vmap")
    [loss], [expected_loss] = run.chunks[-1].eval["loss"], expected.chunks[-1].eval["loss"]
    [old_loss] = before.chunks[-1].eval["loss"]
    assert (round(float(old_loss), 2), round(float(loss), 2)) == (1.21, 2.07)
    assert loss == pytest.approx(expected_loss)
    jax.tree.map(np.testing.assert_array_equal, state.params, expected_state.params)


def test_a_data_set_let_go_does_not_stay_placed_on_the_devices(toy):
    # its copy on the devices stayed among the data sets kept placed (PLACED_DATA_SETS) until
    # others pushed it out, holding device memory for a data set no one could use again
    import phosjax.train._run as run_module

    [group] = plan_groups(CELLS[:1])
    data = dataclasses.replace(toy)  # an object no other test has placed
    run_group(group, init_group(group, data), data, 2, strategy="vmap")
    mine = [arrays for key, (_, arrays) in run_module._PLACED.items() if key[0] == id(data)]
    placed = [weakref.ref(a) for a in jax.tree.leaves(mine)]
    assert placed
    del data, mine
    gc.collect()
    assert sum(ref() is not None for ref in placed) == 0  # of 5 arrays


def test_a_data_set_let_go_as_its_entry_is_dropped_elsewhere_is_no_error(toy, monkeypatch):
    # the GC may let a data set go in another thread, between this one's look-up of its
    # placed copy and a popitem of the same entry: its callback then raised a KeyError
    # ('Exception ignored in: <function _placed_data.<locals>.forget>')
    import sys

    import phosjax.train._run as run_module

    class Racing(collections.OrderedDict):
        def get(self, key, default=None):  # the entry dropped meanwhile, as by a popitem
            found = super().get(key, default)
            self.pop(key, None)
            return found

    monkeypatch.setattr(run_module, "_PLACED", Racing())
    [group] = plan_groups(CELLS[:1])
    data = dataclasses.replace(toy)
    run_group(group, init_group(group, data), data, 2, strategy="vmap")
    assert len(run_module._PLACED) == 1
    raised = []
    monkeypatch.setattr(sys, "unraisablehook", raised.append)
    del data
    gc.collect()
    assert (raised, len(run_module._PLACED)) == ([], 0)


def test_auto_converts_the_data_once_and_a_later_call_neither_measures_nor_converts(
    toy, monkeypatch
):
    import phosjax.train._run as run_module

    converted = []
    original = run_module.device_arrays
    monkeypatch.setattr(run_module, "device_arrays", lambda d: converted.append(1) or original(d))
    [group] = plan_groups(CELLS[:1])
    data = dataclasses.replace(toy)
    monkeypatch.setattr(_auto, "_CHOICES", collections.OrderedDict())  # the first call measures
    state, first = run_group(group, init_group(group, data), data, 2, strategy="auto")
    assert first.timings and len(converted) == 1  # measured and trained on one conversion
    _, second = run_group(group, state, data, 4, strategy="auto")
    assert len(converted) == 1 and second.strategy == first.strategy


@pytest.mark.parametrize("chosen", ["vmap", "sequential"])
def test_auto_keeps_placed_only_the_data_the_run_trains_on(toy, monkeypatch, chosen):
    """Measuring on several devices placed the data on them ("vmap") and on the first alone
    ("sequential"): both stayed placed, the first device holding the data set twice. The
    run trains on the placement it measured on (placed once per candidate, not again for
    the run); the other is let go: a run on it places the data anew."""
    import phosjax.train._run as run_module

    placed = []
    put_data = run_module.Executor.put_data
    monkeypatch.setattr(
        run_module.Executor, "put_data", lambda self, a: placed.append(1) or put_data(self, a)
    )
    monkeypatch.setattr(_auto, "_CHOICES", collections.OrderedDict())  # measures
    monkeypatch.setattr(_auto, "candidates", lambda *args: ("vmap", "sequential"))
    monkeypatch.setattr(_auto, "fastest", lambda timings: chosen)
    [group] = plan_groups(CELLS[:2])
    data = dataclasses.replace(toy)  # not placed yet
    state, run = run_group(group, init_group(group, data), data, 2, strategy="auto")
    assert (run.strategy, len(placed)) == (chosen, 2)
    run_group(group, state, data, 4, strategy=chosen)
    assert len(placed) == 2  # kept
    other = "sequential" if chosen == "vmap" else "vmap"
    run_group(group, state, data, 4, strategy=other)
    assert len(placed) == 3  # let go


@pytest.mark.parametrize("strategy", ["vmap", "auto"])
def test_the_data_converted_for_the_devices_is_not_kept_on_the_host_while_training(
    toy, monkeypatch, strategy
):
    """run_group kept the host arrays it made of the data set (`device_arrays`: the padded
    test batches; cached so that "auto" converts once) until it returned, a second copy
    of the test split in host memory while the group trained. They are let go once placed."""
    import phosjax.train._run as run_module

    converted = []

    def convert(data: Any) -> dict[str, np.ndarray]:
        arrays = device_arrays(data)
        own = [id(data.x_train), id(data.y_train)]  # float32, int32: taken as they are
        converted.extend(weakref.ref(a) for a in arrays.values() if id(a) not in own)
        return arrays

    monkeypatch.setattr(run_module, "device_arrays", convert)
    # "auto" measures on the same conversion
    monkeypatch.setattr(_auto, "_CHOICES", collections.OrderedDict())
    [group] = plan_groups(CELLS[:1])
    data = dataclasses.replace(toy)  # not placed yet
    kept_while_training = []

    def on_chunk(chunk: Any) -> None:
        gc.collect()
        kept_while_training.append(sum(ref() is not None for ref in converted))

    run_group(group, init_group(group, data), data, 2, strategy=strategy, on_chunk=on_chunk)
    assert len(converted) == 3 and kept_while_training == [0]  # x_test, y_test, test_mask


def test_a_chunk_reports_the_memory_of_its_largest_program_per_device(toy):
    """XLA's memory analysis of the chunk's programs, per device: three cells vmapped on one
    device need more than one cell does; over four devices (a cell each), the same."""
    one = jax.devices()[:1]

    def program_bytes(cells: list[Cell], devices: list[jax.Device] | None) -> float:
        [group] = plan_groups(cells)
        _, run = run_group(group, init_group(group, toy), toy, strategy="vmap", devices=devices)
        return max(chunk.program_bytes for chunk in run.chunks)

    alone = program_bytes(CELLS[:1], one)
    assert alone > 0 and program_bytes(CELLS, one) > 1.5 * alone
    assert program_bytes(CELLS, None) == alone


@pytest.mark.parametrize("resumed", [False, True], ids=["fresh", "resumed-diverged"])
def test_every_program_a_chunk_compiles_counts_in_its_compile_s_not_its_train_s(
    toy, monkeypatch, resumed
):
    """Once compiled inside a chunk's ``train_s``: the check of the optimizer state at its
    end (0.26 s of a one-step chunk's 0.26 s: 0.04 s without it); resumed from a placed
    state with a diverged cell (its chunks guarded), the copy of the state it donates."""
    import phosjax.train._run as run_module

    marks = []  # the XLA compiles so far (compiled), at each of run_group's clock readings

    width = 12 if resumed else 11  # shapes no other test compiled for
    sgd = HParams(optimizer="sgd", batch_size=16, steps=3)
    bad = dataclasses.replace(sgd, learning_rate=1e38)
    cells = [Cell(Tiny(width=width), "toy", hp, seed) for seed, hp in enumerate([bad, sgd])]
    [group] = plan_groups(cells if resumed else cells[1:])
    state = init_group(group, toy)
    if resumed:  # placed, a cell diverged: run_group donates a copy of the caller's state
        state, _ = run_group(group, state, toy, 2, strategy="vmap", chunk_steps=2)
        assert jax.device_get(state.diverged).tolist() == [True, False]
    clock = run_module._clock
    monkeypatch.setattr(run_module, "_clock", lambda: marks.append(len(compiled)) or clock())
    with compiles_seen() as compiled:
        _, run = run_group(group, state, toy, strategy="vmap", chunk_steps=2)
    marks = marks[1:]  # each chunk reads the clock as it begins, (evaluates,) and ends
    assert len(run.chunks) == (1 if resumed else 2)  # steps 2:3, or 0:2 and 2:3
    for chunk in run.chunks:
        begin, *_, end = marks[: 3 if chunk.eval else 2]
        marks = marks[3 if chunk.eval else 2 :]
        assert end - begin == chunk.compiles


@pytest.mark.parametrize("strategy", ["vmap", "stepwise"])
def test_training_on_with_the_shapes_trained_before_compiles_nothing(toy, strategy):
    """A later `run_group` of the same group and chunk lengths, from its state on the
    device or fetched to the host (as a checkpoint), compiles no program: neither the
    engine's nor a jnp op of its checks, placing or fetching."""
    hp = HParams(batch_size=16, steps=6, eval_every=2)
    [group] = plan_groups([Cell(Tiny(width=13), "toy", hp, seed) for seed in range(2)])
    state, _ = run_group(group, init_group(group, toy), toy, 2, strategy=strategy)
    with compiles_seen() as compiled:
        state, run = run_group(group, state, toy, 4, strategy=strategy)
        state, _ = run_group(group, jax.device_get(state), toy, strategy=strategy)
    assert [chunk.compiles for chunk in run.chunks] == [0]
    assert jax.device_get(state.step).tolist() == [6, 6] and compiled == []


def test_program_memory_sees_the_programs_called_inside_it():
    double = CompiledProgram(jax.jit(lambda x: 2 * x))
    with program_memory() as outer:
        with program_memory() as inner:
            double(jnp.zeros(256))
        double(jnp.zeros(1024))
    with program_memory() as after:
        pass
    assert 2 * 256 * 4 <= inner.largest < outer.largest and np.isnan(after.largest)


def test_compiled_programs_stay_compiled_up_to_a_bound_the_least_recently_used_dropped(
    monkeypatch,
):
    """A session sweeping many models kept every executable it ever compiled: now each
    program keeps `SIGNATURES_KEPT` argument signatures, the engine `LIFTED_KEPT` lifted
    programs and `init_group` `INIT_PROGRAMS_KEPT` signatures; a hit compiles nothing."""
    monkeypatch.setattr(_strategy, "SIGNATURES_KEPT", 2)
    double = CompiledProgram(jax.jit(lambda x: 2 * x))

    def compiles(n: int) -> int:
        before = compile_totals()[1]
        assert double(jnp.ones(n)).tolist() == [2.0] * n
        return compile_totals()[1] - before

    # 1 used after 2, so 3 drops 2; 2 then drops 3 (used before 1)
    assert [compiles(n) for n in (1, 2, 1, 3, 1, 2, 1)] == [1, 1, 0, 1, 0, 1, 0]
    assert [signature[1][0][0] for signature in double.compiled] == [(2,), (1,)]  # by use

    monkeypatch.setattr(_strategy, "LIFTED_KEPT", 2)
    monkeypatch.setattr(_strategy, "_LIFTED", collections.OrderedDict())
    executor = Executor("vmap", 1, jax.devices()[:1])
    made = []

    def make(factor: float) -> CellFn:
        made.append(factor)
        return lambda state, arrays: state * factor

    for factor in (2.0, 3.0, 2.0, 5.0, 2.0, 3.0):
        out = executor.run(
            ("scale", factor), lambda f=factor: make(f), jnp.ones(1), None, donate=False
        )
        assert out.tolist() == [factor]
    assert made == [2.0, 3.0, 5.0, 3.0] and len(_strategy._LIFTED) == 2
    for init in (_state._vmapped_init, _state._init_fn, _state._cheap_init_fn):
        assert init.cache_info().maxsize == INIT_PROGRAMS_KEPT


def test_a_grid_of_many_groups_run_again_finds_every_init_program_still_compiled():
    """The init programs were an LRU of 16: a grid of 17+ groups run again in a session
    (a notebook re-run, a sweep's second pass) found each group's program dropped by the
    groups after it, and compiled all of them again (20 tiny groups: 0.2 s -> 57 s)."""
    signatures = [
        group.signature()
        for group in plan_groups([Cell(Tiny(width=w), "toy", HParams()) for w in range(1, 101)])
    ]
    for signature in signatures:  # the grid's first run
        _state._cheap_init_fn(signature, (4,), "threefry2x32")
    before = _state._cheap_init_fn.cache_info()
    for signature in signatures:  # run again: every program is still there
        _state._cheap_init_fn(signature, (4,), "threefry2x32")
    after = _state._cheap_init_fn.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (100, 0)
