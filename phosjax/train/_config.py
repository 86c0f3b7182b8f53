"""What to train: `Regularizer`, `HParams` and `Cell` (frozen, hashable dataclasses)."""

import dataclasses
from collections.abc import Mapping
from typing import Any

from phosjax.models._config import is_int
from phosjax.morph import COSTS, SOURCES

OPTIMIZERS = ("adam", "adamw", "sgd", "momentum")
"""Optimizer families `HParams.optimizer` accepts (see `make_optimizer`)."""

COMPUTE_DTYPES = ("float32", "bfloat16")
"""Compute dtypes `HParams.compute_dtype` accepts (params and optimizer stay float32)."""

REGULARIZER_KINDS = ("l1", "l2", "morph")
REGULARIZER_TARGETS = ("params", "activations")


def int_at_least(where: str, value: Any, least: int) -> int:
    """``value`` as a plain int (numpy's too) when it is an integer >= ``least``.

    Raises:
      ValueError: naming ``where``: ``value`` is no integer (a float, a bool, ...) or is
        below ``least``.

    Examples:
      >>> import numpy as np
      >>> int_at_least("HParams steps", np.int64(4), 1)
      4
    """
    if not is_int(value):
        raise ValueError(
            f"{where} must be an int, got {value!r} ({type(value).__name__}); give a "
            f"whole number >= {least} as an int (a numpy int is fine)."
        )
    if value < least:
        raise ValueError(f"{where} must be >= {least}, got {value}.")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Regularizer:
    """A penalty ``strength * sum over matches of kind(value)`` added to the loss.

    Attributes:
      selector: which values, e.g. ``"**/kernel"`` (params) or ``"**/pre_act"`` (tags);
        for ``"morph"``, which channel groups are priced (``"**"``: all).
      kind: ``"l1"`` (absolute values), ``"l2"`` (squares) or ``"morph"`` (MorphNet's
        resource regularizer, `phosjax.morph.morph_regularizer`, normalized by the full
        model's cost; its channel groups are traced from the model when the step compiles).
      strength: the factor; may differ between the cells of one group.
      on: ``"params"`` sums over every entry of the matching parameters;
        ``"activations"`` averages over the entries of each matching tagged value.
        ``"morph"`` needs ``"params"``.
      cost: ``"morph"`` only: ``"flops"``, ``"params"`` or ``"latency"``.
      source: ``"morph"`` only: the channel importance, ``"auto"``, ``"gamma"`` or
        ``"group_lasso"`` (see `phosjax.morph.SOURCES`).
      threshold: ``"morph"`` only: the importance below which a channel counts as dead.

    Examples:
      >>> Regularizer("**/kernel", "l2", 1e-4).kind
      'l2'
      >>> Regularizer("**", "morph", 0.1, cost="params").cost
      'params'
    """

    selector: str
    kind: str = "l2"
    strength: float = 1e-4
    on: str = "params"
    cost: str = "flops"
    source: str = "auto"
    threshold: float = 1e-2

    def __post_init__(self) -> None:
        if self.kind not in REGULARIZER_KINDS:
            raise ValueError(f"Regularizer kind {self.kind!r}: expected one of {REGULARIZER_KINDS}")
        if self.on not in REGULARIZER_TARGETS:
            raise ValueError(f"Regularizer on={self.on!r}: expected one of {REGULARIZER_TARGETS}.")
        if self.kind == "morph":
            if self.on != "params":
                raise ValueError("Regularizer kind 'morph' prices params: it needs on='params'.")
            if self.cost not in COSTS:
                raise ValueError(f"Regularizer cost {self.cost!r}: expected one of {COSTS}.")
            if self.source not in SOURCES:
                raise ValueError(f"Regularizer source {self.source!r}: expected one of {SOURCES}.")


@dataclasses.dataclass(frozen=True)
class HParams:
    """How to train one cell.

    ``learning_rate``, ``weight_decay``, ``momentum``, ``label_smoothing``, the
    regularizers' strengths and the knobs' values may differ between the cells of one
    compiled group; everything else is part of the group's signature (see `plan_groups`).

    Attributes:
      optimizer: one of ``"adam"``, ``"adamw"``, ``"sgd"``, ``"momentum"``. ``adam``,
        ``sgd`` and ``momentum`` add ``weight_decay * params`` to the gradient (L2);
        ``adamw`` decouples the decay.
      learning_rate: the step size.
      weight_decay: see ``optimizer``.
      momentum: the momentum of ``"momentum"`` (ignored by the others).
      batch_size: examples per step.
      steps: total number of steps.
      eval_every: evaluate on the test split every this many steps (0: only at the end).
      label_smoothing: mass spread uniformly over the classes in the targets, in [0, 1].
      grad_clip: clip gradients to this global norm, > 0 (None: no clipping).
      regularizers: extra penalties (`Regularizer`).
      knobs: ``{selector: value}`` set with `phosjax.set_knobs` before training; a
        mapping is stored as a sorted tuple of pairs.
      compute_dtype: ``"float32"`` or ``"bfloat16"`` (mixed precision: the forward and
        backward pass see the inputs and params cast to bfloat16; the master params, the
        gradients, the loss and the optimizer stay float32; other collections, e.g.
        ``batch_stats``, are not cast).

    Examples:
      >>> HParams(learning_rate=1e-2, knobs={"**/T": 2.0}).knobs
      (('**/T', 2.0),)
      >>> HParams(compute_dtype="bfloat16").shared().compute_dtype  # part of the signature
      'bfloat16'
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 128
    steps: int = 1000
    eval_every: int = 0
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    regularizers: tuple[Regularizer, ...] = ()
    knobs: tuple[tuple[str, float], ...] = ()
    compute_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"HParams optimizer {self.optimizer!r}: expected one of {OPTIMIZERS}.")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"HParams compute_dtype {self.compute_dtype!r}: expected one of {COMPUTE_DTYPES}."
            )
        for name, least in (("batch_size", 1), ("steps", 1), ("eval_every", 0)):
            value = int_at_least(f"HParams {name}", getattr(self, name), least)
            object.__setattr__(self, name, value)
        if not self.weight_decay >= 0:
            raise ValueError(
                f"HParams weight_decay must be >= 0 (0: none), got {self.weight_decay}."
            )
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"HParams momentum must lie in [0, 1], got {self.momentum}.")
        if not 0 <= self.label_smoothing <= 1:
            raise ValueError(
                f"HParams label_smoothing must lie in [0, 1] (the mass spread over the "
                f"classes), got {self.label_smoothing}."
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(
                f"HParams grad_clip must be > 0 (a global norm) or None (no clipping), "
                f"got {self.grad_clip}."
            )
        knobs: Any = self.knobs
        pairs = knobs.items() if isinstance(knobs, Mapping) else knobs
        object.__setattr__(self, "knobs", tuple(sorted((str(s), float(v)) for s, v in pairs)))
        object.__setattr__(self, "regularizers", tuple(self.regularizers))

    def shared(self) -> "HParams":
        """These hparams with every per-cell value zeroed: what a compiled group shares."""
        return dataclasses.replace(
            self,
            learning_rate=0.0,
            weight_decay=0.0,
            momentum=0.0,
            label_smoothing=0.0,
            regularizers=tuple(dataclasses.replace(r, strength=0.0) for r in self.regularizers),
            knobs=tuple((selector, 0.0) for selector, _ in self.knobs),
        )


@dataclasses.dataclass(frozen=True)
class Cell:
    """One model trained on one data set with one set of hparams and one seed.

    Attributes:
      model: a hashable config whose ``.build()`` returns a Flax module called as
        ``module(x, train=...)`` (e.g. `phosjax.models.ModelConfig`).
      dataset: the data set's name (see `phosjax.data.load`).
      hparams: how to train.
      seed: seeds the initialization, the batch order and dropout.
    """

    model: Any
    dataset: str
    hparams: HParams = HParams()
    seed: int = 0

    def signature(self) -> tuple[Any, ...]:
        """What must be equal for two cells to share one compiled step."""
        return (self.model, self.dataset, self.hparams.shared())
