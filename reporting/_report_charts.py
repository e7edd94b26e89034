"""Small SVG charts for the reports, drawn server-side (no plotting library).

Each function returns a standalone ``<svg>`` string that browsers and WeasyPrint
render alike. Labels are escaped; sizes are in CSS pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

_W, _H = 640, 240
_COLORS = ("#2f6db5", "#e08a2c", "#3c9a5f", "#b53f3f", "#7a5fb5")
_FONT = 'font-family="DejaVu Sans, Arial, sans-serif" font-size="11"'


def _svg(body: list[str], title: str, height: int = _H) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}"'
        f' viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    )
    return head + "".join(body) + "</svg>"


def _fmt(v: float) -> str:
    """A short axis number.

    >>> _fmt(1234567), _fmt(12500), _fmt(42), _fmt(0.5)
    ('1.2M', '12.5k', '42', '0.5')
    """
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.1f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:,.0f}" if a >= 10 or v == int(v) else f"{v:.1f}"


def _frame(title: str, left: int, top: int, plot_h: int, right: int, top_v: float) -> list[str]:
    """The title and three horizontal grid lines with their values."""
    body = [f'<text x="{left}" y="16" {_FONT} font-weight="bold">{escape(title)}</text>']
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        body.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        body.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{_fmt(top_v * frac)}</text>'
        )
    return body


def _legend(names: list[str], left: int) -> list[str]:
    """One coloured square and name per series, along the bottom."""
    out = []
    for j, name in enumerate(names):
        x, color = left + j * 150, _COLORS[j % len(_COLORS)]
        out.append(f'<rect x="{x}" y="{_H - 16}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14}" y="{_H - 7}" {_FONT}>{escape(name)}</text>')
    return out


def grouped_bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float]]) -> str:
    """Vertical bars, one group per label and one bar per series, with a legend.

    >>> svg = grouped_bars("Spend", ["a", "b"], {"spend": [1.0, 2.0]})
    >>> svg.startswith("<svg") and svg.count("<rect") == 3
    True
    """
    left, top, bottom = 50, 28, 46
    plot_h = _H - top - bottom
    top_v = max([v for s in series.values() for v in s] + [1e-9])
    n, k = max(len(labels), 1), max(len(series), 1)
    group_w = (_W - left - 10) / n
    bar_w = max(2.0, group_w * 0.8 / k)
    body = _frame(title, left, top, plot_h, _W - 10, top_v)
    for i, label in enumerate(labels):
        x0 = left + i * group_w + group_w * 0.1
        for j, values in enumerate(series.values()):
            h = plot_h * max(values[i], 0.0) / top_v
            body.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}"'
                f' height="{h:.1f}" fill="{_COLORS[j % len(_COLORS)]}"/>'
            )
        body.append(
            f'<text x="{left + (i + 0.5) * group_w:.1f}" y="{_H - bottom + 14}" text-anchor="middle"'
            f" {_FONT}>{escape(label[:18])}</text>"
        )
    body += _legend(list(series), left)
    return _svg(body, title)


def lines(title: str, series: dict[str, Sequence[float]], x_labels: Sequence[str]) -> str:
    """Lines over a shared x axis (e.g. this period's days against the previous period's).

    >>> lines("Leads per day", {"now": [1, 3, 2], "before": [2, 2, 2]}, ["M", "T", "W"]).count("<polyline")
    2
    """
    left, top, bottom = 50, 28, 46
    plot_h, plot_w = _H - top - bottom, _W - left - 20
    top_v = max([v for s in series.values() for v in s] + [1e-9])
    n = max(max((len(s) for s in series.values()), default=1), 2)
    body = _frame(title, left, top, plot_h, _W - 20, top_v)
    step = max(1, len(x_labels) // 8)
    for i, label in enumerate(x_labels):
        if i % step == 0:
            x = left + plot_w * i / (n - 1)
            body.append(
                f'<text x="{x:.1f}" y="{_H - bottom + 14}" text-anchor="middle" {_FONT}>{escape(label)}</text>'
            )
    for j, values in enumerate(series.values()):
        pts = " ".join(
            f"{left + plot_w * i / (n - 1):.1f},{top + plot_h * (1 - v / top_v):.1f}"
            for i, v in enumerate(values)
        )
        color = _COLORS[j % len(_COLORS)]
        body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
    body += _legend(list(series), left)
    return _svg(body, title)


def funnel(title: str, stages: Sequence[tuple[str, float]]) -> str:
    """Horizontal bars from the first stage down, each labelled with its count.

    >>> funnel("Funnel", [("leads", 100), ("sql", 20)]).count("<rect")
    2
    """
    top_v = max([v for _, v in stages] + [1e-9])
    row, left = 34, 130
    height = 30 + row * len(stages)
    body = [f'<text x="10" y="16" {_FONT} font-weight="bold">{escape(title)}</text>']
    for i, (name, v) in enumerate(stages):
        y = 26 + i * row
        w = (_W - left - 80) * v / top_v
        body.append(
            f'<text x="{left - 6}" y="{y + 17}" text-anchor="end" {_FONT}>{escape(name)}</text>'
        )
        body.append(
            f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="24" fill="{_COLORS[0]}"/>'
        )
        body.append(f'<text x="{left + w + 6:.1f}" y="{y + 17}" {_FONT}>{v:,.0f}</text>')
    return _svg(body, title, height)
