"""``model.apply`` with extra collections made mutable and handed back separately, and
`jit_keeping_constants` (a jitted call whose output may hold Python values)."""

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import flax.errors
import flax.linen as nn
import jax
from flax.core import FrozenDict
from flax.core.scope import DenyList, in_filter, union_filters
from jax.extend.core import valid_jaxtype

from phosjax._callables import a_type, cut_repr, shown
from phosjax.core._arrays_apart import arrays_apart
from phosjax.core._collections import INTERMEDIATES, KNOBS
from phosjax.core._module_check import check_module
from phosjax.core._paths import flatten
from phosjax.core._record import Calls
from phosjax.core._selectors import SelectorError, select
from phosjax.core._tags import tags_seen

Mutable = bool | str | Sequence[str] | DenyList


def checked_variables(
    variables: Any, caller: str, *, name: str = "variables", error: type[TypeError] = TypeError
) -> Mapping[str, Any]:
    """``variables``, if it is what ``model.init`` returns: a mapping of collection names
    to trees; else ``error`` (a TypeError, or a subclass: graph surgery's is a
    GraphError too) naming ``caller``, the argument (``name``) and what it was given (a
    ``None`` or a list failed as "'NoneType' object has no attribute 'items'").

    Examples:
      >>> checked_variables(None, "probe")
      Traceback (most recent call last):
      ...
      TypeError: probe: variables must be what model.init returns, a mapping of collection
      names to trees ({'params': ...}), got None.
    """
    if isinstance(variables, Mapping):
        return variables
    raise error(
        f"{caller}: {name} must be what model.init returns, a mapping of collection "
        f"names to trees ({{'params': ...}}), got {shown(variables)}."
    )


PARAMS_AS_VARIABLES = flax.errors.ApplyScopeInvalidVariablesTypeError
"""What Flax raises for a one-module model's params passed as its variables (their
values are arrays, no collections)."""


MISSING_PARAMS = (
    flax.errors.ScopeCollectionNotFound,
    flax.errors.ScopeParamNotFoundError,
    PARAMS_AS_VARIABLES,
)
"""What Flax raises where a model reads a variable that its variables lack (the params
alone among them: `params_alone_text`)."""

_READS = (
    re.compile(r'access "(.*?)" from collection "params" in "(.*?)"'),
    re.compile(r'parameter named "(.*?)" in scope "(.*?)"'),
)
"""Flax's two wordings of a param read and not found: (its name, its module's path)."""

_COLLECTION_READ = re.compile(r'from collection "(.*?)"')
"""The collection named by Flax's `flax.errors.ScopeCollectionNotFound`."""


def params_alone_text(variables: Mapping[str, Any], error: Exception, caller: str) -> str | None:
    """What ``caller`` says of Flax's ``error`` (one of `MISSING_PARAMS`) where the model
    read params that ``variables`` lack, having no ``"params"`` key (the params passed
    alone, as ``variables["params"]``): the keys given and what to pass, asking "the
    params alone?" where a key is the module read; None where ``error`` says another thing.

    Examples:
      >>> error = flax.errors.ScopeParamNotFoundError("kernel", "/Dense_0")
      >>> print(params_alone_text({"Dense_0": {}}, error, "f"))
      f: variables hold no 'params' collection (they hold 'Dense_0': the params alone?); pass
      what model.init returns, {'params': params, ...} (Flax: Could not find parameter named
      "kernel" in scope "/Dense_0".)
      >>> params_alone_text({"params": {}}, error, "f") is None
      True

    Where ``variables`` hold ``"params"`` and Flax refused them all the same (a collection
    is no dict: ``{"params": 3}``), it names that collection (`_no_collection_text`).
    """
    if "params" in variables and isinstance(error, PARAMS_AS_VARIABLES):
        return _no_collection_text(variables, caller)
    reads = next((found for r in _READS if (found := r.search(str(error)))), None)
    if "params" in variables or not (reads or isinstance(error, PARAMS_AS_VARIABLES)):
        return None
    # the params alone are keyed by the module read (its variable's name at the top)
    alone = not reads or (reads[2].strip("/").split("/")[0] or reads[1]) in variables
    keys = [repr(key) for key in variables]
    shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    return (
        f"{caller}: variables hold no 'params' collection (they hold "
        f"{shown or 'nothing'}{': the params alone?' if alone else ''}); pass what "
        "model.init returns, "
        f"{{'params': params, ...}} (Flax: {str(error).split(' (https')[0]})"
    )


def _no_collection_text(variables: Mapping[str, Any], caller: str) -> str | None:
    """What ``caller`` says of the first collection of ``variables`` that Flax refuses
    (`PARAMS_AS_VARIABLES`, which names none): no dict of strs to values; None where
    there is none.

    Examples:
      >>> print(_no_collection_text({"params": 3}, "blurb"))
      blurb: variables['params'] must be a collection as model.init makes it, a dict of
      module and variable names (strs) to values ({'Dense_0': {'kernel': ...}}), got an int.
      >>> print(_no_collection_text({"params": {}, "knobs": {0: 1.0}}, "blurb"))
      blurb: variables['knobs'] must be a collection as model.init makes it, a dict of
      module and variable names (strs) to values ({'Dense_0': {'kernel': ...}}), got the
      key 0 (an int).
    """
    for name, tree in variables.items():
        is_dict = isinstance(tree, dict | FrozenDict)
        key = next((k for k in tree if not isinstance(k, str)), None) if is_dict else None
        if not is_dict or key is not None:
            return (
                f"{caller}: variables[{name!r}] must be a collection as model.init makes it, "
                "a dict of module and variable names (strs) to values ({'Dense_0': "
                f"{{'kernel': ...}}}}), got "
                f"{shown(tree) if not is_dict else f'the key {cut_repr(key)} ({a_type(key)})'}."
            )
    return None


@contextlib.contextmanager
def naming_params_alone(variables: Any, caller: str) -> Iterator[Mapping[str, Any]]:
    """``variables``, checked (`checked_variables`), for its block; where the model reads
    params that they lack (no ``"params"`` key: the params passed alone, as
    ``variables["params"]``), Flax's error becomes a TypeError (`params_alone_text`).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp
      >>> params = nn.Dense(2).init(jax.random.key(0), jnp.ones(3))["params"]
      >>> with naming_params_alone(params, "probe"):
      ...     nn.Dense(2).apply(params, jnp.ones(3))
      Traceback (most recent call last):
      TypeError: probe: variables hold no 'params' collection (they hold 'kernel', 'bias':
      the params alone?); pass what model.init returns, {'params': params, ...} (Flax: ...)
      >>> with naming_params_alone({"batch_stats": {}}, "probe"):
      ...     nn.Dense(2).apply({"batch_stats": {}}, jnp.ones(3))
      Traceback (most recent call last):
      TypeError: probe: variables hold no 'params' collection (they hold 'batch_stats'); ...
      >>> with naming_params_alone(None, "probe"):
      ...     pass
      Traceback (most recent call last):
      TypeError: probe: variables must be what model.init returns, a mapping of collection ...
    """
    variables = checked_variables(variables, caller)
    try:
        yield variables
    except MISSING_PARAMS as error:
        text = params_alone_text(variables, error, caller)
        read = _COLLECTION_READ.search(str(error))
        if text is None and read is not None and read[1] not in variables:
            error.add_note(  # this model's params, say, without their batch_stats
                f"({caller}: the variables hold the collections {sorted(variables)}, not "
                "the one the model reads: pass all that model.init returns)"
            )
            raise
        if text is None:
            error.add_note(
                f"({caller}: {modules_held(variables)}: are they another model's? pass "
                "this model's, e.g. model.init's)"
            )
            raise
        raise TypeError(text) from None
    except flax.errors.ScopeParamShapeError as error:
        error.add_note(
            f"({caller}: are the variables another model's, or of other widths, or is the "
            "input of another shape than the one they were made for? pass this model's, "
            "made by model.init on inputs of this shape)"
        )
        raise


def modules_held(variables: Mapping[str, Any]) -> str:
    """What each collection of ``variables`` holds at its top, to say whose they are.

    Examples:
      >>> modules_held({"params": {"Dense_0": {}, "head": {}}, "knobs": {}})
      "its 'params' hold the modules ['Dense_0', 'head']; its 'knobs' hold the modules []"
    """
    held = {
        name: sorted(map(str, tree)) if isinstance(tree, Mapping) else type(tree).__name__
        for name, tree in variables.items()
    }
    return "; ".join(f"its {name!r} hold the modules {keys}" for name, keys in held.items())


_OTHER_KINDS = (
    (KNOBS, "knob", "px.tweak sets a knob, and variables['knobs'] holds its value"),
    ("params", "param", "variables['params'] holds it (jax.grad over them, its gradient)"),
)
"""``(collection, what, where to find it)`` of the paths a selector of tagged values may
have meant."""


@contextlib.contextmanager
def naming_other_kinds(
    variables: Mapping[str, Any], model: Any = None, kwargs: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """Within it, a selector of tagged values that matched none, but matches a knob or a
    param of ``variables``, says so (the `SelectorError` gains a sentence), as does one
    whose tag ``model`` skipped when applied with ``kwargs``: its ``_untagged_reason``
    (`phosjax.models.graph.GraphModel`'s; private, so no user module's field or method of
    that name is taken for it) says why.

    Examples:
      >>> import jax.numpy as jnp
      >>> with naming_other_kinds({"knobs": {"b": {"T": jnp.ones(())}}}):
      ...     select(["b/h"], "**/T", what="tagged value")
      Traceback (most recent call last):
      phosjax.core._selectors.SelectorError: Selector '**/T' matched no tagged value among 1;
      nearest: 'b/h'. It matches knob 'b/T', which is no tagged value: px.tweak sets a knob,
      and variables['knobs'] holds its value.
    """
    try:
        yield
    except SelectorError as error:
        if error.what != "tagged value" or error.selector is None:
            raise
        for collection, what, where in _OTHER_KINDS:
            paths = flatten(variables.get(collection, {}))
            found = select(paths, error.selector, allow_empty=True)
            if found:
                hint = f" It matches {what} {found[0]!r}, which is no tagged value: {where}."
                raise SelectorError(f"{error}{hint}") from None
        reason = getattr(model, "_untagged_reason", None)
        skipped = reason(error.selector, kwargs or {}) if reason else None
        if skipped:
            raise SelectorError(f"{error} {skipped}") from None
        raise


@contextlib.contextmanager
def noting_inputs_by_name(model: nn.Module, caller: str, method: Any = None) -> Iterator[None]:
    """Adds to Python's error for the method ``model.apply`` calls (``method``, as
    ``model.apply`` takes it: ``__call__`` by default) missing positional arguments (a
    model of several inputs, given ``x`` alone) that ``caller`` passes ``x`` alone by
    position, so the others are given by name. The same error of another method, which
    the model's own code calls, gets no note.

    Examples:
      >>> import flax.linen as nn
      >>> with noting_inputs_by_name(nn.Dense(2), "probe"):
      ...     raise TypeError("Dense.__call__() missing 1 required positional argument: 'y'")
      Traceback (most recent call last):
      TypeError: Dense.__call__() missing 1 required positional argument: 'y'
      (probe passes the model x alone by position: give its other inputs by name, as
      probe(..., y=...) passes them to model.apply)
    """
    method = "__call__" if method is None else method
    applied = getattr(type(model), method, None) if isinstance(method, str) else method
    called = re.escape(getattr(applied, "__qualname__", "?"))  # a subclass: its base's
    try:
        yield
    except TypeError as error:
        found = re.match(
            rf"{called}\(\) missing \d+ required positional arguments?: (.*)", str(error)
        )
        if found:
            names = ", ".join(f"{name}=..." for name in re.findall(r"'(\w+)'", found[1]))
            error.add_note(
                f"({caller} passes the model x alone by position: give its other inputs "
                f"by name, as {caller}(..., {names}) passes them to model.apply)"
            )
        raise


@contextlib.contextmanager
def naming_apply_errors(
    model: nn.Module, variables: Any, caller: str, method: Any = None
) -> Iterator[Mapping[str, Any]]:
    """Where ``caller`` runs ``model.apply`` on ``variables`` (checked: it yields them) and
    ``x`` alone by position: `naming_params_alone` and `noting_inputs_by_name` in one.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp
      >>> with naming_apply_errors(nn.Dense(2), {"params": {}}, "probe") as variables:
      ...     sorted(variables)
      ['params']
    """
    with (
        naming_params_alone(variables, caller) as variables,
        noting_inputs_by_name(model, caller, method),
    ):
        yield variables


def apply_collecting(
    model: nn.Module,
    variables: Mapping[str, Any],
    *args: Any,
    collect: Sequence[str],
    mutable: Mutable = False,
    **kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """Runs ``model.apply`` and also returns the ``collect`` collections it wrote.

    The ``collect`` collections start empty: what ``variables`` holds of them (say, the
    ``intermediates`` of an earlier call merged back in) would add to this call's.
    ``mutable`` is any of Flax's filters, ``nn.DenyList(...)`` too.

    Returns:
      ``(output, collected)``: ``output`` is exactly what ``model.apply(variables, *args,
      mutable=mutable, **kwargs)`` returns (a pair with the updated state when
      ``mutable`` asks for any), ``collected`` maps each name in ``collect`` to its tree.
    """
    asked = union_filters(mutable, list(collect))
    fresh = {name: tree for name, tree in variables.items() if name not in collect}
    out, state = model.apply(fresh, *args, mutable=asked, **kwargs)
    collected = {name: state.get(name, {}) for name in collect}
    # the caller's collections stay in ``state``, even collected ones
    state = {name: tree for name, tree in state.items() if in_filter(mutable, name)}
    return (out if mutable is False else (out, state)), collected


def _recorded_shapes(
    model: nn.Module, variables: Mapping[str, Any], *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """The ``intermediates`` collection ``model`` records on ``args``, as shapes; a leaf
    that JAX cannot trace (a str tagged) stays itself."""
    kept: dict[str, Any] = {}

    def run(variables: Mapping[str, Any]) -> Any:
        collected = apply_collecting(model, variables, *args, collect=[INTERMEDIATES], **kwargs)
        leaves, kept["tree"] = jax.tree.flatten(collected[1][INTERMEDIATES])
        kept["leaves"] = leaves
        return [leaf if _traceable(leaf) else None for leaf in leaves]

    shapes = jax.eval_shape(run, variables)
    leaves = [s if s is not None else leaf for s, leaf in zip(shapes, kept["leaves"], strict=True)]
    return jax.tree.unflatten(kept["tree"], leaves)


def _traceable(leaf: Any) -> bool:
    """Whether JAX can trace ``leaf``; an int too large for its dtype counts, for JAX to name."""
    try:
        return bool(valid_jaxtype(leaf))
    except OverflowError:
        return True


def _is_tag(record: Any) -> bool:
    """Whether `tag` made ``record``, a value of ``intermediates`` (unwrapped or not): its
    records are `Calls`, those of Flax's ``sow`` and ``capture_intermediates`` plain tuples.
    The record tells even where no tag ran in Python: a trace that `nn.jit` reused, from an
    earlier call or from a sibling module of the same fields (it fingerprints neither
    names nor paths).

    Examples:
      >>> _is_tag(Calls((1.0,), ((),))), _is_tag((1.0,))
      (True, False)
    """
    return isinstance(record, Calls)


def tag_shapes(
    model: nn.Module, variables: Mapping[str, Any], *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """``{path: jax.ShapeDtypeStruct}`` of every value ``model`` tags on ``args``.

    Traced abstractly with `jax.eval_shape`, so it costs no computation. A value tagged
    by several calls of one module maps to a tuple of shapes; a pytree-valued tag maps
    to a pytree of shapes; a leaf that is no array (a str) stays itself.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> class Net(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         h = px.tag(self, "hidden", nn.Dense(3)(x))
      ...         return px.tag(self, "pair", (h, h.sum(-1)))
      >>> x = jnp.ones((4, 5)); variables = Net().init(jax.random.key(0), x)
      >>> jax.tree.map(lambda s: s.shape, tag_shapes(Net(), variables, x))
      {'hidden': (4, 3), 'pair': ((4, 3), (4,))}
      >>> class Sows(nn.Module):  # a value Flax's sow stored is no tag
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         self.sow("intermediates", "sown", x)
      ...         return px.tag(self, "tagged", x)
      >>> list(tag_shapes(Sows(), {}, x))
      ['tagged']

    Raises:
      TypeError: ``model`` is no module (`check_module`), or ``variables`` are no
        collections (None; the params alone: `naming_params_alone`), naming tag_shapes
        and what model.init returns.
    """
    check_module("tag_shapes", model)
    with naming_params_alone(variables, "tag_shapes") as variables:
        recorded = _recorded_shapes(model, variables, *args, **kwargs)
    tags = [path for path, record in flatten(recorded, unwrap=False).items() if _is_tag(record)]
    unwrapped = flatten(recorded)
    return {path: unwrapped[path] for path in tags}


def dropped_tags(
    seen: Mapping[str, Mapping[str, None]], recorded: Iterable[str]
) -> list[str] | None:
    """The paths where `tag` ran (as `tags_seen` saw) that the ``recorded`` paths of
    ``intermediates`` lack: a lifted transform whose ``variable_axes`` do not list
    ``intermediates`` dropped them; None when no tag was seen running (a trace that
    `nn.jit` cached runs no Python), so what was dropped is unknown.

    Examples:
      >>> dropped_tags({"intermediates": {"pre": None, "scan/h": None}}, ["pre"])
      ['scan/h']
    """
    if not seen:
        return None
    recorded = set(recorded)
    return [path for path in seen.get(INTERMEDIATES, {}) if path not in recorded]


def tag_call_shapes(
    model: nn.Module, variables: Mapping[str, Any], *args: Any, **kwargs: Any
) -> tuple[dict[str, tuple[Any, ...]], list[str], list[str] | None]:
    """``({path: (shapes of call 1, call 2, ...)}, sown, dropped)``: the shapes of every
    value `tag` records, with one item per call, the paths of the other values in
    ``intermediates`` (put there by Flax's ``sow`` or ``capture_intermediates``, which
    `inject` and `grad_of` cannot reach) and those of the tags a lifted transform dropped
    (`dropped_tags`).

    Unlike `tag_shapes`, a tag recorded once is a 1-tuple too, so a tuple-valued tag is
    never mistaken for several calls.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Pair(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         self.sow("intermediates", "sown", x)
      ...         return px.tag(self, "pair", (x, 2 * x))
      >>> calls, sown, _ = tag_call_shapes(Pair(), {}, jnp.ones(3))
      >>> {path: len(shapes) for path, shapes in calls.items()}, sown
      ({'pair': 1}, ['sown'])
    """
    with tags_seen() as seen:
        flat = flatten(_recorded_shapes(model, variables, *args, **kwargs), unwrap=False)
    calls = {p: c for p, c in flat.items() if _is_tag(c)}
    return calls, [p for p in flat if p not in calls], dropped_tags(seen, flat)


def no_array_in(calls: Any) -> Any:
    """The first leaf of ``calls`` (tagged at a path) that is no array (a str), else None.

    Examples:
      >>> no_array_in(("gelu",)), no_array_in((jax.ShapeDtypeStruct((2,), "float32"),))
      ('gelu', None)
    """
    return next((s for s in jax.tree.leaves(calls) if not hasattr(s, "dtype")), None)


def check_tagged_arrays(what: str, path: str, calls: tuple[Any, ...]) -> None:
    """Raises a TypeError where a call tagged at ``path`` (`tag_call_shapes`) holds a leaf
    that is no array (a str), naming ``what`` was asked (``"inject"``), ``path`` and it.

    Examples:
      >>> check_tagged_arrays("inject", "kind", ("gelu",))
      Traceback (most recent call last):
      TypeError: Cannot inject 'kind': the tagged value there holds 'gelu' (a str), not an
      array; px.probe reads it, but only arrays can be injected or differentiated.
      >>> check_tagged_arrays("inject", "note", ("a note of fifty characters, cut where it ends",))
      Traceback (most recent call last):
      TypeError: Cannot inject 'note': the tagged value there holds 'a note of fifty characters,
      cut where … (a str), not an array; ...
    """
    leaf = no_array_in(calls)
    if leaf is not None:
        raise TypeError(
            f"Cannot {what} {path!r}: the tagged value there holds {cut_repr(leaf, 40)} "
            f"(a {type(leaf).__name__}), not an array; "
            "px.probe reads it, but only arrays can be injected or differentiated."
        )


def select_tags(
    tags: Mapping[str, Any],
    sown: Sequence[str],
    selector: str,
    dropped: Sequence[str] | None = None,
) -> list[str]:
    """The paths of ``tags`` that ``selector`` matches (see `select`).

    Raises:
      SelectorError: it matches none; the message lists the nearest tags, and says so
        when it matches a value that Flax's ``sow`` stored, or one of the tags a lifted
        transform ``dropped``.
    """
    found = select(tags, selector, what="tagged value", allow_empty=True)
    foreign = [] if found else select(sown, selector, allow_empty=True)
    if foreign:
        raise SelectorError(
            f"Selector {selector!r} matched no tagged value, only {foreign[0]!r} in "
            f"{INTERMEDIATES!r}, which Flax's sow (or capture_intermediates) stored, not "
            "px.tag: only a value tagged with px.tag(self, name, value) can be injected or "
            "differentiated with respect to."
        )
    return found or select(tags, selector, what="tagged value", dropped=dropped)  # raises


def hands_back_every_collection(mutable: Mutable) -> bool:
    """Whether ``model.apply(..., mutable=mutable)`` hands back collections the caller did
    not name (``True``, an ``nn.DenyList``): a transform's own values put in a collection
    must then be taken out of the state, or variables updated from it keep them.

    Examples:
      >>> hands_back_every_collection(True), hands_back_every_collection(["batch_stats"])
      (True, False)
    """
    return mutable is True or isinstance(mutable, DenyList)


def apply_reaching_tags(
    model: nn.Module,
    variables: Mapping[str, Any],
    *args: Any,
    collection: str,
    paths: Iterable[str],
    **kwargs: Any,
) -> Any:
    """`apply_collecting` (``kwargs`` hold ``collect=``), raising unless every one of
    ``paths`` in ``collection`` (``injections`` or ``perturbations``) reached its tag.
    Under ``mutable=True`` (or an ``nn.DenyList``) the state handed back is
    ``model.apply``'s without ``collection``: the values the caller's transform put there
    are no state of the model, and variables updated from it would inject them again in
    every later call.

    Raises:
      ValueError: a path's entry never reached its tag: a lifted transform (nn.scan,
        nn.vmap...) whose ``variable_axes`` omit ``collection`` dropped it, silently.
    """
    with tags_seen() as seen:
        result = apply_collecting(model, variables, *args, **kwargs)
    if any(path not in seen.get(INTERMEDIATES, {}) for path in paths):
        seen = _tags_seen_inlining_jit(model, variables, *args, **kwargs) or seen
    ran = seen.get(INTERMEDIATES, {})
    missed = [p for p in paths if p in ran and p not in seen.get(collection, {})]
    if missed:
        raise ValueError(
            f"The {collection!r} entry for {missed[0]!r} never reached its tag: a lifted "
            f"transform (nn.scan, nn.vmap...) whose variable_axes omit {collection!r} dropped "
            "it, though it kept the tagged value in 'intermediates'. Give it "
            "variable_axes=px.scan_axes(params=0), which lists all of phosjax's collections."
        )
    if not hands_back_every_collection(kwargs.get("mutable", False)):  # those named, as asked
        return result
    (output, state), collected = result
    return (output, {name: tree for name, tree in state.items() if name != collection}), collected


def _tags_seen_inlining_jit(
    model: nn.Module, variables: Mapping[str, Any], *args: Any, **kwargs: Any
) -> dict[str, dict[str, None]] | None:
    """What `tags_seen` keeps of `apply_collecting` traced abstractly with nn.jit inlined:
    a trace that nn.jit reused (from an earlier call, or from a sibling block of the same
    fields: it fingerprints no name) runs no tag in Python, so it cannot tell whether an
    injection reached its tag. None where it cannot be inlined (`traced_inlining_jit`)."""
    with tags_seen() as seen:
        shapes = traced_inlining_jit(
            jax.eval_shape, lambda: apply_collecting(model, variables, *args, **kwargs)
        )
    return None if shapes is None else seen


def traced_inlining_jit(trace: Callable[[Callable[[], Any]], Any], fn: Callable[[], Any]) -> Any:
    """``trace(fn)`` (`jax.eval_shape`; or ``lambda f: jax.jit(f)()``) with nn.jit inlined
    (`jax.disable_jit`), so that a trace nn.jit would reuse runs its Python again; None
    where that fails: inlining unrolls every scan, and JAX cannot unroll one of length 0
    (it raises), though the model runs. The caller keeps what it knew without it."""

    def inlined() -> Any:
        with jax.disable_jit():
            return fn()

    try:
        return trace(inlined)
    except Exception:  # only the inlining failed: the model ran without it
        return None


def jit_keeping_constants(fn: Callable[..., Any], *args: Any) -> Any:
    """``jax.jit(fn)(*args)`` where ``fn``'s output may hold leaves that are not arrays
    (a string `note`): those are taken as they were when traced, the arrays computed.
    Only the arrays of ``args`` are traced (`arrays_apart`, as for the output): their other
    leaves (a Python int that the model loops over) reach ``fn`` as they are, as
    ``model.apply`` gets them.

    Examples:
      >>> import jax.numpy as jnp
      >>> jit_keeping_constants(lambda x: {"act": "gelu", "mean": x.mean()}, jnp.ones(2))
      {'act': 'gelu', 'mean': Array(1., dtype=float32)}
      >>> jit_keeping_constants(lambda x, n: x[:n], jnp.ones(3), 2)
      Array([1., 1.], dtype=float32)
    """
    arrays, put_back = arrays_apart(args)
    output: dict[str, Any] = {}  # its put_back: the output's other leaves, as traced

    def arrays_only(arrays: list[Any]) -> list[Any]:
        computed, output["put_back"] = arrays_apart(fn(*put_back(arrays)))
        return computed

    computed = jax.jit(arrays_only)(arrays)  # sets output["put_back"]
    return output["put_back"](computed)
