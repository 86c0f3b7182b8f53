"""`annotate`: a `report` written into the notes of a `phosjax.core.Blurb`."""

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from phosjax._callables import a_type
from phosjax.core import Blurb, ModuleBlurb

# "qkv[2]", "proj#1", "a[3]#0": one of a module's groups (its axis, its number)
_AXIS = re.compile(r"(?:\[\d+\])?(?:#\d+)?$")


def _producer(blurb: Blurb, path: str) -> str:
    """The module path of a group named ``path``: the module, or the top module (``""``)
    for a group named after a variable of the top module (``self.param`` at the root).

    Raises:
      SelectorError: neither (a report of another model); names the nearest modules.
    """
    own = blurb.root.variables.values()
    if path not in blurb.modules() and any(path in names for names in own):
        return ""
    blurb[path]  # raises, naming the nearest module paths
    return path


def annotate(blurb: Blurb, report: Mapping[str, Any]) -> Blurb:
    """The blurb with a `report` in its modules' notes (shown by ``table()``, in the JSON).

    The module that produces each channel group gets the note ``alive`` (``"alive/total"``;
    ``alive[axis]`` when the module has several groups, e.g. attention heads; the top
    module for a group named after one of its own params), and the top
    module ``<cost>_ratio`` (the cost without the dead channels / the original) per cost.

    Args:
      blurb: `phosjax.blurb` of the model.
      report: `report` of the same model.

    Raises:
      SelectorError: a group's module is not in the blurb (a report of another model).
      TypeError, ValueError: ``blurb`` is no Blurb, or ``report`` no `report` (both name
        what they got).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, phosjax as px
      >>> from phosjax.morph import annotate, channel_groups, report
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> p = variables["params"]["layers_0"]
      >>> p["kernel"], p["bias"] = p["kernel"].at[:, 1].set(0.0), p["bias"].at[1].set(0.0)
      >>> b = px.blurb(model, variables, x, flops=False, measure_latency=False)
      >>> b = annotate(b, report(channel_groups(model, variables, x), variables))
      >>> b["layers_0"].notes, round(b.root.notes["params_ratio"], 3)  # 16 of 23 params
      ({'alive': '2/3'}, 0.696)
    """
    if not isinstance(blurb, Blurb):
        raise TypeError(
            f"annotate: blurb is {a_type(blurb)}; expected the Blurb of "
            "phosjax.blurb(model, variables, x) (annotate(blurb, report), in that order)"
        )
    if not isinstance(report, Mapping) or not {"groups", "cost"} <= set(report):
        held = list(report) if isinstance(report, Mapping) else type(report).__name__
        raise ValueError(
            f"annotate: report ({held}) is no morph report, which holds 'groups' and 'cost'; "
            "pass report(groups, variables) (not alive_channels')"
        )
    notes: dict[str, dict[str, Any]] = {}
    for name, counts in report["groups"].items():
        path = _AXIS.sub("", name)
        suffix = name[len(path) :]
        key = f"alive{suffix}"
        notes.setdefault(_producer(blurb, path), {})[key] = f"{counts['alive']}/{counts['total']}"
    for cost, values in report["cost"].items():
        notes.setdefault("", {})[f"{cost}_ratio"] = values["ratio"]

    def rebuild(module: ModuleBlurb) -> ModuleBlurb:
        return dataclasses.replace(
            module,
            notes={**module.notes, **notes.get(module.path, {})},
            children=tuple(rebuild(child) for child in module.children),
        )

    return dataclasses.replace(blurb, root=rebuild(blurb.root))
