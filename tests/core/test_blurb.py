"""Tests of `blurb`: exact structure, XLA FLOPs, latency, recorded info, JSON and table."""

import dataclasses
import json
from functools import partial
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.core import _blurb, injections, perturbations
from phosjax.core._blurb import (
    ArraySpec,
    Blurb,
    KnobValue,
    _raise_not_a_module,
    blurb,
    blurb_of_init,
)
from tests.compiles import compiles_seen

BATCH = 2


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2, name="dense_1")(nn.relu(nn.Dense(4, name="dense_0")(x)))


class TwoLevel(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(5, name="head")(Block(name="block")(x))


@pytest.fixture(scope="module")
def two_level() -> Blurb:
    x = jnp.ones((BATCH, 3))
    variables = TwoLevel().init(jax.random.key(0), x)
    return blurb(TwoLevel(), variables, x, repeats=2)


def test_params_per_path_are_exact(two_level):
    f32 = "float32"
    assert {p: m.params for p, m in two_level.modules().items()} == {
        "": 41,
        "block": 26,
        "block/dense_0": 16,
        "block/dense_1": 10,
        "head": 15,
    }
    assert two_level["block"].own_params == 0
    assert two_level["block"].variables == {}
    assert two_level["block/dense_0"].variables == {
        "params": {"kernel": ArraySpec((3, 4), f32), "bias": ArraySpec((4,), f32)}
    }
    assert two_level["head"].variables["params"]["kernel"] == ArraySpec((2, 5), f32)
    assert [c.path for c in two_level.root.children] == ["block", "head"]
    assert [c.path for c in two_level["block"].children] == ["block/dense_0", "block/dense_1"]
    assert (two_level.root.type, two_level["block"].type, two_level["head"].type) == (
        "TwoLevel",
        "Block",
        "Dense",
    )


def test_output_shapes(two_level):
    shapes = {p: {k: s.shape for k, s in m.outputs.items()} for p, m in two_level.modules().items()}
    assert shapes == {
        "": {"": (BATCH, 5)},
        "block": {"": (BATCH, 2)},
        "block/dense_0": {"": (BATCH, 4)},
        "block/dense_1": {"": (BATCH, 2)},
        "head": {"": (BATCH, 5)},
    }


@pytest.mark.parametrize(("path", "fan_in", "fan_out"), [("block/dense_0", 3, 4), ("head", 2, 5)])
def test_dense_flops_are_two_multiply_adds_plus_bias(two_level, path, fan_in, fan_out):
    matmul = 2 * BATCH * fan_in * fan_out
    assert matmul <= two_level[path].flops <= matmul + 2 * BATCH * fan_out


def test_whole_model_flops_cover_its_layers(two_level):
    layers = ["block/dense_0", "block/dense_1", "head"]
    assert two_level.root.flops >= sum(two_level[p].flops for p in layers)


def test_latency_is_measured_for_every_module(two_level):
    assert all(m.latency_s > 0 for m in two_level.modules().values())


def test_json_round_trip(two_level):
    text = two_level.to_json()
    assert Blurb.from_json(text) == two_level
    loaded = json.loads(text)
    assert loaded["root"]["children"][0]["children"][0]["variables"]["params"]["kernel"] == {
        "shape": [3, 4],
        "dtype": "float32",
    }


def test_repr_is_a_one_line_summary_not_every_field_of_every_module(two_level):
    """Each printed every field of every module below it (a REPL's or notebook's echo)."""
    root = dataclasses.replace(two_level.root, flops=12345.0)
    assert repr(dataclasses.replace(two_level, root=root)) == (
        f"Blurb(type 'TwoLevel' on {two_level.backend}: 41 params in 5 modules, 12,345 FLOPs; "
        "str() gives the table)"
    )
    assert repr(dataclasses.replace(two_level, root=dataclasses.replace(root, flops=None))) == (
        f"Blurb(type 'TwoLevel' on {two_level.backend}: 41 params in 5 modules; "
        "str() gives the table)"
    )
    assert repr(two_level["block"]) == (
        "ModuleBlurb('block', type 'Block': 26 params, 0 its own, 2 submodules)"
    )


def test_table_lists_every_path_within_120_columns(two_level):
    table = two_level.table()
    lines = table.splitlines()
    assert str(two_level) == table
    assert len(lines) == 1 + len(two_level.modules()) + 1  # header, modules, backend
    for path in ["block", "block/dense_0", "block/dense_1", "head"]:
        assert any(line.split()[0] == path for line in lines[2:])
    assert max(map(len, lines)) <= 120
    assert lines[1].split()[:3] == ["(top)", "TwoLevel", "41"]
    assert "    block/dense_0 " in table  # indented below its parent


def test_table_reads_a_value_rounding_up_to_the_next_unit_in_it(two_level):
    """999,999 FLOPs read '1e+03K' and 0.9996 ms '1e+03µs': rounded to 3 digits in the
    smaller unit, not moved to the next."""
    root = dataclasses.replace(two_level.root, flops=999_999.0, latency_s=0.0009996)
    row = Blurb(root, "cpu").table().splitlines()[1].split()
    assert row[4:6] == ["1M", "1ms"]
    root = dataclasses.replace(two_level.root, flops=999.6, latency_s=2e-7)
    assert Blurb(root, "cpu").table().splitlines()[1].split()[4:6] == ["1K", "0.2µs"]


def test_table_shows_a_bool_array_as_true_and_false(two_level):
    """A 2-member ensemble's bool knob and a bool note read '[1,1]' and '[1,0]'."""
    knob = _blurb.KnobValue([True, True], True, "")
    root = dataclasses.replace(two_level.root, knobs={"on": knob}, notes={"mask": [True, False]})
    assert "on=[True,True] mask=[True,False]" in Blurb(root, "cpu").table()


def test_table_shows_an_int_knob_whole(two_level):
    """An int knob of 1234 read 'steps=1.23e+03', the value 1230 in float notation."""
    knob = _blurb.KnobValue([1234, 5], 1234, "")
    root = dataclasses.replace(two_level.root, knobs={"steps": knob})
    assert "steps=[1234,5]" in Blurb(root, "cpu").table()


def test_table_shows_a_multiline_note_on_its_module_s_row(two_level):
    """A note 'Dense(\\n  features=3)' broke the row: '  features=3)' read as a module."""
    root = dataclasses.replace(two_level.root, notes={"cfg": "Dense(\n  features=3)"})
    summary = Blurb(root, "cpu")
    lines = summary.table().splitlines()
    assert lines[1].endswith("cfg=Dense( features=3)")
    assert len(lines) == 2 + len(summary.modules())  # the header, a row each, the backend


class Projections(nn.Module):
    """Sibling modules whose paths differ only past the table's module column."""

    @nn.compact
    def __call__(self, x):
        return sum(nn.Dense(2, name=f"{'long_name_' * 3}{i}")(x) for i in range(2))


def test_table_cuts_a_long_path_on_the_left_so_siblings_differ():
    """Cut on the right, both rows read '  long_name_long_name_long_nam…' alike."""
    x = jnp.ones((1, 3))
    table = blurb(Projections(), Projections().init(jax.random.key(0), x), x, flops=False,
                  measure_latency=False).table()  # fmt: skip
    rows = [line[:30] for line in table.splitlines()[2:4]]
    assert rows == ["  …_name_long_name_long_name_0", "  …_name_long_name_long_name_1"]


class Nest(nn.Module):
    """``depth`` modules, each inside the one before, around a Dense named ``leaf``."""

    depth: int

    @nn.compact
    def __call__(self, x):
        if not self.depth:
            return nn.Dense(2, name="leaf")(x)
        return Nest(self.depth - 1, name=f"n{self.depth}")(x)


def test_table_keeps_the_end_of_the_path_of_a_module_nested_deep():
    """The indent grew with the depth: from depth 15 on, the module column read '…'."""
    x = jnp.ones((1, 3))
    summary = blurb(Nest(17), Nest(17).init(jax.random.key(0), x), x, flops=False,
                    measure_latency=False)  # fmt: skip
    cells = [line[:30].strip() for line in summary.table().splitlines()[2:-1]]
    assert cells[-2:] == ["…n4/n3/n2/n1", "…/n2/n1/leaf"]
    paths = list(summary.modules())[1:]  # the top module's row is "(top)"
    assert all(
        cell.endswith(path.rsplit("/", 1)[-1]) for cell, path in zip(cells, paths, strict=True)
    )


class Slashed(nn.Module):
    """A Dense named ``a/b`` beside one named ``a``, as Flax allows."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(2, name="a/b")(nn.Dense(3, name="a")(x))


def test_a_module_whose_name_holds_the_separator_is_refused_naming_it():
    """'a/b' was summarized as a submodule of 'a', whose params read 20 instead of 12."""
    x = jnp.ones((1, 3))
    variables = Slashed().init(jax.random.key(0), x)
    with pytest.raises(
        ValueError,
        match=r"^blurb: variables\['params'\] hold the name 'a/b' \(in the top module\), "
        r"which holds '/'.* Rename that module or variable \(its name= or dict key\)",
    ):
        blurb(Slashed(), variables, x, flops=False, measure_latency=False)


class HalfAndFull(nn.Module):
    """A bfloat16 layer, a float32 one, and an integer output."""

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(3, dtype=jnp.bfloat16, name="half")(x)
        return jnp.argmax(nn.Dense(2, name="full")(h), -1)


def test_table_shows_each_output_dtype_but_float32():
    """The table showed shapes alone: a bfloat16 layer read as a float32 one."""
    x = jnp.ones((4, 3))
    summary = blurb(HalfAndFull(), HalfAndFull().init(jax.random.key(0), x), x, flops=False,
                    measure_latency=False)  # fmt: skip
    outputs = {line.split()[0]: line[53:66].strip() for line in summary.table().splitlines()[1:-1]}
    assert outputs == {"(top)": "4 i32", "half": "4x3 bf16", "full": "4x2"}


def test_records_are_frozen(two_level):
    with pytest.raises(dataclasses.FrozenInstanceError):
        two_level.root.params = 0


def test_unknown_path_names_the_nearest(two_level):
    with pytest.raises(px.SelectorError, match="nearest: 'block/dense_0'"):
        two_level["block/dense_O"]


def test_a_path_that_is_no_str_is_refused_naming_the_str_to_give(two_level):
    # a tuple (Flax's module.path) or a list reached the selectors: "A selector must be..."
    with pytest.raises(
        TypeError, match=r"got \('block', 'dense_0'\) \(tuple\); give 'block/dense_0',"
    ):
        two_level[("block", "dense_0")]
    with pytest.raises(TypeError, match=r"got \[0\] \(list\); give one of the paths of b"):
        two_level[[0]]
    with pytest.raises(TypeError) as error:  # the message held the whole array, 7 lines
        two_level[np.zeros((40, 40))]
    assert str(error.value) == (
        "Blurb[...] takes a module path, a str ('' for the top module), got "
        "array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… (shape (40, 40), dtype "
        "float64) (ndarray); give one of the paths of b.modules(): '', 'block', "
        "'block/dense_0' and 2 more."
    )


def test_in_asks_for_an_exact_module_path(two_level):
    # with no __contains__, Python tried two_level[0]: a TypeError naming 0
    assert "block/dense_0" in two_level and "" in two_level
    assert "block/*" not in two_level and ("block",) not in two_level


def test_a_glob_is_refused_naming_the_modules_it_matches(two_level):
    matched = "'block/dense_0', 'block/dense_1'"
    pattern = rf"exact module path.*'block/\*' matches 2 module\(s\): {matched}"
    with pytest.raises(px.SelectorError, match=pattern):
        two_level["block/*"]


def test_a_glob_matching_many_modules_names_ten_and_counts_the_rest():
    """It ended "'m9', .... Use one", without a count."""
    with pytest.raises(px.SelectorError) as info:
        _raise_not_a_module({f"m{i}": None for i in range(12)}, "m*")
    shown = ", ".join(f"'m{i}'" for i in range(10))
    assert f"matches 12 module(s): {shown} and 2 more. Use one of them" in str(info.value)


class Partitioned(nn.Module):
    @nn.compact
    def __call__(self, x):
        init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
        return nn.Dense(3, kernel_init=init, name="dense")(x)


def test_boxed_parameters_are_counted_by_their_arrays():
    x = jnp.ones((1, 4))
    variables = Partitioned().init(jax.random.key(0), x)
    assert isinstance(variables["params"]["dense"]["kernel"], nn.Partitioned)
    summary = blurb(Partitioned(), variables, x, flops=False, measure_latency=False)
    assert summary.root.params == summary["dense"].own_params == 4 * 3 + 3
    assert summary["dense"].variables["params"]["kernel"] == ArraySpec((4, 3), "float32")


def test_switched_off_measurements_are_none():
    x = jnp.ones((1, 3))
    summary = blurb(Block(), Block().init(jax.random.key(0), x), x, flops=False,
                    measure_latency=False)  # fmt: skip
    assert all(m.flops is None and m.latency_s is None for m in summary.modules().values())
    with pytest.raises(ValueError, match=r"repeats must be at least 1, .*, got 0"):
        blurb(Block(), {}, x, repeats=0)


def test_a_model_that_reads_an_input_given_none_is_told_to_pass_it():
    # a Dense given x=None raised a bare "IndexError: tuple index out of range"
    x = jnp.ones((1, 3))
    with pytest.raises(Exception) as raised:
        blurb(Block(), Block().init(jax.random.key(0), x), flops=False, measure_latency=False)
    assert "blurb was given no input (x=None)" in raised.value.__notes__[-1]


def test_a_nested_list_of_numbers_is_read_as_its_array_as_apply_reads_it():
    # jitted, each number was traced apart: a TracerArrayConversionError for any model
    rows = [[1.0, 2.0, 3.0]]
    x = jnp.asarray(rows)
    variables = Block().init(jax.random.key(0), x)
    read = blurb(Block(), variables, rows, flops=False, measure_latency=False)
    assert read == blurb(Block(), variables, x, flops=False, measure_latency=False)
    assert read["dense_1"].outputs[""].shape == (1, 2)


@pytest.mark.parametrize("scalar", [jnp.float32, np.float32], ids=["0-d array", "numpy"])
def test_a_nested_list_of_any_scalars_is_read_as_its_array(scalar):
    # only Python numbers were: a list of 0-d arrays or numpy scalars raised, as traced apart
    rows = [[scalar(1.0), scalar(2.0), scalar(3.0)]]
    x = jnp.asarray(rows)
    variables = Block().init(jax.random.key(0), x)
    read = blurb(Block(), variables, rows, flops=False, measure_latency=False)
    assert read == blurb(Block(), variables, x, flops=False, measure_latency=False)


class DoublesFirst(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(2.0 * jnp.asarray(x))


def test_the_flops_of_a_nested_list_are_those_of_its_array():
    # passed untraced, the list was a constant: XLA folded 2.0 * x, the model's FLOPs 14 of 17
    rows = [[1.0, 2.0, 3.0]]
    variables = DoublesFirst().init(jax.random.key(0), rows)
    read = blurb(DoublesFirst(), variables, rows, measure_latency=False).root.flops
    assert (
        read
        == blurb(DoublesFirst(), variables, jnp.asarray(rows), measure_latency=False).root.flops
        == 17
    )


class Squared(nn.Module):
    @nn.compact
    def __call__(self, x):  # reads x as its array, as a graph model's input node does
        return nn.Dense(2)(jnp.square(jnp.asarray(x, jnp.float32)))


def test_a_tuple_of_ints_is_read_as_its_array_its_work_counted():
    # passed as Python ints (35b169c7), XLA folded the work on them alone: FLOPs 14 of
    # 20, the top module's fewer than its Dense's and the square's (a graph: 14 of 23)
    variables = Squared().init(jax.random.key(0), jnp.array([1, 2, 3]))
    flops = [
        blurb(Squared(), variables, x, measure_latency=False).root.flops
        for x in [(1, 2, 3), [1, 2, 3], jnp.array([1, 2, 3])]
    ]
    assert flops == [20, 20, 20]


class SinOfY(nn.Module):
    @nn.compact
    def __call__(self, x, y):
        return nn.Dense(2)(x) + jnp.sin(y) * 3.0


class Packed(nn.Module):
    @nn.compact
    def __call__(self, xy):
        return SinOfY()(xy["x"], xy["y"])


def test_an_input_given_by_name_is_traced_as_x_is():
    # y=... was a constant of the program: XLA folded sin(y) * 3, the FLOPs 16 of 18
    x, y = jnp.ones((1, 3)), jnp.ones((1, 2))
    variables = SinOfY().init(jax.random.key(0), x, y)
    by_name = blurb(SinOfY(), variables, x, y=y, measure_latency=False).root.flops
    packed = {"x": x, "y": y}
    whole = blurb(Packed(), Packed().init(jax.random.key(0), packed), packed, measure_latency=False)
    assert by_name == whole.root.flops == whole["SinOfY_0"].flops == 18


class Flagged(nn.Module):
    @nn.compact
    def __call__(self, x, deterministic):
        return nn.Dropout(0.5)(nn.Dense(2)(x), deterministic=deterministic)


@pytest.mark.parametrize("flag", [np.array(True), jnp.array(True)])
def test_a_flag_given_by_name_as_a_0d_array_reaches_the_model_concrete(flag):
    # traced as y=... is, Dropout's "if deterministic" failed: TracerBoolConversionError
    x = jnp.ones((1, 3))
    variables = Flagged().init(jax.random.key(0), x, True)
    summary = blurb(Flagged(), variables, x, deterministic=flag, measure_latency=False)
    assert summary.root.flops == summary["Dense_0"].flops == 14  # as with True


class Repeats(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = x["x"]
        for _ in range(x["times"]):  # a Python int, as model.apply gets it
            h = nn.Dense(3)(h)
        return h


def test_a_python_number_in_the_input_reaches_the_model_as_apply_gives_it():
    # jitted, every leaf of x was traced: range(x["times"]) a TracerIntegerConversionError
    x = {"x": jnp.ones((1, 3)), "times": 2}
    summary = blurb(Repeats(), Repeats().init(jax.random.key(0), x), x, measure_latency=False)
    assert [m.path for m in summary.root.children] == ["Dense_0", "Dense_1"]
    assert summary.root.flops == 2 * summary["Dense_0"].flops


class Named(nn.Module):
    @nn.compact
    def __call__(self, x):
        return {"y": nn.Dense(2)(x), "name": "head"}  # a str, as model.apply returns it


class HoldsNamed(nn.Module):
    @nn.compact
    def __call__(self, x):
        return Named()(x)


def test_an_output_holding_a_str_is_measured_by_its_arrays():
    # jax.jit cannot return the str: the whole model's FLOPs raised, a module's were None
    x = jnp.ones((1, 3))
    summary = blurb(HoldsNamed(), HoldsNamed().init(jax.random.key(0), x), x,
                    measure_latency=False)  # fmt: skip
    dense_flops = summary["Named_0/Dense_0"].flops
    assert summary.root.flops == summary["Named_0"].flops == dense_flops == 14


def test_an_output_s_str_has_no_spec_in_the_blurb_nor_its_table():
    # the str was shown as an array of shape () and dtype '<U4' ("scalar <U4" in the table)
    x = jnp.ones((1, 3))
    summary = blurb(HoldsNamed(), HoldsNamed().init(jax.random.key(0), x), x,
                    measure_latency=False, flops=False)  # fmt: skip
    for path in ["", "Named_0"]:
        assert summary[path].outputs == {"['y']": ArraySpec((1, 2), "float32")}
    assert "<U" not in summary.table()


class NumpyNamed(nn.Module):
    @nn.compact
    def __call__(self, x):  # numpy's str and bytes, as an array of names gives them
        return {"y": nn.Dense(2)(x), "name": np.str_("head"), "raw": np.bytes_(b"ab")}


def test_an_output_s_numpy_str_has_no_spec_either():
    # np.str_ has a dtype: it was shown as an array of shape () and dtype '<U4'
    x = jnp.ones((1, 3))
    summary = blurb(NumpyNamed(), NumpyNamed().init(jax.random.key(0), x), x,
                    measure_latency=False, flops=False)  # fmt: skip
    assert summary.root.outputs == {"['y']": ArraySpec((1, 2), "float32")}
    assert "<U" not in summary.table() and "|S" not in summary.table()


class Shifted(nn.Module):
    @nn.compact
    def __call__(self, x, shift, scale):
        return px.tag(self, "h", nn.Dense(2)(x) * scale + shift)


class ShiftedToo(Shifted):  # its __call__ is Shifted's: Python names that one
    pass


class ScalesInAHelper(nn.Module):
    def scaled(self, x, scale):
        return x * scale

    @nn.compact
    def __call__(self, x):
        return self.scaled(nn.Dense(2)(x))  # the model's own bug, not its inputs'


CALLERS = [(partial(blurb, flops=False, measure_latency=False), "blurb"),
           (partial(px.probe, selector="h"), "probe"),
           (partial(px.inject, values={"h": jnp.zeros((1, 2))}), "inject"),
           (partial(injections, values={"h": jnp.zeros((1, 2))}), "injections"),
           (partial(px.grad_of, jnp.sum, wrt="h"), "grad_of"),
           (partial(perturbations, wrt="h"), "perturbations"),
           (partial(px.tweak, values={}), "tweak")]  # fmt: skip


@pytest.mark.parametrize("model", [Shifted(), ShiftedToo()])
@pytest.mark.parametrize(("caller", "name"), CALLERS)
def test_a_model_of_several_inputs_given_x_alone_is_told_to_name_the_others(model, caller, name):
    # Python's "missing 2 required positional arguments" said nothing of how to give them
    x, shift = jnp.ones((1, 3)), jnp.ones((1, 2))
    variables = model.init(jax.random.key(0), x, shift, 2.0)
    with pytest.raises(TypeError, match="missing 2 required positional arguments") as raised:
        caller(model, variables, x)
    assert f"as {name}(..., shift=..., scale=...) passes them" in raised.value.__notes__[-1]
    caller(model, variables, x, shift=shift, scale=2.0)  # given by name: it runs


@pytest.mark.parametrize(("caller", "name"), CALLERS)
def test_a_helper_method_missing_arguments_is_not_taken_for_the_inputs(caller, name):
    # the model's own call of self.scaled(x) was told to give scale=... to the caller
    x = jnp.ones((1, 3))
    variables = Shifted().init(jax.random.key(0), x, jnp.ones((1, 2)), 2.0)
    with pytest.raises(TypeError, match=r"scaled\(\) missing 1 required") as raised:
        caller(ScalesInAHelper(), variables, x)
    assert not any("by name" in note for note in getattr(raised.value, "__notes__", []))


@pytest.mark.parametrize("repeats", [2.5, True, "3"])
def test_repeats_that_are_no_whole_number_are_refused_by_name(repeats):
    # 2.5 failed once the model had compiled ("'float' object cannot be interpreted as an
    # integer"), True timed one call, "3" failed comparing a str with 1
    with pytest.raises(ValueError, match=rf"repeats must be at least 1, .*, got {repeats!r}"):
        blurb(Block(), {}, jnp.ones((1, 3)), repeats=repeats)


def test_repeats_given_an_array_name_it_in_one_short_line():
    """The message held the array's whole repr, 7 lines."""
    with pytest.raises(ValueError) as error:
        blurb(Block(), {}, jnp.ones((1, 3)), repeats=np.zeros((40, 40)))
    assert str(error.value) == (
        "repeats must be at least 1, a whole number of calls, got "
        "array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… "
        "(shape (40, 40), dtype float64)."
    )


class AutoEncoder(nn.Module):
    def setup(self):
        self.encoder = nn.Dense(2)
        self.decoder = nn.Dense(3)

    def encode(self, x):
        return self.encoder(x)

    def __call__(self, x):
        return self.decoder(self.encode(x))


def test_the_top_module_run_by_another_method_gets_its_type_and_output():
    # the top module's row came from its __call__ alone: "-" for both under method=
    x = jnp.ones((BATCH, 3))
    variables = AutoEncoder().init(jax.random.key(0), x)
    summary = blurb(AutoEncoder(), variables, x, flops=False, measure_latency=False,
                    method="encode")  # fmt: skip
    assert summary.root.type == "AutoEncoder"
    assert summary.root.outputs == {"": ArraySpec((BATCH, 2), "float32")}
    assert summary["decoder"].outputs == {}  # not called by encode
    full = blurb(AutoEncoder(), variables, x, flops=False, measure_latency=False)
    assert full.root.outputs == {"": ArraySpec((BATCH, 3), "float32")}


class Weighted(nn.Module):
    @nn.compact
    def __call__(self, x):
        scale = px.knob(self, "scale", 2.0, doc="output scale")
        with px.path_weight(self, "branch", 0.25):
            px.aux_loss(self, "l1", jnp.abs(x).mean())
        px.note(self, "positive", (x > 0).mean())
        return scale * x


class WithWeighted(nn.Module):
    @nn.compact
    def __call__(self, x):
        return Weighted(name="gate")(nn.Dense(4, name="dense")(x))


def test_notes_aux_losses_path_weights_and_knobs_sit_under_their_module(key):
    x = jax.random.normal(key, (3, 2))
    model = WithWeighted()
    variables = px.set_knobs(model.init(key, x), {"gate/scale": 3.0})
    h = jnp.asarray(nn.Dense(4).apply({"params": variables["params"]["dense"]}, x))
    summary = blurb(model, variables, x, flops=False, measure_latency=False)
    gate = summary["gate"]
    assert gate.path_weights == {"branch": 0.25}
    assert gate.aux_losses == {"l1": pytest.approx(0.25 * float(jnp.abs(h).mean()))}
    assert gate.notes == {"positive": pytest.approx(float((h > 0).mean()))}
    assert gate.knobs == {"scale": KnobValue(3.0, 2.0, "output scale")}
    assert gate.variables == {"knobs": {"scale": ArraySpec((), "float32")}}
    for other in ["", "dense"]:
        assert summary[other].notes == summary[other].aux_losses == summary[other].knobs == {}
    assert "scale=3 positive=" in summary.table()
    assert Blurb.from_json(summary.to_json()) == summary


class WeightedMembers(nn.Module):
    """Two members of `Weighted` under nn.vmap, whose variable_axes leave out ``omitted``."""

    omitted: str

    @nn.compact
    def __call__(self, x):
        axes = {k: v for k, v in px.scan_axes().items() if k != self.omitted}
        members = nn.vmap(Weighted, variable_axes=axes, axis_size=2, in_axes=None, out_axes=0)
        return members(name="members")(x)


@pytest.mark.parametrize(
    "omitted, said",
    [
        ("blurb", "note 'members/positive' was written but not recorded"),
        ("aux_loss", "aux loss 'members/l1' was raised but not recorded"),
        ("path_weights", "path weight 'members/branch' was opened but not recorded"),
    ],
)
def test_what_a_lifted_transform_drops_is_named_with_the_variable_axes_to_give(omitted, said):
    """The blurb showed no such note, aux loss or path weight, silently."""
    x, model = jnp.ones((3, 2)), WeightedMembers(omitted)
    with pytest.raises(ValueError, match=said) as error:
        blurb(model, model.init(jax.random.key(0), x), x, flops=False, measure_latency=False)
    assert f"variable_axes omit {omitted!r}" in str(error.value)
    assert "px.scan_axes(params=0)" in str(error.value)


def test_what_a_lifted_transform_keeps_is_shown_for_every_member():
    x, model = jnp.ones((3, 2)), WeightedMembers("")
    members = blurb(model, model.init(jax.random.key(0), x), x, flops=False, measure_latency=False)
    assert members["members"].path_weights == {"branch": [0.25, 0.25]}
    assert members["members"].aux_losses == {"l1": [0.25, 0.25]}
    assert members["members"].notes == {"positive": [1.0, 1.0]}


def test_a_blurb_of_an_init_is_the_blurb_of_its_variables_in_one_program(key):
    # notes and aux losses read the random dense params; the knob is set by the init
    x = jax.random.normal(key, (3, 2))
    model = WithWeighted()
    init = lambda: px.set_knobs(model.init(key, x), {"gate/scale": 3.0})
    expected = blurb(model, init(), x, flops=False, measure_latency=False)
    with compiles_seen() as compiles:
        summary = blurb_of_init(model, init, x, flops=False, measure_latency=False)
    assert len(compiles) == 1  # the init is no program of its own
    assert summary.to_json() == expected.to_json()


class Ranged(nn.Module):
    @nn.compact
    def __call__(self, x):
        T = px.knob(self, "T", 1.0, doc="temperature", valid=px.Range(gt=0))
        p = px.knob(self, "p", 0.5, valid=px.Range(ge=0, lt=1))
        return x / T * p * px.knob(self, "gain", 2.0)


def test_a_knob_s_range_is_in_the_blurb_its_table_and_json(key):
    """The viewer shows it from the JSON; a blurb written before ranges were (no
    ``valid`` key) still reads, as a knob without one."""
    x = jnp.ones((1, 2))
    summary = blurb(Ranged(), Ranged().init(key, x), x, flops=False, measure_latency=False)
    assert summary.root.knobs == {
        "T": KnobValue(1.0, 1.0, "temperature", "> 0"),
        "p": KnobValue(0.5, 0.5, "", "[0, 1)"),
        "gain": KnobValue(2.0, 2.0, ""),
    }
    assert "T=1 (> 0) p=0.5 ([0, 1)) gain=2" in summary.table()
    assert Blurb.from_json(summary.to_json()) == summary
    old = json.loads(summary.to_json())
    for knob in old["root"]["knobs"].values():
        del knob["valid"]
    assert Blurb.from_json(json.dumps(old)).root.knobs["T"] == KnobValue(1.0, 1.0, "temperature")


class Described(nn.Module):
    @nn.compact
    def __call__(self, x):
        px.note(self, "activation", "gelu")
        px.note(self, "settings", {"approximate": True, "open": (x > 0).mean()})
        return nn.gelu(x)


def test_notes_that_are_not_arrays_are_kept_as_recorded():
    summary = blurb(Described(), {}, jnp.ones((2, 3)), measure_latency=False)
    assert summary.root.notes == {
        "activation": "gelu",
        "settings": {"approximate": True, "open": 1.0},
    }
    assert Blurb.from_json(summary.to_json()) == summary


class Grouped(nn.Module):
    @nn.compact
    def __call__(self, x):
        px.note(self, "groups", [[0, 1], [2]])
        return x


def test_a_ragged_list_note_is_shown_as_written():
    summary = blurb(Grouped(), {}, jnp.ones(3), measure_latency=False, flops=False)
    assert "groups=[[0, 1], [2]]" in summary.table()


class DescribedLayer(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        return Described(name="act")(x), None


class DescribedStack(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.remat(Described)(name="remat")(x)
        layers = nn.scan(DescribedLayer, variable_axes=px.scan_axes(), length=2)
        return layers(name="layers")(x, None)[0]


def test_notes_that_are_not_arrays_are_kept_under_nn_remat_and_nn_scan():
    """Those transforms carry arrays alone: a string in the collection was a TypeError."""
    summary = blurb(DescribedStack(), {}, jnp.ones((2, 3)), measure_latency=False, flops=False)
    assert summary["remat"].notes["activation"] == "gelu"
    assert summary["layers/act"].notes["activation"] == "gelu"
    # A note's arrays are stacked over the layers; the rest is kept as first recorded.
    assert summary["layers/act"].notes["settings"] == {"approximate": True, "open": [1.0, 1.0]}


class Mixed(nn.Module):
    @nn.compact
    def __call__(self, x, _=None):
        px.note(self, "info", {"kind": "gelu", "scale": [x.std(), 2.0], "alpha": (x.max(), "max")})
        return nn.gelu(x), None


class MixedStack(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.remat(Mixed)(name="remat")(x)[0]
        layers = nn.scan(Mixed, variable_axes=px.scan_axes(), length=3)
        return layers(name="layers")(x, None)[0]


def test_a_note_mixing_strings_and_arrays_works_under_nn_remat_and_nn_scan():
    """The strings went into the collection, which nn.scan refused (a TypeError)."""
    x = jnp.arange(6.0).reshape(2, 3)
    summary = blurb(MixedStack(), {}, x, measure_latency=False, flops=False)
    plain = blurb(Mixed(), {}, x, measure_latency=False, flops=False).root.notes["info"]
    assert plain == {
        "kind": "gelu",
        "scale": [pytest.approx(1.70783, rel=1e-5), 2.0],
        "alpha": [5.0, "max"],
    }
    assert summary["remat"].notes["info"] == plain
    layers = summary["layers"].notes["info"]
    assert layers["kind"] == "gelu" and layers["scale"][1] == 2.0 and layers["alpha"][1] == "max"
    assert len(layers["scale"][0]) == 3 and len(layers["alpha"][0]) == 3  # one per layer


class Normed(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.BatchNorm(use_running_average=not train, name="bn")(nn.Dense(3, name="dense")(x))
        return nn.Dropout(0.5, deterministic=not train, name="drop")(h)


def test_batch_norm_in_training_with_rngs_leaves_variables_alone(key):
    x = jax.random.normal(key, (4, 2))
    variables = Normed().init(key, x)
    before = jax.tree.map(np.asarray, variables)
    summary = blurb(Normed(), variables, x, repeats=1, train=True, rngs={"dropout": key})
    assert summary["bn"].variables == {
        "batch_stats": {"mean": ArraySpec((3,), "float32"), "var": ArraySpec((3,), "float32")},
        "params": {"scale": ArraySpec((3,), "float32"), "bias": ArraySpec((3,), "float32")},
    }
    assert summary["bn"].params == 6 and summary.root.params == 15
    assert summary["drop"].outputs[""] == ArraySpec((4, 3), "float32")
    assert all(m.flops and m.latency_s and m.latency_s > 0 for m in summary.modules().values())
    jax.tree.map(np.testing.assert_array_equal, variables, before)


class Body(nn.Module):
    @nn.compact
    def __call__(self, carry, _):
        h = nn.Dense(3, name="dense")(carry)
        px.note(self, "mean", h.mean())
        return jnp.tanh(h), None


class Scanned(nn.Module):
    @nn.compact
    def __call__(self, x):
        layers = nn.scan(Body, variable_axes=px.scan_axes(params=0), split_rngs={"params": True},
                         length=4)  # fmt: skip
        return layers(name="layers")(x, None)[0]


def test_scan_body_is_summarized_per_iteration(key):
    x = jnp.ones((BATCH, 3))
    variables = Scanned().init(key, x)
    summary = blurb(Scanned(), variables, x, measure_latency=False)
    assert summary["layers"].type == "Body"
    assert summary["layers/dense"].variables["params"]["kernel"] == ArraySpec((4, 3, 3), "float32")
    assert summary.root.params == 4 * (9 + 3)
    _, state = Scanned().apply(variables, x, mutable=["blurb"])
    np.testing.assert_allclose(summary["layers"].notes["mean"], state["blurb"]["layers"]["mean"][0])
    matmul, flops = 2 * BATCH * 3 * 3, summary["layers/dense"].flops
    assert flops is not None and matmul <= flops <= matmul + 2 * BATCH * 3  # one iteration


def test_a_remat_block_with_a_scalar_knob_is_summarized(key):
    """nn.remat hands a scalar constant back as a jax literal (a float with a dtype, no
    shape); its spec is that of a scalar of the knob's dtype."""
    remat = nn.remat(Weighted)
    x = jnp.ones((BATCH, 2))
    variables = remat(name="gate").init(key, x)
    summary = blurb(remat(), variables, x, flops=False, measure_latency=False)
    assert summary.root.variables["knobs"]["scale"] == ArraySpec((), "float32")
    assert summary.root.knobs["scale"].value == 2.0
    assert Blurb.from_json(summary.to_json()) == summary


class Described3(nn.Module):
    """A Dense of 3 features with a knob and a note that holds no array."""

    @nn.compact
    def __call__(self, x):
        px.note(self, "kind", "dense")
        return nn.Dense(3, name="dense")(x) * px.knob(self, "gain", 2.0, doc="gain")


class JittedSiblings(nn.Module):
    @nn.compact
    def __call__(self, x):
        jitted = nn.jit(Described3)
        return jitted(name="b")(jitted(name="a")(x))


def test_a_block_whose_nn_jit_trace_its_sibling_made_is_summarized_as_that_sibling(key):
    """nn.jit reused a's trace for b, which ran no Python: b's row had no type, no output,
    no knob and no note that holds no array."""
    x = jnp.ones((BATCH, 3))
    summary = blurb(JittedSiblings(), JittedSiblings().init(key, x), x, flops=False,
                    measure_latency=False)  # fmt: skip
    assert [child.path for child in summary.root.children] == ["a", "b"]
    for path in ["a", "b"]:
        assert summary[path].type == "Described3"
        assert summary[path].outputs == {"": ArraySpec((BATCH, 3), "float32")}
        assert summary[path].knobs == {"gain": KnobValue(2.0, 2.0, "gain")}
        assert summary[path].notes == {"kind": "dense"}
        assert summary[f"{path}/dense"].type == "Dense"


class Child(nn.Module):
    layer: nn.Module

    def __call__(self, x):
        return 2 * self.layer(x)


class Shared(nn.Module):
    def setup(self):
        self.dense = nn.Dense(3)
        self.child = Child(self.dense)

    def __call__(self, x):
        return self.child(self.dense(x))


def test_a_module_that_cannot_run_alone_gets_no_flops(key):
    x = jnp.ones((1, 3))
    summary = blurb(Shared(), Shared().init(key, x), x, measure_latency=False)
    assert summary["child"].flops is None and summary["child"].outputs[""].shape == (1, 3)
    assert summary["dense"].flops == 21  # 3 x 3 products and sums, 3 biases added
    assert summary.root.flops == 2 * 21 + 3  # the dense twice, then the child's 2 * h


def test_a_module_that_computes_nothing_gets_zero_flops(key):
    x = jnp.ones((1, 3))
    model = nn.Sequential([nn.Dense(3), nn.Dropout(0.5, deterministic=True)])
    summary = blurb(model, model.init(key, x), x, measure_latency=False)
    assert summary["layers_1"].flops == 0.0
    assert summary["layers_0"].flops == summary.root.flops == 21


class Part(nn.Module):
    """A layer of the given width per call."""

    @nn.compact
    def __call__(self, x, width):
        return nn.Dense(width, name=f"dense_{width}")(x)


class Whole(Part):
    """One whole made in parts, as a graph model's group runs one node per call."""

    blurb_sums_calls: ClassVar[bool] = True


class Parts(nn.Module):
    part: type[Part]

    @nn.compact
    def __call__(self, x):
        part = self.part(name="part")
        return part(part(x, 4), 2)


@pytest.mark.parametrize("part", [Part, Whole])
def test_a_module_whose_class_sums_calls_gets_their_flops_and_last_output(key, part):
    x = jnp.ones((BATCH, 3))
    model = Parts(part)
    summary = blurb(model, model.init(key, x), x, measure_latency=False)
    whole, (first, last) = summary["part"], summary["part"].children
    assert first.flops and last.flops
    if part is Whole:
        assert whole.flops == first.flops + last.flops and whole.outputs == last.outputs
    else:  # its first call, as any module's
        assert whole.flops == first.flops and whole.outputs == first.outputs


def test_a_blurb_of_an_init_sums_a_whole_over_the_calls_on_x_not_the_inits(key):
    x = jnp.ones((BATCH, 3))
    model, init = Parts(Whole), lambda: Parts(Whole).init(key, x)
    expected = blurb(model, init(), x, measure_latency=False)
    summary = blurb_of_init(model, init, x, measure_latency=False)
    assert summary["part"].flops == expected["part"].flops  # not doubled by init's calls


class Doubler(nn.Module):
    def double(self, x):
        return 2 * x


DOUBLER = Doubler()  # unbound, as a graph twin's stem whose input_mask a node calls


class DoublesWithAnUnboundModule(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2, name="dense")(DOUBLER.double(x))


def test_a_method_of_an_unbound_module_called_by_the_model_is_no_module_of_its_blurb(key):
    x = jnp.ones((BATCH, 3))
    model = DoublesWithAnUnboundModule()
    summary = blurb(model, model.init(key, x), x, measure_latency=False, flops=False)
    assert list(summary.modules()) == ["", "dense"]


def test_flops_of_modules_of_one_program_compile_it_once(key, monkeypatch):
    """Each module compiled its program for its FLOPs, again for each block of one shape
    (a stack of equal layers, a layer that several models share)."""
    monkeypatch.setattr(_blurb, "_FLOP_COUNTS", {})  # none of another test's programs
    x = jnp.ones((BATCH, 13))
    model = nn.Sequential([nn.Dense(13), nn.Dense(13), nn.Dense(13)])
    variables = model.init(key, x)
    with compiles_seen() as compiles:
        summary = blurb(model, variables, x, measure_latency=False)
    assert len(compiles) == 3  # the recording, the whole model, one of its layers
    counts = {summary[f"layers_{i}"].flops for i in range(3)}
    assert len(counts) == 1 and 2 * BATCH * 13 * 13 <= counts.pop() < summary.root.flops


def test_the_flops_kept_by_program_are_the_last_ones(key, monkeypatch):
    """The counts kept for programs compiled for their FLOPs alone grew with every program
    a long process blurbed; the oldest go, and a program again is counted the same."""
    monkeypatch.setattr(_blurb, "_FLOP_COUNTS", {})
    monkeypatch.setattr(_blurb, "_FLOP_COUNTS_KEPT", 2)
    x = jnp.ones((BATCH, 5))
    model = nn.Sequential([nn.Dense(3), nn.Dense(4), nn.Dense(6)])  # three layer programs
    first = blurb(model, model.init(key, x), x, measure_latency=False)
    assert len(_blurb._FLOP_COUNTS) == 2
    again = blurb(model, model.init(key, x), x, measure_latency=False)
    assert [again[f"layers_{i}"].flops for i in range(3)] == [
        first[f"layers_{i}"].flops for i in range(3)
    ]


def test_flops_kept_by_program_are_kept_by_platform_too(monkeypatch):
    """They were kept by the default backend: a blurb under ``jax.default_device(cpu)`` on a
    GPU machine read the counts of the same program text compiled for the GPU."""
    monkeypatch.setattr(_blurb, "_FLOP_COUNTS", {})
    traced = jax.jit(lambda a: a @ a).trace(jnp.ones((3, 3)))
    for platform in ("cpu", "cuda"):  # lowered for cuda, compiled here for the CPU's count
        _blurb._flops_of(traced.lower(lowering_platforms=(platform,)))
    assert sorted(platforms for platforms, _ in _blurb._FLOP_COUNTS) == [("cpu",), ("cuda",)]


def test_the_backend_is_the_one_the_blurb_ran_on(key, monkeypatch):
    """It was the default backend: under ``jax.default_device(cpu)`` on a GPU machine (its
    default backend "gpu", as set here), a blurb measured on the CPU said "gpu"."""
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    x = jnp.ones((BATCH, 3))
    with jax.default_device(jax.devices("cpu")[0]):
        summary = blurb(
            nn.Dense(2), nn.Dense(2).init(key, x), x, measure_latency=False, flops=False
        )
    assert summary.backend == "cpu"


def test_a_note_json_cannot_write_is_refused_where_it_is_made():
    """A set (or a dtype, an object) was recorded, shown by table(), and failed in to_json
    (the bench's blurb files) as 'Object of type set is not JSON serializable', unnamed."""

    class Noting(nn.Module):
        @nn.compact
        def __call__(self, x):
            px.note(self, "kinds", {"all": {"gelu", "relu"}})
            return x

    with pytest.raises(TypeError, match=r"^note 'kinds' takes an array or a JSON-able value"):
        Noting().apply({}, jnp.ones(2), mutable=["blurb"])


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (range(3), [0, 1, 2]),  # refused, though blurb writes it as np.asarray(value) does
        (np.array(["a", None], dtype=object), ["a", None]),
        (np.complex64(1), None),  # passed, and failed in to_json, unnamed
    ],
)
def test_a_note_is_refused_as_blurb_writes_it_not_by_its_type(value, written):
    class Noting(nn.Module):
        @nn.compact
        def __call__(self, x):
            px.note(self, "n", value)
            return x

    x = jnp.ones(2)
    if written is None:
        with pytest.raises(TypeError, match=r"^note 'n' takes an array or a JSON-able value"):
            Noting().apply({}, x, mutable=["blurb"])
        return
    summary = px.blurb(Noting(), {}, x, measure_latency=False, flops=False)
    assert json.loads(summary.to_json())["root"]["notes"]["n"] == written


class Diverged(nn.Module):
    @nn.compact
    def __call__(self, x):
        px.note(self, "ratios", jnp.array([1.0, jnp.nan]))
        px.aux_loss(self, "bad", jnp.log(x.sum() - 5.0))  # NaN
        return x * px.knob(self, "k", float("inf"))


def test_json_of_nan_and_infinities_is_strict_json_with_null():
    # json.dumps wrote NaN and Infinity, which no JSON parser but Python's reads
    x = jnp.ones(2)
    b = blurb(Diverged(), Diverged().init(jax.random.key(0), x), x, measure_latency=False)

    def refuse(constant):
        raise ValueError(f"{constant} is no JSON")

    root = json.loads(b.to_json(), parse_constant=refuse)["root"]
    assert root["notes"] == {"ratios": [1.0, None]} and root["aux_losses"] == {"bad": None}
    assert root["knobs"]["k"] == {"value": None, "default": None, "doc": "", "valid": None}
    read = Blurb.from_json(b.to_json()).root  # from_json promised == b: null comes back None
    assert read.outputs == b.root.outputs and read.knobs["k"] == KnobValue(None, None, "")
    assert read.notes == {"ratios": [1.0, None]} and read.aux_losses == {"bad": None}


def test_iterating_a_blurb_is_refused_naming_modules(two_level):
    # Python iterated it through __getitem__: b[0] raised "got 0 (int)"
    with pytest.raises(TypeError, match=r"A Blurb is no sequence: iterate b\.modules\(\)"):
        list(two_level)
    assert list(two_level.modules()) == ["", "block", "block/dense_0", "block/dense_1", "head"]


def test_blurb_under_jit_is_refused_naming_the_traced_arguments():
    """It failed deep in its measurement: a compiled function got a Tracer (JAX's words)."""
    x = jnp.ones((BATCH, 3))
    variables = nn.Dense(2).init(jax.random.key(0), x)
    message = (
        "blurb runs outside jax.jit (and every JAX transformation): it compiles, runs and "
        "reads back the model itself, but got traced values in {}; call px.blurb(model, "
        "variables, x) outside the transformed function."
    )
    for traced, run in [
        ("variables", lambda v: blurb(nn.Dense(2), v, x)),
        ("variables, x", lambda v: blurb(nn.Dense(2), v, v["params"]["kernel"][0])),
    ]:
        with pytest.raises(TypeError) as info:
            jax.jit(run)(variables)
        assert str(info.value) == message.format(traced)
    with pytest.raises(TypeError) as info:  # measuring nothing, it read back the outputs
        jax.jit(lambda x: blurb(nn.Dense(2), variables, x, measure_latency=False, flops=False))(x)
    assert str(info.value) == message.format("x")


def test_a_lowering_without_jaxs_private_platforms_is_keyed_by_the_default_backend():
    """Read as ``lowered._lowering._platforms`` (JAX's private attributes), a JAX whose
    ``Lowered`` kept no ``_lowering`` failed every blurb that counts FLOPs."""
    import types

    lowered = jax.jit(jnp.sin).trace(1.0).lower()
    bare = types.SimpleNamespace(as_text=lowered.as_text)
    assert _blurb._program_key(bare) == ((jax.default_backend(),), _blurb._program_key(lowered)[1])


def test_a_layer_applying_its_out_params_itself_is_recorded_in_one_compile(key):
    """Its 'out' params (`apply_as_out`) belong to no module that ran, which took them
    for a block whose nn.jit trace was reused: the model was traced and compiled again,
    inlined, for nothing (a transformer's blurb took 2.5 times as long)."""
    x = jnp.ones((BATCH, 4, 8))
    layer = px.layers.MultiHeadSelfAttention(num_heads=2)
    variables = layer.init(key, x)
    with compiles_seen() as compiles:
        summary = blurb(layer, variables, x, measure_latency=False, flops=False)
    assert len(compiles) == 1
    assert summary.root.params == 4 * (8 * 8 + 8)  # qkv and out


JittedDescribed3 = nn.jit(Described3)


class JittedTop(nn.Module):
    @nn.compact
    def __call__(self, x):
        return JittedDescribed3(name="a")(x)


def test_a_block_whose_nn_jit_trace_an_earlier_call_made_is_summarized(key):
    x = jnp.ones((BATCH, 3))
    variables = JittedTop().init(key, x)
    for _ in range(2):  # the second reuses the first's trace
        summary = blurb(JittedTop(), variables, x, flops=False, measure_latency=False)
        assert summary["a"].type == "Described3"
        assert summary["a"].knobs == {"gain": KnobValue(2.0, 2.0, "gain")}
