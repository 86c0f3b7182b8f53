"""`fit_config`: the `ModelConfig` whose model has a given tree of variable shapes."""

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from phosjax._compile import jit_run_once
from phosjax._listing import listing
from phosjax._nearest import did_you_mean
from phosjax.models import ModelConfig, build_model
from phosjax.models._config import checked_config
from phosjax.morph._groups import ChannelGroups, check_groups, leaf_path, leaf_shapes

Field = tuple[str, int | str]  # ("width", stage) or ("option", key)
_WIDTH_OPTIONS = ("features", "width", "channels", "heads")


@functools.lru_cache(maxsize=512)
def variable_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """``{leaf path: shape}`` of the variables ``config``'s model initializes (abstractly)."""
    model = build_model(config)
    x = jax.ShapeDtypeStruct((1, *config.input_shape), jnp.float32)
    return leaf_shapes(jax.eval_shape(model.init, jax.random.key(0), x), f"{config.name} init")


def _with(config: ModelConfig, field: Field, value: int) -> ModelConfig:
    kind, key = field
    if kind == "width":
        widths = list(config.widths or ())
        widths[key] = value  # type: ignore[index]
        return config.replace(width=tuple(widths))
    return config.replace(options={**dict(config.options), key: value})


def _fields(config: ModelConfig) -> list[Field]:
    fields: list[Field] = [("width", i) for i in range(len(config.widths or ()))]
    fields += [
        ("option", k)
        for k, v in config.options
        if isinstance(v, int) and not isinstance(v, bool) and k.endswith(_WIDTH_OPTIONS)
    ]
    return fields


def _value(config: ModelConfig, field: Field) -> int:
    kind, key = field
    if kind == "width":
        return int((config.widths or ())[int(key)])
    return int(dict(config.options)[str(key)])


def _changes(
    base: ModelConfig, field: Field, shapes: dict[str, tuple[int, ...]]
) -> dict[tuple[str, int], int]:
    """``{(path, axis): growth}`` when ``field`` grows by one (empty if it cannot)."""
    try:
        bumped = variable_shapes(_with(base, field, _value(base, field) + 1))
    except (ValueError, TypeError):
        return {}
    return {
        (path, axis): new - old
        for path, shape in shapes.items()
        for axis, (old, new) in enumerate(zip(shape, bumped.get(path, shape), strict=False))
        if new != old
    }


def _fit(base: ModelConfig, target: dict[str, tuple[int, ...]]) -> ModelConfig | None:
    shapes = variable_shapes(base)
    if set(shapes) != set(target):
        return None
    changes = {field: _changes(base, field, shapes) for field in _fields(base)}
    counts: dict[tuple[str, int], int] = {}
    for found in changes.values():
        for key in found:
            counts[key] = counts.get(key, 0) + 1
    fitted = base
    for field, found in changes.items():
        value = _value(base, field)
        implied = {
            value + (target[path][axis] - shapes[path][axis]) / unit
            for (path, axis), unit in found.items()
            if counts[(path, axis)] == 1
        }
        if len(implied) > 1:
            return None
        if implied:
            (new_value,) = implied
            if new_value != int(new_value) or new_value < 1:
                return None
            fitted = _with(fitted, field, int(new_value))
    return fitted if variable_shapes(fitted) == target else None


@functools.lru_cache(maxsize=512)
def same_function(a: ModelConfig, b: ModelConfig) -> bool:
    """Whether the models of ``a`` and ``b`` have the same variables and, given the same
    variables, the same outputs on a random probe input (inference mode)."""
    if variable_shapes(a) != variable_shapes(b):
        return False

    def outputs() -> list[list[jax.Array]]:
        x = jax.random.normal(jax.random.key(1), (2, *a.input_shape), jnp.float32)
        variables = build_model(a).init(jax.random.key(0), x)
        return [jax.tree.leaves(build_model(c).apply(variables, x)) for c in (a, b)]

    # one program, run once (so at -O1 on CPU): op by op, XLA compiled each op
    outs = jit_run_once(outputs)()
    pairs = list(zip(*outs, strict=False))
    return len(outs[0]) == len(outs[1]) and all(
        np.shape(u) == np.shape(v) and np.allclose(u, v, atol=1e-5) for u, v in pairs
    )


def _candidates(config: ModelConfig) -> list[ModelConfig]:
    """The config resolved, and split into one stage per block if that computes the same
    (not where a stage's first block differs from the others, e.g. downsamples)."""
    base = config.resolved()
    candidates = [base]
    depth = base.depth or 0
    if depth > 1 and base.widths:
        per_block = tuple(w for w in base.widths for _ in range(depth))
        split = base.replace(depth=1, width=per_block)
        if same_function(base, split):
            candidates.append(split)
    return candidates


def _driven(candidate: ModelConfig, groups: ChannelGroups) -> dict[Field, list[str]]:
    """``{field: names of the groups it sizes}`` for each field of ``candidate``; a field
    that cannot grow alone (say, a stage width tied to the next by a skip) sizes none."""
    shapes = variable_shapes(candidate)
    out = {}
    for field in _fields(candidate):
        axes = set(_changes(candidate, field, shapes))
        out[field] = [
            g.name
            for g in groups.groups
            if any((m.path, m.axis) in axes and m.zeroed for m in g.members)
        ]
    return out


def _score_arrays(
    scores: Mapping[str, Any], groups: ChannelGroups, needed: Iterable[str]
) -> dict[str, np.ndarray]:
    """`expressible`'s ``scores`` as float arrays, once they name channel groups only,
    give one score per channel and have an entry for each of the ``needed`` groups.

    Raises:
      ValueError: naming the unknown, missing or misshapen entries and what is right.
    """
    unknown = [name for name in scores if name not in groups.names]
    if unknown:
        raise ValueError(
            f"expressible scores names {unknown[0]!r}, which is no channel group"
            f"{did_you_mean(unknown[:1], groups.names) or '.'} The groups: {list(groups.names)}."
        )
    missing = [name for name in needed if name not in scores]
    if missing:
        raise ValueError(
            f"expressible scores has no entry for the groups {missing} (a config field "
            "sizes them, so their channels are kept by score); give each group one score "
            "per channel (or scores=None: keep the alive channels, then the first)."
        )
    arrays = {name: np.asarray(score, float) for name, score in scores.items()}
    for group in groups.groups:
        shape = arrays.get(group.name, np.zeros(group.size)).shape
        if shape != (group.size,):
            raise ValueError(
                f"expressible scores[{group.name!r}] has shape {shape}; the group has "
                f"{group.size} channels, so expected ({group.size},)."
            )
    return arrays


def _check_traced_from(config: ModelConfig, groups: ChannelGroups) -> None:
    """Raises a ValueError if a leaf of ``groups`` is none of ``config``'s model (the
    groups were traced from another model), naming the leaf and both models' modules."""
    paths = variable_shapes(config.resolved())
    for member in (m for group in groups.groups for m in group.members):
        try:
            leaf_path(member.path, paths)
        except KeyError:
            modules = list(dict.fromkeys(p.rsplit("/", 1)[0] for p in paths))
            raise ValueError(
                f"expressible: the groups hold the leaf {member.path!r}, which the "
                f"{config.name!r} model of config lacks (its modules: "
                f"{listing(modules, 8, as_list=True)}); were the groups traced from another "
                "model? pass the config of the model they were traced from"
            ) from None


def expressible(
    config: ModelConfig,
    groups: ChannelGroups,
    alive: Mapping[str, Any],
    scores: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """``alive`` adjusted so that a config like ``config`` builds the shrunk model.

    Groups sized by the same config field (a stage's width sizes every block of the
    stage) keep the same number of channels: the largest alive count among them, each
    keeping its best channels by ``scores`` (default: the alive ones, then the first).
    Groups no field sizes keep all their channels.

    Raises:
      ValueError: ``scores`` misses a group that a field sizes, names no group, or has
        an entry of another size than its group; ``groups`` hold a leaf that ``config``'s
        model lacks (they were traced from another model).

    Examples:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import channel_groups, expressible
      >>> config = ModelConfig("resnet", 3, (4, 4, 1), width=8)
      >>> model, x = config.build(), jnp.zeros((2, 4, 4, 1))
      >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)  # shapes suffice
      >>> groups = channel_groups(model, variables, x)
      >>> alive = {"blocks_0/conv_0": np.arange(8) < 2, "blocks_0/conv_1": np.arange(8) % 2 == 1}
      >>> kept = expressible(config, groups, alive)  # the stage's width sizes both groups
      >>> {name: np.flatnonzero(keep).tolist() for name, keep in kept.items()}
      {'blocks_0/conv_0': [0, 1, 2, 3], 'blocks_0/conv_1': [1, 3, 5, 7]}
    """
    checked_config(config, "expressible", more=True)
    check_groups(groups, "expressible(config, groups, alive)")
    _check_traced_from(config, groups)
    drives = [_driven(candidate, groups) for candidate in _candidates(config)]
    # The form whose fields size the most groups; of equals the last (one stage per block).
    fields = max(reversed(drives), key=lambda d: len({n for names in d.values() for n in names}))
    arrays = dict(zip(groups.names, groups.alive_arrays(alive), strict=True))
    result = {name: np.ones_like(keep) for name, keep in arrays.items()}
    needed = [name for driven in fields.values() for name in driven]
    scored = None if scores is None else _score_arrays(scores, groups, needed)
    for driven in fields.values():
        count = max((int(arrays[name].sum()) for name in driven), default=0)
        for name in driven:
            score = -np.arange(arrays[name].size) if scored is None else scored[name]
            order = np.lexsort((-score, ~arrays[name]))
            keep = np.zeros(arrays[name].size, bool)
            keep[order[: max(count, 1)]] = True
            result[name] = keep
    return result


def fit_config(config: ModelConfig, variables: Any) -> ModelConfig:
    """The config, like ``config`` but with other widths, whose model has these variables
    (or these params, where it has no other collection).

    Each integer field of the config (stage widths, integer options) is tied to the
    axes it sizes by building the config with that field one larger. When the blocks of
    a stage have different widths, the stage is split into one stage per block.

    Raises:
      ValueError: no config of that form builds variables of these shapes; the variables
        have other leaves than ``config``'s model (another model's), which are named.
      ValueError: two leaves of ``variables`` have one path (``['a']['b']`` and
        ``['a/b']``: keys holding ``/``); the message names both.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import fit_config
      >>> config = ModelConfig("mlp", 10, (40,), width=16)
      >>> narrow = ModelConfig("mlp", 10, (40,), width=8).build()
      >>> variables = jax.eval_shape(narrow.init, jax.random.key(0), jnp.zeros((1, 40)))
      >>> fitted = fit_config(config, variables)
      >>> fitted.width, fitted.depth
      ((8,), 1)
    """
    checked_config(config, "fit_config", more=True)
    target = leaf_shapes(variables, "fit_config")
    if not any(path.startswith("params/") for path in target):  # params alone
        target = {f"params/{path}": shape for path, shape in target.items()}
    base = config.resolved()
    for candidate in _candidates(config):
        fitted = _fit(candidate, target)
        if fitted is not None:
            return fitted
    shapes = variable_shapes(base)
    lacked, foreign = sorted(set(shapes) - set(target)), sorted(set(target) - set(shapes))
    if lacked or foreign:
        leaves = [f"lack its leaves {listing(lacked, 6, as_list=True)}"] if lacked else []
        leaves += [f"hold the leaves {listing(foreign, 6, as_list=True)}"] if foreign else []
        raise ValueError(
            f"the variables are not of a {config.name!r} model like config's, whatever its "
            f"widths: they {' and '.join(leaves)}; pass the config of the model they are of"
        )
    differing = sorted(path for path, shape in shapes.items() if target[path] != shape)
    raise ValueError(
        f"no {config.name!r} ModelConfig (varying its widths and integer options) builds "
        f"variables of these shapes; changed leaves: {listing(differing, 6, as_list=True)}. "
        "The model's config cannot express these "
        "widths (e.g. per-block widths within a stage, or heads of another size); "
        "round the alive channels to widths it can express with "
        "expressible(config, groups, alive) before shrinking (once does)."
    )
