"""`ModelConfig`: the typed, hashable, JSON-friendly description of one model."""

import dataclasses
import functools
import numbers
from collections.abc import Mapping
from typing import Any, TypeGuard

import flax.linen as nn
import jax
import numpy as np

from phosjax._callables import a_type, cut_repr
from phosjax._nearest import fields_checked, no_field
from phosjax.core._numbers import concrete_number
from phosjax.data._checks import shape_sizes

Width = int | tuple[int, ...]


def _frozen(value: Any, where: str) -> Any:
    """Lists (from JSON or YAML) become tuples so the value is hashable, and numpy scalars
    Python ones (which JSON writes and the checks take), as do arrays (numpy's, JAX's:
    a 0-d one a number, others tuples); a mapping, which cannot be hashed, is an error
    naming ``where`` (the config and the option).

    Examples:
      >>> _frozen(np.array([[1, 2]]), "option sizes"), _frozen(np.float32(0.5), "option rate")
      (((1, 2),), 0.5)
    """
    if _held(value):
        value = np.asarray(value).tolist()
    if isinstance(value, list | tuple):
        return tuple(_frozen(item, where) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        raise TypeError(
            f"{where} must not be a mapping (an option is a number, a string, a bool or a "
            f"list of them), got {cut_repr(value)}"
        )
    return value


def is_int(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is an integer, and not a bool (``True`` is an ``int`` in Python).

    Examples:
      >>> is_int(3), is_int(True), is_int("3")
      (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A Python int for any integer (numpy's too, and a 0-d numpy or JAX array of one,
    which JSON cannot write); the rest as is, for `ModelSpec.resolve` to check.

    Examples:
      >>> import jax.numpy as jnp
      >>> _plain(np.int64(3)), _plain(jnp.int32(3)), _plain(jnp.float32(3))
      (3, 3, 3.0)
    """
    value = concrete_number(value)
    return int(value) if is_int(value) else value


def _held(value: Any) -> bool:
    """Whether ``value`` is a numpy or JAX array whose numbers can be read: not one
    `jax.jit` traces (`ModelSpec.resolve` names it, as no size it can read).

    Examples:
      >>> import jax.numpy as jnp
      >>> _held(jnp.int32(3)), jax.jit(lambda v: jnp.int32(_held(v)))(jnp.int32(3)).item()
      (True, 0)
    """
    return isinstance(value, np.ndarray | jax.Array) and not isinstance(value, jax.core.Tracer)


def plain_width(value: Any) -> Any:
    """A ``width`` as given to a config or to `register_model`: a tuple of Python ints
    (one per stage) for a list, tuple, range or 1-D numpy or JAX array, a Python int for
    any integer (a 0-d array too); anything else as is, for `ModelSpec.resolve` to check.

    Examples:
      >>> import jax.numpy as jnp
      >>> plain_width(np.array([16, 32])), plain_width(jnp.array([16, 32])), plain_width(8)
      ((16, 32), (16, 32), 8)
    """
    if _held(value):
        value = np.asarray(value).tolist()  # Python numbers, nested lists for 2-D (refused)
    if isinstance(value, list | tuple | range):
        return tuple(_plain(w) for w in value)
    return _plain(value)


def _shape(value: Any, name: str) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive Python ints, read as `phosjax.data` reads
    one (`shape_sizes`: an int is one axis; a list, range or 1-D numpy array a tuple)."""
    shape = shape_sizes(value)
    if not isinstance(shape, tuple) or not all(is_int(n) and n >= 1 for n in shape):
        raise ValueError(
            f"ModelConfig {name!r}: input_shape must be one example's shape, positive ints "
            f"such as (40,) or (8, 8, 1), got {cut_repr(value)}"
        )
    return shape


def _dtype_named(key: str, value: Any) -> Any:
    """A ``dtype`` option's value (its key ends in ``dtype``) given as a numpy dtype or a
    scalar type (``jnp.bfloat16``, ``np.dtype("float16")``) as its name, as YAML and JSON
    give it, so that the config is JSON-friendly and equals the one naming it; Python's
    own types (``float``: float32 or float64 by JAX's settings) and the rest as they are.

    Examples:
      >>> import jax.numpy as jnp
      >>> _dtype_named("param_dtype", jnp.bfloat16), _dtype_named("dtype", float)
      ('bfloat16', <class 'float'>)
    """
    typed = isinstance(value, type) and value not in (bool, int, float, complex)
    if not key.endswith("dtype") or not (typed or isinstance(value, np.dtype)):
        return value
    try:
        return np.dtype(value).name
    except TypeError:  # no dtype: for the model's checks to name
        return value


def _is_pair(item: Any) -> bool:
    return isinstance(item, list | tuple) and len(item) == 2


def _options(value: Any, name: str) -> tuple[tuple[str, Any], ...]:
    """``options`` (a mapping, ``(key, value)`` pairs, or ``None`` for none, as YAML reads
    an empty ``options:``) as hashable pairs sorted by key."""
    if value is None:
        items: Any = ()
    elif isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list | tuple) and all(_is_pair(item) for item in value):
        items = value
    else:
        raise ValueError(
            f"ModelConfig {name!r}: options must be a mapping such as {{'pool': 'max'}} or "
            f"(key, value) pairs such as (('pool', 'max'),), got {cut_repr(value)}"
        )
    frozen = (
        (str(k), _frozen(_dtype_named(str(k), v), f"ModelConfig {name!r}: option {k}"))
        for k, v in items
    )
    pairs = tuple(sorted(frozen, key=lambda kv: kv[0]))
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"ModelConfig {name!r}: an option is given twice in {keys}")
    return pairs


def _thawed(value: Any) -> Any:
    return [_thawed(item) for item in value] if isinstance(value, tuple) else value


def _as_option(name: str) -> str:
    """Where ``name``, a keyword that is no `ModelConfig` field, goes if a model option."""
    return f" (an option such as {name!r} goes in options={{{name!r}: ...}})"


@functools.partial(fields_checked, otherwise=_as_option)
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which registered model to build, for which data, with which explicit sizes.

    The config is frozen and hashable (usable as a ``jit`` static argument or a dict
    key) and round-trips through JSON with `to_dict` / `from_dict`. Lists are accepted
    wherever tuples are expected, and ``options`` may be given as a dict; both are
    normalized (options sorted by key), so equal configs compare and hash equal.

    Attributes:
      name: a registered model name (see `registered_models`).
      num_classes: the number of logits the model returns.
      input_shape: the shape of ONE example, e.g. ``(40,)`` or ``(8, 8, 1)`` (an int
        is one axis: ``40`` is ``(40,)``).
      depth: blocks per stage; ``None`` means the model's default.
      width: channels per stage (an int is one stage); ``None`` means the default.
      options: model-specific extras as ``(key, value)`` pairs, e.g.
        ``(("pool", "max"),)``, or a dict (``None``: none); see the model's registered
        option defaults.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> config = ModelConfig("mlp", num_classes=10, input_shape=[40], options={"pool": "mean"})
      >>> config.input_shape, config.options
      ((40,), (('pool', 'mean'),))
      >>> ModelConfig.from_dict(config.to_dict()) == config
      True
      >>> config.resolved().width
      (100,)
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    depth: int | None = None
    width: Width | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:  # YAML's `name:` (None), a number
            raise ValueError(
                f"ModelConfig name must be a registered model's name, such as 'mlp', got "
                f"{cut_repr(self.name)}"
            )
        object.__setattr__(self, "options", _options(self.options, self.name))
        num_classes = _plain(self.num_classes)
        if not is_int(num_classes) or num_classes < 1:
            raise ValueError(
                f"ModelConfig {self.name!r}: num_classes must be a positive int, "
                f"got {cut_repr(self.num_classes)}"
            )
        object.__setattr__(self, "num_classes", num_classes)
        object.__setattr__(self, "input_shape", _shape(self.input_shape, self.name))
        object.__setattr__(self, "depth", _plain(self.depth))
        object.__setattr__(self, "width", plain_width(self.width))

    @property
    def widths(self) -> tuple[int, ...] | None:
        """``width`` as a tuple (one entry per stage), or ``None`` for the default.

        Examples:
          >>> config = ModelConfig("mlp", 10, (40,))
          >>> config.widths, config.replace(width=64).widths, config.replace(width=[64, 32]).widths
          (None, (64,), (64, 32))
        """
        return (self.width,) if isinstance(self.width, int) else self.width

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed, e.g. ``config.replace(width=(64, 32))``; a key
        that is no field is the constructor's TypeError, naming the fields (and ``options``
        for an option).

        Examples:
          >>> ModelConfig("mlp", 10, (40,)).replace(dropout=0.1)
          Traceback (most recent call last):
          TypeError: ModelConfig has no field 'dropout' (an option such as 'dropout' goes in
          options={'dropout': ...}). Its fields: name, num_classes, input_shape, depth, ...
        """
        return dataclasses.replace(self, **changes)

    def resolved(self) -> "ModelConfig":
        """This config with every default filled in: depth, width (a tuple) and options.

        The result builds exactly the same model; record it to keep the explicit sizes.

        Examples:
          >>> ModelConfig("mlp", 10, (40,)).resolved()
          ModelConfig(name='mlp', num_classes=10, input_shape=(40,), depth=1, width=(100,),
                      options=(('dropout', 0.0), ('input_kind', None), ('pool', 'mean')))
        """
        from phosjax.models._registry import model_spec

        return model_spec(self.name).resolve(self)

    def build(self) -> nn.Module:
        """The Flax module this config describes (same as `build_model`).

        Examples:
          >>> import jax, jax.numpy as jnp
          >>> model = ModelConfig("mlp", 10, (40,), width=16).build()
          >>> x = jnp.ones((2, 40))
          >>> model.apply(model.init(jax.random.key(0), x), x).shape  # (batch, classes)
          (2, 10)
        """
        from phosjax.models._registry import build_model

        return build_model(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (tuples become lists, options a dict).

        Examples:
          >>> ModelConfig("mlp", 10, (40,), width=(64, 32), options={"pool": "max"}).to_dict()
          {'name': 'mlp', 'num_classes': 10, 'input_shape': [40], 'depth': None,
           'width': [64, 32], 'options': {'pool': 'max'}}
        """
        width = self.width if isinstance(self.width, int | None) else list(self.width)
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "depth": self.depth,
            "width": width,
            "options": {key: _thawed(value) for key, value in self.options},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """The inverse of `to_dict`; unknown or missing keys are an error that lists them.

        Examples:
          >>> ModelConfig.from_dict({"name": "mlp", "num_classes": 10, "input_shape": [40]})
          ModelConfig(name='mlp', num_classes=10, input_shape=(40,), depth=None, width=None,
                      options=())
          >>> ModelConfig.from_dict({"name": "mlp", "num_classes": 10, "input_shape": [40],
          ...                        "widht": 64})
          Traceback (most recent call last):
          ValueError: ModelConfig has no field 'widht'. Did you mean 'width'? Its fields: name,
          num_classes, input_shape, depth, width, options.
          >>> ModelConfig.from_dict(None)  # an empty YAML file
          Traceback (most recent call last):
          TypeError: ModelConfig.from_dict takes a mapping of its fields, as to_dict gives, got
          None (a NoneType); e.g. {'name': 'mlp', 'num_classes': 10, 'input_shape': [40]}
        """
        if not isinstance(data, Mapping):  # an empty YAML file (None), a list: iterated
            raise TypeError(
                f"ModelConfig.from_dict takes a mapping of its fields, as to_dict gives, "
                f"got {cut_repr(data)} ({a_type(data)}); e.g. {{'name': 'mlp', 'num_classes': 10, "
                "'input_shape': [40]}"
            )
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known), key=str)  # YAML's `1:` or `on:`: not a str
        if unknown:  # the constructor's words (`fields_checked`), as a ValueError
            raise ValueError(no_field(cls.__name__, unknown, known, _as_option))
        required = [
            field.name
            for field in dataclasses.fields(cls)
            if field.default is dataclasses.MISSING and field.name not in data
        ]
        if required:
            raise ValueError(f"ModelConfig needs the field(s) {required}; got {sorted(data)}")
        return cls(**data)


def checked_config(config: Any, caller: str, more: bool = False, keyword: str = "") -> ModelConfig:
    """``config`` if it is a `ModelConfig`; anything else (a model's name alone, which
    says neither the number of classes nor the input shape; a dict) is a TypeError
    naming ``caller`` and what to pass (``more``: the call takes more arguments;
    ``keyword``: the config is passed as that keyword argument, after others).

    Examples:
      >>> checked_config("resnet", "build_model")
      Traceback (most recent call last):
      TypeError: build_model takes a ModelConfig, got 'resnet' (a str): pass ...
      >>> checked_config(nn.Dense(3), "param_count")
      Traceback (most recent call last):
      TypeError: param_count takes a ModelConfig, got a Dense: pass ...
    """
    if isinstance(config, ModelConfig):
        return config
    example = f"{config!r}" if isinstance(config, str) else "'resnet'"
    mapping = " (a dict: ModelConfig.from_dict(it))" if isinstance(config, Mapping) else ""
    text = repr(config)  # a module's spans many lines: its type says enough
    shown = f"{text} ({a_type(config)})" if len(text) <= 80 and "\n" not in text else a_type(config)
    given = f"ModelConfig({example}, num_classes=10, input_shape=(40,))"
    call = f"..., {keyword}={given}" if keyword else f"{given}{', ...' if more else ''}"
    raise TypeError(
        f"{caller} takes a ModelConfig{f' as {keyword}=' if keyword else ''}, got {shown}: "
        f"pass {caller}({call}){mapping}."
    )
