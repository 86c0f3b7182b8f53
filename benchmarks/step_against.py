"""The engine's train step of this working tree against other git revisions', interleaved.

Run: ``python benchmarks/step_against.py REV [REV ...]`` (e.g. ``HEAD~1``; ``--rounds N``;
``--reduce``)

Loads ``phosjax/train/_step.py`` as it is at each ``REV`` next to the working tree's (the
rest of phosjax is the working tree's; with ``--reduce`` also the ``_reduce.py`` of each
``REV``, its gradient norm, for that step), and times chunks of 100 steps of each (one
`jax.lax.scan`, one-cell MLP of the speed bench, batch 128 from 4,000 synthetic
MNIST-1D-shaped examples, Adam) as `run_group` runs them (`Executor.run_steps`), under
``map`` and ``vmap``, unguarded and guarded (``make_train_step(guard=...)``). The
variants take turns over the rounds, so a spell of load on the machine hits them alike;
it prints µs per step (best and median) and each one's best over the working tree's
unguarded ``map`` step. Before timing it checks that all give the same losses.
"""

import argparse
import importlib.util
import pathlib
import subprocess
import sys
import tempfile

from _rounds import add_rounds, print_table, time_rounds

STEPS = 100
ROOT = pathlib.Path(__file__).resolve().parent.parent


def module_at(rev: str, path: str, name: str, source_edit=lambda text: text):
    """The file ``path`` as it is at git revision ``rev``, its source passed through
    ``source_edit``, loaded as module ``name`` (in ``sys.modules``, so others import it)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    file = pathlib.Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source_edit(source))
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def step_module_at(rev: str, name: str, reduce: bool = False):
    """``phosjax.train._step`` as it is at git revision ``rev``, as module ``name``;
    ``reduce``: importing ``phosjax.train._reduce`` (its norms) as it is there too, not the
    working tree's."""
    if not reduce:
        return module_at(rev, "phosjax/train/_step.py", name)
    module_at(rev, "phosjax/train/_reduce.py", f"{name}_reduce")
    line = "from phosjax.train._reduce import"

    def own_reduce(text: str) -> str:
        if line not in text:
            raise SystemExit(f"{rev}: its _step.py does not import phosjax.train._reduce")
        return text.replace(line, f"from {name}_reduce import")

    return module_at(rev, "phosjax/train/_step.py", name, own_reduce)


def variants(revs: list[str], reduce: bool = False) -> dict:
    """name -> a call that runs one chunk; raises if the steps' losses differ. ``reduce``:
    each revision's step with its own ``_reduce.py`` (`step_module_at`)."""
    import functools

    import jax
    import numpy as np

    from phosjax.bench._speed_config import MODELS
    from phosjax.data import random_dataset
    from phosjax.train import Cell, HParams, device_arrays, init_group, plan_groups
    from phosjax.train import _step as new
    from phosjax.train._strategy import Executor

    modules = [("new", new)] + [
        (rev, step_module_at(rev, f"_step_at_{i}", reduce)) for i, rev in enumerate(revs)
    ]
    data = random_dataset("synthetic", (40,), 10, num_train=4000, num_test=100)
    hp = HParams(batch_size=128, steps=10 * STEPS)
    [group] = plan_groups([Cell(MODELS["mlp"], data.name, hp, 0)])
    model = group.model.build()
    calls = {}
    for strategy in ("map", "vmap"):
        executor = Executor(strategy, 1)
        state = executor.put_state(init_group(group, data))
        arrays = executor.put_data(device_arrays(data))
        for guard in (False, True):
            losses = []
            for name, module in modules:
                make = functools.partial(module.make_train_step, model, hp, guard=guard)
                key = f"{name} {'guarded' if guard else 'unguarded'} ({strategy})"
                run = functools.partial(
                    executor.run_steps, key, make, state, arrays, STEPS, donate=False
                )
                losses.append(np.asarray(jax.device_get(run()[1]["loss"])))
                calls[key] = run
            if any(not np.array_equal(losses[0], other) for other in losses[1:]):
                raise SystemExit(f"{key}: the losses differ from the working tree's")
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revs", nargs="+", help="the git revisions whose steps to time against")
    add_rounds(parser, 100)
    parser.add_argument(
        "--reduce",
        action="store_true",
        help="each revision's step with its own phosjax/train/_reduce.py (its norms)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    calls = variants(args.revs, args.reduce)
    print_table(time_rounds(calls, args.rounds, STEPS), ["new unguarded (map)"])


if __name__ == "__main__":
    main()
