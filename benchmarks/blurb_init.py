"""How long does writing a bench's blurbs take with each model's init run before the blurb
or traced into it?

Run: ``python benchmarks/blurb_init.py [--config configs/example.yaml] [--rounds 2] [--flops]``

The bench writes one blurb per model (`phosjax.bench._runner._write_blurbs`) of the
variables ``model.init(jax.random.key(0), x)`` on one example. ``init_then_blurb``: the
init jitted (at init_group's -O1 on CPU), then `phosjax.blurb` on its variables;
``blurb_of_init``: `phosjax.core._blurb.blurb_of_init`, the init traced into the program
recording the blurb. Each way runs in a fresh process (XLA's compiles are per process) on
the config's models and a graph model, the two taking turns; it prints the seconds of
each round, the ratio of the best, and whether both wrote the same blurbs.
"""

import argparse
import functools
import hashlib
import subprocess
import sys
import time

WAYS = ("init_then_blurb", "blurb_of_init")


def child(config_path: str, way: str, flops: bool) -> None:
    """Prints ``<seconds> <digest of the blurbs>`` of writing every model's blurb."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import yaml

    from phosjax._compile import jit_run_once
    from phosjax.bench import BenchConfig
    from phosjax.bench._plan import plan
    from phosjax.core import blurb
    from phosjax.core._blurb import blurb_of_init
    from phosjax.models.graph import GraphModel, node

    with open(config_path) as file:
        configs = plan(BenchConfig.from_dict(yaml.safe_load(file))).models().values()
    models = [(config.build(), (1, *config.input_shape)) for config in configs]
    spec = {
        "stem": nn.Dense(8),
        "act": nn.relu,
        "skip": node(inputs=("act", "stem"), combine="add"),
        "head": nn.Dense(10),
    }
    models.append((GraphModel(spec), (1, 40)))
    digest = hashlib.sha256()
    start = time.perf_counter()
    for model, shape in models:
        x = jnp.zeros(shape, jnp.float32)
        if way == "init_then_blurb":
            variables = jit_run_once(model.init)(jax.random.key(0), x)
            summary = blurb(model, variables, x, measure_latency=False, flops=flops)
        else:
            init = functools.partial(model.init, jax.random.key(0), x)
            summary = blurb_of_init(model, init, x, measure_latency=False, flops=flops)
        digest.update(summary.to_json().encode())
    print(f"{time.perf_counter() - start:.3f} {digest.hexdigest()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", default="configs/example.yaml", help="a bench config (%(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each way (%(default)s)")
    parser.add_argument("--flops", action="store_true", help="blurbs with FLOPs")
    parser.add_argument(
        "--child", choices=WAYS, help="time this way alone, in this process (what a round runs)"
    )
    args = parser.parse_args()
    if args.child:
        return child(args.config, args.child, args.flops)
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    digests: dict[str, set[str]] = {way: set() for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            command = [sys.executable, __file__, "--config", args.config, "--child", way]
            command += ["--flops"] if args.flops else []
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            took, digest = out.split()[-2:]
            seconds[way].append(float(took))
            digests[way].add(digest)
            print(f"{way:<15} {float(took):7.2f} s")
    best = {way: min(s) for way, s in seconds.items()}
    first, second = WAYS
    print(
        f"best: {first} {best[first]:.2f} s, {second} {best[second]:.2f} s, "
        f"ratio {best[first] / best[second]:.2f}"
    )
    print("same blurbs:", len(digests[first] | digests[second]) == 1)


if __name__ == "__main__":
    main()
