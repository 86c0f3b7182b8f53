"""phosjax.models: the model registry, the standard frame and the baseline zoo.

Example:
  >>> from phosjax.models import ModelConfig, param_count, registered_models
  >>> registered_models()[:4]
  ['choicenet', 'cnn1d', 'cnn2d', 'gru']
  >>> config = ModelConfig("mlp", num_classes=3, input_shape=(8,), width=16)
  >>> config.build().widths, param_count(config)  # Dense layers 8->16 (stem), 16->16, 16->3
  ((16,), 467)
"""

from phosjax.models import _zoo  # registers the zoo  # noqa: F401
from phosjax.models._blocks import DenseBlock, Layer, ResBlock
from phosjax.models._config import ModelConfig
from phosjax.models._frame import Frame
from phosjax.models._kinds import IMAGE, KINDS, SEQUENCE, VECTOR
from phosjax.models._mixing import Skip, choice_block, moe_block
from phosjax.models._registry import (
    ENTRY_POINT_GROUP,
    FRAME_OPTIONS,
    ModelSpec,
    build_model,
    import_models,
    model_spec,
    param_count,
    register_model,
    registered_models,
)
from phosjax.models._sequence import GRUBlock, Patches

__all__ = [
    "ENTRY_POINT_GROUP",
    "FRAME_OPTIONS",
    "IMAGE",
    "KINDS",
    "SEQUENCE",
    "VECTOR",
    "DenseBlock",
    "Frame",
    "GRUBlock",
    "Layer",
    "ModelConfig",
    "ModelSpec",
    "Patches",
    "ResBlock",
    "Skip",
    "build_model",
    "choice_block",
    "import_models",
    "model_spec",
    "moe_block",
    "param_count",
    "register_model",
    "registered_models",
]
