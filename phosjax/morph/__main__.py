"""``python -m phosjax.morph --config configs/morph_mnist1d.yaml --dir runs/morph``."""

import argparse
import pathlib
import sys

import yaml

from phosjax.morph._loop import ITERATIONS, MorphConfig, run


def load_config(path: str) -> MorphConfig:
    """The `MorphConfig` of the YAML file ``path``; any problem is a ValueError naming it."""
    try:
        return MorphConfig.from_dict(yaml.safe_load(pathlib.Path(path).read_text()))
    except (OSError, yaml.YAMLError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from error


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the MorphNet loop (see `phosjax.morph.run`).

    Returns 0, or 2 after printing ``error: ...`` when the config file is invalid.
    """
    parser = argparse.ArgumentParser(prog="python -m phosjax.morph", description=__doc__)
    parser.add_argument("--config", required=True, help="a YAML file of MorphConfig fields")
    parser.add_argument("--dir", required=True, help="the run directory (a bench dir works)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = run(config, args.dir)
    columns = ["iteration", "kind", "widths", "params", "flops", "latency_s", "accuracy"]
    print(rows[columns].to_string(index=False))
    print(f"wrote {pathlib.Path(args.dir) / ITERATIONS}", file=sys.stderr)
    print(f"view it: python -m phosjax.bench.view --dir {args.dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
