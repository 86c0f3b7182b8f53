"""Pins the public API: a name added or removed must be a decision, not an accident."""

import subprocess
import sys

import pytest

import phosjax as px

EXPECTED = sorted(
    [
        "AUX_LOSS",
        "BLURB",
        "CONSTANTS",
        "INJECTIONS",
        "INTERMEDIATES",
        "KNOBS",
        "PATH_WEIGHTS",
        "PERTURBATIONS",
        "Knob",
        "SelectorError",
        "aux_loss",
        "aux_total",
        "blurb",
        "Blurb",
        "current_path_weight",
        "grad_of",
        "inject",
        "knob",
        "knobs",
        "note",
        "path_weight",
        "perturbations",
        "probe",
        "regularize",
        "scan_axes",
        "select",
        "set_knobs",
        "tag",
        "tweak",
        "layers",
        "models",
        "ModelConfig",
        "build_model",
        "register_model",
        "registered_models",
        "bench",
        "data",
        "morph",
        "train",
        "Cell",
        "GridResult",
        "HParams",
        "Regularizer",
        "train_grid",
    ]
)


def test_all_is_pinned():
    assert sorted(px.__all__) == EXPECTED


def test_every_public_name_exists_and_is_documented():
    for name in px.__all__:
        obj = getattr(px, name)
        if callable(obj):
            assert obj.__doc__, f"phosjax.{name} has no docstring"


def test_heavy_subpackages_load_on_first_use_only():
    code = (
        "import sys, phosjax as px\n"
        "assert 'phosjax.bench' not in sys.modules and 'phosjax.train' not in sys.modules\n"
        "from phosjax import HParams\n"
        "assert HParams is sys.modules['phosjax.train'].HParams\n"
        "assert px.bench is sys.modules['phosjax.bench']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'trian_grid'"):
        _ = px.trian_grid
