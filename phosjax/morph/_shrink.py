"""`mask` and `shrink`: dead channels zeroed, or removed from a variables tree."""

import dataclasses
import functools
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from phosjax._callables import cut_repr
from phosjax._listing import counted
from phosjax.models import ModelConfig
from phosjax.models._config import checked_config
from phosjax.morph._fit import fit_config
from phosjax.morph._groups import (
    ChannelGroups,
    check_groups,
    key_path,
    leaf_path,
    leaf_paths,
    leaf_shapes,
    member_leaf,
)


@dataclasses.dataclass(frozen=True)
class Shrunk:
    """What `shrink` returns: the narrower variables, optimizer state, widths and config.

    Attributes:
      variables: the variables without the dead channels.
      opt_state: the optimizer state likewise (``None`` if none was given).
      widths: ``{group name: channels kept}``.
      config: the `ModelConfig` that builds the smaller model (``None`` if none given).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups, shrink
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> small = shrink(variables, {"layers_0": [True, False, True]}, groups)
      >>> small.widths, small.opt_state, small.config, small.variables["params"]["layers_0"]["bias"]
      ({'layers_0': 2}, None, None, Array([0., 0.], dtype=float32))
      >>> small  # how many numbers its trees hold, not the numbers
      Shrunk(variables=(16 numbers in 4 arrays), opt_state=None, widths={'layers_0': 2},
             config=None)
    """

    variables: Any
    opt_state: Any
    widths: dict[str, int]
    config: ModelConfig | None

    def __repr__(self) -> str:  # the dataclass's printed every number of every array
        opt_state = None if self.opt_state is None else numbers_in(self.opt_state)
        return (
            f"Shrunk(variables={numbers_in(self.variables)}, opt_state={opt_state}, "
            f"widths={cut_repr(self.widths, 200)}, config={cut_repr(self.config, 200)})"
        )


def numbers_in(tree: Any) -> str:
    """How many numbers the arrays of ``tree`` hold, in how many arrays (what a result's
    repr shows of them, not the numbers).

    Examples:
      >>> numbers_in({"a": np.zeros((20, 30)), "b": [np.ones(4), 2.0]})
      '(605 numbers in 3 arrays)'
    """
    leaves = jax.tree.leaves(tree)
    count = sum(int(np.size(leaf)) for leaf in leaves)
    return f"({counted(count, 'number')} in {counted(len(leaves), 'array')})"


Dead = dict[str, dict[int, np.ndarray]]
"""``{path in a tree: {axis: a flag per position, set where it is dead}}``, of the axes
that lose a position."""


def _dead(
    groups: ChannelGroups,
    alive: Mapping[str, Any],
    tree: Any,
    caller: str,
    zeroed: bool = False,
    keep_biases: bool = False,
) -> Dead:
    """The `Dead` positions of the leaves of ``tree``.

    With ``zeroed``, only the axes `mask` zeroes (with ``keep_biases``, not the ones only
    added). Member paths resolve in ``tree`` by
    `member_leaf` (a KeyError names one that ``tree`` lacks, a ValueError one of
    another width than traced); ``caller`` as in `leaf_paths`.
    """
    paths = leaf_paths(tree, caller)
    dead: Dead = {}
    for group, keep in zip(groups.groups, groups.alive_arrays(alive), strict=True):
        for member in group.members:
            path = member_leaf(group.name, member, paths)
            if zeroed and not member.zeroed:
                continue
            if keep_biases and not member.kinds & {"out", "scale"}:
                continue
            held = member.channels >= 0
            here = held & ~keep[np.where(held, member.channels, 0)]
            axes = dead.setdefault(path, {})
            axes[member.axis] = axes.get(member.axis, np.zeros_like(here)) | here
    return {
        path: lost
        for path, axes in dead.items()
        if (lost := {a: d for a, d in axes.items() if d.any()})
    }


def _edit(tree: Any, prefix: str, edit: Any) -> Any:
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    leaves = []
    for path, leaf in flat:
        name = key_path(path)
        leaves.append(edit(f"{prefix}{name}" if name else prefix.rstrip("/"), leaf))
    return jax.tree.unflatten(treedef, leaves)


def mask(
    variables: Any, alive: Mapping[str, Any], groups: ChannelGroups, *, keep_biases: bool = False
) -> Any:
    """``variables`` with the slices that produce dead channels set to zero.

    A dead channel's kernel column, bias, and normalization scale and shift (in every
    tied layer) become zero, so the channel's output is zero and the next layer sees
    zero there: the model computes exactly what the `shrink`-ed model computes.
    With ``keep_biases``, only the kernel columns and scales become zero: a dead channel
    then outputs its constant (``act(shift)`` after a BatchNorm), which `fold` moves
    into the next layer's bias. ``variables`` may be the variables or their params,
    whatever the groups were traced from, and traced values (``jax.jit``: a train step
    that masks its params after each update).

    Raises:
      KeyError: a group member's leaf (e.g. a batch statistic, when only params are
        given) is not in ``variables``; the message names it.
      ValueError: a member's leaf has another width than traced (e.g. groups of the
        model before a shrink); the message names the leaf, the group and both lengths.
      ValueError: two leaves of ``variables`` have one path (``['a']['b']`` and
        ``['a/b']``: keys holding ``/``); the message names both.
      TypeError: ``alive`` is traced (an argument of a jitted function): close over it.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups, mask
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> masked = mask(variables, {"layers_0": [True, False, True]}, groups)
      >>> masked["params"]["layers_0"]["kernel"][:, 1]
      Array([0., 0., 0., 0.], dtype=float32)
      >>> jitted = jax.jit(lambda v: mask(v, {"layers_0": [True, False, True]}, groups))
      >>> jitted(variables)["params"]["layers_0"]["kernel"][:, 1]
      Array([0., 0., 0., 0.], dtype=float32)
    """
    check_groups(groups, "mask(variables, alive, groups)")
    return masked(variables, alive, groups, "mask", keep_biases)


def masked(
    variables: Any, alive: Mapping[str, Any], groups: ChannelGroups, caller: str, keep_biases: bool
) -> Any:
    """`mask` of checked ``groups``; ``caller`` as in `leaf_paths`."""
    dead = _dead(groups, alive, variables, caller, zeroed=True, keep_biases=keep_biases)

    def edit(path: str, leaf: Any) -> Any:
        for axis, positions in dead.get(path, {}).items():
            shape = [1] * np.ndim(leaf)
            shape[axis] = -1
            leaf = jnp.where(positions.reshape(shape), 0, leaf).astype(leaf.dtype)
        return jnp.asarray(leaf)

    return _edit(variables, "", edit)


def _shrink_tree(tree: Any, prefix: str, dead: Dead) -> Any:
    def edit(path: str, leaf: Any) -> Any:
        for axis, positions in dead.get(path, {}).items():
            leaf = np.take(np.asarray(leaf), np.flatnonzero(~positions), axis)
        return jnp.asarray(leaf)

    return _edit(tree, prefix, edit)


@dataclasses.dataclass(frozen=True)
class _Fitting:
    """The prefixes an optimizer state's sub-tree fits under (see `_shrink_state`), looked
    up by the keys that end them, so each sub-tree ranks the few its path names."""

    by_last_keys: dict[str, list[str]]  # {the keys (with a '/' after each) ending one: them}
    shallowest: list[str]  # none where it fits under none

    @classmethod
    def of(cls, prefixes: list[str]) -> "_Fitting":
        by_last_keys: dict[str, list[str]] = {}
        for prefix in prefixes:
            keys = prefix.split("/")[:-1]
            for n in range(len(keys)):
                by_last_keys.setdefault("".join(f"{k}/" for k in keys[n:]), []).append(prefix)
        depth = min((p.count("/") for p in prefixes), default=0)
        return cls(by_last_keys, [p for p in prefixes if p.count("/") == depth])

    def __bool__(self) -> bool:
        return bool(self.shallowest)

    def best(self, where: str) -> list[str]:
        """The prefixes of the variables a sub-tree at ``where`` is the state of: a module
        whose whole path is on ``where`` (the longest such), else the one with most of its
        last keys there, else the shallowest; several where they tie."""
        keys = where.split("/")
        named: dict[str, int] = {}  # {prefix: how many of its last keys are on where}
        for i, j in itertools.combinations(range(len(keys) + 1), 2):
            for prefix in self.by_last_keys.get("".join(f"{k}/" for k in keys[i:j]), []):
                named[prefix] = max(named.get(prefix, 0), j - i)
        if not named:
            return self.shallowest
        ranks = {p: (n < p.count("/"), -n) for p, n in named.items()}  # whole first, longest
        return [p for p, r in ranks.items() if r == min(ranks.values())]


def _factored_shapes(row: tuple[int, ...], column: tuple[int, ...]) -> frozenset[tuple[int, ...]]:
    """The shapes of a leaf whose Adafactor second moments factor into ``row`` and
    ``column``: its shape without its widest axis, and without its next widest.

    Examples:
      >>> sorted(_factored_shapes((4,), (5,)))
      [(4, 5), (5, 4)]
    """
    shapes = set()
    for lacking_row, lacking_column in itertools.permutations(range(len(row) + 1), 2):
        width = column[lacking_row - (lacking_row > lacking_column)]
        shape = (*row[:lacking_row], width, *row[lacking_row:])
        widest = sorted(shape)[-2:] == sorted((width, shape[lacking_column]))
        if widest and shape[:lacking_column] + shape[lacking_column + 1 :] == column:
            shapes.add(shape)
    return frozenset(shapes)


def _kept_under(keys: list[str]) -> Iterator[tuple[str, bool]]:
    """The paths an optimizer state's leaf at ``keys`` may be kept under: a run of its
    keys, or two runs in order (a module's path, then a leaf's below it: a state kept per
    module, ``Dense_0/0/mu/bias``); each with whether it ends at the leaf's end.

    Examples:
      >>> [p for p, end in _kept_under(["a", "0", "b"]) if end]
      ['a/b', 'a/0/b', '0/b', 'b']
    """
    spans = list(itertools.combinations(range(len(keys) + 1), 2))
    for start, end in spans:
        yield "/".join(keys[start:end]), end == len(keys)
        for after, last in spans:
            if after > end:
                yield "/".join(keys[start:end] + keys[after:last]), last == len(keys)


def _sub_tree(where: str) -> str:
    """How messages name the optimizer state's sub-tree at path ``where`` ('' the whole)."""
    return f"opt_state sub-tree {where!r}" if where else "opt_state"


def _shrink_state(opt_state: Any, variables: Any, dead: Dead) -> Any:
    """``opt_state`` with its variables-like sub-trees shrunk (see `shrink`).

    A sub-tree is variables-like when each of its leaves is a leaf of ``variables``
    under one prefix (none, a collection, a module: a per-module state) at the same
    path below it and of the same shape; `optax.MaskedNode` holds no leaf. Where
    prefixes that shrink it apart fit, a module whose whole path is on the sub-tree's own
    path is taken (the longest such: a state kept under its module's path), else the one
    with most of its last keys there, else the shortest; if that leaves several (``p/a``
    and ``q/a`` for a state under ``a``), it is an error.
    """
    collections = variables.items() if isinstance(variables, Mapping) else ()
    references = [
        (prefix, leaf_shapes(tree, "shrink"))
        for prefix, tree in [("", variables), *((f"{k}/", v) for k, v in collections)]
    ]
    shapes = references[0][1]
    # {the keys ending a leaf's path: {its shape: what precede them}}
    prefixes: dict[str, dict[tuple[int, ...], list[str]]] = {}
    for path, shape in shapes.items():
        keys = path.split("/")
        for k in range(len(keys)):
            preceding = "".join(f"{p}/" for p in keys[:k])
            prefixes.setdefault("/".join(keys[k:]), {}).setdefault(shape, []).append(preceding)
    watched: dict[str, list[tuple[str, tuple[int, ...]]]] = {}  # {path: [(full path, shape)]}
    for prefix, known in references:
        for path, shape in known.items():
            if prefix + path in dead:
                watched.setdefault(path, []).append((prefix + path, shape))

    @functools.cache
    def fitting(
        found: tuple[tuple[str, tuple[int, ...] | frozenset[tuple[int, ...]]], ...],
    ) -> _Fitting:
        """The prefixes under which the paths of ``found`` (``(path, shape)`` pairs) are
        leaves of the variables of its shapes (of one of them where a set)."""
        known = [(q, s) for q, s in found if not isinstance(s, frozenset)]
        path, shape = known[0] if known else found[0]
        by_shape = prefixes.get(path, {})
        candidates = (
            [p for s in shape for p in by_shape.get(s, [])]
            if isinstance(shape, frozenset)
            else by_shape.get(shape, [])
        )
        fits = [
            p
            for p in candidates
            if all(
                p + q in shapes and shapes[p + q] in (s if isinstance(s, frozenset) else {s})
                for q, s in found
            )
        ]
        return _Fitting.of(fits)

    def prefixes_of(node: Any) -> _Fitting | None:
        try:
            found = tuple(leaf_shapes(node, "shrink").items())
        except ValueError:  # two leaves of one path: no sub-tree of the variables
            return None
        return fitting(found) if found else None

    def fitting_parts(found: dict[str, Any], below: str = "") -> Iterator[tuple[str, _Fitting]]:
        """The outermost sub-trees of ``found`` (``{path: shape}``) that fit variables
        (see `fitting`): each one's path with a '/' after it ('' the whole) and fitting."""
        fits = fitting(tuple(found.items())) if found else None
        if fits:
            yield below, fits
            return
        children: dict[str, dict[str, Any]] = {}
        for path, shape in found.items():
            key, inner, rest = path.partition("/")
            if inner:
                children.setdefault(key, {})[rest] = shape
        for key, child in children.items():
            yield from fitting_parts(child, f"{below}{key}/")

    def refuse_factored(where: str, state: optax.FactoredState) -> None:
        """Raises if ``state`` holds Adafactor's factored second moments of a leaf shrink
        narrows: its ``v_row``/``v_col`` are means over the widths, and whether a leaf is
        factored at all depends on them, so no slice of them is the narrower leaf's state.
        The leaves are those of the variables each outermost sub-tree of ``state.v`` that
        fits them fits best, as a sub-tree's (``tx.init((params, extra))`` holds one)."""
        rows, columns = leaf_shapes(state.v_row, "shrink"), leaf_shapes(state.v_col, "shrink")
        factored = [q for q in rows if rows[q] != (1,) or columns[q] != (1,)]
        if not factored:
            return
        found = {
            q: _factored_shapes(rows[q], columns[q]) if q in factored else s
            for q, s in leaf_shapes(state.v, "shrink").items()
        }
        for below, fits in fitting_parts(found):
            inside = [q for q in factored if q.startswith(below)]
            for full, path in (
                (p + q[len(below) :], q) for p in fits.best(f"{where}/{below}") for q in inside
            ):
                if full not in dead:
                    continue
                raise ValueError(
                    f"{_sub_tree(where)} holds Adafactor's factored second moments "
                    f"(v_row {rows[path]}, v_col {columns[path]}) of {full!r} "
                    f"{shapes[full]}, which shrink narrows; they are means over its widths "
                    "and cannot be sliced: re-initialize the optimizer on the shrunk params "
                    "(tx.init), or use optax.adafactor(..., factored=False)"
                )

    states, _ = jax.tree_util.tree_flatten_with_path(
        opt_state, is_leaf=lambda node: isinstance(node, optax.FactoredState)
    )
    for key, node in states:
        if isinstance(node, optax.FactoredState):
            refuse_factored(jax.tree_util.keystr(key, simple=True, separator="/"), node)

    def cut(prefix: str, node: Any) -> tuple[tuple[str, int, bytes], ...]:
        """What shrink cuts from ``node`` as the state of the variables under ``prefix``."""
        return tuple(
            (path, axis, positions.tobytes())
            for path in leaf_shapes(node, "shrink")
            for axis, positions in sorted(dead.get(prefix + path, {}).items())
        )

    def prefix_for(where: str, node: Any, fits: _Fitting) -> str:
        ways = {cut(p, node): p for p in fits.best(where)}
        if len(ways) > 1:
            shapes_found = cut_repr(leaf_shapes(node, "shrink"), 200)
            raise ValueError(
                f"{_sub_tree(where)} {shapes_found} is shaped like the variables "
                f"of each of {sorted(p.rstrip('/') for p in ways.values())}, which shrink "
                "narrows apart, so "
                "which one's state it is is unknown; keep each module's state under the "
                "module's path (as {'Dense_0': tx.init(params['Dense_0'])}) or "
                "re-initialize the optimizer"
            )
        return next(iter(ways.values()))

    def edit(key: Any, node: Any) -> Any:
        where = jax.tree_util.keystr(key, simple=True, separator="/")
        fits = prefixes_of(node)
        if fits:
            return _shrink_tree(node, prefix_for(where, node, fits), dead)
        for path, at_end in _kept_under(where.split("/")):
            for full, shape in watched.get(path, []):
                if np.shape(node) == shape:
                    raise ValueError(
                        f"opt_state leaf {where!r} has the shape {shape} of {full!r}, which "
                        "shrink changes, but its sub-tree is not shaped like the variables "
                        "(its leaves must be variables' leaves at the same paths, or "
                        "optax.MaskedNode), so it cannot be shrunk; shrink it yourself or "
                        "re-initialize the optimizer"
                    )
                if np.size(node) <= 1:  # a (1,) placeholder or a scalar: nothing to cut
                    continue
                if at_end and np.ndim(node) == len(shape):
                    raise ValueError(
                        f"opt_state leaf {where!r} has the shape {np.shape(node)}, but "
                        f"{full!r} has {shape}: an optimizer state of other widths (another "
                        "model's, or of this one before an earlier shrink); pass the state of "
                        "these variables or re-initialize the optimizer"
                    )
                raise ValueError(
                    f"opt_state leaf {where!r} {np.shape(node)} is kept under {full!r} "
                    f"{shape}, which shrink narrows, but is not shaped like it (a state per "
                    "axis or stacked over steps, as SM3's or L-BFGS's), so it cannot be "
                    "shrunk; re-initialize the optimizer on the shrunk params (tx.init)"
                )
        return node

    return jax.tree_util.tree_map_with_path(
        edit, opt_state, is_leaf=lambda node: bool(prefixes_of(node))
    )


def _refuse_unread(groups: ChannelGroups, variables: Any, widths: dict[str, int]) -> None:
    """Raises if a leaf of ``variables`` in `ChannelGroups.unread` has an axis as long as
    a group that shrink narrows (to ``widths``): it may hold the group's channels, and
    left whole it would not fit the shrunk model (an unread param, flax refuses itself)."""
    narrowed = {g.size: g.name for g in reversed(groups.groups) if widths[g.name] < g.size}
    paths = leaf_paths(variables, "shrink")
    for unread in groups.unread:
        try:
            path = leaf_path(unread, paths)
        except KeyError:  # not given (a statistic, where shrink is given the params)
            continue
        shape = np.shape(paths[path])
        for axis, name in ((a, narrowed[n]) for a, n in enumerate(shape) if n in narrowed):
            raise ValueError(
                f"shrink: the traced call never reads the variable {path!r} {shape} (say, "
                "a statistic only training updates), so which of its axes hold channels is "
                f"unknown, and its axis {axis} is as "
                f"long as group {name!r}, which shrink narrows to {widths[name]} channels: "
                "left whole, it would not fit the shrunk model. Leave it out of the "
                "variables given to shrink (and initialize it anew for the shrunk model), "
                "or trace the groups with a call that reads it"
            )


def shrink(
    variables: Any,
    alive: Mapping[str, Any],
    groups: ChannelGroups,
    *,
    opt_state: Any = None,
    config: ModelConfig | None = None,
) -> Shrunk:
    """Removes the dead channels from ``variables`` (params, batch statistics, ...).

    Pure: nothing is modified in place. ``opt_state`` is shrunk wherever it holds a
    tree shaped like ``variables``, like one of its collections (Adam's moments), or
    like one module's (a state kept per module, under the module's path), leaves masked
    out by `optax.masked` or `optax.multi_transform` aside.
    The shrunk model computes what the original computes with the dead channels masked
    to zero (see `mask`; `fold` first keeps the constant a dead channel outputs, e.g. a
    BatchNorm's shift). Shrinking again with everything alive changes nothing.

    Args:
      variables: the model's variables or their params, whatever the groups were
        traced from.
      alive: ``{group name: bool per channel}``; groups left out stay whole.
      groups: the model's `ChannelGroups`.
      opt_state: an optimizer state to shrink alongside (optional).
      config: the phosjax `ModelConfig` of the model: the result then carries the
        config that builds the smaller model (an error if no config builds it).

    Returns:
      A `Shrunk` with the new variables, optimizer state, widths and config.

    Raises:
      KeyError: a group member's leaf (e.g. a batch statistic, when only params are
        given) is not in ``variables``; the message names it.
      ValueError: a member's leaf has another width than traced (e.g. groups of the
        model before a shrink); the message names the leaf, the group and both lengths.
      ValueError: an ``opt_state`` leaf has a shrunk variable's path and shape, but its
        sub-tree could not be matched to the variables (it would be left too wide), or
        it has the path but another width (the state of another model), or it is kept
        under the path in another shape (L-BFGS's memory, SM3's accumulators per axis);
        or a sub-tree is shaped like several modules that shrink apart and is kept under
        none's name.
      ValueError: ``opt_state`` holds Adafactor's factored second moments of a leaf
        that shrink narrows (``factored=False`` states are shrunk).
      ValueError: ``alive`` keeps no channel of a group (a layer 0 channels wide).
      ValueError: a leaf of a collection other than ``params`` that the traced call
        never reads (a statistic only training updates) has an axis as long as a group
        that shrink narrows: it may hold the group's channels, and which axis does is
        unknown.
      ValueError: two leaves of ``variables`` have one path (``['a']['b']`` and
        ``['a/b']``: keys holding ``/``); the message names both.
      TypeError: ``config`` is not a `ModelConfig` (a model's name alone).

    References:
      Gordon et al., MorphNet, https://arxiv.org/abs/1711.06798

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups, shrink
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> small = shrink(variables, {"layers_0": [True, False, True]}, groups)
      >>> small.widths, small.variables["params"]["layers_2"]["kernel"].shape
      ({'layers_0': 2}, (2, 2))
    """
    check_groups(groups, "shrink(variables, alive, groups)")
    if config is not None:
        checked_config(config, "shrink", keyword="config")
    widths = {
        name: int(keep.sum())
        for name, keep in zip(groups.names, groups.alive_arrays(alive), strict=True)
    }
    emptied = [name for name, width in widths.items() if width == 0]
    if emptied:
        raise ValueError(
            f"shrink: alive keeps no channel of group(s) {emptied}, which would leave layers "
            "0 channels wide; keep at least one per group (alive_channels and expressible "
            "keep each group's best one)"
        )
    _refuse_unread(groups, variables, widths)
    dead = _dead(groups, alive, variables, "shrink")
    new_variables = _shrink_tree(variables, "", dead)
    new_opt_state = None if opt_state is None else _shrink_state(opt_state, variables, dead)
    new_config = None
    if config is not None:
        new_config = fit_config(config, new_variables)
    return Shrunk(new_variables, new_opt_state, widths, new_config)
