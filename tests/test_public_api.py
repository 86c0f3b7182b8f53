"""Pins the public API: a name added or removed must be a decision, not an accident."""

import phosjax as px

EXPECTED = sorted(
    [
        "AUX_LOSS",
        "BLURB",
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
    ]
)


def test_all_is_pinned():
    assert sorted(px.__all__) == EXPECTED


def test_every_public_name_exists_and_is_documented():
    for name in px.__all__:
        obj = getattr(px, name)
        if callable(obj):
            assert obj.__doc__, f"phosjax.{name} has no docstring"
