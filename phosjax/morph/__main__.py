"""``python -m phosjax.morph --config configs/morph_mnist1d.yaml --dir runs/morph``."""

import argparse
import pathlib
import sys

import yaml

from phosjax.morph._loop import ITERATIONS, MorphConfig, run


def main(argv: list[str] | None = None) -> None:
    """Parses the command line and runs the MorphNet loop (see `phosjax.morph.run`)."""
    parser = argparse.ArgumentParser(prog="python -m phosjax.morph", description=__doc__)
    parser.add_argument("--config", required=True, help="a YAML file of MorphConfig fields")
    parser.add_argument("--dir", required=True, help="the run directory (a bench dir works)")
    args = parser.parse_args(argv)
    config = MorphConfig.from_dict(yaml.safe_load(pathlib.Path(args.config).read_text()))
    rows = run(config, args.dir)
    columns = ["iteration", "kind", "widths", "params", "flops", "latency_s", "accuracy"]
    print(rows[columns].to_string(index=False))
    print(f"wrote {pathlib.Path(args.dir) / ITERATIONS}", file=sys.stderr)
    print(f"view it: python -m phosjax.bench.view --dir {args.dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
