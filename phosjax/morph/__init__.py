"""phosjax.morph: MorphNet width pruning on params trees, and expansion of model configs.

Example:
  >>> import flax.linen as nn, jax, jax.numpy as jnp
  >>> from phosjax.morph import channel_groups, shrink
  >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
  >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
  >>> groups = channel_groups(model, variables, x)  # the hidden width can be pruned
  >>> groups
  ChannelGroups(1 group of sizes {'layers_0': 8}, in 4 arrays (1 axis pinned), 2 ops costed)
  >>> shrink(variables, {"layers_0": [True] * 5 + [False] * 3}, groups).widths
  {'layers_0': 5}

References:
  Gordon et al., MorphNet: Fast & Simple Resource-Constrained Structure Learning of Deep
  Networks, https://arxiv.org/abs/1711.06798
"""

from typing import TYPE_CHECKING

from phosjax._lazy import lazy_exports

_EXPORTS = {
    "COSTS": "phosjax.morph._cost",
    "ITERATIONS": "phosjax.morph._loop",
    "Folded": "phosjax.morph._fold",
    "SOURCES": "phosjax.morph._regularizer",
    "ChannelGroup": "phosjax.morph._groups",
    "ChannelGroups": "phosjax.morph._groups",
    "DivergedError": "phosjax.morph._loop",
    "Member": "phosjax.morph._groups",
    "MorphConfig": "phosjax.morph._loop",
    "MorphConfigError": "phosjax.morph._loop",
    "Morphed": "phosjax.morph._expand",
    "RunDirectoryError": "phosjax.morph._loop",
    "Shrunk": "phosjax.morph._shrink",
    "UnsupportedOpError": "phosjax.morph._trace",
    "alive_channels": "phosjax.morph._regularizer",
    "annotate": "phosjax.morph._annotate",
    "channel_groups": "phosjax.morph._groups",
    "config_cost": "phosjax.morph._expand",
    "cost_polynomial": "phosjax.morph._cost",
    "evaluate": "phosjax.morph._cost",
    "expand": "phosjax.morph._expand",
    "expressible": "phosjax.morph._fit",
    "fold": "phosjax.morph._fold",
    "fit_config": "phosjax.morph._fit",
    "importance": "phosjax.morph._regularizer",
    "latency_table": "phosjax.morph._cost",
    "load_variables": "phosjax.morph._loop",
    "mask": "phosjax.morph._shrink",
    "measured_latency": "phosjax.morph._loop",
    "morph_regularizer": "phosjax.morph._regularizer",
    "once": "phosjax.morph._expand",
    "read_runs": "phosjax.morph._runs",
    "report": "phosjax.morph._regularizer",
    "run": "phosjax.morph._loop",
    "scale_widths": "phosjax.morph._expand",
    "shrink": "phosjax.morph._shrink",
    "train": "phosjax.morph._loop",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs (a test keeps them in step)
    from phosjax.morph._annotate import annotate as annotate
    from phosjax.morph._cost import COSTS as COSTS
    from phosjax.morph._cost import cost_polynomial as cost_polynomial
    from phosjax.morph._cost import evaluate as evaluate
    from phosjax.morph._cost import latency_table as latency_table
    from phosjax.morph._expand import Morphed as Morphed
    from phosjax.morph._expand import config_cost as config_cost
    from phosjax.morph._expand import expand as expand
    from phosjax.morph._expand import once as once
    from phosjax.morph._expand import scale_widths as scale_widths
    from phosjax.morph._fit import expressible as expressible
    from phosjax.morph._fit import fit_config as fit_config
    from phosjax.morph._fold import Folded as Folded
    from phosjax.morph._fold import fold as fold
    from phosjax.morph._groups import ChannelGroup as ChannelGroup
    from phosjax.morph._groups import ChannelGroups as ChannelGroups
    from phosjax.morph._groups import Member as Member
    from phosjax.morph._groups import channel_groups as channel_groups
    from phosjax.morph._loop import ITERATIONS as ITERATIONS
    from phosjax.morph._loop import DivergedError as DivergedError
    from phosjax.morph._loop import MorphConfig as MorphConfig
    from phosjax.morph._loop import MorphConfigError as MorphConfigError
    from phosjax.morph._loop import RunDirectoryError as RunDirectoryError
    from phosjax.morph._loop import load_variables as load_variables
    from phosjax.morph._loop import measured_latency as measured_latency
    from phosjax.morph._loop import run as run
    from phosjax.morph._loop import train as train
    from phosjax.morph._regularizer import SOURCES as SOURCES
    from phosjax.morph._regularizer import alive_channels as alive_channels
    from phosjax.morph._regularizer import importance as importance
    from phosjax.morph._regularizer import morph_regularizer as morph_regularizer
    from phosjax.morph._regularizer import report as report
    from phosjax.morph._runs import read_runs as read_runs
    from phosjax.morph._shrink import Shrunk as Shrunk
    from phosjax.morph._shrink import mask as mask
    from phosjax.morph._shrink import shrink as shrink
    from phosjax.morph._trace import UnsupportedOpError as UnsupportedOpError
