"""How long does writing a bench's blurbs take with each model's `init` op by op or jitted?

Run: ``python benchmarks/blurb_init.py [--config configs/example.yaml] [--rounds 2]``

The bench writes one blurb per model (`phosjax.bench._runner._write_blurbs`): it inits the
model on one example, then runs `phosjax.core.blurb`. Each way runs in a fresh process (op
by op, XLA compiles each op's program once per process), the two taking turns; it prints
the seconds of each round, the ratio of the best, and whether both wrote the same blurbs.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import time

WAYS = ("op_by_op", "jitted")


def child(config_path: str, way: str) -> None:
    """Prints ``<seconds> <digest of the blurbs>`` of writing every model's blurb."""
    import jax
    import jax.numpy as jnp
    import yaml

    from phosjax.bench import BenchConfig
    from phosjax.bench._plan import plan
    from phosjax.core import blurb
    from phosjax.train._state import init_compiler_options

    with open(config_path) as file:
        models = plan(BenchConfig.from_dict(yaml.safe_load(file))).models()
    options = init_compiler_options(jax.default_backend(), os.environ.get("XLA_FLAGS", ""))
    digest = hashlib.sha256()
    start = time.perf_counter()
    for config in models.values():
        model = config.build()
        x = jnp.zeros((1, *config.input_shape), jnp.float32)
        init = model.init if way == "op_by_op" else jax.jit(model.init, compiler_options=options)
        variables = init(jax.random.key(0), x)
        digest.update(blurb(model, variables, x, measure_latency=False).to_json().encode())
    print(f"{time.perf_counter() - start:.3f} {digest.hexdigest()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/example.yaml")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=WAYS)
    args = parser.parse_args()
    if args.child:
        return child(args.config, args.child)
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    digests: dict[str, set[str]] = {way: set() for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            command = [sys.executable, __file__, "--config", args.config, "--child", way]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            took, digest = out.split()[-2:]
            seconds[way].append(float(took))
            digests[way].add(digest)
            print(f"{way:<9} {float(took):7.2f} s")
    best = {way: min(s) for way, s in seconds.items()}
    print(
        f"best: op_by_op {best['op_by_op']:.2f} s, jitted {best['jitted']:.2f} s, "
        f"op_by_op/jitted {best['op_by_op'] / best['jitted']:.2f}"
    )
    print("same blurbs:", len(digests["op_by_op"] | digests["jitted"]) == 1)


if __name__ == "__main__":
    main()
