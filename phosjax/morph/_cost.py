"""Cost models: parameter count, FLOPs and latency as polynomials in the alive counts.

The latency model prices each run of a contraction (once per step in a loop) as
``overhead + seconds_per_flop * flops``, with ``flops`` those of one example and the
overhead per call (not divided by a batch size), so the sum is the latency of a call on
one example. Both constants are measured once per backend (a few small jitted matmuls
and convolutions, well under a second) and cached for the process.
"""

import contextlib
import contextvars
import functools
import time
from collections.abc import Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from phosjax.morph._groups import ChannelGroups, Monomial, check_groups

COSTS = ("params", "flops", "latency")
"""The cost models `cost_polynomial` knows."""


def check_cost(cost: str) -> None:
    """Raises a ValueError naming ``cost`` and the valid ones unless it is in `COSTS`."""
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; expected one of {COSTS}")


def _seconds(fn: object, *args: jax.Array, repeats: int = 20) -> float:
    jax.block_until_ready(fn(*args))  # type: ignore[operator]
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn(*args)  # type: ignore[operator]
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats


LatencyTable = dict[str, tuple[float, float]]
"""`latency_table`'s ``{primitive: (overhead seconds, seconds per FLOP)}``."""


@functools.lru_cache(maxsize=4)
def latency_table(backend: str | None = None) -> LatencyTable:
    """``{primitive: (overhead seconds, seconds per FLOP)}`` measured on ``backend``.

    Fitted from two sizes of a jitted matmul (``dot_general``) and of a 1-D convolution
    (``conv_general_dilated``); cached per backend for the life of the process.

    Examples:
      >>> table = latency_table("cpu")  # a fraction of a second, once per process
      >>> sorted(table), all(overhead >= 0 < per_flop for overhead, per_flop in table.values())
      (['conv_general_dilated', 'dot_general'], True)
    """
    device = jax.devices(backend)[0]
    table = {}
    conv = jax.jit(
        lambda x, k: jax.lax.conv_general_dilated(
            x, k, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC")
        )
    )
    for name, sizes in (("dot_general", (32, 128)), ("conv_general_dilated", (16, 64))):
        points = []
        for n in sizes:
            if name == "dot_general":
                a = jax.device_put(jnp.ones((n, n)), device)
                points.append((2.0 * n**3, _seconds(jax.jit(jnp.dot), a, a)))
            else:
                x = jax.device_put(jnp.ones((8, 32, n)), device)
                k = jax.device_put(jnp.ones((3, n, n)), device)
                points.append((2.0 * 8 * 32 * 3 * n * n, _seconds(conv, x, k)))
        (f0, t0), (f1, t1) = points
        slope = max((t1 - t0) / (f1 - f0), 1e-15)
        table[name] = (max(t0 - slope * f0, 0.0), slope)
    return table


_GIVEN: contextvars.ContextVar[LatencyTable | None] = contextvars.ContextVar(
    "latency table", default=None
)


@contextlib.contextmanager
def latency_table_given(table: LatencyTable | None) -> Iterator[None]:
    """Within it, ``"latency"`` costs price by ``table`` (one measured earlier, e.g. by
    the run continued), not by `latency_table`; None: by `latency_table`."""
    token = _GIVEN.set(table)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def pricing_table() -> LatencyTable:
    """The table ``"latency"`` costs price by here: `latency_table_given`'s, else
    `latency_table`."""
    return _GIVEN.get() or latency_table()


def cost_polynomial(groups: ChannelGroups, cost: str = "flops") -> tuple[Monomial, ...]:
    """The cost of the model as a polynomial in its groups' alive counts.

    Args:
      groups: the model's `ChannelGroups`.
      cost: ``"params"`` (the size of the ``params`` collection, or of every leaf if
        there is none), ``"flops"`` (per example, contractions only; one computed from
        params alone counts once, as in a call on one example) or ``"latency"``
        (seconds of one forward call on a single example, from `latency_table`: each run
        of a contraction costs its per-call overhead, not divided by any batch size, plus
        seconds per FLOP times its FLOPs per example).

    Raises:
      ValueError: an unknown ``cost``.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.morph import channel_groups, cost_polynomial, evaluate
      >>> model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
      >>> x = jnp.ones((1, 4)); variables = model.init(jax.random.key(0), x)
      >>> groups = channel_groups(model, variables, x)  # one group: the 3 hidden channels
      >>> cost_polynomial(groups, "params")  # bias n, kernel 4n, then bias 2, kernel 2n
      ((1.0, (0,)), (4.0, (0,)), (2.0, ()), (2.0, (0,)))
      >>> poly = cost_polynomial(groups, "flops")
      >>> poly, evaluate(poly, [3]), evaluate(poly, [1])
      (((8.0, (0,)), (4.0, (0,))), 36.0, 12.0)
    """
    check_groups(groups, "cost_polynomial(groups)")
    check_cost(cost)
    if cost == "params":
        params = [p.split("/")[0] == "params" for p in groups.paths]
        chosen = params if any(params) else [True] * len(params)
        return tuple(
            t for poly, keep in zip(groups.params, chosen, strict=True) if keep for t in poly
        )
    if cost == "flops":
        return tuple(term for _, poly, _ in groups.flops for term in poly)
    table = pricing_table()
    terms: list[Monomial] = []
    for name, poly, runs in groups.flops:
        overhead, per_flop = table.get(name, table["dot_general"])
        terms.append((overhead * runs, ()))
        terms += [(c * per_flop, g) for c, g in poly]
    return tuple(terms)


def evaluate(poly: Sequence[Monomial], counts: Sequence[float]) -> float:
    """The polynomial's value for these alive counts (one per group, in the order of the
    groups' ``names``).

    Raises:
      TypeError: ``counts`` is a mapping (``{group name: count}``), not a sequence.
      ValueError: the polynomial reads a group beyond ``counts`` (too few of them).

    Examples:
      >>> evaluate([(4.0, (0,)), (2.0, (0, 1)), (1.0, ())], [3, 5])  # 4a + 2ab + 1
      43.0
      >>> evaluate([(4.0, (0,)), (2.0, (0, 1)), (1.0, ())], [3])
      Traceback (most recent call last):
      ValueError: evaluate: the polynomial reads group 1, but counts has 1 entries; give one
      per channel group, in the order of groups.names
    """
    if isinstance(counts, Mapping):
        raise TypeError(
            "evaluate: counts must be a sequence, one per channel group in the order of "
            f"groups.names, not a mapping (keys {list(counts)[:3]}...): "
            "[counts[name] for name in groups.names]"
        )
    read = max((g for _, gs in poly for g in gs), default=-1)
    if read >= len(counts):
        raise ValueError(
            f"evaluate: the polynomial reads group {read}, but counts has {len(counts)} "
            "entries; give one per channel group, in the order of groups.names"
        )
    return float(sum(c * np.prod([counts[g] for g in gs]) for c, gs in poly))
