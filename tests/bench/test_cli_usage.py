"""The usage errors every bench command reports alike: one line, exit status 2."""

import importlib

import pytest

COMMANDS = ["new", "add_models", "view", "profile", "export"]


def _main(command):
    module = "phosjax.bench.view.__main__" if command == "view" else f"phosjax.bench.{command}"
    return importlib.import_module(module).main


@pytest.mark.parametrize("command", COMMANDS)
def test_a_misspelt_option_is_the_error_with_the_nearest_option(command, tmp_path, capsys):
    args = ["--dirr", str(tmp_path / "b")] + (["--mlflow", "x"] if command == "export" else [])
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: unrecognized arguments: --dirr {tmp_path / 'b'} (did you mean --dir?); "
        f"python -m phosjax.bench.{command} --help lists the options.\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_an_empty_dir_is_refused_as_empty(command, capsys):
    args = ["--dir", ""] + (["--mlflow", "x"] if command == "export" else [])
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: --dir is empty; give the bench directory, e.g. --dir runs/NAME; "
        f"python -m phosjax.bench.{command} --help lists the options.\n"
    )
