"""Configs and grouping: which cells share a compiled step, and clear errors."""

import dataclasses
import re

import flax.linen as nn
import jax
import numpy as np
import pytest

import phosjax as px
import phosjax.train
from phosjax.bench import BenchConfig, BenchError
from phosjax.train import (
    Cell,
    Group,
    HParams,
    Regularizer,
    init_group,
    plan_groups,
    process_share,
    run_group,
    train_grid,
)
from tests.compiles import compiles_seen
from tests.train.tiny import Builds, Tiny, toy_data


def test_cells_differing_only_in_per_cell_values_share_a_group():
    reg = Regularizer("**/kernel", "l2", 1e-4)
    base = HParams(regularizers=(reg,), knobs={"**/T": 1.0})
    variants = [
        base,
        HParams(
            learning_rate=0.1,
            weight_decay=0.01,
            momentum=0.5,
            label_smoothing=0.1,
            regularizers=(Regularizer("**/kernel", "l2", 0.5, threshold=0.5),),  # morph-only
            knobs={"**/T": 3.0},
        ),
    ]
    cells = [Cell(Tiny(), "toy", hp, seed) for hp in variants for seed in (0, 1)]
    cells.append(Cell(Tiny(), "toy", HParams(batch_size=32)))  # other shapes
    cells.append(Cell(Tiny(width=4), "toy", base))  # other model
    cells.append(Cell(Tiny(), "toy", HParams(optimizer="sgd")))  # other family
    cells.append(Cell(Tiny(), "toy", HParams(lr_schedule="cosine")))  # other schedule
    cells.append(Cell(Tiny(), "toy", HParams(warmup_steps=10)))  # other warmup
    cells.append(Cell(Tiny(), "toy", HParams(regularizers=(Regularizer("**/bias"),))))
    groups = plan_groups(cells)
    assert [g.index for g in groups] == [(0, 1, 2, 3), (4,), (5,), (6,), (7,), (8,), (9,)]
    values = groups[0].values()
    np.testing.assert_allclose(values["learning_rate"], [1e-3, 1e-3, 0.1, 0.1])
    np.testing.assert_allclose(values["regularizer_strength"], [[1e-4], [1e-4], [0.5], [0.5]])
    np.testing.assert_allclose(values["knob_value"], [[1.0], [1.0], [3.0], [3.0]])
    assert groups[0].hparams.learning_rate == 0.0  # shared part only


@pytest.mark.parametrize(
    ("make", "start", "nearest"),
    [
        (lambda: HParams(optimizer="adamw "), "HParams optimizer 'adamw '", "'adamw' or 'adam'"),
        (lambda: HParams(lr_schedule="cosin"), "HParams lr_schedule 'cosin'", "'cosine'"),
        (
            lambda: Regularizer("**", on="activation"),
            "Regularizer on 'activation'",
            "'activations'",
        ),
        (lambda: Regularizer("**", "morf"), "Regularizer kind 'morf'", "'morph'"),
        (lambda: Regularizer("**", cost="flop"), "Regularizer cost 'flop'", "'flops'"),
    ],
)
def test_a_misspelt_choice_names_the_nearest(make, start, nearest):
    # it said only 'expected one of (...)', the right spelling left to find there
    message = rf"^{re.escape(start)}: expected one of \(.*\)\. Did you mean {nearest}\?$"
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"optimizer 'adamm'.*expected one of"):
        HParams(optimizer="adamm")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        HParams(batch_size=0)
    with pytest.raises(ValueError, match="kind 'l3'"):
        Regularizer("**", "l3")
    with pytest.raises(ValueError, match=r"Regularizer strength must be >= 0, got -1"):
        Regularizer("**", "l2", -1)
    with pytest.raises(ValueError, match=r"Regularizer strength must be a number, got nan"):
        Regularizer("**", "l1", float("nan"))
    with pytest.raises(ValueError, match=r"Regularizer strength must be a finite number, got inf"):
        Regularizer("**", "l1", float("inf"))
    with pytest.raises(ValueError, match=r"Regularizer threshold must be a finite number"):
        Regularizer("**", "l1", threshold=float("inf"))
    with pytest.raises(ValueError, match=r"Regularizer cost 'nonsense': expected one of"):
        Regularizer("**", "l2", cost="nonsense")  # ignored by l2, still checked
    with pytest.raises(ValueError, match=r"Regularizer source 'nonsense': expected one of"):
        Regularizer("**", "l1", source="nonsense")
    with pytest.raises(ValueError, match=r"Regularizer selector: .*'\[abc' has an unclosed"):
        Regularizer("[abc")
    with pytest.raises(
        ValueError,
        match=r"Cell model must be a config with a .build\(\) method, "
        r"got 'mlp' \(str\); e.g. phosjax.models.ModelConfig\('mlp'",
    ):
        Cell("mlp", "toy")
    with pytest.raises(ValueError, match=r"Cell hparams must be an HParams, got \{'steps': 3\}"):
        Cell(Tiny(), "toy", {"steps": 3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Cell dataset must be a data set's name, got 3"):
        Cell(Tiny(), 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Cell seed must be an int, got 1.5 \(float\)"):
        Cell(Tiny(), "toy", seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Cell seed must be an int, got True \(bool\)"):
        Cell(Tiny(), "toy", seed=True)
    for seed in (2**63, 2**64, -(2**63) - 1):
        where = r"\[-2\*\*63, 2\*\*63\) \(int64, the seeds jax.random.key takes\)"
        with pytest.raises(ValueError, match=rf"Cell seed must lie in {where}, got {seed}\."):
            Cell(Tiny(), "toy", seed=seed)
    for seed in (2**63 - 1, -(2**63), np.uint64(2**63 - 1)):  # jax.random.key's extremes
        jax.random.key(Cell(Tiny(), "toy", seed=seed).seed)
    with pytest.raises(TypeError, match=r"cells\[1\] is a str, not a Cell"):
        plan_groups([Cell(Tiny(), "toy"), "mlp"])
    one = r"cells must be a list \(or tuple\) of Cells, got one Cell; pass \[cell\]"
    with pytest.raises(TypeError, match=rf"plan_groups: {one}"):
        plan_groups(Cell(Tiny(), "toy"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"train_grid: {one}"):
        train_grid(Cell(Tiny(), "toy"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"train_grid: cells .*, got a generator; e.g. list\(ce"):
        train_grid(Cell(Tiny(), "toy", seed=seed) for seed in range(2))  # type: ignore[arg-type]
    with pytest.raises(
        TypeError,
        match=r"train_grid: datasets must map data set names to data sets, .*, got a list: "
        r"key each by its name, \{data.name: data for data in datasets\}",
    ):
        train_grid([Cell(Tiny(), "toy")], datasets=[toy_data()])  # type: ignore[arg-type]
    # a pair of arrays was refused as init_group's data, after the planning
    with pytest.raises(
        TypeError,
        match=r"train_grid: datasets\['toy'\] must be a data set, a phosjax.data.ArrayDataset "
        r"\(from arrays: ArrayDataset\('toy', x_train, .*got a tuple, which has no name, ",
    ):
        train_grid([Cell(Tiny(), "toy")], datasets={"toy": (np.zeros((4, 8)), np.zeros(4))})
    same_key = r"cells 0 and 2 have seeds 1 and 4294967297, which make the same jax.random.key"
    collide = [
        Cell(Tiny(), "toy", seed=1),
        Cell(Tiny(), "toy", seed=2),
        Cell(Tiny(), "toy", seed=2**32 + 1),
    ]
    with pytest.raises(ValueError, match=rf"plan_groups: {same_key}"):
        plan_groups(collide)
    with pytest.raises(ValueError, match=rf"train_grid: {same_key} .*use seeds in \[0, 2\*\*32\)"):
        train_grid(collide, datasets={"toy": toy_data()}, strategy="vmap", process=(1, 2))
    a, b = Cell(Tiny(), "toy"), Cell(Tiny(), "other")
    with pytest.raises(ValueError, match="share one signature"):
        Group((a, b), (0, 1))
    with pytest.raises(ValueError, match=r"unknown strategy 'fast'; expected 'auto' or \('vmap'"):
        run_group(plan_groups([a])[0], None, None, strategy="fast")
    with pytest.raises(TypeError, match=r"run_group: state must be the GroupState .* got NoneType"):
        run_group(plan_groups([a])[0], None, None)
    with pytest.raises(ValueError, match=r"train_grid: unknown strategy 'fast'"):
        train_grid([a], strategy="fast")  # refused before the unknown data set 'toy' loads
    # a misspelt one said only 'expected ...', the right spelling left to find there
    with pytest.raises(ValueError, match=r"'vmpa'; .*\)\. Did you mean 'vmap'\?$"):
        train_grid([a], strategy="vmpa")
    with pytest.raises(ValueError, match=r"index 2 is not in range\(count=2\)"):
        process_share(5, 2, 2)


def test_a_group_of_cells_with_other_signatures_names_what_differs():
    # it said only 'got 2' signatures, leaving the user to find the field that differs
    hp = HParams(batch_size=16, steps=4)
    a, b = Cell(Tiny(), "toy", hp), Cell(Tiny(), "toy", dataclasses.replace(hp, optimizer="sgd"))
    with pytest.raises(ValueError, match=r"cells 0 and 2 differ in hparams optimizer \('adam' an"):
        Group((a, Cell(Tiny(), "toy", hp, seed=1), b), (0, 1, 2))
    with pytest.raises(ValueError, match=r"differ in dataset \('toy' and 'other'\)\. plan_groups"):
        Group((a, Cell(Tiny(), "other", hp)), (0, 1))


def test_a_groups_repr_names_what_its_cells_share_however_many_they_are():
    model = px.ModelConfig("mlp", 3, (8,))
    cells = [Cell(model, "toy", HParams(learning_rate=0.1 * (s + 1)), seed=s) for s in range(64)]
    (group,) = plan_groups(cells)
    assert repr(group) == (
        "Group(64 cells at (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, …: "
        "ModelConfig(name='mlp', num_classes=3, input_shape=(8,), depth=None, width=None, "
        "options=()) on 'toy')"
    )


def test_a_groups_program_signature_is_made_once_and_leaves_out_steps_and_eval_every():
    # it was a method, remade (an HParams check, about 0.2 ms) 8 times in each bench group
    model = px.ModelConfig("mlp", 3, (8,))
    (group,) = plan_groups([Cell(model, "toy", HParams(steps=90, eval_every=10))])
    signature = group.program_signature
    assert signature is group.program_signature
    assert signature == (model, "toy", HParams(steps=1, eval_every=0).shared())


def test_a_group_checks_its_cells_as_plan_groups_does():
    # it raised AttributeError: 'str' object has no attribute 'signature'
    with pytest.raises(TypeError, match=r"^Group: cells\[1\] is a str, not a Cell\.$"):
        Group((Cell(Tiny(), "toy"), "mlp"), (0, 1))  # type: ignore[arg-type]
    # its own copy of these checks raised "object of type 'Cell' has no len()", and took
    # seeds that make one key: it trained one model twice
    with pytest.raises(TypeError, match=r"^Group: cells must be a list .* got one Cell; pass"):
        Group(Cell(Tiny(), "toy"), (0,))  # type: ignore[arg-type]
    collide = (Cell(Tiny(), "toy", seed=1), Cell(Tiny(), "toy", seed=2**32 + 1))
    with pytest.raises(ValueError, match=r"^Group: cells 0 and 1 have seeds 1 and 4294967297"):
        Group(collide, (0, 1))
    big = (Cell(Tiny(), "toy", seed=2**32 + 2), Cell(Tiny(), "toy", seed=1))
    jax.eval_shape(lambda: Group(big, (0, 1)).index)  # under a trace: np.asarray of a tracer
    with pytest.raises(ValueError, match=r"^Group: cells 0 and 1 have seeds 1 and 4294967297"):
        jax.eval_shape(lambda: Group(collide, (0, 1)).index)
    group = Group([Cell(Tiny(), "toy")], [0])  # held as tuples: hashable, as plan_groups'
    assert group.cells == (Cell(Tiny(), "toy"),) and hash(group) == hash(
        Group(group.cells, group.index)
    )


@pytest.mark.parametrize(
    "index, message",
    [
        ((0, 0), r"index \(0, 0\) gives position 0 to cells 0 and 1; give each cell its own"),
        ((0, "1"), r"index\[1\] must be an int, got '1' \(str\)"),
        ((-1, 0), r"index\[0\] must be >= 0, got -1\."),
    ],
)
def test_a_group_index_of_no_distinct_positions_is_refused_naming_the_entry(index, message):
    """(0, 0) was taken: the results named two cells 0."""
    cells = (Cell(Tiny(), "toy", seed=0), Cell(Tiny(), "toy", seed=1))
    with pytest.raises(ValueError, match=rf"^Group: {message}"):
        Group(cells, index)
    assert Group(cells, np.arange(2)).index == (0, 1)  # numpy ints: plain ints
    for index in (None, "01", (i for i in range(2))):  # len() raised on None, bare
        with pytest.raises(TypeError, match=r"^Group: index must be a sequence of ints, each"):
            Group(cells, index)


def test_a_group_of_one_cell_twice_is_refused_as_plan_groups_refuses_it():
    # it trained the same model twice
    with pytest.raises(ValueError, match=r"^Group: cells 0 and 1 are the same cell, so they"):
        Group((Cell(Tiny(), "toy"), Cell(Tiny(), "toy")), (0, 1))


@pytest.mark.parametrize(
    "process, message",
    [
        ((2, 2), r"process=\(2, 2\): process_share: index 2 is not in range\(count=2\)\.$"),
        ((0, 2.0), r"process=\(0, 2.0\): process_share: count must be an int, got 2.0 \(float\)"),
        ((True, 2), r"process=\(True, 2\): process_share: index must be an int, got True \(bool"),
        ((0, 0), r"process=\(0, 0\): process_share: count must be >= 1, got 0\.$"),
        ((0, 2, 3), r"process must be an \(index, count\) pair, e.g. \(1, 2\) .* got \(0, 2, 3\)$"),
        (1, r"process must be an \(index, count\) pair, e.g. \(1, 2\) for the second .* got 1$"),
    ],
)
def test_a_wrong_process_is_refused_by_name_before_anything_trains(process, message):
    """Each once failed in Python's own words (a float: "'float' object cannot be
    interpreted as an integer"; a triple: "process_share() takes from 1 to 3 positional
    arguments but 4 were given"), or, for ``True``, trained process 1's share."""
    cells = [Cell(Tiny(), "toy", seed=seed) for seed in range(3)]
    with pytest.raises(ValueError, match=rf"^train_grid: {message}"):
        train_grid(cells, datasets={"toy": toy_data()}, strategy="vmap", process=process)


@pytest.mark.parametrize("name", ["steps", "batch_size", "eval_every", "warmup_steps"])
def test_an_int_hparam_beyond_int32_is_refused_by_name_value_and_range(name):
    """The engine holds steps and batch indices in int32 on device: 2**31 would wrap."""
    with pytest.raises(
        ValueError, match=rf"HParams {name} must lie in \[\d, 2147483647\] .*got 2147483648\."
    ):
        HParams(**{name: np.int64(2**31)})
    top = HParams(**{"steps": 2**31 - 1, name: 2**31 - 1})
    assert getattr(top, name) == 2**31 - 1


@pytest.mark.parametrize(("first", "second"), [("T", "**/T"), ("**/T", "T")])
def test_two_knob_selectors_matching_one_knob_are_refused_as_set_knobs_refuses_them(
    toy, first, second
):
    """The later silently won: {"T": 5, "**/T": 2} trained at T=2."""
    hp = HParams(batch_size=16, steps=1, knobs={first: 5.0, second: 2.0})
    assert [s for s, _ in hp.knobs] == [first, second]  # kept in the order given
    cells = [Cell(Tiny(rich=True), "toy", hp, seed) for seed in (3, 4)]
    [group] = plan_groups([Cell(Tiny(), "toy", hp), *cells])[1:]
    both = rf"Selectors {re.escape(repr(first))} and {re.escape(repr(second))} both match knob 'T'"
    with pytest.raises(
        ValueError, match=rf"^init_group: cell 1 \(HParams knobs of model .*\): {both}"
    ):
        init_group(group, toy)
    with pytest.raises(ValueError, match=both):  # the very check set_knobs makes
        px.set_knobs({"knobs": {"T": 1.0}}, dict(hp.knobs))


class _TwoKnobs(nn.Module):
    """No params: the first features scaled by knob 'a', shifted by knob 'b'."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return x[:, :3] * px.knob(self, "a", 1.0) + px.knob(self, "b", 0.0)


def test_cells_giving_knobs_in_other_orders_share_a_group_and_keep_their_values(toy):
    """{"a": 1, "b": 2} and {"b": 4, "a": 3} made two groups: two compiles, one program."""
    given = [{"a": 1.0, "b": 2.0}, {"b": 4.0, "a": 3.0}]
    cells = [
        Cell(Builds(_TwoKnobs()), "toy", HParams(batch_size=16, steps=1, knobs=knobs), seed)
        for seed, knobs in enumerate(given)
    ]
    [group] = plan_groups(cells)
    assert [[s for s, _ in cell.hparams.knobs] for cell in group.cells] == [["a", "b"], ["b", "a"]]
    np.testing.assert_array_equal(group.values()["knob_value"], [[1.0, 2.0], [3.0, 4.0]])
    knobs = init_group(group, toy).collections["knobs"]
    np.testing.assert_array_equal(knobs["a"], [1.0, 3.0])
    np.testing.assert_array_equal(knobs["b"], [2.0, 4.0])
    hp = HParams(batch_size=16, steps=1, knobs={"a": 3.0, "b": 4.0})
    twice = Cell(Builds(_TwoKnobs()), "toy", hp, 1)  # cell 1, its knobs in another order
    with pytest.raises(ValueError, match=r"^plan_groups: cells 1 and 2 are the same cell"):
        plan_groups([*cells, twice])


def test_a_repeated_knob_selector_is_refused_naming_it_and_its_values():
    """It overrode the earlier one: (("T", 5), ("T", 7)) trained at T=7."""
    with pytest.raises(
        ValueError,
        match=r"^HParams knobs: selector 'T' is given twice \(5.0 and 7.0\); give each knob one",
    ):
        HParams(knobs=(("T", 5.0), ("**/T", 2.0), ("T", 7.0)))


@dataclasses.dataclass  # not frozen: unhashable
class _MutableConfig:
    def build(self) -> object:
        return Tiny().build()


def test_an_unhashable_model_config_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"Cell model must be hashable.*_MutableConfig.*frozen"):
        Cell(_MutableConfig(), "toy")


def test_public_names():
    assert phosjax.train.__all__ == [
        "COMPUTE_DTYPES",
        "LR_SCHEDULES",
        "MATMUL_STRATEGIES",
        "OPTIMIZERS",
        "RECORDED_SETTINGS",
        "STRATEGIES",
        "Cell",
        "Chunk",
        "GridResult",
        "Group",
        "GroupRun",
        "GroupState",
        "HParams",
        "Regularizer",
        "conv_as_matmul",
        "convs_as_matmuls",
        "device_arrays",
        "has_convs",
        "init_group",
        "lr_multiplier",
        "make_optimizer",
        "make_train_step",
        "measure_strategies",
        "plan_groups",
        "precision_apply",
        "process_share",
        "rewrite_before_grad",
        "run_group",
        "train_grid",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 4.0, r"HParams steps must be an int, got 4.0 \(float\)"),
        ("steps", 4.5, r"HParams steps must be an int, got 4.5 \(float\)"),
        ("batch_size", 16.0, r"HParams batch_size must be an int, got 16.0 \(float\)"),
        ("eval_every", 2.0, r"HParams eval_every must be an int, got 2.0 \(float\)"),
        ("steps", True, r"HParams steps must be an int, got True \(bool\)"),
        ("eval_every", -1, r"HParams eval_every must be >= 0, got -1"),
    ],
)
def test_counts_must_be_ints(field, value, message):
    with pytest.raises(ValueError, match=message):
        HParams(**{field: value})


def test_numpy_int_counts_become_plain_ints():
    hp = HParams(batch_size=np.int32(16), steps=np.int64(4), eval_every=np.uint8(2))
    assert [type(v) for v in (hp.batch_size, hp.steps, hp.eval_every)] == [int] * 3
    assert hp == HParams(batch_size=16, steps=4, eval_every=2)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"chunk_steps": 2.0}, r"run_group: chunk_steps must be an int, got 2.0 \(float\)"),
        ({"chunk_steps": 0}, r"run_group: chunk_steps must be >= 1, got 0"),
        ({"until_step": 2.0}, r"run_group: until_step must be an int, got 2.0 \(float\)"),
    ],
)
def test_run_group_refuses_non_int_counts_before_reading_the_state(option, message):
    [group] = plan_groups([Cell(Tiny(), "toy")])
    with pytest.raises(ValueError, match=message):
        run_group(group, None, None, strategy="vmap", **option)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"grad_clip": 0.0}, r"grad_clip must be > 0 \(a global norm\) or None.*got 0.0"),
        ({"grad_clip": -1.0}, r"grad_clip must be > 0 .*got -1.0"),
        ({"grad_clip": float("nan")}, r"grad_clip must be a number, got nan \(float\)"),
        ({"grad_clip": True}, r"grad_clip must be a number, got True \(bool\)"),
        ({"learning_rate": -5.0}, r"learning_rate must be >= 0, got -5.0"),
        ({"learning_rate": "x"}, r"learning_rate must be a number, got 'x' \(str\)"),
        ({"learning_rate": float("nan")}, r"learning_rate must be a number, got nan"),
        ({"learning_rate": float("inf")}, r"learning_rate must be a finite number, got inf"),
        ({"weight_decay": float("inf")}, r"weight_decay must be a finite number, got inf"),
        ({"grad_clip": float("inf")}, r"grad_clip must be a finite number, got inf"),
        ({"knobs": {"**/T": -float("inf")}}, r"knob '\*\*/T' must be a finite number, got -inf"),
        ({"knobs": {"**/T": "hot"}}, r"HParams knob '\*\*/T' must be a number, got 'hot'"),
        ({"knobs": {"a/[b": 1.0}}, r"HParams knobs: Selector segment '\[b' has an unclosed"),
        ({"regularizers": ("**/kernel",)}, r"regularizers\[0\] must be a Regularizer, got '"),
        (
            {"regularizers": Regularizer("**/kernel")},
            r"regularizers must be a tuple .*Regularizer\)",
        ),
        ({"regularizers": {"selector": "**/kernel"}}, r"regularizers must be a tuple .*\(dict\)"),
        ({"knobs": ("**/T", 2.0)}, r"knobs: each item must be a \(selector, value\) pair, got '"),
        ({"knobs": [("**/T", 2.0, 1)]}, r"knobs: each item must be a \(selector, value\) pair"),
        ({"knobs": "**/T"}, r"HParams knobs must be a tuple \(or list\), got '\*\*/T' \(str\)"),
        ({"label_smoothing": 3.0}, r"label_smoothing must lie in \[0, 1\].*got 3.0"),
        ({"label_smoothing": -0.1}, r"label_smoothing must lie in \[0, 1\].*got -0.1"),
        ({"weight_decay": -1e-4}, r"weight_decay must be >= 0 \(0: none\), got -0.0001"),
        ({"momentum": 1.5}, r"momentum must lie in \[0, 1\], got 1.5"),
        ({"lr_schedule": "cos"}, r"lr_schedule 'cos': expected one of \('constant', 'cosine'"),
        ({"warmup_steps": -1}, r"HParams warmup_steps must be >= 0, got -1"),
        ({"warmup_steps": 1.5}, r"HParams warmup_steps must be an int, got 1.5 \(float\)"),
        (
            {"warmup_steps": 200, "steps": 100},
            r"warmup_steps 200 is more than steps 100: warm up over at most 100 steps",
        ),
    ],
)
def test_values_out_of_range_are_refused(option, message):
    with pytest.raises(ValueError, match=message):
        HParams(**option)
    HParams(grad_clip=1.0, label_smoothing=1.0, weight_decay=0.0, momentum=0.0)  # bounds: fine


@pytest.mark.parametrize("name", ["mlp", "cnn1d"])
def test_init_programs_compiled_cheaply_give_the_states_xla_defaults_give(name):
    """`init_group`'s program runs once, so on CPU it is compiled at -O1, not XLA's -O3."""
    from phosjax._compile import run_once_compiler_options
    from phosjax.models import ModelConfig
    from phosjax.train import Cell, HParams, plan_groups
    from phosjax.train._state import _init_values, _root_keys, _vmapped_init

    model = ModelConfig(name, 10, (40,), depth=1, width=8)  # cnn1d's default 3 layers: 2x slower
    hp = HParams(batch_size=4, steps=1)
    [group] = plan_groups([Cell(model, "toy", hp, seed) for seed in range(3)])
    init = _vmapped_init(group.program_signature, (40,), "threefry2x32")
    inputs = (_root_keys(group), _init_values(group))
    cheap = run_once_compiler_options("cpu", "")
    xla_default = {"xla_backend_optimization_level": 3}  # the tests' XLA_FLAGS set 0
    got = jax.jit(init, compiler_options=cheap)(*inputs)
    wanted = jax.jit(init, compiler_options=xla_default)(*inputs)
    for leaf, want in zip(jax.tree.leaves(got), jax.tree.leaves(wanted), strict=True):
        np.testing.assert_array_equal(leaf, want)  # bitwise, not just close


def test_train_grid_loads_a_data_set_with_its_dataset_features_and_splits(monkeypatch):
    import phosjax.data

    loaded = []

    def load(name, *, data_dir=None, features=None, splits=None):
        loaded.append((name, features, splits))
        raise RuntimeError("loaded")  # stops before anything trains

    monkeypatch.setattr(phosjax.data, "load", load)
    cells = [Cell(Tiny(), "toy"), Cell(Tiny(), "other")]
    with pytest.raises(RuntimeError, match="loaded"):
        train_grid(
            cells,
            dataset_features={"toy": ["pixels", "digit"]},
            dataset_splits={"toy": ["train[:90%]", "train[90%:]"]},
        )
    assert loaded == [("toy", ("pixels", "digit"), ("train[:90%]", "train[90%:]"))]


def test_train_grid_names_its_dataset_splits_for_a_data_set_without_a_test_split(monkeypatch):
    import phosjax.data
    from phosjax.data._splits import MissingSplitsError

    def load(name, **kwargs):
        raise MissingSplitsError(name, ["train", "val"])

    monkeypatch.setattr(phosjax.data, "load", load)
    with pytest.raises(ValueError) as error:  # said 'pass splits=(train, test)', load's argument
        train_grid([Cell(Tiny(), "toy")])
    assert str(error.value) == (
        "train_grid: data set 'toy' has splits ['train', 'val']; it trains on 'train' and tests "
        "on 'test' (else 'validation') unless dataset_splits names the two, e.g. "
        "dataset_splits={'toy': ('train', 'val')}"
    )


def test_train_grid_names_its_dataset_features_for_a_data_set_without_image_and_label(
    monkeypatch,
):
    import tensorflow_datasets as tfds

    import phosjax.data
    from phosjax.data import MissingFeaturesError

    known = tfds.features.FeaturesDict({"x": np.float32, "y": np.int64})

    def load(name, **kwargs):
        raise MissingFeaturesError(name, "image", known)

    monkeypatch.setattr(phosjax.data, "load", load)
    with pytest.raises(ValueError) as error:  # said 'e.g. features=(...)', load's argument
        train_grid([Cell(Tiny(), "toy")])
    assert str(error.value) == (
        "train_grid: data set 'toy' has no feature 'image' (features: ['x', 'y']); it reads its "
        "supervised_keys, else 'image' and 'label', unless dataset_features names the input and "
        "the label, e.g. dataset_features={'toy': ('x', 'y')}"
    )


def _missing_splits(name):
    from phosjax.data import MissingSplitsError

    return MissingSplitsError(name, ["train", "val"])


def _missing_features(name):
    import tensorflow_datasets as tfds

    from phosjax.data import MissingFeaturesError

    return MissingFeaturesError(name, "image", tfds.features.FeaturesDict({"x": np.float32}))


def _split_in_name(name):
    from phosjax.data import SplitInNameError

    return SplitInNameError(name, len(name))


def _splits_refused(name):
    from phosjax.data import SplitsError

    return SplitsError(name, ("train", "train"), " reads 'train' twice")


@pytest.mark.parametrize(
    "made", [_missing_splits, _missing_features, _split_in_name, _splits_refused]
)
def test_train_grid_keeps_the_type_of_the_data_set_error_it_rewords(monkeypatch, made):
    """phosjax.data's typed errors (data.md names them) reach a caller of train_grid as
    themselves, told with its arguments: `except MissingSplitsError` catches them there too."""
    import phosjax.data

    def load(name, **kwargs):
        raise made(name)

    monkeypatch.setattr(phosjax.data, "load", load)
    with pytest.raises(ValueError) as error:
        train_grid([Cell(Tiny(), "toy")])
    assert type(error.value) is type(made("toy"))
    assert str(error.value).startswith("train_grid: ")
    assert "dataset_" in str(error.value)  # dataset_splits or dataset_features, not load's


def test_train_grid_names_its_dataset_splits_for_a_data_set_name_with_a_split():
    with pytest.raises(ValueError) as error:  # said 'load takes ... splits=(train, test)'
        train_grid([Cell(Tiny(), "digits[:10%]")])
    assert str(error.value) == (
        "train_grid: a cell's data set 'digits[:10%]' names a split ('[:10%]'); give the cells "
        "the data set's name alone ('digits') and the splits to train and test on in "
        "dataset_splits, e.g. dataset_splits={'digits': ('train[:10%]', 'test')}"
    )


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        (
            ["train", "tset"],
            "train_grid: data set 'digits' has no split 'tset' (dataset_splits={'digits': "
            "('train', 'tset')} names it; its splits: ['test', 'train']). Did you mean 'test'?",
        ),
        (  # was dataset_splits['digits']: [...], its other hints dataset_splits={...}
            ["train[:60%]", "train[50%:]"],
            "train_grid: data set 'digits': dataset_splits={'digits': ('train[:60%]', "
            "'train[50%:]')} reads the examples train[718:862] both to train and to test; name "
            "disjoint parts, e.g. dataset_splits={'digits': ('train[:90%]', 'train[90%:]')}",
        ),
    ],
    ids=["no_such_split", "overlapping"],
)
def test_train_grid_names_its_dataset_splits_entry_that_load_refuses(tmp_path, splits, message):
    with pytest.raises(ValueError) as error:  # said 'splits=(...)', load's argument
        train_grid(
            [Cell(Tiny(), "digits")],
            datasets={"toy": None},
            data_dir=str(tmp_path),
            dataset_splits={"digits": splits},
        )
    assert str(error.value) == message  # given datasets=, it blamed the name: 'not one of those'
    assert not list(tmp_path.iterdir())  # nothing prepared


@pytest.mark.parametrize(
    ("features", "given", "match"),
    [
        (
            {"tyo": ["x", "y"]},
            {},
            r"dataset_features names 'tyo', which is not among the cells' "
            r"datasets \('toy'\); did you mean 'toy'\?",
        ),
        ({"toy": ["x"]}, {}, r"dataset_features\['toy'\]: features must name the input"),
        ({"toy": ["x", "y"]}, {"toy": None}, r"names 'toy', which datasets= gives as arrays"),
        (["toy"], {}, r"dataset_features must map data set names to \(input, label\)"),
    ],
)
def test_train_grid_refuses_dataset_features_naming_what_is_wrong(features, given, match):
    with pytest.raises(ValueError, match=match):
        train_grid([Cell(Tiny(), "toy")], datasets=given, dataset_features=features)


@pytest.mark.parametrize(
    ("splits", "match"),
    [
        ({"tyo": ["a", "b"]}, r"^train_grid: dataset_splits names 'tyo', which is not among"),
        ({"toy": "train"}, r"^train_grid: dataset_splits\['toy'\]: splits must name the split"),
        (["toy"], r"^train_grid: dataset_splits must map data set names to \(train, test\)"),
    ],
)
def test_train_grid_refuses_dataset_splits_naming_what_is_wrong(splits, match):
    with pytest.raises(ValueError, match=match):
        train_grid([Cell(Tiny(), "toy")], dataset_splits=splits)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_cells_differing_only_in_a_momentum_their_optimizer_ignores_are_refused(optimizer):
    cells = [
        Cell(Tiny(), "toy", HParams(optimizer=optimizer, momentum=m), seed)
        for m in (0.9, 0.5)
        for seed in (0, 1)
    ]
    message = (
        rf"plan_groups: cells 0 and 2 differ only in momentum \(0.9 and 0.5\), which "
        rf"optimizer '{optimizer}' ignores, so they would train the same model twice; a grid "
        r"over momentum needs optimizer='momentum'"
    )
    with pytest.raises(ValueError, match=message):
        plan_groups(cells)
    with pytest.raises(ValueError, match=message.replace("plan_groups", "train_grid")):
        train_grid(cells, datasets={"toy": toy_data()})
    momentum = [
        Cell(c.model, c.dataset, dataclasses.replace(c.hparams, optimizer="momentum"), c.seed)
        for c in cells
    ]
    assert [g.index for g in plan_groups(momentum)] == [(0, 1, 2, 3)]  # it uses them


@pytest.mark.parametrize(("kind", "groups"), [("l2", None), ("morph", [(0, 1), (2, 3)])])
def test_cells_differing_only_in_a_regularizer_field_its_kind_ignores_are_refused(kind, groups):
    fields = [{"cost": "params"}, {"cost": "flops", "threshold": 0.5}]
    cells = [
        Cell(Tiny(), "toy", HParams(regularizers=[Regularizer("**", kind, 1e-3, **f)]), seed)
        for f in fields
        for seed in (0, 1)
    ]
    if groups is not None:  # morph uses them: two groups of models
        assert [g.index for g in plan_groups(cells)] == groups
        return
    message = (
        r"^plan_groups: cells 0 and 2 differ only in regularizers\[0\]'s cost \('params' and "
        r"'flops'\), threshold \(0.01 and 0.5\), which kind 'l2' ignores, so they would train "
        r"the same model twice; cost, source and threshold apply to kind='morph' alone\.$"
    )
    with pytest.raises(ValueError, match=message):
        plan_groups(cells)


def test_cells_differing_in_several_ignored_fields_are_refused_naming_them_all():
    """It said they differ only in momentum, then, that one fixed, only in regularizers[0]."""
    cells = [
        Cell(Tiny(), "toy", HParams(momentum=m, regularizers=regularizers))
        for m, regularizers in [
            (0.9, [Regularizer("**", "l2"), Regularizer("**", "l1", threshold=0.5)]),
            (0.5, [Regularizer("**", "l2", cost="params"), Regularizer("**", "l1")]),
        ]
    ]
    message = (
        r"^Group: cells 0 and 1 differ only in momentum \(0.9 and 0.5\), which optimizer "
        r"'adam' ignores and in regularizers\[0\]'s cost \('flops' and 'params'\), which kind "
        r"'l2' ignores and in regularizers\[1\]'s threshold \(0.5 and 0.01\), which kind 'l1' "
        r"ignores, so they would train the same model twice; a grid over momentum needs "
        r"optimizer='momentum' \(SGD with momentum\); cost, source and threshold apply to "
        r"kind='morph' alone\.$"
    )
    with pytest.raises(ValueError, match=message):
        Group(tuple(cells), (0, 1))


@pytest.mark.parametrize(
    "given, shown",
    [
        ({"learning_rate": np.float32(0.1)}, r"learning_rate \(0.1 and 0.10000000149011612\)"),
        ({"knobs": {"**/T": 1 + 1e-12}}, r"knob '\*\*/T' \(1.0 and 1.000000000001\)"),
    ],
)
def test_cells_whose_values_are_one_float32_value_are_refused(given, shown):
    """np.float32(0.1) == 0.1, but the cells passed as two and trained one model twice."""
    hp = HParams(learning_rate=0.1, knobs={"**/T": 1.0})
    cells = [
        Cell(Tiny(), "toy", h, seed)
        for seed in (0, 1)
        for h in (hp, HParams(**{**vars(hp), **given}))
    ]
    message = (
        rf"^plan_groups: cells 0 and 1 differ only in {shown}, which float32 \(a group's dtype "
        r"for them\) rounds to one value, so they would train the same model twice; give "
        r"values that differ in float32\.$"
    )
    with pytest.raises(ValueError, match=message):
        plan_groups(cells)
    assert [g.index for g in plan_groups([cells[0], cells[3]])] == [(0, 1)]  # two seeds


def test_a_cell_given_twice_is_refused():
    # it trained the same model twice, though cells differing only in an unused momentum,
    # which would do the same, are refused
    cells = [Cell(Tiny(), "toy", HParams(optimizer=o), seed) for o in ("adam", "momentum")
             for seed in (0, 1)]  # fmt: skip
    for twice in (cells[1], cells[3]):
        with pytest.raises(ValueError, match=r"^plan_groups: cells \d and 4 are the same cell"):
            plan_groups([*cells, twice])


BEYOND_FLOAT32 = r"lies beyond float32's range"
FLOAT32_RANGE = r"a number between -3.40282e\+38 and 3.40282e\+38"


@pytest.mark.parametrize(
    "make, shown",
    [
        (lambda: HParams(learning_rate=1e39), r"HParams learning_rate 1e\+39"),
        (lambda: HParams(weight_decay="1e300"), r"HParams weight_decay 1e\+300"),
        (lambda: HParams(knobs={"**/T": -1e300}), r"HParams knob '\*\*/T' -1e\+300"),
        (lambda: Regularizer("**", "l1", 1e39), r"Regularizer strength 1e\+39"),
    ],
)
def test_a_value_beyond_float32_is_refused_where_it_is_given(make, shown):
    """A group holds per-cell values in float32: 1e39 trained as inf, silently."""
    message = rf"^{shown} {BEYOND_FLOAT32}, the dtype a group.*; give {FLOAT32_RANGE}\.$"
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "grid, shown",
    [
        ({"learning_rate": [1e-3, 1e39]}, r"grid\.learning_rate 1e\+39"),
        (
            {"regularizers": [{"kind": "l2", "strength": [0, 1e39]}]},
            r"grid\.regularizers: Regularizer strength 1e\+39",
        ),
    ],
)
def test_a_bench_grid_value_beyond_float32_is_refused_naming_its_key(grid, shown):
    """It passed the config and planning, then plan_groups raised a bare ValueError
    naming an internal cell index (``plan_groups: cell 1's learning_rate``)."""
    with pytest.raises(BenchError, match=rf"^{shown} {BEYOND_FLOAT32}"):
        BenchConfig.from_dict({"grid": grid})


class _HalfKnob(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return x[:, :3] * px.knob(self, "h", np.float16(1.0))


def test_a_value_within_float32_that_a_float16_knob_overflows_is_refused_by_init_group(toy):
    """float32's range is checked where the group is made; a knob's own narrower dtype only
    once init_group traces the model: 1e5 would be a float16 inf."""
    hp = HParams(batch_size=16, steps=1, knobs={"h": 1e5})
    [group] = plan_groups([Cell(Builds(_HalfKnob()), "toy", hp, 0)])
    message = r"^init_group: cell 0 sets knob 'h' \(float16\) to 100000.0, which it cannot hold; "
    with pytest.raises(ValueError, match=message + r"give it a number between -65504 and 65504"):
        init_group(group, toy)


def test_groups_differing_only_in_steps_and_eval_every_share_their_compiled_programs(toy):
    """A grid over ``steps`` compiled init, train and evaluation programs anew for every
    group (the same shapes, the learning rate constant): ~12 s each on a CPU. The second
    group now compiles nothing, trains as the first and records its own steps."""
    short, long = (
        plan_groups([Cell(Tiny(), "toy", HParams(batch_size=16, steps=steps, eval_every=every))])[0]
        for steps, every in ((2, 0), (4, 2))
    )
    _, first = run_group(short, init_group(short, toy), toy, strategy="vmap")
    with compiles_seen() as compiled:
        state, second = run_group(long, init_group(long, toy), toy, strategy="vmap")
    assert compiled == []
    np.testing.assert_array_equal(state.settings["steps"], [4])
    assert [c.steps.tolist() for c in second.chunks] == [[1, 2], [3, 4]]  # evaluated at 2
    losses = lambda run: np.concatenate([c.train["loss"][0] for c in run.chunks]).tolist()
    assert losses(second)[:2] == losses(first)


def test_train_grid_names_its_dataset_features_entry_naming_no_feature(tmp_path):
    """It said load's "features=('pixels', 'digits') names no feature of it", an argument
    train_grid does not take."""
    from phosjax.data import NoSuchFeatureError
    from tests.data import tfds_toys

    tfds_toys.prepare(tfds_toys.ToyNamedFeatures, tmp_path)
    with pytest.raises(NoSuchFeatureError) as error:  # its type kept: data.md names it
        train_grid(
            [Cell(Tiny(), "toy_named_features")],
            data_dir=str(tmp_path),
            dataset_features={"toy_named_features": ["pixels", "digits"]},
        )
    assert str(error.value) == (
        "train_grid: dataset_features['toy_named_features'] names 'digits', which data set "
        "'toy_named_features' lacks (its features: ['digit', 'pixels']); name its input and "
        "label feature there, e.g. dataset_features={'toy_named_features': ('pixels', 'digit')}. "
        "Did you mean 'digit'?"
    )
