"""phosjax: train and compare many small JAX/Flax networks, and see inside them.

The core (tags, aux losses, path weights, knobs, probe/tweak/inject, grad_of, blurb),
the model registry and the engine are re-exported here. ``import phosjax`` itself loads
none of them (nor jax): each subpackage loads on first use of one of its names, so the
bench viewer starts without jax.

Example:
  >>> import phosjax as px
  >>> "mlp" in px.registered_models()
  True
  >>> px.HParams().optimizer
  'adam'
"""

from typing import TYPE_CHECKING

from phosjax._lazy import lazy_exports

_SUBPACKAGES = ("bench", "core", "data", "layers", "models", "morph", "train")
_EXPORTS = {
    "AUX_LOSS": "phosjax.core",
    "BLURB": "phosjax.core",
    "CONSTANTS": "phosjax.core",
    "INJECTIONS": "phosjax.core",
    "INTERMEDIATES": "phosjax.core",
    "KNOBS": "phosjax.core",
    "PATH_WEIGHTS": "phosjax.core",
    "PERTURBATIONS": "phosjax.core",
    "Blurb": "phosjax.core",
    "Knob": "phosjax.core",
    "Range": "phosjax.core",
    "SelectorError": "phosjax.core",
    "aux_loss": "phosjax.core",
    "aux_total": "phosjax.core",
    "blurb": "phosjax.core",
    "current_path_weight": "phosjax.core",
    "grad_of": "phosjax.core",
    "inject": "phosjax.core",
    "knob": "phosjax.core",
    "knobs": "phosjax.core",
    "note": "phosjax.core",
    "path_weight": "phosjax.core",
    "perturbations": "phosjax.core",
    "probe": "phosjax.core",
    "regularize": "phosjax.core",
    "scan_axes": "phosjax.core",
    "select": "phosjax.core",
    "set_knobs": "phosjax.core",
    "tag": "phosjax.core",
    "tweak": "phosjax.core",
    "ModelConfig": "phosjax.models",
    "build_model": "phosjax.models",
    "register_model": "phosjax.models",
    "registered_models": "phosjax.models",
    "Cell": "phosjax.train",
    "GridResult": "phosjax.train",
    "HParams": "phosjax.train",
    "Regularizer": "phosjax.train",
    "train_grid": "phosjax.train",
}

__version__ = "0.1.0"

__all__ = [*_EXPORTS, *_SUBPACKAGES]
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS, _SUBPACKAGES)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs (a test keeps them in step)
    from phosjax import bench as bench
    from phosjax import core as core
    from phosjax import data as data
    from phosjax import layers as layers
    from phosjax import models as models
    from phosjax import morph as morph
    from phosjax import train as train
    from phosjax.core import AUX_LOSS as AUX_LOSS
    from phosjax.core import BLURB as BLURB
    from phosjax.core import CONSTANTS as CONSTANTS
    from phosjax.core import INJECTIONS as INJECTIONS
    from phosjax.core import INTERMEDIATES as INTERMEDIATES
    from phosjax.core import KNOBS as KNOBS
    from phosjax.core import PATH_WEIGHTS as PATH_WEIGHTS
    from phosjax.core import PERTURBATIONS as PERTURBATIONS
    from phosjax.core import Blurb as Blurb
    from phosjax.core import Knob as Knob
    from phosjax.core import Range as Range
    from phosjax.core import SelectorError as SelectorError
    from phosjax.core import aux_loss as aux_loss
    from phosjax.core import aux_total as aux_total
    from phosjax.core import blurb as blurb
    from phosjax.core import current_path_weight as current_path_weight
    from phosjax.core import grad_of as grad_of
    from phosjax.core import inject as inject
    from phosjax.core import knob as knob
    from phosjax.core import knobs as knobs
    from phosjax.core import note as note
    from phosjax.core import path_weight as path_weight
    from phosjax.core import perturbations as perturbations
    from phosjax.core import probe as probe
    from phosjax.core import regularize as regularize
    from phosjax.core import scan_axes as scan_axes
    from phosjax.core import select as select
    from phosjax.core import set_knobs as set_knobs
    from phosjax.core import tag as tag
    from phosjax.core import tweak as tweak
    from phosjax.models import ModelConfig as ModelConfig
    from phosjax.models import build_model as build_model
    from phosjax.models import register_model as register_model
    from phosjax.models import registered_models as registered_models
    from phosjax.train import Cell as Cell
    from phosjax.train import GridResult as GridResult
    from phosjax.train import HParams as HParams
    from phosjax.train import Regularizer as Regularizer
    from phosjax.train import train_grid as train_grid
