"""The dashboard's charts: SVG with a title and description, bars in proportion, text escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from node.web import charts

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def test_a_bar_chart_is_an_image_with_a_title_and_the_numbers_in_words() -> None:
    svg = _parse(charts.bars("Consents", [("marketing", 3), ("joint_modeling", 1)]))
    assert svg.get("role") == "img"
    assert svg.find(f"{SVG}title").text == "Consents"
    assert svg.find(f"{SVG}desc").text == "marketing: 3; joint_modeling: 1"


def test_bars_are_in_proportion_to_their_values() -> None:
    widths = [float(r.get("width")) for r in _parse(charts.bars("t", [("a", 4), ("b", 2)])).iter(f"{SVG}rect")]
    assert widths[0] == 2 * widths[1]


def test_labels_are_escaped() -> None:
    markup = str(charts.bars("<t>", [("<script>x</script>", 1)]))
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup


def test_a_diverging_chart_puts_debts_left_of_zero_and_credits_right() -> None:
    svg = _parse(charts.diverging("net", [("owes us", 5.0), ("we owe", -5.0)]))
    zero = float(svg.find(f"{SVG}line").get("x1"))
    right, left = [r for r in svg.iter(f"{SVG}rect")]
    assert float(right.get("x")) == zero
    assert float(left.get("x")) + float(left.get("width")) == zero


def test_a_grouped_chart_skips_a_missing_value_and_keeps_the_key() -> None:
    svg = _parse(charts.grouped("auc", ["run-1"], [("alone", [0.7]), ("together", [None])], low=0.5))
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "alone" in texts
    assert "together" in texts
    assert "0.700" in texts
    assert len([r for r in svg.iter(f"{SVG}rect")]) == 3  # two key swatches and one bar


def test_an_empty_chart_says_so() -> None:
    assert re.search(r"<desc[^>]*>no data</desc>", str(charts.bars("t", [])))
