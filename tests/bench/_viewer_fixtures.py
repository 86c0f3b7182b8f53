"""A small synthetic finished bench, written per `phosjax.bench._layout`, for the viewer tests.

Two models (``mlp`` and ``choice``) x two learning rates x two seeds = 8 cells, 31 logged
steps each for the ``train`` and ``test`` splits, plausible decaying losses, an aux loss and
path weights for the choice model, a blurb of a small nested model (`phosjax.core.Blurb`'s
own JSON), a graph drawing, the profile tables and a ``morph/`` summary. ``write_bench`` can
also write more seeds and other learning rates, make one seed of the best configuration
diverge, and record some metrics on train rows only.
"""

import contextlib
import dataclasses
import hashlib
import http.client
import json
import math
import pathlib
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from phosjax.bench import _layout
from phosjax.bench._store import as_table
from phosjax.bench.view import ViewerServer, make_server
from phosjax.core import ArraySpec, Blurb, KnobValue, ModuleBlurb

MODELS = {"mlp": "m-mlp", "choice": "m-choice"}
WIDTHS = {"mlp": "100", "choice": "25,50"}
"""Each model's widths, written as the runner does (text: one width per stage)."""
LEARNING_RATES = (0.01, 0.003)
SEEDS = (0, 1)
STEPS = tuple(range(0, 301, 10))
RUNNER_STEPS = {"train": tuple(range(1, 31)), "test": (10, 20, 30)}
"""Each split's steps in a shorter run (30 steps), as the runner writes them: a train
row at every step from 1, a test row at every 10th (``eval_every`` 10)."""
RUNNER_DIVERGED_STEP = 15
"""`DIVERGED_STEP` of that run."""
SPLITS = ("train", "test")
DIVERGED = ("choice", 0.01, 1)
"""The (model, lr, seed) of the cell whose loss turns NaN at `DIVERGED_STEP` when asked."""
DIVERGED_STEP = 150
BRANCHES = ("path_weight/frame/choice/branch_0", "path_weight/frame/choice/branch_1")
NOTE_TEXT = "<i>keep</i> if x<y"
"""A note's text that must be shown as written, not parsed as HTML."""
METRICS = ("loss", "accuracy", "aux/balance", *BRANCHES, "step_time_s")


def _module(path: str, type_: str, own: dict, children: tuple = (), **extra) -> ModuleBlurb:
    """A module's summary as `phosjax.core.blurb` writes it (no model run: no compile)."""
    own_params = sum(math.prod(spec.shape) for spec in own.values())
    return ModuleBlurb(
        path=path,
        type=type_,
        own_params=own_params,
        params=own_params + sum(child.params for child in children),
        variables={"params": own} if own else {},
        outputs={"": ArraySpec((1, 3), "float32")},
        flops=extra.pop("flops", None),
        latency_s=extra.pop("latency_s", None),
        knobs=extra.pop("knobs", {}),
        notes=extra.pop("notes", {}),
        aux_losses=extra.pop("aux_losses", {}),
        path_weights=extra.pop("path_weights", {}),
        children=children,
    )


def _dense(path: str, inputs: int) -> ModuleBlurb:
    kernel, bias = ArraySpec((inputs, 3), "float32"), ArraySpec((3,), "float32")
    return _module(path, "Dense", {"kernel": kernel, "bias": bias}, flops=2.0 * inputs * 3)


def blurb_json() -> str:
    """The blurb of a three-level model (stem, a block with a knob, aux loss, notes (one
    of them `NOTE_TEXT`), path weights and a Dense inside it, a head), built from
    `phosjax.core`'s dataclasses."""
    block = _module(
        "block_0",
        "Choice",
        {},
        (_dense("block_0/dense", 3),),
        knobs={"T": KnobValue(1.0, 1.0, "softmax temperature", "> 0")},
        notes={"mean_abs": 0.35, "rule": NOTE_TEXT},
        aux_losses={"balance": 0.127},
        path_weights={"branch_0": 0.6, "branch_1": 0.4},
        latency_s=2.5e-5,
    )
    children = (_dense("stem", 4), block, _dense("head", 3))
    root = _module("", "Net", {}, children, flops=66.0, latency_s=1.2)
    return Blurb(root, "cpu").to_json()


GRAPH = {
    "nodes": [
        {"id": "input", "name": "input", "group": "", "op": "Input", "inputs": []},
        {"id": "stem", "name": "stem", "group": "", "op": "Dense", "inputs": ["input"]},
        {"id": "a/left", "name": "left", "group": "a", "op": "relu", "inputs": ["stem"]},
        {"id": "a/right", "name": "right", "group": "a", "op": "Dense", "inputs": ["stem"]},
        {"id": "sum", "name": "sum", "group": "", "op": "add", "inputs": ["a/left", "a/right"]},
    ],
    "edges": [
        {"source": "input", "target": "stem"},
        {"source": "stem", "target": "a/left"},
        {"source": "stem", "target": "a/right"},
        {"source": "a/left", "target": "sum"},
        {"source": "a/right", "target": "sum"},
    ],
    "inputs": ["input"],
    "outputs": ["sum"],
}


@dataclasses.dataclass(frozen=True)
class WrittenBench:
    """What `write_bench` wrote: the directory, the plan, and the full results frame."""

    root: pathlib.Path
    cells: pd.DataFrame
    results: pd.DataFrame
    blurb: dict
    phases: pd.DataFrame
    memory: pd.DataFrame


def _cells(seeds: tuple[int, ...], learning_rates: tuple[float, ...]) -> pd.DataFrame:
    rows = []
    for model, model_id in MODELS.items():
        for lr in learning_rates:
            for seed in seeds:
                key = f"{model}-{lr}-{seed}"
                rows.append(
                    {
                        "cell_id": hashlib.sha256(key.encode()).hexdigest()[:10],
                        "group_id": f"g-{model}",
                        "model_id": model_id,
                        "model": model,
                        "dataset": "mnist1d",
                        "seed": seed,
                        "lr": lr,
                        "width": WIDTHS[model],
                    }
                )
    return pd.DataFrame(rows)


def _curves(
    cell: dict,
    rng: np.random.Generator,
    diverge: bool,
    train_only: tuple[str, ...],
    frozen: bool,
    as_runner: bool,
) -> pd.DataFrame:
    rows = []
    for split in SPLITS:
        steps = np.asarray(RUNNER_STEPS[split] if as_runner else STEPS)
        since = RUNNER_DIVERGED_STEP if as_runner else DIVERGED_STEP
        diverged = (cell["model"], cell["lr"], cell["seed"]) == DIVERGED and steps >= since
        rate = cell["lr"] * (30 if cell["model"] == "choice" else 20)
        gap = 0.0 if split == "train" else 0.15
        loss = 2.3 * np.exp(-rate * steps / 10) + 0.2 + gap + 0.02 * rng.standard_normal(len(steps))
        if diverge:
            loss = np.where(diverged, np.nan, loss)
        frame = pd.DataFrame({**cell, "step": steps, "split": split, "loss": loss})
        if frozen:
            frame[_layout.DIVERGED] = diverged
        frame["accuracy"] = np.clip(1.05 - loss / 2.5, 0, 1)
        choice = cell["model"] == "choice"
        weight = 0.5 + 0.4 * (1 - np.exp(-steps / 100)) if choice else np.full(len(steps), np.nan)
        frame["aux/balance"] = 0.3 * np.exp(-steps / 150) if choice else np.nan
        frame[BRANCHES[0]], frame[BRANCHES[1]] = weight, 1 - weight
        frame["step_time_s"] = 0.002 + 0.0001 * rng.random(len(steps))
        if split == "test":
            frame[list(train_only)] = np.nan
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def _table(rows: pd.DataFrame, nan_as_null: bool) -> pa.Table:
    """One split's ``rows`` as the runner stores them: a NaN of a metric the split records
    stays NaN, one it never records is null (all are null when ``nan_as_null``)."""
    measured = [] if nan_as_null else [c for c in METRICS if rows[c].notna().any()]
    return as_table(rows, pa.Schema.from_pandas(rows, preserve_index=False), measured)


def write_bench(
    root: pathlib.Path,
    blurb_text: str,
    seeds: tuple[int, ...] = SEEDS,
    diverge: bool = False,
    nan_as_null: bool = False,
    train_only: tuple[str, ...] = (),
    learning_rates: tuple[float, ...] = LEARNING_RATES,
    frozen: bool = False,
    as_runner: bool = False,
) -> WrittenBench:
    """Writes the synthetic bench under ``root`` (created) and returns what it wrote.

    Args:
      root: the bench directory.
      blurb_text: each model's blurb.
      seeds: the seeds of each configuration.
      diverge: the `DIVERGED` cell's loss and accuracy are NaN from `DIVERGED_STEP` on.
      nan_as_null: store a NaN as a null, as benches written before phosjax kept them
        apart did (otherwise, as the runner: a metric a model never reports is null).
      train_only: metrics recorded on train rows only (null on test rows), as the runner
        records ``step_time_s``.
      learning_rates: the ``lr`` values of each model (one: no numeric hparam varies).
      frozen: the results have ``diverged`` (as the runner writes them), true in the
        `DIVERGED` cell's rows from `DIVERGED_STEP` on, its values there finite: a cell
        the engine froze after an overflow of its params or optimizer state.
      as_runner: each split's rows at `RUNNER_STEPS`, as the runner writes them, the
        `DIVERGED` cell's from `RUNNER_DIVERGED_STEP` (else both at `STEPS`, from 0).
    """
    root.mkdir(parents=True, exist_ok=True)
    config = "models: [mlp, choice]\ndatasets: [mnist1d]\nlr: [0.01, 0.003]\nseeds: 2\n"
    marker = {
        "format": _layout.FORMAT,
        "created": "2026-01-01T00:00:00+00:00",
        "config_hash": hashlib.sha256(config.encode()).hexdigest(),
    }
    (root / _layout.MARKER).write_text(json.dumps(marker))
    (root / _layout.CONFIG).write_text(config)
    devices = [{"id": i, "platform": "gpu", "kind": "NVIDIA H100", "process": 0} for i in range(2)]
    packages = {"jax": jax.__version__, "tensorflow-datasets": None}
    cpu = [{"id": 0, "platform": "cpu", "kind": "cpu", "process": 0}]
    earlier = [{"python": "3.10", "packages": {"jax": "0.4.30"}, "devices": cpu}]
    env = {"python": "3.11", "packages": packages, "devices": devices, "earlier": earlier}
    (root / _layout.ENV).write_text(json.dumps(env))
    cells = _cells(seeds, learning_rates)
    cells.to_parquet(root / _layout.CELLS)
    rng = np.random.default_rng(0)
    curves = [
        _curves(c, rng, diverge, train_only, frozen, as_runner) for c in cells.to_dict("records")
    ]
    results = pd.concat(curves, ignore_index=True)
    (root / _layout.RESULTS).mkdir()
    groups = {}
    for group_id, rows in results.groupby("group_id"):
        table = pa.concat_tables(_table(s, nan_as_null) for _, s in rows.groupby("split"))
        first, last = int(rows.step.min()), int(rows.step.max())
        pq.write_table(table, root / _layout.RESULTS / f"part-{group_id}-{first:09d}.parquet")
        members = cells[cells.group_id == group_id].cell_id.tolist()
        done = {"steps_done": last, "steps": last, "finished": True}
        groups[group_id] = {**done, "strategy": "vmap", "timings": {}, "cells": members}
    (root / _layout.STATUS).write_text(json.dumps({"groups": groups}))
    for folder in (_layout.BLURBS, _layout.GRAPHS, _layout.PROFILE, _layout.MORPH):
        (root / folder).mkdir()
    for model_id in MODELS.values():
        (root / _layout.BLURBS / f"{model_id}.json").write_text(blurb_text)
    (root / _layout.GRAPHS / "m-choice.json").write_text(json.dumps(GRAPH))
    phase_total_s = dict(zip(_layout.PHASE_NAMES, (0.4, 2.5, 1.2, 0.3), strict=True))
    phase_counts = dict(zip(_layout.PHASE_NAMES, (1, 2, 300, 31), strict=True))
    rows = []
    for group_id in groups:
        for i, phase in enumerate(_layout.PHASE_NAMES):
            total = phase_total_s[phase] * (2 if group_id == "g-choice" else 1)
            each = phase in ("step", "eval")  # seconds per step, per evaluation
            seconds = total / phase_counts[phase] if each else total
            count, peak = phase_counts[phase], 2**20 * (3 + i)
            rows.append(
                {"group_id": group_id, "phase": phase, "seconds": seconds, "count": count}
                | {"total_s": total, "peak_bytes": peak}
            )
    phases = pd.DataFrame(rows)
    phases.to_parquet(root / _layout.PHASES, index=False)
    t = np.linspace(0, 12, 60)
    rss, device = 2**20 * (400 + 30 * np.sqrt(t)), 2**20 * (50 + 5 * t)
    memory = pd.DataFrame({"time_s": t % 6.2, "host_rss_bytes": rss, "device_bytes": device})
    memory["run_started"] = 1.7e9 + np.where(t < 6.2, 0.0, 6.2)  # a bench resumed once
    memory.to_parquet(root / _layout.MEMORY, index=False)
    (root / _layout.MORPH / "summary.json").write_text(json.dumps({"flops_before": 1e6}))
    return WrittenBench(root, cells, results, json.loads(blurb_text), phases, memory)


def stop_at(written: WrittenBench, cell_id: str, step: int) -> None:
    """Drops the rows of ``cell_id`` after ``step`` from its part file, as a run that
    crashed there leaves them where processes run apart train a group's cells apart."""
    group_id = written.cells.set_index("cell_id").at[cell_id, "group_id"]
    part = written.root / _layout.RESULTS / f"part-{group_id}-{0:09d}.parquet"
    rows = pq.read_table(part)
    later = pc.and_(pc.equal(rows["cell_id"], cell_id), pc.greater(rows["step"], step))
    pq.write_table(rows.filter(pc.invert(later)), part)


@contextlib.contextmanager
def serving(directory: pathlib.Path, host: str = "127.0.0.1") -> Iterator[ViewerServer]:
    """The viewer of ``directory`` on a free port of ``host``, served from a thread (which
    looks for its shutdown every 10 ms, not every 0.5 s: each test using it ends sooner)."""
    server = make_server(directory, port=0, host=host)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def get(server: ViewerServer, raw_path: str, host: str | None = None) -> tuple[int, dict, bytes]:
    """``(status, headers, body)`` of a GET of ``raw_path`` sent exactly as written."""
    host_name, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(host_name), int(port), timeout=10)
    try:
        headers = {"Host": host} if host else {}
        connection.request("GET", raw_path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get_json(server: ViewerServer, raw_path: str) -> Any:
    """The JSON body of a GET that must succeed."""
    status, _, body = get(server, raw_path)
    assert status == 200, (raw_path, status, body[:300])
    return json.loads(body)
