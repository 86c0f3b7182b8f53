"""phosjax.train: train many small models at once, one compiled step per group of cells.

Example:
  >>> from phosjax.models import ModelConfig
  >>> from phosjax.train import Cell, HParams, plan_groups
  >>> model = ModelConfig("mlp", 3, (8,))
  >>> cells = [Cell(model, "toy", HParams(learning_rate=lr)) for lr in (1e-3, 1e-2)]
  >>> plan_groups(cells)  # one compiled step trains both (`train_grid` trains them)
  [Group(2 cells at (0, 1): ModelConfig(name='mlp', num_classes=3, input_shape=(8,),
         depth=None, width=None, options=()) on 'toy')]
"""

from phosjax.train._auto import measure_strategies
from phosjax.train._config import (
    COMPUTE_DTYPES,
    LR_SCHEDULES,
    OPTIMIZERS,
    Cell,
    HParams,
    Regularizer,
)
from phosjax.train._grid import GridResult, process_share, train_grid
from phosjax.train._group import Group, plan_groups
from phosjax.train._matmul_convs import (
    conv_as_matmul,
    convs_as_matmuls,
    has_convs,
    rewrite_before_grad,
)
from phosjax.train._optim import lr_multiplier, make_optimizer
from phosjax.train._precision import precision_apply
from phosjax.train._run import Chunk, GroupRun, run_group
from phosjax.train._state import RECORDED_SETTINGS, GroupState, init_group
from phosjax.train._step import device_arrays, make_train_step
from phosjax.train._strategy import MATMUL_STRATEGIES, STRATEGIES

__all__ = [
    "COMPUTE_DTYPES",
    "LR_SCHEDULES",
    "MATMUL_STRATEGIES",
    "OPTIMIZERS",
    "RECORDED_SETTINGS",
    "STRATEGIES",
    "Cell",
    "Chunk",
    "GridResult",
    "Group",
    "GroupRun",
    "GroupState",
    "HParams",
    "Regularizer",
    "conv_as_matmul",
    "convs_as_matmuls",
    "device_arrays",
    "has_convs",
    "init_group",
    "lr_multiplier",
    "make_optimizer",
    "make_train_step",
    "measure_strategies",
    "plan_groups",
    "precision_apply",
    "process_share",
    "rewrite_before_grad",
    "run_group",
    "train_grid",
]
