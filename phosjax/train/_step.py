"""The train step and the evaluation of ONE cell; strategies lift them over a group.

Data arrive as a dict of device arrays (see `device_arrays`): ``x_train``, ``y_train``
and the test split cut into padded batches ``x_test (B, E, ...)``, ``y_test (B, E)``,
``test_mask (B, E)``.
"""

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from phosjax._callables import a_type
from phosjax._listing import listing
from phosjax._widening import summing_dtype
from phosjax.core import (
    AUX_LOSS,
    INTERMEDIATES,
    PATH_WEIGHTS,
    SelectorError,
    apply_checking_records,
    aux_total,
    flatten,
    regularize,
    select,
)
from phosjax.core._apply import dropped_tags, tag_call_shapes
from phosjax.core._knobs import what_holds
from phosjax.core._module_check import check_module
from phosjax.core._record import check_recorded
from phosjax.core._tags import tags_seen
from phosjax.data import batch_indices
from phosjax.morph import channel_groups, morph_regularizer
from phosjax.train._config import HParams, Regularizer, int_at_least
from phosjax.train._matmul_convs import rewrite_before_grad
from phosjax.train._optim import as_dtype_of, hparams_multiplier, hparams_optimizer
from phosjax.train._precision import precision_apply
from phosjax.train._reduce import all_finite, scaled_global_norm
from phosjax.train._state import GroupState, check_data_set

Metrics = dict[str, jax.Array]
EvalFn = Callable[[GroupState, dict[str, jax.Array]], Metrics]

PERSISTENT_MUTABLE = ("batch_stats",)


def check_splits(data: Any) -> None:
    """Raises a ValueError naming ``data`` and the split unless its train split (the steps
    draw their batches from it) and its test split (the evaluation reads it) each hold at
    least one example."""
    for split, use in (("train", "draws its batches from"), ("test", "evaluates on")):
        x = getattr(data, f"x_{split}")
        if x.shape[0] == 0:
            raise ValueError(
                f"data set {data.name!r} has an empty {split} split (x_{split} shape "
                f"{tuple(x.shape)}); training {use} it and needs at least one {split} example"
            )


EXACT_INTEGERS = {"bfloat16": 2**8, "float32": 2**24}
"""The largest magnitude up to which each compute dtype holds every integer: bfloat16 (8
significant bits) reads 257 as 256, float32 (24) ``2**24 + 1`` as ``2**24``. The inputs
reach the devices as float32 (`device_arrays`) whatever the compute dtype."""


def check_inputs_fit(data: Any, compute_dtype: str, named: str | None = None) -> None:
    """Raises a ValueError naming ``data``, the split and the largest input unless
    ``compute_dtype`` (``named`` so, by default ``HParams compute_dtype=...``) holds its
    integer inputs exactly (beyond `EXACT_INTEGERS` they would be rounded, two token ids or
    counts read as one) and its float ones (beyond ~3.4e38 in float32, to which the inputs
    are converted, and ~3.39e38 in bfloat16 they would become inf).

    Examples:
      >>> import numpy as np
      >>> from phosjax.data import ArrayDataset
      >>> x, y = np.array([[3], [300]]), np.zeros(2, np.int32)
      >>> check_inputs_fit(ArrayDataset("ids", x, y, x, y, 2, (1,)), "bfloat16")
      Traceback (most recent call last):
      ValueError: data set 'ids' has integer inputs up to 300 (x_train, int64), which ...
      >>> x = np.array([[3], [2**24 + 1]])
      >>> check_inputs_fit(ArrayDataset("ids", x, y, x, y, 2, (1,)), "float32")
      Traceback (most recent call last):
      ValueError: data set 'ids' has integer inputs up to 16777217 (x_train, int64), which
      HParams compute_dtype='float32' would round (it holds integers exactly up to
      16777216: 16777217 reads 16777216); scale its inputs (e.g. x / x.max())
      >>> x = np.array([[1.0, 3.0], [-1e39, 2.0]])
      >>> check_inputs_fit(ArrayDataset("big", x, y, x[:1], y[:1], 2, (2,)), "float32")
      Traceback (most recent call last):
      ValueError: data set 'big' has an input of -1e+39 (x_train[1, 0], float64), beyond
      float32's range (a number between -3.40282e+38 and 3.40282e+38), to which the inputs
      are converted: it would become inf; scale its inputs (e.g. x / abs(x).max())
    """
    check_float_inputs(data, compute_dtype)
    check_integer_inputs(data, compute_dtype, named)


def check_integer_inputs(data: Any, compute_dtype: str, named: str | None = None) -> None:
    """Raises the ValueError of `check_inputs_fit` if ``compute_dtype`` would round an
    integer input of ``data`` (beyond `EXACT_INTEGERS`)."""
    exact = EXACT_INTEGERS[compute_dtype]
    for name in ("x_train", "x_test"):
        x = np.asarray(getattr(data, name))
        if x.dtype.kind not in "iu" or x.size == 0 or np.iinfo(x.dtype).max < exact:
            continue  # none to round, or a dtype (uint8, int16) that holds none beyond
        largest = max(int(x.max()), -int(x.min()))
        if largest > exact:
            wider = "train it in 'float32', or " if largest <= EXACT_INTEGERS["float32"] else ""
            named = named or f"HParams compute_dtype={compute_dtype!r}"
            raise ValueError(
                f"data set {data.name!r} has integer inputs up to {largest} ({name}, "
                f"{x.dtype}), which {named} would round (it holds integers exactly up to "
                f"{exact}: {exact + 1} reads {exact}); {wider}scale its inputs (e.g. x / x.max())"
            )


def check_float_inputs(data: Any, dtype: str) -> None:
    """Raises the ValueError of `check_inputs_fit` if a finite input of ``data`` would
    become inf in ``dtype`` (`_becomes_inf`: one just beyond its largest rounds to it; a
    NaN or inf is left as it is; one that is no float, or of a float dtype inside that
    range, has none); copies a split only to find the entry, if its least or largest
    would."""
    for name in ("x_train", "x_test"):
        _check_float_range(data.name, name, np.asarray(getattr(data, name)), dtype)


def _check_float_range(dataset: str, name: str, x: np.ndarray, dtype: str) -> None:
    """`check_float_inputs` of the split ``name`` of ``dataset``, ``x``."""
    held = jnp.dtype(dtype)
    if x.dtype.kind != "f" or x.size == 0 or np.finfo(x.dtype).max <= jnp.finfo(held).max:
        return
    extremes = np.array([np.fmin.reduce(x, axis=None), np.fmax.reduce(x, axis=None)])  # no NaN
    if not _becomes_inf(extremes, held).any():
        return
    at = np.unravel_index(int(_becomes_inf(x, held).argmax()), x.shape)
    raise ValueError(
        f"data set {dataset!r} has an input of {x[at]:.4g} ({name}[{', '.join(map(str, at))}], "
        f"{x.dtype}), beyond {dtype}'s range ({what_holds(held)}), to which the inputs are "
        "converted: it would become inf; scale its inputs (e.g. x / abs(x).max())"
    )


def _becomes_inf(x: np.ndarray, held: np.dtype) -> np.ndarray:
    """Where a finite entry of ``x`` becomes inf on its way to ``held``: as float32 first
    (`device_arrays`), then ``held``; rounded twice, bfloat16's largest plus a hair less
    than half its step reaches inf, though cast at once it would not.

    Examples:
      >>> hair_below_the_midpoint = np.nextafter((2 - 2**-8) * 2.0**127, 0)
      >>> _becomes_inf(np.array([hair_below_the_midpoint, np.inf]), jnp.dtype(jnp.bfloat16))
      array([ True, False])
    """
    with np.errstate(over="ignore"):
        return np.isinf(x.astype(np.float32).astype(held)) & np.isfinite(x)


EVAL_BATCH_SIZE = 1000
"""How many test examples one evaluation batch holds, by default (`device_arrays`)."""


def eval_batches(num_test: int, eval_batch_size: int = EVAL_BATCH_SIZE) -> tuple[int, int]:
    """``(batches, size)``: how `device_arrays` cuts a test split of ``num_test >= 1``
    examples, the last batch padded.

    Examples:
      >>> eval_batches(32, 20), eval_batches(40)
      ((2, 20), (1, 40))
    """
    size = min(eval_batch_size, num_test)
    return -(-num_test // size), size


def device_arrays(data: Any, eval_batch_size: int = EVAL_BATCH_SIZE) -> dict[str, np.ndarray]:
    """The arrays a step reads, from an `ArrayDataset`: train split, padded test batches.

    Raises:
      TypeError: ``data`` is no data set (e.g. the dict of arrays this returns).
      ValueError: a split is empty (`check_splits`), an input does not fit float32
        (`check_inputs_fit`), or ``eval_batch_size`` is no int >= 1.

    Examples:
      >>> from phosjax.data import random_dataset
      >>> arrays = device_arrays(random_dataset("toy", (8,), 3), eval_batch_size=20)
      >>> arrays["x_train"].shape, arrays["x_test"].shape  # 32 test rows: 2 batches of 20
      ((64, 8), (2, 20, 8))
      >>> arrays["test_mask"].sum(axis=1).tolist()  # the padding rows are masked
      [20, 12]
    """
    fields = ("name", "x_train", "y_train", "x_test", "y_test")
    example = "e.g. phosjax.data.load('mnist1d')"
    check_data_set("device_arrays: data must be a data set", data, fields, example)
    check_splits(data)
    check_inputs_fit(data, "float32", "float32 (device_arrays converts the inputs to it)")
    eval_batch_size = int_at_least("device_arrays eval_batch_size", eval_batch_size, 1)
    num_test = int(data.x_test.shape[0])
    batches, size = eval_batches(num_test, eval_batch_size)
    pad = batches * size - num_test

    def cut(a: Any) -> np.ndarray:
        a = np.asarray(a)
        a = np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])
        return a.reshape(batches, size, *a.shape[1:])

    return {
        "x_train": np.asarray(data.x_train, np.float32),
        "y_train": np.asarray(data.y_train, np.int32),
        "x_test": cut(np.asarray(data.x_test, np.float32)),
        "y_test": cut(np.asarray(data.y_test, np.int32)),
        "test_mask": cut(np.ones(num_test, bool)),
    }


def device_array_specs(data: Any) -> dict[str, jax.ShapeDtypeStruct]:
    """The shapes and dtypes of `device_arrays` of ``data`` (an `ArrayDataset`), from its
    sizes alone: nothing is converted (a step is traced on them before the data is).

    Examples:
      >>> from phosjax.data import random_dataset
      >>> data = random_dataset("toy", (8,), 3)
      >>> specs = device_array_specs(data)
      >>> specs["x_test"]
      ShapeDtypeStruct(shape=(1, 32, 8), dtype=float32)
      >>> arrays = device_arrays(data)
      >>> all(specs[k] == jax.ShapeDtypeStruct(a.shape, a.dtype) for k, a in arrays.items())
      True
    """
    inputs, num_train = tuple(data.input_shape), data.num_train
    tests = eval_batches(data.num_test)
    return {
        "x_train": jax.ShapeDtypeStruct((num_train, *inputs), jnp.float32),
        "y_train": jax.ShapeDtypeStruct((num_train,), jnp.int32),
        "x_test": jax.ShapeDtypeStruct((*tests, *inputs), jnp.float32),
        "y_test": jax.ShapeDtypeStruct(tests, jnp.int32),
        "test_mask": jax.ShapeDtypeStruct(tests, jnp.bool_),
    }


def _penalty(kind: str, on: str) -> Callable[..., jax.Array]:
    """``(value, off) -> penalty``, summed in float32 (or wider) whatever ``value``'s dtype:
    a bfloat16 sum over a kernel rounds it to bfloat16's 3 digits. On activations, where
    ``off`` (strength 0) it is the penalty of zeros: an infinite activation, which may
    leave the loss finite (``tanh(inf)``), then reaches no gradient (the strength's 0 alone
    would give 0 * inf, NaN). An infinite param makes the loss non-finite anyway: params
    are not selected, which would cost a pass over them each step. A tagged value that is
    a pytree (a pair) is averaged over the entries of all its arrays."""
    elementwise = jnp.abs if kind == "l1" else jnp.square

    def penalty(value: Any, off: jax.Array) -> jax.Array:
        leaves = [leaf.astype(summing_dtype(leaf.dtype)) for leaf in jax.tree.leaves(value)]
        if on == "activations":
            leaves = [jnp.where(off, 0, leaf) for leaf in leaves]
        total = functools.reduce(jnp.add, [jnp.sum(elementwise(leaf)) for leaf in leaves])
        return total if on == "params" else total / sum(leaf.size for leaf in leaves)

    return penalty


ON_WHAT = {"params": "param", "activations": "tagged value"}
"""What a `Regularizer`'s selector matches by its ``on``, as a selector's error names it."""


def on_hint(selector: str, on: str, paths: Mapping[str, Iterable[str]]) -> str:
    """`` It matches param 'a/kernel', not a tagged value: give on='params'.`` where
    ``selector``, which matched nothing ``on`` one side, matches a path of the other
    (``paths``: by ``on``); ``""`` where it matches none.

    Examples:
      >>> on_hint("**/pre_act", "params", {"params": ["a/kernel"], "activations": ["a/pre_act"]})
      " It matches tagged value 'a/pre_act', not a param: give on='activations'."
    """
    for other in (name for name in paths if name != on):
        found = select(paths[other], selector, allow_empty=True)
        if found:
            what = f"{ON_WHAT[other]} {found[0]!r}, not a {ON_WHAT[on]}"
            return f" It matches {what}: give on={other!r}."
    return ""


def selector_hint(
    selector: str, on: str, model: nn.Module, variables: Any, x: Any, rng: jax.Array
) -> str:
    """What a regularizer's ``selector``, which matched nothing ``on`` its side of
    ``model`` (its ``variables``), was meant to match, traced abstractly as a train step
    applies it to ``x`` with ``rng`` (a step collects the tags only where a regularizer
    is on them): the other side's path (`on_hint`); ``""`` where it cannot tell. (A
    tagged value that a lifted transform dropped is refused before, by
    `check_penalized_tags_kept`.)"""
    mutable = training_mutable(variables)
    applied = {"train": True, "rngs": {"dropout": rng}, "mutable": mutable}
    calls, _, _ = tag_call_shapes(model, variables, x, **applied)
    paths = {"params": flatten(nn.meta.unbox(variables["params"])), "activations": calls}
    return on_hint(selector, on, paths)


def _morph_penalty(model: nn.Module, reg: Regularizer) -> Callable[[Any, jax.Array], jax.Array]:
    """``(variables, x) -> penalty``: `morph_regularizer`, its groups traced from the shapes
    (it sums bfloat16 params in float32, as `_penalty` does)."""
    cache: dict[Any, Callable[[Any], jax.Array]] = {}

    def penalty(variables: Any, x: jax.Array) -> jax.Array:
        specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (variables, x))
        key = (jax.tree.structure(specs), tuple(jax.tree.leaves(specs)))
        if key not in cache:
            groups = channel_groups(model, *specs, train=False)
            cache[key] = morph_regularizer(
                groups, reg.cost, reg.source, reg.threshold, selector=reg.selector
            )
        return cache[key](variables)

    return penalty


def _cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: jax.Array) -> jax.Array:
    """Per example, in float32 whatever dtype the model computes its logits in (a
    bfloat16 log-softmax rounds the loss and its gradient)."""
    logits, classes = jnp.asarray(logits, jnp.float32), logits.shape[-1]
    targets = jax.nn.one_hot(labels, classes) * (1 - smoothing) + smoothing / classes
    return optax.softmax_cross_entropy(logits, targets)


def correct(logits: jax.Array, labels: Any) -> jax.Array:
    """Per example, float32: 1 where the argmax of its ``logits`` is its label, else 0;
    NaN where its largest logit is not finite (a NaN, an overflow to +inf, or all -inf),
    as its loss is: argmax would pick the first such class, which would count a model
    whose outputs overflowed right on the labels at that index. A -inf beside a finite
    logit (a class masked out) is a value.

    Examples:
      >>> logits = jnp.array([[2.0, 1.0], [2.0, -jnp.inf], [jnp.nan, 1.0], [jnp.inf, 1.0]])
      >>> correct(logits, jnp.array([0, 1, 0, 0]))
      Array([ 1.,  0., nan, nan], dtype=float32)
    """
    right = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return jnp.where(jnp.isfinite(jnp.max(logits, -1)), right, jnp.nan)


def _mean_record(value: Any) -> jax.Array:
    values = value if isinstance(value, tuple) else (value,)
    return jnp.mean(jnp.stack([jnp.mean(v) for v in values]))


Batch = tuple[jax.Array, jax.Array]

TRAIN_ARRAYS = ("x_train", "y_train")
"""The arrays of `device_arrays` a train step reads."""

TEST_ARRAYS = ("x_test", "y_test", "test_mask")
"""The arrays of `device_arrays` an evaluation reads."""


def check_cell_arguments(where: str, state: Any, arrays: Any, keys: tuple[str, ...]) -> None:
    """Raises a ValueError or TypeError naming ``where`` if ``state`` is a group's (its
    ``step`` of a shape other than ``()``: several cells) or, given ``keys``, ``arrays`` is
    no mapping holding them (as `device_arrays` makes it): else the step failed deep inside
    (a batch of keys, a data set that is not subscriptable, a bare KeyError).

    Examples:
      >>> check_cell_arguments("the train step", None, [], TRAIN_ARRAYS)
      Traceback (most recent call last):
      TypeError: the train step: arrays must be a mapping holding x_train, y_train, got a list; ...
    """
    step = getattr(state, "step", None)
    if step is not None and np.ndim(step) != 0:
        raise ValueError(
            f"{where}: state must be one cell's GroupState (step of shape ()), got one of "
            f"{np.size(step)} cells (step of shape {np.shape(step)}); take cell i: "
            "jax.tree.map(lambda a: a[i], state), or train the whole group with run_group"
        )
    if keys:
        check_arrays(where, arrays, keys)


def check_arrays(where: str, arrays: Any, keys: tuple[str, ...] = ()) -> None:
    """Raises a TypeError naming ``where`` unless ``arrays`` is a mapping holding ``keys``,
    as `device_arrays` makes it (not the data set itself).

    Examples:
      >>> check_arrays("measure_strategies", [])
      Traceback (most recent call last):
      TypeError: measure_strategies: arrays must be a mapping, got a list; pass device_arrays(data)
    """
    missing = [key for key in keys if key not in arrays] if isinstance(arrays, Mapping) else []
    if not isinstance(arrays, Mapping) or missing:
        holding = f" holding {', '.join(keys)}" if keys else ""
        lacks = f", which lacks {', '.join(missing)}" if missing else ""
        raise TypeError(
            f"{where}: arrays must be a mapping{holding}, got {a_type(arrays)}{lacks}; pass "
            "device_arrays(data)"
        )


@dataclasses.dataclass(frozen=True)
class TrainStep:
    """One train step of one cell: ``step(state, arrays) -> (state, metrics)``.

    ``step.batches(state, arrays, n)`` draws the batch indices of the next ``n`` steps at
    once, ``(n, batch_size)``; given ``budget_bytes`` it also gathers their examples,
    ``(x (n, batch_size, ...), y (n, batch_size))``, when those fit in it.
    ``step(state, arrays, batches[i])`` takes the i-th of those steps, gathering its
    examples when it got indices. `Executor.run_steps` draws a chunk's batches before
    its scan: the while loop of `batch_indices` (its cycle walking) then runs once per
    chunk, and one gather of the chunk's examples replaces a small gather in every
    step (on XLA:CPU that gather cost a one-cell MLP step 20-30%,
    ``benchmarks/step_costs.py``). Every way draws the same examples.
    A state of several cells (a group's), or arrays that lack what the call reads (not
    `device_arrays`'; a batch given as its examples reads none), is refused naming what
    to pass (`check_cell_arguments`).

    Examples:
      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, device_arrays, init_group, plan_groups
      >>> data, model = random_dataset("toy", (8,), 3), ModelConfig("logreg", 3, (8,))
      >>> [group] = plan_groups([Cell(model, "toy", HParams(batch_size=16, steps=10))])
      >>> cell = jax.tree.map(lambda a: a[0], init_group(group, data))  # its one cell
      >>> arrays = device_arrays(data)
      >>> step = make_train_step(model.build(), group.hparams)
      >>> indices = step.batches(cell, arrays, 3)  # of the next 3 steps
      >>> x, y = step.batches(cell, arrays, 3, budget_bytes=1e6)  # their examples: they fit
      >>> indices.shape, x.shape, bool((x == arrays["x_train"][indices]).all())
      ((3, 16), (3, 16, 8), True)
      >>> after, metrics = jax.jit(step)(cell, arrays, (x[0], y[0]))  # the first of them
      >>> after.step.tolist(), sorted(metrics)
      (1, ['accuracy', 'grad_norm', 'loss', 'task_loss'])
    """

    update: Callable[[GroupState, dict[str, jax.Array], Batch], tuple[GroupState, Metrics]]
    batch_size: int

    def batches(
        self,
        state: GroupState,
        arrays: dict[str, jax.Array],
        num_steps: int,
        budget_bytes: float = 0,
    ) -> jax.Array | Batch:
        """The batches of steps ``state.step`` ... ``+ num_steps - 1``: their examples
        when they take at most ``budget_bytes``, else their indices."""
        check_cell_arguments("the train step", state, arrays, TRAIN_ARRAYS)
        key = jax.random.wrap_key_data(state.data_key)
        x, y = arrays["x_train"], arrays["y_train"]
        steps = state.step + jnp.arange(num_steps, dtype=jnp.asarray(state.step).dtype)
        idx = jax.vmap(lambda s: batch_indices(key, s, x.shape[0], self.batch_size))(steps)
        example_bytes = (x[0].size * x.dtype.itemsize) + (y[0].size * y.dtype.itemsize)
        if idx.size * example_bytes <= budget_bytes:
            return x[idx], y[idx]
        return idx

    def __call__(
        self,
        state: GroupState,
        arrays: dict[str, jax.Array],
        batch: jax.Array | Batch | None = None,
    ) -> tuple[GroupState, Metrics]:
        if batch is None:
            batch = self.batches(state, arrays, 1)[0]  # which checks the arguments
        else:  # given as its examples, the arrays are not read
            keys = () if isinstance(batch, tuple) else TRAIN_ARRAYS
            check_cell_arguments("the train step", state, arrays, keys)
        if not isinstance(batch, tuple):
            batch = arrays["x_train"][batch], arrays["y_train"][batch]
        return self.update(state, arrays, batch)


def rng_stream_error(model: nn.Module, error: Exception) -> ValueError:
    """The error for ``model`` drawing in training from an rng stream other than
    ``"dropout"``, the one stream the step gives it (Flax's `InvalidRngError` names the
    stream, not what to do).

    Examples:
      >>> print(rng_stream_error(nn.Dense(2), ValueError('None needs PRNG for "noise"')))
      Dense draws random numbers from the rng stream 'noise', but training gives a model only
      'dropout' (a new key each step): draw with self.make_rng('dropout') (Flax's Dropout
      does)
    """
    stream = re.search(r'PRNG for "([^"]*)"', str(error))
    named = f"the rng stream {stream.group(1)!r}" if stream else f"an rng stream ({error})"
    return ValueError(
        f"{type(model).__name__} draws random numbers from {named}, but training gives a "
        "model only 'dropout' (a new key each step): draw with self.make_rng('dropout') "
        "(Flax's Dropout does)"
    )


def collection_write_error(model: nn.Module, error: Exception, training: bool) -> ValueError:
    """The error for ``model`` writing, in training (``training``) or in an evaluation, a
    variable of a collection that the engine does not let it write there (Flax's
    `ModifyScopeVariableError` says the collection is immutable, not what the engine
    writes).

    Examples:
      >>> error = ValueError('Cannot update variable "n" in "/" because collection "counter"')
      >>> print(collection_write_error(nn.Dense(2), error, training=True))
      Dense writes variable 'n' of its collection 'counter' (at '/') in training, but a train
      step writes only 'batch_stats' (running statistics, carried from step to step) and
      reads the other collections as init made them: keep what the model updates in
      training in 'batch_stats'
      >>> print(collection_write_error(nn.Dense(2), error, training=False))
      Dense writes variable 'n' of its collection 'counter' (at '/') in an evaluation
      (train=False), which writes nothing and reads what training left: write it only when
      train is true (Flax's BatchNorm: use_running_average=not train)
      >>> error = ValueError('Cannot update variable "g" in "/" because collection "params"')
      >>> print(collection_write_error(nn.Dense(2), error, training=True))
      Dense writes variable 'g' of its collection 'params' (at '/') in training, but a train
      step changes params only by the optimizer's update (from their gradient): keep what the
      model updates in training itself in 'batch_stats' (running statistics, carried from step
      to step)
    """
    found = re.search(r'variable "([^"]*)" in "([^"]*)" because collection "([^"]*)"', str(error))
    if found:
        name, path, collection = found.groups()
        what = f"variable {name!r} of its collection {collection!r} (at {path!r})"
    else:
        collection, what = None, f"a variable ({error})"
    written = f"{type(model).__name__} writes {what}"
    if training and collection == "params":
        return ValueError(
            f"{written} in training, but a train step changes params only by the "
            "optimizer's update (from their gradient): keep what the model updates in "
            "training itself in 'batch_stats' (running statistics, carried from step to step)"
        )
    if training:
        return ValueError(
            f"{written} in training, but a train step writes only "
            "'batch_stats' (running statistics, carried from step to step) and reads the "
            "other collections as init made them: keep what the model updates in training "
            "in 'batch_stats'"
        )
    return ValueError(
        f"{written} in an evaluation (train=False), which writes nothing and "
        "reads what training left: write it only when train is true (Flax's BatchNorm: "
        "use_running_average=not train)"
    )


def check_penalized_tags_kept(
    regularizers: Iterable[Regularizer],
    seen: Mapping[str, Mapping[str, None]],
    activations: Mapping[str, Any],
) -> None:
    """Raises where a regularizer on activations matches a tagged value that a lifted
    transform dropped: tagged (`tags_seen` kept it: ``seen``) but not in ``activations``,
    the ``intermediates`` the call returned (`dropped_tags`); the penalty would leave it
    out, silently.

    Examples:
      >>> seen = {"intermediates": {"h": None, "members/h": None}}
      >>> regularizers = [Regularizer("**/h", "l2", 1e-3, on="activations")]
      >>> check_penalized_tags_kept(regularizers, seen, {"h": (1.0,)})
      Traceback (most recent call last):
      ValueError: tagged value 'members/h' was tagged but not recorded: ... omit
      'intermediates' dropped it, so HParams regularizers[0] ('**/h') would not penalize
      it. ...
    """
    dropped = dropped_tags(seen, flatten(activations, unwrap=False)) or []
    for i, regularizer in enumerate(regularizers):
        if regularizer.on == "activations":
            named = f"HParams regularizers[{i}] ({regularizer.selector!r})"
            check_tags_kept(regularizer.selector, dropped, f"{named} would not penalize it")


def check_tags_kept(selector: str, dropped: Sequence[str], unpenalized: str) -> None:
    """Raises where ``selector``, a regularizer's on activations, matches a tagged value
    that a lifted transform ``dropped`` (`dropped_tags`): the message ends saying that
    the regularizer would not penalize it (``unpenalized``)."""
    lost = select(dropped, selector, allow_empty=True)
    check_recorded(INTERMEDIATES, lost, {}, "tagged value {!r} was tagged", unpenalized)


def training_apply(
    model: nn.Module,
    apply: Callable[..., Any],
    variables: Any,
    x: jax.Array,
    rng: jax.Array,
    mutable: list[str],
) -> tuple[Any, Any]:
    """``apply(variables, x)`` (``model``'s apply) as a train step calls it: in training,
    the key ``rng`` as its one rng stream ``"dropout"``, ``mutable`` handed back and its
    records checked (`apply_checking_records`); a draw from another stream, or a write to
    a collection ``mutable`` omits, is named (`rng_stream_error`, `collection_write_error`)."""
    try:
        return apply_checking_records(
            apply, variables, x, train=True, rngs={"dropout": rng}, mutable=mutable
        )
    except flax.errors.InvalidRngError as error:
        raise rng_stream_error(model, error) from error
    except flax.errors.ModifyScopeVariableError as error:
        raise collection_write_error(model, error, training=True) from error


def evaluation_apply(
    model: nn.Module, apply: Callable[..., Any], variables: Any, x: jax.Array
) -> Any:
    """``apply(variables, x, train=False)`` (``model``'s apply) as an evaluation calls it,
    writing nothing: a write to a collection is named (`collection_write_error`)."""
    try:
        return apply(variables, x, train=False)
    except flax.errors.ModifyScopeVariableError as error:
        raise collection_write_error(model, error, training=False) from error


def check_batch(batch: Batch) -> None:
    """Raises a ValueError when ``batch`` ``(x, y)`` holds no example (a static shape,
    checked at trace time): a step on none has no loss to learn from (a mean over no
    example, NaN, which would mark the cell diverged).

    Examples:
      >>> check_batch((jnp.zeros((0, 8)), jnp.zeros((0,), int)))
      Traceback (most recent call last):
      ValueError: the train step got an empty batch (x of shape (0, 8), y of shape (0,)): ...
    """
    x, y = batch  # x may be a tree of inputs (a dict)
    if any(jnp.shape(leaf)[:1] == (0,) for leaf in jax.tree.leaves(batch)):
        raise ValueError(
            f"the train step got an empty batch (x of shape {jax.tree.map(jnp.shape, x)}, y "
            f"of shape {jnp.shape(y)}): a step learns from at least one example; give x of "
            "shape (batch, ...) and y of shape (batch,) with batch >= 1."
        )


def _as_stored(name: str, written: Any, stored: Any) -> Any:
    """``written`` (collection ``name`` a step wrote) with each leaf in its ``stored`` leaf's
    dtype.

    Raises:
      ValueError: ``written`` holds other variables than ``stored`` (the model makes one in
        training alone), naming them: the state carries what `init_group` made.

    Examples:
      >>> stored = {"mean": jnp.zeros(2, jnp.bfloat16), "count": jnp.zeros((), jnp.int32)}
      >>> written = {"mean": jnp.ones(2), "count": jnp.ones((), jnp.int32)}
      >>> written = _as_stored("batch_stats", written, stored)
      >>> str(written["mean"].dtype), str(written["count"].dtype)
      ('bfloat16', 'int32')
      >>> _as_stored("batch_stats", {**written, "n": jnp.ones(())}, stored)
      Traceback (most recent call last):
      ValueError: in training the model wrote its 'batch_stats' collection with n (not made at ...
      >>> _as_stored("batch_stats", written, flax.core.freeze(stored))["mean"].dtype
      dtype(bfloat16)
    """
    got, made = flatten(written), flatten(stored)
    extra, missing = [p for p in got if p not in made], [p for p in made if p not in got]
    if extra or missing:
        sides = [("with", extra, "not made at init"), ("without", missing, "made at init")]
        differs = " and ".join(f"{w} {listing(p, 3)} ({why})" for w, p, why in sides if p)
        raise ValueError(
            f"in training the model wrote its {name!r} collection {differs}; the state carries "
            "the variables init made from step to step: make each at init too (call "
            "self.variable whatever train is)"
        )

    def cast(new: Any, old: Any) -> Any:  # by key: ``stored`` may hold FrozenDicts
        if isinstance(new, Mapping):
            return {key: cast(value, old[key]) for key, value in new.items()}
        return jax.tree.map(as_dtype_of, new, old)

    return cast(written, stored)


def training_mutable(collections: Iterable[str], *sown: str) -> list[str]:
    """The collections a training step writes: those of ``collections`` it keeps from step
    to step (`PERSISTENT_MUTABLE`: running statistics; another, e.g. a sown one, is carried
    as init made it), then the ``sown`` ones it reads and drops.

    Examples:
      >>> training_mutable(["batch_stats", "stats"], "aux_loss")
      ['batch_stats', 'aux_loss']
    """
    return [name for name in collections if name in PERSISTENT_MUTABLE] + list(sown)


def written_as_stored(written: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Each collection of ``written`` (a training step's, the sown ones dropped) in the dtypes
    of its ``stored`` one (`_as_stored`, which names a variable init did not make)."""
    return {name: _as_stored(name, value, stored[name]) for name, value in written.items()}


def make_train_step(model: nn.Module, hp: HParams, *, guard: bool = True) -> TrainStep:
    """``(cell_state, arrays) -> (cell_state, metrics)``: one train step of one cell.

    The step draws its batch with `phosjax.data.batch_indices` from the cell's data key
    and its step, so any strategy and any resumption replays the same batches. Metrics
    are float32 scalars: ``loss`` (the total), ``task_loss``, ``regularizer`` (the weighted sum
    of the regularizers, when there are any), ``accuracy`` (NaN where a row's largest
    logit is not finite: `correct`), ``grad_norm``, ``aux/<name>``, ``path_weight/<path>``
    and, under a schedule (`HParams.scheduled`), ``lr``: the learning rate of the step's
    update (a frozen cell's: that of the update it diverged at, where its optimizer state
    stays). A cell whose loss or gradient norm is not finite, or whose update would make a param, a
    running statistic (``batch_stats``) or, with ``guard``, its optimizer state non-finite
    (an overflow), is marked diverged (``diverged``, ``diverged_at``); with ``guard`` its
    params, state and optimizer state then stop changing, as they were before that step.
    Without it the step applies every update: the selects that freeze a cell cost XLA
    copies of the whole state each step (2-25% of a one-cell MLP step on CPU), so
    `run_group` runs its chunks unguarded and re-runs a chunk guarded, from its start, when a cell
    diverged in it. The model computes in ``hp.compute_dtype`` (`precision_apply`), a
    collection it writes (``batch_stats``) keeps the dtype it is stored in; the
    task loss is taken from its logits in float32, whatever their dtype. An empty batch is
    a ValueError (`check_batch`), not a NaN loss; a ``model`` that is no Flax module (its
    config, `check_module`) or an ``hp`` that is no `HParams` (a dict of them) a TypeError.

    Examples:
      >>> import jax
      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, device_arrays, init_group, plan_groups
      >>> data = random_dataset("toy", (8,), 3)
      >>> model = ModelConfig("logreg", 3, (8,))
      >>> [group] = plan_groups([Cell(model, "toy", HParams(batch_size=16, steps=10))])
      >>> cell = jax.tree.map(lambda a: a[0], init_group(group, data))  # its one cell
      >>> step = make_train_step(model.build(), group.hparams)
      >>> cell, metrics = jax.jit(step)(cell, device_arrays(data))
      >>> cell.step.tolist(), sorted(metrics)
      (1, ['accuracy', 'grad_norm', 'loss', 'task_loss'])
    """
    check_module("make_train_step", model)
    if not isinstance(hp, HParams):
        fix = "HParams(**hp)" if isinstance(hp, Mapping) else "one, e.g. HParams(batch_size=16)"
        raise TypeError(f"make_train_step: hp must be an HParams, got {a_type(hp)}: pass {fix}")
    tx = hparams_optimizer(hp)
    multiplier = hparams_multiplier(hp)
    apply = precision_apply(model, hp.compute_dtype)
    penalties = [(r.selector, r.on, _penalty(r.kind, r.on)) for r in hp.regularizers]
    regs = enumerate(hp.regularizers)
    morph = {i: _morph_penalty(model, r) for i, r in regs if r.kind == "morph"}
    collect = [AUX_LOSS, PATH_WEIGHTS]
    if any(r.on == "activations" for r in hp.regularizers):
        collect.append(INTERMEDIATES)

    def loss_fn(
        params: Any, state: GroupState, x: jax.Array, y: jax.Array, rng: jax.Array
    ) -> tuple[jax.Array, tuple[dict[str, Any], Metrics]]:
        mutable = training_mutable(state.collections, *collect)
        with tags_seen() as seen:
            logits, written = training_apply(
                model, apply, {"params": params, **state.collections}, x, rng, mutable
            )
        written = dict(written)
        task = jnp.mean(_cross_entropy(logits, y, state.hparams["label_smoothing"]))
        aux, aux_by_name = aux_total(written.pop(AUX_LOSS, {}))
        activations = written.pop(INTERMEDIATES, {})
        check_penalized_tags_kept(hp.regularizers, seen, activations)
        path_weights = flatten(written.pop(PATH_WEIGHTS, {}), unwrap=False)
        reg = jnp.zeros(())
        for i, (selector, on, fn) in enumerate(penalties):
            tree, what = (params, "param") if on == "params" else (activations, "tagged value")
            strength = state.hparams["regularizer_strength"][i]
            off = strength == 0  # adds nothing to the loss, even where its penalty overflows
            try:
                if i in morph:
                    value = morph[i]({"params": params, **state.collections}, x)
                else:
                    value = regularize(tree, selector, functools.partial(fn, off=off), what=what)
            except SelectorError as error:  # its selector and what kept
                kind = f"{hp.regularizers[i].kind} on {on}"
                variables = {"params": params, **state.collections}
                hint = "" if i in morph else selector_hint(selector, on, model, variables, x, rng)
                error.args = (f"HParams regularizers[{i}] ({kind}): {error}{hint}",)
                raise
            reg = reg + jnp.where(off, 0.0, strength * value)
        loss = task + aux + reg
        metrics = {
            "loss": loss,
            "task_loss": task,
            "accuracy": jnp.mean(correct(logits, y)),
            **({"regularizer": reg} if penalties else {}),
            **{f"aux/{name}": value for name, value in aux_by_name.items()},
            **{f"path_weight/{path}": _mean_record(value) for path, value in path_weights.items()},
        }
        return loss, (written, metrics)

    def update(
        state: GroupState, arrays: dict[str, jax.Array], batch: Batch
    ) -> tuple[GroupState, Metrics]:
        check_batch(batch)
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.dropout_key), state.step)
        grad_fn = jax.value_and_grad(rewrite_before_grad(loss_fn), has_aux=True)
        (loss, (written, metrics)), grads = grad_fn(state.params, state, *batch, rng)
        # A collection keeps the dtype it is stored in, as optax keeps the params': Flax's
        # BatchNorm storing its statistics in bfloat16 (force_float32_reductions=False)
        # writes float32 ones, and `precision_apply` hands every written one back float32.
        written = written_as_stored(written, state.collections)
        root, scale = scaled_global_norm(grads)  # root: finite where every entry is
        grad_norm = root / scale  # inf above the dtype's largest value
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        with jax.numpy_dtype_promotion("standard"):  # bfloat16 params + float32 updates
            params = optax.apply_updates(state.params, updates)
        # An update can overflow the params, a running statistic or the optimizer state
        # (e.g. Adam's second moment: its params then stop moving or turn NaN) while the
        # loss and the gradient are finite. The unguarded step leaves the optimizer state to
        # `run_group`, which checks it at the chunk's end (`_optimizer_state_finite`).
        checked = (params, written, opt_state) if guard else (params, written)
        finite = jnp.isfinite(loss) & jnp.isfinite(root) & all_finite(checked)
        collections = {**state.collections, **written}
        if guard:
            live = finite & ~state.diverged

            def keep(new: Any, old: Any) -> Any:
                return jax.tree.map(lambda n, o: jnp.where(live, n, o), new, old)

            params = keep(params, state.params)
            collections = keep(collections, state.collections)
            opt_state = keep(opt_state, state.opt_state)
        new = state.replace(  # type: ignore[attr-defined]
            params=params,
            collections=collections,
            opt_state=opt_state,
            step=state.step + 1,
            diverged=state.diverged | ~finite,
            diverged_at=jnp.where(state.diverged | finite, state.diverged_at, state.step + 1),
        )
        metrics = {**metrics, "grad_norm": grad_norm}
        if multiplier is not None:  # the rate this update ran at: the peak times the schedule
            # at the optimizer's count of updates, which a frozen cell's keeps where it diverged
            peak = state.opt_state.hyperparams["learning_rate"]
            metrics["lr"] = peak * multiplier(state.opt_state.count)
        # float32 whatever the params' dtype: a bfloat16 grad_norm or path weight (of a
        # model storing its params in bfloat16) would reach numpy as ml_dtypes' bfloat16,
        # which pandas cannot put in a results frame
        return new, {name: jnp.asarray(value, jnp.float32) for name, value in metrics.items()}

    return TrainStep(update, hp.batch_size)


def make_evaluate(model: nn.Module, compute_dtype: str = "float32") -> EvalFn:
    """``(cell_state, arrays) -> {"loss", "accuracy"}`` of one cell on the whole test split,
    float32 (summed so from the logits, whatever dtype the model computes them in); the
    accuracy is NaN where a row's largest logit is not finite, as the loss (`correct`)."""
    check_module("make_evaluate", model)
    apply = precision_apply(model, compute_dtype)

    def evaluate(state: GroupState, arrays: dict[str, jax.Array]) -> Metrics:
        check_cell_arguments("evaluate", state, arrays, TEST_ARRAYS)
        variables = {"params": state.params, **state.collections}

        def batch(xym: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
            x, y, mask = xym
            # float32 sums: in bfloat16 (a model's dtype) a count above 256 goes by 2s
            logits = jnp.asarray(evaluation_apply(model, apply, variables, x), jnp.float32)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            count = jnp.sum(jnp.where(mask, correct(logits, y), 0))
            return jnp.stack([jnp.sum(jnp.where(mask, loss, 0)), count])

        sums = jax.lax.map(batch, tuple(arrays[name] for name in TEST_ARRAYS))
        total = sums.sum(0) / arrays["test_mask"].sum().astype(sums.dtype)
        return {"loss": total[0], "accuracy": total[1]}

    return evaluate
