"""`expand` (a uniform width multiplier to a budget) and `once` (shrink, then expand)."""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from phosjax.models import ModelConfig, build_model
from phosjax.morph._cost import cost_polynomial, evaluate
from phosjax.morph._fit import _fields, _value, _with, expressible
from phosjax.morph._groups import channel_groups
from phosjax.morph._regularizer import alive_channels, importance
from phosjax.morph._shrink import Shrunk, shrink


@functools.lru_cache(maxsize=512)
def config_cost(config: ModelConfig, cost: str = "flops") -> float:
    """The cost of the model ``config`` builds, every channel alive (computed abstractly).

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import config_cost
      >>> config_cost(ModelConfig("mlp", 10, (40,), width=8), "params")
      490.0
    """
    model = build_model(config)
    x = jax.ShapeDtypeStruct((1, *config.input_shape), jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    groups = channel_groups(model, shapes, x)
    return evaluate(cost_polynomial(groups, cost), [g.size for g in groups.groups])


def scale_widths(config: ModelConfig, multiplier: float, multiple: int = 8) -> ModelConfig:
    """Every width (stage widths, ``*features``/``*width`` options) times ``multiplier``,
    rounded to a multiple of ``multiple`` and never below it."""
    scaled = config.resolved()
    for field in _fields(scaled):
        if field[0] == "option" and str(field[1]).endswith("heads"):
            continue
        value = _value(scaled, field) * multiplier
        scaled = _with(scaled, field, max(multiple, round(value / multiple) * multiple))
    return scaled


def expand(
    config: ModelConfig, budget: float, cost: str = "flops", multiple: int = 8
) -> ModelConfig:
    """The config with the largest uniform width multiplier whose cost fits ``budget``.

    Bisection over the multiplier; widths are rounded to a multiple of ``multiple``
    (never to zero).

    Raises:
      ValueError: even the narrowest config (every width ``multiple``) costs more.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import config_cost, expand
      >>> small = ModelConfig("mlp", 10, (40,), width=20)
      >>> expand(small, config_cost(small.replace(width=64), "params"), "params").width
      (64,)
    """
    base = config.resolved()

    def fits(multiplier: float) -> bool:
        return config_cost(scale_widths(base, multiplier, multiple), cost) <= budget

    if not fits(0.0):
        narrowest = config_cost(scale_widths(base, 0.0, multiple), cost)
        raise ValueError(
            f"no width multiplier fits the {cost} budget {budget:g}: the narrowest "
            f"config (every width {multiple}) costs {narrowest:g}"
        )
    low, high = 0.0, 1.0
    while fits(high) and high < 2**12:
        low, high = high, 2 * high
    for _ in range(24):
        middle = (low + high) / 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return scale_widths(base, low, multiple)


@dataclasses.dataclass(frozen=True)
class Morphed:
    """The result of `once`: the shrunk variables and the expanded config."""

    shrunk: Shrunk
    config: ModelConfig


def once(
    config: ModelConfig,
    variables: Any,
    *,
    cost: str = "flops",
    budget: float | None = None,
    threshold: float = 1e-2,
    source: str = "auto",
    multiple: int = 8,
) -> Morphed:
    """One MorphNet step: shrink to the alive channels, then expand to the budget.

    The alive channels are those above ``threshold`` (`alive_channels`), adjusted so the
    model's config can express them (`expressible`); the shrunk config is then widened
    uniformly (`expand`) to ``budget`` (default: the cost of ``config``). Train the
    expanded config from scratch, as MorphNet does.

    References:
      Gordon et al., MorphNet, https://arxiv.org/abs/1711.06798 (algorithm 1).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import once
      >>> config = ModelConfig("mlp", 10, (40,), width=16)
      >>> variables = config.build().init(jax.random.key(0), jnp.zeros((1, 40)))
      >>> for layer in ("stem", "blocks_0"):  # tied by the residual add
      ...     p = variables["params"][layer]["Dense_0"]
      ...     p["kernel"] = p["kernel"].at[:, 8:].set(0.0)
      >>> morphed = once(config, variables, threshold=0.5, cost="params")
      >>> morphed.shrunk.config.width, morphed.config.width
      ((8,), (16,))
    """
    model = build_model(config)
    x = jnp.zeros((2, *config.input_shape), jnp.float32)
    groups = channel_groups(model, variables, x)
    scores = {
        g.name: np.asarray(s)
        for g, s in zip(groups.groups, importance(groups, variables, source), strict=True)
    }
    alive = expressible(
        config, groups, alive_channels(groups, variables, threshold, source), scores
    )
    shrunk = shrink(variables, alive, groups, config=config)
    assert shrunk.config is not None
    target = config_cost(config.resolved(), cost) if budget is None else budget
    return Morphed(shrunk, expand(shrunk.config, target, cost, multiple))
