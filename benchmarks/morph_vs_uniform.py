"""MorphNet vs. uniform width scaling on MNIST-1D: accuracy against FLOPs.

Runs the loop of ``configs/morph_mnist1d.yaml`` in ``--dir`` (`phosjax.morph.run`: a run
of that config there, finished or interrupted, is read or continued; another config's is
refused, naming what differs), then retrains every morphed (expanded) network and a
uniformly scaled copy of the starting network with the same FLOP budget (its widths
rounded to ``--baseline-multiple``, default 1, so its FLOPs come as close as possible),
over several seeds, and prints a table.

    python benchmarks/morph_vs_uniform.py --config configs/morph_mnist1d.yaml --seeds 3
"""

import argparse
import json
import pathlib

import pandas as pd
import yaml

from phosjax.data import load
from phosjax.models import ModelConfig
from phosjax.morph import MorphConfig, RunDirectoryError, config_cost, expand, run, train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default="configs/morph_mnist1d.yaml", help="a morph config (%(default)s)"
    )
    parser.add_argument(
        "--dir", default="runs/morph_vs_uniform", help="the morph run's folder (%(default)s)"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per network (%(default)s)")
    parser.add_argument(
        "--baseline-multiple",
        type=int,
        default=1,
        help="round the baselines' widths to this (%(default)s)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="move an earlier run in --dir aside, start over"
    )
    args = parser.parse_args()
    config = MorphConfig.from_dict(yaml.safe_load(pathlib.Path(args.config).read_text()))
    try:
        rows = run(config, args.dir, overwrite=args.overwrite)
    except RunDirectoryError as error:  # another config's run in --dir, say
        raise SystemExit(f"error: --dir {args.dir}: {error}") from None
    start = config.model.resolved()
    data = load(
        config.dataset, data_dir=config.data_dir, features=config.features, splits=config.splits
    )
    morphed = [ModelConfig.from_dict(json.loads(c)) for c in rows[rows.kind == "expanded"].config]
    networks = [("start", start)]
    for index, candidate in enumerate(morphed, 1):
        networks.append((f"morphed {index}", candidate))
        budget = config_cost(candidate, "flops")
        networks.append(
            (
                f"uniform, budget of morphed {index}",
                expand(start, budget, "flops", args.baseline_multiple),
            )
        )
    table = []
    for name, model in networks:
        accuracies = pd.Series(
            [
                train(model, data, config.steps, config.batch_size, config.learning_rate, seed)[1]
                for seed in range(args.seeds)
            ]
        )
        table.append(
            {
                "network": name,
                "widths": list(model.widths or ()),
                "kFLOPs": config_cost(model, "flops") / 1e3,
                "params": int(config_cost(model, "params")),
                # as the leaderboard's: a diverged seed (NaN) makes both NaN, not dropped;
                # the sample std, ddof=1 (1 seed: NaN)
                "accuracy": accuracies.mean(skipna=False),
                "std": accuracies.std(skipna=False),
            }
        )
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
