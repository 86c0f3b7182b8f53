"""Copies in the engine's compiled train step: unguarded, and with the divergence guard.

Run: ``python benchmarks/step_copies.py``

Compiles, on the current backend, the engine's one-cell MLP step (the speed bench's
``mlp``, batch 128, Adam) as one call and as a chunk of 100 steps in a `jax.lax.scan`,
each without and with the guard that freezes a diverged cell
(``make_train_step(guard=...)``), and prints how many ``copy`` instructions each
compiled program holds: the guard's ``jnp.where`` over the state makes XLA copy it.
"""

import argparse
import re

STEPS = 100


def copies(text: str) -> int:
    """The ``copy`` instructions (and copy starts) in an HLO module's text."""
    return len(re.findall(r"= \S+ copy(?:-start)?\(", text))


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help
    import jax

    from phosjax.bench._speed_config import MODELS
    from phosjax.data import random_dataset
    from phosjax.train import Cell, HParams, device_arrays, init_group, make_train_step, plan_groups

    data = random_dataset("synthetic", (40,), 10, num_train=4000, num_test=100)
    hp = HParams(batch_size=128, steps=10 * STEPS)
    [group] = plan_groups([Cell(MODELS["mlp"], data.name, hp, 0)])
    model = group.model.build()
    state = jax.tree.map(lambda a: a[0], init_group(group, data))
    arrays = device_arrays(data)
    print(f"{'step':>10} {'unguarded':>10} {'guarded':>10}   ({jax.default_backend()})")
    for name, steps in (("one", 1), (f"scan {STEPS}", STEPS)):
        counts = []
        for guard in (False, True):
            step = make_train_step(model, hp, guard=guard)

            def chunk(s, a, step=step, steps=steps):
                return jax.lax.scan(lambda c, _: step(c, a), s, None, length=steps)

            counts.append(copies(jax.jit(chunk).lower(state, arrays).compile().as_text()))
        print(f"{name:>10} {counts[0]:>10} {counts[1]:>10}")


if __name__ == "__main__":
    main()
