"""The usage errors every bench command reports alike: one line, exit status 2."""

import importlib
import os
import pathlib
import socket
import subprocess
import sys

import pytest
import yaml

from tests.processes import free_port

COMMANDS = ["new", "add_models", "view", "profile", "export"]


def _main(command):
    module = "phosjax.bench.view.__main__" if command == "view" else f"phosjax.bench.{command}"
    return importlib.import_module(module).main


def _exit_status(main, argv):
    """``main(argv)``'s exit status: returned (a `BenchError`'s) or raised (a usage error's)."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def _joined(*args, **options):
    """`jax.distributed.initialize` stopping the command with what it was given, which
    `_exit_status` returns."""
    raise SystemExit(("joined", args, options))


def _join_as_process_0(address, argv):
    """What ``new`` run with ``argv`` and the options joining process 0 of 2 at ``address``
    ends with: under `_joined`, what it called `jax.distributed.initialize` with."""
    joining = ["--coordinator", address, "--processes", "2", "--process_id", "0"]
    return _exit_status(_main("new"), [*argv, *joining])


def _joined_as_process_0(address):
    """`_joined`'s record of process 0 of 2 joining ``address``, waiting the default 300 s."""
    return ("joined", (address, 2, 0), {"initialization_timeout": 300})


@pytest.mark.parametrize("module", [*(f"phosjax.bench.{c}" for c in COMMANDS), "phosjax.morph"])
def test_a_dir_beginning_with_a_dash_is_said_how_to_write(module, capsys):
    """``--dir -x`` got argparse's bare "expected one argument"."""
    module = f"{module}.__main__" if module.endswith(("view", "morph")) else module
    assert _exit_status(importlib.import_module(module).main, ["--dir", "-x"]) == 2
    prog = module.removesuffix(".__main__")
    assert capsys.readouterr().err == (
        "error: argument --dir: expected one argument (a directory whose name begins with '-' "
        f"is written --dir=-NAME or --dir ./-NAME); python -m {prog} --help lists the options.\n"
    )


@pytest.mark.parametrize("module", [*(f"phosjax.bench.{c}" for c in COMMANDS), "phosjax.morph"])
def test_help_names_no_private_module(module, capsys):
    """'new --help' sent its user to `phosjax.bench._runner.chunk_size`, a private function."""
    module = f"{module}.__main__" if module.endswith(("view", "morph")) else module
    assert _exit_status(importlib.import_module(module).main, ["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert help_text.startswith("usage: python -m phosjax.") and "._" not in help_text


def test_help_says_the_chunk_steps_where_nothing_is_evaluated_or_saved_on_the_way(capsys):
    """'new --help' gave chunk_steps' default as a divisor of eval_every and
    checkpoint_every alone; where both are 0 it divides the steps (600 steps: 200)."""
    from phosjax.bench import BenchConfig
    from phosjax.bench._runner import chunk_size

    assert chunk_size(BenchConfig(eval_every=0, checkpoint_every=0), 600) == 200
    assert _exit_status(_main("new"), ["--help"]) == 0
    assert (
        "steps per dispatch (None: the largest divisor up to 250 of ``eval_every`` and "
        "``checkpoint_every``, of the steps where both are 0, so that"
    ) in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("misspelt", ["--dirr", "-dir"])  # -dir: no option was named
@pytest.mark.parametrize("command", COMMANDS)
def test_a_misspelt_option_is_the_error_with_the_nearest_option(
    command, misspelt, tmp_path, capsys
):
    args = [misspelt, str(tmp_path / "b")] + (["--mlflow", "x"] if command == "export" else [])
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: unrecognized arguments: {misspelt} {tmp_path / 'b'} (did you mean --dir?); "
        f"python -m phosjax.bench.{command} --help lists the options.\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("given", [["--dirr", "x/-port"], ["--dirr=x/-port"], ["-dir", "-port/x"]])
def test_a_value_is_no_misspelt_option(given, capsys):
    """'view --dirr /tmp/-port' was also asked 'did you mean --port?' of its path."""
    assert _exit_status(_main("view"), given) == 2
    assert capsys.readouterr().err == (
        f"error: unrecognized arguments: {' '.join(given)} (did you mean --dir?); "
        "python -m phosjax.bench.view --help lists the options.\n"
    )


@pytest.mark.parametrize(
    ("command", "given", "said"),
    [
        ("view", ["--bogus", "1", "--prot", "2"], "--bogus 1 --prot 2 (did you mean --port?)"),
        ("new", ["--bogus", "1"], "--bogus 1"),
    ],
)
def test_an_option_like_none_is_the_error_without_a_guess(command, given, said, tmp_path, capsys):
    """The '--' every option shares made '--bogus' near '--host' (view's)."""
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(["--dir", str(tmp_path / "b"), *given])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: unrecognized arguments: {said}; "
        f"python -m phosjax.bench.{command} --help lists the options.\n"
    )


def test_a_misspelt_option_is_the_error_before_a_config_files_refused_value(tmp_path, capsys):
    """``new --config c.yaml --gird.steps 3`` (meant to replace the file's steps 0) was
    told the file's steps 0, hiding the misspelt option the user would fix instead."""
    path = tmp_path / "c.yaml"
    path.write_text("models: [mlp]\ngrid: {steps: 0}\n")
    argv = ["--config", str(path), "--gird.steps", "3", "--dir", str(tmp_path / "b")]
    assert _exit_status(_main("new"), argv) == 2
    assert capsys.readouterr().err == (
        "error: unrecognized arguments: --gird.steps 3 (did you mean --grid.steps?); "
        "python -m phosjax.bench.new --help lists the options.\n"
    )


def test_a_grid_key_written_by_its_initials_is_pointed_at_that_key(tmp_path, capsys):
    """``--grid.lr 0.1`` was told ``did you mean --grid?`` (and ``--grid.wd`` the width),
    where a config file's ``grid: {lr: 0.1}`` and morph's ``--lr`` name learning_rate."""
    argv = ["--grid.lr", "0.1", "--grid.wd", "0", "--dir", str(tmp_path / "b")]
    assert _exit_status(_main("new"), argv) == 2
    assert capsys.readouterr().err == (
        "error: unrecognized arguments: --grid.lr 0.1 --grid.wd 0 (did you mean "
        "--grid.learning_rate?) (did you mean --grid.weight_decay?); "
        "python -m phosjax.bench.new --help lists the options.\n"
    )


@pytest.mark.parametrize(
    ("module", "options", "key", "value"),
    [
        (
            "phosjax.bench.new",
            ["--models", "mlp", "--datasets", "digits", "--dataset_splits.digits", "[train, test]"],
            "dataset_splits",
            {"digits": ["train", "test"]},
        ),
        (
            "phosjax.morph.__main__",
            [
                "--model",
                "{name: mlp, num_classes: 10, input_shape: 40}",
                "--model.options.dropout",
                "0.5",
            ],
            "model",
            {"name": "mlp", "num_classes": 10, "input_shape": 40, "options": {"dropout": 0.5}},
        ),
    ],
)
def test_a_key_of_an_options_value_is_no_unknown_option(
    module, options, key, value, tmp_path, capsys
):
    """'new --dataset_splits.digits [train, test]', which jsonargparse reads as a key of
    --dataset_splits' value, was refused as an unrecognized argument once a misspelt
    option was looked for before the config files."""
    main = importlib.import_module(module).main
    argv = [*options, "--dir", str(tmp_path / "d"), "--print_config=skip_default"]
    assert _exit_status(main, argv) == 0
    assert yaml.safe_load(capsys.readouterr().out)[key] == value


@pytest.mark.parametrize(
    ("module", "option", "near"),
    [
        ("phosjax.bench.new", "--eval_every.x", "--eval_every"),
        ("phosjax.bench.new", "--grid.steps.x", "--grid.steps"),
        ("phosjax.morph", "--steps.x", "--steps"),
    ],
)
def test_a_key_of_a_numbers_value_is_an_unknown_option(module, option, near, tmp_path, capsys):
    """'new --eval_every.x 3' was taken as a key of eval_every's value and said as
    'configs/example.yaml: eval_every NestedArg(key='x', val='3'): expected int', a
    value no file gave; a number holds no keys, so the option is unrecognized."""
    main = importlib.import_module(f"{module}.__main__" if module.endswith("morph") else module)
    assert _exit_status(main.main, [option, "3", "--dir", str(tmp_path / "d")]) == 2
    assert capsys.readouterr().err == (
        f"error: unrecognized arguments: {option} 3 (did you mean {near}?); "
        f"python -m {module} --help lists the options.\n"
    )


@pytest.mark.parametrize("command", ["new", "view", "speed"])
def test_a_file_or_dir_given_without_its_option_is_named_with_it(command, tmp_path, capsys):
    """'new configs/example.yaml', 'view runs/example' and 'speed runs/speed' said only
    'unrecognized'."""
    given = "configs/example.yaml" if command == "new" else str(tmp_path)
    option = {"new": "--config", "view": "--dir", "speed": "--out"}[command]
    with pytest.raises(SystemExit) as exit_info:
        _main(command)([given, *(["--dir", str(tmp_path / "b")] if command == "new" else [])])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: unrecognized arguments: {given} (did you mean {option} {given}?); "
        f"python -m phosjax.bench.{command} --help lists the options.\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("given", "near"),
    [
        ("--eval", "--eval_every"),  # was taken as --eval_every
        ("--grid.learning_rat", "--grid.learning_rate"),  # was ambiguous with its '+' twin
    ],
)
def test_an_abbreviated_option_is_the_error_with_the_option_in_full(given, near, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _main("new")(["--dir", str(tmp_path / "b"), given, "5"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: unrecognized arguments: {given} 5 (did you mean {near}?); "
        "python -m phosjax.bench.new --help lists the options.\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("command", "empty"), [("view", "--host"), ("export", "--mlflow")])
def test_view_and_export_refuse_an_abbreviated_option_as_the_others_do(command, empty, capsys):
    """argparse's abbreviations took '--di=~/b' as '--dir' (its '~' not expanded) in view
    and export alone (then the empty option was the error)."""
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(["--di=~/b", empty, ""])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: unrecognized arguments: --di=~/b (did you mean --dir?); "
        f"python -m phosjax.bench.{command} --help lists the options.\n"
    )


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("dir_args", "said"),
    [
        (["--dir", ""], "--dir is empty; give the bench directory, e.g. --dir runs/NAME"),
        ([], "the following arguments are required: --dir"),  # the option, not the key 'dir'
    ],
    ids=["empty", "missing"],
)
def test_an_empty_or_missing_dir_is_one_line_naming_the_option(command, dir_args, said, capsys):
    args = dir_args + (["--mlflow", "x"] if command == "export" else [])
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: {said}; python -m phosjax.bench.{command} --help lists the options.\n"
    )


@pytest.mark.parametrize("module", ["phosjax.bench.new", "phosjax.morph.__main__"])
def test_an_unknown_print_config_flag_names_the_flags_it_takes(module, capsys):
    """'--print_config=skip_defaults' said 'Invalid option "skip_defaults" for
    --print_config', not which flags it takes."""
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(["--dir", "d", "--print_config=skip_defaults"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error: --print_config: unknown flag 'skip_defaults'. Did you mean 'skip_default' or "
        "'skip_unset'? It takes skip_default, skip_unset or both, e.g. "
        "--print_config=skip_default,skip_unset; python -m phosjax."
    )


@pytest.mark.parametrize(
    ("module", "options"),
    [
        ("phosjax.bench.new", ["--models", "mlp", "--datasets", "digits"]),
        ("phosjax.morph.__main__", ["--model", "{name: mlp, num_classes: 10, input_shape: 40}"]),
    ],
)
def test_print_config_takes_its_flags_after_a_space(module, options, tmp_path, capsys):
    """'--print_config skip_default' said 'unrecognized arguments: skip_default'."""
    main = importlib.import_module(module).main
    printed = []
    for flags in (["--print_config", "skip_default"], ["--print_config=skip_default"]):
        assert _exit_status(main, [*options, "--dir", str(tmp_path / "d"), *flags]) == 0
        printed.append(yaml.safe_load(capsys.readouterr().out))
    assert printed[0] == printed[1]
    assert "seeds" not in printed[0] and "seed" not in printed[0]  # a default, skipped


@pytest.mark.parametrize("module", ["phosjax.bench.new", "phosjax.morph.__main__"])
def test_a_config_file_beginning_with_a_tilde_after_an_equals_sign_is_read_from_home(
    module, tmp_path, monkeypatch, capsys
):
    """'--config=~/c.yaml', which the shell leaves as it is, said "config file
    '~/c.yaml' does not exist"."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "c.yaml").write_text("modelz: [mlp]\n")
    main = importlib.import_module(module).main
    assert main(["--config=~/c.yaml", "--dir", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'c.yaml'}: ")


def test_an_empty_dir_of_a_morph_run_asks_for_the_run_directory(capsys):
    """It asked for 'the bench directory', which a morph run's --dir need not be."""
    from phosjax.morph.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--config", "configs/morph_mnist1d.yaml", "--dir", ""])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: --dir is empty; give the run directory, e.g. --dir runs/NAME; "
        "python -m phosjax.morph --help lists the options.\n"
    )


@pytest.mark.parametrize(
    ("module", "given"),
    [
        ("phosjax.bench.new", ["--dir=~/b"]),
        ("phosjax.bench.add_models", ["--dir=~/b"]),
        ("phosjax.bench.profile", ["--dir=~/b"]),
        ("phosjax.bench.speed", ["--out=~/b"]),
        ("phosjax.morph.__main__", ["--config", "configs/morph_mnist1d.yaml", "--dir=~/b"]),
    ],
)
def test_a_dir_beginning_with_a_tilde_after_an_equals_sign_is_in_the_home_directory(
    module, given, tmp_path, monkeypatch
):
    """The shell expands ``--dir ~/b`` but not ``--dir=~/b``, which named a folder '~' in
    the working directory (``new`` made it, ``profile`` said "no such directory")."""
    monkeypatch.setenv("HOME", str(tmp_path))
    args = importlib.import_module(module).parser().parse_args(given)
    option = given[-1].split("=")[0].removeprefix("--")  # dir, or speed's out
    assert getattr(args, option) == str(tmp_path / "b")


@pytest.mark.parametrize(
    ("module", "config"),
    [("phosjax.bench.new", "models: [mlp]\n"), ("phosjax.morph.__main__", None)],
)
def test_a_config_files_dir_beginning_with_a_tilde_is_in_the_home_directory(
    module, config, tmp_path, monkeypatch
):
    """A config file's ``dir: ~/b``, which no shell expands, named a folder '~' in the
    working directory (``new`` trained there, writing some files under home's b)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    if config is None:  # a morph run's config
        config = pathlib.Path("configs/morph_mnist1d.yaml").read_text()
    path = tmp_path / "c.yaml"
    path.write_text(f"{config}dir: ~/b\n")
    args = importlib.import_module(module).parser().parse_args(["--config", str(path)])
    assert args.dir == str(tmp_path / "b")


def test_the_viewer_serves_a_dir_beginning_with_a_tilde_from_the_home_directory(
    tmp_path, monkeypatch
):
    """``view --dir=~/b`` waited for a bench to start in './~/b'."""
    view = importlib.import_module("phosjax.bench.view.__main__")
    served = []
    monkeypatch.setattr(view, "serve", lambda directory, port, host: served.append(directory))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert view.main(["--dir=~/b"]) == 0
    assert served == [str(tmp_path / "b")]


def test_a_morph_runs_features_and_splits_take_names_joined_by_commas(tmp_path, capsys):
    """``--features signal,label`` and ``--splits=train,test`` name the lists, as ``new
    --datasets`` takes names; they were refused ("a list is written '[a, b]'")."""
    import yaml

    from phosjax.morph.__main__ import main

    argv = ["--config", "configs/morph_mnist1d.yaml", "--dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--features", "signal, label", "--splits=train,test", "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed["features"], printed["splits"]) == (["signal", "label"], ["train", "test"])
    assert main([*argv, "--splits", "train,"]) == 2
    assert capsys.readouterr().err == (
        "error: --splits 'train,' holds an empty name (before, between or after its commas); "
        "give names joined by commas, e.g. --splits train,val\n"
    )
    with pytest.raises(SystemExit) as exit_info:  # an option next: no value, not its value
        main([*argv, "--features", "--splits", "train,test"])
    assert exit_info.value.code == 2
    assert "--features/--features+: expected one argument" in capsys.readouterr().err


def test_a_morph_runs_features_take_names_one_after_another_as_new_s_models(tmp_path, capsys):
    """``--features signal label`` was "unrecognized arguments: label", where ``new
    --models mlp cnn1d`` takes both: the two commands share one argv rewriter."""
    import yaml

    from phosjax.morph.__main__ import main

    argv = ["--config", "configs/morph_mnist1d.yaml", "--dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--features", "signal", "label", "--features=null", "--print_config"])
    assert exit_info.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out)["features"] is None
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--features", "signal", "label", "--print_config"])
    assert exit_info.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out)["features"] == ["signal", "label"]


def test_a_morph_runs_features_plus_takes_names_joined_by_commas_as_new_s_models_plus(
    tmp_path, capsys
):
    """``--features+ signal,label`` appended one feature named 'signal,label', where
    ``new --models+ gru,resnet`` appends two models."""
    import yaml

    from phosjax.morph.__main__ import main

    argv = ["--config", "configs/morph_mnist1d.yaml", "--dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--features", "[]", "--features+", "signal,label", "--print_config"])
    assert exit_info.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out)["features"] == ["signal", "label"]


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("/no/grid.yaml", "--grid: config file '/no/grid.yaml' does not exist; "),
        ("steps", "--grid 'steps' is neither a YAML file nor a YAML mapping; "),
        ("", "--grid '' is empty; "),  # was "config file '.' is a directory"
    ],
)
def test_a_grid_file_missing_names_the_option_the_path_and_what_it_takes(
    given, said, tmp_path, capsys
):
    """It was "--grid: Unable to load config '/no/grid.yaml'", of a file and a typo alike."""
    with pytest.raises(SystemExit) as exit_info:
        _main("new")(["--dir", str(tmp_path / "b"), "--grid", given])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {said}--grid takes a YAML file of its keys or a YAML mapping")
    assert "e.g. --grid '{optimizer: VALUE}' (its keys: optimizer, learning_rate," in err
    assert not (tmp_path / "b").exists()


def test_a_grid_or_model_file_is_read_as_its_keys(tmp_path, monkeypatch):
    """``new --grid grid.yaml`` was refused, "unknown key '__path__' in grid" (morph
    --model model.yaml alike), the file's path that jsonargparse keeps beside its keys."""
    import phosjax.bench.new
    import phosjax.morph.__main__

    given = []
    monkeypatch.setattr(phosjax.bench.new, "run", lambda config, *a, **k: given.append(config))
    monkeypatch.setattr(phosjax.morph.__main__, "run", lambda c, *a, **k: given.append(c) or 1 / 0)
    (tmp_path / "grid.yaml").write_text("steps: 3\n")
    (tmp_path / "model.yaml").write_text("{name: mlp, num_classes: 10, input_shape: [40]}\n")
    run = ["--dir", str(tmp_path / "b"), "--grid", str(tmp_path / "grid.yaml")]
    phosjax.bench.new.main(["--config", "configs/example.yaml", *run])
    run = ["--dir", str(tmp_path / "m"), "--model", str(tmp_path / "model.yaml")]
    with pytest.raises(ZeroDivisionError):  # the run, given its config
        phosjax.morph.__main__.main(["--config", "configs/morph_mnist1d.yaml", *run])
    assert [given[0].grid.steps, given[1].model.input_shape] == [3, (40,)]


def test_a_grid_file_naming_a_key_twice_is_refused_as_a_config_file_is(tmp_path, capsys):
    """``--grid grid.yaml`` of 'steps: 3' then 'steps: 4' trained 4 steps without a word,
    where a --config file naming a key twice is refused."""
    (tmp_path / "grid.yaml").write_text("steps: 3\nsteps: 4\n")
    with pytest.raises(SystemExit) as exit_info:
        _main("new")(["--dir", str(tmp_path / "b"), "--grid=" + str(tmp_path / "grid.yaml")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --grid: config file '{tmp_path / 'grid.yaml'}' is not valid")
    assert "found the key 'steps' twice (the second would replace the first)" in err


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("{steps: abc}", "--grid {given}: --grid.steps abc: expected int or list[int]"),
        ("grid.yaml", "{given}: grid.steps must be a whole number >= 1, got 'abc' (str)."),
    ],
)
def test_a_grid_mapping_with_a_bad_value_names_the_key_not_the_mapping(
    given, said, tmp_path, capsys
):
    """A mapping (or a file of one) whose steps was 'abc' was called "neither a YAML file
    nor a YAML mapping" ("holds a dict, not a mapping"); it names the key and its value,
    and the file, as a --config file's bad value is named (`test_a_bad_value_in_a_group_
    file_names_the_file_not_the_option`)."""
    (tmp_path / "grid.yaml").write_text("steps: abc\n")
    given = str(tmp_path / given) if given.endswith(".yaml") else given
    assert _exit_status(_main("new"), ["--dir", str(tmp_path / "b"), "--grid", given]) == 2
    assert capsys.readouterr().err.startswith(f"error: {said.format(given=given)}")


@pytest.mark.parametrize(
    ("module", "option", "keys", "said"),
    [
        (
            "phosjax.bench.new",
            ["--config", "configs/example.yaml", "--grid"],
            "learning_rate: [0.1, -1]\n",
            "grid.learning_rate must be a number > 0, got -1.\n",
        ),
        (
            "phosjax.morph.__main__",
            ["--config", "configs/morph_mnist1d.yaml", "--model"],
            "width: x\n",
            "model.width x: expected int, tuple[int, ...] or null;",
        ),
    ],
)
def test_a_bad_value_in_a_group_file_names_the_file_not_the_option(
    module, option, keys, said, tmp_path, capsys
):
    """``--grid grid.yaml`` of a learning rate of -1 said "grid.learning_rate must be ...",
    no file, where a --config file's bad value names the file; morph's ``--model
    model.yaml`` of a width of 'x' said "--model FILE: --model.width x", an option never
    given."""
    path = tmp_path / "keys.yaml"
    path.write_text(keys)
    main = importlib.import_module(module).main
    assert _exit_status(main, [*option, str(path), "--dir", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {path}: {said}")
    assert not (tmp_path / "b").exists()


def test_a_grid_file_value_an_option_replaces_is_not_refused(tmp_path, capsys):
    """``--grid grid.yaml --grid.learning_rate 0.1`` of a file's -1: the run's rate is the
    option's, and the file is not refused for the value it no longer gives."""
    (tmp_path / "grid.yaml").write_text("learning_rate: -1\nsteps: 7\n")
    argv = ["--config", "configs/example.yaml", "--grid", str(tmp_path / "grid.yaml")]
    argv += ["--grid.learning_rate", "0.1", "--dir", str(tmp_path / "b"), "--print_config"]
    assert _exit_status(_main("new"), argv) == 0
    grid = yaml.safe_load(capsys.readouterr().out)["grid"]
    assert (grid["learning_rate"], grid["steps"]) == (0.1, 7)


@pytest.mark.parametrize(
    ("options", "steps"),
    [(["--grid.steps", "100"], 100), (["--grid", "{steps: 100}"], 100), (["--seeds", "1"], None)],
)
def test_a_config_file_value_an_option_replaces_is_not_refused(options, steps, tmp_path, capsys):
    """A file's warmup_steps 50 over its steps 40 was refused before the options were read,
    though ``--grid.steps 100`` makes the run's steps 100, as a ``--grid`` file's value an
    option replaces is taken; an option that leaves the problem (``--seeds``) is refused
    naming the file."""
    path = tmp_path / "c.yaml"
    path.write_text("models: [mlp]\ngrid: {steps: 40, warmup_steps: 50}\n")
    argv = ["--config", str(path), *options, "--dir", str(tmp_path / "b"), "--print_config"]
    if steps is None:
        assert _exit_status(_main("new"), argv) == 2
        assert capsys.readouterr().err.startswith(
            f"error: {path}: grid.warmup_steps 50 is more than grid.steps 40, and the grid "
        )
        return
    assert _exit_status(_main("new"), argv) == 0
    grid = yaml.safe_load(capsys.readouterr().out)["grid"]
    assert (grid["steps"], grid["warmup_steps"]) == (steps, 50)


@pytest.mark.parametrize(
    ("grid", "options", "said"),
    [
        (
            "{steps: abc}",
            ["--grid.steps", "10"],
            "grid.steps must be a whole number >= 1, got 'abc' (str).",
        ),
        (
            "{learning_rate: -1}",
            ["--seeds", "1"],
            "grid.learning_rate must be a number > 0, got -1.",
        ),
    ],
)
def test_a_config_file_value_the_run_keeps_is_refused_naming_the_file(
    grid, options, said, tmp_path, capsys
):
    """A file's steps 'abc' with ``--grid.steps 10`` was jsonargparse's "grid.steps abc:
    expected int" (it reads the file's value first), where the file alone is told the
    value and what it takes; a learning rate of -1 that an option leaves is named as the
    file writes it, not as the parser reads it (-1.0)."""
    path = tmp_path / "c.yaml"
    path.write_text(f"models: [mlp]\ngrid: {grid}\n")
    argv = ["--config", str(path), *options, "--dir", str(tmp_path / "b"), "--print_config"]
    assert _exit_status(_main("new"), argv) == 2
    assert capsys.readouterr().err == f"error: {path}: {said}\n"


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--steps", "10"], None),
        (["--iterations", "1"], "{file}: MorphConfig.steps=-5: expected an integer >= 1"),
        (["--steps", "-2"], "{file} with the command line (--steps): MorphConfig.steps=-2:"),
    ],
)
def test_a_morph_config_file_value_an_option_replaces_is_not_refused(
    options, said, tmp_path, capsys
):
    """morph refused a file's steps -5 before reading ``--steps 10``, the run's steps, as
    new once did; an option that leaves it is refused naming the file, and one that gives
    another bad value is told that value."""
    from phosjax.morph.__main__ import main

    path = tmp_path / "m.yaml"
    path.write_text("model: {name: mlp, num_classes: 10, input_shape: [40]}\nsteps: -5\n")
    argv = ["--config", str(path), *options, "--dir", str(tmp_path / "r"), "--print_config"]
    status = _exit_status(main, argv)
    out, err = capsys.readouterr()
    if said is None:
        assert (status, yaml.safe_load(out)["steps"]) == (0, 10)
        return
    assert status == 2
    assert err.startswith(f"error: {said.format(file=path)}")


@pytest.mark.parametrize(
    ("module", "text", "options"),
    [
        ("phosjax.bench.new", "models: [mlp]\ngrid: {steps: -5}\n", ["--grid.steps", "10"]),
        (
            "phosjax.morph.__main__",
            "model: {name: mlp, num_classes: 10, input_shape: [40]}\nsteps: -5\n",
            ["--steps", "10"],
        ),
    ],
)
def test_a_missing_dir_is_told_not_a_file_value_an_option_replaces(
    module, text, options, tmp_path, capsys
):
    """Without ``--dir``, a file's steps -5 that ``--steps 10`` replaces was told as the
    file's problem (the parser refused the command line, so the file was blamed); the
    missing ``--dir`` is told."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    main = importlib.import_module(module).main
    assert _exit_status(main, ["--config", str(path), *options]) == 2
    prog = module.removesuffix(".__main__")
    assert capsys.readouterr().err == (
        f"error: the following arguments are required: --dir; python -m {prog} --help "
        "lists the options.\n"
    )


def test_grid_given_twice_is_judged_merged_and_a_mappings_error_names_no_file(tmp_path, capsys):
    """``--grid steps.yaml --grid warmup.yaml``: the run's steps are 100, yet warmup.yaml
    alone was checked over the config's 40 steps and refused; a bad key of a mapping
    before a file was said of that file."""
    for name, keys in [
        ("c.yaml", "models: [mlp]\ngrid: {steps: 40}\n"),
        ("s.yaml", "steps: 100\n"),
    ]:
        (tmp_path / name).write_text(keys)
    (tmp_path / "w.yaml").write_text("warmup_steps: 50\n")
    argv = ["--config", str(tmp_path / "c.yaml"), "--grid", str(tmp_path / "s.yaml")]
    argv += ["--grid", str(tmp_path / "w.yaml"), "--dir", str(tmp_path / "b"), "--print_config"]
    assert _exit_status(_main("new"), argv) == 0
    grid = yaml.safe_load(capsys.readouterr().out)["grid"]
    assert (grid["steps"], grid["warmup_steps"]) == (100, 50)
    argv = ["--grid", "{stepz: 3}", "--grid", str(tmp_path / "s.yaml"), "--dir", "b"]
    assert _exit_status(_main("new"), argv) == 2
    assert capsys.readouterr().err.startswith("error: --grid: unknown key 'stepz'. Did you mean")


@pytest.mark.parametrize(
    ("width", "options", "said"),
    [
        ("[a, b]", [], "{file}: model.width ['a', 'b']: expected int, tuple[int, ...] or null;"),
        ("[a, b]", ["--model.depth", "1"], "{file}: model.width ['a', 'b']: expected int,"),
        ("x", [], "{file}: model.width x: expected int, tuple[int, ...] or null;"),
        # the parser checks the file's value before the option's
        ("[a, b]", ["--model.width", "[c]"], "{file}: model.width ['a', 'b']: expected int,"),
        ("[a, b]", ["--model", "{width: [c]}"], "{file}: model.width ['a', 'b']: expected int,"),
        ("[a, b]", ["--model.width", "{c: 1}"], "{file}: model.width ['a', 'b']: expected int,"),
        ("[32]", ["--model.width", "[c]"], "--model.width ['c']: expected int, tuple[int, ...]"),
    ],
)
def test_a_bad_nested_value_of_a_config_file_names_the_file_not_an_option(
    width, options, said, tmp_path, capsys
):
    """It said '--model.width ['a', 'b']: expected int, ...', an option never given, where
    a bad top-level value names the file; a value given by an option names the option."""
    from phosjax.morph.__main__ import main

    path = tmp_path / "morph.yaml"
    text = pathlib.Path("configs/morph_mnist1d.yaml").read_text()
    path.write_text(text.replace("width: [32, 32, 32]", f"width: {width}"))
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(path), *options, "--dir", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {said.format(file=path)}")


def test_a_bad_nested_value_names_the_file_that_gave_it_not_a_later_one(tmp_path, capsys):
    """The parser refuses the first file's width as it reads it: it was said of the
    second file, the last to set the key, whose width is good."""
    from phosjax.morph.__main__ import main

    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    text = pathlib.Path("configs/morph_mnist1d.yaml").read_text()
    bad.write_text(text.replace("width: [32, 32, 32]", "width: [a, b]"))
    good.write_text("model: {width: [32]}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(bad), "--config", str(good), "--dir", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: model.width ['a', 'b']: expected")


@pytest.mark.parametrize(
    ("module", "option", "config"),
    [
        ("phosjax.bench.new", "--grid", "grid: {steps: 5}\n"),
        ("phosjax.morph.__main__", "--model", "model: {name: mlp}\nsteps: 5\n"),
    ],
)
def test_a_whole_config_given_for_a_group_is_said_to_be_for_config(
    module, option, config, tmp_path, capsys
):
    """It said "unknown key 'grid.steps'. Did you mean 'steps'?", of the file's own keys."""
    path = tmp_path / "my c.yaml"  # the path it names to pass was unquoted: two arguments
    path.write_text(config)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(["--dir", str(tmp_path / "b"), option, str(path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(
        f"error: {option} {str(path)!r} is a whole config (its {option[2:]} a top-level key), "
        f"not the keys of {option[2:]}: give it as --config '{path}';"
    )


@pytest.mark.parametrize("host", ["", " ", "[]"])
def test_an_empty_view_host_is_refused_not_bound_to_every_interface(
    host, tmp_path, capsys, monkeypatch
):
    """'--host ""' (an unset variable) served everyone: the socket binds all interfaces;
    '--host "[$ADDR]"', the variable unset, did too."""
    view = importlib.import_module("phosjax.bench.view.__main__")
    monkeypatch.setattr(view, "serve", lambda *args: pytest.fail(f"{host!r} was served"))
    with pytest.raises(SystemExit) as exit_info:
        _main("view")(["--dir", str(tmp_path), "--host", host, "--port", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(
        f"error: --host {host!r} is empty; give the address to bind, e.g. --host 127.0.0.1"
    )


def test_an_unknown_key_in_a_grid_mapping_names_the_nearest_and_the_keys(tmp_path, capsys):
    """It was "Group 'grid' does not accept option 'stepz'", where a config file's grid
    names the nearest key and the valid ones."""
    with pytest.raises(SystemExit) as exit_info:
        _main("new")(["--dir", str(tmp_path / "b"), "--grid", "{stepz: 3}"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error: --grid: unknown key 'stepz'. Did you mean 'steps'? Valid keys: optimizer, "
    )


@pytest.mark.parametrize(
    ("module", "option", "key"),
    [("phosjax.bench.new", "--grid", "steps"), ("phosjax.morph.__main__", "--model", "width")],
)
def test_an_unknown_key_in_a_group_file_names_the_file(module, option, key, tmp_path, capsys):
    """It was "--grid: unknown key 'stepz'", the file unnamed, where a config file's grid
    names the file."""
    path = tmp_path / "keys.yaml"
    path.write_text(f"{key}z: 3\n")
    main = importlib.import_module(module).main
    assert _exit_status(main, [option, str(path), "--dir", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {path}: unknown key '{key}z' in {option[2:]}. Did you mean '{key}'? Valid keys: "
    )


@pytest.mark.parametrize("command", ["profile", "add_models", "export"])
def test_a_mistyped_dir_names_the_bench_beside_it(command, tmp_path, capsys):
    """It said 'no such directory' alone, where the viewer names the bench of a close name."""
    (tmp_path / "example").mkdir()
    (tmp_path / "example" / "bench.json").write_text('{"format": 1}')
    args = ["--dir", str(tmp_path / "exmaple"), "--models", "mlp", "--mlflow", "x"]
    args = args[:2] + {"profile": [], "add_models": args[2:4], "export": args[4:]}[command]
    assert _main(command)(args) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {str(tmp_path / 'exmaple')!r} is not a bench: no such directory; a typo of "
        "the bench 'example' beside it? Make one with"
    )


@pytest.mark.parametrize("data_dir", [["--data_dir", "/moved/data"], ["--data_dir=/moved/data"]])
def test_add_models_data_dir_says_that_new_changes_the_bench_s(data_dir, tmp_path, capsys):
    """It was argparse's bare "unrecognized arguments: --data_dir ..."."""
    argv = ["--dir", str(tmp_path / "my b"), *data_dir, "--models", "mlp"]
    assert _exit_status(_main("add_models"), argv) == 2
    assert capsys.readouterr().err == (
        "error: add_models has no --data_dir: it reads the data sets from the bench's "
        "data_dir (its config.yaml); where they moved, change that first with `python -m "
        f"phosjax.bench.new --dir '{tmp_path / 'my b'}' --data_dir /moved/data` (it continues "
        "the bench, reading from there), then run add_models again; python -m "
        "phosjax.bench.add_models --help lists the options.\n"
    )
    assert not (tmp_path / "my b").exists()


def test_a_mistyped_dir_names_only_the_benches_one_typo_away(tmp_path):
    """Among benches of one pattern, 'nu_none' named 'nu_int', 'nu_ex3' and 'nu_ex2' too."""
    from phosjax.bench import _layout

    for name in ("nu_int", "nu_ex3", "nu_ex2", "nu_nine"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "bench.json").write_text('{"format": 1}')
    assert _layout.no_such_directory(tmp_path / "nu_none") == (
        "no such directory; a typo of the bench 'nu_nine' beside it?"
    )
    assert _layout.no_such_directory(tmp_path / "nu_one") == "no such directory"


@pytest.mark.parametrize(
    ("command", "required"), [("view", "--dir DIR"), ("export", "--mlflow URI")]
)
def test_help_shows_the_required_options_as_required(command, required, capsys):
    """argparse's commands: the usage had them in brackets, [--dir DIR], as if optional."""
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(["--help"])
    assert exit_info.value.code == 0
    usage = " ".join(capsys.readouterr().out.split("\n\n")[0].split())
    assert f" {required}" in usage and f"[{required}]" not in usage, usage


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """A folder on the path with modules that fail as a user's can, none imported yet."""
    modules = {
        "raises_inside": "def build():\n    raise ValueError('bad width')\n\nbuild()\n",
        "lacks_a_dependency": "import no_such_dependency_xyz\n",
        "bad_syntax": "def f(:\n",
    }
    for name, text in modules.items():
        (tmp_path / f"{name}.py").write_text(text)
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("module", "missing"), [("no_such_module_xyz", ""), ("no_pkg_xyz.models", " (for ")]
)
def test_an_import_not_found_is_one_line_with_where_python_looks(tmp_path, capsys, module, missing):
    assert _main("new")(["--dir", str(tmp_path / "b"), "--import", module]) == 2
    name = module.split(".")[0]
    of = f" (for {module!r})" if missing else ""
    holds = f"the package {name}/" if missing else f"{name}.py or the package {name}/"
    assert capsys.readouterr().err == (
        f"error: --import {module}: no module named {name!r}{of} on Python's path; run from "
        f"the folder that holds {holds} (`python -m` puts the current folder on Python's "
        "path), or add that folder to PYTHONPATH (PYTHONPATH=FOLDER python -m ...), or pip "
        "install it\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("given", "then"),
    [
        ("my_models.py", "run from the folder that holds my_models.py"),
        ("./my_models.py", "run from the folder that holds my_models.py"),
        (
            "/x/src/my_models.py",
            "run from the folder '/x/src' or add it to PYTHONPATH "
            "(PYTHONPATH=/x/src python -m ...)",
        ),
    ],
)
def test_an_import_of_a_file_path_names_the_module_and_its_folder(tmp_path, capsys, given, then):
    """A path read as a module name: './my_models.py' failed 'in its own code' with
    TypeError: the 'package' argument is required to perform a relative import, and
    'my_models.py' said to run from the folder holding my_models/py.py."""
    assert _main("new")(["--dir", str(tmp_path / "b"), "--import", given]) == 2
    assert capsys.readouterr().err == (
        f"error: --import {given}: --import takes a module's name, as Python's import does, "
        f"not a file or folder; pass --import my_models and {then}\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("module", ["phosjax.bench.new", "phosjax.morph.__main__"])
def test_an_empty_config_path_is_named_not_taken_for_the_working_directory(
    tmp_path, capsys, module
):
    """``--config ''`` said "config file '.' is a directory" ('' read as a path)."""
    main = importlib.import_module(module).main
    assert main(["--config", "", "--dir", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == (
        "error: config file path is empty; give a YAML file's path.\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("given", ["", " ", ".models", "a..b", "my-models", "mypkg.a,mypkg.b"])
def test_an_import_that_is_no_module_name_says_what_one_is(tmp_path, capsys, given):
    """'' and '.models' failed 'in its own code' (ValueError: Empty module name; TypeError:
    the 'package' argument is required); 'my-models' was looked for as my-models.py."""
    assert _main("new")(["--dir", str(tmp_path / "b"), "--import", given]) == 2
    assert capsys.readouterr().err == (
        f"error: --import {given!r} is no module's name: give Python names joined by dots, "
        "e.g. --import mypkg.models (several modules: --import mypkg.a mypkg.b)\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("module", "last", "line"),
    [
        ("raises_inside", "ValueError: bad width", "raise ValueError('bad width')"),
        (
            "lacks_a_dependency",
            "ModuleNotFoundError: No module named 'no_such_dependency_xyz'",
            "import no_such_dependency_xyz",
        ),
        ("bad_syntax", "SyntaxError: invalid syntax", "def f(:"),
    ],
)
def test_an_import_that_raises_shows_its_own_traceback_under_a_line_naming_it(
    user_modules, capsys, module, last, line
):
    assert _main("new")(["--dir", str(user_modules / "b"), "--import", module]) == 2
    err = capsys.readouterr().err
    kind = last.split(":")[0]
    head, *rest = err.splitlines()
    assert (
        head
        == f"error: --import {module} failed: it raised {kind} in its own code (traceback below)"
    )
    assert rest[-1] == last and line in err and str(user_modules / f"{module}.py") in err
    assert "importlib" not in err and "phosjax" not in err  # the user's frames only


@pytest.mark.parametrize("command", ["new", "add_models"])
def test_an_import_or_models_option_given_again_adds_to_it(command):
    """'--import a --import b' imported b alone (the models a registers then unknown), and
    add_models' '--models mlp --models gru' added gru alone."""
    parser = importlib.import_module(f"phosjax.bench.{command}").parser()
    args = parser.parse_args(["--dir", "d", "--import", "a", "--import", "b", "c"])
    assert args["import"] == ["a", "b", "c"]
    assert parser.parse_args(["--dir", "d"])["import"] == []
    if command == "add_models":
        args = parser.parse_args(["--dir", "d", "--models", "mlp", "--models", "gru"])
        assert args.models == ["mlp", "gru"]
        assert parser.parse_args(["--dir", "d"]).models is None


def test_python_m_phosjax_bench_lists_every_command_and_runs_none(capsys):
    """'python -m phosjax.bench' was Python's "cannot be directly executed"."""
    import pkgutil

    import phosjax.bench
    from phosjax.bench import __main__ as listing

    modules = {m.name for m in pkgutil.iter_modules(phosjax.bench.__path__)}
    assert set(listing.COMMANDS) == {m for m in modules if not m.startswith("_")}
    assert all(callable(_main(name)) for name in listing.COMMANDS)

    assert listing.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("  ")] == list(
        listing.COMMANDS
    )
    assert listing.main([]) == 2
    assert capsys.readouterr().err.endswith(
        "error: give a command: python -m phosjax.bench.COMMAND\n"
    )
    assert listing.main(["add_model", "--dir", "b"]) == 2
    assert capsys.readouterr().err.endswith(
        "error: no command 'add_model'; run one of the above as python -m "
        "phosjax.bench.COMMAND. Did you mean 'add_models'?\n"
    )
    assert listing.main(["profile", "--dir", "my b"]) == 2  # was: --dir my b, two arguments
    assert capsys.readouterr().err.endswith(
        "error: a command is its own module: python -m phosjax.bench.profile --dir 'my b'\n"
    )


def test_a_command_whose_output_reader_left_stops_as_sigpipe(monkeypatch, capsys):
    """``python -m phosjax.bench.profile --dir DIR | head -1`` ended in a BrokenPipeError
    traceback once head had read its line. Later (``new ... | head`` between two groups,
    as it wrote the summary) it ended quietly with status 1, where the same pipe gone as a
    group trained stopped it with SIGPIPE's 141 and a line saying what is kept; both stop
    it so now."""
    from phosjax.bench._cli import entry_point

    read, write = os.pipe()
    os.close(read)  # as head, gone
    monkeypatch.setattr(sys, "stdout", os.fdopen(write, "w"))

    @entry_point("nothing was changed.")
    def main(argv=None):
        print("a profile", flush=True)

    assert main([]) == 141
    assert capsys.readouterr().err == "interrupted by SIGPIPE: nothing was changed.\n"
    sys.stdout.write("more")
    sys.stdout.flush()  # as the interpreter's exit does: written to the null device now
    sys.stdout.close()


def test_a_command_that_only_reads_stops_quietly_when_its_reader_left(monkeypatch, capsys):
    """``python -m phosjax.bench.profile --dir DIR | head -1`` said "interrupted by
    SIGPIPE: nothing was changed" on the terminal once head had its line; a command that
    changes nothing stops as ``cat`` does: status 141, no line."""
    from phosjax.bench._cli import entry_point

    read, write = os.pipe()
    os.close(read)  # as head, gone
    monkeypatch.setattr(sys, "stdout", os.fdopen(write, "w"))

    @entry_point("nothing was changed.", reads_only=True)
    def main(argv=None):
        print("a profile", flush=True)

    assert main([]) == 141
    assert capsys.readouterr().err == ""
    sys.stdout.close()


def test_a_broken_pipe_not_of_the_output_is_not_hidden(capfd):
    """A BrokenPipeError of another pipe (a data loader's) while stdout's reader is there
    ended the command quietly with status 1, its cause unsaid; it is raised."""
    from phosjax.bench._cli import entry_point

    @entry_point("nothing was changed.")
    def main(argv=None):
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        main([])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_words_its_help_option_alike(command, capsys):
    """view and export (argparse) said 'show this help message and exit' where the
    others (jsonargparse) say 'Show this help message and exit.'."""
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(["--help"])
    assert exit_info.value.code == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["-h,", "--help", "Show", "this", "help", "message", "and", "exit."] in lines


@pytest.mark.parametrize("command", ["new", "add_models"])
def test_help_names_no_python_object(command, capsys):
    """--compilation_cache's help ended '(type: <function cache_directory at 0x7f...>, ...)'."""
    with pytest.raises(SystemExit):
        _main(command)(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "<function" not in out
    assert "is used instead (type: DIR or off, default: " in out


@pytest.mark.parametrize("command", ["new", "add_models"])
def test_help_gives_the_join_timeouts_default(command, capsys):
    """It said '(300 s unless given) (type: int, default: null)'."""
    assert _exit_status(_main(command), ["--help"]) == 0
    assert (
        "--join_timeout SECONDS with --coordinator or --distributed: how long a process waits "
        "for the coordinator and the others to join (type: int, default: 300) "
    ) in " ".join(capsys.readouterr().out.split())


_JOINING = "a process sharing a bench with others is given --coordinator HOST:PORT (process 0's "
_JOINING += "address), --processes N and --process_id I (0 to N-1), or --distributed in a Slurm, "
_JOINING += "Open MPI or TPU job"


@pytest.mark.parametrize("command", ["new", "add_models"])
@pytest.mark.parametrize(
    ("options", "said"),
    [
        (
            "--coordinator node0:1234",
            f"--coordinator node0:1234 without --processes and --process_id: {_JOINING}",
        ),
        (
            "--processes 2 --process_id 1",
            f"--processes 2 --process_id 1 without --coordinator: {_JOINING}",
        ),
        (
            "--coordinator n:1 --processes 2 --process_id 2",
            "--process_id 2: expected an id from 0 to 1 (--processes 2)",
        ),
        ("--coordinator n:1 --processes 0 --process_id 0", "--processes 0: expected 1 or more"),
        (
            "--coordinator node0 --processes 2 --process_id 0",
            "--coordinator 'node0': expected HOST:PORT, process 0's host and a free port on it, "
            "e.g. node0:1234",
        ),
        (  # jax.distributed aborted the process once its wait was up
            "--coordinator fe80::1:99 --processes 2 --process_id 0",
            "--coordinator 'fe80::1:99': expected an IPv6 address in brackets before the port, "
            "e.g. [::1]:1234",
        ),
        (  # a URL: process 1 waited for a host named 'http://node0' until --join_timeout
            "--coordinator http://node0:1234 --processes 2 --process_id 1 --join_timeout 1",
            "--coordinator 'http://node0:1234': expected HOST:PORT, process 0's host and a free "
            "port on it, e.g. node0:1234",
        ),
        ("--distributed --process_id -1", "--process_id -1: expected an id from 0 to N-1"),
        (
            "--join_timeout 60",
            f"--join_timeout 60 without --coordinator and --processes and --process_id: {_JOINING}",
        ),
        (
            "--coordinator n:1 --processes 2 --process_id 0 --join_timeout 0",
            "--join_timeout 0: expected 1 to 2147483647 seconds",
        ),
        (  # jax.distributed raised a TypeError: get_distributed_runtime_client(): incompatible…
            "--coordinator n:1 --processes 1 --process_id 0 --join_timeout 10000000000",
            "--join_timeout 10000000000: expected 1 to 2147483647 seconds",
        ),
    ],
)
def test_options_joining_processes_given_in_part_or_out_of_range_are_refused_before_joining(
    command, options, said, tmp_path, capsys
):
    """The commands took no options to join a group of processes (a bench on several hosts)."""
    assert _exit_status(_main(command), ["--dir", str(tmp_path), *options.split()]) == 2
    assert capsys.readouterr().err == (
        f"error: {said}; python -m phosjax.bench.{command} --help lists the options.\n"
    )


@pytest.mark.parametrize(
    ("options", "said"),
    [  # they were named as options: --coordinator node0:1234 --processes 2 without ...
        ("", "coordinator: node0:1234 in {config!r} and processes: 2 in {config!r} without "),
        (
            "--processes 3",
            "--processes 3 and coordinator: node0:1234 in {config!r} without ",
        ),
    ],
)
def test_a_config_file_gives_the_options_joining_processes_too(options, said, tmp_path, capsys):
    config = tmp_path / "bench.yaml"
    config.write_text("models: [mlp]\ncoordinator: node0:1234\nprocesses: 2\n")
    argv = ["--config", str(config), "--dir", str(tmp_path / "b"), *options.split()]
    assert _exit_status(_main("new"), argv) == 2
    assert capsys.readouterr().err == (
        f"error: {said.format(config=str(config))}--process_id: {_JOINING}; "
        "python -m phosjax.bench.new --help lists the options.\n"
    )


def test_a_config_files_null_join_timeout_waits_the_default(tmp_path, monkeypatch):
    """Since --join_timeout's default was 300, not null, it crashed: TypeError: '<=' not
    supported between instances of 'int' and 'NoneType'."""
    monkeypatch.setattr("jax.distributed.initialize", _joined)
    config = tmp_path / "bench.yaml"
    config.write_text("models: [mlp]\njoin_timeout: null\n")
    address = f"127.0.0.1:{free_port()}"
    argv = ["--config", str(config), "--dir", str(tmp_path / "b")]
    assert _join_as_process_0(address, argv) == _joined_as_process_0(address)


def test_a_bad_joining_value_of_a_config_file_is_named_as_the_files(tmp_path, capsys):
    """It was named as an option the command line did not give: --coordinator 'node0'."""
    config = tmp_path / "bench.yaml"
    config.write_text("models: [mlp]\ncoordinator: node0\nprocesses: 2\nprocess_id: 0\n")
    assert _exit_status(_main("new"), ["--config", str(config), "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: coordinator: 'node0' in {str(config)!r}: expected HOST:PORT, process 0's host "
        "and a free port on it, e.g. node0:1234; python -m phosjax.bench.new --help lists the "
        "options.\n"
    )


@pytest.mark.parametrize(
    ("error", "options", "said"),
    [  # named --distributed, not given
        (
            "coordinator_address should be defined.",
            "",
            "distributed: true in {config!r}: coordinator_address should be defined (no Slurm, "
            "Open MPI or TPU job gives it); outside such a job give --coordinator HOST:PORT "
            "--processes N --process_id I",
        ),
        (
            "process_id and num_processes must be nonnegative, with process_id < num_processes.",
            "--process_id 5",
            "--process_id 5 and distributed: true in {config!r}: process_id and num_processes "
            "must be nonnegative, with process_id < num_processes (the job gives the rest); "
            "give values that fit the job's, or leave them to it",
        ),
    ],
)
def test_distributed_set_by_a_config_file_is_named_as_the_files(
    error, options, said, tmp_path, monkeypatch, capsys
):
    def refused(*_, **__):
        raise ValueError(error)

    monkeypatch.setattr("jax.distributed.initialize", refused)
    config = tmp_path / "bench.yaml"
    config.write_text("models: [mlp]\ndistributed: true\n")
    argv = ["--config", str(config), "--dir", str(tmp_path / "b"), *options.split()]
    assert _exit_status(_main("new"), argv) == 2
    assert capsys.readouterr().err == f"error: {said.format(config=str(config))}\n"


_SLURM_JOB = {"JOB_ID": "7", "NTASKS": "2", "PROCID": "0", "LOCALID": "0", "STEP_NODELIST": "n0"}
"""A Slurm job's variables (less the SLURM_ before each) for a process 0 of 2."""
_JOB_VARIABLES = ("SLURM_", "OMPI_", "JAX_COORDINATOR")


@pytest.mark.parametrize(
    ("job", "options", "said"),
    [
        (
            {},
            "",
            "--distributed: coordinator_address should be defined (no Slurm, Open MPI or TPU "
            "job gives it); outside such a job give --coordinator HOST:PORT --processes N "
            "--process_id I",
        ),
        (  # it said that no job gave the coordinator
            _SLURM_JOB,
            "--process_id 5",
            "--distributed --process_id 5: process_id and num_processes must be nonnegative, "
            "with process_id < num_processes. Got process_id=5, num_processes=2 (the job gives "
            "the rest); give values that fit the job's, or leave them to it",
        ),
    ],
)
def test_distributed_outside_a_job_or_out_of_its_range_says_what_to_give_instead(
    job, options, said, tmp_path
):
    """In a process of its own: jax joins no group once a test here has used its devices."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_JOB_VARIABLES)}
    env |= {f"SLURM_{name}": value for name, value in job.items()}
    command = [sys.executable, "-m", "phosjax.bench.add_models", "--dir", str(tmp_path)]
    done = subprocess.run(
        [*command, "--distributed", *options.split()],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (2, f"error: {said}\n")


def test_a_process_that_finds_no_coordinator_says_where_it_looked_once_it_gives_up(
    tmp_path, capsys
):
    """jax.distributed aborted it after 300 s with a C++ stack trace naming no address."""
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    joining = ["--coordinator", address, "--processes", "2", "--process_id", "1"]
    argv = ["--dir", str(tmp_path), *joining, "--join_timeout", "1"]
    assert _exit_status(_main("add_models"), argv) == 2
    assert capsys.readouterr().err == (
        f"error: --coordinator {address}: process 1 found no coordinator listening there in 1 s "
        "(Connection refused); process 0 listens there once it runs with the same "
        "--coordinator: check the host and port, and that this host may connect to it (a "
        "firewall), or give a longer --join_timeout\n"
    )


def test_process_0_whose_port_is_held_says_so_before_joining(tmp_path, capsys):
    """jax.distributed's coordinator crashed (a segmentation fault) on a port held."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        joining = ["--coordinator", f"node0:{port}", "--processes", "2", "--process_id", "0"]
        assert _exit_status(_main("new"), ["--dir", str(tmp_path / "b"), *joining]) == 2
    assert capsys.readouterr().err == (
        f"error: --coordinator node0:{port}: process 0 cannot listen on port {port}, which "
        "another program (or a run still going) holds; give every process a free port\n"
    )


def test_a_coordinator_host_name_known_only_once_its_host_starts_is_waited_for(
    tmp_path, monkeypatch
):
    """Such a name (a Kubernetes pod's) was refused at once as no host known, which
    jax.distributed waits for."""
    lookups = []

    def name_made_at_the_third_lookup(host, *rest, **options):
        lookups.append(host)
        if len(lookups) < 3:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo("127.0.0.1", *rest, **options)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", name_made_at_the_third_lookup)
    monkeypatch.setattr("jax.distributed.initialize", _joined)
    with socket.socket() as coordinator:
        coordinator.bind(("127.0.0.1", 0))
        coordinator.listen()
        address = f"node0:{coordinator.getsockname()[1]}"
        joining = ["--coordinator", address, "--processes", "2", "--process_id", "1"]
        argv = ["--dir", str(tmp_path), *joining, "--join_timeout", "30"]
        assert _exit_status(_main("add_models"), argv) == (
            "joined",
            (address, 2, 1),
            {"initialization_timeout": 30},
        )
    assert lookups == ["node0"] * 3


def test_process_0_told_to_listen_elsewhere_joins_though_the_coordinators_port_is_held(
    tmp_path, monkeypatch
):
    """JAX_COORDINATOR_BIND_ADDRESS (behind a proxy holding the port) was refused as the
    port held, which jax.distributed does not listen on then."""
    monkeypatch.setattr("jax.distributed.initialize", _joined)
    monkeypatch.setenv("JAX_COORDINATOR_BIND_ADDRESS", f"[::]:{free_port()}")
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        address = f"node0:{proxy.getsockname()[1]}"
        argv = ["--dir", str(tmp_path / "b")]
        assert _join_as_process_0(address, argv) == _joined_as_process_0(address)


def test_processes_given_different_counts_are_refused_once_joined(tmp_path, monkeypatch, capsys):
    """Process 1 given --processes 3 joined process 0's group of 2 and trained as process 1
    of 2, its count unheeded (a process 2 started then could not join)."""
    monkeypatch.setattr("jax.distributed.initialize", lambda *args, **options: None)
    monkeypatch.setattr("jax.process_count", lambda: 2)  # process 0's --processes 2
    monkeypatch.setattr("phosjax.bench._directory.gather", lambda value: ["2", value])
    with socket.socket() as coordinator:  # process 0's, listening
        coordinator.bind(("127.0.0.1", 0))
        coordinator.listen()
        address = f"127.0.0.1:{coordinator.getsockname()[1]}"
        joining = ["--coordinator", address, "--processes", "3", "--process_id", "1"]
        assert _main("new")(["--dir", str(tmp_path / "b"), *joining]) == 2
    assert capsys.readouterr().err == (
        "error: the 2 processes sharing this bench were given different --processes (process "
        "0: 2; process 1: 3); nothing was written. Start every process with the same command "
        "and config.\n"
    )


def test_an_ipv6_coordinator_in_brackets_is_joined(tmp_path, monkeypatch):
    monkeypatch.setattr("jax.distributed.initialize", _joined)
    address = f"[::1]:{free_port()}"
    argv = ["--dir", str(tmp_path / "b")]
    assert _join_as_process_0(address, argv) == _joined_as_process_0(address)


def test_a_coordinator_host_never_known_is_named_once_the_wait_is_up(tmp_path, monkeypatch, capsys):
    def unknown(*_, **__):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    joining = ["--coordinator", "node0:1234", "--processes", "2", "--process_id", "1"]
    argv = ["--dir", str(tmp_path), *joining, "--join_timeout", "1"]
    assert _exit_status(_main("add_models"), argv) == 2
    assert capsys.readouterr().err == (
        "error: --coordinator node0:1234: no host 'node0' was known in 1 s (Name or service "
        "not known); give process 0's host name or address, or a longer --join_timeout\n"
    )
