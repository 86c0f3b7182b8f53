"""phosjax.morph: MorphNet width pruning and expansion on params trees.

References:
  Gordon et al., MorphNet: Fast & Simple Resource-Constrained Structure Learning of Deep
  Networks, https://arxiv.org/abs/1711.06798
"""

from phosjax.morph._annotate import annotate
from phosjax.morph._cost import COSTS, cost_polynomial, evaluate, latency_table
from phosjax.morph._expand import Morphed, config_cost, expand, once, scale_widths
from phosjax.morph._fit import expressible, fit_config
from phosjax.morph._groups import ChannelGroup, ChannelGroups, Member, channel_groups
from phosjax.morph._loop import ITERATIONS, MorphConfig, measured_latency, run, train
from phosjax.morph._regularizer import (
    SOURCES,
    alive_channels,
    importance,
    morph_regularizer,
    report,
)
from phosjax.morph._shrink import Shrunk, mask, shrink
from phosjax.morph._trace import UnsupportedOpError

__all__ = [
    "COSTS",
    "ITERATIONS",
    "SOURCES",
    "ChannelGroup",
    "ChannelGroups",
    "Member",
    "MorphConfig",
    "Morphed",
    "Shrunk",
    "UnsupportedOpError",
    "alive_channels",
    "annotate",
    "channel_groups",
    "config_cost",
    "cost_polynomial",
    "evaluate",
    "expand",
    "expressible",
    "fit_config",
    "importance",
    "latency_table",
    "mask",
    "measured_latency",
    "morph_regularizer",
    "once",
    "report",
    "run",
    "scale_widths",
    "shrink",
    "train",
]
