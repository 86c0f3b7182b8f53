"""Loss terms gathered over a model: `regularize` and `aux_total`."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core.scope import in_filter

from phosjax._callables import cut_repr, shown
from phosjax.core._collections import AUX_LOSS, PATH_WEIGHTS, SCANNED, TRANSIENT
from phosjax.core._path_weights import check_path_weights_kept, path_weights_opened
from phosjax.core._paths import SEP, flatten
from phosjax.core._record import Calls, check_recorded
from phosjax.core._selectors import select_items
from phosjax.core._tags import aux_losses_raised


def _calls(record: Any) -> list[tuple[Any, int]]:
    """``(value, lifted axes)`` of each call a record holds; a value outside a `Calls`
    (a param, `probe`'s output) is one call, its axes all its own."""
    if isinstance(record, Calls):
        return [(value, record.lifted_axes(i)) for i, value in enumerate(record)]
    return [(value, 0) for value in (record if isinstance(record, tuple) else (record,))]


def _sum_per_slice(fn: Callable[[Any], jax.Array], value: Any, lifted: int, path: str) -> jax.Array:
    """``fn(value)``; with ``lifted`` leading axes (stacked layers), the sum of ``fn`` of
    each slice over them, as the unrolled layers would add up.

    Raises:
      ValueError: ``fn`` returned no scalar (for one slice), naming ``path`` and the shape.
      TypeError: ``fn`` returned no number (None: a function without ``return``), naming
        ``path`` and what it returned.
    """
    if lifted:
        slices = jax.tree.map(lambda a: a.reshape(-1, *a.shape[lifted:]), value)
        out = jax.vmap(fn)(slices)
    else:
        out = fn(value)
    try:
        terms = jnp.asarray(out) if lifted else jnp.asarray(out)[None]
    except (TypeError, ValueError):  # JAX's names no path: "None is not a valid value..."
        raise TypeError(
            f"regularize: fn gave {path!r} {shown(out)}, not a number; return a scalar, e.g. "
            "lambda h: jnp.abs(h).mean()."
        ) from None
    if terms.shape[1:]:
        raise ValueError(
            f"regularize: fn gave {path!r} a value of shape {terms.shape[1:]}, not a "
            "scalar; reduce it in fn, e.g. lambda h: jnp.abs(h).mean()."
        )
    return jnp.sum(terms)


def regularize(
    values: Mapping[str, Any],
    selector: str | Iterable[str],
    fn: Callable[[jax.Array], jax.Array],
    *,
    what: str = "path",
) -> jax.Array:
    """The sum of ``fn(value)`` over every value a selector matches.

    ``values`` is a nested tree (``variables["params"]``, boxed by
    ``nn.with_partitioning`` or not; a collection) or the flat ``{path: value}`` that
    `probe` returns. A value recorded by several calls adds
    ``fn`` of each. A path several selectors match counts once.

    In a collection each tag is a record with one item per call, so a tag whose value
    is itself a tuple or dict (``tag(self, "pair", (a, b))``) reaches ``fn`` whole.
    `probe`'s flat output holds no records: there a tuple reads as one value per call
    and a dict's entries as values of their own (select ``"pair/*"``). To give ``fn``
    such a tag whole, pass the collection (or tag a list).

    A value that a lifted transform stacked in a collection of records (``nn.scan``'s
    layers, nested scans too, ``nn.vmap``'s members) reaches ``fn`` one slice at a time,
    and the slices add up: a scanned block regularizes as its unrolled layers do (`tag`
    records each call's shape, so the collection tells the stacked axes). `probe`'s output
    holds plain arrays: there ``fn`` gets the whole ``(layers, ...)`` stack. For a scanned
    model, pass the collection (``model.apply(..., mutable=["intermediates"])``). Params
    keep no such record: a stacked kernel reaches ``fn`` whole, ``(layers, in, out)``,
    which a sum of squares or of absolute values does not mind; for any other ``fn``, map
    it over the layer axis (``lambda w: jax.vmap(fn)(w).sum()``).

    Raises:
      SelectorError: a selector matches nothing (the message calls the paths ``what``:
        ``"param"``, ``"tagged value"``...).
      TypeError: ``fn`` is no function (the arguments swapped?), or returns no number
        (None: no ``return``; the path named), or ``values`` no mapping (None, an array:
        give a dict ``{"h": h}``).
      ValueError: ``selector`` is an empty list, or ``fn`` returns no scalar (an array
        would add up elementwise, or fail to broadcast): the message names the path and
        the shape.

    Examples:
      >>> import jax.numpy as jnp, phosjax as px
      >>> found = {"a/pre_act": jnp.array([1.0, -3.0]), "b/pre_act": jnp.array([2.0])}
      >>> float(px.regularize(found, "**/pre_act", lambda h: jnp.abs(h).mean()))
      4.0
      >>> from phosjax.layers import Repeat
      >>> import flax.linen as nn, jax
      >>> stack = Repeat(nn.Dense(2, parent=None), num_layers=3)
      >>> params = jax.eval_shape(stack.init, jax.random.key(0), jnp.ones((1, 2)))["params"]
      >>> float(px.regularize(params, "**/kernel", lambda w: w.ndim, what="param"))  # whole
      3.0
    """
    if not callable(fn):
        raise TypeError(
            f"regularize: fn must be a function of one value to a scalar (e.g. lambda h: "
            f"jnp.abs(h).mean()), got {cut_repr(fn)}; call it as regularize(values, selector, fn)."
        )
    if not isinstance(values, Mapping):
        raise TypeError(
            f"regularize: values must be a tree of them by path (variables['params'], a "
            f"collection, or probe's {{path: value}}), got {shown(values)}."
        )
    flat = flatten(nn.meta.unbox(values), unwrap=False)  # boxed params: their arrays
    total = jnp.zeros(())
    for path, record in select_items(flat, selector, what=what).items():
        for value, lifted in _calls(record):
            term = _sum_per_slice(fn, value, lifted, path)
            with jax.numpy_dtype_promotion("standard"):  # float32 + bfloat16, even if strict
                total = total + term
    return total


_OTHER_COLLECTIONS = frozenset({"params", "batch_stats", *SCANNED}) - {AUX_LOSS}
"""Collections a model's state may hold besides ``aux_loss``, none of them losses."""


def _a_collection(name: str, tree: Any) -> bool:
    """Whether ``tree``, at ``name`` at the top of what `aux_total` was given, is a
    collection of a state, not the losses of a submodule so named (a loss recorded at the
    top is no mapping): it holds arrays (params, batch_stats), or nothing, or it is named
    like a collection of records (path_weights), which only its name tells apart.

    Examples:
      >>> losses = {"l1": Calls((jnp.ones(()),), ((),))}
      >>> _a_collection("params", losses), _a_collection("params", {"w": jnp.ones(2)})
      (False, True)
      >>> _a_collection("path_weights", losses), _a_collection("l1", losses["l1"])
      (True, False)
    """
    return isinstance(tree, Mapping) and (name in TRANSIENT or not _records_only(tree))


def _records_only(tree: Mapping[str, Any]) -> bool:
    """Whether ``tree`` holds records (tuples, one item per call) and nothing else."""
    records = flatten(tree, unwrap=False).values()
    return bool(records) and all(isinstance(record, tuple) for record in records)


def aux_total(aux: Mapping[str, Any]) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The total of the auxiliary losses one forward pass recorded, and the total per name.

    Each call of `aux_loss` recorded one scalar (already scaled by its path weight);
    they all add up: over modules, over repeated calls, and over every axis a lifted
    transform stacked them on. That is the layer axis of a scanned block (which adds up
    like its unrolled layers), and also the member axis of an ensemble made with
    ``nn.vmap`` (``variable_axes`` listing ``aux_loss``): its total is the sum of its
    members' totals, as the loss of members trained together is the sum of theirs. Both
    axes look alike in the collection; for one total per member, map over the member
    axis: ``jax.vmap(lambda a: aux_total(a)[0])(aux)`` (``aux_loss=0``, as
    `scan_axes` gives). A transform whose ``variable_axes`` omit ``aux_loss`` drops the
    losses raised inside it (`check_aux_losses_kept` tells).

    Args:
      aux: the ``aux_loss`` collection that ``model.apply(..., mutable=["aux_loss"])``
        returned.

    Raises:
      TypeError: ``aux`` is no mapping (None, an array).
      ValueError: ``aux`` is the state holding the collection and others (its
        ``path_weights`` or ``batch_stats`` would add up as losses), or a state of others
        alone (a model that raised no aux loss: ``state.get("aux_loss", {})``). A top
        submodule named like a collection holding arrays (``params``) is told from it by
        its records; one named like a collection of records (``path_weights``) is not.

    Examples:
      >>> import jax.numpy as jnp
      >>> total, by_name = aux_total({"moe_0": {"balance": (jnp.array(0.5),)},
      ...                             "scanned": {"balance": (jnp.array([1.0, 2.0]),)},
      ...                             "head": {"l1": (jnp.array(0.25),)}})
      >>> float(total), {k: float(v) for k, v in by_name.items()}
      (3.75, {'balance': 3.5, 'l1': 0.25})
      >>> import jax
      >>> ensemble = {"members": {"l1": (jnp.array([0.5, 1.0]),)}}  # two members' losses
      >>> float(aux_total(ensemble)[0]), jax.vmap(lambda a: aux_total(a)[0])(ensemble).tolist()
      (1.5, [0.5, 1.0])
    """
    if not isinstance(aux, Mapping):
        raise TypeError(
            f"aux_total takes the {AUX_LOSS!r} collection that model.apply(..., "
            f"mutable=[{AUX_LOSS!r}]) hands back in its state, got {shown(aux)}."
        )
    held = ", ".join(repr(name) for name in aux)
    others = [name for name in aux if name != AUX_LOSS and _a_collection(name, aux[name])]
    if AUX_LOSS not in aux:  # a state of others alone: of the collections a model has
        others = [name for name in others if name in _OTHER_COLLECTIONS]
    elif not isinstance(aux[AUX_LOSS], Mapping):  # a loss of that name is no collection
        others = []
    if others:
        refused = (
            f"state[{AUX_LOSS!r}], not the state holding it (collections {held}): the others "
            "would add up as losses"
            if AUX_LOSS in aux
            else f"not a state of others (collections {held}), which would add up as losses: "
            f"apply hands back no {AUX_LOSS!r} where the model raised none; pass "
            f"state.get({AUX_LOSS!r}, {{}}) (a total of 0)"
        )
        if all(_records_only(aux[name]) for name in others):  # told by name alone
            refused += f"; or, if {others[0]!r} is a submodule of the top module, rename it"
        raise ValueError(f"aux_total takes the {AUX_LOSS!r} collection, {refused}.")
    by_name: dict[str, jax.Array] = {}
    for path, record in flatten(aux, unwrap=False).items():
        name = path.rsplit(SEP, 1)[-1]
        for value in record if isinstance(record, tuple) else (record,):
            with jax.numpy_dtype_promotion("standard"):  # float32 + bfloat16, even if strict
                by_name[name] = by_name.get(name, jnp.zeros(())) + jnp.sum(value)
    total = sum(by_name.values(), jnp.zeros(()))
    return total, by_name


def check_aux_losses_kept(raised: Iterable[str], aux: Mapping[str, Any]) -> None:
    """Raises unless every aux loss in ``raised`` (their paths, as `aux_losses_raised`
    kept them during a call) is in ``aux``, the ``aux_loss`` collection that call returned.

    A lifted transform (``nn.vmap``, ``nn.scan``...) whose ``variable_axes`` omit
    ``aux_loss`` makes the collection immutable inside it: the losses raised there are
    dropped, and `aux_total` would silently add nothing for them.

    Raises:
      ValueError: naming the first loss missing and the fix.
      TypeError: ``raised`` is one path, a str, or no list of paths (None).

    Examples:
      >>> check_aux_losses_kept(["members/l1"], {})
      Traceback (most recent call last):
      ValueError: aux loss 'members/l1' was raised but not recorded: ...
    """
    what = "aux loss {!r} was raised"
    check_recorded(AUX_LOSS, raised, aux, what, "it would add nothing to the loss")


def apply_checking_records(apply: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``apply(*args, **kwargs)``, a Flax ``apply`` whose ``mutable`` lists ``aux_loss``
    and ``path_weights``, raising where a lifted transform dropped an aux loss raised or a
    path weight opened in it (`check_aux_losses_kept`, `check_path_weights_kept`): what
    the train step and the bench's planning run the model with. Of the two, it checks
    those ``mutable`` takes (a list, or any Flax filter: a collection not listed, or
    denied by an ``nn.DenyList``, records nothing, by the caller's choice, and is not
    taken for one a transform dropped).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Member(nn.Module):
      ...     def __call__(self, x):
      ...         return px.aux_loss(self, "l1", jnp.abs(x).mean())
      >>> Members = nn.vmap(Member, variable_axes={}, axis_size=2)  # no aux_loss axis
      >>> apply_checking_records(Members().apply, {}, jnp.ones((2, 3)), mutable=["aux_loss"])
      Traceback (most recent call last):
      ValueError: aux loss 'l1' was raised but not recorded: ...
    """
    mutable = kwargs.get("mutable", True)  # none: apply hands back no state to unpack
    checked = {name for name in (AUX_LOSS, PATH_WEIGHTS) if in_filter(mutable, name)}
    with aux_losses_raised() as raised, path_weights_opened() as opened:
        out, written = apply(*args, **kwargs)
    if AUX_LOSS in checked:
        check_aux_losses_kept(raised, written.get(AUX_LOSS, {}))  # else a dropped one adds 0
    if PATH_WEIGHTS in checked:
        check_path_weights_kept(opened, written.get(PATH_WEIGHTS, {}))  # else no metric for it
    return out, written
