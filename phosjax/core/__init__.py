"""phosjax.core: tags, knobs, path weights, selectors and the functional transforms.

A module names values with `tag`, declares knobs with `knob` (a `Knob` each, listed by
`knobs`; `with_knobs` adds the missing ones at their defaults), raises losses with
`aux_loss` and weighs branches with `path_weight` (`current_path_weight` reads the
product). The Flax collections phosjax uses are named by ``INTERMEDIATES`` (the tags),
``KNOBS``, ``AUX_LOSS``, ``PATH_WEIGHTS``, ``PERTURBATIONS`` (`grad_of`), ``INJECTIONS``
(`inject`), ``BLURB`` (`note`) and ``CONSTANTS``; ``TRANSIENT`` lists those that live only
during one call. `aux_losses_raised` and `path_weights_opened`, then
`check_aux_losses_kept` and `check_path_weights_kept`, catch what a lifted transform
dropped. `blurb` summarizes a model in a `Blurb` of `ModuleBlurb` (with `KnobValue` and
`ArraySpec` entries); `tag_shapes` gives the shapes of the tagged values;
`compile_selector` turns a selector into a regular expression, `flatten` and `unflatten`
turn trees into ``{path: value}`` and back.

Example:
  >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
  >>> class Net(nn.Module):
  ...     @nn.compact
  ...     def __call__(self, x):
  ...         h = px.tag(self, "h", nn.Dense(3)(x))  # probe, inject and grad_of see it
  ...         return h / px.knob(self, "T", 2.0, doc="temperature", valid=px.Range(gt=0))
  >>> net, x = Net(), jnp.ones((1, 4))
  >>> variables = net.init(jax.random.key(0), x)
  >>> out, found = px.probe(net, variables, x, "**/h")
  >>> bool(jnp.allclose(out, found["h"] / 2))
  True
  >>> bool(jnp.allclose(px.tweak(net, variables, x, {"**/T": 1.0}), found["h"]))
  True
"""

from phosjax.core._apply import tag_shapes
from phosjax.core._blurb import ArraySpec, Blurb, KnobValue, ModuleBlurb, blurb
from phosjax.core._collections import (
    AUX_LOSS,
    BLURB,
    CONSTANTS,
    INJECTIONS,
    INTERMEDIATES,
    KNOBS,
    PATH_WEIGHTS,
    PERTURBATIONS,
    TRANSIENT,
    scan_axes,
)
from phosjax.core._grad import grad_of, perturbations
from phosjax.core._inject import inject, injections
from phosjax.core._knobs import Knob, Range, knob, knobs, set_knobs, with_knobs
from phosjax.core._losses import (
    apply_checking_records,
    aux_total,
    check_aux_losses_kept,
    regularize,
)
from phosjax.core._path_weights import (
    check_path_weights_kept,
    current_path_weight,
    path_weight,
    path_weights_opened,
)
from phosjax.core._paths import flatten, unflatten
from phosjax.core._probe import probe
from phosjax.core._selectors import SelectorError, compile_selector, matches, select
from phosjax.core._tags import aux_loss, aux_losses_raised, note, tag
from phosjax.core._tweak import tweak

__all__ = [
    "AUX_LOSS",
    "BLURB",
    "CONSTANTS",
    "INJECTIONS",
    "INTERMEDIATES",
    "KNOBS",
    "PATH_WEIGHTS",
    "PERTURBATIONS",
    "TRANSIENT",
    "ArraySpec",
    "Blurb",
    "Knob",
    "KnobValue",
    "ModuleBlurb",
    "Range",
    "SelectorError",
    "apply_checking_records",
    "aux_loss",
    "aux_losses_raised",
    "aux_total",
    "blurb",
    "check_aux_losses_kept",
    "check_path_weights_kept",
    "compile_selector",
    "current_path_weight",
    "flatten",
    "grad_of",
    "inject",
    "injections",
    "knob",
    "knobs",
    "matches",
    "note",
    "path_weight",
    "path_weights_opened",
    "perturbations",
    "probe",
    "regularize",
    "scan_axes",
    "select",
    "set_knobs",
    "tag",
    "tag_shapes",
    "tweak",
    "unflatten",
    "with_knobs",
]
