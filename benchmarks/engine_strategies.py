"""Seconds per grid step of each engine strategy, for MLP and 1D-CNN grids on MNIST-1D.

Run: ``python benchmarks/engine_strategies.py [--data-dir DIR] [--devices N]``

For each model (the zoo's ``mlp`` and ``cnn1d``) and grid size (4 and 8 seeds) it runs
`run_group` with ``strategy="auto"``, which compiles the program of each strategy
(`phosjax.train.STRATEGIES`; those computing convolutions as matmuls only for the CNN)
for a chunk of 10 steps and times each (best of three rounds after compiling, the
strategies taking turns). It prints the seconds per step (all cells) and each strategy's
time relative to the fastest, all measured in this one run ("-": not timed).
"""

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        help="where MNIST-1D is prepared or found (phosjax's default: $PHOSJAX_DATA_DIR, "
        "else ~/.cache/phosjax/tfds, then TFDS's data dir)",
    )
    parser.add_argument("--devices", type=int, default=1, help="fake CPU devices (%(default)s)")
    args = parser.parse_args()
    flag = f"--xla_force_host_platform_device_count={args.devices}"  # after any flags set
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()

    import jax

    from phosjax.data import load
    from phosjax.models import ModelConfig
    from phosjax.train import STRATEGIES, Cell, HParams, init_group, plan_groups, run_group

    data = load("mnist1d", data_dir=args.data_dir)
    print(f"backend={jax.default_backend()} devices={jax.local_device_count()}")
    header = f"{'model':7} {'cells':>5} " + " ".join(f"{s + ' s/step':>16}" for s in STRATEGIES)
    print(header + f"  ratios to fastest ({'/'.join(STRATEGIES)})  chosen")
    for name in ("mlp", "cnn1d"):
        for num_cells in (4, 8):
            hp = HParams(batch_size=100, steps=10, learning_rate=1e-3)
            model = ModelConfig(name, 10, (40,))
            cells = [Cell(model, "mnist1d", hp, seed) for seed in range(num_cells)]
            [group] = plan_groups(cells)
            start = time.perf_counter()
            state = init_group(group, data)
            _, run = run_group(group, state, data, strategy="auto", chunk_steps=10)
            fastest = min(run.timings.values())
            timed = [run.timings.get(s) for s in STRATEGIES]
            ratios = "/".join("-" if t is None else f"{t / fastest:.2f}" for t in timed)
            cols = " ".join(f"{'-':>16}" if t is None else f"{t:16.5f}" for t in timed)
            wall = time.perf_counter() - start
            print(f"{name:7} {num_cells:5d} {cols}  {ratios:>38}  {run.strategy} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
