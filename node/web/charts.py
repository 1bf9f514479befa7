"""Charts drawn by the node as SVG (pure functions: numbers in, markup out; nothing from a CDN).

Every chart is an ``<svg role="img">`` with a title and a description a screen reader reads, and
the page shows the same numbers in a table beside it. Colours pass WCAG AA against white.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count

from markupsafe import Markup, escape

PALETTE = ("#0b5cad", "#b04a00", "#17612e", "#6b3fa0", "#8a1c3b", "#2f4f4f")
ROW = 26
BAR_W = 360
_ids = count(1)


def _frame(title: str, desc: str, width: int, height: int, body: list[str]) -> Markup:
    n = next(_ids)
    return Markup(
        f'<svg class="chart" role="img" aria-labelledby="chart-t{n} chart-d{n}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-t{n}">{escape(title)}</title><desc id="chart-d{n}">{escape(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _label_width(labels: Sequence[str]) -> int:
    """Room for the longest label (about 7 px a character at the charts' 12 px font)."""
    return max(120, 7 * max((len(label) for label in labels), default=0) + 16)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3f}"


def bars(title: str, items: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """Horizontal bars, one per ``(label, value)``, scaled to the largest value (values >= 0)."""
    top = max((v for _, v in items), default=0) or 1
    label_w = _label_width([label for label, _ in items])
    body = []
    for i, (label, value) in enumerate(items):
        y = 8 + i * ROW
        w = max(1.0, BAR_W * max(value, 0) / top)
        body.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        body.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{ROW - 8}" fill="{PALETTE[0]}"/>')
        body.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{escape(_fmt(value))}{escape(unit)}</text>')
    desc = "; ".join(f"{label}: {_fmt(v)}{unit}" for label, v in items) or "no data"
    return _frame(title, desc, label_w + BAR_W + 90, 16 + ROW * max(len(items), 1), body)


def diverging(title: str, items: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """Bars left (negative) or right (positive) of a zero line: net positions, owed and owing."""
    top = max((abs(v) for _, v in items), default=0) or 1
    label_w = _label_width([label for label, _ in items])
    half = BAR_W / 2
    zero = label_w + half
    body = [f'<line x1="{zero}" y1="4" x2="{zero}" y2="{12 + ROW * max(len(items), 1)}" stroke="#4a5360"/>']
    for i, (label, value) in enumerate(items):
        y = 8 + i * ROW
        w = max(1.0, half * abs(value) / top)
        x = zero if value >= 0 else zero - w
        colour = PALETTE[2] if value >= 0 else PALETTE[1]
        body.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        body.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW - 8}" fill="{colour}"/>')
        tx, anchor = (zero + w + 6, "start") if value >= 0 else (zero - w - 6, "end")
        body.append(
            f'<text x="{tx:.1f}" y="{y + 15}" text-anchor="{anchor}">{escape(_fmt(value))}{escape(unit)}</text>'
        )
    desc = "; ".join(f"{label}: {_fmt(v)}{unit}" for label, v in items) or "no data"
    return _frame(title, desc, label_w + BAR_W + 150, 16 + ROW * max(len(items), 1), body)


def grouped(
    title: str,
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    low: float = 0.0,
    high: float = 1.0,
) -> Markup:
    """For each group, one bar per series between ``low`` and ``high`` (AUCs: alone, together …), with a key."""
    span = (high - low) or 1
    per = len(series) or 1
    label_w = _label_width(groups)
    body = []
    for s, (name, _) in enumerate(series):  # the key
        body.append(f'<rect x="{label_w + s * 150}" y="4" width="12" height="12" fill="{PALETTE[s % len(PALETTE)]}"/>')
        body.append(f'<text x="{label_w + s * 150 + 18}" y="15">{escape(name)}</text>')
    for g, group in enumerate(groups):
        y0 = 26 + g * (ROW * per + 8)
        body.append(
            f'<text x="{label_w - 8}" y="{y0 + ROW * per / 2 + 4:.1f}" text-anchor="end">{escape(group)}</text>'
        )
        for s, (_, values) in enumerate(series):
            value = values[g]
            if value is None:
                continue
            w = max(1.0, BAR_W * (min(max(value, low), high) - low) / span)
            y = y0 + s * ROW
            colour = PALETTE[s % len(PALETTE)]
            body.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{ROW - 8}" fill="{colour}"/>')
            body.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{value:.3f}</text>')
    desc = (
        "; ".join(
            f"{group}: " + ", ".join(f"{name} {v:.3f}" for name, vals in series if (v := vals[g]) is not None)
            for g, group in enumerate(groups)
        )
        or "no data"
    )
    height = 30 + max(len(groups), 1) * (ROW * per + 8)
    return _frame(title, desc, label_w + BAR_W + 90, height, body)
