"""Any tabular export a brand can make (CSV with a header), turned into model rows.

Federated brands must encode alike: the same columns in the same order, the same categories, the
same scaling. In production that agreement is a shared schema file (:meth:`Schema.from_json`);
``federate simulate`` may instead infer it from the union of the brands' files, which reads every
brand's data in one place and is therefore only a simulation shortcut.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

#: Label spellings read as 1 and 0 (case-insensitive).
POSITIVE = frozenset({"1", "true", "yes", "y", "churned"})
NEGATIVE = frozenset({"0", "false", "no", "n", "active"})
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})


class TableError(ValueError):
    """A file or schema that cannot be used, with a message saying what to fix."""


@dataclass(frozen=True)
class Table:
    """One brand's export: its header and rows as strings."""

    name: str
    columns: tuple[str, ...]
    rows: list[list[str]]

    @classmethod
    def read(cls, path: Path, name: str | None = None) -> Table:
        """Read a CSV file with a header row."""
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if not header:
                    raise TableError(f"{path}: empty file, a header row is expected")
                columns = tuple(h.strip() for h in header)
                if len(set(columns)) != len(columns):
                    raise TableError(f"{path}: a column name appears twice in the header")
                rows = []
                for line_no, row in enumerate(reader, start=2):
                    if not any(cell.strip() for cell in row):
                        continue
                    if len(row) != len(columns):
                        raise TableError(f"{path}, line {line_no}: {len(row)} values for {len(columns)} columns")
                    rows.append([cell.strip() for cell in row])
        except OSError as exc:
            raise TableError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise TableError(f"{path}: not UTF-8 text") from exc
        except csv.Error as exc:
            raise TableError(f"{path}: not a CSV file ({exc})") from exc
        if not rows:
            raise TableError(f"{path}: no data rows")
        return cls(name or path.stem, columns, rows)

    def column(self, name: str) -> list[str]:
        """Every value of column ``name``."""
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


@dataclass(frozen=True)
class Schema:
    """The agreed encoding: label, numeric columns with their scaling, categorical columns with their values."""

    label: str
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)  # column -> (mean, spread)
    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)  # column -> known values

    @property
    def width(self) -> int:
        """Number of model inputs."""
        return len(self.numeric) + sum(len(v) for v in self.categorical.values())

    def to_json(self) -> dict[str, object]:
        """The schema file's content."""
        return {
            "label": self.label,
            "numeric": {k: {"mean": m, "scale": s} for k, (m, s) in self.numeric.items()},
            "categorical": {k: list(v) for k, v in self.categorical.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Schema:
        """A schema from its file's content; :class:`TableError` says what is wrong."""
        try:
            numeric = {str(k): (float(v["mean"]), float(v["scale"])) for k, v in dict(data.get("numeric", {})).items()}  # type: ignore[call-overload,index]
            categorical = {str(k): tuple(str(x) for x in v) for k, v in dict(data.get("categorical", {})).items()}  # type: ignore[call-overload]
            label = str(data["label"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TableError(
                f"bad schema: {exc!r}; expected label, numeric {{col: {{mean, scale}}}}, categorical {{col: [values]}}"
            ) from exc
        if any(s <= 0 or not math.isfinite(s) for _, s in numeric.values()):
            raise TableError("bad schema: every numeric scale is a positive number")
        return cls(label, numeric, categorical)

    @classmethod
    def read(cls, path: Path) -> Schema:
        """Read a schema file."""
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise TableError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        except json.JSONDecodeError as exc:
            raise TableError(f"{path}: not JSON ({exc})") from exc


def infer_schema(tables: Sequence[Table], label: str, exclude: Iterable[str] = ()) -> Schema:
    """The union schema of ``tables`` (simulation shortcut): a column is numeric when every present
    value in every file parses as a finite number, categorical otherwise; scaling from the pooled rows."""
    _check_same_columns(tables, label)
    return _infer(tables, {label, *exclude}, label)


def _infer(tables: Sequence[Table], skip: set[str], label: str) -> Schema:
    numeric: dict[str, tuple[float, float]] = {}
    categorical: dict[str, tuple[str, ...]] = {}
    for col in tables[0].columns:
        if col in skip:
            continue
        values = [v for t in tables for v in t.column(col) if v.lower() not in MISSING]
        numbers = [_number(v) for v in values]
        if values and all(n is not None for n in numbers):
            xs = [n for n in numbers if n is not None]
            mean = fmean(xs)
            spread = math.sqrt(fmean((x - mean) ** 2 for x in xs))
            numeric[col] = (mean, spread if spread > 1e-12 else 1.0)
        else:
            categorical[col] = tuple(sorted(set(values)))
    if not numeric and not categorical:
        names = ", ".join(repr(c) for c in sorted(skip))
        raise TableError(f"{tables[0].name}: no column besides {names} to learn from")
    return Schema(label, numeric, categorical)


def infer_features(table: Table, exclude: Iterable[str] = ()) -> Schema:
    """The schema of one brand's own columns (a vertical partner's, which has no label column): a
    column is numeric when every present value parses as a finite number, categorical otherwise."""
    return _infer([table], set(exclude), "")


def encode(table: Table, schema: Schema) -> tuple[list[list[float]], list[int]]:
    """Model rows and 0/1 labels of ``table``: numbers standardised (a missing one becomes the mean,
    i.e. 0), categories one-hot (an unknown or missing one is all zeros)."""
    if schema.label not in table.columns:
        raise TableError(f"{table.name}: missing column(s) {schema.label}")
    i = table.columns.index(schema.label)
    y = [parse_label(row[i], table.name, line_no) for line_no, row in enumerate(table.rows, start=2)]
    x = encode_features(table, schema)
    if len(set(y)) < 2:
        raise TableError(f"{table.name}: every row has the same label; churn cannot be learned from one class")
    return x, y


def encode_features(table: Table, schema: Schema) -> list[list[float]]:
    """Model rows of ``table`` under ``schema`` (its label, if any, is not read)."""
    missing = [c for c in (*schema.numeric, *schema.categorical) if c not in table.columns]
    if missing:
        raise TableError(f"{table.name}: missing column(s) {', '.join(missing)}")
    idx = {c: table.columns.index(c) for c in table.columns}
    x: list[list[float]] = []
    for line_no, row in enumerate(table.rows, start=2):
        out: list[float] = []
        for col, (mean, scale) in schema.numeric.items():
            raw = row[idx[col]]
            if raw.lower() in MISSING:
                out.append(0.0)
                continue
            value = _number(raw)
            if value is None:
                raise TableError(f"{table.name}, line {line_no}: {col}={raw!r} is not a number")
            out.append((value - mean) / scale)
        for col, values in schema.categorical.items():
            raw = row[idx[col]]
            out.extend(1.0 if raw == v else 0.0 for v in values)
        x.append(out)
    return x


def _check_same_columns(tables: Sequence[Table], label: str) -> None:
    if not tables:
        raise TableError("no table given")
    for t in tables:
        if label not in t.columns:
            raise TableError(f"{t.name}: no label column {label!r} (columns: {', '.join(t.columns)})")
        if set(t.columns) != set(tables[0].columns):
            diff = set(t.columns) ^ set(tables[0].columns)
            raise TableError(f"{t.name} and {tables[0].name} have different columns: {', '.join(sorted(diff))}")


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_label(raw: str, table: str, line_no: int) -> int:
    """A 0/1 label cell (true/false and yes/no read too); :class:`TableError` names the file and line."""
    v = raw.strip().lower()
    if v in POSITIVE:
        return 1
    if v in NEGATIVE:
        return 0
    raise TableError(f"{table}, line {line_no}: label {raw!r} is not 0/1 (or true/false, yes/no)")
