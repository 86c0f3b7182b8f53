"""The columns of a real bench's results and profile against those docs/results.md lists."""

import pathlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import phosjax as px
from phosjax.bench import BenchConfig, _layout, _train, run
from phosjax.models import register_model, registered_models

DOCS = pathlib.Path(__file__).parents[2] / "docs" / "results.md"
TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
}
"""The types the table of docs/results.md names, as Arrow's."""


class EveryMetricBlock(nn.Module):
    """A block with a knob, an aux loss and a path weight: its bench has every column."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = px.knob(self, "T", 1.0)
        px.aux_loss(self, "penalty", jnp.mean(x**2))
        with px.path_weight(self, "branch", 0.5) as weight:
            return nn.Dense(self.features)(x) * weight * scale


MODEL = "test_results_columns_block"
if MODEL not in registered_models():  # registered before any bench records the registry
    register_model(MODEL, EveryMetricBlock, width=8)


def documented_columns(heading: str = "Columns") -> dict[str, pa.DataType]:
    """``{column (a regex: <...> matches any text): Arrow type}`` of the first table under
    docs/results.md's ``heading``."""
    section = DOCS.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    columns = {}
    for row in re.findall(r"^\| (`.+?) \| (\w+) \|", section, flags=re.MULTILINE):
        for name in re.findall(r"`([^`]+)`", row[0]):
            pattern = "".join(
                ".+" if part.startswith("<") else re.escape(part)
                for part in re.split(r"(<[^>]+>)", name)
            )
            columns[pattern] = TYPES[row[1]]
    return columns


def test_a_real_benchs_columns_are_those_docs_results_md_lists(tmp_path, toy):
    grid = {
        "steps": 2,
        "batch_size": 16,
        "lr_schedule": "cosine",
        "warmup_steps": 1,
        "knobs": {"**/T": 2.0},
        "regularizers": [{"kind": "l2", "selector": "**/kernel", "strength": 1e-4}],
    }
    config = {
        "models": [MODEL],
        "datasets": ["toy"],
        "grid": grid,
        "eval_every": 2,
        "strategy": "vmap",  # not "auto", which compiles every strategy to time them
    }
    run(BenchConfig.from_dict(config), tmp_path, datasets=toy, progress=False)
    schema = pq.read_table(tmp_path / _layout.RESULTS).schema
    documented = documented_columns()
    matched = {name: [p for p in documented if re.fullmatch(p, name)] for name in schema.names}
    assert {name: len(found) for name, found in matched.items() if len(found) != 1} == {}
    assert {f.name: f.type for f in schema} == {
        name: documented[found] for name, [found] in matched.items()
    }
    assert set(documented) == {found for [found] in matched.values()}  # each seen
    cells = pq.read_schema(tmp_path / _layout.CELLS)  # "the columns up to the knob and reg/"
    assert cells.names == schema.names[: schema.get_field_index("step")]
    assert cells.names[-2:] == ["knob/**/T", "reg/l2/**/kernel"]
    assert all(cells.field(f).type == schema.field(f).type for f in cells.names)


def test_a_run_stopped_in_its_first_groups_init_leaves_every_documented_phases_column(
    tmp_path, toy, monkeypatch
):
    """profile/phases holds the run's own rows before any group's: those alone have every
    column the docs list (program_bytes was missing), in its type."""

    class Stopped(Exception):
        pass

    def stopped(*args: object) -> None:
        raise Stopped

    monkeypatch.setattr(_train, "init_group", stopped)
    config = {"models": ["logreg"], "datasets": ["toy"], "grid": {"steps": 2, "batch_size": 16}}
    with pytest.raises(Stopped):
        run(BenchConfig.from_dict(config), tmp_path, datasets=toy, progress=False)
    schema = pq.read_schema(tmp_path / _layout.PHASES)
    assert pq.read_table(tmp_path / _layout.PHASES).column("group_id").unique().to_pylist() == [
        _layout.BENCH
    ]
    assert {f.name: f.type for f in schema} == documented_columns("Profile")
