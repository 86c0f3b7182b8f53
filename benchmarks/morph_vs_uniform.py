"""MorphNet vs. uniform width scaling on MNIST-1D: accuracy against FLOPs.

Runs the loop of ``configs/morph_mnist1d.yaml`` (or reads its results with ``--dir``,
which must have started from that config's model and, where its rows carry the run's
config, run with that config), then retrains every morphed
(expanded) network and a uniformly scaled copy of the starting network with the same
FLOP budget (its widths rounded to ``--baseline-multiple``,
default 1, so its FLOPs come as close as possible), over several seeds, and prints a table.

    python benchmarks/morph_vs_uniform.py --config configs/morph_mnist1d.yaml --seeds 3
"""

import argparse
import dataclasses
import json
import pathlib

import numpy as np
import pandas as pd
import yaml

from phosjax.data import load
from phosjax.models import ModelConfig
from phosjax.morph import ITERATIONS, MorphConfig, config_cost, expand, run, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/morph_mnist1d.yaml")
    parser.add_argument("--dir", default="runs/morph_vs_uniform")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--baseline-multiple", type=int, default=1, help="round the baselines' widths to this"
    )
    args = parser.parse_args()
    config = MorphConfig.from_dict(yaml.safe_load(pathlib.Path(args.config).read_text()))
    path = pathlib.Path(args.dir) / ITERATIONS
    rows = pd.read_parquet(path) if path.exists() else run(config, args.dir)
    ran_with = rows.attrs.get("morph_config")  # absent from the rows of older runs
    if ran_with is not None:  # its start model is checked below (resolved); data_dir: where
        other = MorphConfig.from_dict(ran_with)
        differ = {
            field.name: (getattr(other, field.name), getattr(config, field.name))
            for field in dataclasses.fields(config)
            if field.name not in ("model", "data_dir")
            and getattr(other, field.name) != getattr(config, field.name)
        }
        if differ:
            said = ", ".join(f"{name}: {a!r} there, {b!r} here" for name, (a, b) in differ.items())
            raise SystemExit(
                f"error: {path} holds a run of another config than --config {args.config} "
                f"({said}): its morphed networks are not this config's; pass the config that "
                "run used, or another --dir"
            )
    start = config.model.resolved()
    ran = ModelConfig.from_dict(json.loads(rows[rows.kind == "start"].config.iloc[0]))
    if ran != start:
        raise SystemExit(
            f"error: {path} holds a run that started from {ran}, but --config {args.config} "
            f"starts from {start}: the baselines would scale another network; pass the "
            "config that run used, or another --dir"
        )
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
        accuracies = [
            train(model, data, config.steps, config.batch_size, config.learning_rate, seed)[1]
            for seed in range(args.seeds)
        ]
        table.append(
            {
                "network": name,
                "widths": list(model.widths or ()),
                "kFLOPs": config_cost(model, "flops") / 1e3,
                "params": int(config_cost(model, "params")),
                "accuracy": np.mean(accuracies),
                "std": np.std(accuracies),
            }
        )
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
