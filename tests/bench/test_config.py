"""Bench configs: YAML loading, unknown keys, safe parsing, CLI overrides."""

import pathlib

import optax
import pytest

from phosjax.bench import BenchConfig, BenchError, load_config, plan
from phosjax.bench.new import parser
from phosjax.train import HParams


def write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    return path


def test_load_config_reads_axes_and_entries(tmp_path):
    path = write(
        tmp_path,
        "models: [mlp, {name: cnn1d, depth: 2, options: {kernel_size: 5}}]\n"
        "grid: {learning_rate: [0.1, 0.01], knobs: {'**/T': [0.5, 2]}}\nseeds: [3, 4]\n",
    )
    config = load_config(path)
    entries = config.model_entries()
    assert [e.name for e in entries] == ["mlp", "cnn1d"]
    assert (entries[1].depth, entries[1].options) == (2, {"kernel_size": 5})
    axes = config.grid.axes()
    assert axes["learning_rate"] == [0.1, 0.01]
    assert axes["knob/**/T"] == [0.5, 2]
    assert axes["batch_size"] == [128]
    assert config.seed_list() == [3, 4]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("modelz: [mlp]\n", r"unknown key 'modelz' in the bench config\. Did you mean 'models'"),
        ("grid: {learning_rat: 0.1}\n", r"unknown key 'learning_rat' in grid\. .*'learning_rate'"),
        ("models: [{name: mlp, widht: 3}]\n", r"'widht' in a models entry\. .*'width'"),
        ("models: [{depth: 3}]\n", r"a models entry needs a 'name'"),
        (  # said only "Valid keys: ...", without the one that was meant
            "learning_rate: [0.1]\n",
            r"^unknown key 'learning_rate' in the bench config: 'learning_rate' is a grid "
            r"setting; write it inside grid$",
        ),
        (
            "grid: {dataset_splits: {digits: [train, test]}}\n",
            r"^unknown key 'dataset_splits' in grid: 'dataset_splits' is no grid setting; "
            r"write it at the top level, beside grid$",
        ),
        (  # said only "Did you mean 'kind'?", of a key the user wrote as kind
            "grid: {regularizers: [{kind:l1, strength: 0.1}]}\n",
            r"^unknown key 'kind:l1' in a grid\.regularizers entry \(YAML reads 'kind:l1' as one "
            r"key without a value: a colon takes a space after it, as in 'kind: l1'\)\. Did you",
        ),
        (  # a TypeError from the "did you mean" of an unknown model, as the run planned
            "models: [{name: , width: 8}]\n",
            r"a models entry's name must be a registered model's name, e.g. \{name: mlp\}, "
            r"got None in \{'name': None, 'width': 8\}\.",
        ),
        ("models: [{name: 3}]\n", r"entry's name must be .* got 3 in \{'name': 3\}\."),
        (  # said "a models entry must be a mapping of keys to values", as if no name were
            "models: [mlp, 5]\n",
            r"^a models entry is a registered model's name \(mlp\) or a mapping of its fields "
            r"\(\{name: mlp, width: 64\}\), got 5\.$",
        ),
        ("grid: [1, 2]\n", r"grid must be a mapping"),
        ("models: [mlp\n", r"is not valid YAML"),
        (
            "models: [{name: mlp, options: [1, 2]}]\n",
            r"the options of models entry 'mlp' must be a mapping of option names to values "
            r"\(or null\), got \[1, 2\]\.",
        ),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, match):
    with pytest.raises(BenchError, match=match):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("seeds: -1\n", r"seeds must be a number of seeds >= 1 or a list, got -1\."),
        ("seeds: 0\n", r"seeds must be a number of seeds >= 1 or a list, got 0\."),
        ("seeds: []\n", r"seeds is an empty list; give one value or a list of at least one"),
        ("grid: {learning_rate: []}\n", r"grid\.learning_rate is an empty list"),
        ("grid: {width: []}\n", r"grid\.width is an empty list"),
        ("grid: {knobs: {'**/T': []}}\n", r"grid\.knobs\['\*\*/T'\] is an empty list"),
        ("grid: {knobs: [1, 2]}\n", r"grid\.knobs must be a mapping of knob selectors"),
        (  # was "must be a number, got None (NoneType)"
            "grid: {knobs: {T:1}}\n",
            r"^grid\.knobs\['T:1'\] has no value \(YAML reads 'T:1' as one key without a value: a "
            r"colon takes a space after it, as in 'T: 1'\)\.$",
        ),
        (  # both were a traceback from the plan, as it matched them to the models' knobs
            "grid: {knobs: {'blocks_0//T': [1]}}\n",
            r"^grid\.knobs: Selector 'blocks_0//T' has an empty segment \('//' after 'blocks_0'\), "
            r"which no path has; write 'blocks_0/T'\.$",
        ),
        (
            "grid: {knobs: {'blocks_[0': [1]}}\n",
            r"^grid\.knobs: Selector segment 'blocks_\[0' has an unclosed '\['\.$",
        ),
        (
            "grid: {regularizers: [{kind: l2, strength: []}]}\n",
            r"the strength of grid\.regularizers entry 'l2' is an empty list",
        ),
        (
            "strategy: bogus\n",
            r"unknown strategy 'bogus'; strategy must be one of 'auto', 'vmap', 'map', "
            r"'sequential', 'stepwise', 'vmap_matmul', 'map_matmul'\.",
        ),
        ("strategy: vamp\n", r"'map_matmul'\. Did you mean 'vmap'\?$"),
    ],
)
def test_a_grid_with_no_cell_or_an_unknown_strategy_is_a_clear_error(tmp_path, text, match):
    with pytest.raises(BenchError, match=match):
        load_config(write(tmp_path, f"models: [mlp]\n{text}"))


@pytest.mark.parametrize(
    ("text", "repeated"),
    [
        ("models: [mlp]\nseeds: [3, 1, 3]\n", "seeds lists 3"),
        ("models: [mlp]\ndatasets: [mnist1d, toy, mnist1d]\n", "datasets lists 'mnist1d'"),
        ("models: [mlp, logreg, mlp]\n", "models lists 'mlp'"),
        (
            "models: [mlp]\ngrid: {learning_rate: [0.01, 0.001, 0.01]}\n",
            r"grid\.learning_rate lists 0\.01",
        ),
        ("models: [mlp]\ngrid: {width: [[8, 4], 8, [8, 4]]}\n", r"grid\.width lists \[8, 4\]"),
        ("models: [mlp]\ngrid: {knobs: {'**/T': [2, 2]}}\n", r"grid\.knobs\['\*\*/T'\] lists 2"),
    ],
)
def test_a_value_listed_twice_is_refused_by_name(tmp_path, text, repeated):
    # A repeat planned its cells once: seeds [3, 1, 3] trained 2 cells, silently.
    with pytest.raises(BenchError, match=rf"^{repeated} twice; a repeat plans no more cells "):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("grid", "repeated"),
    [
        ({"learning_rate": [0.01, "1e-2"]}, r"grid\.learning_rate lists 0\.01"),
        ({"knobs": {"**/T": [0.5, "5e-1"]}}, r"grid\.knobs\['\*\*/T'\] lists 0\.5"),
    ],
)
def test_a_repeat_written_as_a_string_in_python_is_refused(grid, repeated):
    # from_dict takes "1e-2" for 0.01; the repeat was checked before it was read so.
    with pytest.raises(BenchError, match=rf"^{repeated} twice; "):
        BenchConfig.from_dict({"models": ["mlp"], "datasets": ["toy"], "grid": grid})


def test_a_bench_without_models_is_an_error():
    with pytest.raises(BenchError, match=r"a bench needs at least one model and one data set"):
        BenchConfig.from_dict({"models": []})


def test_a_config_built_directly_checks_its_models_and_grid():
    said = r"^models must be a list of names or entries, got 'mlp'; write models: \[mlp\]\.$"
    with pytest.raises(BenchError, match=said):
        BenchConfig(models="mlp")  # type: ignore[arg-type]
    with pytest.raises(BenchError, match=said):
        BenchConfig.from_dict({"models": "mlp"})
    with pytest.raises(BenchError, match=r"^grid must be a Grid, got dict \{'steps': 5\}"):
        BenchConfig(grid={"steps": 5})  # type: ignore[arg-type]


def test_a_long_grid_that_is_no_grid_is_cut_with_a_mark():
    """Not ``[0, 1, ..., 21, 2``: a cut number would read as another."""
    with pytest.raises(BenchError, match=r"^grid must be a Grid, got list \[0, 1, .*, 21, … \(B"):
        BenchConfig(grid=list(range(100)))  # type: ignore[arg-type]


def test_long_datasets_that_are_no_list_of_names_are_cut_with_a_mark():
    """They were shown whole: a thousand numbers."""
    with pytest.raises(
        BenchError, match=r"^datasets must be a list of data set names, got \[0, 1, .*, 21, …\.$"
    ):
        BenchConfig(datasets=list(range(1000)))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("grid: {learning_rate: -1}\n", r"grid\.learning_rate must be a number > 0, got -1\."),
        ("grid: {learning_rate: [0.1, 0]}\n", r"grid\.learning_rate must be .*, got 0\."),
        ("grid: {learning_rate: abc}\n", r"grid\.learning_rate must be a number > 0, got 'abc'"),
        ("grid: {momentum: x}\n", r"grid\.momentum must be a number, got 'x' \(str\)\."),
        ("grid: {steps: 20.5}\n", r"grid\.steps must be a whole number >= 1, got 20\.5 \(float"),
        ("grid: {steps: 100000000000000000000}\n", r"grid\.steps must fit in int64 .*, got 10+\."),
        ("seeds: [0, -9223372036854775809]\n", r"each of seeds .* must fit in int64"),
        ("seeds: [3, 4294967299]\n", r"seeds 3 and 4294967299 make the same jax\.random\.key"),
        ("grid: {batch_size: [16, 0]}\n", r"grid\.batch_size must be a whole .*, got 0\."),
        ("grid: {grad_clip: x}\n", r"grid\.grad_clip must be a number or null, got 'x'"),
        ("grid: {grad_clip: [1, -1.0]}\n", r"^grid\.grad_clip must be > 0 .*, got -1\.0\.$"),
        ("grid: {label_smoothing: 2.0}\n", r"^grid\.label_smoothing must lie in \[0, 1\] .*2\.0"),
        (
            "grid: {optimizer: adamm}\n",
            r"grid\.optimizer 'adamm' is not one of adam, adamw, sgd, momentum\. Did you mean",
        ),
        ("grid: {knobs: {'**/T': abc}}\n", r"grid\.knobs\['\*\*/T'\] must be a number, got 'abc'"),
        ("eval_every: ten\n", r"eval_every must be a whole number >= 0, got 'ten' \(str\)\."),
        ("checkpoint_every: -5\n", r"checkpoint_every must be a whole number >= 0, got -5\."),
        ("chunk_steps: 0\n", r"chunk_steps must be a whole number >= 1 or null, got 0\."),
        ("eval_every: 2147483648\n", r"eval_every must lie in \[0, 2147483647\] \(2\*\*31 - 1"),
        ("checkpoint_every: 2147483648\n", r"checkpoint_every must lie in \[0, 2147483647\] "),
        ("chunk_steps: 2147483648\n", r"chunk_steps must lie in \[1, 2147483647\] .*int32"),
        ("seeds: 2147483648\n", r"seeds must lie in \[1, 2147483647\] \(a number of seeds"),
        ("seeds: true\n", r"seeds must be a number of seeds >= 1 or a list, got True\."),
        ("seeds: [0, a]\n", r"each of seeds \(a list of seeds\) must be a whole number, got 'a'"),
        (
            "datasets: mnist1d\n",
            r"datasets must be a list of data set names, got 'mnist1d'; write datasets: "
            r"\[mnist1d\]\.",
        ),
        ("datasets: [mnist1d, 3]\n", r"datasets must be a list of .*, got \['mnist1d', 3\]\."),
        ("datasets: []\n", r"a bench needs at least one model and one data set\."),
        ("data_dir: 3\n", r"data_dir must be a folder \(a path\) or null, got 3\."),
        ("blurb_flops: 'false'\n", r"blurb_flops must be true or false, got 'false'\."),
        (
            "dataset_features: {digitz: [image, label]}\n",
            r"dataset_features names 'digitz', which is not among the datasets \('mnist1d'\)\.",
        ),
        (
            "dataset_features: {mnist1d: [x]}\n",
            r"dataset_features.mnist1d must name the input and the label feature, two different "
            r"names, e.g. \[image, label\], got \['x'\]\.",
        ),
        (
            "dataset_splits: {mnist: [train, test]}\n",
            r"dataset_splits names 'mnist', which is not among the datasets \('mnist1d'\)\.",
        ),
        (
            "dataset_splits: {mnist1d: 'train[:90%]'}\n",
            r"dataset_splits.mnist1d must name the split to train on and the split to test on, "
            r"e\.g\. \[train, val\] or \['train\[:90%\]', 'train\[90%:\]'\], got 'train\[:90%\]'\.",
        ),
        (
            "grid: {regularizers: [{kind: l2, strength: [0, -0.1]}]}\n",
            r"the strength of grid\.regularizers entry 'l2' must be a number >= 0, got -0\.1\.",
        ),
    ],
)
def test_a_bad_value_is_an_error_naming_its_field_and_value(tmp_path, text, match):
    with pytest.raises(BenchError, match=match):
        load_config(write(tmp_path, f"models: [mlp]\n{text}"))


def test_numbers_yaml_reads_as_strings_are_numbers_and_any_seed_is_fine(tmp_path):
    """PyYAML reads ``1e-3`` (no dot) as a string; jsonargparse reads it as a number."""
    text = "models: [mlp]\ngrid: {learning_rate: [1e-3, 0.1], knobs: {'**/T': 2e0}}\n"
    config = load_config(write(tmp_path, f"{text}seeds: [-1, 7]\n"))
    assert config.grid.learning_rate == [0.001, 0.1] and config.grid.knobs == {"**/T": 2.0}
    assert config.seed_list() == [-1, 7]


def test_an_exponent_without_a_dot_is_a_number_anywhere_as_on_the_command_line(tmp_path):
    """``1e-3`` is a number wherever it is (an option, a regularizer's threshold), as the
    command line reads it: PyYAML's own safe loader reads a string, which they refuse."""
    text = (
        "models: [{name: choicenet, options: {dropout: 1e-1}}]\n"
        "grid: {regularizers: [{kind: morph, strength: 1e-4, threshold: 1e-3}]}\n"
    )
    path = write(tmp_path, text)
    config = load_config(path)
    assert config.model_entries()[0].options == {"dropout": 0.1}
    (entry,) = config.grid.regularizer_entries()
    assert (entry.strength, entry.threshold) == (1e-4, 1e-3)
    args = parser().parse_args(["--config", str(path), "--dir", "runs/x"])
    fields = {k: v for k, v in args.as_dict().items() if k in BenchConfig.__dataclass_fields__}
    assert BenchConfig.from_dict(fields).digest() == config.digest()


def test_loading_a_config_never_runs_code(tmp_path):
    marker = tmp_path / "ran"
    text = f"models: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(BenchError, match="not valid YAML"):
        load_config(write(tmp_path, text))
    assert not marker.exists()


def test_a_yaml_error_says_where_in_the_file(tmp_path):
    """Its marks said 'in "<unicode string>", line 1', not the file's path."""
    path = write(tmp_path, "models: [mlp]\nmodels: [gru]\n")
    with pytest.raises(BenchError) as error:
        load_config(path)
    assert f'in "{path}", line 2, column 1:\n    models: [gru]\n    ^' in str(error.value)
    assert "<unicode string>" not in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, r"config file '.*bench\.yaml' is a directory, not a file\."),
        (b"\xff\xfe models", r"config file '.*bench\.yaml' is not UTF-8 text: 'utf-8' codec"),
        (b"", r"config file '.*bench\.yaml' holds no config \(it is blank, comments only, or"),
        (b"# only a comment\n\n", r"config file '.*bench\.yaml' holds no config"),
        (b"null\n", r"config file '.*bench\.yaml' holds no config"),  # was "is empty"
    ],
)
def test_a_config_file_that_cannot_be_read_or_is_empty_is_a_clear_error(tmp_path, content, match):
    path = tmp_path / "bench.yaml"
    path.mkdir() if content is None else path.write_bytes(content)
    with pytest.raises(BenchError, match=match):
        load_config(path)


@pytest.mark.parametrize("text", ["[]\n", "0\n", "false\n", '""\n'])
def test_a_config_file_holding_no_mapping_is_an_error_not_the_default_config(tmp_path, text):
    """Such a file (`[]`, `0`, `false`, `""`) loaded as the default config, mlp on mnist1d."""
    with pytest.raises(BenchError, match="the bench config must be a mapping of keys to values"):
        load_config(write(tmp_path, text))


def test_null_options_are_no_options(tmp_path, toy):
    text = (
        "models: [{name: mlp, width: 8, options: null}]\ndatasets: [toy]\ngrid: {batch_size: 16}\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.model_entries()[0].options == {}
    without = BenchConfig.from_dict({**config.to_dict(), "models": [{"name": "mlp", "width": 8}]})
    models = [[c.cell.model for c in plan(c, toy).cells] for c in (config, without)]
    assert models[0] == models[1] and models[0]


def test_digest_is_equal_for_equal_configs_and_round_trips():
    a = BenchConfig.from_dict({"models": ["mlp"], "grid": {"learning_rate": [0.1, 0.2]}})
    b = BenchConfig.from_dict(a.to_dict())
    assert a == b and a.digest() == b.digest()
    c = BenchConfig.from_dict({"models": ["mlp"], "grid": {"learning_rate": [0.1, 0.3]}})
    assert c.digest() != a.digest()


def test_command_line_overrides_the_yaml(tmp_path):
    path = write(tmp_path, "models: [mlp]\ngrid: {steps: 50}\nseeds: 3\n")
    args = parser().parse_args(
        ["--config", str(path), "--dir", "runs/x", "--grid.learning_rate", "[0.1, 0.01]"]
    )
    fields = {k: v for k, v in args.as_dict().items() if k in BenchConfig.__dataclass_fields__}
    config = BenchConfig.from_dict(fields)
    assert config.grid.learning_rate == [0.1, 0.01]
    assert (config.grid.steps, config.seeds, config.models) == (50, 3, ["mlp"])


@pytest.mark.parametrize(
    ("given", "seeds"),
    [(["--seeds+", "5"], [0, 1, 2, 5]), (["--seeds", "[3]", "--seeds+", "[7, 8]"], [3, 7, 8])],
)
def test_seeds_appended_to_a_number_of_seeds_add_to_the_seeds_it_numbers(tmp_path, given, seeds):
    """'--seeds+ 5' on 'seeds: 3' (seeds 0, 1 and 2) gave seeds 3 and 5."""
    path = write(tmp_path, "models: [mlp]\nseeds: 3\n")
    args = parser().parse_args(["--config", str(path), "--dir", "runs/x", *given])
    assert args.seeds == seeds


@pytest.mark.parametrize(
    ("given", "widths"),
    [
        (["--grid.width+", "16"], [8, [4, 4], 16]),
        (["--grid.width+", "[16, [2, 2]]"], [8, [4, 4], 16, [2, 2]]),
        (["--grid.width", "8", "--grid.width+", "16"], [8, 16]),
        (["--grid.width+", "null"], [8, [4, 4], None]),  # was [[8, 8], [4, 4, 4, 4], None]
        (["--grid.width+", "[16, null]"], [8, [4, 4], 16, None]),
    ],
)
def test_widths_appended_keep_each_width_as_it_is(tmp_path, given, widths):
    """'--grid.width 8 --grid.width+ 16' gave widths [8, 8] and [16]: the width 8 became
    a two-stage width (a model of 1122 params, not 842, for cnn1d), and [4, 4] [4, 4, 4, 4]."""
    path = write(tmp_path, "models: [cnn1d]\ngrid: {width: [8, [4, 4]]}\n")
    args = parser().parse_args(["--config", str(path), "--dir", "runs/x", *given])
    assert args.grid.width == widths


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("true", "--grid.width true: expected list[int | list[int] | None], int or null (a list"),
        ("[16, [2, 2.5]]", "--grid.width [16, [2, 2.5]]: expected list[int | list[int] | None]"),
    ],
)
def test_a_width_appended_that_is_no_width_is_named_as_given(tmp_path, capsys, given, said):
    """'--grid.width+ true' on widths [8, [4, 4]] was said of '--grid.width [8, [4, 4],
    True]', a value never given."""
    path = write(tmp_path, "models: [cnn1d]\ngrid: {width: [8, [4, 4]]}\n")
    with pytest.raises(SystemExit):
        parser().parse_args(["--config", str(path), "--dir", "runs/x", "--grid.width+", given])
    assert capsys.readouterr().err.startswith(f"error: {said}")


def test_print_config_prints_the_resolved_config(tmp_path, capsys):
    path = write(tmp_path, "models: [mlp, cnn1d]\ngrid: {steps: 50}\n")
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--config", str(path), "--dir", "d", "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "- cnn1d" in out and "steps: 50" in out and "checkpoint_every: 500" in out


def test_a_config_file_is_checked_over_the_ones_before_it(tmp_path, capsys):
    """'--config base.yaml --config warm.yaml' (steps: 5000, then warmup_steps: 2000) was
    refused: 'warm.yaml' was checked alone, over the default 1000 steps."""
    from phosjax.bench.new import main

    base = write(tmp_path, "models: [mlp]\ngrid: {steps: 5000}\n")
    warm = tmp_path / "warm.yaml"
    warm.write_text("grid: {warmup_steps: 2000}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(base), "--config", str(warm), "--dir", "d", "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "warmup_steps: 2000" in out and "steps: 5000" in out


def test_print_config_refuses_a_data_set_a_run_would_refuse(tmp_path, capsys):
    """It printed datasets: [mnist1dd] (exit 0), which the run then refused."""
    from phosjax.bench.new import main

    path = write(tmp_path, "models: [mlp]\ndatasets: [mnist1dd]\n")
    assert main(["--config", str(path), "--dir", str(tmp_path / "b"), "--print_config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown data set 'mnist1dd'") and "Did you mean 'mnist1d'" in err


def test_print_config_names_the_data_sets_whose_class_count_it_cannot_read(tmp_path, capsys):
    """It printed the config (exit 0) without a word that the models went unchecked there."""
    from phosjax.bench.new import main
    from tests.data import tfds_toys

    tfds_toys.prepare(tfds_toys.ToyIntLabels, tmp_path / "data")
    text = f"models: [mlp]\ndatasets: [mnist1d, toy_int_labels]\ndata_dir: {tmp_path / 'data'}\n"
    path = write(tmp_path, text)
    capsys.readouterr()  # what preparing it said
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(path), "--dir", str(tmp_path / "b"), "--print_config"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert "- toy_int_labels" in captured.out
    assert captured.err == (
        "note: the models entries' depth, width and options were not checked on "
        "toy_int_labels: a label that is no ClassLabel declares no number of classes, known "
        "only once the data is loaded (a run checks them as it plans).\n"
    )


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("modelz: [mlp]\n", [], "unknown key 'modelz'"),
        ("models: [mlp\n", [], "is not valid YAML"),
        ("models: [mlp]\n", ["--import", "no_such_module_xyz"], "--import no_such_module_xyz"),
        ("models: [nosuchnet]\n", [], "unknown model 'nosuchnet'"),
        ("models: [mlp]\nseeds: 0\n", [], "seeds must be a number of seeds >= 1"),
        ("models: [mlp]\n", ["--seeds", "[]"], "seeds is an empty list"),
        ("models: [mlp]\nstrategy: bogus\n", [], "unknown strategy 'bogus'"),
        ("models: [mlp]\neval_every: ten\n", [], "eval_every must be a whole number >= 0"),
        ("models: [mlp]\ngrid: {learning_rate: -1}\n", [], "grid.learning_rate must be"),
    ],
)
def test_new_exits_non_zero_on_bad_input_and_writes_nothing(tmp_path, capsys, text, extra, message):
    from phosjax.bench.new import main

    bench = tmp_path / "bench"
    assert main(["--config", str(write(tmp_path, text)), "--dir", str(bench), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not bench.exists()


def test_a_bad_key_of_one_of_several_config_files_names_that_file(tmp_path, capsys):
    """'--config base.yaml --config fast.yaml' with 'fast.yaml' misspelling a key said which
    key, not in which file."""
    from phosjax.bench.new import main

    base = write(tmp_path, "models: [mlp]\n")
    override = tmp_path / "fast.yaml"
    override.write_text("grid: {stepz: 5}\n")
    argv = ["--config", str(base), "--config", str(override), "--dir", str(tmp_path / "b")]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: {override}: unknown key 'stepz' in grid.")
    assert not (tmp_path / "b").exists()


def test_regularizers_are_entries_with_a_strength_axis(tmp_path):
    text = (
        "models: [mlp]\ngrid:\n  regularizers:\n"
        "    - {kind: morph, cost: flops, strength: [0, 1e-2]}\n"
        "    - {kind: l2, selector: '**/kernel', strength: 1e-4}\n"
    )
    path = write(tmp_path, text)
    config = load_config(path)
    axes = config.grid.axes()
    assert axes["reg/morph_flops/**"] == [0.0, 0.01] and axes["reg/l2/**/kernel"] == [1e-4]
    assert BenchConfig.from_dict(config.to_dict()) == config
    args = parser().parse_args(["--config", str(path), "--dir", "d"])  # jsonargparse too
    fields = {k: v for k, v in args.as_dict().items() if k in BenchConfig.__dataclass_fields__}
    assert BenchConfig.from_dict(fields).grid.axes() == axes
    assert "regularizers" not in BenchConfig.from_dict({"models": ["mlp"]}).to_dict()["grid"]


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (
            "{kind: morph, costs: flops}",
            r"unknown key 'costs' in a grid.regularizers entry\. "
            r"Did you mean 'cost'\? Valid keys: kind, strength, selector, on, cost, source",
        ),
        ("{strength: 0.1}", r"a grid.regularizers entry needs a 'kind'"),
        ("{kind: morph, cost: bytes}", r"grid.regularizers: Regularizer cost 'bytes': expected"),
        ("{kind: l3}", r"grid.regularizers: Regularizer kind 'l3'"),
        ("{kind: l2}, {kind: l2}", r"two entries share the column 'reg/l2/\*\*'"),
    ],
)
def test_bad_regularizer_entries_are_clear_errors(tmp_path, entry, match):
    with pytest.raises(BenchError, match=match):
        load_config(write(tmp_path, f"grid: {{regularizers: [{entry}]}}\n"))


def test_differences_name_each_changed_key_and_compare_numbers_by_value():
    stored = BenchConfig.from_dict(
        {"models": ["mlp", {"name": "cnn1d", "width": 8}], "grid": {"weight_decay": 0}}
    )
    same = BenchConfig.from_dict(
        {"models": ["mlp", {"name": "cnn1d", "width": 8.0}], "grid": {"weight_decay": 0.0}}
    )
    other = BenchConfig.from_dict(
        {
            "models": ["mlp", {"name": "cnn1d", "width": 16}],
            "grid": {"weight_decay": 0, "regularizers": [{"kind": "l2"}]},
            "blurb_flops": True,
        }
    )
    assert stored.digest() != same.digest() and stored.differences(same) == []
    assert stored.differences(other) == [
        "models[1].width: 8 -> 16",
        "grid.regularizers: [] -> [{'kind': 'l2'}]",
        "blurb_flops: False -> True",
    ]


def test_a_grid_axis_of_one_value_is_that_value_when_configs_are_compared():
    """``learning_rate: [0.01]`` plans the cells of ``0.01``: a bench made with one was
    refused as "a different config" given the other. ``seeds`` is no axis: ``seeds: 2`` counts.
    Where they differ, each is shown as written (it showed ``0.01 -> 0.02`` for ``[0.02]``)."""
    stored = BenchConfig.from_dict({"grid": {"learning_rate": 0.01, "knobs": {"**/T": 2.0}}})
    same = BenchConfig.from_dict({"grid": {"learning_rate": [0.01], "knobs": {"**/T": [2]}}})
    assert stored.differences(same) == [] == same.differences(stored)
    other = BenchConfig.from_dict({"grid": {"learning_rate": [0.02]}, "seeds": [0]})
    assert stored.differences(other) == [
        "grid.learning_rate: 0.01 -> [0.02]",
        "grid.knobs.**/T: 2.0 -> (absent)",
        "seeds: 2 -> [0]",
    ]
    plain = BenchConfig.from_dict({"grid": {"learning_rate": 0.01}})
    assert plain.differences(same) == ["grid.knobs.**/T: (absent) -> [2]"]


L2 = {"kind": "l2"}


def test_regularizer_entries_compare_with_their_defaults_filled_in():
    """``{kind: l2, selector: "**"}`` plans the cells of ``{kind: l2}``: a bench made with
    one was refused as "a different config" given the other. Its digest stays as written."""
    written = BenchConfig.from_dict({"grid": {"regularizers": [L2 | {"selector": "**"}]}})
    plain = BenchConfig.from_dict({"grid": {"regularizers": [L2]}})
    assert written.differences(plain) == [] == plain.differences(written)
    assert written.digest() != plain.digest()
    other = BenchConfig.from_dict({"grid": {"regularizers": [L2 | {"on": "activations"}]}})
    assert written.differences(other) == ["grid.regularizers[0].on: (absent) -> 'activations'"]


def test_fields_added_later_keep_the_digest_and_file_of_benches_made_before_them():
    # Digests computed before grid.lr_schedule and grid.warmup_steps existed (82da38c).
    assert BenchConfig.from_dict({"models": ["mlp"]}).digest() == (
        "a57d0cf58b8ddf8952037c015ddb831d469f4451c5cde5a011c3141491bcb2da"
    )
    grid = {"learning_rate": [0.01, 0.1], "knobs": {"**/T": [1, 2]}, "regularizers": [L2]}
    models = ["mlp", {"name": "cnn1d", "width": 8}]
    assert BenchConfig.from_dict({"models": models, "grid": grid, "seeds": 3}).digest() == (
        "5a641b7adbf9cc9e0d193845edfadc323e5d7b6553d919123592afdbc0e35fd5"
    )
    plain = BenchConfig.from_dict({"models": ["mlp"]})
    assert {"lr_schedule", "warmup_steps"}.isdisjoint(plain.to_dict()["grid"])
    cosine = BenchConfig.from_dict({"models": ["mlp"], "grid": {"lr_schedule": "cosine"}})
    assert cosine.to_dict()["grid"]["lr_schedule"] == "cosine"
    assert BenchConfig.from_dict(cosine.to_dict()) == cosine
    assert cosine.digest() != plain.digest()
    assert plain.differences(cosine) == ["grid.lr_schedule: 'constant' -> 'cosine'"]
    # So does dataset_features: absent from bench.json and the digest while empty.
    assert "dataset_features" not in plain.to_dict()
    features = {"datasets": ["mnist1d"], "dataset_features": {"mnist1d": ["x", "label"]}}
    picked = BenchConfig.from_dict({"models": ["mlp"], **features})
    assert picked.to_dict()["dataset_features"] == {"mnist1d": ["x", "label"]}
    assert BenchConfig.from_dict(picked.to_dict()) == picked
    assert picked.digest() != plain.digest()
    assert plain.differences(picked) == ["dataset_features.mnist1d: (absent) -> ['x', 'label']"]
    # And dataset_splits.
    assert "dataset_splits" not in plain.to_dict()
    splits = {"datasets": ["mnist1d"], "dataset_splits": {"mnist1d": ["train[:90%]", "test"]}}
    split = BenchConfig.from_dict({"models": ["mlp"], **splits})
    assert BenchConfig.from_dict(split.to_dict()) == split and split.digest() != plain.digest()
    assert plain.differences(split) == [
        "dataset_splits.mnist1d: (absent) -> ['train[:90%]', 'test']"
    ]


def test_the_largest_int32_interval_is_taken_when_constructed():
    config = BenchConfig(eval_every=2**31 - 1, checkpoint_every=2**31 - 1, chunk_steps=2**31 - 1)
    assert config.eval_every == config.checkpoint_every == config.chunk_steps == 2**31 - 1
    with pytest.raises(BenchError, match=r"eval_every must lie in \[0, 2147483647\]"):
        BenchConfig(eval_every=2**31)


@pytest.mark.parametrize(
    ("grid", "said"),
    [
        (  # a transformation is a tuple: it was read as an axis of its init and update
            {"optimizer": ["sgd", optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))]},
            "grid.optimizer must be an optimizer family's name, one of ('adam', 'adamw', 'sgd', "
            "'momentum'), got an optax transformation: the engine builds the family's optax "
            "chain itself",
        ),
        (
            {"weight_decay": optax.add_decayed_weights(1e-4)},
            "grid.weight_decay must be a number, got an optax transformation: the engine holds "
            "each cell's weight_decay constant through the run",
        ),
        (  # it said 'grid.learning_rate must be a number > 0, got <function ...> (function)'
            {"learning_rate": optax.cosine_decay_schedule(1e-3, 100)},
            "grid.learning_rate must be a number (the peak rate), got a function <function "
            "cosine_decay_schedule.<locals…: the engine schedules each cell's rate itself",
        ),
    ],
)
def test_an_optax_value_in_the_grid_is_refused_as_hparams_refuses_it(grid, said):
    """`BenchConfig.from_dict({"grid": {"optimizer": optax.adam(1e-3)}})` was told
    'grid.optimizer <function chain.<locals>.init_fn at 0x...> is not one of adam, ...'."""
    with pytest.raises(BenchError) as raised:
        BenchConfig.from_dict({"grid": grid})
    assert str(raised.value).startswith(said), raised.value


def test_an_optax_clip_as_grid_grad_clip_is_refused_as_hparams_refuses_it():
    """`optax.clip_by_global_norm(1.0)`, a tuple, was read as an axis of its init and update:
    'grid.grad_clip must be a number or null, got <function init_empty_state at 0x...>'
    named a function the config does not hold."""
    clip = optax.clip_by_global_norm(1.0)
    with pytest.raises(ValueError) as hparams:
        HParams(grad_clip=clip)
    with pytest.raises(BenchError) as raised:
        BenchConfig.from_dict({"grid": {"grad_clip": clip}})
    said = str(hparams.value).replace("HParams grad_clip", "grid.grad_clip")
    assert str(raised.value) == said
    assert said.startswith("grid.grad_clip must be a number (a global norm) or None (no clip")
