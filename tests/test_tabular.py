"""Brands' CSV exports become model rows that every brand encodes alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.tabular import Schema, Table, TableError, encode, infer_schema


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def two(tmp_path: Path) -> list[Table]:
    a = write(tmp_path / "air.csv", "id,spend,channel,churned\n1,10,web,1\n2,30,store,0\n3,,web,0\n")
    b = write(tmp_path / "shop.csv", "id,spend,channel,churned\n9,20,app,yes\n8,40,web,no\n")
    return [Table.read(a), Table.read(b)]


def test_numeric_and_categorical_columns_are_told_apart_over_the_union(two: list[Table]) -> None:
    schema = infer_schema(two, "churned", exclude=["id"])
    assert list(schema.numeric) == ["spend"]
    assert schema.categorical == {"channel": ("app", "store", "web")}  # "app" only appears at the shop


def test_every_brand_encodes_to_the_same_width_and_scale(two: list[Table]) -> None:
    schema = infer_schema(two, "churned", exclude=["id"])
    xa, ya = encode(two[0], schema)
    xb, yb = encode(two[1], schema)
    assert {len(r) for r in xa + xb} == {schema.width} == {4}
    assert (ya, yb) == ([1, 0, 0], [1, 0])
    mean, scale = schema.numeric["spend"]
    assert mean == 25.0
    assert xa[0][0] == pytest.approx((10 - mean) / scale)
    assert xa[2][0] == 0.0  # a missing number becomes the mean
    assert xb[0][1:] == [1.0, 0.0, 0.0]  # one-hot in the schema's category order


def test_an_unknown_category_encodes_as_all_zeros(two: list[Table], tmp_path: Path) -> None:
    schema = infer_schema(two, "churned", exclude=["id"])
    other = Table.read(write(tmp_path / "c.csv", "id,spend,channel,churned\n1,5,phone,1\n2,6,web,0\n"))
    x, _ = encode(other, schema)
    assert x[0][1:] == [0.0, 0.0, 0.0]


def test_a_shared_schema_round_trips_through_its_file(two: list[Table], tmp_path: Path) -> None:
    import json

    schema = infer_schema(two, "churned", exclude=["id"])
    path = write(tmp_path / "schema.json", json.dumps(schema.to_json()))
    assert Schema.read(path) == schema


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("a,churned\n", "no data rows"),
        ("a,churned\n1,1,3\n", "line 2: 3 values for 2 columns"),
        ("a,a\n1,1\n", "appears twice"),
    ],
)
def test_a_malformed_file_is_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TableError, match=message):
        Table.read(write(tmp_path / "bad.csv", text))


def test_a_missing_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="cannot read"):
        Table.read(tmp_path / "nope.csv")


def test_files_with_different_columns_cannot_be_federated(two: list[Table], tmp_path: Path) -> None:
    other = Table.read(write(tmp_path / "c.csv", "id,spend,churned\n1,5,1\n"))
    with pytest.raises(TableError, match="different columns: channel"):
        infer_schema([*two, other], "churned")


def test_a_label_that_is_not_binary_is_refused_with_its_line(two: list[Table], tmp_path: Path) -> None:
    schema = infer_schema(two, "churned", exclude=["id"])
    other = Table.read(write(tmp_path / "c.csv", "id,spend,channel,churned\n1,5,web,maybe\n"))
    with pytest.raises(TableError, match=r"c, line 2: label 'maybe'"):
        encode(other, schema)


def test_one_class_only_cannot_be_learned(two: list[Table], tmp_path: Path) -> None:
    schema = infer_schema(two, "churned", exclude=["id"])
    other = Table.read(write(tmp_path / "c.csv", "id,spend,channel,churned\n1,5,web,0\n2,7,web,0\n"))
    with pytest.raises(TableError, match="same label"):
        encode(other, schema)


def test_a_missing_label_column_names_the_columns_there_are(two: list[Table]) -> None:
    with pytest.raises(TableError, match=r"no label column 'left'.*id, spend, channel, churned"):
        infer_schema(two, "left")
