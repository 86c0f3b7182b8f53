"""Recording values from inside Flax modules: `tag`, `aux_loss`, `note`.

All three cost nothing unless the caller asks for their collection (makes it
mutable), and none of them stores anything while a model is initialized, so
``model.init`` hands back no transient collections.
"""

import contextlib
import contextvars
from collections.abc import Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from phosjax._callables import a_type, cut_repr
from phosjax.core._collections import AUX_LOSS, BLURB, INJECTIONS, INTERMEDIATES, PERTURBATIONS
from phosjax.core._path_weights import (
    batch_mean,
    count_aux_loss,
    current_path_weight,
    scale_by_path_weight,
)
from phosjax.core._paths import check_path, module_path
from phosjax.core._record import Calls, check_recorded, collecting, record, taking

_SEEN: contextvars.ContextVar[dict[str, dict[str, None]] | None] = contextvars.ContextVar(
    "phosjax_tags_seen", default=None
)


def tags_seen() -> contextlib.AbstractContextManager[dict[str, dict[str, None]]]:
    """Within it, `tag` keeps the path of each value it records (under ``intermediates``
    in the dict yielded), replaces (``injections``) or perturbs (``perturbations``).

    So a tag whose record a lifted transform's ``variable_axes`` dropped can be named,
    and an injection or perturbation that never reached its tag can be told from one
    that did. A tag in a trace that nn.jit reused ran no Python, and is not kept.
    The tags of a model the call applies inside itself (a frozen teacher's ``.apply``)
    are that apply's, not the call's: they are not kept.
    """
    return collecting(_SEEN)


def _seen(collection: str, module: nn.Module, name: str) -> None:
    seen = taking(_SEEN)
    if seen is not None:
        seen.setdefault(collection, {}).setdefault(module_path(module, name))


def tag(module: nn.Module, name: str, value: Any) -> Any:
    """Names a value computed inside ``module`` so it can be probed, injected or differentiated.

    The tagged value is stored in the ``intermediates`` collection (when that collection
    is mutable), replaced by an injected value when `inject` provides one, and shifted by
    a zero perturbation when `grad_of` asks for its gradient. Returns the value to use.

    Args:
      module: the bound module the value belongs to (``self`` inside ``__call__``).
      name: the last segment of the value's path, e.g. ``"pre_act"``.
      value: an array (or pytree of arrays).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> class Net(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         h = px.tag(self, "pre_act", nn.Dense(3)(x))
      ...         return nn.relu(h)
      >>> net = Net(); x = jnp.ones((2, 4))
      >>> variables = net.init(jax.random.key(0), x)
      >>> out, found = px.probe(net, variables, x, "pre_act")
      >>> dense = variables["params"]["Dense_0"]  # pre_act is its output, before the relu
      >>> bool(jnp.allclose(found["pre_act"], x @ dense["kernel"] + dense["bias"]))
      True
    """
    return _tag(module, name, value, beside_submodule=False)


def tag_output(module: nn.Module, name: str, value: Any) -> Any:
    """`tag` of ``value``, ``module``'s output, which its caller tags under a name of the
    caller's choosing (a graph model, a node's at ``<node>/out``): a submodule of
    ``module`` with that name does not stop it while it records no value (`record`'s
    ``beside_submodule``); its params sit in another collection.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> class Block(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return tag_output(self, "out", nn.Dense(2, name="out")(x))
      >>> x = jnp.ones((1, 3)); variables = Block().init(jax.random.key(0), x)
      >>> px.probe(Block(), variables, x, "out")[1]["out"].shape
      (1, 2)
    """
    return _tag(module, name, value, beside_submodule=True)


def calls_tagged(module: nn.Module, name: str) -> int:
    """How many values ``module`` has tagged ``name`` in this apply (0 where tags are not
    recorded): one more after a call of ``module`` than before it is one that ``module``
    tagged itself, at the name its caller tags its output (`tag_output`)."""
    calls: Any = module.get_variable(INTERMEDIATES, name)
    return len(calls) if isinstance(calls, tuple) else 0


def _tag(module: nn.Module, name: str, value: Any, *, beside_submodule: bool) -> Any:
    """`tag`, its record put beside a submodule named ``name`` (`tag_output`) or not."""
    check_path(module, name, "tag")
    if module.has_variable(INJECTIONS, name):
        value = _this_calls_injection(module, name)
        _seen(INJECTIONS, module, name)
    if module.has_variable(PERTURBATIONS, name):
        value = jax.tree.map(jnp.add, value, _this_calls_perturbation(module, name, value))
        _seen(PERTURBATIONS, module, name)
    record(module, INTERMEDIATES, name, value, beside_submodule=beside_submodule)
    _seen(INTERMEDIATES, module, name)
    return value


def _this_calls_injection(module: nn.Module, name: str) -> Any:
    """The injected value for this call of ``tag``: the entry, or this call's item of a
    `Calls`, in which `inject` gives a value tagged by several calls one value per call
    (a tuple is a tuple-valued tag's value; the tagged value may be a placeholder, as a
    graph model's skipped node tags, so its structure cannot tell)."""
    entry: Any = module.get_variable(INJECTIONS, name)
    return _this_call(module, name, entry, "an injected value") if type(entry) is Calls else entry


def _this_calls_perturbation(module: nn.Module, name: str, value: Any) -> Any:
    """The perturbation for this call of ``tag``: the entry, or this call's item of a tuple.

    `grad_of` gives a value tagged by several calls one perturbation per call, in a
    tuple.
    """
    entry: Any = module.get_variable(PERTURBATIONS, name)
    entry_tree: Any = jax.tree.structure(entry)  # Any: jaxlib's PyTreeDef has no stubs
    if entry_tree == jax.tree.structure(value):
        return entry
    return _this_call(module, name, entry, "a perturbation")


def _this_call(module: nn.Module, name: str, entry: tuple[Any, ...], what: str) -> Any:
    """This call's item of ``entry``, one per call: the values recorded so far in
    ``intermediates`` say which call this is."""
    if not module.is_mutable_collection(INTERMEDIATES):
        raise ValueError(
            f"{module_path(module, name)!r} has {what} for each of {len(entry)} calls; "
            f"apply with mutable=['{INTERMEDIATES}'] so that each call takes its own."
        )
    return entry[len(module.get_variable(INTERMEDIATES, name, ()))]


_RAISED: contextvars.ContextVar[dict[str, None] | None] = contextvars.ContextVar(
    "phosjax_aux_losses_raised", default=None
)


def aux_losses_raised() -> contextlib.AbstractContextManager[dict[str, None]]:
    """Within it, `aux_loss` keeps the path of each loss raised outside ``init`` in the
    dict yielded, whether or not it was recorded: one missing from the ``aux_loss``
    collection the call returns was dropped by a lifted transform (`check_aux_losses_kept`).
    The losses of a model the call applies inside itself (a frozen teacher's
    ``.apply``) are that apply's, not the call's: they are not kept.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Member(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         px.aux_loss(self, "l1", jnp.abs(x).mean())
      ...         return x
      >>> Ensemble = nn.vmap(Member, variable_axes={"params": 0}, axis_size=2)  # no aux_loss
      >>> with aux_losses_raised() as raised:
      ...     _, state = Ensemble().apply({}, jnp.ones((2, 3)), mutable=["aux_loss"])
      >>> list(raised), state  # raised, but dropped
      (['l1'], {})
    """
    return collecting(_RAISED)


def aux_loss(module: nn.Module, name: str, value: jax.Array) -> jax.Array:
    """Records an auxiliary loss, multiplied by the path weight of the enclosing branches.

    Inside ``with path_weight(...)`` scopes the loss is scaled by the product of their
    weights, so a loss raised in a branch that carries a quarter of the signal counts a
    quarter. A per-example loss (leading batch axis) is scaled per example, then
    averaged: each call records one scalar, so under `nn.scan` a layer axis stacks them
    and `aux_total` sums them like separate layers.

    Args:
      module: the bound module raising the loss.
      name: the loss's name, e.g. ``"balance"``; per-name totals group on it.
      value: a scalar, or an array with a leading batch axis.

    Returns:
      The scaled, averaged loss (the scalar that is recorded).

    Raises:
      TypeError: ``value`` is no number nor array (None, a string, a dict), or is complex,
        the loss named.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> class Sparse(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         px.aux_loss(self, "l1", jnp.abs(x).mean())
      ...         return x
      >>> _, state = Sparse().apply({}, -2 * jnp.ones(3), mutable=["aux_loss"])
      >>> float(px.aux_total(state["aux_loss"])[0])
      2.0
    """
    check_path(module, name, "aux_loss")
    path = module_path(module, name)
    what = f"aux loss {path!r}"
    try:
        loss = jnp.asarray(value)
    except (TypeError, ValueError):  # JAX's names no loss: "None is not a valid value..."
        raise TypeError(
            f"{what}: a loss must be a number or an array of them, a scalar or one per "
            f"example (B, ...), got {cut_repr(value)} ({type(value).__name__})."
        ) from None
    if jnp.issubdtype(loss.dtype, jnp.complexfloating):  # the total loss would be complex
        raise TypeError(
            f"{what}: a loss must be real, got dtype {loss.dtype}, which the total loss "
            "would take (jax.grad refuses it); record its abs() or its real part."
        )
    scaled = batch_mean(scale_by_path_weight(loss, current_path_weight(), what))
    record(module, AUX_LOSS, name, scaled)
    raised = taking(_RAISED)
    if raised is not None and not module.is_initializing():
        raised.setdefault(path)
    count_aux_loss(path)
    return scaled


_CONSTANT_NOTES: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "phosjax_constant_notes", default=None
)


def _first_not_json(value: Any) -> tuple[Any] | None:
    """``(part,)``, the first part of a note ``value`` that JSON cannot write (a set, a
    dtype, an object, a complex number), or None where every part is a number, a str, a
    bool, None, an array (or array-like, as ``range(3)``) of them, or a list, tuple or dict
    of them: what blurb writes, as ``np.asarray(part).tolist()``.

    Examples:
      >>> _first_not_json({"kind": "gelu", "scale": jnp.ones(()), "steps": range(3)}) is None
      True
      >>> _first_not_json({"kinds": {"gelu"}})
      ({'gelu'},)
    """
    if isinstance(value, Mapping | list | tuple):
        parts = value.values() if isinstance(value, Mapping) else value
        return next(filter(None, map(_first_not_json, parts)), None)
    if value is None or isinstance(value, str | int | float):
        return None
    try:
        array = value if isinstance(value, jax.Array) else np.asarray(value)
    except (TypeError, ValueError):  # ragged, or refusing to be one
        return (value,)
    if array.dtype == object and array.ndim:  # of Python objects: each one judged
        return _first_not_json(array.tolist())
    written = (np.bool_, np.integer, np.floating, np.str_)
    return None if any(jnp.issubdtype(array.dtype, kind) for kind in written) else (value,)


def _holds_arrays(value: Any) -> bool:
    return any(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(value))


def _holds_constants(value: Any) -> bool:
    """Whether ``value`` holds something `nn.scan` cannot carry (a string, a number), or
    nothing at all (``{}``, None: kept as they are)."""
    leaves = jax.tree.leaves(value)
    return not leaves or not all(isinstance(leaf, jax.Array) for leaf in leaves)


def constant_notes() -> contextlib.AbstractContextManager[dict[str, Any]]:
    """Within it, a `note` that holds no array (``"gelu"``) is kept here by path, as its
    first call recorded it, not in the collection: `nn.scan` and `nn.remat` carry arrays
    alone, and a string there is a TypeError. A note that holds both keeps its arrays in
    the collection and the rest here, with `ARRAY` where each array was (`with_arrays`
    puts them back). The notes of a model the call applies inside itself (a frozen
    teacher's ``.apply``) are that apply's, not the call's: they are not kept."""
    return collecting(_CONSTANT_NOTES)


class _ArrayMark:
    def __repr__(self) -> str:
        return "ARRAY"


ARRAY = _ArrayMark()
"""Where a `note` held an array, in the part of it `constant_notes` keeps."""


def _split_note(value: Any) -> tuple[Any, Any]:
    """``(arrays, constants)``: ``value`` with None where it holds no array, and with
    `ARRAY` where it does."""
    is_array = lambda leaf: isinstance(leaf, jax.Array)
    arrays = jax.tree.map(lambda leaf: leaf if is_array(leaf) else None, value)
    constants = jax.tree.map(lambda leaf: ARRAY if is_array(leaf) else leaf, value)
    return arrays, constants


def with_arrays(constants: Any, arrays: Any) -> Any:
    """``constants`` (a note as `constant_notes` keeps it) with each `ARRAY` replaced by
    the array at its place in ``arrays`` (the note's part in the collection).

    Examples:
      >>> with_arrays({"kind": "dense", "scale": ARRAY}, {"kind": None, "scale": 2.0})
      {'kind': 'dense', 'scale': 2.0}
    """
    if constants is ARRAY:
        return arrays
    if isinstance(constants, Mapping):
        return {key: with_arrays(value, arrays[key]) for key, value in constants.items()}
    if isinstance(constants, list | tuple):
        return type(constants)(map(with_arrays, constants, arrays))
    return constants


def note(module: nn.Module, name: str, value: Any) -> None:
    """Records custom summary information for `blurb` (the ``blurb`` collection).

    ``value`` is an array, or any JSON-able Python value (``"gelu"``, a dict of
    numbers), or a mix (``{"kind": "gelu", "scale": x.std()}``); `blurb` computes the
    arrays, and keeps the rest as the first call recorded it (inside `nn.scan` and
    `nn.remat` too).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Gate(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         px.note(self, "open_fraction", (x > 0).mean())
      ...         return x
      >>> _, state = Gate().apply({}, jnp.array([1.0, -1.0]), mutable=["blurb"])
      >>> float(state["blurb"]["open_fraction"][0])
      0.5
    """
    check_path(module, name, "note")
    unwritable = _first_not_json(value)
    if unwritable is not None:
        raise TypeError(
            f"note {module_path(module, name)!r} takes an array or a JSON-able value (a str, "
            f"number, bool or None, or lists and dicts of them), which blurb writes as JSON; "
            f"got {cut_repr(unwritable[0])}, {a_type(unwritable[0])}: give it as one, e.g. "
            "str(value)."
        )
    constants = taking(_CONSTANT_NOTES)
    if constants is None or not _holds_constants(value):
        _record_note(module, name, value)
        return
    arrays, constant = _split_note(value) if _holds_arrays(value) else (None, value)
    if not module.is_initializing():
        constants.setdefault(module_path(module, name), constant)
    if arrays is not None:
        _record_note(module, name, arrays)


def _record_note(module: nn.Module, name: str, arrays: Any) -> None:
    """`record` of a note's ``arrays`` in ``blurb``, its path kept for `notes_written`."""
    record(module, BLURB, name, arrays)
    written = taking(_WRITTEN)
    if written is not None and not module.is_initializing():
        written.setdefault(module_path(module, name))


_WRITTEN: contextvars.ContextVar[dict[str, None] | None] = contextvars.ContextVar(
    "phosjax_notes_written", default=None
)


def notes_written() -> contextlib.AbstractContextManager[dict[str, None]]:
    """Within it, `note` keeps the path of each note whose arrays it records outside
    ``init`` (what `constant_notes` keeps is no array, and is never dropped), whether or
    not they were recorded: one missing from the ``blurb`` collection the call returns
    was dropped by a lifted transform (`check_notes_kept`)."""
    return collecting(_WRITTEN)


def check_notes_kept(written: Iterable[str], notes: Mapping[str, Any]) -> None:
    """Raises unless every note in ``written`` (their paths, as `notes_written` kept them
    during a call) is in ``notes``, the ``blurb`` collection that call returned: a lifted
    transform whose ``variable_axes`` omit ``blurb`` drops the arrays noted inside it.

    Examples:
      >>> check_notes_kept(["members/mean"], {})
      Traceback (most recent call last):
      ValueError: note 'members/mean' was written but not recorded: ... omit 'blurb' ...
    """
    check_recorded(BLURB, written, notes, "note {!r} was written", "blurb cannot show its arrays")
