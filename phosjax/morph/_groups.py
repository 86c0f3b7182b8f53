"""Channel groups: the sets of tied channels of a params tree, found by tracing the model."""

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import flax.errors
import flax.linen as nn
import jax
import numpy as np

from phosjax._callables import a_type, cut_repr
from phosjax._listing import counted, listing
from phosjax._nearest import did_you_mean
from phosjax.core._apply import (
    MISSING_PARAMS,
    checked_variables,
    modules_held,
    params_alone_text,
)
from phosjax.core._module_check import check_module
from phosjax.models.graph import GraphModel
from phosjax.morph._labels import PROD, SUM, Labels
from phosjax.morph._trace import ZEROING, Trace, trace

Monomial = tuple[float, tuple[int, ...]]
"""``(coefficient, group indices)``: ``coefficient * prod(alive[g] for g in groups)``."""


@dataclasses.dataclass(frozen=True)
class Member:
    """One leaf axis that holds a group's channels.

    Attributes:
      path: the leaf's path in the traced tree: ``"params/Dense_0/kernel"`` for
        variables, ``"Dense_0/kernel"`` for a bare params tree (see `leaf_path`).
      axis: the axis of the leaf.
      kinds: how the model uses that axis: ``"out"`` (a free axis of a contraction),
        ``"in"`` (contracted), ``"scale"`` (multiplied on, or divided by an activation),
        ``"bias"`` (added), ``"other"`` (e.g. a divisor: sliced, never zeroed),
        ``"normalized"`` (divided by its own norm, as weight normalization's
        ``g * k / norm(k)``: sliced, never zeroed, which would make 0/0).
      channels: for each position along the axis, the group channel it holds (-1: none).
      norms: for a producer (``"out"``), the paths of the group's normalization scales
        multiplied onto its output (empty: its output is not normalized).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups
      >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
      >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
      >>> member = channel_groups(model, variables, x).groups[0].members[1]
      >>> member, member.module, member.channels.tolist()
      (Member(path='params/layers_0/kernel', axis=1, kinds=frozenset({'out'}), norms=()),
       'params/layers_0', [0, 1, 2, 3, 4, 5, 6, 7])
    """

    path: str
    axis: int
    kinds: frozenset[str]
    channels: np.ndarray = dataclasses.field(repr=False, compare=False)
    norms: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        """The path of the module holding the leaf (the path without the leaf's name).

        Examples:
          >>> Member("params/block/Dense_0/kernel", 1, frozenset({"out"}), np.arange(8)).module
          'params/block/Dense_0'
        """
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def zeroed(self) -> bool:
        """Whether `mask` zeroes this axis's dead slices (it produces the channel, and
        zeroing it makes no inf or NaN).

        Examples:
          >>> import jax, jax.numpy as jnp, flax.linen as nn
          >>> from phosjax.morph import channel_groups
          >>> model = nn.Sequential([nn.Dense(8), nn.BatchNorm(use_running_average=True),
          ...                        nn.relu, nn.Dense(3)])
          >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
          >>> [group] = channel_groups(model, variables, x).groups
          >>> [m.path for m in group.members if not m.zeroed]  # a variance; a consumer
          ['batch_stats/layers_1/var', 'params/layers_3/kernel']
        """
        return bool(self.kinds & ZEROING) and "normalized" not in self.kinds


@dataclasses.dataclass(frozen=True)
class ChannelGroup:
    """Channels that live or die together (a residual stream, a conv and its BatchNorm).

    A channel is dead only if it is dead in every member that produces it.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups
      >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
      >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
      >>> group = channel_groups(model, variables, x).groups[0]
      >>> group.name, group.size, [m.path for m in group.sources("out")]
      ('layers_0', 8, ['params/layers_0/kernel'])
    """

    name: str
    size: int
    members: tuple[Member, ...]

    def sources(self, kind: str) -> tuple[Member, ...]:
        """Members used as ``kind`` (``"out"``: kernels; ``"scale"``: norm scales).

        Examples:
          >>> import jax, jax.numpy as jnp, flax.linen as nn
          >>> from phosjax.morph import channel_groups
          >>> model = nn.Sequential([nn.Dense(8), nn.BatchNorm(use_running_average=True),
          ...                        nn.relu, nn.Dense(3)])
          >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
          >>> [group] = channel_groups(model, variables, x).groups
          >>> [m.path for m in group.sources("out")], [m.path for m in group.sources("scale")]
          (['params/layers_0/kernel'], ['params/layers_1/scale'])
        """
        return tuple(m for m in self.members if kind in m.kinds)


@dataclasses.dataclass(frozen=True)
class ChannelGroups:
    """The tied channel groups of a model and its cost polynomials (see `channel_groups`).

    Attributes:
      groups: the prunable groups, in the order of their first producing leaf.
      paths: every variable leaf's path.
      shapes: every leaf's shape.
      pinned: ``{"path:axis": reason}`` for leaf axes that must keep all their channels.
      params: each leaf's size as a polynomial in the groups' alive counts.
      flops: ``(primitive, polynomial, runs)`` per op: its FLOPs per example
        (contractions: 2 per multiply-add), likewise, in all its runs (an op in a loop's
        body runs once per step: ``runs`` is the product of the loops' lengths, but for a
        loop over the examples, which runs once for one example).
      unread: the paths of the leaves of collections other than ``params`` that the
        traced call never reads (a statistic only training updates): which of their axes
        hold channels is unknown.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups
      >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
      >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> groups.names, groups.shapes[:2], groups.pinned
      (('layers_0',), ((8,), (4, 8)), {'params/layers_2/kernel:1': 'model output'})
      >>> groups  # a summary: each group's members, each leaf and op are its attributes
      ChannelGroups(1 group of sizes {'layers_0': 8}, in 4 arrays (1 axis pinned), 2 ops costed)
    """

    groups: tuple[ChannelGroup, ...]
    paths: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    pinned: Mapping[str, str]
    params: tuple[tuple[Monomial, ...], ...]
    flops: tuple[tuple[str, tuple[Monomial, ...], int], ...]
    unread: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the dataclass's printed every member, leaf and polynomial
        sizes = cut_repr({group.name: group.size for group in self.groups}, 200)
        pinned = f"{len(self.pinned)} ax{'i' if len(self.pinned) == 1 else 'e'}s pinned"
        return (
            f"ChannelGroups({counted(len(self.groups), 'group')} of sizes {sizes}, in "
            f"{counted(len(self.paths), 'array')} ({pinned}), {counted(len(self.flops), 'op')} "
            "costed)"
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The groups' names (the keys of `full` and of an ``alive`` mapping).

        Examples:
          >>> import jax, jax.numpy as jnp, flax.linen as nn
          >>> from phosjax.morph import channel_groups
          >>> model = nn.Sequential([nn.Dense(8), nn.BatchNorm(use_running_average=True),
          ...                        nn.relu, nn.Dense(3)])
          >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
          >>> channel_groups(model, variables, x).names
          ('layers_0',)
        """
        return tuple(g.name for g in self.groups)

    def full(self) -> dict[str, np.ndarray]:
        """Every channel alive: ``{group name: all True}``.

        Examples:
          >>> import jax, jax.numpy as jnp, flax.linen as nn
          >>> from phosjax.morph import channel_groups
          >>> model = nn.Sequential([nn.Dense(8), nn.BatchNorm(use_running_average=True),
          ...                        nn.relu, nn.Dense(3)])
          >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
          >>> groups = channel_groups(model, variables, x)
          >>> {name: alive.tolist() for name, alive in groups.full().items()}
          {'layers_0': [True, True, True, True, True, True, True, True]}
        """
        return {g.name: np.ones(g.size, bool) for g in self.groups}

    def alive_arrays(self, alive: Mapping[str, Any]) -> list[np.ndarray]:
        """``alive`` checked and in group order (missing groups are fully alive).

        Examples:
          >>> import jax, jax.numpy as jnp, flax.linen as nn
          >>> from phosjax.morph import channel_groups
          >>> model = nn.Sequential([nn.Dense(8), nn.BatchNorm(use_running_average=True),
          ...                        nn.relu, nn.Dense(3)])
          >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
          >>> groups = channel_groups(model, variables, x)
          >>> [int(alive.sum()) for alive in groups.alive_arrays({})]  # all 8 alive
          [8]
          >>> groups.alive_arrays({"layers_0": [True] * 5})
          Traceback (most recent call last):
          ValueError: alive['layers_0'] has shape (5,); the group has 8 channels, so expected (8,)
          >>> groups.alive_arrays({"layers_1": [True] * 8})
          Traceback (most recent call last):
          KeyError: "no channel group named ['layers_1']; groups: ['layers_0'].
          Did you mean 'layers_0'?"
          >>> groups.alive_arrays([True] * 8)
          Traceback (most recent call last):
          TypeError: alive is a list, not a mapping {group name: a flag per channel} as
          alive_channels returns; groups: ['layers_0']
        """
        if not isinstance(alive, Mapping):  # a list of flags: its bools read as group names
            raise TypeError(
                f"alive is {a_type(alive)}, not a mapping {{group name: a flag per channel}} "
                f"as alive_channels returns; groups: {list(self.names)}"
            )
        unknown = sorted(set(alive) - set(self.names))
        if unknown:
            hint = did_you_mean(unknown, self.names)
            raise KeyError(f"no channel group named {unknown}; groups: {list(self.names)}{hint}")
        arrays = []
        for group in self.groups:
            flags = alive.get(group.name, np.ones(group.size, bool))
            if isinstance(flags, jax.core.Tracer):  # numpy's message named no group
                raise TypeError(
                    f"alive[{group.name!r}] is traced (an argument of a jax.jit-ed function): "
                    "the channels to cut are chosen on the host, so pass concrete flags, e.g. "
                    "close over alive instead of passing it to the jitted function"
                )
            given = np.asarray(flags)
            if given.shape != (group.size,):
                raise ValueError(
                    f"alive[{group.name!r}] has shape {given.shape}; the group has "
                    f"{group.size} channels, so expected ({group.size},)"
                )
            not_a_flag = given[~np.isin(given, (0, 1))]
            if not_a_flag.size:  # importances passed by mistake: 0.5 would read as alive
                raise ValueError(
                    f"alive[{group.name!r}] holds {not_a_flag[0].item()!r}; alive is a mask, "
                    "True/False or 1/0 per channel; to keep channels by importance, threshold "
                    "them with alive_channels"
                )
            arrays.append(given.astype(bool))
        return arrays


def key_path(keys: tuple[Any, ...]) -> str:
    """A leaf's path: its keys joined by ``/``, without the ``value`` field of a box
    (``nn.with_partitioning``'s ``nn.Partitioned``), so a boxed param is named as a bare one."""
    if keys and keys[-1] == jax.tree_util.GetAttrKey("value"):
        keys = keys[:-1]
    return jax.tree_util.keystr(tuple(keys), simple=True, separator="/")


def check_groups(groups: Any, call: str) -> None:
    """Raises a TypeError unless ``groups`` is a `ChannelGroups`, naming ``call``, the
    function's call (the morph functions take the groups in different places).

    Examples:
      >>> check_groups({"params": {}}, "alive_channels(groups, variables)")
      Traceback (most recent call last):
      TypeError: alive_channels: groups must be the ChannelGroups that channel_groups(model,
      variables, x) returns, got a dict; call it as alive_channels(groups, variables)
    """
    if not isinstance(groups, ChannelGroups):
        raise TypeError(
            f"{call.split('(')[0]}: groups must be the ChannelGroups that "
            f"channel_groups(model, variables, x) returns, got {a_type(groups)}; call it as "
            f"{call}"
        )


def leaf_paths(tree: Any, caller: str) -> dict[str, Any]:
    """``{path: leaf}`` of ``tree``, each path its `key_path`, in the tree's order.

    Raises:
      ValueError: two leaves have one path (see `_refuse_shared_paths`); the message
        begins ``caller:``, the public function that was given ``tree``.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    paths = {key_path(p): v for p, v in flat}
    if len(paths) < len(flat):
        _refuse_shared_paths(caller, [keys for keys, _ in flat])
    return paths


def leaf_shapes(tree: Any, caller: str) -> dict[str, tuple[int, ...]]:
    """``{path: shape}`` of the leaves of ``tree`` (arrays or `jax.ShapeDtypeStruct`s);
    ``caller`` as in `leaf_paths`."""
    return {path: np.shape(leaf) for path, leaf in leaf_paths(tree, caller).items()}


def member_leaf(group: str, member: Member, leaves: Mapping[str, Any]) -> str:
    """The path in ``leaves`` (a tree's `leaf_paths`) of ``member``'s leaf (see
    `leaf_path`), checked to be as long along the member's axis as when traced.

    Raises:
      KeyError: no leaf matches (see `leaf_path`).
      ValueError: the leaf has another shape there (a tree of other widths than the
        traced one); the message names the leaf, the group and both lengths.
    """
    path = leaf_path(member.path, leaves)
    shape = np.shape(leaves[path])
    traced = len(member.channels)
    if len(shape) <= member.axis or shape[member.axis] != traced:
        raise ValueError(
            f"leaf {path!r} of channel group {group!r} has shape {shape}, but the group "
            f"was traced with {traced} positions along its axis {member.axis}; trace the "
            "groups (channel_groups) from the model and variables of this tree's widths, "
            "e.g. again after shrink or expand"
        )
    return path


def leaf_path(path: str, paths: Collection[str]) -> str:
    """The one of ``paths`` (a tree's leaf paths) that holds the member leaf ``path``.

    Groups traced from variables name ``params/Dense_0/kernel``, groups traced from a
    bare params tree ``Dense_0/kernel``; either resolves in either tree: ``path`` as
    is, else without its collection (its first part), else under ``params/``.

    Raises:
      KeyError: no leaf matches; the message names ``path`` and the tree's top keys.
    """
    tried = [path]
    if "/" in path:
        tried.append(path.split("/", 1)[1])
    tried.append(f"params/{path}")
    for candidate in tried:
        if candidate in paths:
            return candidate
    top = list(dict.fromkeys(p.split("/", 1)[0] for p in paths))
    modules = list(dict.fromkeys(p.rsplit("/", 1)[0] for p in paths if "/" in p))
    raise KeyError(
        f"the tree has no leaf {path!r} (tried {tried}); its top-level keys are {top}, its "
        f"modules {listing(modules, 8, as_list=True)}; give a tree holding every traced "
        "leaf (the variables, if batch statistics or other collections were traced), or, "
        "for another model than the traced one (its layers renamed, say), trace its "
        "groups: channel_groups(model, variables, x)"
    )


def _refuse_shared_paths(caller: str, keys: Sequence[tuple[Any, ...]]) -> None:
    """Raises if two leaves, of these keys, have one path (``['a']['b']`` and ``['a/b']``
    are both ``a/b``): the groups name leaves by path, so one would be read for the other."""
    first: dict[str, int] = {}
    for index, path in enumerate(key_path(k) for k in keys):
        other = first.setdefault(path, index)
        if other != index:
            pair = (other, index)
            keyed = [jax.tree_util.keystr(tuple(keys[i])) for i in pair]
            slashed = [k.key for i in pair for k in keys[i] if "/" in str(getattr(k, "key", ""))]
            renamed = (
                f" (e.g. {slashed[0]!r} to {slashed[0].replace('/', '_')!r})" if slashed else ""
            )
            raise ValueError(
                f"{caller}: the variables' leaves {keyed[0]} and {keyed[1]} both have "
                f"the path {path!r} (their keys joined by '/'), which names a leaf in the "
                f"channel groups; rename the key holding '/'{renamed}"
            )


def _has_collections(model: nn.Module | Callable[..., Any], variables: Any) -> bool:
    """Whether the top level of ``variables`` is Flax collections (``params``, ...)."""
    return isinstance(model, nn.Module) or (
        isinstance(variables, Mapping) and "params" in variables
    )


def _module(path: str, collections: bool) -> str:
    """The module holding the leaf at ``path``, without the collection; a root leaf's name."""
    parts = path.split("/")[int(collections) :] or [path]
    return "/".join(parts[:-1]) or parts[-1]


def _unique(names: list[str]) -> list[str]:
    """``names`` with ``#k`` added to the k-th (from 0) of each repeated name."""
    while len(set(names)) < len(names):
        seen: dict[str, int] = {}
        renamed = []
        for name in names:
            seen[name] = seen.get(name, -1) + 1
            renamed.append(f"{name}#{seen[name]}" if names.count(name) > 1 else name)
        names = renamed
    return names


def _unsplit(labels: Labels, label: int) -> set[int]:
    """The unsplit labels ``label`` is made of (itself, if it is one)."""
    root = labels.find(label)
    if root not in labels.parts:
        return {root}
    return set().union(*(_unsplit(labels, child) for child in labels.parts[root][1]))


def _polynomial(facts: Trace, label: int, group_of: Mapping[int, int]) -> list[Monomial]:
    labels = facts.labels
    root = labels.find(label)
    if root in labels.pinned or (root not in labels.parts and root not in group_of):
        return [(float(labels.size[root]), ())]
    if root not in labels.parts:
        return [(1.0, (group_of[root],))]
    kind, children = labels.parts[root]
    polys = [_polynomial(facts, child, group_of) for child in children]
    if kind == SUM:
        return [term for poly in polys for term in poly]
    assert kind == PROD
    return _product(polys)


def _product(polys: Sequence[Sequence[Monomial]]) -> list[Monomial]:
    terms: dict[tuple[int, ...], float] = {}
    for combo in itertools.product(*polys):
        coefficient = float(np.prod([c for c, _ in combo]))
        groups = tuple(sorted(g for _, gs in combo for g in gs))
        terms[groups] = terms.get(groups, 0.0) + coefficient
    return [(c, g) for g, c in terms.items()]


def _as_apply(model: nn.Module | Callable[..., Any]) -> Callable[..., Any]:
    return model.apply if isinstance(model, nn.Module) else model


def _is_array_tree(value: Any) -> bool:
    """Whether ``value`` is an array (or its shape and dtype), or a pytree of them: an
    input to trace.

    Examples:
      >>> _is_array_tree(np.ones(2)), _is_array_tree({"x": np.ones(2)}), _is_array_tree(False)
      (True, True, False)
    """
    leaves = jax.tree.leaves(value)
    arrays = jax.Array | np.ndarray | jax.ShapeDtypeStruct
    return bool(leaves) and all(isinstance(leaf, arrays) for leaf in leaves)


def _not_its_variables(caller: str, variables: Mapping[str, Any], error: Exception) -> str:
    """What is wrong with `variables` that lack a variable the model reads (another
    model's, or a run's of other options).

    Examples:
      >>> print(_not_its_variables("f", {"params": {"Dense_0": {}}}, ValueError("no kernel")))
      f: the model reads a variable that variables lack (no kernel); its 'params' hold the
      modules ['Dense_0']: are they another model's? pass this model's, e.g. model.init's
    """
    return (
        f"{caller}: the model reads a variable that variables lack ({error}); "
        f"{modules_held(variables)}: are they another model's? pass this model's, e.g. "
        "model.init's"
    )


@contextlib.contextmanager
def read_by_the_model(caller: str, variables: Any, inputs: Any = None) -> Iterator[None]:
    """Turns flax's bare scope errors, raised while a model reads ``variables``, into a
    ValueError beginning ``caller:`` that says what is wrong with them: params without
    their collection, or another model's variables (other leaves, or other shapes).
    ``inputs``: the example inputs the caller was given, if any (by position or keyword;
    its arrays are named): a shape error may be theirs (an input of another size than the
    variables were made for), and names them.

    Examples:
      >>> import jax.numpy as jnp
      >>> with read_by_the_model("f", {"params": {}}):
      ...     nn.Dense(2).apply({"params": {}}, jnp.ones((1, 3)))
      Traceback (most recent call last):
      ValueError: f: the model reads a variable that variables lack (...
    """
    try:
        yield
    except MISSING_PARAMS as error:
        if not isinstance(variables, Mapping):
            raise
        alone = params_alone_text(variables, error, caller)
        raise ValueError(alone or _not_its_variables(caller, variables, error)) from error
    except flax.errors.ScopeParamShapeError as error:
        shapes = [np.shape(leaf) for leaf in jax.tree.leaves(inputs) if hasattr(leaf, "shape")]
        theirs = (
            f"; or is an example input of another shape than the variables were made for "
            f"(given: {', '.join(map(str, shapes))})? pass inputs shaped as those model.init got"
            if shapes
            else ""
        )
        raise ValueError(
            f"{caller}: a variable has another shape than the model makes ({error}); are "
            "the variables of another model, or of other widths? pass this model's, e.g. "
            f"model.init's{theirs}"
        ) from error


@contextlib.contextmanager
def inputs_needed(caller: str, after: str, call: str, given: bool) -> Iterator[None]:
    """Turns the TypeError of a model run without example inputs (none ``given``, by
    position or keyword) into one that says to pass them ``after`` an argument, as in
    ``call``; with inputs given, a TypeError is another's and passes unchanged.

    Examples:
      >>> import jax.numpy as jnp
      >>> with inputs_needed("f", "the variables", "f(model, variables, x)", given=False):
      ...     nn.Dense(2).apply({"params": {}})
      Traceback (most recent call last):
      TypeError: f: no example inputs given, and the model cannot run without them (...);
      pass them after the variables, as model.apply takes them: f(model, variables, x)
    """
    try:
        yield
    except TypeError as error:
        if given:  # inputs given (by keyword too): not what failed
            raise
        raise TypeError(
            f"{caller}: no example inputs given, and the model cannot run without them "
            f"({error}); pass them after {after}, as model.apply takes them: {call}"
        ) from error


def channel_groups(
    model: nn.Module | Callable[..., Any], variables: Any, *args: Any, **kwargs: Any
) -> ChannelGroups:
    """Finds the tied channel groups of ``model`` by tracing ``apply(variables, *args)``.

    Every axis of every leaf is followed through the model's jaxpr: a contraction ties
    the activation's channels to the kernel's input axis; an add or multiply ties the
    axes it combines (residual streams, biases, normalization scales); reshapes and
    concatenations are followed into flattened and concatenated axes; depthwise
    convolutions tie their input and output channels. A group is a set of tied channels
    produced by some kernel or scale (a scale only where a variable holds the channels,
    not on an axis the model makes, e.g. by broadcasting, which shrinking it could not
    remove), named after its first producing module (plus
    ``[axis]``, then ``#k``, where names would repeat). Axes that cannot be pruned
    exactly stay whole and are listed in ``pinned`` with the operation that pinned them:
    the model's inputs and outputs, reduced axes (e.g. the features of a LayerNorm),
    sliced or convolved axes, grouped convolutions, and channels that reach a
    contraction through an op that does not keep zeros (e.g. ``exp``).

    Args:
      model: a Flax module (its ``apply`` is traced) or any ``apply(variables, *args)``.
      variables: the model's variables (any pytree of arrays).
      *args: example inputs (the leading axis of the first one that is not a scalar is
        the batch, whose size divides the FLOPs of each op it reaches; an op it does not,
        computed from params alone, runs once per call), e.g. ``x``; arrays (or pytrees of
        them) are traced, anything else (``False`` for a ``train`` flag) is passed as
        it is.
      **kwargs: passed to ``apply`` (e.g. ``train=False``).

    Returns:
      The `ChannelGroups`.

    Raises:
      TypeError: ``model`` is no Flax module nor function (a module class, a model
        config: the message says what to pass), or a Flax module and ``variables`` no
        mapping (``None``, or ``x`` and the variables swapped), or no example inputs are
        given and the model cannot run without them.
      UnsupportedOpError: the model uses a primitive whose effect on channels is not
        known (e.g. ``while``, ``cond``); the message names it and where it is.
      ValueError: ``model`` is a `GraphModel` that returns every node's output (no
        ``returns``, no ``outputs=``), or ``mutable`` is passed (``apply`` then returns
        the updated collections too, BatchNorm's batch statistics in training): every
        channel would be a model output and nothing could be pruned; or two leaves of
        ``variables`` have one path (``['a']['b']`` and ``['a/b']``: keys holding ``/``).

    References:
      Gordon et al., MorphNet: Fast & Simple Resource-Constrained Structure Learning of
      Deep Networks, https://arxiv.org/abs/1711.06798

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups
      >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
      >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> [(g.name, g.size) for g in groups.groups]
      [('layers_0', 8)]
      >>> for m in groups.groups[0].members:
      ...     print(m.path, m.axis, sorted(m.kinds))
      params/layers_0/bias 0 ['bias']
      params/layers_0/kernel 1 ['out']
      params/layers_2/kernel 0 ['in']
    """
    return traced_groups("channel_groups", model, variables, args, kwargs)


def traced_groups(
    caller: str,
    model: nn.Module | Callable[..., Any],
    variables: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> ChannelGroups:
    """`channel_groups`; ``caller``, the public function given ``model`` and ``variables``,
    begins the messages about them."""
    check_module(caller, model, apply_too=True)  # a class: taken for an apply
    if isinstance(model, GraphModel) and model.returns is None and "outputs" not in kwargs:
        raise ValueError(
            f"{caller}: this GraphModel returns every node's output, so every channel "
            "is a model output and none can be pruned; build it with returns=<the logits' "
            "node> (e.g. returns='head'), or pass outputs='head'."
        )
    if isinstance(model, nn.Module):  # a bare apply function takes any pytree
        checked_variables(variables, caller)
    if kwargs.get("mutable"):
        raise ValueError(
            f"{caller}: mutable={kwargs['mutable']!r} makes apply return the updated "
            "collections too (a BatchNorm's batch statistics in training), so every channel "
            "would be a model output and none could be pruned; trace in inference mode "
            "(e.g. train=False, without mutable): the channels are the same."
        )
    apply = _as_apply(model)
    flat, treedef = jax.tree_util.tree_flatten_with_path(variables)
    paths = tuple(leaf_paths(variables, caller))
    leaves = [leaf for _, leaf in flat]

    # Arrays are traced; anything else (a positional ``train`` flag) is passed as is.
    traced = [i for i, arg in enumerate(args) if _is_array_tree(arg)]

    def run(leaves: list[Any], *inputs: Any) -> Any:
        given = list(args)
        for i, value in zip(traced, inputs, strict=True):
            given[i] = value
        return apply(jax.tree.unflatten(treedef, leaves), *given, **kwargs)

    arrays = tuple(args[i] for i in traced)
    with (
        read_by_the_model(caller, variables, (arrays, kwargs)),
        inputs_needed(
            caller,
            "the variables",
            "channel_groups(model, variables, x)",
            bool(args or kwargs),
        ),
    ):
        first = trace(run, leaves, arrays)
    zeroing = {key for key, kinds in first.kinds.items() if kinds & ZEROING}
    facts = trace(run, leaves, arrays, zeroing)
    unzeroed: set[tuple[int, int]] = set()
    while facts.unsafe & zeroing:  # k / norm(k): zeroing k makes 0/0, so k is not zeroed
        unzeroed |= facts.unsafe & zeroing
        zeroing -= facts.unsafe
        facts = trace(run, leaves, arrays, zeroing)
    for key in unzeroed:
        facts.kinds[key].add("normalized")
    labels = facts.labels
    owners = [[labels.owners(label) for label in axes] for axes in facts.leaf_labels]
    producers: dict[int, tuple[int, int, int]] = {}  # atom -> (not a kernel, leaf, axis)
    for leaf, axes in enumerate(owners):
        for axis, found in enumerate(axes):
            kinds = facts.kinds.get((leaf, axis), set())
            if kinds & {"out", "scale"}:
                for atom in found:
                    rank = (int("out" not in kinds), leaf, axis)
                    producers[atom] = min(producers.get(atom, rank), rank)
    made = {labels.find(label) for label in facts.made}
    for atom in [a for a, (scale_only, _, _) in producers.items() if scale_only and a in made]:
        # A scale on channels the model makes (say, by broadcasting): shrinking the scale
        # would not remove them from the activation, and no kernel produces them.
        labels.pin(atom, "only a scale multiplies these channels, which the model makes")
        del producers[atom]
    order = sorted(producers, key=lambda atom: producers[atom])
    group_of = {atom: index for index, atom in enumerate(order)}
    collections = _has_collections(model, variables)
    sites = [
        (_module(paths[producers[atom][1]], collections), producers[atom][2]) for atom in order
    ]
    names = _unique(
        [f"{m}[{axis}]" if len({b for n, b in sites if n == m}) > 1 else m for m, axis in sites]
    )
    groups = []
    for atom, name in zip(order, names, strict=True):
        held = [
            (leaf, axis, found[atom])
            for leaf, axes in enumerate(owners)
            for axis, found in enumerate(axes)
            if atom in found
        ]
        scales = {leaf for leaf, axis, _ in held if "scale" in facts.kinds.get((leaf, axis), ())}
        members = tuple(
            Member(
                paths[leaf],
                axis,
                frozenset(facts.kinds.get((leaf, axis), {"other"})),
                channels,
                tuple(paths[s] for s in sorted(facts.normalized.get((leaf, axis), set()) & scales)),
            )
            for leaf, axis, channels in held
        )
        groups.append(ChannelGroup(name, labels.size[atom], members))
    pinned = {
        f"{paths[leaf]}:{axis}": labels.reason(label) or ""
        for leaf, axes in enumerate(facts.leaf_labels)
        for axis, label in enumerate(axes)
        if labels.reason(label) and (facts.kinds.get((leaf, axis), set()) & {"out", "scale"})
    }
    for (leaf, axis), where in facts.reshaped.items():
        if not _unsplit(labels, facts.leaf_labels[leaf][axis]) <= group_of.keys():
            pinned.setdefault(
                f"{paths[leaf]}:{axis}",
                f"{where} splits or merges this axis of the variable, and morph does not "
                "follow how a variable is used through a reshape (as a kernel's output "
                "channels), so what no other use ties to a group is kept whole; store the "
                "variable in the shape it is used in (a kernel as (inputs, outputs), not flat)",
            )
    params = tuple(
        tuple(_product([_polynomial(facts, label, group_of) for label in axes]))
        for axes in facts.leaf_labels
    )
    # the batch: the leading axis of the first input that has one (a scalar input, say a
    # temperature or time step, has none); an op without it runs once per call, not once
    # per example (a kernel a hyper-network makes from params alone)
    batched = [axes for axes in facts.input_labels if axes]
    batch = max(1, labels.size[labels.find(batched[0][0])]) if batched else 1
    batch_atoms = _unsplit(labels, batched[0][0]) if batched else set()

    def carries_batch(label: int) -> bool:
        return bool(_unsplit(labels, label) & batch_atoms)

    flops = tuple(
        (
            name,
            tuple(
                (2.0 * c / (batch if any(map(carries_batch, op)) else 1), g)
                for c, g in _product([_polynomial(facts, label, group_of) for label in op])
            ),
            # a loop over the examples (``jax.lax.map``) runs once for one example
            math.prod(labels.size[labels.find(s)] for s in steps if not carries_batch(s)),
        )
        for name, op, steps in facts.ops
    )
    # flax checks a param's shape where a call reads it, not another collection's variable
    unread = tuple(
        paths[leaf]
        for leaf in facts.unread
        if collections and not paths[leaf].startswith("params/")
    )
    return ChannelGroups(
        tuple(groups),
        paths,
        tuple(np.shape(leaf) for leaf in leaves),
        pinned,
        params,
        flops,
        unread,
    )
