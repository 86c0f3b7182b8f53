"""The MorphNet loop end to end on a tiny config (a smoke test of `run` and the CLI)."""

import contextlib
import dataclasses
import errno
import json
import math
import os
import pathlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import yaml

import phosjax as px
import phosjax.morph.__main__ as cli
from phosjax.bench import _checkpoint
from phosjax.bench._directory import locked
from phosjax.data import ArrayDataset, load, random_dataset
from phosjax.models import ModelConfig, build_model
from phosjax.morph import (
    MorphConfig,
    MorphConfigError,
    RunDirectoryError,
    _cost,
    _expand,
    _loop,
    config_cost,
    load_variables,
    read_runs,
)
from phosjax.morph.__main__ import main
from tests.benchmark_scripts import load_benchmark
from tests.data import tfds_toys
from tests.morph.unfollowable import NAME as UNFOLLOWED
from tests.train.tiny import NormsAlways


@pytest.mark.slow
def test_the_cli_writes_one_row_per_stage_and_iteration(tmp_path, data_dir, capsys):
    config = tmp_path / "morph.yaml"
    config.write_text(
        "model: {name: cnn1d, num_classes: 10, input_shape: [40], depth: 1, width: [16, 16]}\n"
        f"dataset: mnist1d\ndata_dir: {data_dir}\niterations: 1\nsteps: 30\nthreshold: 0.3\n"
    )
    main(["--config", str(config), "--dir", str(tmp_path / "run")])
    rows = pd.read_parquet(tmp_path / "run" / "morph" / "iterations.parquet")
    assert rows["kind"].tolist() == ["start", "regularized", "shrunk", "expanded"]
    assert rows["iteration"].tolist() == [0, 1, 1, 1]
    budget = rows["flops"][0]
    start, regularized, shrunk, expanded = rows["flops"]
    assert regularized == start == budget  # regularized training keeps the widths
    # threshold 0.3 prunes: after 30 steps one channel of blocks_0 has importance ~0.11
    # (the others >= ~0.33), so the shrunk stage is strictly cheaper
    assert shrunk < regularized
    widths = [json.loads(w) for w in rows["widths"]]
    assert all(s <= w for s, w in zip(widths[2], widths[1], strict=True))
    assert sum(widths[2]) < sum(widths[1])
    # expanding spends the freed budget again, without exceeding it
    assert shrunk < expanded <= budget
    assert all(w % 8 == 0 for w in widths[3])  # rounded to `multiple`
    assert ((rows["accuracy"] >= 0) & (rows["accuracy"] <= 1)).all()
    assert (rows["latency_s"] > 0).all()
    expanded = MorphConfig.from_dict({"model": json.loads(rows["config"][3])}).model
    assert config_cost(expanded, "flops") == rows["flops"][3]
    assert "expanded" in capsys.readouterr().out


MODEL = ModelConfig("cnn1d", 10, (40,), depth=1, width=(16, 16))


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("source", "gama", r"MorphConfig.source='gama': expected one of \('auto', 'gamma'"),
        ("cost", "bytes", r"MorphConfig.cost='bytes': expected one of \('params'"),
        ("multiple", 0, "MorphConfig.multiple=0: expected an integer >= 1"),
        ("iterations", -1, "MorphConfig.iterations=-1: expected an integer >= 0"),
        ("steps", 0, "MorphConfig.steps=0: expected an integer >= 1"),
        ("batch_size", 0, "MorphConfig.batch_size=0: expected an integer >= 1"),
        ("learning_rate", 0.0, "MorphConfig.learning_rate=0.0: expected a finite number > 0"),
        ("learning_rate", math.nan, "MorphConfig.learning_rate=nan: expected a finite number"),
        ("strength", -1.0, "MorphConfig.strength=-1.0: expected a finite number >= 0"),
        ("strength", math.inf, "MorphConfig.strength=inf: expected a finite number >= 0"),
        ("threshold", "small", "MorphConfig.threshold='small': expected a finite number >= 0"),
        ("seed", 1.5, "MorphConfig.seed=1.5: expected an integer"),
        # jax.random.key overflowed when the run trained, after it had made --dir
        *(
            ("seed", seed, rf"^MorphConfig.seed={seed}: expected an integer in \[-2\*\*63, ")
            for seed in (2**63, 2**64, -(2**63) - 1)
        ),
        ("dataset", 5, "MorphConfig.dataset=5: expected a name"),
        ("data_dir", 3, r"MorphConfig.data_dir=3: expected a folder \(a path\) or null"),
        ("splits", "train", r"^MorphConfig.splits must name the split to train on and the "),
        ("features", ["x", "x"], r"^MorphConfig.features must name the input feature and the "),
    ],
)
def test_bad_fields_fail_at_construction_before_anything_trains(
    monkeypatch, field, value, expected
):
    monkeypatch.setattr(_loop, "train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=expected):
        MorphConfig(model=MODEL, **{field: value})
    with pytest.raises(ValueError, match=expected):
        MorphConfig.from_dict({"model": MODEL.to_dict(), field: value})


def test_a_data_dir_given_as_a_path_is_taken_as_its_str(tmp_path):
    """It was refused: 'MorphConfig.data_dir=PosixPath(...): expected a folder (a path)'."""
    config = MorphConfig(MODEL, data_dir=tmp_path)
    assert config.data_dir == str(tmp_path)
    assert config == MorphConfig(MODEL, data_dir=str(tmp_path))
    assert MorphConfig.from_dict(config.to_dict()) == config


def test_numpy_numbers_are_taken_as_python_ones():
    """np.int64 steps were refused: 'MorphConfig.steps=np.int64(100): expected an integer'."""
    config = MorphConfig(
        MODEL,
        steps=np.int64(100),
        seed=np.int32(3),
        strength=np.float32(0.5),
        threshold=np.int64(0),
    )
    assert config == MorphConfig(MODEL, steps=100, seed=3, strength=0.5, threshold=0.0)
    assert [type(config.steps), type(config.strength)] == [int, float]
    assert json.loads(json.dumps(config.to_dict()))["steps"] == 100  # the rows' metadata


def test_a_yaml_number_without_a_dot_is_read_as_a_number():
    """PyYAML reads ``learning_rate: 3e-3`` as the string '3e-3'."""
    data = yaml.safe_load("learning_rate: 3e-3\nstrength: 1e-4\n")
    assert data["learning_rate"] == "3e-3"
    config = MorphConfig.from_dict({"model": MODEL.to_dict(), **data})
    assert (config.learning_rate, config.strength) == (0.003, 0.0001)


def test_a_config_file_reads_an_exponent_without_a_dot_as_a_number_everywhere(tmp_path):
    path = tmp_path / "morph.yaml"
    path.write_text(
        "model: {name: cnn1d, num_classes: 10, input_shape: [40], options: {dropout: 1e-1}}\n"
        "learning_rate: 3e-3\n"
    )
    config = cli.load_config(str(path))
    assert dict(config.model.options)["dropout"] == 0.1  # a model option too, not '1e-1'
    assert config.learning_rate == 0.003


def test_a_config_file_is_read_over_the_ones_before_it(tmp_path, capsys):
    """'--config base.yaml --config fast.yaml' with 'fast.yaml' setting only 'steps' and the
    model's width was refused: 'fast.yaml' was checked alone ('needs a model')."""
    (tmp_path / "steps.yaml").write_text("steps: 10\n")
    printed = _print_config(tmp_path, capsys, "--config", str(tmp_path / "steps.yaml"))
    assert "\nsteps: 10\n" in printed and "name: cnn1d" in printed
    base, fast = tmp_path / "base.yaml", tmp_path / "fast.yaml"
    base.write_text("model: {name: cnn1d, num_classes: 10, input_shape: [40]}\n")
    fast.write_text("model: {width: [16, 16, 16]}\nsteps: 10\n")
    config = cli.load_configs([str(base), str(fast)])
    assert (config.model.name, config.model.width, config.steps) == ("cnn1d", (16, 16, 16), 10)
    fast.write_text("stepz: 10\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(fast))}: MorphConfig has no field"):
        cli.load_configs([str(base), str(fast)])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("dataset: mnist1d\n", "MorphConfig needs the field 'model', a ModelConfig mapping"),
        ("", "a MorphConfig is a mapping of its fields, got None (an empty file)"),
        ("- 1\n", "a MorphConfig is a mapping of its fields, got [1] (a list)"),
        ("model: mlp\n", "MorphConfig.model='mlp' (a str) is not a ModelConfig"),
        ("model: {name: cnn1d, num_classes: 10, input_shape: [40]}\nsteps: 0\n", "steps=0"),
    ],
)
def test_the_cli_rejects_bad_config_files_with_exit_2(
    tmp_path, capsys, monkeypatch, text, expected
):
    monkeypatch.setattr(cli, "run", lambda *a, **k: pytest.fail("ran"))
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["--config", str(path), "--dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}: ") and expected in error
    if "mapping" in expected:  # what is right, and every field, as `no_field` says them
        assert "'name': 'mlp'" in error and "Its fields: model, dataset, " in error


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("missing.yaml", None, "does not exist."),
        ("folder.yaml", "dir", "is a directory, not a file."),
        ("latin1.yaml", b"\xff\xfe model", "is not UTF-8 text: "),
        ("bad.yaml", b"model: [mlp\n", "is not valid YAML: "),
    ],
)
def test_a_config_file_that_cannot_be_read_is_named_with_why_not_an_os_error(
    tmp_path, capsys, monkeypatch, name, content, expected
):
    monkeypatch.setattr(cli, "run", lambda *a, **k: pytest.fail("ran"))
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    assert main(["--config", str(path), "--dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: config file {str(path)!r} {expected}"), error
    assert "Errno" not in error


def _small_mnist1d(name: str, data_dir: str | None = None, **options) -> ArrayDataset:
    """A 128-example stand-in for mnist1d (10 classes, shape (40,)); other names: `load`."""
    if name != "mnist1d":
        return load(name, data_dir=data_dir, **options)
    x = np.zeros((160, 40), np.float32)
    y = np.arange(160, dtype=np.int32) % 10
    return ArrayDataset("mnist1d", x[:128], y[:128], x[128:], y[128:], 10, (40,))


CNN = "{name: cnn1d, num_classes: 10, input_shape: [40], width: [8, 8]}"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "model: {name: cnn1dd, num_classes: 10, input_shape: [40]}\n",
            "MorphConfig.model: unknown model 'cnn1dd'. Did you mean 'cnn1d'",
        ),
        (
            "model: {name: cnn1d, num_classes: 10, input_shape: [40], options: {foo: 1}}\n",
            "MorphConfig.model: model 'cnn1d' has no option(s) ['foo']",
        ),
        (f"model: {CNN}\ndataset: mnist2d\n", "MorphConfig.dataset='mnist2d': unknown data set"),
        (
            f"model: {CNN}\nstrenght: 0.5\n",
            "MorphConfig has no field 'strenght'. Did you mean 'strength'? Its fields: model, "
            "dataset, features, splits, iterations, steps, batch_size, learning_rate, "
            "strength, cost, threshold, source, multiple, seed, data_dir.",
        ),
        (
            "model: {name: cnn1d, num_classes: 10, input_shape: [40], widht: [8]}\n",
            "ModelConfig has no field 'widht'. Did you mean 'width'? Its fields: name, "
            "num_classes, input_shape, depth, width, options.",
        ),
        (
            CNN.join(["model: ", "\n"]).replace("num_classes: 10", "num_classes: 3"),
            "num_classes=3, but data set 'mnist1d' has 10 classes; set num_classes: 10",
        ),
        (
            CNN.join(["model: ", "\n"]).replace("[40]", "[41]"),
            "input_shape=[41], but the examples of data set 'mnist1d' have shape [40]",
        ),
        (
            f"model: {CNN}\nbatch_size: 129\n",
            "MorphConfig.batch_size=129 is larger than the train split of data set 'mnist1d', "
            "which has 128 examples; set MorphConfig.batch_size to at most 128",
        ),
        (
            f"model: {{name: {UNFOLLOWED}, num_classes: 10, input_shape: [40]}}\n",
            f"MorphConfig.model '{UNFOLLOWED}': cannot follow channels through while",
        ),
        (
            f"model: {CNN}\nsource: gamma\n",
            "MorphConfig.source='gamma': importance source 'gamma' reads the normalization scale",
        ),
        (
            f"model: {CNN}\nmultiple: 64\n",
            "MorphConfig.multiple=64: no width multiplier fits the flops budget",
        ),
        (  # it blamed the multiple: "the flops budget 800 is beyond the widest config ..."
            "model: {name: logreg, num_classes: 10, input_shape: [40]}\n",
            "MorphConfig.model 'logreg' has no channels to prune (no channel group: no hidden "
            "width, or every one pinned), so each iteration would train the same model again; "
            "pick a model with hidden widths, e.g. 'mlp', or set iterations: 0\n",
        ),
    ],
)
def test_the_cli_rejects_a_model_or_data_set_that_cannot_run_before_training(
    tmp_path, capsys, monkeypatch, text, expected
):
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    monkeypatch.setattr(_loop, "train", lambda *a, **k: pytest.fail("trained"))
    path = tmp_path / "bad.yaml"
    path.write_text(f"{text}data_dir: {tmp_path / 'tfds'}\nsteps: 2\niterations: 1\n")
    assert main(["--config", str(path), "--dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}: ") and expected in error, error
    assert not (tmp_path / "run").exists()


def test_the_cli_rejects_a_data_dir_it_cannot_prepare_the_data_set_in(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(_loop, "train", lambda *a, **k: pytest.fail("trained"))
    path = tmp_path / "bad.yaml"
    path.write_text(f"model: {CNN}\ndata_dir: /proc/phosjax_data\nsteps: 2\n")
    assert main(["--config", str(path), "--dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {path}: MorphConfig.dataset='mnist1d': cannot prepare built-in data set "
        "'mnist1d' in data_dir '/proc/phosjax_data'"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "dtype, big, expected",
    [
        (
            np.float64,
            -1e39,
            "data set 'mnist1d' has an input of -1e+39 (x_test[3, 7], float64), beyond "
            "float32's range (a number between -3.40282e+38 and 3.40282e+38), to which the "
            "inputs are converted: it would become inf; scale its inputs (e.g. x / abs(x).max())",
        ),
        (
            np.int64,
            2**40,
            "data set 'mnist1d' has integer inputs up to 1099511627776 (x_test, int64), which "
            "float32 (the model reads the inputs in it) would round (it holds integers exactly "
            "up to 16777216: 16777217 reads 16777216); scale its inputs (e.g. x / x.max())",
        ),
    ],
    ids=["float64", "int64"],
)
def test_inputs_float32_cannot_hold_are_refused_before_training(
    tmp_path, capsys, monkeypatch, dtype, big, expected
):
    """An input of 1e39 (float64) became inf as train read it, and the run stopped with
    'the start model diverged ... a lower learning_rate may keep it finite'; one of 2**40
    (int64) trained as 0, jnp.asarray's int32 wrapping it, silently."""
    small = _small_mnist1d("mnist1d")
    x_test = small.x_test.astype(dtype)
    x_test[3, 7] = big
    data = dataclasses.replace(small, x_train=small.x_train.astype(dtype), x_test=x_test)
    with pytest.raises(ValueError) as refused:
        _loop.train(ModelConfig("mlp", 10, (40,), width=8), data, 1, 4, 0.1, seed=0)
    assert str(refused.value) == expected
    monkeypatch.setattr(_loop, "load", lambda *a, **k: data)
    monkeypatch.setattr(_loop, "train", lambda *a, **k: pytest.fail("trained"))
    path = tmp_path / "big.yaml"
    path.write_text(f"model: {CNN}\nsteps: 2\n")
    assert main(["--config", str(path), "--dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"error: {path}: {expected}\n"
    assert not (tmp_path / "run").exists()


def test_prepare_passes_a_model_that_fits_its_data_set(monkeypatch):
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    model = MorphConfig(ModelConfig("cnn1d", 10, (40,), width=(8, 8)), batch_size=128)
    resolved, data = _loop.prepare(model)
    assert resolved == model.model.resolved() and data.num_train == 128


def test_splits_pick_the_splits_a_run_trains_and_tests_on(tmp_path, capsys):
    tfds_toys.prepare(tfds_toys.ToyTrainOnly, tmp_path)
    capsys.readouterr()  # TFDS's lines, preparing it
    named = {"dataset": "toy_train_only", "data_dir": str(tmp_path), "batch_size": 2}
    model = ModelConfig("mlp", 2, (2,), width=8)
    missing = (  # said 'pass splits=(train, test), e.g. splits=(...)', load's argument
        "MorphConfig.dataset='toy_train_only': data set 'toy_train_only' has splits ['train']; "
        "a morph run trains on 'train' and tests on 'test' (else 'validation') unless "
        "MorphConfig.splits names the two, e.g. splits: ['train[:90%]', 'train[90%:]']"
    )
    with pytest.raises(MorphConfigError, match=f"^{re.escape(missing)}$"):
        _loop.prepare(MorphConfig(model, **named))
    path = tmp_path / "morph.yaml"
    path.write_text(yaml.safe_dump({"model": model.to_dict(), **named}))
    assert main(["--config", str(path), "--dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"error: {path}: {missing}\n"
    config = MorphConfig(model, splits=("train[:60%]", "train[60%:]"), **named)
    assert MorphConfig.from_dict(config.to_dict()) == config
    _, data = _loop.prepare(config)
    assert (data.num_train, data.num_test) == (3, 2)


def test_a_dataset_with_a_split_names_the_dataset_and_splits_to_set(tmp_path):
    config = MorphConfig(MODEL, dataset="mnist1d[:50%]", data_dir=str(tmp_path))
    with pytest.raises(MorphConfigError) as error:  # said 'load takes ... splits=(...)'
        _loop.prepare(config)
    assert str(error.value) == (
        "MorphConfig.dataset='mnist1d[:50%]': the name holds a split ('[:50%]'); give the data "
        "set's name alone and the splits apart: dataset: mnist1d, splits: ['train[:50%]', "
        "'test']"
    )


def test_splits_a_data_set_refuses_name_the_field_as_the_config_writes_it(tmp_path):
    config = MorphConfig(MODEL, dataset="digits", data_dir=str(tmp_path), splits=("train", "tset"))
    with pytest.raises(MorphConfigError) as error:  # said 'MorphConfig.dataset', 'splits=(...)'
        _loop.prepare(config)
    assert str(error.value) == (
        "MorphConfig.splits: data set 'digits' has no split 'tset' (splits: ['train', 'tset'] "
        "names it; its splits: ['test', 'train']). Did you mean 'test'?"
    )
    assert not list(tmp_path.iterdir())  # nothing prepared


def test_features_naming_no_feature_of_the_dataset_name_the_features_field(tmp_path):
    config = MorphConfig(
        MODEL, dataset="digits", data_dir=str(tmp_path), features=("image", "lable")
    )
    with pytest.raises(MorphConfigError) as error:  # said 'MorphConfig.dataset', 'features=(...)'
        _loop.prepare(config)
    assert str(error.value) == (
        "MorphConfig.features names 'lable', which data set 'digits' lacks (its features: "
        "['image', 'label']); name its input and label feature there, e.g. features: "
        "['image', 'label']. Did you mean 'label'?"
    )
    assert not list(tmp_path.iterdir())  # nothing prepared


def test_features_pick_the_input_and_label_a_run_reads(tmp_path):
    tfds_toys.prepare(tfds_toys.ToyNamedFeatures, tmp_path)
    named = {"dataset": "toy_named_features", "data_dir": str(tmp_path), "batch_size": 2}
    model = ModelConfig("mlp", 3, (2,), width=8)
    with pytest.raises(
        MorphConfigError,
        match=r"unless MorphConfig.features names the input "
        r"and the label, e.g. features: \['pixels', 'digit'\]$",
    ):
        _loop.prepare(MorphConfig(model, **named))
    config = MorphConfig(model, features=("pixels", "digit"), **named)
    assert MorphConfig.from_dict(config.to_dict()) == config
    _, data = _loop.prepare(config)
    np.testing.assert_array_equal(data.y_train, data.x_train[:, 0].astype(int) % 3)  # digit


class _Trained(Exception):
    """Stands for training: the run got past its checks."""


def _stop_at_training(*args, **kwargs):
    raise _Trained


def test_earlier_rows_are_kept_or_moved_aside_and_a_bad_dir_fails_before_training(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    monkeypatch.setattr(_loop, "train", _stop_at_training)
    config = tmp_path / "morph.yaml"
    config.write_text(f"model: {CNN}\ndata_dir: {tmp_path / 'tfds'}\nsteps: 2\n")
    rows = tmp_path / "run" / "morph" / "iterations.parquet"
    rows.parent.mkdir(parents=True)
    pd.DataFrame({"iteration": [0], "kind": ["start"]}).to_parquet(rows)
    before = rows.read_bytes()
    assert main(["--config", str(config), "--dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(
        f"error: --dir: {str(rows)!r} holds the rows of an earlier run that cannot be "
        "continued: they do not say which config ran them (no attrs['morph_config']); "
    )
    assert "choose another directory, or pass --overwrite" in error
    assert rows.read_bytes() == before
    with pytest.raises(_Trained):
        main(["--config", str(config), "--dir", str(tmp_path / "run"), "--overwrite"])
    (moved,) = rows.parent.glob("iterations.parquet.old-*")
    assert f"moved the earlier rows to {moved}" in capsys.readouterr().err
    assert moved.read_bytes() == before and not rows.exists()

    (tmp_path / "a_file").write_text("")
    assert main(["--config", str(config), "--dir", str(tmp_path / "a_file")]) == 2
    error = capsys.readouterr().err  # the directory's fault, not the config file's
    a_file = str(tmp_path / "a_file")
    assert error.startswith(f"error: --dir: {a_file!r} is a file, not a directory: "), error
    assert f"wants a run directory, existing or new; got {a_file!r}" in error
    assert "Errno" not in error
    assert main(["--config", str(config), "--dir", str(tmp_path / "a_file" / "below")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --dir: {a_file!r} is a file, not a ")

    monkeypatch.chdir(tmp_path)  # run(config, ''): '' was read as '.', the rows went in the cwd
    with (
        pytest.raises(RunDirectoryError, match=r"^the run directory is '' \(an unset shell "),
        _loop._output("", overwrite=False),
    ):
        pass
    assert not (tmp_path / "morph").exists()

    bench = tmp_path / "bench"  # its results folder: pandas would read the rows as results
    (bench / "results").mkdir(parents=True)
    (bench / "bench.json").write_text("{}")
    assert main(["--config", str(config), "--dir", str(bench / "results")]) == 2
    error = f"error: --dir: {str(bench / 'results')!r} is inside the bench {str(bench)!r}, "
    assert capsys.readouterr().err.startswith(error)
    assert sorted(bench.rglob("*")) == [bench / "bench.json", bench / "results"]


def _untrained(config, data, *args, **kwargs):
    """Stands for training: the model's initial variables, at accuracy 0.5."""
    x = np.zeros((1, *config.input_shape), np.float32)
    return build_model(config).init(jax.random.key(0), x), 0.5


def test_a_run_shows_a_progress_bar_of_its_stages_on_stderr(tmp_path, capsys, monkeypatch):
    """It printed nothing until every stage had trained (minutes, at 1500 steps each)."""
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    monkeypatch.setattr(_loop, "train", _untrained)
    monkeypatch.setattr(_loop, "measured_latency", lambda *args: 1e-6)
    config = MorphConfig(ModelConfig("mlp", 10, (40,), width=16), iterations=1)
    _loop.run(config, tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""
    rows = _loop.run(config, tmp_path / "shown")
    assert rows["kind"].tolist() == ["start", "regularized", "shrunk", "expanded"]
    shown = capsys.readouterr().err.splitlines()
    # it counts the trainings: the shrink, seconds where each training takes tens, is no
    # tick (counted as a stage, it made the time left 3 trainings' after the start model's,
    # where 2 and a shrink were left)
    assert list(dict.fromkeys(line.split("|")[0] for line in shown if "%" in line)) == [
        "start model:   0%",
        "iteration 1/1: regularized:  33%",
        "iteration 1/1: shrunk:  67%",
        "iteration 1/1: expanded:  67%",
        "iteration 1/1: expanded: 100%",  # then closed: the bar gone before a Ctrl-C's line
    ]
    assert "3/3" in shown[-1] and "training" in shown[-1]


def _diverging(config, data, *args, **kwargs):
    """Stands for a training that diverges once regularized (a penalty is passed)."""
    variables, accuracy = _untrained(config, data)
    if len(args) > 4:
        variables = jax.tree.map(lambda leaf: leaf * jnp.nan, variables)
    return variables, accuracy


def test_a_diverged_training_is_one_error_line_naming_the_stage_and_what_to_lower(
    tmp_path, capsys, monkeypatch
):
    """It was alive_channels' ValueError traceback (NaN importances), after the start
    model's rows were written."""
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    monkeypatch.setattr(_loop, "train", _diverging)
    monkeypatch.setattr(_loop, "measured_latency", lambda *args: 1e-6)
    config = tmp_path / "morph.yaml"
    config.write_text(
        "model: {name: mlp, num_classes: 10, input_shape: [40], width: 8}\n"
        "iterations: 1\nlearning_rate: 0.5\n"
    )
    assert main(["--config", str(config), "--dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {config}: training iteration 1's regularized model diverged: "
        "['params/blocks_0/Dense_0/bias', 'params/blocks_0/Dense_0/kernel', "
        "'params/head/bias'] and 3 more hold NaN or infinity; a lower learning_rate (0.5) "
        "or strength (1.0) may keep it finite"
    )
    kept = pd.read_parquet(tmp_path / "run" / _loop.ITERATIONS)
    assert kept["kind"].tolist() == ["start"]


def test_a_run_s_rows_carry_its_config_which_reads_back_as_it(tmp_path, monkeypatch):
    """The file held the model's config per row, not the data set, steps, strength..."""
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    monkeypatch.setattr(_loop, "train", _untrained)
    monkeypatch.setattr(_loop, "measured_latency", lambda *args: 1e-6)
    config = MorphConfig(MODEL, iterations=0, steps=7, strength=0.25, seed=3)
    rows = _loop.run(config, tmp_path, progress=False)
    written = pd.read_parquet(tmp_path / _loop.ITERATIONS)
    assert (
        written.attrs
        == rows.attrs
        == {
            "morph_config": config.to_dict(),
            "resolved_dataset": "mnist1d:1.0.0",  # the config's "mnist1d", with its version
        }
    )
    assert written.attrs["morph_config"]["steps"] == 7
    assert MorphConfig.from_dict(written.attrs["morph_config"]) == config


@pytest.mark.parametrize("given", ["data", "~/data"])
def test_a_run_records_its_data_dir_absolute_so_it_says_where_the_data_were_read(
    tmp_path, monkeypatch, given
):
    """A relative data_dir (or one beginning with ~) was recorded as written: continued
    from another folder, the run's file no longer said which folder its data came from."""
    read_from = []
    monkeypatch.setattr(
        _loop,
        "load",
        lambda name, data_dir, **options: read_from.append(data_dir) or _small_mnist1d(name),
    )
    monkeypatch.setattr(_loop, "train", _untrained)
    monkeypatch.setattr(_loop, "measured_latency", lambda *args: 1e-6)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    rows = _loop.run(MorphConfig(MODEL, iterations=0, data_dir=given), "run", progress=False)
    expected = str(tmp_path / "home" / "data") if given.startswith("~") else str(tmp_path / "data")
    written = pd.read_parquet(tmp_path / "run" / _loop.ITERATIONS)
    assert written.attrs["morph_config"]["data_dir"] == expected
    assert rows.attrs["morph_config"]["data_dir"] == expected
    assert read_from == [expected]  # the folder recorded is the one read


def test_overwrite_refused_moving_the_earlier_rows_aside_is_one_error_naming_them(
    tmp_path, refuse_moving
):
    """A move aside the system refused was "cannot write rows into DIR: [Errno 13]
    Permission denied: ... -> ..."; it names the rows, where they were to go and what to
    do, as the bench's --force does."""
    _written_run(tmp_path, MorphConfig(MODEL))
    rows = tmp_path / _loop.ITERATIONS
    refuse_moving(rows)
    with pytest.raises(RunDirectoryError) as error, _loop._output(tmp_path, overwrite=True):
        pytest.fail("the rows were taken as moved aside")
    said = re.fullmatch(
        rf"cannot move the earlier rows {re.escape(repr(str(rows)))} aside to "
        rf"'{re.escape(str(rows))}\.old-\d{{8}}-\d{{6}}': Permission denied; let this user "
        r"read and write it \(its permissions, those of its folder\), or pick another --dir\.",
        str(error.value),
    )
    assert said is not None, str(error.value)
    assert rows.is_file()


def _written_run(
    directory: pathlib.Path, config: MorphConfig, lacking: tuple[str, ...] = (), **attrs: object
) -> None:
    """Writes a run's two rows, without the columns ``lacking``, with ``config`` (and
    ``attrs``) in their metadata."""
    model = json.dumps(MODEL.to_dict())
    rows = pd.DataFrame(
        {
            "iteration": [0, 1],
            "kind": ["start", "regularized"],
            "config": [model, model],
            "accuracy": [0.5, config.strength],
        }
    ).drop(columns=list(lacking))
    rows.attrs = {"morph_config": config.to_dict(), **attrs}
    (directory / "morph").mkdir(parents=True)
    rows.to_parquet(directory / _loop.ITERATIONS)


def test_a_stored_config_this_morph_config_refuses_is_named_so_not_as_no_rows_of_a_run(tmp_path):
    """It said "they are no rows of `phosjax.morph.run`" (the reason after it)."""
    _written_run(tmp_path, MorphConfig(MODEL), morph_config={"model": MODEL.to_dict(), "stepz": 4})
    with pytest.raises(RunDirectoryError) as error:
        _loop._earlier(tmp_path, MorphConfig(MODEL), MODEL, "mnist1d:1.0.0")
    assert "their config attrs['morph_config'] cannot be read as a MorphConfig now (" in str(
        error.value
    )
    assert "'stepz'" in str(error.value) and "no rows of" not in str(error.value)


def test_a_state_of_other_leaves_is_refused_naming_each(tmp_path):
    """It said only "other leaves, shapes or dtypes"."""
    small, wide = (ModelConfig("mlp", 10, (8, 8, 1), width=(w,)) for w in (4, 5))
    variables = build_model(small).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    state = tmp_path / _loop.STATES / "iteration-0.npz"
    state.parent.mkdir(parents=True)
    state.write_bytes(_loop.encode(variables))
    with pytest.raises(RunDirectoryError) as error:
        _loop._saved_variables(tmp_path, 0, wide)
    assert "are not its last model's (['params']" in str(error.value)
    assert "expected float32(64, 5), found float32(64, 4)" in str(error.value)


def test_a_state_cut_short_is_said_to_be_damaged_not_another_model_s(tmp_path):
    """It said "are not its last model's (BadZipFile(...))", as if another model's
    state were there."""
    model = ModelConfig("mlp", 10, (8, 8, 1), width=(4,))
    variables = build_model(model).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    state = tmp_path / _loop.STATES / "iteration-0.npz"
    state.parent.mkdir(parents=True)
    state.write_bytes(_loop.encode(variables)[:100])
    with pytest.raises(RunDirectoryError) as error:
        _loop._saved_variables(tmp_path, 0, model)
    assert str(error.value) == (
        f"{str(state)!r}, are damaged: the file was cut short or changed on the disk "
        "(BadZipFile: File is not a zip file); restore it from a backup"
    )


@pytest.mark.parametrize(
    "number, words", [(errno.EACCES, "Permission denied"), (errno.EIO, "Input/output error")]
)
def test_a_state_the_system_refuses_to_read_is_said_so_not_another_model_s(
    tmp_path, monkeypatch, number, words
):
    """It said "are not its last model's (PermissionError(13, ...))"; then, of a failing
    disk's (EIO) too, only to let this user read it."""
    model = ModelConfig("mlp", 10, (8, 8, 1), width=(4,))
    state = tmp_path / _loop.STATES / "iteration-0.npz"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"")

    def refused(path, *args):
        raise OSError(number, words, str(path))

    monkeypatch.setattr(_checkpoint, "open", refused, raising=False)  # the module's open
    with pytest.raises(RunDirectoryError) as error:
        _loop._saved_variables(tmp_path, 0, model)
    assert str(error.value) == (
        f"{str(state)!r}, cannot be read ([Errno {number}] {words}: {str(state)!r}); the "
        "system would not read it, whatever it holds: let this user read it (its "
        "permissions, those of its folder), or see to the disk"
    )


def test_read_runs_gives_each_row_its_run_s_config_where_concat_drops_them(tmp_path):
    weak, strong = (MorphConfig(MODEL, strength=strength) for strength in (0.25, 2.0))
    _written_run(tmp_path / "weak", weak, resolved_dataset="mnist1d:1.0.0")
    _written_run(tmp_path / "strong", strong)  # written before resolved_dataset was stored
    paths = [tmp_path / run / _loop.ITERATIONS for run in ("weak", "strong")]
    assert pd.concat(map(pd.read_parquet, paths)).attrs == {}  # dropped: the configs differ
    frame = read_runs(tmp_path / "weak", str(tmp_path / "strong"))
    assert list(frame.columns) == [
        "run",
        *weak.to_dict(),
        "resolved_dataset",
        "iteration",
        "kind",
        "config",
        "accuracy",
    ]
    assert frame["run"].tolist() == [str(tmp_path / "weak")] * 2 + [str(tmp_path / "strong")] * 2
    assert frame["strength"].tolist() == [0.25, 0.25, 2.0, 2.0]
    assert frame["resolved_dataset"].tolist() == ["mnist1d:1.0.0"] * 2 + [None] * 2
    assert frame["model"].map(json.loads).tolist() == [MODEL.to_dict()] * 4
    assert frame["accuracy"].tolist() == [0.5, 0.25, 0.5, 2.0] and frame.attrs == {}


def test_read_runs_gives_each_row_its_run_s_splits_and_features_as_json(tmp_path):
    """A list in the config was read as a column: of a two-row run, 'train' in one row and
    'val' in the other; of any other, "Length of values (2) does not match length of
    index"."""
    config = MorphConfig(MODEL, splits=["train", "val"], features=["pixels", "digit"])
    _written_run(tmp_path, config)
    frame = read_runs(tmp_path)
    assert frame["splits"].map(json.loads).tolist() == [["train", "val"]] * 2
    assert frame["features"].map(json.loads).tolist() == [["pixels", "digit"]] * 2


def test_a_run_in_a_run_s_morph_folder_is_refused_naming_the_run(tmp_path):
    """``--dir runs/morph/morph`` trained a new run into the old one's folder, writing
    ``morph/morph/iterations.parquet`` among its rows and states."""
    _written_run(tmp_path, MorphConfig(MODEL))
    before = sorted(tmp_path.rglob("*"))
    for inside in (tmp_path / "morph", tmp_path / "morph" / "states" / "new"):
        with (
            pytest.raises(RunDirectoryError) as error,
            _loop._output(inside, overwrite=True),
        ):
            pass
        assert str(error.value) == (
            f"{str(inside)!r} is inside the morph run {str(tmp_path)!r}, whose files the rows "
            "would mix with its own; pass that run's directory (the same config continues it) "
            "or one outside it"
        )
    assert sorted(tmp_path.rglob("*")) == before
    with _loop._output(tmp_path / "beside", overwrite=False) as rows:  # outside its morph folder
        assert rows == tmp_path / "beside" / _loop.ITERATIONS
    with _loop._output(tmp_path / "morph" / "..", overwrite=False) as rows:  # the run itself
        assert rows.is_file()


def test_the_command_said_for_a_directory_named_like_an_option_runs(tmp_path, monkeypatch):
    """--dir ./-r, not --dir -r, which the command refuses ("expected one argument")."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunDirectoryError) as said:
        load_variables("-r")
    assert str(said.value) == (
        "'-r' holds no morph run: it has no morph/iterations.parquet (python -m phosjax.morph "
        "--config CONFIG.yaml --dir ./-r writes one)"
    )


def test_read_runs_names_a_directory_without_a_run_and_a_file_without_a_config(tmp_path):
    """It raised FileNotFoundError and ValueError where load_variables raises
    RunDirectoryError for the same directories."""
    with pytest.raises(
        RunDirectoryError,
        match=rf"^'{re.escape(str(tmp_path))}' holds no morph run: it has no "
        rf"morph/iterations.parquet \(python -m phosjax.morph --config CONFIG.yaml --dir "
        rf"{re.escape(str(tmp_path))} ",
    ):
        read_runs(tmp_path)
    (tmp_path / "morph").mkdir()
    pd.DataFrame({"kind": ["start"]}).to_parquet(tmp_path / _loop.ITERATIONS)
    with pytest.raises(RunDirectoryError, match=r"holds no run config in its metadata"):
        read_runs(tmp_path)
    for inside in (tmp_path / "morph", tmp_path / _loop.ITERATIONS):
        with pytest.raises(  # it said that the run's rows file has no rows file below it
            RunDirectoryError,
            match=rf"^'{re.escape(str(inside))}' holds no morph run: it lies inside the run "
            rf"'{re.escape(str(tmp_path))}'; pass that run's directory$",
        ):
            read_runs(inside)


@pytest.mark.parametrize(
    ("reader", "give"),
    [
        (read_runs, "give one run directory per argument: read_runs('runs/a', 'runs/b'), or "
         "read_runs(*directories)"),
        (load_variables, "give one run directory: load_variables('runs/a')"),
    ],
)  # fmt: skip
def test_a_reader_names_a_list_of_directories_given_as_one(tmp_path, reader, give):
    """It raised pathlib's "expected str, bytes or os.PathLike object, not list"."""
    with pytest.raises(TypeError) as error:
        reader([tmp_path])
    name = reader.__name__
    assert str(error.value) == f"{name}: got the list {[tmp_path]!r} as a directory; {give}"


def test_run_names_a_list_of_directories_given_as_one(tmp_path):
    """It raised pathlib's "expected str, bytes or os.PathLike object, not list", before
    the config was checked, where read_runs and load_variables name the value."""
    config = MorphConfig(ModelConfig("mlp", 10, (40,)), dataset="nope")
    with pytest.raises(TypeError) as error:
        _loop.run(config, [tmp_path])
    assert str(error.value) == (
        f"run: got the list {[tmp_path]!r} as a directory; give one run directory: "
        "run(config, 'runs/a')"
    )


def test_read_runs_names_the_columns_that_rows_with_a_config_lack(tmp_path):
    """It gave a frame without them, where load_variables names the columns lacking."""
    _written_run(tmp_path, MorphConfig(MODEL), lacking=("iteration", "config"))
    with pytest.raises(RunDirectoryError) as error:
        read_runs(tmp_path)
    assert str(error.value) == (
        f"{str(tmp_path / _loop.ITERATIONS)!r}, the rows of the morph run {str(tmp_path)!r}, "
        "holds no rows of phosjax.morph.run: it has no column(s) ['iteration', 'config'] (it "
        "has ['kind', 'accuracy']); leave that run out, or run it again "
        f"({_loop._morph_command(tmp_path, '--overwrite')} moves the file aside)"
    )


def test_read_runs_reads_a_rows_file_a_run_replaces_meanwhile_as_it_was_opened(
    tmp_path, monkeypatch
):
    """Given the path, pyarrow opened the file twice: rows a running morph replaced in
    between were read torn, 'OSError: Unexpected end of stream'; read through one open
    file, they are the version opened."""
    _written_run(tmp_path, MorphConfig(MODEL, strength=0.25))
    read = pd.read_parquet

    def replaced_meanwhile(source, *args, **kwargs):
        _written_run(tmp_path / "next", MorphConfig(MODEL, strength=2.0))
        (tmp_path / "next" / _loop.ITERATIONS).replace(tmp_path / _loop.ITERATIONS)
        return read(source, *args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", replaced_meanwhile)
    assert read_runs(tmp_path)["strength"].tolist() == [0.25, 0.25]


def test_read_runs_names_a_damaged_rows_file_and_its_run(tmp_path):
    """pyarrow's ArrowInvalid ("Parquet magic bytes not found") named neither the run nor
    what to do."""
    _written_run(tmp_path / "good", MorphConfig(MODEL))
    (tmp_path / "cut" / "morph").mkdir(parents=True)
    rows = (tmp_path / "good" / _loop.ITERATIONS).read_bytes()
    (tmp_path / "cut" / _loop.ITERATIONS).write_bytes(rows[: len(rows) // 2])
    run = re.escape(str(tmp_path / "cut"))
    with pytest.raises(
        RunDirectoryError, match=rf"the rows of the morph run '{run}' \(ArrowInvalid: "
    ):
        read_runs(tmp_path / "good", tmp_path / "cut")
    advice = rf"damaged: .*phosjax.morph --config CONFIG.yaml --dir {run} --overwrite moves"
    with pytest.raises(RunDirectoryError, match=advice):
        read_runs(tmp_path / "cut")


def test_a_key_that_is_no_str_is_named_as_an_unknown_field():
    """YAML reads a key `1:` or `on:` as a number or a bool: from_dict raised a TypeError,
    "'int' object is not iterable" or "'<' not supported between 'str' and 'bool'"."""
    known = [field.name for field in dataclasses.fields(MorphConfig)]
    for keys, said in [
        ([1], "1."),
        ([True, "stepz"], "True, 'stepz'. Did you mean 'steps' for 'stepz'?"),
    ]:
        with pytest.raises(MorphConfigError) as error:
            MorphConfig.from_dict({"model": MODEL.to_dict(), **dict.fromkeys(keys, 2)})
        assert str(error.value) == (
            f"MorphConfig has no field {said} Its fields: {', '.join(known)}."
        )


def test_the_errors_a_morph_run_raises_are_public_so_that_a_caller_can_catch_them(tmp_path):
    with pytest.raises(MorphConfigError, match=r"^MorphConfig.steps=0: expected an integer >= 1"):
        MorphConfig(ModelConfig("mlp", 10, (8, 8, 1)), steps=0)
    for model, expected in [  # were plain ValueErrors, without the field's name
        ({"name": "mlp"}, "ModelConfig needs the field(s) ['num_classes', 'input_shape']"),
        ({**MODEL.to_dict(), "widht": 8}, "ModelConfig has no field 'widht'"),
        ({**MODEL.to_dict(), "num_classes": "ten"}, "ModelConfig 'cnn1d': num_classes must be"),
    ]:
        with pytest.raises(MorphConfigError, match=re.escape(f"MorphConfig.model: {expected}")):
            MorphConfig.from_dict({"model": model})
    rows = tmp_path / _loop.ITERATIONS
    rows.parent.mkdir()
    rows.write_text("")
    with pytest.raises(RunDirectoryError, match="holds the rows of an earlier run that cannot"):
        _loop._earlier(tmp_path, MorphConfig(MODEL), MODEL, "mnist1d:1.0.0")
    assert issubclass(RunDirectoryError, MorphConfigError)


def test_the_printed_view_command_quotes_a_dir_with_spaces(tmp_path, capsys, monkeypatch):
    """The command runs as printed, copied into a shell."""
    columns = ["iteration", "kind", "widths", "params", "flops", "latency_s", "accuracy"]
    monkeypatch.setattr(cli, "run", lambda *args, **kwargs: pd.DataFrame(columns=columns))
    config = tmp_path / "morph.yaml"
    config.write_text(f"model: {CNN}\n")
    assert main(["--config", str(config), "--dir", str(tmp_path / "my run")]) == 0
    view = f"view it: python -m phosjax.bench.view --dir '{tmp_path / 'my run'}'"
    assert capsys.readouterr().err.splitlines()[-1] == view


def test_the_printed_rows_read_as_counts_and_latencies_of_three_digits(
    tmp_path, capsys, monkeypatch
):
    """The table printed params and FLOPs as floats (``7946.0 99200.0``) and the latency
    with six decimals: 3.51e-6 and 3.65e-6 s both read ``0.000004``."""
    rows = pd.DataFrame({
        "iteration": [0, 1], "kind": ["start", "shrunk"], "widths": ["[32]", "[21]"],
        "params": [7946.0, 4442.0], "flops": [99200.0, 45890.0],
        "latency_s": [3.6512e-6, 3.5104e-6], "accuracy": [0.882, 0.732],
    })  # fmt: skip
    monkeypatch.setattr(cli, "run", lambda *args, **kwargs: rows)
    config = tmp_path / "morph.yaml"
    config.write_text(f"model: {CNN}\n")
    assert main(["--config", str(config), "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        " iteration   kind widths params flops latency_s  accuracy",
        "         0  start   [32]   7946 99200  3.65e-06     0.882",
        "         1 shrunk   [21]   4442 45890  3.51e-06     0.732",
    ]


def test_no_progress_hides_the_bar_as_the_bench_s_commands_do(tmp_path, capsys, monkeypatch):
    """The bar could not be hidden from the command line (a log got its lines)."""
    columns = ["iteration", "kind", "widths", "params", "flops", "latency_s", "accuracy"]
    calls = []
    run = lambda *args, **kwargs: calls.append(kwargs) or pd.DataFrame(columns=columns)
    monkeypatch.setattr(cli, "run", run)
    config = tmp_path / "morph.yaml"
    config.write_text(f"model: {CNN}\n")
    for options in ([], ["--no_progress"]):
        assert main(["--config", str(config), "--dir", str(tmp_path), *options]) == 0
    assert calls == [
        {"overwrite": False, "progress": True},
        {"overwrite": False, "progress": False},
    ]


def test_help_says_what_the_loop_writes_and_that_the_same_command_continues_it(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "It writes them to ``DIR/morph/iterations.parquet`` after every iteration" in text
    assert "A progress bar on stderr counts the trainings and estimates the time left" in text
    assert "(``--no_progress`` hides it, for a log)" in text
    assert "The same command continues an interrupted run after its last iteration" in text
    assert "``--overwrite`` moves its rows and states aside and starts over" in text
    assert "a bench's own directory works, a folder inside a bench does not" in text


def test_help_lists_every_model_field_under_the_model(capsys):
    """--model.input_shape and --model.options were listed among the command's own options
    (--dir, --overwrite), away from --model.name and the model's other fields."""
    with pytest.raises(SystemExit):
        main(["--help"])
    model = capsys.readouterr().out.split("Which registered model")[1].split("\n\n")[0]
    for field in ("name", "num_classes", "depth", "width", "input_shape", "options"):
        assert f"--model.{field} " in model


def test_a_misspelt_option_is_one_line_naming_the_nearest(tmp_path, capsys):
    """As the bench's commands say it (it was argparse's usage, then "the following
    arguments are required: --dir", not the misspelling)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", "c.yaml", "--dirr", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: unrecognized arguments: --dirr {tmp_path / 'run'} (did you mean --dir?); "
        "python -m phosjax.morph --help lists the options.\n"
    )


def test_no_config_names_the_model_fields_missing_and_where_they_are_set(tmp_path, capsys):
    """It named the fields alone, as if --model.KEY options were the way to give a model."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: the following arguments are required: --model.name, --model.num_classes, "
        "--model.input_shape (the model's fields: a --config file of a MorphConfig sets "
        "them, e.g. --config configs/morph_mnist1d.yaml, or --model.KEY options); python -m "
        "phosjax.morph --help lists the options.\n"
    )


def test_a_bench_config_is_refused_saying_which_command_runs_it(tmp_path, capsys):
    """configs/example.yaml, given to the loop: not "MorphConfig has no field(s) [...]
    Did you mean 'model' for 'models', ...", which leads on to rewrite it."""
    config = tmp_path / "my bench.yaml"  # printed unquoted, the command split there
    config.write_text(
        (pathlib.Path(__file__).resolve().parents[2] / "configs" / "example.yaml").read_text()
    )
    assert main(["--config", str(config), "--dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        f"error: {config}: a bench's config (models x data sets x grid), not a MorphNet "
        f"loop's: run `python -m phosjax.bench.new --config '{config}' --dir DIR`; a MorphNet "
        "loop's config has a model, a dataset and iterations (configs/morph_mnist1d.yaml)\n"
    )
    assert not (tmp_path / "run").exists()


def _print_config(tmp_path, capsys, *options):
    """What ``--print_config`` prints for the example config and ``options``."""
    config = pathlib.Path(__file__).resolve().parents[2] / "configs" / "morph_mnist1d.yaml"
    argv = ["--config", str(config), "--dir", str(tmp_path / "run"), *options]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--print_config"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_command_line_options_override_any_key_and_print_config_gives_them_back(tmp_path, capsys):
    printed = _print_config(
        tmp_path, capsys, "--iterations", "1", "--model.name", "mlp", "--model.width=[16]"
    )
    saved = tmp_path / "resolved.yaml"
    saved.write_text(printed)
    config = cli.load_config(str(saved))
    assert (config.iterations, config.model.name, config.model.width) == (1, "mlp", (16,))
    assert (config.steps, config.threshold, config.model.input_shape) == (1500, 0.05, (40,))
    assert "dir" not in yaml.safe_load(printed)  # the command's own options stay out
    assert yaml.safe_load(printed)["model"]["options"] == {}  # a mapping: it printed [] as a list
    assert _print_config(tmp_path, capsys, "--config", str(saved)) == printed


def test_a_misspelt_key_names_the_nearest_and_a_bad_value_names_where_it_came_from(
    tmp_path, capsys
):
    config = tmp_path / "morph.yaml"
    config.write_text("model: {name: cnn1d, num_classes: 10, input_shape: [40]}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--dir", str(tmp_path / "run"), "--model.widht", "8"])
    assert exit_info.value.code == 2
    assert "--model.widht 8 (did you mean --model.width?)" in capsys.readouterr().err
    for given in (["--cost", "bytes"], ["--cost", "flops", "--cost", "bytes"]):  # named once
        assert main(["--config", str(config), "--dir", str(tmp_path), *given]) == 2
        assert capsys.readouterr().err.startswith(
            f"error: {config} with the command line (--cost): MorphConfig.cost='bytes': expected "
        )


def test_a_bad_model_file_is_named_in_the_error(tmp_path, capsys):
    """``--model m.yaml --iterations 1`` naming an unknown model was said of 'the command
    line (--model, --iterations)', which leaves the user to guess the file."""
    model = tmp_path / "my m.yaml"
    model.write_text("{name: mlpp, num_classes: 10, input_shape: [40]}\n")
    argv = ["--model", str(model), "--iterations", "1", "--dir", str(tmp_path / "run")]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(
        f"error: the command line (--model '{model}', --iterations): MorphConfig.model: "
        "unknown model 'mlpp'. Did you mean 'mlp'?"
    )


@pytest.mark.parametrize(
    "options, expected",
    [
        (
            ["--model.name", "mlpp", "--model.num_classes", "10", "--model.input_shape", "40"],
            "error: the command line (--model.name, --model.num_classes, --model.input_shape): "
            "MorphConfig.model: unknown model 'mlpp'. Did you mean 'mlp'?",
        ),
        (
            ["--model.name", "mlp"],
            "error: the command line (--model.name): the following arguments are required: "
            "--model.num_classes, --model.input_shape (neither the --config files nor the "
            "command line set them)\n",
        ),
        ([], "error: the command line: the following arguments are required: --model.name, "),
        (
            ["--model.name=mlp", "--model.num_classes=9", "--model.input_shape=4", "--dataset=x"],
            "error: the command line (--model.name, --model.num_classes, --model.input_shape, "
            "--dataset): MorphConfig.dataset='x': unknown data set 'x'",
        ),
        (  # printed it (exit 0), which the run refused at once
            ["--model.name=mlp", "--model.num_classes=10", "--model.input_shape=41"],
            "error: the command line (--model.name, --model.num_classes, --model.input_shape): "
            "MorphConfig.model.input_shape=[41], but the examples of data set 'mnist1d' have "
            "shape [40]; set input_shape: [40]\n",
        ),
        (
            ["--model.name=mlp", "--model.num_classes=9", "--model.input_shape=40"],
            "error: the command line (--model.name, --model.num_classes, --model.input_shape): "
            "MorphConfig.model.num_classes=9, but data set 'mnist1d' has 10 classes; set "
            "num_classes: 10\n",
        ),
        (  # printed it: a run refused it before training
            ["--model.name=logreg", "--model.num_classes=10", "--model.input_shape=40"],
            "error: the command line (--model.name, --model.num_classes, --model.input_shape): "
            "MorphConfig.model 'logreg' has no channels to prune (no channel group: ",
        ),
    ],
)
def test_print_config_refuses_a_model_a_run_would_refuse(tmp_path, capsys, options, expected):
    """It printed an unknown model's config (exit 0), or a model of None fields, or one
    that the loop cannot shrink (no channels to prune, a multiple too coarse)."""
    assert main(["--dir", str(tmp_path), *options, "--print_config"]) == 2
    assert capsys.readouterr().err.startswith(expected)


def test_print_config_of_a_latency_cost_measures_nothing(tmp_path, capsys, monkeypatch):
    """It measured a latency table (jitted matmuls and convolutions on the device) to check
    the multiple, where it should only print."""

    def measured(*args):
        raise AssertionError("--print_config measured a latency table")

    monkeypatch.setattr(_cost, "latency_table", measured)
    printed = _print_config(tmp_path, capsys, "--cost", "latency", "--multiple", "4")
    assert yaml.safe_load(printed)["cost"] == "latency"


def test_print_config_leaves_a_latency_costs_multiple_to_the_run(tmp_path, capsys, monkeypatch):
    """It priced a latency cost as FLOPs to check the multiple, refusing a model mixing
    convolutions and matmuls (the patch embedding, the MLP) whose narrowest config costs
    more FLOPs, where a run measuring matmuls 4 times as slow per FLOP accepts it."""
    config = tmp_path / "morph.yaml"
    options = {"num_heads": 1, "patch_size": 4, "mlp_features": 51}
    model = {"name": "transformer", "num_classes": 10, "input_shape": [40], "width": [4]}
    fields = {"model": {**model, "options": options}, "cost": "latency", "multiple": 8}
    config.write_text(yaml.safe_dump(fields))
    monkeypatch.setattr(_cost, "latency_table", None)  # measured by the run alone
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--dir", str(tmp_path), "--print_config"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["options"] == options
    slow_matmuls = {"dot_general": (1e-6, 4e-10), "conv_general_dilated": (1e-6, 1e-10)}
    start = MorphConfig.from_dict(printed).model
    narrowest = _expand.scale_widths(start, 0.0, 8)  # what no expansion may cost more than
    assert config_cost(narrowest, "flops") > config_cost(start, "flops")
    with _cost.latency_table_given(slow_matmuls):  # a run's, which fits it
        assert config_cost(narrowest, "latency") < config_cost(start, "latency")


def test_an_option_before_config_overrides_the_file_too(tmp_path, capsys):
    """jsonargparse applies options in order: the file set iterations back to 2."""
    config = pathlib.Path(__file__).resolve().parents[2] / "configs" / "morph_mnist1d.yaml"
    argv = ["--iterations", "1", "--config", str(config), "--dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--print_config"])
    assert exit_info.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out)["iterations"] == 1


@pytest.mark.parametrize(
    "text, options",
    [
        ("model: {name: mlp, num_classes: 10}\niterations: 1\n", ["--model.input_shape", "40"]),
        (
            "iterations: 1\n",
            ["--model.name", "mlp", "--model.num_classes=10", "--model.input_shape", "[40]"],
        ),
    ],
)
def test_the_command_line_sets_model_fields_a_config_file_leaves_out(
    tmp_path, capsys, text, options
):
    """The file was checked alone first: 'ModelConfig needs the field(s) ['input_shape']'
    (or 'MorphConfig needs the field 'model''), though the command line set them."""
    config = tmp_path / "partial.yaml"
    config.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--dir", str(tmp_path / "run"), *options, "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["iterations"] == 1
    assert (printed["model"]["name"], printed["model"]["num_classes"]) == ("mlp", 10)
    assert cli.morph_config(printed).model.input_shape == (40,)


def test_the_benchmark_refuses_the_rows_of_a_run_of_another_config_or_start_model(
    tmp_path, monkeypatch
):
    """It scaled the --config file's start model for its baselines, whatever model the
    run in --dir had started from (a run with --model.width '[16, 16, 16]', say), and took
    the morphed networks of a run of other steps or another data set of the same shape
    (mnist1d_shuffled) as --config's."""
    benchmark = load_benchmark("morph_vs_uniform")
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    config = pathlib.Path(__file__).parents[2] / "configs" / "morph_mnist1d.yaml"
    ours = MorphConfig.from_dict(yaml.safe_load(config.read_text()))
    other = dataclasses.replace(ours, steps=300, dataset="mnist1d_shuffled", data_dir="/else")
    start = ours.model.resolved().replace(width=(16, 16, 16))
    (tmp_path / "morph").mkdir()
    rows = pd.DataFrame([{"iteration": 0, "kind": "start", "config": json.dumps(start.to_dict())}])
    rows.attrs = {"morph_config": other.to_dict(), "resolved_dataset": "mnist1d_shuffled:1.0.0"}
    rows.to_parquet(tmp_path / "morph" / "iterations.parquet")
    loaded = lambda *args, **kwargs: pytest.fail("the rows passed the check: it loaded the data")
    monkeypatch.setattr(benchmark, "load", loaded)
    monkeypatch.setattr("sys.argv", ["x", "--config", str(config), "--dir", str(tmp_path)])
    with pytest.raises(SystemExit) as error:
        benchmark.main()
    assert str(error.value).startswith(  # data_dir, where the data lie, may differ
        f"error: --dir {tmp_path}: {str(tmp_path / 'morph' / 'iterations.parquet')!r} holds "
        "the rows of an earlier run that cannot be continued: another config ran them "
        "(model.width: [16, 16, 16] there, [32, 32, 32] here; steps: 300 there, 1500 here; "
        "the data set: 'mnist1d_shuffled:1.0.0' there, 'mnist1d:1.0.0' here), and only "
    )


def test_the_benchmark_continues_an_interrupted_run_rather_than_compare_its_first_iterations(
    tmp_path, monkeypatch, capsys
):
    """It read the rows of a run stopped after iteration 1 of 2 as the run's, comparing
    iteration 1's network alone; it has `run` continue it (or read it, when finished)."""
    benchmark = load_benchmark("morph_vs_uniform")
    (tmp_path / "morph").mkdir()
    start = json.dumps(TINY.model.resolved().to_dict())
    cut = pd.DataFrame([{"iteration": 0, "kind": "start", "config": start}])
    cut.to_parquet(tmp_path / "morph" / "iterations.parquet")
    calls = []

    def continued(*args, **kwargs):
        calls.append((args, kwargs))
        return cut

    monkeypatch.setattr(benchmark, "run", continued)
    monkeypatch.setattr(benchmark, "load", _small_mnist1d)
    monkeypatch.setattr(benchmark, "train", lambda *args: (None, 0.5))  # its accuracy
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY.to_dict()))
    argv = ["x", "--config", str(config), "--dir", str(tmp_path), "--seeds", "1"]
    monkeypatch.setattr("sys.argv", argv)
    benchmark.main()
    assert calls == [((TINY, str(tmp_path)), {"overwrite": False})]
    assert "start [16, 16]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("accuracies", "shown"),
    [([0.8, 0.9, 1.0], ["0.9000", "0.1000"]), ([0.8, math.nan, 1.0], ["NaN", "NaN"])],
    ids=["sample std", "diverged seed"],
)
def test_the_benchmark_gives_the_sample_std_over_seeds_as_the_leaderboard_does(
    tmp_path, monkeypatch, capsys, accuracies, shown
):
    """Its std was numpy's population std (ddof=0): 0.0816 for accuracies 0.8, 0.9 and 1.0,
    where the bench's leaderboard and the viewer give the sample std, 0.1. A diverged seed
    (NaN accuracy) makes the mean and std NaN, as on the leaderboard: pandas' default
    skipped it (0.9000 and 0.1414 from the two others)."""
    benchmark = load_benchmark("morph_vs_uniform")
    start = json.dumps(TINY.model.resolved().to_dict())
    monkeypatch.setattr(
        benchmark, "run", lambda *a, **k: pd.DataFrame([{"kind": "start", "config": start}])
    )
    monkeypatch.setattr(benchmark, "load", _small_mnist1d)
    monkeypatch.setattr(benchmark, "train", lambda *args: (None, accuracies[args[-1]]))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY.to_dict()))
    argv = ["x", "--config", str(config), "--dir", str(tmp_path), "--seeds", "3"]
    monkeypatch.setattr("sys.argv", argv)
    benchmark.main()
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[-2:] == ["accuracy", "std"]
    assert row.split()[-2:] == shown


def test_a_model_with_bfloat16_logits_is_trained_on_a_float32_loss(monkeypatch):
    """A model computing its logits in bfloat16 (``dtype``/``param_dtype`` options) took
    its cross-entropy in bfloat16 (rounded loss and gradients); the engine's train step
    takes it in float32, and so does the loop's."""
    import optax

    taken = []
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels

    def recording(logits, labels):
        taken.append(logits.dtype)
        return cross_entropy(logits, labels)

    monkeypatch.setattr(optax, "softmax_cross_entropy_with_integer_labels", recording)
    options = {"dtype": "bfloat16", "param_dtype": "bfloat16"}
    config = ModelConfig("mlp", 3, (8,), width=8, options=options)
    _loop.train(config, random_dataset("toy", (8,), 3), 1, 4, 1e-2, seed=0)
    assert taken == [np.dtype("float32")]


@pytest.mark.parametrize(
    "layer, overflow", [("blocks_0", np.isnan), ("head", np.isposinf)], ids=["nan", "inf"]
)
def test_the_test_accuracy_of_finite_variables_whose_logits_overflow_is_nan_not_argmaxs(
    layer, overflow
):
    """Params finite (the loop's divergence check passes them) but so large that every
    example's logits hold NaN, or +inf and no NaN: argmax would count right the labels of
    the NaN's (the first +inf's) class. Scaled alone, terms of both signs overflowed to +inf
    on one CPU and NaN on another; the kernel of ``layer`` is non-negative, so its inputs
    (ReLU's) sum to +inf on any, which the head's weights of both signs make NaN."""
    data = random_dataset("toy", (8,), 3)
    model = ModelConfig("mlp", 3, (8,), width=8).build()
    variables = model.init(jax.random.key(0), data.x_test[:1])
    huge = jax.tree.map(lambda a: a * 1e15, variables)
    dense = huge["params"][layer] if layer == "head" else huge["params"][layer]["Dense_0"]
    dense["kernel"] = jnp.abs(dense["kernel"]) * 1e15
    logits = np.asarray(model.apply(huge, data.x_test))
    assert overflow(logits).any(-1).all() and np.mean(np.argmax(logits, -1) == data.y_test) > 0
    assert np.isnan(logits).any() == (layer != "head")
    assert math.isnan(_loop._test_accuracy(model, huge, data))
    logits = np.asarray(model.apply(variables, data.x_test))
    plain = np.mean(np.argmax(logits, -1) == data.y_test)
    assert _loop._test_accuracy(model, variables, data) == plain


def test_train_keeps_bfloat16_batch_statistics_as_the_engine_does(monkeypatch):
    """A BatchNorm storing its statistics in bfloat16 wrote them back float32, which the
    loop's scan refused ("carry types differ"); the engine's step casts them back, and
    so does the loop's."""

    class Normed(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            norm = nn.BatchNorm(
                use_running_average=not train,
                param_dtype=jnp.bfloat16,
                force_float32_reductions=False,
            )
            return nn.Dense(3)(norm(x))

    monkeypatch.setattr(_loop, "build_model", lambda config: Normed())
    config = ModelConfig("mlp", 3, (8,), width=8)
    variables, _ = _loop.train(config, random_dataset("toy", (8,), 3), 2, 4, 1e-2, seed=0)
    stats = variables["batch_stats"]["BatchNorm_0"]
    assert stats["mean"].dtype == jnp.bfloat16 and bool(stats["mean"].any())  # moved


def test_train_names_a_variable_the_model_writes_in_training_alone_as_the_engine_does(
    monkeypatch,
):
    """A collection variable made in training alone failed the loop's scan with a pytree
    structure error; the loop names it as the engine's step does."""

    class Counted(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            self.variable("batch_stats", "seen", jnp.zeros, ())
            if train:
                self.variable("batch_stats", "steps", jnp.zeros, ()).value += 1
            return nn.Dense(3)(x)

    monkeypatch.setattr(_loop, "build_model", lambda config: Counted())
    config = ModelConfig("mlp", 3, (8,), width=8)
    message = r"wrote its 'batch_stats' collection with steps \(not made"
    with pytest.raises(ValueError, match=message):
        _loop.train(config, random_dataset("toy", (8,), 3), 1, 4, 1e-2, seed=0)


def test_train_names_a_collection_the_model_writes_in_evaluation_as_the_engine_does(
    monkeypatch,
):
    """The loop's test accuracy applied the model itself: a BatchNorm that uses the
    batch's statistics whatever ``train`` says was Flax's ModifyScopeVariableError ("is
    immutable"); it is named as the engine's evaluation names it."""

    monkeypatch.setattr(_loop, "build_model", lambda config: NormsAlways())
    config = ModelConfig("mlp", 3, (8,), width=8)
    message = (
        "NormsAlways writes variable 'mean' of its collection 'batch_stats' (at "
        "'/BatchNorm_0') in an evaluation (train=False), which writes nothing"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        _loop.train(config, random_dataset("toy", (8,), 3), 1, 4, 1e-2, seed=0)


class _SowsAStatistic(nn.Module):
    """Sows into a collection of its own, which init returns as state."""

    @nn.compact
    def __call__(self, x, train=False):
        h = nn.Dense(3)(x)
        self.sow("stats", "mean", h.mean())
        return h


def test_train_carries_a_collection_other_than_batch_stats_as_made_as_the_engine_does(
    monkeypatch,
):
    """The loop made every collection init returned mutable in training: a sown one grew
    a call each step and the loop refused it ("with mean/1 (not made at init)"), where the
    engine's step writes the running statistics alone and carries the rest as made."""

    monkeypatch.setattr(_loop, "build_model", lambda config: _SowsAStatistic())
    config = ModelConfig("mlp", 3, (8,), width=8)
    data = random_dataset("toy", (8,), 3)
    variables, _ = _loop.train(config, data, 2, 4, 1e-2, seed=0)
    made = _SowsAStatistic().init(jax.random.key(0), jnp.asarray(data.x_train[:1]))
    assert variables["stats"] == made["stats"]  # one call, init's


class _DropsItsAuxLoss(nn.Module):
    """An aux loss raised in an `nn.vmap` without an ``aux_loss`` axis: Flax drops it."""

    @nn.compact
    def __call__(self, x, train=False):
        member = lambda module, x: px.aux_loss(module, "l1", jnp.abs(x).mean())
        nn.vmap(member, variable_axes={}, axis_size=x.shape[0])(self, x)
        return nn.Dense(3)(x)


class _DrawsNoise(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3)(x + jax.random.normal(self.make_rng("noise"), x.shape))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_DropsItsAuxLoss(), "aux loss 'l1' was raised but not recorded"),
        (_DrawsNoise(), "_DrawsNoise draws random numbers from the rng stream 'noise', but"),
    ],
)
def test_train_names_a_dropped_aux_loss_or_another_rng_stream_as_the_engine_does(
    monkeypatch, model, message
):
    """The loop applied the model itself: an aux loss a transform dropped was trained
    without, silently, and a draw from another stream than "dropout" was Flax's
    InvalidRngError; it applies it as the engine's step does, which names both."""

    monkeypatch.setattr(_loop, "build_model", lambda config: model)
    config = ModelConfig("mlp", 3, (8,), width=8)
    with pytest.raises(ValueError, match=re.escape(message)):
        _loop.train(config, random_dataset("toy", (8,), 3), 1, 4, 1e-2, seed=0)


def test_train_adds_the_models_aux_losses_as_the_engine_does(monkeypatch):
    """The loop's train took the cross-entropy alone: moenet's load-balance loss (any
    `aux_loss`) was dropped, so the loop trained another objective than the bench."""

    class Penalized(nn.Module):  # logits that do not depend on w: only its aux loss moves it
        @nn.compact
        def __call__(self, x, train=False):
            w = self.param("w", nn.initializers.ones, (2,))
            px.aux_loss(self, "w_squared", jnp.sum(w**2))
            return jnp.zeros((x.shape[0], 3))

    monkeypatch.setattr(_loop, "build_model", lambda config: Penalized())
    config = ModelConfig("mlp", 3, (8,), width=8)
    variables, _ = _loop.train(config, random_dataset("toy", (8,), 3), 3, 4, 0.1, seed=0)
    np.testing.assert_allclose(variables["params"]["w"], [0.7, 0.7], atol=1e-2)  # 3 x 0.1


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"steps": -1}, ValueError, "train: steps=-1: expected an integer >= 1"),
        ({"learning_rate": float("nan")}, ValueError, "train: learning_rate=nan: expected a"),
        ({"strength": -1.0}, ValueError, "train: strength=-1.0: expected a finite number >= 0"),
        ({"seed": "a"}, TypeError, "train: seed='a': expected an integer"),
    ],
)
def test_train_names_a_bad_step_count_rate_strength_or_seed(arguments, error, message):
    """steps=-1 trained nothing and a NaN rate trained NaNs, without a word; a seed 'a'
    raised JAX's "Value 'a' with dtype <U1 is not a valid JAX array type"."""

    given = {"steps": 1, "batch_size": 4, "learning_rate": 0.1, "seed": 0} | arguments
    with pytest.raises(error, match="^" + re.escape(message)):
        _loop.train(ModelConfig("mlp", 3, (8,), width=8), random_dataset("toy", (8,), 3), **given)


def test_train_at_strength_0_trains_as_without_its_penalty_even_where_it_overflows():
    """0 * exp(1e3 * kernel) was 0 * inf: its gradient was NaN, and so were the variables."""

    data, config = random_dataset("toy", (8,), 3), ModelConfig("mlp", 3, (8,), width=8)
    overflows = lambda variables: jnp.exp(1e3 * variables["params"]["head"]["kernel"]).sum()
    penalized = _loop.train(config, data, 2, 16, 1e-2, 0, overflows, strength=0.0)
    plain = _loop.train(config, data, 2, 16, 1e-2, 0)
    assert penalized[1] == plain[1] == 0.375
    jax.tree.map(np.testing.assert_array_equal, penalized[0], plain[0])


def test_train_takes_an_optax_schedule_as_its_learning_rate():
    """optax.adam takes a schedule, and train passed it on, until a check of the rate
    refused it as "expected a finite number > 0" (a batch too big stops it, untrained)."""
    import optax

    schedule = optax.linear_schedule(0.1, 0.0, 10)
    with pytest.raises(ValueError, match="batch_size"):
        _loop.train(
            ModelConfig("mlp", 3, (8,), width=8),
            random_dataset("toy", (8,), 3),
            1,
            10**6,
            schedule,
            0,
        )


@pytest.mark.parametrize("seed", [np.array(3), jnp.array(3, jnp.int32), np.uint8(3)])
def test_train_takes_a_numpy_or_jax_integer_seed(seed):
    """A 0-d array seed (np.array(3), jnp.array(3)), which jax.random.key takes, was refused
    as "expected an integer"; it passes that check (a batch too big stops it, untrained)."""

    with pytest.raises(ValueError, match="batch_size"):
        _loop.train(
            ModelConfig("mlp", 3, (8,), width=8),
            random_dataset("toy", (8,), 3),
            1,
            10**6,
            0.1,
            seed,
        )


def test_train_refuses_a_model_with_fewer_logits_than_the_data_set_has_classes():
    """train(config, data, ...) with num_classes=3 on labels 0..3 trained on out-of-range
    labels without a word and returned an accuracy."""

    with pytest.raises(
        ValueError,
        match=r"^train: model.num_classes=3, but data set 'toy' has 4 classes; "
        r"set num_classes: 4$",
    ):
        _loop.train(
            ModelConfig("mlp", 3, (8,), width=8), random_dataset("toy", (8,), 4), 1, 4, 0.1, 0
        )


def test_a_stage_trains_in_chunks_to_the_same_numbers_as_one_scan(monkeypatch):
    """One scan of the stage's steps held a Ctrl-C to the stage's end (20 s for one at 8 s):
    chunks (`even_chunk` of its steps) stop between two, and give bitwise the same
    variables."""

    data, config = random_dataset("toy", (8,), 3), ModelConfig("mlp", 3, (8,), width=8)
    scanned = []
    scan = jax.lax.scan
    monkeypatch.setattr(
        jax.lax, "scan", lambda f, init, xs: scanned.append(len(xs)) or scan(f, init, xs)
    )
    with monkeypatch.context() as patch:
        patch.setattr(_loop, "even_chunk", lambda steps: 4)
        chunked = _loop.train(config, data, 10, 16, 1e-2, seed=0)
    assert scanned == [4, 2]  # traced once per length: chunks of 4, 4 and 2 steps
    whole = _loop.train(config, data, 10, 16, 1e-2, seed=0)
    assert scanned[2:] == [10]  # 10 steps: one chunk
    assert chunked[1] == whole[1]
    jax.tree.map(np.testing.assert_array_equal, chunked[0], whole[0])


TINY = MorphConfig(
    ModelConfig("mlp", 10, (40,), width=(16, 16)),
    iterations=2,
    steps=4,
    batch_size=32,
    threshold=0.2,
    multiple=12,  # iteration 1 ends at widths [12, 12]: `_pruned` kills 8 of 16 channels
)


def _saved(directory: pathlib.Path) -> dict[str, dict[str, np.ndarray]]:
    """The arrays of each state saved in ``directory``."""
    states = sorted((directory / _loop.STATES).iterdir())
    return {path.name: dict(np.load(path)) for path in states}


def _pruned(config, data, *args, **kwargs):
    """Stands for training an mlp: `_untrained`, where a regularized training (a penalty
    given) kills the second half of every hidden layer's channels."""
    variables, accuracy = _untrained(config, data)
    if len(args) < 5:
        return variables, accuracy

    def killed(name, layer):
        kernel, bias = layer["kernel"], layer.get("bias")
        if name != "stem":
            kernel = kernel.at[kernel.shape[0] // 2 :].set(0)
        if name == "head":
            return {**layer, "kernel": kernel}
        half = kernel.shape[1] // 2
        return {"kernel": kernel.at[:, half:].set(0), "bias": bias.at[half:].set(0)}

    params = variables["params"]
    return {
        "params": {
            name: killed(name, layer)
            if name == "head"
            else {"Dense_0": killed(name, layer["Dense_0"])}
            for name, layer in params.items()
        }
    }, 0.25


def test_an_interrupted_run_continues_to_the_rows_and_variables_of_an_uninterrupted_one(
    tmp_path, capsys, monkeypatch
):
    """A run stopped in iteration 2 of 2 started over (--overwrite), its rows moved aside."""
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    monkeypatch.setattr(_loop, "measured_latency", lambda *args: 1e-6)
    monkeypatch.setattr(_loop, "train", _pruned)
    whole = _loop.run(TINY, tmp_path / "whole", progress=False)
    assert whole["widths"][3] == "[12, 12]" != whole["widths"][0]  # iteration 1's model
    calls = []

    def stopped_in_iteration_2(*args, **kwargs):
        calls.append(args)
        if len(calls) == 4:  # the start model, iteration 1's two trainings, then Ctrl-C
            raise KeyboardInterrupt
        return _pruned(*args, **kwargs)

    monkeypatch.setattr(_loop, "train", stopped_in_iteration_2)
    with pytest.raises(KeyboardInterrupt):
        _loop.run(TINY, tmp_path / "cut", progress=False)
    assert pd.read_parquet(tmp_path / "cut" / _loop.ITERATIONS)["iteration"].max() == 1
    capsys.readouterr()
    continued = _loop.run(TINY, tmp_path / "cut", progress=False)
    assert len(calls) == 6  # iteration 2's two trainings, nothing before
    assert "has finished 1 iteration: continuing it with iteration 2" in capsys.readouterr().err
    pd.testing.assert_frame_equal(continued, whole)
    assert continued.attrs == whole.attrs
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cut" / _loop.ITERATIONS), whole)
    saved = _saved(tmp_path / "whole")
    assert list(saved) == ["iteration-0.npz", "iteration-1.npz", "iteration-2.npz"]
    for name, arrays in _saved(tmp_path / "cut").items():
        assert arrays.keys() == saved[name].keys()
        assert all(np.array_equal(arrays[k], saved[name][k]) for k in arrays), name

    finished = _loop.run(TINY, tmp_path / "cut", progress=False)
    assert len(calls) == 6  # nothing trained again
    pd.testing.assert_frame_equal(finished, whole)
    assert "has finished 2 iterations (of 2): nothing to train" in capsys.readouterr().err
    # fewer iterations: its first (refused: "they hold 2 iterations, more than ...=1")
    first = _loop.run(dataclasses.replace(TINY, iterations=1), tmp_path / "cut", progress=False)
    assert len(calls) == 6
    pd.testing.assert_frame_equal(first, whole[whole["iteration"] <= 1])
    assert first.attrs["morph_config"]["iterations"] == 1
    assert capsys.readouterr().err.endswith(
        "has finished 2 iterations, more than the 1 asked: nothing to train; its rows up to "
        "iteration 1 are this config's (iterations: 2 gives them all)\n"
    )

    model, variables = load_variables(tmp_path / "cut")  # its last, iteration 2's
    assert model == ModelConfig.from_dict(json.loads(whole["config"].iloc[-1]))
    jax.tree.map(np.testing.assert_array_equal, variables, _pruned(model, None)[0])
    iteration_1, _ = load_variables(tmp_path / "cut", iteration=np.int64(1))  # as a frame gives it
    assert iteration_1.resolved().widths == (12, 12)
    assert load_variables(tmp_path / "cut", iteration=0)[0] == TINY.model.resolved()
    with pytest.raises(RunDirectoryError) as error:
        load_variables(tmp_path / "cut", iteration=3)
    assert str(error.value) == (
        f"iteration=3: the run in {str(tmp_path / 'cut')!r} has finished the iterations "
        "[0, 1, 2] (0: the start model; None: the last)"
    )
    state = tmp_path / "cut" / _loop.STATES / "iteration-2.npz"
    state.unlink()
    missing = rf"iteration 2, {re.escape(repr(str(state)))}, are missing"
    with pytest.raises(RunDirectoryError, match=missing):
        load_variables(tmp_path / "cut")
    with pytest.raises(RunDirectoryError, match=r"holds no morph run: it has no morph/"):
        load_variables(tmp_path / "none")


def test_a_run_removes_the_temporary_files_a_run_killed_mid_write_left(tmp_path):
    """A run killed (kill -9) while it wrote its rows or a state left the temporary file
    (a part of the state, as large) in morph/ for good, each kill one more; the next run
    removes those of writers gone, as a bench run does, under the lock."""
    from phosjax.bench._store import machine

    gone = 2**22 + 1  # above Linux's largest pid: no process
    morph, states = tmp_path / "morph", tmp_path / _loop.STATES
    states.mkdir(parents=True)
    left = [morph / f".tmp~{machine()}~{gone}~iterations.parquet"]
    left.append(states / f".tmp~{machine()}~{gone}~iteration-1.npz")
    writing = states / f".tmp~{machine()}~{os.getpid()}~iteration-2.npz"  # alive: kept
    for path in (*left, writing, tmp_path / _loop.ITERATIONS):  # rows: continued, not moved
        path.write_bytes(b"part")
    with _loop._output(tmp_path, overwrite=False):
        assert [path.exists() for path in left] == [False, False]
    assert writing.exists()


def test_a_continued_latency_run_prices_by_the_table_it_stored_not_one_measured_anew(
    tmp_path, monkeypatch
):
    """The resumed process measured `latency_table` again: another budget and penalty;
    then `prepare` still measured one, to check `multiple` (a fraction of a second)."""
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    monkeypatch.setattr(_loop, "train", _pruned)
    monkeypatch.setattr(_loop, "measured_latency", lambda *args: 1e-6)
    budgets, once = [], _loop.once
    monkeypatch.setattr(_loop, "once", lambda *a, **k: budgets.append(k["budget"]) or once(*a, **k))

    def measuring(measured):
        for module in (_loop, _cost):  # run's and cost_polynomial's
            monkeypatch.setattr(module, "latency_table", measured)

    table = {"dot_general": (1e-6, 1e-9), "conv_general_dilated": (1e-6, 1e-9)}
    measuring(lambda backend=None: table)
    config = dataclasses.replace(TINY, cost="latency", iterations=1)
    _loop.run(config, tmp_path, progress=False)
    stored = pd.read_parquet(tmp_path / _loop.ITERATIONS).attrs["latency_table"]
    assert stored == {"dot_general": [1e-6, 1e-9], "conv_general_dilated": [1e-6, 1e-9]}
    measuring(lambda backend=None: pytest.fail("a continued run measured a latency table"))
    _expand._priced_cost.cache_clear()  # another process: no cost cached
    _loop.run(dataclasses.replace(config, iterations=2), tmp_path, progress=False)
    assert budgets[1] == budgets[0]
    assert pd.read_parquet(tmp_path / _loop.ITERATIONS).attrs["latency_table"] == stored


def test_an_overwrite_a_config_file_sets_to_no_bool_is_refused_naming_the_file(
    tmp_path, capsys, monkeypatch
):
    """'overwrite: "false"' (a string, so true) moved an earlier run's rows aside and
    started over: the parser took any value of a flag from a config file."""
    calls = []
    monkeypatch.setattr(cli, "run", lambda *args, **kwargs: calls.append(kwargs))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY.to_dict(), "overwrite": "false"}))
    assert main(["--config", str(config), "--dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        f"error: {config}: overwrite must be true or false, got 'false'.\n"
    )
    assert calls == []


def test_an_import_in_a_config_file_is_refused_as_no_field_of_a_morph_run(
    tmp_path, capsys, monkeypatch
):
    """'import: 5' said "import must be a list of module names, e.g. import: [my_models]",
    a key morph does not take (a list was then refused as no field)."""
    monkeypatch.setattr(cli, "run", lambda *args, **kwargs: pytest.fail("it ran"))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY.to_dict(), "import": 5}))
    assert main(["--config", str(config), "--dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {config}: MorphConfig has no field 'import'. Its fields: model, dataset,"
    )


def test_a_run_of_another_config_is_refused_naming_what_differs_and_overwrite_keeps_it(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    monkeypatch.setattr(_loop, "train", _untrained)
    monkeypatch.setattr(_loop, "measured_latency", lambda *args: 1e-6)
    first = dataclasses.replace(TINY, iterations=0)
    _loop.run(first, tmp_path, progress=False)
    rows, state = tmp_path / _loop.ITERATIONS, tmp_path / _loop.STATES / "iteration-0.npz"
    before = rows.read_bytes(), state.read_bytes()
    other = dataclasses.replace(first, steps=5, model=TINY.model.replace(width=(16, 8)))
    with pytest.raises(RunDirectoryError) as error:
        _loop.run(other, tmp_path, progress=False)
    assert str(error.value) == (
        f"{str(rows)!r} holds the rows of an earlier run that cannot be continued: another "
        "config ran them (model.width: [16, 16] there, [16, 8] here; steps: 4 there, 5 here), "
        "and only that config continues them; choose another directory, or pass --overwrite (in "
        "Python: run(..., overwrite=True)) to move them and their states aside and start over"
    )
    assert (rows.read_bytes(), state.read_bytes()) == before
    state.unlink()  # as an earlier phosjax left it
    with pytest.raises(RunDirectoryError, match=r"variables to continue from, .* are missing"):
        _loop.run(dataclasses.replace(first, iterations=1), tmp_path, progress=False)
    state.write_bytes(before[1])
    _loop.run(other, tmp_path, overwrite=True, progress=False)
    err = capsys.readouterr().err
    (moved_rows,) = rows.parent.glob("iterations.parquet.old-*")
    (moved_states,) = rows.parent.glob("states.old-*")
    assert f"moved the earlier rows to {moved_rows}" in err
    assert f"moved the earlier states to {moved_states}" in err
    assert moved_rows.read_bytes() == before[0]
    assert (moved_states / "iteration-0.npz").read_bytes() == before[1]
    assert pd.read_parquet(rows).attrs["morph_config"] == other.to_dict()
    more = _loop.run(dataclasses.replace(other, iterations=1), tmp_path, progress=False)
    assert more["kind"].tolist() == ["start", "regularized", "shrunk", "expanded"]
    assert "has finished 0 iterations: continuing it with iteration 1" in capsys.readouterr().err
    config = tmp_path / "morph.yaml"
    config.write_text(yaml.safe_dump({**other.to_dict(), "iterations": 1}))
    assert main(["--config", str(config), "--dir", str(tmp_path), "--no_progress"]) == 0
    err = capsys.readouterr().err  # it said "wrote", where nothing was written
    assert "has finished 1 iteration (of 1): nothing to train" in err
    assert f"its rows are in {rows}\n" in err and "wrote" not in err


def test_a_run_continues_under_a_dataset_features_or_splits_written_otherwise_but_read_alike(
    tmp_path, capsys, monkeypatch
):
    """'mnist1d' against 'mnist1d:1.0.0', or None against the defaults written out, was refused."""
    monkeypatch.setattr(_loop, "load", lambda name, **options: _small_mnist1d("mnist1d"))
    monkeypatch.setattr(_loop, "train", _untrained)
    monkeypatch.setattr(_loop, "measured_latency", lambda *args: 1e-6)
    first = dataclasses.replace(TINY, iterations=0)
    _loop.run(first, tmp_path, progress=False)
    capsys.readouterr()
    written = {"features": ["signal", "label"], "splits": ["train", "test"]}
    _loop.run(dataclasses.replace(first, dataset="mnist1d:1.0.0", **written), tmp_path)
    assert "has finished 0 iterations (of 0): nothing to train" in capsys.readouterr().err
    swapped = dataclasses.replace(first, splits=["test", "train"])
    with pytest.raises(RunDirectoryError, match=r"splits: \['train', 'test'\] there, \['test', "):
        _loop.run(swapped, tmp_path, progress=False)


def test_a_second_run_on_a_directory_being_written_stops_before_it_moves_or_reads_anything(
    tmp_path, monkeypatch
):
    """Two runs on one directory both continued it, each writing the other's rows over."""
    monkeypatch.setattr(_loop, "load", _small_mnist1d)
    monkeypatch.setattr(_loop, "train", _stop_at_training)
    rows = tmp_path / _loop.ITERATIONS
    rows.parent.mkdir()
    rows.write_text("the rows of the run being written")
    with locked(rows.parent, (0, 1)):  # as the first run holds it
        for overwrite in (False, True):
            with pytest.raises(RunDirectoryError) as error:
                _loop.run(TINY, tmp_path, overwrite=overwrite, progress=False)
            assert str(error.value).startswith(
                f"{str(rows.parent)!r} is being written by another run (pid {os.getpid()} "
            )
    assert rows.read_text() == "the rows of the run being written"
    with pytest.raises(_Trained):  # the lock goes with the run
        _loop.run(TINY, tmp_path, overwrite=True, progress=False)


def test_rows_another_run_writes_before_the_lock_is_taken_are_kept_not_moved_aside(
    tmp_path, monkeypatch
):
    """Whether to move earlier rows and states aside was decided before the lock: rows a
    run finished in between had their states moved aside without --overwrite."""

    @contextlib.contextmanager
    def locked_after_another_run(folder, *args):
        rows = pd.DataFrame({"kind": ["start"]})  # that run's first rows, and its states
        rows.to_parquet(tmp_path / _loop.ITERATIONS)
        (tmp_path / _loop.STATES).mkdir()
        with locked(folder, *args):
            yield

    monkeypatch.setattr(_loop, "locked", locked_after_another_run)
    with _loop._output(tmp_path, overwrite=False):
        pass
    assert sorted(p.name for p in (tmp_path / "morph").iterdir()) == [
        "iterations.parquet",
        "run.lock",
        "states",
    ]


def test_rows_whose_latency_table_is_no_mapping_are_refused_as_no_rows_of_a_run(tmp_path):
    """A latency table not a mapping (a damaged file) raised AttributeError, a traceback."""
    rows = pd.DataFrame(
        {"iteration": [0], "kind": ["start"], "config": [json.dumps(MODEL.to_dict())]}
    )
    rows.attrs = {"morph_config": MorphConfig(MODEL).to_dict(), "latency_table": [1, 2]}
    (tmp_path / "morph").mkdir()
    rows.to_parquet(tmp_path / _loop.ITERATIONS)
    with pytest.raises(RunDirectoryError, match=r"they are no rows of `phosjax.morph.run` \("):
        _loop._earlier(tmp_path, MorphConfig(MODEL), MODEL, "mnist1d:1.0.0")


def test_load_variables_names_the_columns_that_rows_not_of_a_run_lack(tmp_path):
    """It said "cannot read the rows (ArrowInvalid: No match for FieldRef.Name(iteration)
    in a: int64 __fragment_index: int32 ...)" of a file it read well."""
    (tmp_path / "morph").mkdir()
    pd.DataFrame({"kind": ["start"], "accuracy": [0.5]}).to_parquet(tmp_path / _loop.ITERATIONS)
    with pytest.raises(RunDirectoryError) as error:
        load_variables(tmp_path)
    assert str(error.value) == (
        f"{str(tmp_path / _loop.ITERATIONS)!r} holds no rows of phosjax.morph.run: it has no "
        "column(s) ['iteration', 'config'] (it has ['kind', 'accuracy'])"
    )


def test_load_variables_of_a_folder_inside_a_run_names_the_run_s_directory(tmp_path):
    """It said "holds no run of phosjax.morph: no '.../morph/morph/iterations.parquet'",
    where read_runs names the run to pass."""
    _written_run(tmp_path, MorphConfig(MODEL))
    with pytest.raises(RunDirectoryError) as error:
        load_variables(tmp_path / "morph")
    assert str(error.value) == (
        f"{str(tmp_path / 'morph')!r} holds no morph run: it lies inside the run "
        f"{str(tmp_path)!r}; pass that run's directory"
    )


@pytest.mark.parametrize("iteration", ["1", 1.0, True])
def test_load_variables_names_an_iteration_that_is_no_integer(iteration):
    """It said "iteration='1': the run in ... has finished the iterations [0, 1, 2]"."""
    with pytest.raises(TypeError) as error:
        load_variables("/no/run", iteration)
    assert str(error.value) == (
        f"load_variables: iteration={iteration!r}: expected an integer (0: the start model) "
        "or None (the last finished)"
    )


def test_the_doc_names_every_column_of_the_rows(monkeypatch):
    """docs/morph.md named none of them ("widths, config, parameters, FLOPs, measured
    latency and test accuracy"): not `latency_s`, nor that `widths` and `config` are JSON."""
    monkeypatch.setattr(_loop, "measured_latency", lambda *args: 1e-6)
    config = ModelConfig("mlp", 10, (40,), width=8)
    row = _loop._row(0, "start", config, None, 0.5)
    doc = (pathlib.Path(__file__).parents[2] / "docs" / "morph.md").read_text()
    columns = re.search(r"one row per stage, in the columns (.*?), with", doc, re.S)
    assert columns, "docs/morph.md lists no columns of the rows"
    assert [name for name in row if f"`{name}`" not in columns.group(1)] == []


@pytest.mark.parametrize("cell", [None, "{not json"])
def test_load_variables_names_a_row_whose_config_is_not_json(tmp_path, cell):
    """It raised json's own TypeError ("the JSON object must be str, bytes or bytearray,
    not NoneType") or JSONDecodeError, naming neither the file nor the row."""
    (tmp_path / "morph").mkdir()
    rows = pd.DataFrame({"iteration": [0], "kind": ["start"], "config": [cell]})
    rows.to_parquet(tmp_path / _loop.ITERATIONS)
    with pytest.raises(RunDirectoryError) as error:
        load_variables(tmp_path)
    assert str(error.value).startswith(
        f"{str(tmp_path / _loop.ITERATIONS)!r}: the config of its row of iteration 0 ('start') "
        "is no ModelConfig as JSON ("
    )
    assert str(error.value).endswith(
        f"the file is damaged: load another iteration, or run it again (python -m "
        f"phosjax.morph --config CONFIG.yaml --dir {tmp_path} --overwrite moves the file aside)"
    )


def test_the_commands_named_for_a_directory_with_a_space_run_as_printed(tmp_path):
    """The commands were printed with ``--dir my run`` unquoted: pasted, two arguments."""
    directory = tmp_path / "my run"
    directory.mkdir()
    quoted = f"--dir '{directory}'"
    with pytest.raises(RunDirectoryError, match=re.escape(f"{quoted} writes one)")):
        read_runs(directory)
    _loop._state(directory, 0).parent.mkdir(parents=True)
    _loop._state(directory, 0).write_bytes(b"")
    with pytest.raises(RunDirectoryError, match=re.escape(f"{quoted} starts it over")):
        load_variables(directory)
    _loop._state(directory, 0).unlink()
    (directory / _loop.ITERATIONS).write_bytes(b"not parquet")
    with pytest.raises(
        RunDirectoryError, match=re.escape(f"{quoted} --overwrite moves the file aside")
    ):
        read_runs(directory)


def test_load_variables_of_a_run_stopped_before_its_first_rows_says_so(tmp_path):
    """Its start model's state written, not its rows: it said "holds no morph run: it has
    no morph/iterations.parquet", as of an empty directory."""
    state = _loop._state(tmp_path, 0)
    state.parent.mkdir(parents=True)
    state.write_bytes(b"")
    with pytest.raises(RunDirectoryError) as error:
        load_variables(tmp_path)
    assert str(error.value) == (
        f"{str(tmp_path)!r} holds no morph run yet: it was stopped before its first rows (it "
        "has morph/states/iteration-0.npz, the start model's variables, but no "
        f"morph/iterations.parquet); python -m phosjax.morph --config CONFIG.yaml --dir "
        f"{tmp_path} starts it over, moving that state aside"
    )


def test_rows_without_the_run_s_columns_are_refused_naming_those_they_lack(tmp_path):
    """A run continuing them said "they are no rows of `phosjax.morph.run` ('config')", a
    bare KeyError, where load_variables names the columns lacking."""
    _written_run(tmp_path, MorphConfig(MODEL), lacking=("iteration", "config"))
    with pytest.raises(RunDirectoryError) as error:
        _loop._earlier(tmp_path, MorphConfig(MODEL), MODEL, "mnist1d:1.0.0")
    assert "they are no rows of `phosjax.morph.run`: the file has no column(s) ['iteration', " in (
        str(error.value)
    )
    assert "'config'] (it has ['kind', 'accuracy']); choose another directory" in str(error.value)


def test_a_finished_run_whose_last_state_is_missing_gives_its_rows_and_refuses_continuing(
    tmp_path,
):
    """It was refused ("the variables to continue from, ... are missing") where the config
    asked for no more iterations, so nothing would have loaded them."""
    config = MorphConfig(MODEL, iterations=0)
    rows = pd.DataFrame(
        {"iteration": [0], "kind": ["start"], "config": [json.dumps(MODEL.to_dict())]}
    )
    rows.attrs = {"morph_config": config.to_dict(), "resolved_dataset": "mnist1d:1.0.0"}
    (tmp_path / "morph").mkdir()
    rows.to_parquet(tmp_path / _loop.ITERATIONS)
    earlier = _loop._earlier(tmp_path, config, MODEL, "mnist1d:1.0.0")
    assert earlier.rows == rows.to_dict("records") and earlier.variables is None
    more = dataclasses.replace(config, iterations=1)
    with pytest.raises(RunDirectoryError, match=r"variables to continue from, .* are missing"):
        _loop._earlier(tmp_path, more, MODEL, "mnist1d:1.0.0")
    with pytest.raises(RunDirectoryError, match=r"the variables of iteration 0, .* are missing"):
        load_variables(tmp_path)


def test_load_variables_names_a_row_whose_iteration_is_null(tmp_path):
    """It raised int's own ValueError ("cannot convert float NaN to integer"), naming
    neither the file nor the row."""
    (tmp_path / "morph").mkdir()
    config = json.dumps(MODEL.to_dict())
    rows = pd.DataFrame({"iteration": [0, None], "kind": ["start", "expanded"], "config": config})
    rows.to_parquet(tmp_path / _loop.ITERATIONS)
    with pytest.raises(RunDirectoryError) as error:
        load_variables(tmp_path)
    assert str(error.value) == (
        f"{str(tmp_path / _loop.ITERATIONS)!r}: the iteration of its row 'expanded' is no "
        "integer (nan); the file is damaged: load another iteration, or run it again (python "
        f"-m phosjax.morph --config CONFIG.yaml --dir {tmp_path} --overwrite moves the file "
        "aside)"
    )


def test_rows_of_the_run_s_columns_without_a_row_are_named_as_a_file_holding_none(tmp_path):
    """Continuing them said "they are no rows of `phosjax.morph.run` (list index out of
    range)"; load_variables "has finished the iterations []"."""
    config = MorphConfig(MODEL)
    rows = pd.DataFrame({"iteration": [0], "kind": ["start"], "config": ["{}"]}).iloc[:0]
    rows.attrs = {"morph_config": config.to_dict(), "resolved_dataset": "mnist1d:1.0.0"}
    (tmp_path / "morph").mkdir()
    rows.to_parquet(tmp_path / _loop.ITERATIONS)
    path = repr(str(tmp_path / _loop.ITERATIONS))
    with pytest.raises(RunDirectoryError) as error:
        _loop._earlier(tmp_path, config, MODEL, "mnist1d:1.0.0")
    assert str(error.value).startswith(
        f"{path} holds the rows of an earlier run that cannot be continued: the file has "
        "their columns but no row; choose another directory, or pass --overwrite"
    )
    with pytest.raises(RunDirectoryError) as error:
        load_variables(tmp_path)
    assert str(error.value) == (
        f"{path}: it has the columns of the rows but no row; the file is damaged: run it again "
        f"(python -m phosjax.morph --config CONFIG.yaml --dir {tmp_path} --overwrite moves "
        "the file aside)"
    )
