"""A bench remembers the ``--import`` modules that register its models: ``new`` (run again,
or on ``--dir`` alone) and ``add_models`` import them again by themselves.

Each "later command" runs as a new process would: the user's module not imported and its
models not registered (`_fresh`).
"""

import json
import pathlib
import shlex
import sys

import pytest
import yaml

from phosjax.bench import (
    BenchConfig,
    BenchError,
    _imports,
    _layout,
    add_models_to,
    run,
)
from phosjax.bench.add_models import main as add_models_main
from phosjax.bench.new import main as new_main
from phosjax.bench.new import parser as new_parser
from phosjax.bench.profile import main as profile_main
from phosjax.models import _registry
from tests.bench.runner_tiny import fake_toy_datasets, toy_data

CONFIG = """\
models: [{name: my_dense, width: 4}]
datasets: [toy]
grid: {steps: 4, batch_size: 16}
seeds: 1
eval_every: 4
checkpoint_every: 4
strategy: vmap
"""

MODULE = (
    "import flax.linen as nn\nfrom phosjax.models import register_model\n"
    "register_model('my_dense', nn.Dense)\n"
)

BUILT_IN = dict(_registry._REGISTRY)


def _fresh(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """As in a new process: ``modules`` not imported, only the built-in models registered."""
    monkeypatch.setattr(_registry, "_REGISTRY", dict(BUILT_IN))
    for module in modules:
        monkeypatch.delitem(sys.modules, module, raising=False)


@pytest.fixture
def made(tmp_path, monkeypatch) -> tuple[pathlib.Path, pathlib.Path]:
    """``(bench, folder of the user's module)``: a bench of ``my_dense`` that
    ``new --import my_models`` trained (``json`` imported too, registering nothing)."""
    fake_toy_datasets(monkeypatch)
    source = tmp_path / "src"
    source.mkdir()
    (source / "my_models.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(source))
    _fresh(monkeypatch, "my_models")
    config = tmp_path / "bench.yaml"
    config.write_text(CONFIG)
    root = tmp_path / "bench"
    command = ["--config", str(config), "--dir", str(root), "--no_progress"]
    assert new_main([*command, "--import", "my_models", "json"]) == 0
    return root, source


def _marker(root: pathlib.Path) -> dict:
    return json.loads((root / _layout.MARKER).read_text())


def test_the_modules_that_register_the_benchs_models_are_recorded_outside_its_identity(made):
    root, source = made
    marker = _marker(root)
    assert marker[_layout.IMPORTS_KEY] == ["my_models"]  # json registers none of its models
    assert marker[_layout.IMPORT_FOLDERS_KEY] == {"my_models": str(source.resolve())}
    config = BenchConfig.from_dict(yaml.safe_load((root / _layout.CONFIG).read_text()))
    assert marker["config_hash"] == config.digest()  # the record is not in the config


def test_later_commands_import_the_recorded_modules_themselves(made, monkeypatch, capsys):
    root, _ = made
    _fresh(monkeypatch, "my_models")
    assert new_main(["--dir", str(root), "--no_progress"]) == 0, capsys.readouterr().err
    _fresh(monkeypatch, "my_models")  # the same command as made it, less --import
    config = root.parent / "bench.yaml"
    command = ["--config", str(config), "--dir", str(root), "--no_progress"]
    assert new_main(command) == 0, capsys.readouterr().err
    _fresh(monkeypatch, "my_models")
    assert add_models_main(["--dir", str(root), "--no_progress"]) == 2
    err = capsys.readouterr().err  # it planned the bench: my_dense was registered
    assert "no model was registered since the bench was made" in err, err
    assert profile_main(["--dir", str(root)]) == 0  # needs no models
    assert _marker(root)[_layout.IMPORTS_KEY] == ["my_models"]


def test_a_recorded_module_not_found_is_one_error_saying_what_to_do(made, monkeypatch, capsys):
    root, source = made
    (source / "my_models.py").rename(source / "our_models.py")  # renamed
    _fresh(monkeypatch, "my_models", "our_models")
    assert new_main(["--dir", str(root), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the bench {str(root)!r} registers its model 'my_dense' ")
    assert "importing 'my_models'" in err and "pip install it" in err
    assert "for 'my_models', run from the folder that holds my_models.py or the package " in err
    folder = str(source.resolve())
    assert f"my_models/, which was {folder!r} when the bench recorded it (`python -m`" in err
    assert f"or add that folder to PYTHONPATH (PYTHONPATH={shlex.quote(folder)} python" in err
    assert "--import NEW_NAME" in err and "Traceback" not in err and err.count("\n") == 1
    _fresh(monkeypatch, "my_models", "our_models")  # its new name: used, and recorded
    command = ["--dir", str(root), "--no_progress", "--import", "our_models"]
    assert new_main(command) == 0, capsys.readouterr().err
    assert _marker(root)[_layout.IMPORTS_KEY] == ["our_models"]
    assert _marker(root)[_layout.IMPORT_FOLDERS_KEY] == {"our_models": folder}
    _fresh(monkeypatch, "my_models", "our_models")
    assert profile_main(["--dir", str(root)]) == 0


def test_a_recorded_module_not_found_in_an_older_bench_says_where_to_look(
    made, monkeypatch, capsys
):
    """A bench made before the folders were recorded: the error names the file to look
    for, and PYTHONPATH=FOLDER for the folder that holds it."""
    root, source = made
    marker = _marker(root)
    del marker[_layout.IMPORT_FOLDERS_KEY]
    (root / _layout.MARKER).write_text(json.dumps(marker))
    (source / "my_models.py").rename(source / "our_models.py")
    _fresh(monkeypatch, "my_models", "our_models")
    assert new_main(["--dir", str(root), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "run from the folder that holds my_models.py or the package my_models/ (`py" in err
    assert "or add that folder to PYTHONPATH (PYTHONPATH=FOLDER python -m ...)" in err
    assert _marker(root) == marker


def test_a_bench_made_before_the_record_is_written_as_before(made, monkeypatch, capsys):
    root, source = made
    marker = _marker(root)
    del marker[_layout.IMPORTS_KEY], marker[_layout.IMPORT_FOLDERS_KEY]  # as a bench made before
    (root / _layout.MARKER).write_text(json.dumps(marker))
    _fresh(monkeypatch, "my_models")
    assert new_main(["--dir", str(root), "--no_progress"]) == 2  # as before: --import it
    assert "unknown model 'my_dense'" in capsys.readouterr().err
    assert _marker(root) == marker
    _fresh(monkeypatch, "my_models")
    assert new_main(["--dir", str(root), "--no_progress", "--import", "my_models"]) == 0
    folders = {"my_models": str(source.resolve())}
    expected = {**marker, _layout.IMPORTS_KEY: ["my_models"], _layout.IMPORT_FOLDERS_KEY: folders}
    assert _marker(root) == expected


def test_a_recorded_module_that_raises_is_named_as_the_benchs(made, monkeypatch, capsys):
    root, source = made
    (source / "my_models.py").write_text(MODULE + "raise RuntimeError('broken')\n")
    _fresh(monkeypatch, "my_models")
    assert new_main(["--dir", str(root), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the bench {str(root)!r} imports 'my_models' (recorded in ")
    assert "--import my_models failed: it raised RuntimeError" in err and "broken" in err


def test_add_models_records_an_import_that_registers_a_model_it_adds(made, monkeypatch, capsys):
    root, source = made
    (source / "more_models.py").write_text(MODULE.replace("my_dense", "my_dense2"))
    _fresh(monkeypatch, "my_models", "more_models")
    command = ["--dir", str(root), "--no_progress", "--import", "more_models"]
    assert add_models_main(command) == 0, capsys.readouterr().err
    assert _marker(root)[_layout.IMPORTS_KEY] == ["my_models", "more_models"]
    assert "my_dense2" in (root / _layout.CONFIG).read_text()


def test_the_python_api_imports_the_recorded_modules_as_the_commands_do(made, monkeypatch):
    """`run` and `add_models_to` import what the bench recorded, as ``new`` and
    ``add_models`` do: a bench of one's own models continues without importing them."""
    root, _ = made
    _fresh(monkeypatch, "my_models")
    results = run(None, root, datasets={"toy": toy_data()}, progress=False)
    assert set(results.model) == {"my_dense"}
    _fresh(monkeypatch, "my_models")
    with pytest.raises(BenchError, match="no model was registered since the bench was made"):
        add_models_to(root, datasets={"toy": toy_data()}, progress=False)  # it planned


def test_print_config_on_a_bench_imports_its_recorded_modules(made, monkeypatch, capsys):
    root, _ = made
    _fresh(monkeypatch, "my_models")
    command = ["--config", str(root.parent / "bench.yaml"), "--dir", str(root), "--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        new_parser().parse_args(command)
    assert exit_info.value.code == 0
    assert "name: my_dense" in capsys.readouterr().out


def test_an_import_given_a_file_in_a_package_names_the_dotted_module(tmp_path, monkeypatch):
    """``--import mypkg/models.py`` suggests ``--import mypkg.models``, not ``models``
    (which Python would not find from the package's folder: its relative imports break)."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchError) as caught:
        _imports.import_all(["mypkg/models.py"])
    assert "pass --import mypkg.models and run from the folder that holds the package mypkg/" in (
        str(caught.value)
    )
    with pytest.raises(BenchError, match=r"pass --import mypkg\.models and run from the folder "):
        _imports.import_all([str(tmp_path / "mypkg" / "models.py")])
