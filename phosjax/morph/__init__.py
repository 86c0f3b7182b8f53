"""phosjax.morph: MorphNet width pruning and expansion on params trees.

References:
  Gordon et al., MorphNet: Fast & Simple Resource-Constrained Structure Learning of Deep
  Networks, https://arxiv.org/abs/1711.06798
"""

from phosjax.morph._fit import expressible, fit_config
from phosjax.morph._groups import ChannelGroup, ChannelGroups, Member, channel_groups
from phosjax.morph._shrink import Shrunk, mask, shrink
from phosjax.morph._trace import UnsupportedOpError

__all__ = [
    "ChannelGroup",
    "ChannelGroups",
    "Member",
    "Shrunk",
    "UnsupportedOpError",
    "channel_groups",
    "expressible",
    "fit_config",
    "mask",
    "shrink",
]
