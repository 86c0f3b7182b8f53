"""The model registry: `register_model`, `build_model`, `registered_models`, plugins."""

import contextlib
import dataclasses
import importlib
import importlib.metadata
import inspect
import math
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax._callables import a_type, cut_repr
from phosjax._nearest import did_you_mean
from phosjax.layers._common import EVAL_FLAGS, TRAIN_FLAGS
from phosjax.models._config import (
    ModelConfig,
    _dtype_named,
    checked_config,
    is_int,
    plain_width,
)
from phosjax.models._frame import Frame
from phosjax.models._kinds import IMAGE, KINDS, SEQUENCE, VECTOR, choose_kind, own_kinds
from phosjax.models._options import (
    BlockFactory,
    as_floats,
    check_counts,
    check_dtypes,
    check_flags,
    check_frame_options,
    check_pool,
    check_stage_widths,
    factory_defaults,
    factory_flags,
    factory_parameters,
    factory_required,
    float_options,
)

ENTRY_POINT_GROUP = "phosjax.models"
"""Packages list modules here (``[project.entry-points."phosjax.models"]``) whose import
registers models; they are imported the first time a name is not found or the registry
is listed."""

FRAME_OPTIONS = {"input_kind": None, "pool": "mean", "dropout": 0.0}
"""Options every frame model takes, with their defaults (see `Frame`)."""

_HEAD_OPTIONS = {"dtype": None, "param_dtype": jnp.float32}
"""Options a frame model without stem and blocks (a head alone, ``logreg``) takes, with
their defaults: its head's dtypes (see `Frame`). A model with a stem or blocks takes them
when those do; its head stores its params in ``param_dtype`` and computes in what its
features and params promote to."""

_FRAME_ARGUMENTS = ("features", "downsample", "name", "parent")


def _construct(
    factory: BlockFactory, features: int, options: Mapping[str, Any], **extra: Any
) -> nn.Module:
    """``factory`` called with the options it accepts; frame options go only to the frame."""
    accepted = factory_parameters(factory) - set(FRAME_OPTIONS)
    given = {**options, **extra, "features": features}
    return factory(**{key: value for key, value in given.items() if key in accepted})


_NONE = object()
"""No default: a factory's argument that a config must give."""


def _same(value: Any, default: Any, key: str) -> bool:
    """Whether a config's option ``key`` of ``value`` is ``default`` (a factory's own,
    a dtype by its name): by type too (``True`` is no ``1``)."""
    default = _dtype_named(key, default)
    return type(value) is type(default) and bool(value == default)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How a registered name becomes a module (see `register_model` for the fields).

    Examples:
      >>> from phosjax.models import model_spec
      >>> spec = model_spec("mlp")
      >>> spec.name, spec.depth, spec.width, spec.input_kinds
      ('mlp', 1, (100,), ('vector',))
    """

    name: str
    block: BlockFactory | None
    stem: BlockFactory | None
    build: Callable[[ModelConfig], nn.Module] | None
    depth: int
    width: tuple[int, ...]
    input_kinds: tuple[str, ...] | None
    options: tuple[tuple[str, Any], ...]
    module: str
    check: Callable[[ModelConfig], None] | None = None

    def accepted_options(self) -> set[str]:
        """The option keys this model reads.

        Examples:
          >>> sorted(model_spec("mlp").accepted_options())
          ['dropout', 'dtype', 'input_kind', 'param_dtype', 'pool']
        """
        accepted = set(dict(self.options)) | set(self._head_options())
        if self.build is None:
            accepted |= set(FRAME_OPTIONS)
            for factory in (self.block, self.stem):
                if factory is not None:
                    accepted |= factory_parameters(factory) - set(_FRAME_ARGUMENTS)
        return accepted

    def without_defaults_given(self, config: ModelConfig) -> ModelConfig:
        """``config`` (resolved) less the options it gives at the default of the block,
        stem or head that takes them, which `resolve` leaves out where not given: the same
        model as without them (``causal: false`` is the transformer's own; ``scale: 1`` is
        a block's ``scale: float = 1``, as `resolve` reads it: ``1.0``), so that a bench
        gives both one id.

        Examples:
          >>> from phosjax.models import ModelConfig
          >>> spec, plain = model_spec("transformer"), ModelConfig("transformer", 10, (40,))
          >>> alone = spec.resolve(plain)
          >>> given = spec.resolve(plain.replace(options={"causal": False}))
          >>> spec.without_defaults_given(given) == alone, given == alone
          (True, False)
        """
        if self.build is None:
            registered = {**FRAME_OPTIONS, **dict(self.options)}
            built = (self.block if config.depth else None, self.stem)  # depth 0: no blocks
            factories = [f for f in built if f is not None]
            floats = float_options(factory_defaults(*factories), *factories)  # as resolved
            takers = [
                (
                    factory_parameters(f),
                    as_floats(factory_defaults(f), floats, f"model {self.name!r}"),
                )
                for f in factories
            ]
            head = {"param_dtype": _HEAD_OPTIONS["param_dtype"], **self._head_options()}
            takers.append((set(head), head))  # its params in param_dtype, whatever blocks take
            config = config.replace(
                options=[
                    (key, value)
                    for key, value in config.options
                    if key in registered
                    or not any(key in taken for taken, _ in takers)
                    or any(
                        key in taken and not _same(value, defaults.get(key, _NONE), key)
                        for taken, defaults in takers
                    )
                ]
            )
        return config

    def _head_options(self) -> dict[str, Any]:
        """`_HEAD_OPTIONS` for a frame model that is a head alone (no stem, no blocks),
        else none."""
        alone = self.build is None and self.block is None and self.stem is None
        return _HEAD_OPTIONS if alone else {}

    def resolve(self, config: ModelConfig) -> ModelConfig:
        """``config`` with the defaults filled in and checked (see `ModelConfig.resolved`),
        by the model's own ``check`` too (options that must fit each other or the input
        shape), so that a bench refuses them when it plans.

        Examples:
          >>> from phosjax.models import ModelConfig
          >>> model_spec("mlp").resolve(ModelConfig("mlp", 10, (40,), options={"pool": "min"}))
          Traceback (most recent call last):
          ValueError: model 'mlp': option pool must be one of ('mean', 'max', 'flatten',
          'last'), got 'min'
        """
        resolved = self._resolve_defaults(config)
        if self.build is None:  # not when registered: a config's options may give them
            self._check_required(dict(resolved.options), resolved.depth or 0)
        if self.check is not None:
            self.check(resolved)
        return resolved

    def _resolve_defaults(self, config: ModelConfig) -> ModelConfig:
        """`resolve` without the model's ``check``: the checks every model gets."""
        depth = self.depth if config.depth is None else config.depth
        widths = self.width if config.widths is None else config.widths
        where = f"model {self.name!r}"
        if not is_int(depth) or depth < 0:
            raise ValueError(f"{where}: depth must be an int >= 0, got {cut_repr(depth)}")
        if self.build is None and self.block is None and depth:
            raise ValueError(f"{where} has no blocks: depth must be 0, got {depth}")
        if not isinstance(widths, tuple) or any(not is_int(w) or w < 1 for w in widths):
            raise ValueError(
                f"{where}: width must be an int >= 1 or a list of them (one per stage), "
                f"got {cut_repr(widths if config.width is None else config.width)}"
            )
        if depth and not widths:
            raise ValueError(f"{where}: depth {depth} needs at least one stage width")
        if self.build is None and self.stem is not None and not widths:
            raise ValueError(
                f"{where}: its stem needs a width (the first stage's), got width=(); "
                "give width=(w,) in the config or when registering"
            )
        if self.build is None:
            widths = self._read_widths(depth, widths, given=config.widths is not None)
        if self.block is not None and depth:
            check_stage_widths(self.block, widths, where)
        unknown = sorted(set(dict(config.options)) - self.accepted_options())
        if unknown:
            accepted = sorted(self.accepted_options())
            hint = did_you_mean(unknown, accepted)
            raise ValueError(f"{where} has no option(s) {unknown}; it takes {accepted}{hint}")
        defaults = {**(FRAME_OPTIONS if self.build is None else {}), **dict(self.options)}
        options = {**defaults, **dict(config.options)}
        signature = {**factory_defaults(self.block, self.stem), **self._head_options()}
        nullable = {key for key, value in signature.items() if value is None}
        check_counts(defaults, dict(config.options), where, nullable)
        if self.build is None:
            check_frame_options(options, where)
            kind = self._input_kind(config.input_shape, options["input_kind"])
            check_pool(kind, dict(config.options), defaults["pool"], where)
            flags = factory_flags(self.block, self.stem)
            own = {key: kind for key, kind in flags.items() if key not in FRAME_OPTIONS}
            check_flags(own, dict(config.options), where)
        check_dtypes({**signature, **defaults}, dict(config.options), where)
        # a count's int default takes only ints (check_counts): they stay ints
        counts = {key for key, value in defaults.items() if is_int(value) and value >= 1}
        floats = float_options({**signature, **defaults}, self.block, self.stem) - counts
        return config.replace(depth=depth, width=widths, options=as_floats(options, floats, where))

    def _check_required(self, options: Mapping[str, Any] | None, depth: int) -> None:
        """Raises a ValueError naming an argument the block or stem needs (no default) that
        neither the frame nor ``options`` gives, before the bare TypeError of building it;
        ``options`` None (registration, before any config): only one no options can give."""
        given = set(options or ()) - set(FRAME_OPTIONS) | {"features"}
        for role, factory, frame_gives in (
            ("block", self.block if depth else None, given | {"downsample"}),
            ("stem", self.stem, given),
        ):
            missing = (
                [k for k in factory_required(factory) if k not in frame_gives] if factory else []
            )
            named = f"model {self.name!r}: its {role} {getattr(factory, '__name__', factory)!r}"
            kept = [k for k in missing if k in FRAME_OPTIONS]
            if kept:  # options cannot give it: `_construct` passes frame options to the frame only
                raise ValueError(
                    f"{named} needs {', '.join(kept)}, which the frame keeps for itself (it "
                    f"passes none of {', '.join(FRAME_OPTIONS)} on); give it a default in the "
                    f"{role}, or rename it"
                )
            if missing and options is not None:
                raise ValueError(
                    f"{named} needs {', '.join(missing)}, which neither the frame gives (only "
                    f"features: the stage's width) nor the config's options; give "
                    f"options={{{missing[0]!r}: ...}}, or rename it features, or give it a "
                    f"default in the {role} or in register_model(..., options=...)"
                )

    def _read_widths(self, depth: int, widths: tuple[int, ...], given: bool) -> tuple[int, ...]:
        """The stage widths a frame model of ``depth`` reads: all of them with blocks, else
        only its stem's (the first) or none. Unread widths a config ``given`` them are an
        error (the model would silently ignore them); unread defaults are dropped."""
        read = widths if depth else widths[: int(self.stem is not None)]
        if given and read != widths:
            readers = "only its stem reads a width" if read else "it reads no width"
            raise ValueError(
                f"model {self.name!r}: with depth 0 (no blocks) {readers}, so width="
                f"{widths} would be ignored; give width={read}"
                + ("" if self.block is None else " or a depth >= 1")
            )
        return read

    def _input_kind(self, input_shape: tuple[int, ...], forced: str | None) -> str:
        """The kind a frame model views its input as (`choose_kind`); raises a ValueError
        when it takes no kind this input can be viewed as, or not the ``forced`` one."""
        supported = self.input_kinds or own_kinds(input_shape, self.name)
        return choose_kind(input_shape, supported, forced, self.name)

    def make(self, config: ModelConfig) -> nn.Module:
        """Builds the module for ``config`` (`ModelConfig.build` calls it).

        Examples:
          >>> from phosjax.models import ModelConfig
          >>> config = ModelConfig("mlp", 10, (40,), width=16)
          >>> model_spec("mlp").make(config) == config.build()
          True
        """
        resolved = self.resolve(config)
        if self.build is not None:
            return checked_build(self.build(resolved), self.name)
        options = dict(resolved.options)
        widths, depth = resolved.widths or (), resolved.depth or 0
        kind = self._input_kind(config.input_shape, options["input_kind"])
        stem = None if self.stem is None else _construct(self.stem, widths[0], options)
        blocks = tuple(
            _construct(self.block, width, options, downsample=stage > 0 and index == 0)
            for stage, width in enumerate(widths)
            for index in range(depth)
            if self.block is not None
        )
        return Frame(
            num_classes=config.num_classes,
            input_shape=config.input_shape,
            input_kind=kind,
            widths=widths,
            depth=depth,
            blocks=blocks,
            stem=stem,
            pool=options["pool"],
            dropout=options["dropout"],
            dtype=options.get("dtype") if self._head_options() else None,
            param_dtype=options.get("param_dtype", jnp.float32),
        )


def _call_parameters(module: nn.Module) -> list[inspect.Parameter]:
    return list(inspect.signature(module.__call__).parameters.values())


def _takes_train(module: nn.Module) -> bool:
    parameters = _call_parameters(module)
    return any(p.name == "train" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _other_train_flag(module: nn.Module) -> str | None:
    """The train flag other than ``train`` (`TRAIN_FLAGS`: a block's, which a model's call
    does not take) that ``module``'s ``__call__`` takes; None if none."""
    return next((p.name for p in _call_parameters(module) if p.name in TRAIN_FLAGS), None)


def checked_build(module: Any, name: str) -> nn.Module:
    """``module``, which a model's ``build`` returned, if the bench, the engine and morph
    can call it: a Flax module that takes ``train`` (they call ``apply(v, x, train=...)``).

    Raises:
      TypeError: naming the model, for anything else.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"model {name!r}: its build returned {cut_repr(module)}, not a Flax module")
    if not _takes_train(module):
        flag = _other_train_flag(module)
        if flag is None:
            takes, fix = "no train argument", "add `train: bool = False` to it"
        elif flag in EVAL_FLAGS:  # true in evaluation: not train's value
            takes = f"{flag!r}, not 'train'"
            fix = f"take `train: bool = False` in its place ({flag} is `not train`)"
        else:
            takes, fix = f"{flag!r}, not 'train'", f"rename {flag!r} to 'train'"
        raise TypeError(
            f"model {name!r}: its build returned {type(module).__name__}, whose __call__ "
            f"takes {takes}; a model is called as model(x, train=...): {fix}"
        )
    return module


_REGISTRY: dict[str, ModelSpec] = {}
_LOADED_ENTRY_POINTS: set[str] = set()
_RUN_BY: dict[str, str] = {}
"""Each registered name's module whose import registered it (`_running_module`): the one
whose import, run again, registers it again (not ``spec.module``, a helper's maybe)."""


def register_model(
    name: str,
    block: BlockFactory | None = None,
    *,
    stem: BlockFactory | None = None,
    build: Callable[[ModelConfig], nn.Module] | None = None,
    depth: int = 1,
    width: int | Sequence[int] = 32,
    input_kinds: str | Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    check: Callable[[ModelConfig], None] | None = None,
) -> ModelSpec:
    """Registers a model under ``name``, so that ``ModelConfig(name, ...)`` builds it.

    A *frame model* plugs ``block`` (and optionally ``stem``) into the standard `Frame`:
    the input is viewed as a vector, sequence or image, the stem maps it to the first
    stage's width, ``depth`` blocks run per stage, then pooling and ``Dense(num_classes)``.
    ``block`` is any Flax module class or factory that accepts ``features`` (the stage's
    width) and returns a module called with the input and, found from its signature,
    ``train=train`` (``training``, ``is_training`` alike), ``deterministic=not train``
    or ``use_running_average=not train`` (Flax's `Dropout`, `BatchNorm`); any other
    optional parameter is left at its default. If it also accepts ``downsample``, the first block
    of every stage after the first gets ``downsample=True``. Config options whose names
    match the block's or stem's other arguments are passed to them (to an argument
    annotated ``bool``, only a bool); ``input_kind``, ``pool`` and ``dropout`` go only to
    the frame (a block's own ``dropout`` keeps its default; a ``pool`` other than the
    default, which would change nothing where the input is viewed as a vector, is refused
    there). A ``param_dtype`` option
    the block or stem takes goes to the frame's head too, so every param is stored in it;
    a frame model with neither block nor stem (a head alone) takes ``dtype`` and
    ``param_dtype`` for its head (see `Frame`).

    Alternatively ``build`` takes the resolved `ModelConfig` and returns any Flax module
    called as ``module(x, train=False)`` that returns the logits; it reads the options
    declared in ``options``.

    Args:
      name: the model's name; registering a name twice is an error.
      block: the block of a frame model (``None``: no blocks, ``depth`` must be 0).
      stem: an optional module factory taking ``features``, run before the blocks.
      build: a free-form builder, instead of ``block``/``stem``.
      depth: the default number of blocks per stage.
      width: the default width per stage (an int is one stage; a list, tuple or numpy
        array gives one per stage, as a config's ``width``); ``()``: none, so a config
        of a model with blocks or a stem must give its width.
      input_kinds: the kinds the blocks take (``"vector"``, ``"sequence"``,
        ``"image"``; a string is one kind): the input's own kind if listed, else the
        first listed that can view it (see `choose_kind`); ``None`` takes whatever the
        input shape is (a volume, of 4 axes or more: a sequence, or a vector where the
        config's ``input_kind`` asks for one; see `own_kinds`); an empty list is an error.
      options: default option values (the keys the model reads beyond the arguments;
        of a frame model, none of ``features``, ``downsample``, ``name``, ``parent``,
        which the frame sets).
        An option whose default is an int >= 1 is a count: a config must give it one
        (or ``None`` where the block or stem itself defaults to ``None``).
      check: called with each resolved `ModelConfig` (its options filled in): raises a
        ValueError, naming the model and the option, for options that do not fit each
        other or ``input_shape`` (a head count that does not divide the width), so that
        they are refused when a config resolves (a bench plans), not when the model runs.

    Returns:
      The registered `ModelSpec`.

    Raises:
      ValueError: ``name`` is taken, a frame model's option is one the frame sets
        (named), or the arguments do not make a model (checked here, by resolving a
        config with the defaults; ``name`` is then left free).
      TypeError: ``name`` is not a non-empty string, ``block``, ``stem`` or
        ``build`` is not callable or is a module instance (give its class), or an
        option name is not a non-empty string.

    Examples:
      >>> import flax.linen as nn
      >>> from phosjax.models import ModelConfig, register_model
      >>> class Scale(nn.Module):
      ...     features: int
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return x * self.param("scale", nn.initializers.ones, (self.features,))
      >>> _ = register_model("doc_scale", Scale, stem=nn.Dense, width=8)
      >>> ModelConfig("doc_scale", num_classes=3, input_shape=(5,)).build().widths
      (8,)
      >>> register_model("doc_blockless")  # no block, yet the default depth is 1
      Traceback (most recent call last):
      ValueError: register_model('doc_blockless', ...): ... has no blocks: depth must be 0, got 1
      >>> script = {**globals(), "__name__": "__main__"}  # a script's or notebook's code
      >>> exec('register_model("doc_twice", Scale, width=8)', script)
      >>> exec('register_model("doc_twice", Scale, width=8)', script)  # a cell run again
      Traceback (most recent call last):
      ValueError: model 'doc_twice' is already registered (by __main__); pick another name.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_model: name must be a non-empty string, got {cut_repr(name)}")
    caller = inspect.currentframe()
    caller = caller.f_back if caller else None
    module = caller.f_globals.get("__name__", "?") if caller else "?"
    running = _running_module(caller, module)
    if name in _REGISTRY:
        by = _RUN_BY.get(name, "")
        failed = (
            f"if an import of {by} failed after registering it (a plain import is not "
            f"undone), import it with phosjax.models.import_models({by!r}), which drops "
            "what a failed import left and undoes its own; else "
            if by != "__main__" and (by not in sys.modules or by == running)
            else ""  # a script or notebook is run, not imported: no import to redo
        )
        raise ValueError(
            f"model {name!r} is already registered (by {_REGISTRY[name].module}); "
            f"{failed}pick another name."
        )
    if (block is not None or stem is not None) and build is not None:
        raise ValueError(f"model {name!r}: give either block/stem or build, not both")
    if check is not None and not callable(check):
        raise TypeError(
            f"register_model({name!r}, ...): check must be a function of the resolved "
            f"ModelConfig (or None), got {cut_repr(check)}"
        )
    for argument, value in (("block", block), ("stem", stem), ("build", build)):
        if value is not None and not callable(value):
            raise TypeError(
                f"register_model({name!r}, ...): {argument} must be a Flax module class or "
                f"a function that makes a module, got {cut_repr(value)}"
            )
        if isinstance(value, nn.Module):  # callable, but calling it runs the module
            raise TypeError(
                f"register_model({name!r}, ...): {argument} must be a Flax module class or "
                f"a function that makes a module, got an instance of {type(value).__name__}; "
                f"pass the class {type(value).__name__} (its fields can be config options)"
            )
    for key in options or {}:
        if not isinstance(key, str) or not key:
            raise TypeError(
                f"register_model({name!r}, ...): option names must be non-empty strings (as "
                f"a config's options name them), got {cut_repr(key)}"
            )
        if build is None and key in _FRAME_ARGUMENTS:
            raise ValueError(
                f"register_model({name!r}, ...): option {key!r} would be ignored: the frame "
                f"sets the blocks' and stem's {', '.join(_FRAME_ARGUMENTS)} itself (features: "
                "the stage's width, from width=); give it another name"
            )
    kinds = (input_kinds,) if isinstance(input_kinds, str) else input_kinds
    if kinds is not None and not isinstance(kinds, Iterable):
        raise TypeError(
            f"model {name!r}: input_kinds must be a kind or a list of them, from {KINDS}, or "
            f"None for whatever the input shape is, got {cut_repr(kinds)} ({a_type(kinds)})"
        )
    kinds = None if kinds is None else tuple(kinds)  # an array's truth is ambiguous
    widths = plain_width(width)
    if kinds is not None and not kinds:
        raise ValueError(
            f"model {name!r}: input_kinds is empty; list the kinds its blocks take, from "
            f"{KINDS}, or give None for whatever the input shape is"
        )
    for kind in kinds or ():
        if kind not in KINDS:
            raise ValueError(f"model {name!r}: input kind {cut_repr(kind)} is not one of {KINDS}")
    spec = ModelSpec(
        name=name,
        block=block,
        stem=stem,
        build=build,
        depth=depth,
        width=widths if isinstance(widths, tuple) else (widths,),
        input_kinds=kinds,
        options=tuple(sorted((options or {}).items())),
        module=module,
        check=check,
    )
    _check_defaults(spec)
    _REGISTRY[name] = spec
    _RUN_BY[name] = running
    return spec


def _running_module(frame: types.FrameType | None, default: str) -> str:
    """The module whose top-level code runs ``frame`` (the nearest ``<module>`` frame
    from it outwards): the module being imported that made a registration, even through
    a function of another module; ``default`` when there is none (a thread's code)."""
    while frame is not None and frame.f_code.co_name != "<module>":
        frame = frame.f_back
    return frame.f_globals.get("__name__", default) if frame is not None else default


_EXAMPLE_SHAPES = {VECTOR: (1,), SEQUENCE: (1, 1), IMAGE: (1, 1, 1)}


def _check_defaults(spec: ModelSpec) -> None:
    """Raises a ValueError, naming the bad argument, if ``spec``'s defaults do not resolve.

    A config that gives only the name resolves with these defaults, so they get the same
    checks (`ModelSpec.resolve`, less the model's ``check``, which may need a larger
    input than the stand-in shape, and less the block's or stem's arguments of no default
    that a config's options may give: not one the frame keeps, ``dropout`` say); an empty
    ``width`` stands for one the config must give (unless the model reads none: a frame
    model without blocks or stem).
    """
    kind = spec.input_kinds[0] if spec.input_kinds else VECTOR
    reads_width = spec.build is not None or spec.depth or spec.stem is not None
    stand_in = 1 if reads_width and not spec.width else None
    config = ModelConfig(spec.name, 1, _EXAMPLE_SHAPES[kind], width=stand_in)
    try:
        resolved = spec._resolve_defaults(config)
        if spec.build is None:
            spec._check_required(None, resolved.depth or 0)
    except ValueError as error:
        raise ValueError(f"register_model({spec.name!r}, ...): {error}") from None


@contextlib.contextmanager
def _undone_on_error() -> Iterator[set[str]]:
    """Yields the names registered inside it (filled in on leaving). Left by an error,
    it unregisters those whose module (`_RUN_BY`) failed, out of `sys.modules`, so that
    importing it again once fixed registers them rather than finding them taken; those
    of modules imported whole stay, as importing again does not run them."""
    before, done = set(_REGISTRY), False
    added: set[str] = set()
    try:
        yield added
        done = True
    finally:
        added.update(set(_REGISTRY) - before)
        if not done:
            for name in added:
                if _RUN_BY[name] not in sys.modules:
                    _unregister(name)


def _unregister(name: str) -> None:
    """Drops ``name`` from the registry with its bookkeeping (`_RUN_BY`).

    Examples:
      >>> _unregister("no_such_model")  # not registered: nothing to drop
    """
    _REGISTRY.pop(name, None)
    _RUN_BY.pop(name, None)


def _load_entry_points() -> None:
    """Loads each plugin once; one that fails is undone, and fails again when next loaded."""
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"{entry_point.name}={entry_point.value}"
        if key in _LOADED_ENTRY_POINTS:
            continue
        try:
            with _undone_on_error():
                entry_point.load()
        except Exception as error:
            raise ImportError(
                f"the {ENTRY_POINT_GROUP!r} entry point {entry_point.name!r} "
                f"({entry_point.value}) failed to load: {error}"
            ) from error
        _LOADED_ENTRY_POINTS.add(key)


def registered_models() -> list[str]:
    """The sorted names of all registered models, including those of installed plugins.

    Examples:
      >>> from phosjax.models import registered_models
      >>> {"mlp", "cnn1d", "resnet"} <= set(registered_models())
      True
    """
    _load_entry_points()
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    """The `ModelSpec` registered under ``name``.

    Raises:
      ValueError: no model has that name; the message lists the nearest and all names.
      TypeError: ``name`` is no str (a config: pass its ``name``).

    Examples:
      >>> from phosjax.models import model_spec
      >>> spec = model_spec("mlp")
      >>> spec.name, spec.depth, spec.width, spec.input_kinds
      ('mlp', 1, (100,), ('vector',))
      >>> model_spec("mpl")
      Traceback (most recent call last):
      ...
      ValueError: unknown model 'mpl'. Did you mean 'mlp'? Registered models: ...
    """
    if not isinstance(name, str):  # a number failed in did_you_mean: no 'casefold'
        raise TypeError(
            f"model_spec takes a registered model's name (a str), such as 'mlp', got "
            f"{cut_repr(name)} ({a_type(name)})"
        )
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        names = sorted(_REGISTRY)
        hint = did_you_mean([name], names) or "."
        raise ValueError(f"unknown model {name!r}{hint} Registered models: {', '.join(names)}.")
    return _REGISTRY[name]


def build_model(config: ModelConfig) -> nn.Module:
    """The Flax module that ``config`` describes; ``__call__(x, train=False) -> logits``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import ModelConfig, build_model
      >>> model = build_model(ModelConfig("mlp", num_classes=10, input_shape=(40,)))
      >>> x = jnp.zeros((2, 40))
      >>> logits, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
      >>> logits.shape, sorted(variables["params"])
      ((2, 10), ['blocks_0', 'head', 'stem'])

    Raises:
      TypeError: ``config`` is no `ModelConfig` (a model's name alone), naming what to pass.
    """
    return model_spec(checked_config(config, "build_model").name).make(config)


def import_models(module: str) -> list[str]:
    """Imports ``module`` (which registers models) and returns the names it added. If its
    import fails, the models it registered before failing are unregistered, so that
    importing it again (once fixed) registers them rather than finding their names taken;
    those an earlier failed plain ``import`` of it left (it is out of `sys.modules`) are
    unregistered first.

    Examples:
      >>> from phosjax.models import import_models
      >>> import_models("phosjax.models")  # already imported: adds nothing
      []
    """
    if not isinstance(module, str) or not module:  # a list of them: 'startswith'
        raise TypeError(
            f"import_models takes one module's dotted name, e.g. 'mypkg.models', got "
            f"{cut_repr(module)} ({a_type(module)}); call it once per module"
        )
    if module not in sys.modules:  # importing runs it: it registers them again
        for name in [name for name, by in _RUN_BY.items() if by == module]:
            _unregister(name)
    try:
        with _undone_on_error() as added:
            importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"cannot import {module!r} to register models: {error}", name=error.name
        ) from error
    return sorted(added)


def param_count(config: ModelConfig, dtype: Any = jnp.float32) -> int:
    """The number of parameters (the ``params`` collection) of the model ``config`` builds,
    on inputs of ``dtype`` (an integer one for a model that embeds tokens, whose
    `flax.linen.Embed` refuses floats).

    Computed abstractly (`jax.eval_shape`), so nothing is allocated.

    Examples:
      >>> from phosjax.models import ModelConfig, param_count
      >>> param_count(ModelConfig("logreg", num_classes=10, input_shape=(40,)))
      410
    """
    model = build_model(checked_config(config, "param_count"))
    x = jax.ShapeDtypeStruct((1, *config.input_shape), dtype)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes.get("params", {})))
