"""Channel importance (GammaL1, GroupLasso), alive channels, the MorphNet regularizer."""

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from phosjax._listing import listing
from phosjax._widening import widened
from phosjax.core import SelectorError, select
from phosjax.morph._cost import COSTS, check_cost, cost_polynomial, evaluate
from phosjax.morph._groups import (
    ChannelGroup,
    ChannelGroups,
    Member,
    check_groups,
    leaf_paths,
    member_leaf,
)

Term = tuple[str, tuple[Member, ...]]
"""``(kind, members)``: ``"scale"`` (L1 of each) or ``"lasso"`` (L2 over all of them)."""

SOURCES = ("auto", "gamma", "group_lasso")
"""Importance sources: ``gamma`` (GammaL1: ``|scale|`` of the normalization after a
layer), ``group_lasso`` (per producing module, the L2 norm of each output channel's
kernel slice and bias) and ``auto`` (each producer its gamma where a normalization
scales its output, its group lasso elsewhere)."""


def _lookup(leaves: Mapping[str, Any], group: str, member: Member) -> Any:
    """The leaf holding ``member`` of ``group`` (see `member_leaf`)."""
    return leaves[member_leaf(group, member, leaves)]


def check_source(source: str, groups: ChannelGroups | None = None) -> None:
    """Raises a ValueError naming ``source`` and the valid ones unless it is in `SOURCES`;
    given ``groups``, also naming the groups that lack what it reads (``gamma``: a
    normalization scale), so a regularizer fails when built, not when first called."""
    if source not in SOURCES:
        raise ValueError(f"unknown importance source {source!r}; expected one of {SOURCES}")
    if source != "gamma" or groups is None:
        return
    bare = [g.name for g in groups.groups if not g.sources("scale")]
    if bare:
        raise ValueError(
            f"importance source 'gamma' reads the normalization scale of every channel group, "
            f"but group(s) {bare} have none; use source 'auto' (their group lasso instead) "
            "or 'group_lasso'"
        )


def check_threshold(threshold: Any) -> float:
    """``threshold`` as a float; raises a ValueError naming it unless it is one real number
    >= 0 (NaN, a bool or a string is not: against NaN no channel would be alive, and each
    group would keep only its most important channel; importances are >= 0, so below 0
    every channel would be alive).

    Examples:
      >>> check_threshold(float("nan"))
      Traceback (most recent call last):
      ValueError: threshold=nan: a channel whose importance is at or below it is dead, so ...
    """
    number = math.nan
    real = isinstance(threshold, numbers.Real | np.ndarray | jax.Array)
    if real and np.ndim(threshold) == 0 and np.asarray(threshold).dtype != bool:
        number = float(threshold)
    if math.isnan(number) or number < 0:
        raise ValueError(
            f"threshold={threshold!r}: a channel whose importance is at or below it is dead, "
            "so expected a number >= 0, e.g. 1e-2"
        )
    return number


def _per_channel(member: Member, leaf: jax.Array, kind: str) -> jax.Array:
    """Per group channel: the sum of ``|x|`` (``"scale"``) or of ``|x|**2`` (``"lasso"``;
    ``x * conj(x)``, real for a complex ``leaf``), taken in float32 for a bfloat16 or
    float16 ``leaf`` (`widened`)."""
    flat = jnp.moveaxis(widened(leaf), member.axis, 0).reshape(leaf.shape[member.axis], -1)
    per_position = (jnp.abs(flat) if kind == "scale" else jnp.real(flat * jnp.conj(flat))).sum(1)
    size = int(member.channels.max()) + 1
    index = np.where(member.channels >= 0, member.channels, size)
    return jax.ops.segment_sum(per_position, jnp.asarray(index), size + 1)[:size]


def _lasso_terms(group: ChannelGroup, producers: tuple[Member, ...]) -> list[Term]:
    """One group-lasso term per module of ``producers``: its kernels' and biases' slices."""
    modules = list(dict.fromkeys(m.module for m in producers))
    biases = group.sources("bias")
    return [
        ("lasso", tuple(m for m in (*producers, *biases) if m.module == module))
        for module in modules
    ]


def _shift_terms(group: ChannelGroup, collections: bool) -> list[Term]:
    """One group-lasso term per module whose params only shift the channels (a BatchNorm
    without a scale): no kernel or scale of it produces them, so its shift would
    otherwise count nowhere, and a channel with a zero kernel but a live shift (a
    constant the next layer reads) would be dead. Batch statistics are not params."""
    producing = {m.module for m in (*group.sources("out"), *group.sources("scale"))}
    shifts = [
        m
        for m in group.sources("bias")
        if m.zeroed
        and m.module not in producing
        and (not collections or m.path.split("/")[0] == "params")
    ]
    modules = list(dict.fromkeys(m.module for m in shifts))
    return [("lasso", tuple(m for m in shifts if m.module == module)) for module in modules]


def _with_collections(groups: ChannelGroups) -> bool:
    """Whether the groups' paths start with a collection (traced from the variables)."""
    return any(path.split("/")[0] == "params" for path in groups.paths)


def _terms(group: ChannelGroup, source: str, collections: bool = True) -> list[Term]:
    """What adds up to the group's importance: ``(kind, members)`` per producer (``source``
    checked by `check_source`); ``collections``: the groups' paths start with one."""
    gammas = tuple(m for m in group.sources("scale") if m.zeroed)
    if source == "gamma":
        return [("scale", (m,)) for m in gammas]
    if source == "group_lasso":
        terms = _lasso_terms(group, (*group.sources("out"), *gammas))
    else:
        free = tuple(m for m in group.sources("out") if not m.norms)
        terms = [("scale", (m,)) for m in gammas] + _lasso_terms(group, free)
    return terms + _shift_terms(group, collections)


_EPS = 1e-12
"""Added under the group lasso's square root (its gradient at zero is then zero)."""


def _term_importance(
    leaves: Mapping[str, Any], group: str, kind: str, members: tuple[Member, ...]
) -> Any:
    values = [_per_channel(m, _lookup(leaves, group, m), kind) for m in members]
    total = sum(values[1:], values[0])
    if kind == "scale":
        return total
    # The epsilon keeps the gradient finite at zero (at least the dtype's smallest normal
    # number: 1e-12 is zero in float16); subtracting its root keeps a zero channel's
    # importance zero, so it is dead at any threshold (``0`` included), as a zero gamma is.
    eps = jnp.asarray(max(_EPS, float(jnp.finfo(total.dtype).tiny)), total.dtype)
    return jnp.sqrt(total + eps) - jnp.sqrt(eps)


def importance(groups: ChannelGroups, variables: Any, source: str = "auto") -> list[jax.Array]:
    """Each group's channel importances (differentiable in ``variables``), in group order.

    Tied sources add up: a residual stream's channel is as important as the sum over
    the layers that write it, each counted by its own source (``auto``: the gamma of a
    normalized producer, the group lasso of its kernel and bias otherwise). A scale
    module's bias counts in ``group_lasso`` but not as a gamma. ``variables`` may be
    the variables or their params, whatever the groups were traced from.

    Raises:
      KeyError: a group member's leaf is not in ``variables`` (the path is named).
      ValueError: a member's leaf has another width than traced (leaf and group named).
      ValueError: an unknown ``source``, or ``gamma`` and a group has no normalization.
      ValueError: two leaves of ``variables`` have one path (``['a']['b']`` and
        ``['a/b']``: keys holding ``/``); the message names both.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, numpy as np
      >>> from phosjax.morph import channel_groups, importance
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> p = variables["params"]["layers_0"]
      >>> p["kernel"], p["bias"] = jnp.tile(jnp.array([0.0, 0.5, 1.5]), (4, 1)), jnp.zeros(3)
      >>> [np.round(np.asarray(v), 3) for v in importance(groups, variables)]  # no norm: L2
      [array([0., 1., 3.], dtype=float32)]
    """
    check_groups(groups, "importance(groups, variables)")
    check_source(source, groups)
    return _importance(groups, variables, source, "importance")


def _importance(groups: ChannelGroups, variables: Any, source: str, caller: str) -> list[jax.Array]:
    """`importance` of checked ``groups`` and ``source``; ``caller``, the public function
    given ``variables``, begins the message of a tree with two leaves of one path."""
    leaves = leaf_paths(variables, caller)
    collections = _with_collections(groups)
    result = []
    for group in groups.groups:
        values = [
            _term_importance(leaves, group.name, kind, ms)
            for kind, ms in _terms(group, source, collections)
        ]
        result.append(sum(values[1:], values[0]) if values else jnp.ones(group.size))
    return result


def _not_finite(
    groups: ChannelGroups,
    group: ChannelGroup,
    scores: np.ndarray,
    variables: Any,
    source: str,
    caller: str,
) -> str | None:
    """Why ``group``'s ``scores`` decide no channel: some are NaN or infinite, as the
    leaves they are read from hold NaN or infinity (named); None if they are finite, or
    no such leaf holds any (an infinite sum of finite values is a channel alive).
    ``caller`` as in `_importance`.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> p = variables["params"]["layers_0"]
      >>> p["bias"] = p["bias"].at[1].set(jnp.nan)
      >>> scores = np.asarray(importance(groups, variables)[0])
      >>> print(_not_finite(groups, groups.groups[0], scores, variables, "auto", "report"))
      report: channel group 'layers_0' has the importance nan at channel(s) 1, as
      ['params/layers_0/bias'] hold NaN or infinity, so whether a channel is alive is
      unknown; did the training diverge? (a lower learning rate or strength)
    """
    if np.isfinite(scores).all():
        return None
    leaves = leaf_paths(variables, caller)
    collections = _with_collections(groups)
    read = [m for _, members in _terms(group, source, collections) for m in members]
    paths = list(dict.fromkeys(member_leaf(group.name, m, leaves) for m in read))
    broken = [p for p in paths if not np.isfinite(np.asarray(leaves[p], np.float32)).all()]
    if not broken:
        return None
    channels = np.flatnonzero(~np.isfinite(scores)).tolist()
    return (
        f"{caller}: channel group {group.name!r} has the importance "
        f"{scores[channels[0]].item()} at channel(s) {listing([str(c) for c in channels], 8)}, as "
        f"{listing(broken, 3, as_list=True)} hold NaN or infinity, so whether a channel is "
        "alive is unknown; did the training diverge? (a lower learning rate or strength)"
    )


def alive_channels(
    groups: ChannelGroups, variables: Any, threshold: float = 1e-2, source: str = "auto"
) -> dict[str, np.ndarray]:
    """``{group name: importance > threshold}`` (at least one channel stays alive): a
    channel exactly at ``threshold`` is dead.

    ``variables`` may be the variables or their params (see `importance`). A
    ``threshold`` that is no number (NaN, a string) is a ValueError naming it, and so
    is a group whose leaves hold NaN or infinity (an importance that overflows to
    infinity from finite leaves counts as alive), and a tree with two leaves of one
    path (see `importance`).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import alive_channels, channel_groups
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> p = variables["params"]["layers_0"]
      >>> p["kernel"], p["bias"] = p["kernel"].at[:, 1].set(0.0), p["bias"].at[1].set(0.0)
      >>> alive_channels(groups, variables)
      {'layers_0': array([ True, False,  True])}
    """
    check_groups(groups, "alive_channels(groups, variables)")
    return alive_of(groups, variables, threshold, source, "alive_channels")


def alive_of(
    groups: ChannelGroups, variables: Any, threshold: Any, source: str, caller: str
) -> dict[str, np.ndarray]:
    """`alive_channels` of checked ``groups``; ``caller``, the public function given
    ``variables``, begins the messages about them."""
    check_source(source, groups)
    threshold = check_threshold(threshold)
    alive: dict[str, np.ndarray] = {}
    scored = _importance(groups, variables, source, caller)
    for group, values in zip(groups.groups, scored, strict=True):
        scores = np.asarray(values)
        problem = _not_finite(groups, group, scores, variables, source, caller)
        if problem:  # a NaN passes no threshold, yet argmax would keep it
            raise ValueError(problem)
        keep = scores > threshold
        keep[np.argmax(scores)] = True
        alive[group.name] = keep
    return alive


def _no_groups(groups: ChannelGroups) -> str:
    """Why a regularizer of `groups`, which hold no group, has nothing to price.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups
      >>> model, x = nn.Dense(3), jnp.ones((2, 4))
      >>> print(_no_groups(channel_groups(model, model.init(jax.random.key(0), x), x)))
      the model has no channel group to price: channel_groups found no hidden width it can
      prune (a model without hidden layers, such as logreg; kept whole: 'params/kernel:1'
      (model output)), so the regularizer would be 0 whatever the weights
    """
    pinned = [f"{path!r} ({why})" for path, why in groups.pinned.items()]
    kept = f"; kept whole: {listing(pinned, 3)}" if pinned else ""
    return (
        "the model has no channel group to price: channel_groups found no hidden width it "
        f"can prune (a model without hidden layers, such as logreg{kept}), so the "
        "regularizer would be 0 whatever the weights"
    )


def morph_regularizer(
    groups: ChannelGroups,
    cost: str = "flops",
    source: str = "auto",
    threshold: float = 1e-2,
    normalize: bool = True,
    selector: str = "**",
) -> Callable[[Any], jax.Array]:
    """MorphNet's resource regularizer: ``(variables or params) -> scalar``, jittable.

    The cost is a sum of terms ``c * prod(alive[g])`` over the groups' alive counts
    (channels whose importance is strictly above ``threshold``). Its relaxation, as in MorphNet,
    replaces each factor in turn by the group's summed importances (an L1 norm of the
    gammas, or the group lasso of the kernels) while the other factors stay counts:
    ``c * sum_k soft[g_k] * prod_{j != k} alive[g_j]``. A channel's price is thus the
    cost it adds given what its inputs and outputs keep alive (a group keeps at least
    one channel, as in `alive_channels`, so its neighbours' prices are never zero). Add
    ``strength * reg`` to the loss; with ``normalize`` it is divided by the full model's
    cost, so the strength means the same on every model and cost. It takes the variables or their
    params, whatever the groups were traced from (a KeyError names a missing leaf, a
    ValueError two leaves of one path, as in `importance`).

    Args:
      groups: the model's `ChannelGroups`.
      cost: ``"params"``, ``"flops"`` or ``"latency"`` (see `cost_polynomial`).
      source: the importance source (see `SOURCES`).
      threshold: a channel whose importance is at or below it counts as dead (alive:
        strictly above).
      normalize: divide by the cost with every channel alive.
      selector: which groups are priced, a selector over their names (e.g.
        ``"blocks_0/**"``); the others still count in their neighbours' prices.

    Raises:
      SelectorError: ``selector`` matches no group (the nearest names are listed), or
        there is none (the model has no hidden width to prune).
      ValueError: an unknown ``cost`` or ``source``, ``gamma`` and a group has no
        normalization scale (see `check_source`), or a ``threshold`` that is no number
        (NaN, a string).
      TypeError: ``normalize`` is not True or False (a string "false" would be true).

    References:
      Gordon et al., MorphNet, https://arxiv.org/abs/1711.06798 (section 3).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups, morph_regularizer
      >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
      >>> x = jnp.ones((2, 4)); variables = model.init(jax.random.key(0), x)
      >>> reg = morph_regularizer(channel_groups(model, variables, x), cost="params")
      >>> jax.grad(reg)(variables["params"])["layers_0"]["kernel"].shape
      (4, 8)
    """
    check_groups(groups, "morph_regularizer(groups)")
    check_cost(cost)
    check_source(source, groups)
    threshold = check_threshold(threshold)
    if not isinstance(normalize, bool | np.bool_):  # "false" from a config is truthy
        raise TypeError(f"morph_regularizer: normalize must be True or False, got {normalize!r}")
    poly = cost_polynomial(groups, cost)
    full = evaluate(poly, [g.size for g in groups.groups]) if normalize else 1.0
    terms = [(c / max(full, 1e-30), gs) for c, gs in poly if gs]
    if not groups.groups:
        raise SelectorError(_no_groups(groups))
    priced = {groups.names.index(n) for n in select(groups.names, selector, what="channel group")}

    def regularizer(tree: Any) -> jax.Array:
        soft = _importance(groups, tree, source, "morph_regularizer")
        # as `alive_channels` (and so `report` and `shrink`): at least one channel each
        counts = [
            jax.lax.stop_gradient(jnp.maximum((s > threshold).sum(), 1).astype(s.dtype))
            for s in soft
        ]
        sums = [s.sum() for s in soft]
        total = jnp.zeros(())
        for c, gs in terms:
            for k, g in enumerate(gs):
                if g not in priced:
                    continue
                others = [counts[j] for j in gs[:k] + gs[k + 1 :]]
                total = total + c * sums[g] * (jnp.prod(jnp.stack(others)) if others else 1.0)
        return total

    return regularizer


def report(
    groups: ChannelGroups, variables: Any, threshold: float = 1e-2, source: str = "auto"
) -> dict[str, Any]:
    """Alive channels per group and each cost now (dead channels removed) vs. the original.

    Returns:
      ``{"groups": {name: {"alive", "total"}}, "cost": {cost: {"now", "original",
      "ratio"}}}`` (FLOPs per example, latency of a call on one example:
      see `cost_polynomial`).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups, report
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> p = variables["params"]["layers_0"]
      >>> p["kernel"], p["bias"] = p["kernel"].at[:, 1].set(0.0), p["bias"].at[1].set(0.0)
      >>> result = report(groups, variables)
      >>> result["groups"], result["cost"]["params"]
      ({'layers_0': {'alive': 2, 'total': 3}}, {'now': 16.0, 'original': 23.0, 'ratio': 0.696})
      >>> sorted(result["cost"])
      ['flops', 'latency', 'params']
    """
    check_groups(groups, "report(groups, variables)")
    alive = alive_of(groups, variables, threshold, source, "report")
    counts = [int(alive[g.name].sum()) for g in groups.groups]
    sizes = [g.size for g in groups.groups]
    costs = {}
    for cost in COSTS:
        poly = cost_polynomial(groups, cost)
        now, original = evaluate(poly, counts), evaluate(poly, sizes)
        costs[cost] = {
            "now": now,
            "original": original,
            "ratio": now / original if original else 1.0,
        }
    return {
        "groups": {
            g.name: {"alive": n, "total": g.size}
            for g, n in zip(groups.groups, counts, strict=True)
        },
        "cost": costs,
    }
