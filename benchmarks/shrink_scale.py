"""How do `mask` and `shrink` scale with the number of modules, this tree's against a git
revision's?

Run: ``python benchmarks/shrink_scale.py REV [--modules 400,1000]`` (e.g. ``HEAD~1``)

Loads ``phosjax/morph/_shrink.py`` as it is at ``REV`` next to the working tree's (the
rest of phosjax is the working tree's), builds a model of ``--modules`` parallel Dense
layers alike in shape (kernel (4, 3) and bias), concatenated into one head, with about
40% of their channels dead, and times each `mask`, `shrink` and `shrink` of an Adam
state kept per module (``{k: tx.init(params[k])}``), the working tree's and ``REV``'s in
turn ``--repeats`` times (after both ran on 8 modules), printing each one's fastest, and
checks that both give the same arrays.
"""

import argparse
import contextlib
import io
import sys
import time

from step_against import ROOT, module_at


def branches(count: int):
    """Params of ``count`` parallel Dense layers and a head; their apply; alive channels;
    an Adam state kept per module."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    rng = np.random.default_rng(0)
    params = {
        f"Dense_{i}": {
            "kernel": rng.normal(size=(4, 3)).astype(np.float32),
            "bias": rng.normal(size=3).astype(np.float32),
        }
        for i in range(count)
    }
    params["head"] = {"kernel": rng.normal(size=(3 * count, 2)).astype(np.float32)}

    def apply(p, x):
        hidden = [
            jax.nn.relu(x @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"])
            for i in range(count)
        ]
        return jnp.concatenate(hidden, -1) @ p["head"]["kernel"]

    alive = {f"Dense_{i}": np.append(True, rng.random(2) < 0.4) for i in range(count)}
    tx = optax.adam(0.1)
    state = {k: tx.update(params[k], tx.init(params[k]))[1] for k in params}
    return params, apply, alive, state


def timed(call, *args) -> tuple[float, object]:
    """Seconds ``call(*args)`` took, and what it returned."""
    start = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - start, result


def compare(count: int, new, old, rev: str, repeats: int) -> None:
    """Prints the fastest of ``repeats`` seconds of each call on ``count`` modules, of
    ``new`` and ``old`` (the `_shrink` modules), timed in turn so that neither always runs
    first on a warmer process; exits if their arrays differ."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from phosjax.morph import channel_groups

    params, apply, alive, state = branches(count)
    groups = channel_groups(apply, params, jnp.ones((2, 4)))
    calls = {
        "mask": lambda m: m.mask(params, alive, groups),
        "shrink": lambda m: m.shrink(params, alive, groups).variables,
        "shrink with opt_state": lambda m: (
            m.shrink(params, alive, groups, opt_state=state).opt_state
        ),
    }
    returned: dict[object, object] = {}
    for name, call in calls.items():
        times: dict[object, list[float]] = {new: [], old: []}
        for i in range(repeats):
            for module in (new, old) if i % 2 == 0 else (old, new):
                seconds, returned[module] = timed(call, module)
                times[module].append(seconds)
        got, expected = returned[new], returned[old]
        new_s, old_s = min(times[new]), min(times[old])
        flat = [jax.tree.leaves(jax.tree.map(np.asarray, r)) for r in (got, expected)]
        if len(flat[0]) != len(flat[1]) or not all(map(np.array_equal, *flat)):
            raise SystemExit(f"{count} modules, {name}: the arrays differ from {rev}'s")
        print(f"{count:>8} {name:<22} {new_s:>8.3f} {old_s:>12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rev", help="the git revision whose _shrink.py to time against")
    parser.add_argument(
        "--modules", default="400,1000", help="numbers of modules, comma-separated (%(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timings of each (%(default)s)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from phosjax.morph import _shrink as new

    old = module_at(args.rev, "phosjax/morph/_shrink.py", "_shrink_at_rev")
    with contextlib.redirect_stdout(io.StringIO()):  # the first calls compile jnp's ops
        compare(8, new, old, args.rev, 1)
    print(f"{'modules':>8} {'call':<22} {'new s':>8} {args.rev + ' s':>12}")
    for count in args.modules.split(","):
        compare(int(count), new, old, args.rev, args.repeats)


if __name__ == "__main__":
    main()
