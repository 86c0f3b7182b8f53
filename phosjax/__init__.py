"""phosjax: train and compare many small JAX/Flax networks, and see inside them.

The core (tags, aux losses, path weights, knobs, probe/tweak/inject, grad_of, blurb) and
the model registry load with ``import phosjax``; the heavier subpackages (``data``,
``train``, ``bench``, ``morph``) and the names re-exported from them load on first use.

Example:
  >>> import phosjax as px
  >>> "mlp" in px.registered_models()
  True
  >>> px.HParams().optimizer
  'adam'
"""

import importlib
from typing import Any

from phosjax import layers, models
from phosjax.core import (
    AUX_LOSS,
    BLURB,
    CONSTANTS,
    INJECTIONS,
    INTERMEDIATES,
    KNOBS,
    PATH_WEIGHTS,
    PERTURBATIONS,
    Blurb,
    Knob,
    SelectorError,
    aux_loss,
    aux_total,
    blurb,
    current_path_weight,
    grad_of,
    inject,
    knob,
    knobs,
    note,
    path_weight,
    perturbations,
    probe,
    regularize,
    scan_axes,
    select,
    set_knobs,
    tag,
    tweak,
)
from phosjax.models import ModelConfig, build_model, register_model, registered_models

_SUBPACKAGES = ("bench", "data", "morph", "train")
_LAZY_NAMES = {
    "Cell": "phosjax.train",
    "GridResult": "phosjax.train",
    "HParams": "phosjax.train",
    "Regularizer": "phosjax.train",
    "train_grid": "phosjax.train",
}

__version__ = "0.1.0"

__all__ = [
    "AUX_LOSS",
    "BLURB",
    "CONSTANTS",
    "INJECTIONS",
    "INTERMEDIATES",
    "KNOBS",
    "PATH_WEIGHTS",
    "PERTURBATIONS",
    "Blurb",
    "Knob",
    "SelectorError",
    "aux_loss",
    "aux_total",
    "blurb",
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
    *_SUBPACKAGES,
    *_LAZY_NAMES,
]


def __getattr__(name: str) -> Any:
    """Imports a heavier subpackage, or a name re-exported from one, on first use."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"phosjax.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'phosjax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
