"""The checks of a registered model's options, each raising a ValueError that names the
model, the option and what it takes: counts, flags, dtypes, the frame's options and the
stage widths a block can be told."""

import inspect
import numbers
from collections.abc import Callable, Collection, Mapping
from typing import Any

import flax.linen as nn

from phosjax._callables import cut_repr
from phosjax.layers._common import is_float_dtype
from phosjax.models._config import is_int
from phosjax.models._frame import POOLS
from phosjax.models._kinds import VECTOR

BlockFactory = Callable[..., nn.Module]


def factory_parameters(factory: BlockFactory) -> set[str]:
    """The keyword arguments a module class or factory accepts."""
    return set(inspect.signature(factory).parameters) - {"name", "parent"}


def check_frame_options(options: Mapping[str, Any], where: str) -> None:
    """Raises a ValueError naming the frame option (``pool``, ``dropout``) that is invalid.

    Examples:
      >>> check_frame_options({"pool": "mean", "dropout": 1.5}, "model 'mlp'")
      Traceback (most recent call last):
      ValueError: model 'mlp': option dropout must be a number in [0, 1), got 1.5
    """
    if options["pool"] not in POOLS:
        raise ValueError(
            f"{where}: option pool must be one of {POOLS}, got {cut_repr(options['pool'])}"
        )
    check_rate(options, "dropout", where)


def check_pool(kind: str, given: Mapping[str, Any], default: Any, where: str) -> None:
    """Raises a ValueError when ``given`` (a config's options) sets ``pool`` to other than
    its ``default`` for a model that views its input as a ``kind`` with no axes to pool,
    a vector: the option would change nothing (as a vector model's ``kernel_size``).

    Examples:
      >>> check_pool("vector", {"pool": "max"}, "mean", "model 'mlp'")
      Traceback (most recent call last):
      ValueError: model 'mlp': option pool 'max' would change nothing: the model views ...
    """
    pool = given.get("pool", default)
    if kind == VECTOR and pool != default:
        raise ValueError(
            f"{where}: option pool {pool!r} would change nothing: the model views its input "
            f"as a vector, which has no axes to pool (pool reduces a sequence's or an "
            f"image's); leave it out"
        )


def check_rate(options: Mapping[str, Any], key: str, where: str) -> None:
    """Raises a ValueError naming the option ``key`` (a dropout rate) of ``options`` when
    it is given but no number in ``[0, 1)``.

    Examples:
      >>> check_rate({"dropout_rate": 1.0}, "dropout_rate", "model 'transformer'")
      Traceback (most recent call last):
      ValueError: model 'transformer': option dropout_rate must be a number in [0, 1), got 1.0
    """
    rate = options.get(key, 0.0)
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(f"{where}: option {key} must be a number in [0, 1), got {cut_repr(rate)}")


def check_counts(
    defaults: Mapping[str, Any],
    given: Mapping[str, Any],
    where: str,
    nullable: Collection[str] = (),
) -> None:
    """Raises a ValueError naming a given option whose default is a count (an int >= 1: a
    kernel size, a stride, a head count) but whose value is not; ``None`` is taken for
    the options in ``nullable`` (those the block or stem itself defaults to ``None``, such
    as a transformer's ``mlp_features``: four times the width).

    Examples:
      >>> check_counts({"kernel_size": 3}, {"kernel_size": 0}, "model 'cnn1d'")
      Traceback (most recent call last):
      ValueError: model 'cnn1d': option kernel_size must be an int >= 1 (its default is 3), got 0
    """
    for key, value in given.items():
        default = defaults.get(key)
        if value is None and key in nullable:
            continue
        if is_int(default) and default >= 1 and not (is_int(value) and value >= 1):
            raise ValueError(
                f"{where}: option {key} must be an int >= 1 (its default is {default}), "
                f"got {cut_repr(value)}"
            )


def factory_flags(*factories: BlockFactory | None) -> dict[str, str]:
    """The keyword arguments of ``factories`` annotated ``bool``, ``int`` or ``float``,
    each with that annotation's name: the options whose values a config must match."""
    return {
        key: name
        for factory in factories
        if factory is not None
        for key, parameter in inspect.signature(factory).parameters.items()
        for name, kind in (("bool", bool), ("int", int), ("float", float))
        if parameter.annotation in (kind, name)
    }


def check_flags(flags: Mapping[str, str], given: Mapping[str, Any], where: str) -> None:
    """Raises a ValueError naming a given option among ``flags`` whose value does not fit
    its annotation: not a bool (``"yes"`` or ``2`` would silently read as true), not an
    int, or not a number (a block's ``rate: float`` given ``"high"`` failed only once it
    trained); ``None`` is taken for an ``int`` or ``float``.

    Examples:
      >>> check_flags({"causal": "bool"}, {"causal": "yes"}, "model 'transformer'")
      Traceback (most recent call last):
      ValueError: model 'transformer': option causal takes true or false, got 'yes'
      >>> check_flags({"rate": "float"}, {"rate": "high"}, "model 'mine'")
      Traceback (most recent call last):
      ValueError: model 'mine': option rate takes a number (float), got 'high'
    """
    for key, value in given.items():
        kind = flags.get(key)
        if kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"{where}: option {key} takes true or false, got {cut_repr(value)}")
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if value is not None and (
            (kind == "int" and not is_int(value)) or (kind == "float" and not number)
        ):
            what = "an int" if kind == "int" else "a number"
            raise ValueError(f"{where}: option {key} takes {what} ({kind}), got {cut_repr(value)}")


_OPTIONAL_FLOAT = (float | None, "float | None", "None | float", "Optional[float]")
"""A ``float`` annotation that also takes ``None``, as a type or as the text of one."""


def float_options(defaults: Mapping[str, Any], *factories: BlockFactory | None) -> set[str]:
    """The options whose default is a float or that ``factories`` annotate ``float`` (or
    ``float | None``): an int given for one is that float (``dropout: 0`` is ``0.0``), so
    that a config spelling it either way is one model, of one id in a bench.

    Examples:
      >>> def block(features: int, rate: float = 0.5, eps: float | None = None): ...
      >>> sorted(float_options({"dropout": 0.0, "pool": "mean"}, block))
      ['dropout', 'eps', 'rate']
    """
    flags = factory_flags(*factories)
    floats = {key for key, value in defaults.items() if isinstance(value, float)}
    optional = {
        key
        for factory in factories
        if factory is not None
        for key, parameter in inspect.signature(factory).parameters.items()
        if parameter.annotation in _OPTIONAL_FLOAT
    }
    return floats | optional | {key for key, kind in flags.items() if kind == "float"}


def as_floats(options: Mapping[str, Any], floats: Collection[str], where: str) -> dict[str, Any]:
    """``options`` with an int among ``floats`` (`float_options`) as that float; one
    beyond a float's range is a ValueError naming it, and ``where``.

    Examples:
      >>> as_floats({"rate": 0, "depth": 2, "on": True}, {"rate", "on"}, "model 'm'")
      {'rate': 0.0, 'depth': 2, 'on': True}
      >>> as_floats({"rate": 10**400}, {"rate"}, "model 'm'")
      Traceback (most recent call last):
      ValueError: model 'm': option rate must be a float within float64's range (about
      1.8e308), got 10000000000000000000000000000000000000000000000000000000000…
    """
    as_float = {}
    for key, value in options.items():
        if key in floats and is_int(value):
            try:
                value = float(value)
            except OverflowError:
                raise ValueError(
                    f"{where}: option {key} must be a float within float64's range (about "
                    f"1.8e308), got {cut_repr(value)}"
                ) from None
        as_float[key] = value
    return as_float


DTYPES = ("float32", "bfloat16", "float16", "float64")
"""The dtypes a model's ``dtype`` and ``param_dtype`` options take (a floating dtype)."""


def factory_required(factory: BlockFactory) -> list[str]:
    """The arguments ``factory`` cannot be called without (those with no default)."""
    return [
        key
        for key, parameter in inspect.signature(factory).parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and key not in ("name", "parent")
    ]


def factory_defaults(*factories: BlockFactory | None) -> dict[str, Any]:
    """The default values of ``factories``' keyword arguments (the first factory's first)."""
    defaults: dict[str, Any] = {}
    for factory in reversed([f for f in factories if f is not None]):
        for key, parameter in inspect.signature(factory).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults[key] = parameter.default
    return defaults


def check_dtypes(defaults: Mapping[str, Any], given: Mapping[str, Any], where: str) -> None:
    """Raises a ValueError naming a given option whose name ends in ``dtype`` (``dtype``,
    ``param_dtype``) but whose value is no floating dtype (``None`` only where that is its
    default), before numpy's bare "data type not understood" when the model is built.

    Examples:
      >>> check_dtypes({}, {"param_dtype": "float16x"}, "model 'transformer'")
      Traceback (most recent call last):
      ValueError: model 'transformer': option param_dtype must be a floating dtype, one of ...
    """
    for key, value in given.items():
        if not key.endswith("dtype") or (value is None and defaults.get(key, 0) is None):
            continue
        if not is_float_dtype(value):
            none = " or None" if defaults.get(key, 0) is None else ""
            raise ValueError(
                f"{where}: option {key} must be a floating dtype, one of {DTYPES}{none}, "
                f"got {cut_repr(value)}"
            )


def check_stage_widths(block: BlockFactory, widths: tuple[int, ...], where: str) -> None:
    """Raises a ValueError when the stages differ in width but the block is told neither
    its width (``features``) nor where a stage starts (``downsample``): every block is then
    built alike, so no stage could change the width.

    Examples:
      >>> check_stage_widths(lambda: None, (8, 16), "model 'm'")
      Traceback (most recent call last):
      ValueError: model 'm': its block <lambda> takes no features, so every stage keeps ...
    """
    if len(set(widths)) > 1 and not {"features", "downsample"} & factory_parameters(block):
        name = getattr(block, "__name__", type(block).__name__)
        raise ValueError(
            f"{where}: its block {name} takes no features, so every stage keeps one width: "
            f"width={widths} would fail when the model runs; give width=({widths[0]},)"
        )
