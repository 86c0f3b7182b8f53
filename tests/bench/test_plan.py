"""Planning a bench: cells, ids, hparam columns, knob axes, name checks."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.bench import BenchError, _plan, plan
from phosjax.bench._plan import load_datasets
from phosjax.models import ModelConfig, register_model, registered_models
from tests.bench.runner_tiny import tiny_config
from tests.data import tfds_toys
from tests.morph.unfollowable import NAME as UNFOLLOWED
from tests.train.tiny import Counts

BROKEN = "test_plan_broken"
"""A registered model whose build fails with an error that is neither ValueError nor TypeError."""


def _broken(config):
    raise ZeroDivisionError("a bug in its code")


if BROKEN not in registered_models():
    register_model(BROKEN, build=_broken)

SCALED_AT_0 = "test_plan_scaled_at_0"
"""A registered model whose block's ``scale: float`` it registers at the int 0."""


class _Scaled(nn.Module):
    features: int
    scale: float = 1.0

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(self.features)(x) * self.scale


if SCALED_AT_0 not in registered_models():
    register_model(SCALED_AT_0, _Scaled, width=4, options={"scale": 0})

LIFTED = "test_plan_lifted"
"""A registered model whose members (nn.vmap without path_weights axes) drop a path weight."""


class _Member(nn.Module):
    @nn.compact
    def __call__(self, x):
        with px.path_weight(self, "branch", 0.5):
            return nn.Dense(3)(x)


class _Members(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train=False):
        members = nn.vmap(
            _Member, variable_axes={"params": 0}, split_rngs={"params": True}, axis_size=2
        )
        return members(name="members")(jnp.stack([x, x])).mean(0)[..., : self.num_classes]


if LIFTED not in registered_models():
    register_model(LIFTED, build=lambda config: _Members(config.num_classes))

TAGS_LIFTED = "test_plan_tags_lifted"
"""A registered model whose members (nn.vmap without an intermediates axis) drop a tag."""


class _TaggedMember(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", nn.Dense(3)(x))


class _TaggedMembers(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train=False):
        members = nn.vmap(
            _TaggedMember, variable_axes={"params": 0}, split_rngs={"params": True}, axis_size=2
        )
        mean = members(name="members")(jnp.stack([x, x])).mean(0)
        return px.tag(self, "h", mean)[..., : self.num_classes]


if TAGS_LIFTED not in registered_models():
    register_model(TAGS_LIFTED, build=lambda config: _TaggedMembers(config.num_classes))

DROPS_AT_EVALUATION = "test_plan_drops_at_evaluation"
"""A registered model whose dropout ignores the train flag: its evaluation has no rng."""


class _DropsAtEvaluation(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(self.num_classes)(nn.Dropout(0.5)(x, deterministic=False))


if DROPS_AT_EVALUATION not in registered_models():
    register_model(DROPS_AT_EVALUATION, build=lambda config: _DropsAtEvaluation(config.num_classes))

OWN_STREAM = "test_plan_own_stream"
"""A registered model that draws noise in training from an rng stream of its own."""


class _OwnStream(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train=False):
        noise = jax.random.normal(self.make_rng("noise"), x.shape) if train else 0
        return nn.Dense(self.num_classes)(x + noise)


if OWN_STREAM not in registered_models():
    register_model(OWN_STREAM, build=lambda config: _OwnStream(config.num_classes))

COUNTS = "test_plan_counts"
"""A registered model that counts its training calls in a collection of its own."""

COUNTS_IN_PARAMS = "test_plan_counts_in_params"
"""A registered model that counts its training calls in a param."""


if COUNTS not in registered_models():
    register_model(COUNTS, build=lambda config: Counts(config.num_classes, "counter"))
if COUNTS_IN_PARAMS not in registered_models():
    register_model(COUNTS_IN_PARAMS, build=lambda config: Counts(config.num_classes, "params"))

DROPS_KNOB = "test_plan_drops_knob"
"""A registered model whose knob T, made in an nn.scan without knobs axes, is dropped."""


class _ScannedKnob(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        return x * px.knob(self, "T", 1.0), None


class _DropsKnob(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train=False):
        layers = nn.scan(_ScannedKnob, variable_axes={}, length=2)(name="layers")
        return nn.Dense(self.num_classes)(layers(x.reshape(len(x), -1), None)[0])


if DROPS_KNOB not in registered_models():
    register_model(DROPS_KNOB, build=lambda config: _DropsKnob(config.num_classes))

SLASHED = "test_plan/mlp"
"""A registered model whose name holds a path separator."""

if SLASHED not in registered_models():
    register_model(SLASHED, build=_broken)


def small(**grid: object) -> dict[str, object]:
    """``grid`` with batches that fit the toy data's 64 train examples."""
    return {"batch_size": 16, **grid}


def test_plan_cells_groups_and_columns(toy):
    config = tiny_config(grid=small(steps=12, learning_rate=[0.1, 0.01], knobs={"**/T": [1, 3]}))
    planned = plan(config, toy)
    # mlp declares no knob T: 2 lr x 2 seeds; choicenet: 2 lr x 2 T x 2 seeds.
    rows = [c.row for c in planned.cells]
    assert [r["model"] for r in rows].count("mlp") == 4
    assert [r["model"] for r in rows].count("choicenet") == 8
    assert len({r["cell_id"] for r in rows}) == 12
    assert [len(g.cells) for g in planned.groups] == [4, 8]  # lr and T vary within a group
    assert planned.hparam_columns[-1] == "knob/**/T"
    mlp = next(r for r in rows if r["model"] == "mlp")
    assert (mlp["depth"], mlp["width"]) == (1, "8")
    assert mlp["knob/**/T"] != mlp["knob/**/T"]  # NaN: the axis does not apply
    choice = [c for c in planned.cells if c.row["model"] == "choicenet"]
    assert {c.cell.hparams.knobs for c in choice} == {(("**/T", 1.0),), (("**/T", 3.0),)}
    assert {c.row["group_id"] for c in choice} == {planned.groups[1].group_id}
    assert set(planned.groups[1].metrics) == {f"path_weight/blocks_0/branch_{i}" for i in range(3)}
    again = plan(config, toy)  # ids are stable
    assert [c.cell_id for c in again.cells] == [c.cell_id for c in planned.cells]


def test_a_plan_and_its_groups_print_as_one_line_summaries():
    """Each printed every cell's config and row (a REPL's echo of ``plan(...)``)."""
    row = {"model": "mlp", "dataset": "toy", "cell_id": "c"}
    cells = tuple(_plan.PlannedCell(None, row) for _ in range(500))
    groups = (
        _plan.PlannedGroup("mlp-1", cells, ()),
        _plan.PlannedGroup("moe-2", cells[:1], ("b",)),
    )
    assert repr(_plan.Plan(groups, {"toy": None}, ())) == (
        "Plan(501 cells in 2 groups ['mlp-1', 'moe-2'] on ['toy'])"
    )
    assert repr(groups[0]) == "PlannedGroup('mlp-1': 500 cells of mlp on 'toy')"
    assert repr(groups[1]) == "PlannedGroup('moe-2': 1 cell of mlp on 'toy', metrics ['b'])"
    many = tuple(_plan.PlannedGroup(f"mlp-{i:08x}", cells[:1], ()) for i in range(40))
    assert repr(_plan.Plan(many, {"toy": None}, ())) == (
        "Plan(40 cells in 40 groups ['mlp-00000000', 'mlp-00000001', 'mlp-00000002', "
        "'mlp-00000003', 'mlp-00000004', 'mlp-00000005', 'm… on ['toy'])"
    )


def test_a_grid_points_hyperparameters_are_hashed_once_for_all_its_seeds(toy, monkeypatch):
    """A cell id hashes its hyperparameters less those at their default
    (`_plan._hparams_identity`, which builds and checks a default `HParams`): done for
    each seed, twice (its id, and the one older phosjax gave it), it made planning the
    1536 cells of configs/gpu.yaml take a third longer (3.7 s, not 2.7 s). Its seeds share it."""
    hashed = []
    identity = _plan._hparams_identity
    monkeypatch.setattr(_plan, "_hparams_identity", lambda h: hashed.append(h) or identity(h))
    planned = plan(tiny_config(seeds=8), toy)
    assert (len(planned.cells), len(hashed)) == (16, 2)  # 2 models x 8 seeds; 2 grid points


def test_values_one_float32_value_are_a_bench_error_naming_them(toy):
    """They ended in the engine's bare ValueError, a traceback of the bench command."""
    config = tiny_config(grid=small(learning_rate=[0.1, 0.100000001]))
    with pytest.raises(BenchError, match=r"grid gives .* learning_rate \(0.1 and 0.100000001\)"):
        plan(config, toy)


def test_a_momentum_axis_applies_only_to_the_momentum_optimizer(toy):
    grid = small(steps=12, optimizer=["adam", "momentum"], momentum=[0.5, 0.9])
    planned = plan(tiny_config(models=[{"name": "mlp", "width": 8}], grid=grid, seeds=1), toy)
    rows = [(c.row["optimizer"], c.row["momentum"], c.cell.hparams.momentum) for c in planned.cells]
    assert [r[0] for r in rows] == ["adam", "momentum", "momentum"]  # adam once, not twice
    assert rows[0][1] != rows[0][1] and rows[0][2] == 0.9  # NaN column, the default inside
    assert [r[1:] for r in rows[1:]] == [(0.5, 0.5), (0.9, 0.9)]
    plain = plan(tiny_config(models=[{"name": "mlp", "width": 8}], grid=small(steps=12)), toy)
    default_adam = plain.cells[0].cell_id  # an adam cell keeps the id it always had
    assert (
        default_adam
        == plan(
            tiny_config(models=[{"name": "mlp", "width": 8}], grid=small(steps=12, momentum=[0.5])),
            toy,
        )
        .cells[0]
        .cell_id
    )


def test_depth_and_width_axes_apply_to_models_without_their_own(toy):
    config = tiny_config(
        models=["mlp", {"name": "choicenet", "width": 8}], grid=small(width=[4, [6]], depth=2)
    )
    rows = [c.row for c in plan(config, toy).cells]
    assert {(r["model"], r["width"], r["depth"]) for r in rows} == {
        ("mlp", "4", 2),
        ("mlp", "6", 2),
        ("choicenet", "8", 2),
    }


@pytest.mark.parametrize(
    ("grid", "own"),
    [({"width": [16, 32]}, "width: []"), ({"depth": 2, "width": 16}, "depth: 0, width: []")],
)
def test_grid_sizes_a_model_cannot_take_name_the_grid_and_the_entry_to_write(toy, grid, own):
    """A block-less ``logreg`` in a grid of widths: the error says where the width came
    from and the entry that plans it (its defaults), which then plans."""
    config = tiny_config(models=["logreg", "mlp"], grid=small(**grid))
    taken = ", ".join(f"grid.{k}" for k in grid)
    written = re.escape(f"e.g. {{name: logreg, {own}}}")
    with pytest.raises(BenchError, match=rf"model 'logreg' on 'toy'[: ].*\({taken}: .*{written}"):
        plan(config, toy)
    entry = {"name": "logreg", **{k: v for k, v in (("depth", 0), ("width", [])) if k in grid}}
    planned = plan(tiny_config(models=[entry, "mlp"], grid=small(**grid)), toy)
    assert {c.row["model"] for c in planned.cells} == {"logreg", "mlp"}


@pytest.mark.parametrize("grid", [{}, {"depth": [1, 2]}])
def test_an_entry_refused_for_its_own_sizes_is_an_entry_error_the_grid_s_not(toy, grid):
    """An entry's own bad width was an `_plan.EntryError` (which `new` names with the file
    setting models) only where it took none of the grid's sizes: with a grid of depths, a
    plain BenchError, the file unnamed. A size of the grid's refused is the grid's."""
    config = tiny_config(models=[{"name": "mlp", "width": [0]}], grid=small(**grid))
    with pytest.raises(_plan.EntryError, match=r"^model 'mlp' on 'toy': width must be "):
        plan(config, toy)
    with pytest.raises(BenchError) as info:
        plan(tiny_config(models=["logreg"], grid=small(depth=[1, 2])), toy)
    assert type(info.value) is BenchError


def test_unknown_model_lists_the_registered_ones(toy):
    message = r"unknown model 'mpl' \(did you mean 'mlp'\?\); registered models: .*mlp"
    with pytest.raises(BenchError, match=message):
        plan(tiny_config(models=["mpl"]), toy)


def test_a_model_name_that_cannot_name_a_file_is_refused(toy):
    """Its part files would land in a folder of results/ that no reader reads."""
    with pytest.raises(BenchError, match=r"model 'test_plan/mlp' cannot name the bench's files"):
        plan(tiny_config(models=[SLASHED]), toy)


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    config = tiny_config(datasets=["mnist2d"], data_dir=str(tmp_path))
    with pytest.raises(BenchError, match=r"unknown data set 'mnist2d': .*built in \(.*mnist1d"):
        plan(config)


@pytest.fixture(scope="module")
def toys_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("toys")
    tfds_toys.prepare(tfds_toys.ToyConfigs, data_dir, config="small")
    tfds_toys.prepare(tfds_toys.ToyRegression, data_dir)
    tfds_toys.prepare(tfds_toys.ToyNamedFeatures, data_dir)
    tfds_toys.prepare(tfds_toys.ToyTrainOnly, data_dir)
    tfds_toys.prepare(tfds_toys.ToySeveralInputs, data_dir)
    tfds_toys.prepare(tfds_toys.ToyScalarInput, data_dir)
    return str(data_dir)


def test_dataset_features_pick_the_input_and_label_a_bench_reads(toys_dir):
    named = {"datasets": ["toy_named_features"], "data_dir": toys_dir, "grid": {"batch_size": 4}}
    with pytest.raises(BenchError) as raised:  # it said load's "e.g. features=(...)"
        plan(tiny_config(**named))
    assert str(raised.value) == (
        "data set 'toy_named_features' has no feature 'image' (features: ['digit', 'pixels']); "
        "a bench reads its supervised_keys, else 'image' and 'label', unless its "
        "dataset_features entry names the input and the label, e.g. dataset_features: "
        "{toy_named_features: [pixels, digit]}"
    )
    features = {"toy_named_features": ["pixels", "digit"]}
    planned = plan(tiny_config(**named, dataset_features=features))
    data = planned.datasets["toy_named_features"]
    assert (data.input_shape, data.num_classes) == ((2,), 3)


def test_a_data_set_of_one_number_per_example_plans(toys_dir):
    # EntryError: model 'mlp' on 'toy_scalar_input': input_shape () has 0 axes; ... a scalar
    # example is input_shape (1,), x[..., None], which a bench config cannot do.
    named = {"datasets": ["toy_scalar_input"], "data_dir": toys_dir, "grid": {"batch_size": 4}}
    planned = plan(tiny_config(**named))
    assert {cell.cell.model.input_shape for cell in planned.cells} == {(1,)}


def test_supervised_keys_naming_several_inputs_say_which_dataset_features_to_write(toys_dir):
    # It said load's "load needs one input feature and one label feature, each named by a
    # string", naming no dataset_features entry.
    named = {"datasets": ["toy_several_inputs"], "data_dir": toys_dir, "grid": {"batch_size": 4}}
    with pytest.raises(BenchError) as raised:
        plan(tiny_config(**named))
    assert str(raised.value).endswith(
        "not one input and one label feature (features: ['a', 'b', 'label']); a bench reads its "
        "supervised_keys, else 'image' and 'label', unless its dataset_features entry names the "
        "input and the label, e.g. dataset_features: {toy_several_inputs: [a, label]}"
    )
    features = {"toy_several_inputs": ["b", "label"]}
    data = plan(tiny_config(**named, dataset_features=features)).datasets["toy_several_inputs"]
    assert (data.input_shape, data.num_classes) == ((3,), 2)


@pytest.mark.parametrize(
    ("features", "hint"),
    [
        (["pixels", "digits"], ". Did you mean 'digit'?"),
        (["pixels", "zzz"], ""),
    ],
)
def test_a_dataset_features_entry_naming_no_feature_names_the_entry(toys_dir, features, hint):
    # It was load's Python wording: "features=('pixels', 'digits') names no feature of it".
    named = {"datasets": ["toy_named_features"], "data_dir": toys_dir}
    config = tiny_config(**named, dataset_features={"toy_named_features": features})
    with pytest.raises(BenchError) as raised:
        plan(config)
    assert str(raised.value) == (
        f"dataset_features.toy_named_features names {features[1]!r}, which data set "
        "'toy_named_features' lacks (its features: ['digit', 'pixels']); name its input "
        "and label feature there, e.g. dataset_features: {toy_named_features: [pixels, digit]}"
        f"{hint}"
    )


def test_dataset_splits_pick_the_splits_a_bench_trains_and_tests_on(toys_dir):
    named = {"datasets": ["toy_train_only"], "data_dir": toys_dir, "grid": {"batch_size": 2}}
    with pytest.raises(BenchError) as raised:
        plan(tiny_config(**named))
    assert str(raised.value) == (
        "data set 'toy_train_only' has splits ['train']; a bench trains on 'train' and tests "
        "on 'test' (else 'validation') unless its dataset_splits entry names the two, e.g. "
        "dataset_splits: {toy_train_only: ['train[:90%]', 'train[90%:]']}"
    )
    splits = {"toy_train_only": ["train[:60%]", "train[60%:]"]}
    data = plan(tiny_config(**named, dataset_splits=splits)).datasets["toy_train_only"]
    assert (data.num_train, data.num_test) == (3, 2)


def test_a_data_set_name_with_a_split_names_the_dataset_splits_entry_to_write(tmp_path):
    # It was load's Python wording: "load takes the data set's name alone ... splits=(...)".
    with pytest.raises(BenchError) as raised:
        plan(tiny_config(datasets=["digits[:10%]"], data_dir=str(tmp_path)))
    assert str(raised.value) == (
        "datasets names 'digits[:10%]', a data set with a split ('[:10%]'); a bench takes the "
        "data set's name alone in datasets (digits) and the splits to train and test on in "
        "dataset_splits, e.g. dataset_splits: {digits: ['train[:10%]', 'test']}"
    )
    assert not list(tmp_path.iterdir())  # nothing prepared


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        (
            ["train", "tset"],
            "data set 'digits' has no split 'tset' (dataset_splits: {digits: ['train', 'tset']} "
            "names it; its splits: ['test', 'train']). Did you mean 'test'?",
        ),
        (
            ["train[:60%]", "train[50%:]"],
            "data set 'digits': dataset_splits: {digits: ['train[:60%]', 'train[50%:]']} reads "
            "the examples train[718:862] both to train and to test; name disjoint parts, e.g. "
            "dataset_splits: {digits: ['train[:90%]', 'train[90%:]']}",
        ),
    ],
)
def test_a_bad_dataset_splits_entry_is_named_as_the_config_writes_it(tmp_path, splits, message):
    # It was load's Python wording: "splits=('train', 'tset') names it".
    with pytest.raises(BenchError) as raised:
        plan(
            tiny_config(
                datasets=["digits"], data_dir=str(tmp_path), dataset_splits={"digits": splits}
            )
        )
    assert str(raised.value) == message
    assert not list(tmp_path.iterdir())  # nothing prepared


def test_data_set_names_load_accepts_the_bench_accepts(toys_dir):
    names = ["toy_configs", "toy_configs/small:1.0.0"]
    datasets = load_datasets(names, toys_dir)
    assert list(datasets) == names
    assert {data.x_train.shape for data in datasets.values()} == {(5, 2)}


def test_a_data_set_named_with_its_default_config_is_one_data_set(toys_dir):
    names = ["toy_configs", "toy_configs/small"]  # the default config of toy_configs
    splits = {"toy_configs/small": ["train", "test"]}  # as read without it
    config = tiny_config(datasets=names, data_dir=toys_dir, dataset_splits=splits)
    with pytest.raises(BenchError) as raised:
        _plan.check_distinct_datasets(config)
    assert str(raised.value) == (
        "datasets names one data set twice: 'toy_configs' and 'toy_configs/small' are both "
        "toy_configs/small:1.0.0, read alike (input 'image', label 'label', splits ['train', "
        "'test']), which a bench would train and report as two; keep 'toy_configs' alone: "
        "datasets: [toy_configs], and no dataset_splits entry for 'toy_configs/small'"
    )


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("toy_regression", r"data set 'toy_regression': label feature 'y' \(Tensor, dtype float32"),
        ("toy_configs:9.9.9", r"the prepared versions of 'toy_configs' are toy_configs/small:1\.0"),
        ("toy_configs:9.9", r"data set name 'toy_configs:9\.9' is malformed"),
        (
            "TOY_CONFIGS",
            r"'TOY_CONFIGS' is not spelled as TFDS names the data set: write "
            r"'toy_configs' \(",
        ),
    ],
)
def test_every_name_is_checked_before_any_loads(toys_dir, monkeypatch, name, match):
    def load(name, data_dir, features, splits):
        raise AssertionError(f"loaded {name!r} before checking every name")

    monkeypatch.setattr(_plan, "load", load)
    with pytest.raises(BenchError, match=match):
        load_datasets(["toy_configs", name], toys_dir)


def test_a_models_entry_refused_on_a_built_in_data_set_is_refused_before_it_is_prepared(
    tmp_path,
):
    """A width mlp refuses on mnist1d waited for mnist1d to be prepared (6 s, its lines on
    stderr first) before it was refused; mnist1d's metadata declares the shape it is
    refused on, so nothing is prepared."""
    data_dir = tmp_path / "data"
    entry = {"name": "mlp", "width": ["a", "b"]}
    config = tiny_config(models=[entry], datasets=["mnist1d"], data_dir=str(data_dir))
    with pytest.raises(BenchError, match=r"^model 'mlp' on 'mnist1d': width must be an int >= 1"):
        plan(config)
    assert not data_dir.exists()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (ValueError, "data set 'toy_configs': y_test holds the label 3, outside [0, 3)"),
        (PermissionError, "cannot prepare built-in data set 'toy_configs' in data_dir '/ro'"),
    ],
)
def test_an_error_of_load_is_a_bench_error(toys_dir, monkeypatch, kind, message):
    def load(name, data_dir, features, splits):
        raise kind(message)

    monkeypatch.setattr(_plan, "load", load)
    with pytest.raises(BenchError, match=re.escape(message)) as error:
        load_datasets(["toy_configs"], toys_dir)
    assert isinstance(error.value.__cause__, kind)


def test_knob_selector_matching_no_knob_is_an_error(toy):
    config = tiny_config(grid=small(knobs={"**/temperature": [1, 2]}))
    with pytest.raises(BenchError, match=r"'\*\*/temperature' matches no knob.*blocks_0/T"):
        plan(config, toy)


def test_a_knob_axis_matching_only_a_knob_a_scan_dropped_names_it(toy):
    # it said 'the models declare: no knobs at all.', as if the model had none
    config = tiny_config(models=[DROPS_KNOB], grid=small(knobs={"**/T": [1]}))
    with pytest.raises(
        BenchError,
        match=r"no knobs at all\. It matches 'layers/T' in model 'test_plan_drops_knob', "
        "which a lifted transform dropped: nn.scan",
    ):
        plan(config, toy)


def test_a_knob_selector_naming_the_end_of_paths_says_the_one_meant(toy):
    # it said only which knobs the models declare, where px.tweak names '**/T'
    config = tiny_config(models=["choicenet"], grid=small(knobs={"T": [1, 2]}))
    with pytest.raises(BenchError) as error:
        plan(config, toy)
    assert str(error.value).endswith(
        ". A selector matches whole paths; '**/T' would match 'blocks_0/T', 'blocks_1/T'."
    )


def test_a_knob_value_out_of_its_range_is_an_error_at_planning(toy):
    # it planned, and the cells trained with NaN outputs (the temperature traced)
    config = tiny_config(models=["choicenet"], grid=small(knobs={"**/T": [1, 0]}))
    with pytest.raises(
        BenchError,
        match=r"grid.knobs\['\*\*/T'\] = 0 for model 'choicenet' on 'toy': knob "
        r"'blocks_0/T' must be a finite number > 0, got 0\.",
    ):
        plan(config, toy)


def test_two_knob_axes_matching_one_knob_are_an_error_at_planning(toy):
    """Planned, the bench failed once the group came to train (init_group refuses them)."""
    config = tiny_config(models=["choicenet"], grid=small(knobs={"**/T": [1], "blocks_0/T": [2]}))
    with pytest.raises(
        BenchError,
        match=r"^grid.knobs for model 'choicenet' on 'toy': Selectors '\*\*/T' and "
        r"'blocks_0/T' both match knob 'blocks_0/T'",
    ):
        plan(config, toy)


def test_a_model_whose_path_weight_a_lifted_transform_drops_is_an_error_at_planning(toy):
    """Planned, the bench failed once its group came to train (the train step refuses it)."""
    config = tiny_config(models=[LIFTED], grid=small())
    with pytest.raises(
        BenchError,
        match=rf"^model '{LIFTED}' on 'toy': path weight 'members/branch' was opened but not "
        r"recorded.*px.scan_axes\(params=0\)",
    ):
        plan(config, toy)


@pytest.mark.parametrize("selector", ["**/h", "members/h"])
def test_a_regularizer_on_a_tag_a_lifted_transform_drops_is_an_error_at_planning(toy, selector):
    """Planned (it matched the top 'h'), the bench failed once its group came to train;
    one matching the dropped tag alone was said to match no tagged value, as a typo."""
    on_h = [{"selector": selector, "kind": "l2", "on": "activations", "strength": 0.1}]
    config = tiny_config(models=[TAGS_LIFTED], grid=small(regularizers=on_h))
    with pytest.raises(
        BenchError,
        match=rf"^model '{TAGS_LIFTED}' on 'toy': tagged value 'members/h' was tagged but not "
        rf"recorded.*omit 'intermediates'.*the regularizer {re.escape(repr('reg/l2/' + selector))} "
        "would not penalize it",
    ):
        plan(config, toy)


@pytest.mark.parametrize("depths", [[1, 3], [3, 1]])
def test_a_knob_applies_to_each_config_of_a_model_that_declares_it(toy, depths):
    config = tiny_config(models=["choicenet"], grid=small(depth=depths, knobs={"blocks_2/T": 2}))
    rows = [c.row for c in plan(config, toy).cells]
    knob = {r["depth"]: r["knob/blocks_2/T"] for r in rows}
    assert knob[3] == 2.0 and np.isnan(knob[1])  # depth 1 has no block 2


def test_compute_dtype_is_an_axis_whose_float32_cells_keep_their_ids(toy):
    plain = plan(tiny_config(models=["mlp"], grid=small()), toy)
    both = plan(tiny_config(models=["mlp"], grid=small(compute_dtype=["float32", "bfloat16"])), toy)
    rows = [c.row for c in both.cells]
    assert [r["compute_dtype"] for r in rows] == ["float32"] * 2 + ["bfloat16"] * 2
    assert [c.cell_id for c in both.cells[:2]] == [c.cell_id for c in plain.cells]
    assert [g.cells[0].cell.hparams.compute_dtype for g in both.groups] == ["float32", "bfloat16"]
    with pytest.raises(BenchError, match=r"grid.compute_dtype 'float16' is not one of float32, b"):
        tiny_config(grid=small(compute_dtype="float16"))


def test_a_schedule_axis_groups_by_schedule_and_adds_its_columns_only_when_set(toy):
    plain = plan(tiny_config(models=["mlp"], grid=small(steps=12)), toy)
    grid = small(steps=12, lr_schedule=["constant", "cosine"], warmup_steps=[0, 4])
    scheduled = plan(tiny_config(models=["mlp"], grid=grid), toy)
    assert "lr_schedule" not in plain.hparam_columns and "warmup_steps" not in plain.hparam_columns
    assert scheduled.hparam_columns[-2:] == ("lr_schedule", "warmup_steps")
    rows = [c.row for c in scheduled.cells]
    assert [(r["lr_schedule"], r["warmup_steps"]) for r in rows[::2]] == [
        ("constant", 0),
        ("constant", 4),
        ("cosine", 0),
        ("cosine", 4),
    ]
    assert [c.cell_id for c in scheduled.cells[:2]] == [c.cell_id for c in plain.cells]
    assert [len(g.cells) for g in scheduled.groups] == [2, 2, 2, 2]  # the shape is shared
    hparams = scheduled.groups[3].cells[0].cell.hparams
    assert (hparams.lr_schedule, hparams.warmup_steps, hparams.steps) == ("cosine", 4, 12)
    only_warmup = plan(tiny_config(models=["mlp"], grid=small(steps=12, warmup_steps=3)), toy)
    assert "lr_schedule" not in only_warmup.hparam_columns
    assert only_warmup.cells[0].row["warmup_steps"] == 3


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"lr_schedule": "cos"}, r"grid.lr_schedule 'cos' is not one of .*mean 'cosine'\?"),
        ({"warmup_steps": -1}, r"grid.warmup_steps .*>= 0"),
        ({"warmup_steps": 2.5}, r"grid.warmup_steps .*2.5"),
        (
            {"steps": [4, 12], "warmup_steps": 6},
            r"grid.warmup_steps 6 is more than grid.steps 4, and the grid trains every pair",
        ),
    ],
)
def test_bad_schedules_name_the_grid_field(toy, grid, message):
    with pytest.raises(BenchError, match=message):
        plan(tiny_config(models=["mlp"], grid=small(**grid)), toy)


def test_bad_model_option_names_the_model(toy):
    config = tiny_config(models=[{"name": "mlp", "options": {"kernel": 3}}])
    with pytest.raises(BenchError, match=r"model 'mlp' on 'toy' has no option"):
        plan(config, toy)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"name": "cnn2d"}, r"model 'cnn2d' on 'toy' takes image inputs"),
        (
            {"name": "transformer", "width": 30, "options": {"num_heads": 4}},
            r"model 'transformer' on 'toy': .*option num_heads 4 does not divide the width 30",
        ),
        (
            {"name": "cnn1d", "width": 8, "options": {"kernel_size": 0}},
            r"model 'cnn1d' on 'toy': .*option kernel_size must be an int >= 1",
        ),
        ({"name": BROKEN}, rf"model '{BROKEN}' on 'toy': ZeroDivisionError\('a bug in its code'"),
        (  # its train step traces: only its evaluation, once its group had trained, failed
            {"name": DROPS_AT_EVALUATION},
            rf"model '{DROPS_AT_EVALUATION}' on 'toy': InvalidRngError\(.*needs PRNG for",
        ),
        (
            {"name": OWN_STREAM},
            rf"model '{OWN_STREAM}' on 'toy': _OwnStream draws random numbers from the rng "
            r"stream 'noise', but training gives a model only 'dropout'",
        ),
        (  # planned with every collection writable: its group failed once it trained
            {"name": COUNTS},
            rf"model '{COUNTS}' on 'toy': Counts writes variable 'calls' of its collection "
            r"'counter' \(at '/'\) in training, but a train step writes only 'batch_stats'",
        ),
        (  # was told the step reads params as init made them
            {"name": COUNTS_IN_PARAMS},
            "^"
            + re.escape(
                f"model '{COUNTS_IN_PARAMS}' on 'toy': Counts writes variable 'calls' of its "
                "collection 'params' (at '/') in training, but a train step changes params "
                "only by the optimizer's update (from their gradient): keep what the model "
                "updates in training itself in 'batch_stats' (running statistics, carried from "
                "step to step)"
            )
            + "$",
        ),
    ],
)
def test_a_model_that_fails_to_build_names_the_model_and_data_set(toy, entry, match):
    with pytest.raises(BenchError, match=match):
        plan(tiny_config(models=[entry]), toy)


def test_bad_hparam_is_an_error(toy):
    with pytest.raises(BenchError, match="optimizer 'adamm'"):
        plan(tiny_config(grid=small(optimizer="adamm")), toy)


def test_a_batch_size_larger_than_the_train_split_is_an_error(toy):
    with pytest.raises(
        BenchError,
        match=r"^grid\.batch_size=65 is larger than the train split of data set 'toy', which "
        r"has 64 examples; set grid\.batch_size to at most 64$",
    ):
        plan(tiny_config(grid={"batch_size": [64, 65]}), toy)
    assert len(plan(tiny_config(grid={"batch_size": 64}), toy).cells) == 4


def test_a_morph_strength_axis_plans_one_cell_per_strength_in_one_group(toy):
    regularizers = [{"kind": "morph", "cost": "params", "strength": [0, 0.1, 1.0]}]
    config = tiny_config(models=["mlp", UNFOLLOWED], grid=small(regularizers=regularizers), seeds=1)
    planned = plan(config, toy)
    column = "reg/morph_params/**"
    assert planned.hparam_columns[-1] == column
    mlp = [c for c in planned.cells if c.row["model"] == "mlp"]
    assert [c.row[column] for c in mlp] == [0, 0.1, 1.0]
    assert [c.cell.hparams.regularizers[0].strength for c in mlp] == [0, 0.1, 1.0]
    assert {c.cell.hparams.regularizers[0].cost for c in mlp} == {"params"}
    assert len({c.row["group_id"] for c in mlp}) == 1  # the strength is a per-cell value
    # the other model loops (while), which phosjax.morph cannot follow: it ignores the axis
    [unfollowed] = [c for c in planned.cells if c.row["model"] == UNFOLLOWED]
    assert unfollowed.cell.hparams.regularizers == ()
    assert unfollowed.row[column] != unfollowed.row[column]
    metrics = {g.cells[0].row["model"]: g.metrics for g in planned.groups}
    assert "regularizer" in metrics["mlp"] and "regularizer" not in metrics[UNFOLLOWED]


def test_a_morph_regularizer_that_applies_to_no_model_is_an_error(toy):
    regularizers = [{"kind": "morph", "selector": "head/**", "strength": 0.1}]
    config = tiny_config(models=["mlp", UNFOLLOWED], grid=small(regularizers=regularizers))
    with pytest.raises(
        BenchError,
        match=r"'reg/morph_flops/head/\*\*' applies to no model \(mlp: "
        r"no channel group matches 'head/\*\*'; its groups: \['blocks_0/Dense_0'\]; "
        rf"{UNFOLLOWED}: cannot follow channels through while",
    ):
        plan(config, toy)


def test_an_l1_l2_regularizer_skips_models_its_selector_matches_nothing_in(toy):
    """Like ``morph`` and knobs: choicenet has ``gate_logits`` params, mlp has none."""
    regularizers = [
        {"kind": "l1", "selector": "blocks_0/gate_logits", "strength": 0.1},
        {"kind": "l2", "selector": "**/branches_1/pre_act", "on": "activations"},
    ]
    planned = plan(tiny_config(grid=small(regularizers=regularizers), seeds=1), toy)
    by_model = {c.row["model"]: c for c in planned.cells}
    kinds = [(r.kind, r.on) for r in by_model["choicenet"].cell.hparams.regularizers]
    assert kinds == [("l1", "params"), ("l2", "activations")]
    assert by_model["choicenet"].row["reg/l1/blocks_0/gate_logits"] == 0.1
    assert by_model["mlp"].cell.hparams.regularizers == ()
    assert np.isnan(by_model["mlp"].row["reg/l1/blocks_0/gate_logits"])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"kind": "l2", "selector": "**/kernal"},
            r"'reg/l2/\*\*/kernal' applies to no model \(mlp: Selector '\*\*/kernal' "
            r"matched no param among 6; nearest: 'head/kernel'",
        ),
        (
            {"kind": "l1", "selector": "**/pre_akt", "on": "activations"},
            r"\(mlp: Selector '\*\*/pre_akt' matched no activation \(tagged value\) among 6; "
            r"nearest: '.*pre_act'",
        ),
    ],
)
def test_an_l1_l2_selector_that_matches_nothing_is_an_error_before_training(toy, entry, message):
    config = tiny_config(models=[{"name": "mlp", "width": 8}], grid=small(regularizers=[entry]))
    with pytest.raises(BenchError, match=message):
        plan(config, toy)


def test_an_l2_selector_of_a_tagged_value_on_params_is_told_to_give_on_activations(toy):
    """It named the nearest params alone, though on='params' is the default."""
    entry = {"kind": "l2", "selector": "**/pre_act"}
    config = tiny_config(models=[{"name": "mlp", "width": 8}], grid=small(regularizers=[entry]))
    with pytest.raises(BenchError, match=r"not a param: give on='activations'\.\)\.$"):
        plan(config, toy)


def test_cell_ids_ignore_later_hparams_at_their_default():
    # Benches planned before HParams.compute_dtype existed keep their cell ids (and resume).
    from phosjax.bench._plan import _hparams_identity
    from phosjax.train import HParams

    default, bf16 = HParams(), HParams(compute_dtype="bfloat16")
    assert "compute_dtype" not in _hparams_identity(default)
    assert _hparams_identity(bf16)["compute_dtype"] == "bfloat16"
    assert {k: v for k, v in _hparams_identity(bf16).items() if k != "compute_dtype"} == (
        _hparams_identity(default)
    )
    for later in ({"lr_schedule": "cosine"}, {"warmup_steps": 5}):
        [name] = later
        assert name not in _hparams_identity(default)
        assert _hparams_identity(HParams(**later)) == {**_hparams_identity(default), **later}


@pytest.mark.parametrize(
    "given, match",
    [
        (
            {"toy2": None},
            r"datasets has no 'toy', a data set of the config \(toy\); it has "
            r"\['toy2'\] \(did you mean 'toy2'\?\); pass \{name: ArrayDataset\}",
        ),
        ({"toy": "toy"}, r"datasets\['toy'\] is a str, not an ArrayDataset; pass \{name:"),
        (["toy"], r"datasets must be a mapping, got list; pass \{name: ArrayDataset\}"),
    ],
)
def test_datasets_given_instead_of_loaded_name_what_they_lack(given, match):
    """Not a bare KeyError: 'toy' or AttributeError: 'str' object has no attribute ..."""
    with pytest.raises(BenchError, match=match):
        plan(tiny_config(), given)


@pytest.mark.parametrize("config", [{"models": ["mlp"]}, "configs/example.yaml"])
def test_plan_of_a_config_that_is_no_bench_config_says_how_to_make_one(toy, config):
    """Not AttributeError: 'dict' object has no attribute 'model_entries'."""
    how = re.escape("(BenchConfig.from_dict(data), load_config(path))")
    match = rf"^config must be a BenchConfig {how}, got {type(config).__name__} "
    with pytest.raises(BenchError, match=match):
        plan(config, toy)


def test_a_long_config_that_is_no_bench_config_is_cut_with_a_mark(toy):
    """Not ``[0, 1, ..., 21, 2``: a cut number would read as another."""
    with pytest.raises(BenchError, match=r", got list \[0, 1, .*, 21, …\.$"):
        plan(list(range(100)), toy)


def test_a_float_options_registered_int_keeps_the_model_id_older_phosjax_gave(toy):
    """Older phosjax hashed ``options={"scale": 0}``'s int as registered, now the ``0.0``
    it resolves to: a bench it made must be known by that id, or it is refused as made
    by a model whose code changed."""
    config = tiny_config(models=[{"name": SCALED_AT_0, "width": 8, "depth": 1}], seeds=1)
    data = toy["toy"]
    model = ModelConfig(SCALED_AT_0, data.num_classes, data.input_shape, depth=1, width=8)
    older = model.resolved().to_dict()
    assert older["options"]["scale"] == 0.0
    older["options"]["scale"] = 0
    ids = _plan.check_model_sizes(config, toy)["toy"]
    assert f"{SCALED_AT_0}-{_plan.short_hash(older, 8)}" in ids
