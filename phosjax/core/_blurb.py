"""`blurb`: a summary of every module of a Flax model called on an input.

What it costs: one traced and compiled call of the model to record every module's
outputs and the collections it writes (and, when jax computes a knob's default, a
compiled ``init`` for the defaults), then, for FLOPs and latency, one compilation of the
whole model and one of each module on its own (each module is cloned unbound and applied
to its own variables and to inputs of the shapes it was called with; for FLOPs alone, one
per program: equal blocks share it). Switch ``flops`` and ``measure_latency`` off for a
cheap structural summary.
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import numbers
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core.scope import union_filters

from phosjax._callables import cut_repr
from phosjax._listing import counted, listing
from phosjax.core._apply import (
    apply_collecting,
    checked_variables,
    jit_keeping_constants,
    naming_apply_errors,
)
from phosjax.core._arrays_apart import arrays_apart
from phosjax.core._blurb_table import table
from phosjax.core._collections import AUX_LOSS, BLURB, KNOBS, PATH_WEIGHTS
from phosjax.core._knobs import _declarations, init_kwargs, is_traced, knobs
from phosjax.core._losses import check_aux_losses_kept
from phosjax.core._module_check import check_module
from phosjax.core._numbers import numbers_as_array
from phosjax.core._path_weights import check_path_weights_kept, path_weights_opened
from phosjax.core._paths import SEP, flatten, keys_joined
from phosjax.core._record import applied_apart, apply_depth
from phosjax.core._selectors import SelectorError, select
from phosjax.core._tags import (
    aux_losses_raised,
    check_notes_kept,
    constant_notes,
    notes_written,
    with_arrays,
)

_PARAMS = "params"
Json = Any
"""A JSON value: None, bool, int, float, str, or lists and string-keyed dicts of them."""


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """Shape and dtype of one array.

    Examples:
      >>> import jax.numpy as jnp
      >>> ArraySpec.of(jnp.zeros((2, 3)))
      ArraySpec(shape=(2, 3), dtype='float32')
    """

    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, x: Any) -> "ArraySpec":
        """The spec of an array, a number, or a jax literal (a scalar with a dtype and no
        shape, as `nn.remat` hands back a constant variable).

        Examples:
          >>> import jax.numpy as jnp
          >>> ArraySpec.of(jnp.ones((2, 3), jnp.bfloat16)), ArraySpec.of(1.5)
          (ArraySpec(shape=(2, 3), dtype='bfloat16'), ArraySpec(shape=(), dtype='float64'))
        """
        dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
        return cls(tuple(int(d) for d in np.shape(x)), str(dtype))


@dataclasses.dataclass(frozen=True)
class KnobValue:
    """A knob's value in the summarized variables (its default when they lack it), its
    default, doc, and the values it takes (``valid``: `Range.short`, e.g. ``"> 0"``; None:
    any).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> class Scaled(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         gain = px.knob(self, "gain", 2.0, doc="output gain", valid=px.Range(gt=0))
      ...         return x * gain
      >>> variables = Scaled().init(jax.random.key(0), jnp.ones(3))
      >>> b = px.blurb(Scaled(), variables, jnp.ones(3), measure_latency=False, flops=False)
      >>> b.root.knobs["gain"]
      KnobValue(value=2.0, default=2.0, doc='output gain', valid='> 0')
    """

    value: Json
    default: Json
    doc: str
    valid: str | None = None


@dataclasses.dataclass(frozen=True)
class ModuleBlurb:
    """The summary of one module and, recursively, of its children.

    Attributes:
      path: the module's path (``""`` for the top module).
      type: its class name, or its ``blurb_type`` where it has that attribute (a graph
        model's function node: what it computes, ``relu``, ``add``, ``Input``); ``""``
        for a module seen only in the variables.
      own_params: parameters (``params`` collection) held by the module itself.
      params: parameters of the module and all its children.
      variables: ``{collection: {name: ArraySpec}}`` of the module's own variables in
        every persistent collection (``params``, ``batch_stats``, ``knobs``...).
      outputs: ``{key path: ArraySpec}`` of the output of its first ``__call__``
        (``""`` when the output is one array; a leaf that is no array nor number, a
        str, has none); empty when never called. The top
        module's is the output of ``model.apply`` (of the ``method=`` it was given). A module whose
        class sets ``blurb_sums_calls`` (a graph model's group, called once per node)
        is one whole made in parts: its last call's output, and ``flops`` and
        ``latency_s`` summed over its calls.
      flops: XLA's FLOP count; the whole model for the top module, otherwise one call of
        the module compiled on its own (None when switched off or when the module cannot
        run on its own). A loop (``nn.scan``) counts its body once. Likewise an ensemble
        (``nn.vmap``) shows one member: the vmapped module and those inside it give one
        member's ``outputs`` and ``flops`` (the modules around it see all members), but
        ``params`` and ``variables`` count every member (stacked on a leading axis, e.g. a
        kernel of shape ``(members, in, out)``): 4 members of ``Dense(3)`` on 5 features
        show ``params`` 72 = 4 x 18, an output ``(batch, 3)`` and one member's FLOPs.
      latency_s: median seconds of one jitted call, measured like ``flops`` (modules on
        zero inputs of the recorded shapes; the top module on the real input).
      knobs: ``{name: KnobValue}`` of the knobs the module declares.
      notes: what the module recorded with `note`.
      aux_losses: the auxiliary losses it recorded (`aux_loss`, path-weight scaled).
      path_weights: the branch weights it recorded (`path_weight`).
      children: the summaries of its child modules, in call order.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> x = jnp.ones((1, 4)); variables = nn.Dense(3).init(jax.random.key(0), x)
      >>> root = px.blurb(nn.Dense(3), variables, x, measure_latency=False).root
      >>> root.type, root.own_params, root.outputs[""].shape, root.flops
      ('Dense', 15, (1, 3), 27.0)
      >>> root  # a summary: its fields hold the rest
      ModuleBlurb('', type 'Dense': 15 params, 15 its own, 0 submodules)
    """

    path: str
    type: str
    own_params: int
    params: int
    variables: dict[str, dict[str, ArraySpec]]
    outputs: dict[str, ArraySpec]
    flops: float | None
    latency_s: float | None
    knobs: dict[str, KnobValue]
    notes: dict[str, Json]
    aux_losses: dict[str, Json]
    path_weights: dict[str, Json]
    children: tuple["ModuleBlurb", ...]

    def __repr__(self) -> str:  # the dataclass's printed every field of every submodule
        return (
            f"ModuleBlurb({self.path!r}, type {self.type!r}: {counted(self.params, 'param')}, "
            f"{self.own_params:,} its own, "
            f"{counted(len(self.children), 'submodule')})"
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModuleBlurb":
        """The inverse of `dataclasses.asdict` after a trip through JSON.

        Examples:
          >>> import dataclasses, json, flax.linen as nn, jax, jax.numpy as jnp
          >>> x = jnp.ones((1, 4)); variables = nn.Dense(3).init(jax.random.key(0), x)
          >>> root = blurb(nn.Dense(3), variables, x, measure_latency=False, flops=False).root
          >>> ModuleBlurb.from_dict(json.loads(json.dumps(dataclasses.asdict(root)))) == root
          True
        """
        spec = lambda s: ArraySpec(tuple(s["shape"]), s["dtype"])
        return cls(
            **{
                **d,
                "variables": {
                    c: {n: spec(s) for n, s in own.items()} for c, own in d["variables"].items()
                },
                "outputs": {k: spec(s) for k, s in d["outputs"].items()},
                "knobs": {k: KnobValue(**v) for k, v in d["knobs"].items()},
                "children": tuple(cls.from_dict(c) for c in d["children"]),
            }
        )


@dataclasses.dataclass(frozen=True)
class Blurb:
    """The summary `blurb` returns: a tree of `ModuleBlurb` and the backend it ran on (the
    platform of its device: ``cpu`` under ``jax.default_device(cpu)`` on a GPU machine).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> x = jnp.ones((1, 4)); variables = nn.Dense(3).init(jax.random.key(0), x)
      >>> b = px.blurb(nn.Dense(3), variables, x, measure_latency=False, flops=False)
      >>> b.backend, list(b.modules()), b[""].params
      ('cpu', [''], 15)
      >>> b  # a summary: str(b) is the table of every module
      Blurb(type 'Dense' on cpu: 15 params in 1 module; str() gives the table)
    """

    root: ModuleBlurb
    backend: str

    def __repr__(self) -> str:  # the dataclass's printed every field of every module
        root = self.root
        flops = "" if root.flops is None else f", {root.flops:,.0f} FLOPs"
        return (
            f"Blurb(type {root.type!r} on {self.backend}: {counted(root.params, 'param')} in "
            f"{counted(len(self.modules()), 'module')}"
            f"{flops}; str() gives the table)"
        )

    def modules(self) -> dict[str, ModuleBlurb]:
        """Every module's summary by path, parents before children.

        Examples:
          >>> import flax.linen as nn, jax, jax.numpy as jnp
          >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
          >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
          >>> b = blurb(model, variables, x, measure_latency=False, flops=False)
          >>> {path: module.params for path, module in b.modules().items()}
          {'': 67, 'layers_0': 40, 'layers_2': 27}
        """
        found: dict[str, ModuleBlurb] = {}

        def walk(module: ModuleBlurb) -> None:
            found[module.path] = module
            for child in module.children:
                walk(child)

        walk(self.root)
        return found

    def __getitem__(self, path: str) -> ModuleBlurb:
        """The summary of the module at exactly ``path`` (no globs: see `modules`).

        Raises:
          SelectorError: no module has that path; the message names the paths a glob
            matches, or the nearest ones.
          TypeError: ``path`` is no str (a tuple of keys: it names them joined by ``/``).
        """
        modules = self.modules()
        if not isinstance(path, str) or path not in modules:  # a list: no hash
            _raise_not_a_module(modules, path)
        return modules[path]

    def __contains__(self, path: object) -> bool:
        """Whether a module has exactly ``path``, as ``b[path]`` finds it: ``"c" in b``
        (else Python asks ``b[0]``, ``b[1]``..., a TypeError naming 0)."""
        return isinstance(path, str) and path in self.modules()

    def __iter__(self) -> Any:
        """Refused: iterate ``b.modules()`` (its paths, or ``.items()`` with their
        summaries). Else Python asks ``b[0]``, ``b[1]``..., a TypeError naming 0.

        Examples:
          >>> import flax.linen as nn, jax, jax.numpy as jnp
          >>> x = jnp.ones((1, 4)); variables = nn.Dense(3).init(jax.random.key(0), x)
          >>> list(blurb(nn.Dense(3), variables, x, measure_latency=False, flops=False))
          Traceback (most recent call last):
          TypeError: A Blurb is no sequence: iterate b.modules(), its summaries by path (for
          path, module in b.modules().items()), or b.root.children for the top module's.
        """
        raise TypeError(
            "A Blurb is no sequence: iterate b.modules(), its summaries by path (for path, "
            "module in b.modules().items()), or b.root.children for the top module's."
        )

    def to_json(self, indent: int | None = None) -> str:
        """The summary as strict JSON (only numbers, strings, lists, objects and null): a
        NaN or infinite number (a diverged aux loss, a knob at ``inf``) is null, as JSON
        has no such number (Python's ``NaN`` and ``Infinity`` are no JSON to a browser).

        Examples:
          >>> import json, flax.linen as nn, jax, jax.numpy as jnp
          >>> x = jnp.ones((1, 4)); variables = nn.Dense(3).init(jax.random.key(0), x)
          >>> b = blurb(nn.Dense(3), variables, x, measure_latency=False, flops=False)
          >>> json.loads(b.to_json())["root"]["outputs"]
          {'': {'shape': [1, 3], 'dtype': 'float32'}}
        """
        return json.dumps(_finite(dataclasses.asdict(self)), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "Blurb":
        """Reads what `to_json` wrote: ``Blurb.from_json(b.to_json()) == b`` where every
        number in ``b`` is finite; a NaN or infinite one (a knob at ``inf``), null in the
        JSON, comes back as None.

        Examples:
          >>> import flax.linen as nn, jax, jax.numpy as jnp
          >>> x = jnp.ones((1, 4)); variables = nn.Dense(3).init(jax.random.key(0), x)
          >>> b = blurb(nn.Dense(3), variables, x, measure_latency=False, flops=False)
          >>> Blurb.from_json(b.to_json()) == b
          True
        """
        d = json.loads(text)
        return cls(ModuleBlurb.from_dict(d["root"]), d["backend"])

    def table(self) -> str:
        """One line per module, indented by depth (about 120 columns); ``str(blurb)`` too.

        Examples:
          >>> import flax.linen as nn, jax, jax.numpy as jnp
          >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
          >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
          >>> print(blurb(model, variables, x, measure_latency=False, flops=False).table())
          module                         type           params output          flops   latency notes
          (top)                          Sequential         67 1x3                 -         -
            layers_0                     Dense              40 1x8                 -         -
            layers_2                     Dense              27 1x3                 -         -
          backend: ...
        """
        return table(self)

    def __str__(self) -> str:
        return self.table()


def _finite(value: Json) -> Json:
    """``value`` (JSON-ready) with every NaN or infinite float as None.

    Examples:
      >>> _finite({"a": [1.5, float("nan")], "b": (float("-inf"), "s")})
      {'a': [1.5, None], 'b': [None, 's']}
    """
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _raise_not_a_module(modules: Mapping[str, ModuleBlurb], path: str) -> None:
    """Raises `SelectorError` for ``path``, naming the modules a glob matches; a
    TypeError for a path that is no str (Flax's tuple of keys: them joined by ``/``)."""
    if not isinstance(path, str):
        fix = (
            keys_joined(path)
            or f"one of the paths of b.modules(): {listing([repr(p) for p in modules], 3)}"
        )
        raise TypeError(
            f"Blurb[...] takes a module path, a str ('' for the top module), got "
            f"{cut_repr(path)} ({type(path).__name__}); give {fix}."
        )
    matched = select(modules, path, what="module path")  # raises, naming the nearest paths
    shown = listing([repr(p) for p in matched], 10)
    raise SelectorError(
        f"Blurb[...] takes an exact module path, not a selector: {path!r} matches "
        f"{len(matched)} module(s): {shown}. Use one of them, or select over b.modules()."
    )


def _state_collections(variables: Mapping[str, Any]) -> list[str]:
    return [c for c in variables if c != _PARAMS]


def _split(path: str) -> tuple[str, str]:
    """``"a/b/name"`` -> ``("a/b", "name")``; a top-level name has the parent ``""``."""
    parent, _, name = path.rpartition(SEP)
    return parent, name


def _plain(value: Any) -> Json:
    """``value`` as JSON: arrays become (nested) lists, tuples lists, keys strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return np.asarray(value).tolist()


def _abstract(tree: Any) -> Any:
    """``tree`` with every array replaced by its `jax.ShapeDtypeStruct`."""
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype) if isinstance(a, jax.Array) else a,
        tree,
    )


def _flop_count(compiled: Any) -> float | None:
    """XLA's FLOP count of ``compiled``; None where its backend analyses no cost.

    XLA leaves out a count of 0: a program that computes nothing (a module that is the
    identity in this mode, such as an evaluating Dropout) counts 0 FLOPs, not None.

    Examples:
      >>> _flop_count(jax.jit(lambda x: x).lower(jnp.ones(3)).compile())
      0.0
    """
    analysis = compiled.cost_analysis()  # a dict in jax 0.10; a list of dicts before
    analyses = [a for a in (analysis if isinstance(analysis, list | tuple) else [analysis]) if a]
    return float(sum(a.get("flops", 0.0) for a in analyses)) if analyses else None


_FLOP_COUNTS: dict[tuple[tuple[str, ...], str], float | None] = {}
"""The FLOPs of the last `_FLOP_COUNTS_KEPT` programs compiled for their FLOPs alone, by
`_program_key`."""

_FLOP_COUNTS_KEPT = 1024


def _program_key(lowered: Any) -> tuple[tuple[str, ...], str]:
    """The platforms ``lowered`` was lowered for (``jax.default_device(cpu)`` on a GPU
    machine: ``('cpu',)``, not the default backend) and the digest of its text, which is
    the same for each platform.

    Examples:
      >>> traced = jax.jit(jnp.sin).trace(1.0)
      >>> _program_key(traced.lower(lowering_platforms=("cuda",)))[0]
      ('cuda',)
    """
    lowering = getattr(lowered, "_lowering", None)  # private: another JAX may lack it
    platforms = getattr(lowering, "_platforms", None) or (jax.default_backend(),)
    return tuple(platforms), hashlib.sha256(lowered.as_text().encode()).hexdigest()


def _flops_of(lowered: Any) -> float | None:
    """The FLOPs of ``lowered`` compiled, compiling it only when no program of the same
    text was for its platforms (a model's blocks of one shape, a layer that several models
    share)."""
    key = _program_key(lowered)
    if key not in _FLOP_COUNTS:
        if len(_FLOP_COUNTS) >= _FLOP_COUNTS_KEPT:  # the oldest goes: a long process stays small
            del _FLOP_COUNTS[next(iter(_FLOP_COUNTS))]
        _FLOP_COUNTS[key] = _flop_count(lowered.compile())
    return _FLOP_COUNTS[key]


def _measure(
    fn: Callable[..., Any], args: Sequence[Any], flops: bool, latency: bool, repeats: int
) -> tuple[float | None, float | None]:
    """``(FLOPs, median seconds)`` of ``jax.jit(fn)`` on ``args`` (abstract ones as zeros),
    of the arrays of its output: its other leaves (a str) are no output of a jitted call."""
    lowered = jax.jit(lambda *args: arrays_apart(fn(*args))[0]).lower(*args)
    if not latency:
        return (_flops_of(lowered) if flops else None), None
    compiled = lowered.compile()
    concrete = jax.tree.map(
        lambda a: jnp.zeros(a.shape, a.dtype) if isinstance(a, jax.ShapeDtypeStruct) else a,
        args,
    )
    jax.block_until_ready(compiled(*concrete))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*concrete))
        times.append(time.perf_counter() - start)
    return (_flop_count(compiled) if flops else None), statistics.median(times)


def _output_specs(out: Any) -> dict[str, ArraySpec]:
    """``{key path: ArraySpec}`` of each leaf of ``out`` that is an array or a number
    (``""`` when it is one array); another leaf (a str, numpy's too) has no shape nor
    dtype to show.

    Examples:
      >>> _output_specs({"y": jnp.ones((2, 3)), "name": "head"})
      {"['y']": ArraySpec(shape=(2, 3), dtype='float32')}
    """
    return {
        jax.tree_util.keystr(key): ArraySpec.of(leaf)
        for key, leaf in jax.tree_util.tree_leaves_with_path(out)
        if (hasattr(leaf, "dtype") or isinstance(leaf, numbers.Number))
        and not isinstance(leaf, str | bytes)  # numpy's str, np.str_, has a dtype: <U4
    }


@dataclasses.dataclass(frozen=True)
class _Call:
    """What a module's first ``__call__`` saw: enough to compile the module on its own."""

    module: nn.Module  # an unbound clone
    type: str
    variables: dict[str, Any]  # its persistent collections, abstract
    arguments: Any  # (args, kwargs), arrays abstract
    outputs: dict[str, ArraySpec]

    @classmethod
    def record(
        cls, module: nn.Module, args: Any, kwargs: Any, out: Any, persistent: set[str]
    ) -> "_Call":
        own = {c: tree for c, tree in module.variables.items() if c in persistent}
        return cls(
            module.clone(parent=None),
            getattr(module, "blurb_type", None) or type(module).__name__,
            _abstract(own),
            _abstract((args, kwargs)),
            _output_specs(out),
        )

    def measure(
        self, rngs: Any, flops: bool, latency: bool, repeats: int
    ) -> tuple[float | None, float | None]:
        """``(FLOPs, seconds)`` of the module alone; ``(None, None)`` if it cannot run alone."""
        arrays, put_back = arrays_apart(self.arguments)

        def run(variables: dict[str, Any], arrays: list[jax.Array]) -> Any:
            args, kwargs = put_back(arrays)
            mutable = _state_collections(variables)
            return self.module.apply(variables, *args, rngs=rngs, mutable=mutable, **kwargs)

        try:
            return _measure(run, (self.variables, arrays), flops, latency, repeats)
        except Exception:  # e.g. it reads a module or variables it does not own
            return None, None


def _total(values: Sequence[float | None]) -> float | None:
    """The sum of the known ``values`` (None when none is known)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _notes(recorded: dict[str, Any], constants: dict[str, Any]) -> dict[str, Any]:
    """The notes by path: those ``recorded`` in the collection, and the ``constants`` that
    `constant_notes` kept, with their arrays from the collection put back."""
    merged = dict(recorded)
    for path, constant in constants.items():
        merged[path] = with_arrays(constant, recorded[path]) if path in recorded else constant
    return merged


@dataclasses.dataclass
class _Trace:
    """What one traced call of the model recorded (`_trace`)."""

    calls: dict[str, list[_Call]]  # in the order the first calls began
    touched: set[str]  # the paths of the modules any method of which ran
    made: set[str]  # the paths of the submodules those modules made
    declared: dict[str, Any]  # the knobs declared, by path
    notes: dict[str, Any]  # the notes `constant_notes` kept
    written: dict[str, dict[str, None]]  # `_written_in_records`
    collected: dict[str, Any]  # the blurb, aux_loss and path_weights collections
    outputs: dict[str, ArraySpec]  # of the model's output
    knob_tree: Any  # the knobs collection the call handed back


def _trace(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    init: Callable[[], Mapping[str, Any]] | None,
    apply_kwargs: dict[str, Any],
    inline_jit: bool,
) -> _Trace:
    """Runs the model once, jitted, recording every module's first ``__call__`` (every
    call of a module whose class sets ``blurb_sums_calls``); with ``inline_jit``, nn.jit
    inlined (`jax.disable_jit`), so that a trace nn.jit would reuse runs its Python."""
    persistent = set(variables)
    entered: dict[str, None] = {}
    calls: dict[str, list[_Call]] = {}
    touched: set[str] = set()
    made: set[str] = set()
    depth = apply_depth()
    initializing = False  # init's calls are no calls on x (a graph group's would count twice)

    def intercept(next_fun: Callable[..., Any], args: Any, kwargs: Any, context: Any) -> Any:
        unbound = context.module.scope is None  # a helper method of a module no model holds
        if initializing or unbound or applied_apart(depth):  # or a model applied inside
            return next_fun(*args, **kwargs)
        path = SEP.join(context.module.path)
        touched.add(path)
        if context.method_name == "__call__":
            entered.setdefault(path)
        out = next_fun(*args, **kwargs)
        children = context.module._state.children.items()
        made.update(
            SEP.join((*context.module.path, k)) for k, c in children if isinstance(c, nn.Module)
        )
        sums_calls = getattr(context.module, "blurb_sums_calls", False)
        if context.method_name == "__call__" and (path not in calls or sums_calls):
            call = _Call.record(context.module, args, kwargs, out, persistent)
            calls.setdefault(path, []).append(call)
        return out

    def run(
        variables: Mapping[str, Any], x: Any, apply_kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, ArraySpec], Any]:
        nonlocal initializing
        if init is not None:
            initializing = True
            try:
                variables = init()
            finally:
                initializing = False
        collect = [BLURB, AUX_LOSS, PATH_WEIGHTS]
        # knobs mutable, as in init: those a lifted transform drops are not stored
        mutable = union_filters(apply_kwargs.get("mutable", False), [KNOBS])
        kwargs = {**apply_kwargs, "mutable": mutable}
        with jax.disable_jit(inline_jit):
            (out, state), collected = apply_collecting(
                model, variables, x, collect=collect, **kwargs
            )
        return collected, _output_specs(out), state.get(KNOBS, {})

    with (
        nn.intercept_methods(intercept),
        _declarations() as declared,
        constant_notes() as notes,
        _written_in_records() as written,
    ):
        given = {} if init is not None else variables  # init's: made in the program
        # the arrays of apply_kwargs traced too: a constant input's work would be folded
        traced, put_back = arrays_apart(apply_kwargs, scalars=False)  # a flag: concrete
        collected, outputs, knob_tree = jit_keeping_constants(
            lambda variables, x, traced: run(variables, x, put_back(traced)), given, x, traced
        )
    calls = {path: calls[path] for path in entered if path in calls}
    return _Trace(calls, touched, made, declared, notes, written, collected, outputs, knob_tree)


def _untouched(variables: Mapping[str, Any], touched: set[str], made: set[str]) -> bool:
    """Whether a submodule that a module made (``made``) holds ``variables`` but ran no
    method (not in ``touched``): a trace that nn.jit reused (from an earlier call, or from
    a sibling block of the same fields: it fingerprints no name) runs no Python, so no
    call of it was recorded (or a module the call leaves out, which an inlined trace
    leaves out too). Variables no module made (params its parent applies, `apply_as_out`)
    are none of them.

    Examples:
      >>> _untouched({"params": {"b": {"dense": {"kernel": 0}}}}, {""}, {"b"})
      True
      >>> _untouched({"params": {"a": {"out": {"kernel": 0}}}}, {"", "a"}, {"a"})
      False
    """
    holding = {
        SEP.join(module.split(SEP)[:end])
        for tree in nn.meta.unbox(variables).values()
        for path in flatten(tree, unwrap=False)
        for module in [_split(path)[0]]
        for end in range(1, module.count(SEP) + 2)
    }
    return any(path in holding for path in made - touched)


def _capture(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    init: Callable[[], Mapping[str, Any]] | None = None,
    **apply_kwargs: Any,
) -> tuple[dict[str, list[_Call]], dict[str, dict[str, dict[str, Json]]], dict[str, ArraySpec]]:
    """Runs the model once, jitted (`_trace`), recording every module's first call; where
    a module holding variables ran none (`_untouched`), once more with nn.jit inlined,
    where it can be (inlining unrolls every scan, and one of length 0 fails). With
    ``init``, the variables are ``init()`` computed in that program (``variables``: their
    shapes), so that XLA drops what no recorded value reads (a random init of params:
    most of its compile).

    Returns:
      ``({path: [_Call]}`` in the order the first calls began, ``{module path: {kind:
      {name: value}}}`` with the kinds ``notes``, ``aux_losses``, ``path_weights`` and
      ``knobs``, the specs of the model's output``)``: the output of ``model.apply``, the
      method it runs on the top module ``__call__`` or another (``method=``).
    """
    trace = _trace(model, variables, x, init, apply_kwargs, inline_jit=False)
    if _untouched(variables, trace.touched, trace.made):
        with contextlib.suppress(Exception):  # only the inlining failed: the model ran
            trace = _trace(model, variables, x, init, apply_kwargs, inline_jit=True)
    collected = trace.collected
    _check_records_kept(trace.written, collected)
    # A default made by jax is a tracer here: init computes it (once, for all of them).
    made_by_jax = any(isinstance(knob.default, jax.core.Tracer) for knob in trace.declared.values())
    defaults = knobs(model, x, **init_kwargs(apply_kwargs)) if made_by_jax else {}

    recorded: dict[str, dict[str, dict[str, Json]]] = {}
    found = {
        "notes": _notes(flatten(collected[BLURB]), trace.notes),
        "aux_losses": flatten(collected[AUX_LOSS]),
        "path_weights": flatten(collected[PATH_WEIGHTS]),
    }
    for kind, values in found.items():
        for path, value in values.items():
            module, leaf = _split(path)
            recorded.setdefault(module, {}).setdefault(kind, {})[leaf] = _plain(value)
    knob_values = flatten(trace.knob_tree)
    for path, knob in trace.declared.items():
        if path not in knob_values:
            continue  # dropped by a lifted transform: it reads its default, none can be set
        module, leaf = _split(path)
        default = _plain(defaults.get(path, knob).default)
        recorded.setdefault(module, {}).setdefault("knobs", {})[leaf] = KnobValue(
            _plain(knob_values[path]),
            default,
            knob.doc,
            knob.valid.short() if knob.valid is not None else None,
        )
    return trace.calls, recorded, trace.outputs


@contextlib.contextmanager
def _written_in_records() -> Iterator[dict[str, dict[str, None]]]:
    """Within it, the paths of the notes, aux losses and path weights a call writes, by
    collection, kept or dropped (`notes_written`, `aux_losses_raised`, `path_weights_opened`)."""
    with notes_written() as noted, aux_losses_raised() as raised, path_weights_opened() as opened:
        yield {BLURB: noted, AUX_LOSS: raised, PATH_WEIGHTS: opened}


def _check_records_kept(
    written: Mapping[str, dict[str, None]], collected: Mapping[str, Any]
) -> None:
    """Raises where a lifted transform dropped a note, aux loss or path weight written
    (`_written_in_records`) from what the call ``collected``: its summary would lack it."""
    check_notes_kept(written[BLURB], collected[BLURB])
    check_aux_losses_kept(written[AUX_LOSS], collected[AUX_LOSS])
    check_path_weights_kept(written[PATH_WEIGHTS], collected[PATH_WEIGHTS])


def blurb(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any = None,
    *,
    measure_latency: bool = True,
    flops: bool = True,
    repeats: int = 5,
    **apply_kwargs: Any,
) -> Blurb:
    """Summarizes every module of ``model`` called on ``x``.

    A model that ``model`` applies inside its call (``teacher.apply(...)``, a frozen
    teacher) has no rows: its modules are not ``model``'s (its cost counts in the
    enclosing module's).

    Args:
      model: a Flax linen module.
      variables: its variables (never modified).
      x: the input (an array or a pytree of arrays; a nested list or tuple of numbers is
        read as its array, as a graph model's input node reads it, its work counted);
        leave it out (``None``) for a model that reads none, such as a graph model
        without input nodes.
      measure_latency: time jitted calls (median of ``repeats`` after a warm-up).
      flops: ask XLA's cost analysis for FLOP counts.
      repeats: timed calls per measurement, an int >= 1.
      **apply_kwargs: passed to ``model.apply`` (``train=``, ``rngs=``...). Without
        ``mutable=``, every collection of ``variables`` but ``params`` is mutable, so
        batch statistics update (and are thrown away).

    Returns:
      A `Blurb`: ``b.table()`` to read, ``b["path"]`` for one module, ``b.to_json()``.

    Raises:
      TypeError: ``variables`` are no collections (None; the params alone:
        `naming_params_alone`); an argument is traced (under ``jax.jit``): blurb runs
        outside JAX's transformations.
      ValueError: ``repeats`` is no int >= 1; or a lifted transform (``nn.vmap``,
        ``nn.scan``) whose ``variable_axes`` omit ``blurb``, ``aux_loss`` or
        ``path_weights`` dropped a note's arrays, an aux loss or a path weight recorded
        inside it, which the blurb would lack (`scan_axes` lists every collection); or
        a module or variable name holds ``/``, by which blurb joins paths.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> class MLP(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return nn.Dense(2, name="out")(nn.relu(nn.Dense(3, name="hidden")(x)))
      >>> x = jnp.ones((1, 4)); variables = MLP().init(jax.random.key(0), x)
      >>> b = px.blurb(MLP(), variables, x, measure_latency=False)
      >>> b["hidden"].params, b["hidden"].outputs[""].shape, b["hidden"].flops
      (15, (1, 3), 27.0)
      >>> b.root.params, [child.path for child in b.root.children]
      (23, ['hidden', 'out'])
    """
    check_module("blurb", model)
    return _summary(model, variables, x, None, measure_latency, flops, repeats, apply_kwargs)


def blurb_of_init(
    model: nn.Module,
    init: Callable[[], Mapping[str, Any]],
    x: Any = None,
    *,
    measure_latency: bool = True,
    flops: bool = True,
    repeats: int = 5,
    **apply_kwargs: Any,
) -> Blurb:
    """`blurb` of the variables ``init()`` returns, ``blurb(model, init(), x, **kwargs)``,
    without computing those its values do not read: ``init`` is traced into the program
    that records the blurb, and XLA drops the rest (a random init of params is most of
    an init's compile); FLOPs and latency are measured on zeros.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> x = jnp.ones((1, 4)); init = lambda: nn.Dense(3).init(jax.random.key(0), x)
      >>> b = blurb_of_init(nn.Dense(3), init, x, measure_latency=False)
      >>> b == blurb(nn.Dense(3), init(), x, measure_latency=False)
      True
    """
    variables = jax.eval_shape(init)
    return _summary(model, variables, x, init, measure_latency, flops, repeats, apply_kwargs)


def _summary(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    init: Callable[[], Mapping[str, Any]] | None,
    measure_latency: bool,
    flops: bool,
    repeats: int,
    apply_kwargs: dict[str, Any],
) -> Blurb:
    """`blurb`'s work; with ``init``, ``variables`` are their shapes (`blurb_of_init`)."""
    an_int = isinstance(repeats, numbers.Integral) and not isinstance(repeats, bool)
    if not an_int or repeats < 1:  # checked before the model is traced and compiled
        raise ValueError(
            f"repeats must be at least 1, a whole number of calls, got {cut_repr(repeats)}."
        )
    variables = checked_variables(variables, "blurb")
    _check_no_separator_in_names(variables)
    _check_not_traced({"variables": variables, "x": x, **apply_kwargs})
    x = numbers_as_array(x)  # as model.apply reads it, not one traced scalar per number
    mutable = apply_kwargs.pop("mutable", _state_collections(variables))
    try:
        with naming_apply_errors(model, variables, "blurb", apply_kwargs.get("method")):
            calls, recorded, outputs = _capture(
                model, variables, x, init, mutable=mutable, **apply_kwargs
            )
    except Exception as error:
        if x is None:  # the model got None: its error names no input (Dense: IndexError)
            error.add_note(
                "blurb was given no input (x=None), which only a model that reads none "
                "takes: pass the input, px.blurb(model, variables, x)."
            )
        raise
    measured: dict[str, tuple[float | None, float | None]] = {}
    if flops or measure_latency:
        traced, by_name = arrays_apart(apply_kwargs, scalars=False)  # a flag: concrete
        arrays, put_back = arrays_apart((x, traced))  # Python values as apply gets them

        def whole(variables: Mapping[str, Any], arrays: list[Any]) -> Any:
            x, traced = put_back(arrays)  # the inputs by name traced, as x is: none folded
            return model.apply(variables, x, mutable=mutable, **by_name(traced))

        measured[""] = _measure(whole, (variables, arrays), flops, measure_latency, repeats)
        rngs = apply_kwargs.get("rngs")
        for path, parts in calls.items():
            if path:
                counts = [part.measure(rngs, flops, measure_latency, repeats) for part in parts]
                measured[path] = (_total([f for f, _ in counts]), _total([s for _, s in counts]))

    # Boxed variables (`nn.with_partitioning`, `LogicallyPartitioned`) counted by their arrays.
    unboxed = nn.meta.unbox(variables)
    persistent = {c: flatten(tree, unwrap=False) for c, tree in unboxed.items()}
    paths = dict.fromkeys(["", *calls])
    for flat in persistent.values():
        paths.update(dict.fromkeys(_split(p)[0] for p in flat))
    for path in list(paths):
        while path:
            path = _split(path)[0]
            paths.setdefault(path)

    def build(path: str) -> ModuleBlurb:
        children = tuple(build(p) for p in paths if p and _split(p)[0] == path)
        own = {
            c: {_split(p)[1]: ArraySpec.of(v) for p, v in flat.items() if _split(p)[0] == path}
            for c, flat in persistent.items()
        }
        own = {c: specs for c, specs in own.items() if specs}
        own_params = sum(int(np.prod(s.shape)) for s in own.get(_PARAMS, {}).values())
        call = calls[path][-1] if path in calls else None
        extra = recorded.get(path, {})
        return ModuleBlurb(
            path=path,
            type=type(model).__name__ if not path else call.type if call else "",
            own_params=own_params,
            params=own_params + sum(child.params for child in children),
            variables=own,
            outputs=outputs if not path else call.outputs if call else {},
            flops=measured.get(path, (None, None))[0],
            latency_s=measured.get(path, (None, None))[1],
            knobs=extra.get("knobs", {}),
            notes=extra.get("notes", {}),
            aux_losses=extra.get("aux_losses", {}),
            path_weights=extra.get("path_weights", {}),
            children=children,
        )

    return Blurb(build(""), _platform(variables, x))


def _check_no_separator_in_names(variables: Mapping[str, Any]) -> None:
    """Raises a ValueError naming the first module or variable of ``variables`` whose name
    holds ``/`` (Flax takes ``name="a/b"``): blurb joins path segments with it, so ``a/b``
    would read as the submodule ``b`` of ``a``, its params counted in ``a``'s.

    Examples:
      >>> _check_no_separator_in_names({"params": {"a": {}, "a/b": {"kernel": 0}}})
      Traceback (most recent call last):
      ValueError: blurb: variables['params'] hold the name 'a/b' (in the top module), which
      holds '/': ...
    """

    def walk(collection: str, where: tuple[str, ...], tree: Any) -> None:
        for key, child in tree.items() if isinstance(tree, Mapping) else ():
            if SEP in str(key):
                raise ValueError(
                    f"blurb: variables[{collection!r}] hold the name {key!r} (in "
                    f"{SEP.join(where) or 'the top module'}), which holds {SEP!r}: blurb "
                    f"joins path segments with {SEP!r}, so it would read as the path "
                    f"{SEP.join((*where, str(key)))!r}, its params counted in its first part's. "
                    f"Rename that module or variable (its name= or dict key) without {SEP!r}."
                )
            walk(collection, (*where, str(key)), child)

    for collection, tree in variables.items():
        walk(collection, (), tree)


def _check_not_traced(arguments: Mapping[str, Any]) -> None:
    """Raises a TypeError naming the ``arguments`` that hold a tracer: `blurb` compiles,
    runs and reads back the model itself, so it runs outside a JAX transformation (JAX
    said only that a compiled function got a Tracer, or that one had no concrete value).

    Examples:
      >>> jax.jit(lambda x: _check_not_traced({"x": x, "train": False}))(1.0)
      Traceback (most recent call last):
      TypeError: blurb runs outside jax.jit (and every JAX transformation): it compiles, ...
    """
    traced = [name for name, value in arguments.items() if is_traced(value)]
    if traced:
        raise TypeError(
            "blurb runs outside jax.jit (and every JAX transformation): it compiles, runs "
            f"and reads back the model itself, but got traced values in {', '.join(traced)}; "
            "call px.blurb(model, variables, x) outside the transformed function."
        )


def _platform(*trees: Any) -> str:
    """The platform that jitted calls on ``trees`` run on: an array's committed to a device
    (`jax.device_put`), else jax's default device's (``jax.default_device``, which the
    default backend is not).

    Examples:
      >>> cpu = jax.devices("cpu")[0]
      >>> _platform(jax.device_put(jnp.ones(2), cpu)), _platform({"x": None})
      ('cpu', 'cpu')
    """
    for leaf in jax.tree.leaves(trees):
        if isinstance(leaf, jax.Array) and leaf.committed:
            return next(iter(leaf.devices())).platform
    return next(iter(jnp.zeros(()).devices())).platform
