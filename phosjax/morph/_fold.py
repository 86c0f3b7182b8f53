"""`fold`: `mask`, with each dead channel's constant output moved into its consumers' biases.

A channel is dead when its producer (a kernel's column, a BatchNorm scale) is near zero;
its output is then a constant, not zero: ``act(shift)`` after a BatchNorm with a zero
scale and a nonzero shift. `mask` and `shrink` drop that constant; `fold` adds it to the
biases of the layers that read the channel first (or subtracts it from the running mean
of the BatchNorm after a bias-free one), where that is exact.
"""

import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from phosjax._callables import a_type, cut_repr
from phosjax.core._module_check import refuse_module_class
from phosjax.core._record import applied_apart, apply_depth
from phosjax.morph._groups import (
    ChannelGroups,
    check_groups,
    inputs_needed,
    key_path,
    leaf_paths,
    member_leaf,
    read_by_the_model,
)
from phosjax.morph._shrink import masked, numbers_in


@dataclasses.dataclass(frozen=True)
class Folded:
    """What `fold` returns: the folded variables and the channels to keep.

    Attributes:
      variables: the variables with the dead channels zeroed (as `mask` does) and their
        constant outputs added to their consumers' biases.
      alive: ``{group name: bool per channel}``: the given alive channels, plus the dead
        ones whose constant could not be folded exactly (kept, their kernels and scales
        at zero: they output that constant).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups, fold
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)
      >>> folded = fold(model, variables, {"layers_0": [True, False, True]}, groups, x)
      >>> folded.alive
      {'layers_0': array([ True, False,  True])}
      >>> folded  # how many numbers its variables hold and channels are alive
      Folded(variables=(23 numbers in 4 arrays), alive={'layers_0': '2 of 3'})
    """

    variables: Any
    alive: dict[str, np.ndarray]

    def __repr__(self) -> str:  # the dataclass's printed every number and channel flag
        alive = {name: f"{int(np.sum(a))} of {np.size(a)}" for name, a in self.alive.items()}
        return f"Folded(variables={numbers_in(self.variables)}, alive={cut_repr(alive, 200)})"


@dataclasses.dataclass(frozen=True)
class _Consumer:
    """A kernel that reads dead channels: ``dead`` flags its positions along ``axis``,
    ``owners`` names each position's ``(group, channel)`` (``None``: no group's)."""

    axis: int
    dead: np.ndarray
    owners: tuple[tuple[str, int] | None, ...]


@dataclasses.dataclass(frozen=True)
class _Seen:
    """One call of a consumer on the reference model, restricted to its dead inputs:
    which of them are nonzero, whether each is one constant, and what they add to the
    output (``delta``, and whether it is the same at every position); ``bias``: whether
    the consumer has a bias to take it; ``norm_mean``: the path of the running mean of
    the BatchNorm that its output went to, as is (which takes it too: lowered by it)."""

    nonzero: np.ndarray
    constant: bool
    delta: np.ndarray
    delta_constant: bool
    bias: bool
    norm_mean: str | None = None


def _consumers(
    groups: ChannelGroups, alive: Mapping[str, np.ndarray], tree: Any
) -> dict[str, _Consumer]:
    """``{kernel path in tree: _Consumer}`` for the kernels contracting dead channels."""
    paths = leaf_paths(tree, "fold")
    found: dict[str, tuple[int, list[tuple[str, int] | None], np.ndarray]] = {}
    for group in groups.groups:
        for member in group.members:
            if "in" not in member.kinds:
                continue
            path = member_leaf(group.name, member, paths)
            size = len(member.channels)
            _, owners, dead = found.setdefault(
                path, (member.axis, [None] * size, np.zeros(size, bool))
            )
            for position, channel in enumerate(member.channels):
                if channel >= 0 and not alive[group.name][channel]:
                    owners[position], dead[position] = (group.name, int(channel)), True
    return {
        path: _Consumer(axis, dead, tuple(owners))
        for path, (axis, owners, dead) in found.items()
        if dead.any()
    }


def _same_everywhere(values: np.ndarray) -> bool:
    """Whether ``values`` is one row along its last axis, repeated over the others.

    Examples:
      >>> _same_everywhere(np.array([[1.0, 2.0], [1.0, 2.0]]))
      True
      >>> _same_everywhere(np.array([[1.0, 2.0], [1.0, 3.0]]))
      False
    """
    rows = values.reshape(-1, values.shape[-1])
    scale = 1.0 + float(np.abs(rows).max(initial=0.0))
    return bool(np.allclose(rows, rows[:1], rtol=0.0, atol=1e-5 * scale))


def _kernel_path(module: nn.Module, kernels: Mapping[str, _Consumer]) -> str | None:
    """The path in ``kernels`` of ``module``'s kernel, if it is a Dense or Conv, whose
    input's last axis is the kernel's contracted axis (the second last); not a subclass,
    whose call may do more than add the bias last (a constant added inside an activation
    is not one added to its output)."""
    if type(module) not in (nn.Dense, nn.Conv):
        return None
    name = "/".join((*module.path, "kernel"))
    return next((path for path in kernels if name in (path, path.split("/", 1)[-1])), None)


def _seen(layer: nn.Module, dead: np.ndarray, x: Any) -> _Seen:
    """What the ``dead`` inputs (flags along ``x``'s last axis) of a bound Dense or Conv
    ``layer`` are on ``x``, and what they add to its output."""
    inputs = jnp.where(dead, x, 0)
    alone = layer.clone(parent=None)  # the layer on its own, to call it twice more
    params = {"params": layer.variables["params"]}
    with_dead, without = (np.asarray(alone.apply(params, v)) for v in (inputs, 0 * inputs))
    delta = with_dead - without
    values = np.asarray(inputs)[..., dead]
    return _Seen(
        nonzero=np.abs(values).reshape(-1, values.shape[-1]).max(0) > 0,
        constant=_same_everywhere(values),
        delta=delta.reshape(-1, delta.shape[-1])[0],
        delta_constant=_same_everywhere(delta),
        bias=bool(layer.use_bias),
    )


def _running_mean(module: nn.Module, leaves: Collection[str]) -> str | None:
    """The path in ``leaves`` of ``module``'s running mean, if it is a BatchNorm over the
    last axis (not a subclass): the channel axis of a Dense's or Conv's output."""
    if type(module) is not nn.BatchNorm or module.axis not in (-1, (-1,)):
        return None
    path = "/".join(("batch_stats", *module.path, "mean"))
    return path if path in leaves else None


def _watched(
    model: nn.Module,
    reference: Any,
    kernels: Mapping[str, _Consumer],
    call: tuple[Any, Any],
    leaves: Collection[str],
    shift: tuple[str, int, np.ndarray] | None = None,
) -> tuple[dict[str, list[_Seen]], list[tuple[str, np.ndarray]]]:
    """``model`` applied to ``call`` (args, kwargs) with the reference variables: every call
    of a consumer (a Dense or Conv; not `_seen` when ``shift`` is given), and the running
    mean in ``leaves`` and input of each BatchNorm call, in order. ``shift``: ``(path,
    index, probe)`` adds ``probe`` to the output of that call of that consumer."""
    seen: dict[str, list[_Seen]] = {}
    counts: dict[str, int] = {}
    norms: list[tuple[str, np.ndarray]] = []
    depth = apply_depth()

    def intercept(run: Callable[..., Any], run_args: Any, run_kwargs: Any, context: Any) -> Any:
        apart = applied_apart(depth)  # a model applied inside the call: not its layers
        if context.method_name != "__call__" or not run_args or apart:
            return run(*run_args, **run_kwargs)
        mean = _running_mean(context.module, leaves)
        if mean is not None and not isinstance(run_args[0], jax.core.Tracer):
            norms.append((mean, np.asarray(run_args[0])))
        path = _kernel_path(context.module, kernels)
        result = run(*run_args, **run_kwargs)
        if path is not None and len(run_args) == 1:
            x, consumer = run_args[0], kernels[path]
            kernel = context.module.variables["params"]["kernel"]
            if (
                not isinstance(x, jax.core.Tracer)
                and np.shape(x)[-1:] == consumer.dead.shape
                and np.ndim(kernel) - 2 == consumer.axis
            ):
                index = counts[path] = counts.get(path, -1) + 1
                if shift is None:
                    seen.setdefault(path, []).append(_seen(context.module, consumer.dead, x))
                elif shift[:2] == (path, index):
                    result = result + shift[2]
        return result

    with nn.intercept_methods(intercept):
        model.apply(reference, *call[0], **call[1])
    return seen, norms


def _observe(
    model: nn.Module,
    reference: Any,
    kernels: Mapping[str, _Consumer],
    args: Any,
    kwargs: Any,
    into_norms: bool,
) -> dict[str, list[_Seen]]:
    """Every call of a consumer (a Dense or Conv) on the reference model, with (if
    ``into_norms``, for one without a bias) the running mean of the one BatchNorm whose
    input its output shifts as is: what is added to the output is added to that input, at
    every position (the output itself, or reshaped, or added to others on the way)."""
    leaves = leaf_paths(reference, "fold") if into_norms else {}
    seen, norms = _watched(model, reference, kernels, (args, kwargs), leaves)
    for path, calls in seen.items() if into_norms else ():
        for index, c in enumerate(calls):
            if c.bias or not c.nonzero.any():
                continue
            probe = 1.0 + np.arange(c.delta.size, dtype=np.float32) / c.delta.size
            shift = (path, index, probe)
            _, shifted = _watched(model, reference, kernels, (args, kwargs), leaves, shift)
            taking = [
                mean
                for (mean, before), (_, after) in zip(norms, shifted, strict=False)
                if len(norms) == len(shifted) and _shifted_by(after - before, probe, before)
            ]
            if len(taking) == 1:
                calls[index] = dataclasses.replace(c, norm_mean=taking[0])
    return seen


def _shifted_by(difference: np.ndarray, probe: np.ndarray, before: np.ndarray) -> bool:
    """Whether ``difference`` is ``probe`` (along the last axis) at every position.

    Examples:
      >>> probe = np.array([1.0, 1.5])
      >>> _shifted_by(np.array([[1.0, 1.5], [1.0, 1.5]]), probe, np.zeros((2, 2)))
      True
      >>> _shifted_by(np.array([[2.0, 3.0], [2.0, 3.0]]), probe, np.zeros((2, 2)))
      False
    """
    if difference.shape[-1:] != probe.shape:
        return False
    scale = 1.0 + float(np.abs(before).max(initial=0.0))
    return bool(np.allclose(difference, probe, rtol=0.0, atol=1e-5 * scale))


def _foldable(calls: list[_Seen]) -> bool:
    """Whether the calls' dead inputs add one constant to the output, the same in each,
    that a bias or the BatchNorm reading the output takes (or that is zero)."""
    return bool(calls) and all(
        c.constant
        and c.delta_constant
        and np.allclose(c.delta, calls[0].delta, atol=1e-5)
        and (c.bias or c.norm_mean is not None or not c.nonzero.any())
        for c in calls
    )


def _takers(kernel: str, calls: list[_Seen]) -> dict[str, np.ndarray]:
    """``{leaf path: what to add to it}`` to take foldable ``calls``' constant: the
    consumer's bias, else each running mean its output went to, lowered by it
    (``BatchNorm(y + c)`` with mean ``m`` is ``BatchNorm(y)`` with mean ``m - c``).

    Examples:
      >>> seen = _Seen(np.array([True]), True, np.array([2.0]), True, False, "bn/mean")
      >>> _takers("params/dense/kernel", [seen])
      {'bn/mean': array([-2.])}
      >>> _takers("params/dense/kernel", [dataclasses.replace(seen, bias=True)])
      {'params/dense/bias': array([2.])}
    """
    if calls[0].bias:
        return {kernel.rsplit("/", 1)[0] + "/bias": calls[0].delta}
    return {c.norm_mean: -c.delta for c in calls if c.norm_mean is not None}


def _unfoldable(consumer: _Consumer, calls: list[_Seen]) -> set[tuple[str, int]]:
    """The dead channels of ``consumer`` to keep: all if it was not seen (not a Dense or
    Conv, or traced by jit), else the nonzero ones if not foldable."""
    owners = [o for o, dead in zip(consumer.owners, consumer.dead, strict=True) if dead]
    if not calls:
        return {o for o in owners if o is not None}
    if _foldable(calls):
        return set()
    nonzero = np.logical_or.reduce([c.nonzero for c in calls])
    return {o for o, flag in zip(owners, nonzero, strict=True) if flag and o is not None}


def _add_to_leaves(variables: Any, deltas: Mapping[str, np.ndarray]) -> Any:
    """``variables`` with ``deltas[leaf path]`` added to each of those leaves."""

    def add(keys: Any, leaf: Any) -> Any:
        delta = deltas.get(key_path(keys))
        return leaf if delta is None else (leaf + delta).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(add, variables)


def _fold_into(
    model: nn.Module,
    reference: Any,
    alive: Mapping[str, np.ndarray],
    groups: ChannelGroups,
    args: Any,
    kwargs: Any,
    into_norms: bool,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The channels to keep, and ``{leaf path: what to add to it}`` to fold the others'
    constants (into biases, and into running means if ``into_norms``)."""
    kept = dict(alive)
    while True:
        consumers = _consumers(groups, kept, reference)
        seen = _observe(model, reference, consumers, args, kwargs, into_norms)
        revive = set().union(*(_unfoldable(c, seen.get(p, [])) for p, c in consumers.items()))
        if not revive:
            break
        for name, channel in revive:
            kept[name] = kept[name].copy()
            kept[name][channel] = True
    deltas: dict[str, np.ndarray] = {}  # what consumers added together take adds up
    for path, calls in seen.items():
        for leaf, delta in _takers(path, calls).items() if _foldable(calls) else ():
            deltas[leaf] = deltas.get(leaf, 0.0) + delta
    return kept, deltas


def _outputs_agree(model: nn.Module, a: Any, b: Any, args: Any, kwargs: Any) -> bool:
    """Whether ``model`` computes the same on ``args`` with variables ``a`` and ``b``
    (its output only, not the state that ``mutable`` returns)."""
    outputs = [model.apply(v, *args, **kwargs) for v in (a, b)]
    if "mutable" in kwargs:
        outputs = [output[0] for output in outputs]
    pairs = zip(*(jax.tree_util.tree_leaves(o) for o in outputs), strict=True)
    return all(
        np.allclose(x, y, rtol=1e-5, atol=1e-5 * (1.0 + float(np.abs(y).max(initial=0.0))))
        for x, y in pairs
    )


def fold(
    model: nn.Module,
    variables: Any,
    alive: Mapping[str, Any],
    groups: ChannelGroups,
    *args: Any,
    **kwargs: Any,
) -> Folded:
    """`mask`, with each dead channel's constant output added to its consumers' biases.

    A dead channel (its kernel column or normalization scale near zero) outputs a
    constant, ``act(shift)`` after a BatchNorm with a zero scale and a nonzero shift,
    which `mask` and `shrink` drop. `fold` runs ``model`` on ``args`` with the dead
    channels' kernels and scales at zero (their biases kept), records what the dead
    channels add to each ``nn.Dense`` or ``nn.Conv`` that reads them, and adds it to
    that layer's bias, where it is the same at every position: ``sum_c act(shift_c) *
    W[c, :]`` for a Dense, the kernel's taps summed for a conv ('VALID' padding, or a
    zero constant). A layer without a bias (conv-BN) whose output goes as is to an
    ``nn.BatchNorm`` over its last axis (itself, reshaped with its channel axis kept, or
    added to other layers' outputs: what is added to the output is added to that
    BatchNorm's input), and nowhere else, has it subtracted from that
    BatchNorm's running mean instead (``batch_stats``: exact with
    ``use_running_average=True``; a batch mean takes any constant anyway); where its
    output is read elsewhere too (a residual), the model then computes something else
    on ``args``, and fold keeps to the biases. Where neither takes it (a 'SAME' conv
    sees fewer taps at the border, a value that depends on the input, a layer without
    a bias or BatchNorm), the dead channels with a
    nonzero output there are kept alive (their kernels and scales at zero: they output
    the constant); where a kernel that is not a Dense's or Conv's reads them (an
    einsum), all of them are. Then
    ``shrink(variables, folded.alive, groups)`` on ``folded.variables`` computes what
    ``model`` computes with the dead channels' kernels and scales at zero.

    Args:
      model: the Flax module the groups were traced from.
      variables: its variables, as ``model.apply`` takes them (``{"params": ...}``).
      alive: ``{group name: bool per channel}`` (see `alive_channels`).
      groups: the model's `ChannelGroups`.
      *args: example inputs (the consumers' inputs are checked to be constant on them:
        give varied inputs, not zeros).
      **kwargs: passed to ``model.apply`` (e.g. ``train=False``).

    Returns:
      A `Folded`: the folded variables and the channels to keep.

    Raises:
      TypeError: ``model`` is not a Flax module (a bare ``apply`` function): fold
        watches the inputs of its ``nn.Dense`` and ``nn.Conv`` layers; or no ``args``
        nor ``kwargs`` were given and the model cannot run without them.
      KeyError: a group member's leaf (e.g. a batch statistic, when only params are
        given) is not in ``variables``; the message names it.
      ValueError: the model cannot read ``variables`` (another model's, or params
        without their collection), a member's leaf has another width than traced (the
        leaf, the group and both lengths named) or an input has another shape than they
        were made for.
      ValueError: two leaves of ``variables`` have one path (``['a']['b']`` and
        ``['a/b']``: keys holding ``/``); the message names both.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups, fold, shrink
      >>> model = nn.Sequential([nn.Dense(2), nn.relu, nn.Dense(1)])
      >>> x = jnp.array([[1.0], [2.0]])
      >>> variables = {"params": {
      ...     "layers_0": {"kernel": jnp.array([[1.0, 0.0]]), "bias": jnp.array([0.0, 3.0])},
      ...     "layers_2": {"kernel": jnp.array([[1.0], [2.0]]), "bias": jnp.array([0.5])}}}
      >>> groups = channel_groups(model, variables, x)
      >>> folded = fold(model, variables, {"layers_0": [True, False]}, groups, x)
      >>> folded.variables["params"]["layers_2"]["bias"]  # 0.5 + relu(3) * 2
      Array([6.5], dtype=float32)
      >>> small = shrink(folded.variables, folded.alive, groups).variables
      >>> nn.Sequential([nn.Dense(1), nn.relu, nn.Dense(1)]).apply(small, x)[:, 0]
      Array([7.5, 8.5], dtype=float32)
    """
    refuse_module_class(model, "fold: model")
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"fold: model is {a_type(model)}, not a flax.linen Module; give the "
            "module the groups were traced from (fold watches its nn.Dense and nn.Conv "
            "layers' inputs), or use mask and shrink, which drop the dead channels' constants"
        )
    check_groups(groups, "fold(model, variables, alive, groups, x)")
    given = dict(zip(groups.names, groups.alive_arrays(alive), strict=True))
    reference = masked(variables, given, groups, "fold", keep_biases=True)
    call = "fold(model, variables, alive, groups, x), with varied inputs, not zeros."
    for into_norms in (True, False):
        with (
            read_by_the_model("fold", variables, (args, kwargs)),
            inputs_needed("fold", "groups", call, bool(args or kwargs)),
        ):
            kept, deltas = _fold_into(model, reference, given, groups, args, kwargs, into_norms)
        folded = masked(_add_to_leaves(reference, deltas), kept, groups, "fold", keep_biases=False)
        into_a_mean = any(path.startswith("batch_stats/") for path in deltas)
        if not into_a_mean or _outputs_agree(model, folded, reference, args, kwargs):
            break  # else a BatchNorm's input was read elsewhere too: keep to the biases
    return Folded(folded, kept)
