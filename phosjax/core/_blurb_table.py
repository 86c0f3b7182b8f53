"""`Blurb.table`: a blurb as an indented, fixed-width text tree (one line per module)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from phosjax.core._blurb import ArraySpec, Blurb, ModuleBlurb

Json = Any

_COLUMNS = (("module", 30, "<"), ("type", 11, "<"), ("params", 9, ">"), ("output", 12, "<"),
            ("flops", 8, ">"), ("latency", 9, ">"))  # fmt: skip
_WIDTH = 120


def _fit(text: str, width: int, align: str) -> str:
    text = text if len(text) <= width else text[: width - 1] + "…"
    return f"{text:{align}{width}}"


_PATH_ROOM = 12
"""How many characters of a module's path its row keeps however deep it is: the indent
stops growing there (at depth 15 it filled the column, and every row read ``…``)."""


def _fit_path(depth: int, path: str, width: int) -> str:
    """``path`` indented by ``depth`` (at most as far as leaves `_PATH_ROOM`), cut on the
    left where too long: the end of a path (``…/branch_1/dense``) tells it from its
    siblings, which share its start.

    Examples:
      >>> _fit_path(2, "blocks_1/choice/branch_0/dense", 20)
      '    …/branch_0/dense'
      >>> _fit_path(16, "/".join(f"n{i}" for i in range(16, 0, -1)), 20)
      '        …n4/n3/n2/n1'
    """
    indent = "  " * min(depth, max(width - _PATH_ROOM, 0) // 2)
    room = max(width - len(indent), 2)
    return indent + (path if len(path) <= room else "…" + path[len(path) - room + 1 :])


_SHORT_DTYPES = {"bfloat16": "bf16", "float16": "f16", "float64": "f64", "int32": "i32",
                 "int64": "i64", "int8": "i8", "uint8": "u8", "bool": "bool"}  # fmt: skip


def _output(spec: "ArraySpec") -> str:
    """``spec`` as ``2x5x3``, its dtype added where it is not float32 (``2x5x3 bf16``).

    Examples:
      >>> from phosjax.core import ArraySpec
      >>> _output(ArraySpec((2, 3), "float32")), _output(ArraySpec((), "bfloat16"))
      ('2x3', 'scalar bf16')
    """
    shape = "x".join(map(str, spec.shape)) or "scalar"
    if spec.dtype == "float32":
        return shape
    return f"{shape} {_SHORT_DTYPES.get(spec.dtype, spec.dtype)}"


def _number(value: Json) -> str:
    """``value`` short: ints whole, floats to 3 significant digits, an array of more than
    3 by its size and mean (of bools: the fraction true), bools as ``True``/``False``, a
    str on one line.

    Examples:
      >>> _number(2.0), _number(1234), _number([True, False]), _number([0.5, 1.25, 2, 3])
      ('2', '1234', '[True,False]', '[4: mean 1.69]')
      >>> _number("Dense(\\n  features=3)")
      'Dense( features=3)'
    """
    if isinstance(value, str):  # a line break would start a row that names no module
        return " ".join(value.split())
    if isinstance(value, bool | int) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    try:
        array = np.asarray(value)
    except ValueError:  # a ragged list
        return str(value)
    if array.dtype.kind not in "biuf":
        return str(value)
    if array.size <= 3:
        return "[" + ",".join(map(_number, array.ravel().tolist())) + "]"
    return f"[{array.size}: mean {array.mean():.3g}]"


def _in_units(value: float | None, units: Sequence[tuple[str, float]]) -> str:
    """``value`` to 3 significant digits in the first of ``units`` (``(suffix, scale)``,
    ascending) where it rounds below 1000, else in the last; ``-`` for None. A value that
    rounds up to the next unit reads in it: 999,999 FLOPs read ``1M``, not ``1e+03K``.

    Examples:
      >>> [_in_units(v, _FLOP_UNITS) for v in (27.0, 999.6, 12_345.0, 999_999.0, None)]
      ['27', '1K', '12.3K', '1M', '-']
      >>> [_in_units(s, _SECOND_UNITS) for s in (2e-7, 0.0009996, 0.0015, 0.9996)]
      ['0.2µs', '1ms', '1.5ms', '1s']
    """
    if value is None:
        return "-"
    *smaller, (largest, scale) = units
    for suffix, each in smaller:
        text = f"{value / each:.3g}"
        if float(text) < 1000:
            return text + suffix
    return f"{value / scale:.3g}{largest}"


_FLOP_UNITS = (("", 1.0), ("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12))
_SECOND_UNITS = (("µs", 1e-6), ("ms", 1e-3), ("s", 1.0))


def _notes(module: "ModuleBlurb") -> str:
    parts = [
        f"{k}={_number(v.value)}" + (f" ({v.valid})" if v.valid else "")
        for k, v in module.knobs.items()
    ]
    parts += [f"{k}={_number(v)}" for k, v in module.notes.items()]
    parts += [f"aux:{k}={_number(v)}" for k, v in module.aux_losses.items()]
    parts += [f"w:{k}={_number(v)}" for k, v in module.path_weights.items()]
    return " ".join(parts)


def table(summary: "Blurb") -> str:
    notes_width = _WIDTH - sum(width + 1 for _, width, _ in _COLUMNS)

    def row(cells: Sequence[str]) -> str:
        fitted = [_fit(c, w, a) for c, (_, w, a) in zip(cells, _COLUMNS, strict=False)]
        return " ".join([*fitted, _fit(cells[-1], notes_width, "<")]).rstrip()

    lines = [row([name for name, _, _ in _COLUMNS] + ["notes"])]

    def walk(module: "ModuleBlurb", depth: int) -> None:
        shapes = ", ".join(map(_output, module.outputs.values()))
        lines.append(
            row(
                [
                    _fit_path(depth, module.path or "(top)", _COLUMNS[0][1]),
                    module.type or "-",
                    f"{module.params:,}",
                    shapes or "-",
                    _in_units(module.flops, _FLOP_UNITS),
                    _in_units(module.latency_s, _SECOND_UNITS),
                    _notes(module),
                ]
            )
        )
        for child in module.children:
            walk(child, depth + 1)

    walk(summary.root, 0)
    lines.append(f"backend: {summary.backend}")
    return "\n".join(lines)
