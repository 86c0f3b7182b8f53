"""`expand` (a uniform width multiplier to a budget) and `once` (shrink, then expand)."""

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from phosjax.models import ModelConfig, build_model
from phosjax.models._config import checked_config, is_int
from phosjax.morph._cost import (
    check_cost,
    cost_polynomial,
    evaluate,
    latency_table_given,
    pricing_table,
)
from phosjax.morph._fit import Field, _fields, _value, _with, expressible, variable_shapes
from phosjax.morph._groups import channel_groups, traced_groups
from phosjax.morph._regularizer import alive_of, importance
from phosjax.morph._shrink import Shrunk, shrink


def config_cost(config: ModelConfig, cost: str = "flops") -> float:
    """The cost of the model ``config`` builds, every channel alive (computed abstractly;
    cached per config, cost and, for ``"latency"``, the table it prices by).

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import config_cost
      >>> config_cost(ModelConfig("mlp", 10, (40,), width=8), "params")
      490.0
    """
    table = tuple(sorted(pricing_table().items())) if cost == "latency" else None
    return _priced_cost(config, cost, table)


@functools.lru_cache(maxsize=512)
def _priced_cost(
    config: ModelConfig, cost: str, table: tuple[tuple[str, tuple[float, float]], ...] | None
) -> float:
    """`config_cost`, ``"latency"`` priced by ``table`` (the items of a `LatencyTable`)."""
    checked_config(config, "config_cost")
    model = build_model(config)
    x = jax.ShapeDtypeStruct((1, *config.input_shape), jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    groups = channel_groups(model, shapes, x)
    with latency_table_given(None if table is None else dict(table)):
        polynomial = cost_polynomial(groups, cost)
    return evaluate(polynomial, [g.size for g in groups.groups])


def _builds(config: ModelConfig) -> bool:
    try:
        variable_shapes(config)
    except (ValueError, TypeError):
        return False
    return True


@functools.lru_cache(maxsize=512)
def _step(config: ModelConfig, field: Field, multiple: int) -> int:
    """What ``field`` is rounded to: ``multiple``, or its lcm with every head count that
    must divide the field (the config builds with ``heads * k`` but not ``heads * k + 1``)."""
    step = multiple
    for key, heads in config.options:
        if not (str(key).endswith("heads") and isinstance(heads, int) and heads > 1):
            continue
        if (field[0], field[1]) == ("option", key):
            continue
        k = max(1, _value(config, field) // heads)
        if _builds(_with(config, field, heads * k)) and not _builds(
            _with(config, field, heads * k + 1)
        ):
            step = math.lcm(step, heads)
    return step


def _check_multiple(multiple: int) -> None:
    if not is_int(multiple) or multiple < 1:
        raise ValueError(
            f"multiple={multiple!r}: widths are rounded to it, so expected an int >= 1"
        )


def scale_widths(config: ModelConfig, multiplier: float, multiple: int = 8) -> ModelConfig:
    """Every width (stage widths, ``*features``/``*width`` options) times ``multiplier``,
    rounded to the nearest multiple of ``multiple`` (a tie rounds up: 20 becomes 24 and 28
    becomes 32 at multiple 8) and never below it. Head counts stay; a width
    they must divide is rounded to a multiple of ``lcm(multiple, heads)``.

    Raises:
      ValueError: ``multiplier`` is not a finite number >= 0 (NaN, infinity, negative, a
        string), or ``multiple`` is not an int >= 1.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import scale_widths
      >>> config = ModelConfig("transformer", 10, (40,), width=64,
      ...                      options={"num_heads": 16, "patch_size": 4, "mlp_features": 64})
      >>> narrow = scale_widths(config, 0.0)
      >>> narrow.width, dict(narrow.options)["mlp_features"]
      ((16,), 8)
      >>> scale_widths(ModelConfig("mlp", 10, (40,), width=(20, 28), depth=1), 1.0).width
      (24, 32)
    """
    checked_config(config, "scale_widths", more=True)
    _check_multiple(multiple)
    if not _finite_number(multiplier) or multiplier < 0:
        raise ValueError(
            f"multiplier={multiplier!r}: every width is multiplied by it, so expected a finite "
            f"number >= 0 (0 gives the narrowest config, every width {multiple})"
        )
    base = config.resolved()
    scaled = base
    for field in _fields(base):
        if field[0] == "option" and str(field[1]).endswith("heads"):
            continue
        step = _step(base, field, multiple)
        value = _value(base, field) * multiplier
        nearest = math.floor(value / step + 0.5)  # a tie rounds up, never down
        scaled = _with(scaled, field, max(step, nearest * step))
    return scaled


def expand(
    config: ModelConfig, budget: float, cost: str = "flops", multiple: int = 8
) -> ModelConfig:
    """The config with the largest uniform width multiplier whose cost fits ``budget``.

    Bisection over the multiplier; widths are rounded to a multiple of ``multiple``
    (never to zero). A config without widths (``logreg``) is its own expansion, if it fits.

    Raises:
      ValueError: an unknown ``cost``, a ``multiple`` that is not an int >= 1, a
        ``budget`` that is not a finite positive number (0, NaN, infinity), or even the narrowest
        config (every width ``multiple``) costs more, or does not build, or even the
        widest one searched (every width times ``2**12``) costs less, so the largest
        multiplier that fits is not found. A multiplier whose config does not build
        does not fit.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import config_cost, expand
      >>> small = ModelConfig("mlp", 10, (40,), width=20)
      >>> expand(small, config_cost(small.replace(width=64), "params"), "params").width
      (64,)
    """
    checked_config(config, "expand", more=True)
    check_cost(cost)
    _check_multiple(multiple)
    if not _finite_number(budget) or float(budget) <= 0:
        raise ValueError(f"budget={budget!r}: expected a finite positive {cost} cost to expand to")
    budget = float(budget)
    base = config.resolved()

    def fits(multiplier: float) -> bool:
        spent = _cost_or_error(scale_widths(base, multiplier, multiple), cost)
        return not isinstance(spent, str) and spent <= budget

    if not fits(0.0):
        narrowest = _cost_or_error(scale_widths(base, 0.0, multiple), cost)
        which = (
            f"narrowest config (every width {multiple})"
            if _fields(base)
            else f"config ({config.name!r} has no widths to narrow)"
        )
        raise ValueError(
            f"no width multiplier fits the {cost} budget {budget:g}: the {which} "
            + (
                f"fails to build: {narrowest}"
                if isinstance(narrowest, str)
                else f"costs {narrowest:g}"
            )
        )
    if not _fields(base):  # no width (logreg): every multiplier gives the config itself
        return base
    low, high = 0.0, 1.0
    while fits(high):
        if high >= _WIDEST:
            widest = scale_widths(base, high, multiple)
            raise ValueError(
                f"the {cost} budget {budget:g} is beyond the widest config searched (every "
                f"width times {_WIDEST}, widths {widest.widths}, costs "
                f"{config_cost(widest, cost):g}); expected a budget below that"
            )
        low, high = high, 2 * high
    for _ in range(24):
        middle = (low + high) / 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return scale_widths(base, low, multiple)


def _finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite number (a Python, NumPy or JAX scalar; not a bool
    or a string)."""
    if isinstance(value, (bool, str, bytes)):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


_WIDEST = 2**12
"""The largest width multiplier `expand` tries."""


def _cost_or_error(config: ModelConfig, cost: str) -> float | str:
    """The config's cost, or (it does not build) the error, which fits no budget."""
    try:
        return config_cost(config, cost)
    except (ValueError, TypeError) as error:
        return f"{type(error).__name__}: {error}"


@dataclasses.dataclass(frozen=True)
class Morphed:
    """The result of `once`: the shrunk variables and the expanded config.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import once
      >>> config = ModelConfig("mlp", 3, (8,), width=8)
      >>> variables = jax.jit(config.build().init)(jax.random.key(0), jnp.zeros((1, 8)))
      >>> morphed = once(config, variables, cost="params")  # every channel alive
      >>> morphed.shrunk.widths, morphed.config.width
      ({'blocks_0/Dense_0': 8}, (8,))
    """

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

    The alive channels are those strictly above ``threshold`` (`alive_channels`), adjusted so the
    model's config can express them (`expressible`); the shrunk config is then widened
    uniformly (`expand`) to ``budget`` (default: the cost of ``config``). Train the
    expanded config from scratch, as MorphNet does.

    References:
      Gordon et al., MorphNet, https://arxiv.org/abs/1711.06798 (algorithm 1).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import once
      >>> config = ModelConfig("mlp", 3, (8,), width=8)
      >>> variables = jax.jit(config.build().init)(jax.random.key(0), jnp.zeros((1, 8)))
      >>> for layer in ("stem", "blocks_0"):  # tied by the residual add
      ...     p = variables["params"][layer]["Dense_0"]
      ...     p["kernel"] = p["kernel"].at[:, 4:].set(0.0)
      >>> morphed = once(config, variables, threshold=0.5, cost="params")
      >>> morphed.shrunk.config.width, morphed.config.width
      ((4,), (8,))
    """
    checked_config(config, "once", more=True)
    model = build_model(config)
    x = jnp.zeros((2, *config.input_shape), jnp.float32)
    groups = traced_groups("once", model, variables, (x,), {})
    scores = {
        g.name: np.asarray(s)
        for g, s in zip(groups.groups, importance(groups, variables, source), strict=True)
    }
    alive = expressible(
        config, groups, alive_of(groups, variables, threshold, source, "once"), scores
    )
    shrunk = shrink(variables, alive, groups, config=config)
    assert shrunk.config is not None
    target = config_cost(config.resolved(), cost) if budget is None else budget
    return Morphed(shrunk, expand(shrunk.config, target, cost, multiple))
