"""Path weights: how much of the signal flows through the branch being computed.

A choice or skip layer computes each branch inside ``with path_weight(self, name, w)``.
Scopes nest by multiplication, and `aux_loss` scales every loss by the current
product, so auxiliary losses stay balanced however the pathways are weighted. The
weights live in a context variable only while one trace runs (no global state).

A branch under `flax.linen.jit` cannot read them: nn.jit reuses its first trace, with
the weight of that call baked in. Reading a path weight there is an error, raised when
nn.jit traces the branch inside the scope. A trace nn.jit already holds from a call
outside any scope runs no Python code, so the scope counts the aux losses raised inside
it instead: more recorded than raised means some came from such a trace, unscaled, and
that is an error too. (A direct `current_path_weight` read in such a trace cannot be
seen.) Jit the layer that owns the path weight, never the branch.
"""

import collections
import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core.scope import Scope

from phosjax._callables import cut_repr
from phosjax._listing import listing
from phosjax.core._collections import AUX_LOSS, PATH_WEIGHTS
from phosjax.core._paths import SEP, check_path, flatten, module_path
from phosjax.core._record import apply_depth, check_recorded, collecting, record, taking


@dataclasses.dataclass(frozen=True)
class _Unreadable:
    """Stands for the path weight inside a module that nn.jit compiles apart from it."""

    scope: str  # the path_weight scope, e.g. "'branch_0' in blocks_1"
    module: str  # the module under nn.jit


_CURRENT: contextvars.ContextVar[jax.Array | _Unreadable | None] = contextvars.ContextVar(
    "phosjax_path_weight", default=None
)


@dataclasses.dataclass
class _Tally:
    """The aux losses raised inside one `path_weight` scope, by whatever module (one made
    by the owner's parent and handed to it as a branch too): how many calls, by path."""

    depth: int  # the `apply_depth` where it was opened
    raised: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def applied_apart(self) -> bool:
        """Whether the code run here is in a Flax ``.apply`` nested in the call that opened
        the scope (a frozen teacher's), whose losses are not the branch's."""
        return apply_depth() > self.depth


_OPENED: contextvars.ContextVar[dict[str, None] | None] = contextvars.ContextVar(
    "phosjax_path_weights_opened", default=None
)


def path_weights_opened() -> contextlib.AbstractContextManager[dict[str, None]]:
    """Within it, `path_weight` keeps the path of each weight it opens outside ``init`` in
    the dict yielded, whether or not it was recorded: one missing from the
    ``path_weights`` collection the call returns was dropped by a lifted transform
    (`check_path_weights_kept`). The weights of a model the call applies inside itself
    (a frozen teacher's ``.apply``) are that apply's, not the call's: they are not kept.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Member(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         with px.path_weight(self, "branch", 0.5):
      ...             return x
      >>> Ensemble = nn.vmap(Member, variable_axes={"params": 0}, axis_size=2)  # no path_weights
      >>> with path_weights_opened() as opened:
      ...     _, state = Ensemble().apply({}, jnp.ones((2, 3)), mutable=["path_weights"])
      >>> list(opened), state  # opened, but dropped
      (['branch'], {})
    """
    return collecting(_OPENED)


def check_path_weights_kept(opened: Iterable[str], weights: Mapping[str, Any]) -> None:
    """Raises unless every path weight in ``opened`` (their paths, as `path_weights_opened`
    kept them during a call) is in ``weights``, the ``path_weights`` collection that call
    returned: a lifted transform whose ``variable_axes`` omit ``path_weights`` drops the
    weights opened inside it, and the train step would report no ``path_weight/<path>``
    metric for them.

    Raises:
      ValueError: naming the first weight missing and the fix.
      TypeError: ``opened`` is one path, a str, or no list of paths (None).

    Examples:
      >>> check_path_weights_kept(["members/branch"], {})
      Traceback (most recent call last):
      ValueError: path weight 'members/branch' was opened but not recorded: ...
    """
    what, lost = "path weight {!r} was opened", "its metric would be missing"
    check_recorded(PATH_WEIGHTS, opened, weights, what, lost)


_TALLIES: contextvars.ContextVar[tuple[_Tally, ...]] = contextvars.ContextVar(
    "phosjax_path_weight_tallies", default=()
)


def count_aux_loss(path: str) -> None:
    """Counts a call of the aux loss at ``path`` in every enclosing scope of the same apply."""
    for tally in _TALLIES.get():
        if not tally.applied_apart():
            tally.raised[path] += 1


def _roots(module: nn.Module) -> list[Scope]:
    """The root scopes ``module``'s branches record in: its apply's, or, under a lifted
    transform (nn.remat, nn.jit...), the transform's own for ``module`` and one more for
    each branch its parent made and handed to it (Flax lifts them apart)."""
    roots: dict[int, Scope] = {}
    seen: set[int] = set()

    def visit(found: Any) -> None:
        if not isinstance(found, nn.Module) or id(found) in seen:
            return
        seen.add(id(found))
        if isinstance(found.scope, Scope):
            roots.setdefault(id(found.scope.root), found.scope.root)
        for field in dataclasses.fields(found):
            if field.name != "parent" and field.init:
                value = getattr(found, field.name)
                for leaf in jax.tree.leaves(value, is_leaf=lambda v: isinstance(v, nn.Module)):
                    visit(leaf)

    visit(module)
    return list(roots.values())


def _recorded_aux_losses(roots: list[Scope]) -> dict[str, int]:
    """How many calls each aux loss recorded in ``roots`` (see `_roots`) has so far, by
    path: a branch its parent made records beside the module, not beneath it."""
    return {
        SEP.join((*root.path, path)): len(calls) if isinstance(calls, tuple) else 1
        for root in roots
        for path, calls in flatten(root.variables().get(AUX_LOSS, {}), unwrap=False).items()
    }


def _check_all_raised_here(
    roots: list[Scope], scope: str, before: dict[str, int], tally: _Tally
) -> None:
    """Raises if the scope recorded more calls of an aux loss than it raised: the rest came
    from a trace nn.jit made outside the scope and reused here, or from a direct ``sow``,
    unscaled. Path by path, as a loss raised more often than recorded (nn.scan may trace
    its body twice) hides none."""
    recorded = _recorded_aux_losses(roots)
    stale = {
        path: extra
        for path, calls in recorded.items()
        if (extra := calls - before.get(path, 0) - tally.raised[path]) > 0
    }
    if stale:
        raise ValueError(
            f"{sum(stale.values())} aux loss(es) recorded inside path_weight {scope} were not "
            f"scaled by it ({listing(list(stale), 3, as_list=True)}): a module under nn.jit "
            "reused a trace made outside the scope, with no path weight (apply nn.jit, or "
            "jax.jit, around the layer that owns the path weight instead), or sowed them "
            f"into {AUX_LOSS!r} itself (raise them with phosjax.aux_loss instead)."
        )


def _readable(weight: jax.Array | _Unreadable) -> jax.Array:
    """``weight``, or the error that says why a module under nn.jit cannot read it."""
    if isinstance(weight, _Unreadable):
        raise ValueError(
            f"module {weight.module!r} runs under nn.jit inside path_weight {weight.scope}: "
            "nn.jit reuses its first trace, so the path weight would be stale. Apply nn.jit "
            "(or jax.jit) around the layer that owns the path weight instead."
        )
    return weight


def current_path_weight() -> jax.Array:
    """The product of the weights of all enclosing `path_weight` scopes (1.0 outside any).

    A model applied apart inside a scope (a frozen teacher's ``.apply``) is outside it:
    its aux losses are its own, not scaled by the branch's weight.

    Raises:
      ValueError: the caller runs under `flax.linen.jit` inside a scope opened outside it.

    Examples:
      >>> import flax.linen as nn, phosjax as px
      >>> class Nested(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         with px.path_weight(self, "outer", 0.5), px.path_weight(self, "inner", 0.4):
      ...             return x * px.current_path_weight()
      >>> out, _ = Nested().apply({}, 1.0, mutable=["path_weights"])
      >>> float(out), float(px.current_path_weight())  # 0.5 * 0.4 inside; 1.0 outside
      (0.2, 1.0)
    """
    weight = _enclosing()
    return jnp.ones(()) if weight is None else _readable(weight)


def _enclosing() -> jax.Array | _Unreadable | None:
    """The weight of the enclosing scopes; None outside any, or inside a Flax ``.apply``
    nested in the call that opened them (a frozen teacher's losses are its own, not the
    branch's)."""
    tallies = _TALLIES.get()
    return _CURRENT.get() if tallies and not tallies[-1].applied_apart() else None


def _jit_depth(module: nn.Module) -> int:
    """How many nn.jit transforms ``module`` runs under (Flax names their scopes ``jit(...)``)."""
    debug_path = getattr(module.scope, "debug_path", ())
    return sum(part.startswith("jit(") for part in debug_path)


def _guard_jit(depth: int, scope: str) -> Callable[..., Any]:
    """A method interceptor that hides the path weight from modules under more than
    ``depth`` nn.jit transforms."""

    def intercept(next_fun: Callable[..., Any], args: Any, kwargs: Any, context: Any) -> Any:
        if _jit_depth(context.module) <= depth:
            return next_fun(*args, **kwargs)
        token = _CURRENT.set(_Unreadable(scope, "/".join(context.module.path)))
        try:
            return next_fun(*args, **kwargs)
        finally:
            _CURRENT.reset(token)

    return intercept


def scale_by_path_weight(value: jax.Array, weight: jax.Array, what: str) -> jax.Array:
    """``value * weight`` with a per-example weight ``(B,)`` aligned to ``value``'s batch axis.

    Raises:
      ValueError: naming ``what``: the weight is per example and ``value``, not a scalar,
        has another leading axis.

    Examples:
      >>> scale_by_path_weight(jnp.ones((2, 3)), jnp.ones(4), "aux loss 'l1'")
      Traceback (most recent call last):
      ValueError: aux loss 'l1' has shape (2, 3), but the path weight is one per example, ...
    """
    if weight.ndim and value.ndim:
        if value.shape[0] != weight.shape[0]:
            raise ValueError(
                f"{what} has shape {value.shape}, but the path weight is one per example, "
                f"shape {weight.shape}: give a scalar, or a value whose leading axis is the "
                f"batch, shape ({weight.shape[0]}, ...)."
            )
        weight = weight.reshape(weight.shape + (1,) * (value.ndim - weight.ndim))
    with jax.numpy_dtype_promotion("standard"):  # a bfloat16 loss, a float32 weight: float32
        return value * weight


def batch_mean(value: jax.Array) -> jax.Array:
    """``value``'s mean; 0 when it holds nothing (an empty batch: no example weighs or
    costs anything), where `jnp.mean` gives NaN.

    Examples:
      >>> float(batch_mean(jnp.array([1.0, 2.0]))), float(batch_mean(jnp.ones((0,))))
      (1.5, 0.0)
    """
    return jnp.mean(value if value.size else jnp.zeros((1,), value.dtype))


@contextlib.contextmanager
def path_weight(module: nn.Module, name: str, weight: Any) -> Iterator[jax.Array]:
    """Computes the enclosed branch with weight ``weight``, and records that weight.

    Args:
      module: the layer that owns the branch (``self``).
      name: the branch's name, e.g. ``"branch_0"``; the weight's batch mean (0 on an
        empty batch) is recorded in the ``path_weights`` collection under the module's
        path and this name.
      weight: a scalar, or one weight per example (shape ``(B,)``).

    Yields:
      The combined weight of this branch (the product with all enclosing scopes).

    Raises:
      TypeError: ``weight`` is no number nor array (a string).
      ValueError: ``weight`` has more than one axis, or one per example of another
        batch than the enclosing scopes' (both shapes named); or a module under `flax.linen.jit`
        inside the scope (but not around it) reads the path weight, e.g. raises an aux
        loss: nn.jit would reuse a trace with a stale weight; or the scope recorded aux
        losses that no `aux_loss` inside it raised (a trace nn.jit made outside the scope,
        reused with no weight: jit the owner instead; or a direct ``sow``).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Half(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         with px.path_weight(self, "branch", 0.5):
      ...             px.aux_loss(self, "loss", jnp.ones(()))
      ...         return x
      >>> _, state = Half().apply({}, 0.0, mutable=["aux_loss", "path_weights"])
      >>> float(state["aux_loss"]["loss"][0]), float(state["path_weights"]["branch"][0])
      (0.5, 0.5)
    """
    check_path(module, name, "path_weight")
    where = f"path_weight {name!r} in {'/'.join(module.path) or 'the top module'}"
    try:
        weight = jnp.asarray(weight)
    except (TypeError, ValueError):  # JAX's names no path weight: "Value '0.5' with..."
        raise TypeError(
            f"{where}: a weight must be a number or an array of them, a scalar or one per "
            f"example (B,), got {cut_repr(weight)} ({type(weight).__name__})."
        ) from None
    if weight.ndim > 1:
        raise ValueError(
            f"{where}: a weight must be a scalar or one per example (B,), got shape {weight.shape}."
        )
    record(module, PATH_WEIGHTS, name, batch_mean(weight))
    opened = taking(_OPENED)
    if opened is not None and not module.is_initializing():
        opened.setdefault(module_path(module, name))
    outer = _enclosing()
    outer = None if outer is None else _readable(outer)
    around = () if outer is None else outer.shape  # () or (B,)
    if weight.ndim and around and len({1, around[0], weight.shape[0]}) > 2:  # two batches
        raise ValueError(
            f"{where}: a weight of shape {weight.shape}, one per example, inside path "
            f"weights of shape {around}, one per example of a batch of {around[0]}: give a "
            f"scalar, or one weight per example, shape {around}."
        )
    with jax.numpy_dtype_promotion("standard"):  # even where the caller's is strict
        combined = weight if outer is None else outer * weight  # scalar or (B,)
    scope = f"{name!r} in {'/'.join(module.path) or 'the top module'}"
    checked = module.is_mutable_collection(AUX_LOSS) and not module.is_initializing()
    roots = _roots(module) if checked else []
    before = _recorded_aux_losses(roots)
    tally = _Tally(apply_depth())
    token = _CURRENT.set(combined)
    tallies_token = _TALLIES.set((*_TALLIES.get(), tally))
    try:
        with nn.intercept_methods(_guard_jit(_jit_depth(module), scope)):
            yield combined
        if checked:
            _check_all_raised_here(roots, scope, before, tally)
    finally:
        _TALLIES.reset(tallies_token)
        _CURRENT.reset(token)
