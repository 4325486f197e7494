"""Small inline SVG charts for the HTML reports: grouped bars, horizontal bars, lines.

Rendered here as strings so a report is one self-contained file that opens offline: no JavaScript,
no fonts or libraries from a CDN. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0891b2", "#db2777", "#65a30d")
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'


def _fmt(value: float, percent: bool) -> str:
    return f"{value * 100:.0f}%" if percent else (f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}")


def _legend(names: Sequence[str], x: float, y: float) -> str:
    parts, offset = [], 0.0
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x + offset:.1f}" y="{y - 9}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + offset + 14:.1f}" y="{y}" font-size="11" {_FONT}>{escape(name)}</text>')
        offset += 24 + 7 * len(name)
    return "".join(parts)


def bar_chart(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    width: int = 560,
    height: int = 260,
    ymax: float | None = 1.0,
    percent: bool = True,
    counts: Sequence[int] | None = None,
) -> str:
    """Grouped vertical bars: one group per category, one bar per series. None values are drawn as
    'n/a'. `counts` are printed under the category names (n=...)."""
    if not categories:
        return _empty(width, 80, "nothing to plot")
    left, right, top, bottom = 44, 10, 22, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, vals in series for v in vals if v is not None]
    top_value = ymax if ymax is not None else max(values + [0.0]) * 1.1 or 1.0
    group_w = plot_w / len(categories)
    bar_w = max(3.0, min(36.0, (group_w - 10) / max(1, len(series))))
    out = [_open(width, height)]
    for k in range(5):  # horizontal grid with tick labels
        frac = k / 4
        y = top + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#6b7280" {_FONT}>'
            f"{escape(_fmt(top_value * frac, percent))}</text>"
        )
    for gi, category in enumerate(categories):
        gx = left + gi * group_w + (group_w - bar_w * len(series)) / 2
        for si, (_, vals) in enumerate(series):
            value = vals[gi]
            x = gx + si * bar_w
            if value is None:
                out.append(
                    f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - 4}" font-size="9" text-anchor="middle" fill="#9ca3af" {_FONT}>n/a</text>'
                )
                continue
            h = plot_h * min(max(value / top_value, 0.0), 1.0)
            y = top + plot_h - h
            color = PALETTE[si % len(PALETTE)]
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{color}"><title>{escape(category)}: {escape(_fmt(value, percent))}</title></rect>'
            )
            out.append(
                f'<text x="{x + bar_w / 2 - 1:.1f}" y="{y - 3:.1f}" font-size="9" text-anchor="middle" {_FONT}>{escape(_fmt(value, percent))}</text>'
            )
        label = category if len(category) <= 14 else category[:13] + "…"
        cx = left + gi * group_w + group_w / 2
        out.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 15}" font-size="11" text-anchor="middle" {_FONT}>{escape(label)}</text>'
        )
        if counts is not None:
            out.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 28}" font-size="9" text-anchor="middle" fill="#6b7280" {_FONT}>n={counts[gi]:,}</text>'
            )
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#9ca3af"/>')
    if len(series) > 1:
        out.append(_legend([name for name, _ in series], left, height - 6))
    out.append("</svg>")
    return "".join(out)


def hbar_chart(items: Sequence[tuple[str, int]], *, width: int = 560, color: str = "#ef4444") -> str:
    """Horizontal bars of counts, one per (label, count), with the count and share printed."""
    if not items:
        return _empty(width, 60, "no errors")
    row_h, left, right = 24, 110, 110
    height = row_h * len(items) + 12
    peak = max(count for _, count in items) or 1
    total = sum(count for _, count in items) or 1
    out = [_open(width, height)]
    for i, (label, count) in enumerate(items):
        y = 6 + i * row_h
        w = (width - left - right) * count / peak
        out.append(f'<text x="{left - 8}" y="{y + 15}" font-size="12" text-anchor="end" {_FONT}>{escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row_h - 8}" fill="{color}" rx="2"/>')
        out.append(
            f'<text x="{left + w + 6:.1f}" y="{y + 15}" font-size="11" {_FONT}>{count:,} ({count / total:.0%})</text>'
        )
    out.append("</svg>")
    return "".join(out)


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    width: int = 560,
    height: int = 240,
    x_label: str = "step",
    y_label: str = "",
) -> str:
    """One polyline per (name, [(x, y), ...]) on shared axes; single points are drawn as dots."""
    points = [p for _, pts in series for p in pts]
    if not points:
        return _empty(width, 80, "nothing to plot")
    left, right, top, bottom = 52, 12, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(0.0, min(ys)), max(ys) * 1.05 if max(ys) > 0 else 1.0

    def sx(x: float) -> float:
        return left + plot_w * (x - x0) / (x1 - x0)

    def sy(y: float) -> float:
        return top + plot_h * (1 - (y - y0) / (y1 - y0))

    out = [_open(width, height)]
    for k in range(5):
        value = y0 + (y1 - y0) * k / 4
        y = sy(value)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#6b7280" {_FONT}>{value:.3g}</text>'
        )
    for k in range(5):
        value = x0 + (x1 - x0) * k / 4
        out.append(
            f'<text x="{sx(value):.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle" fill="#6b7280" {_FONT}>{value:,.0f}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 14}" font-size="11" text-anchor="middle" {_FONT}>{escape(x_label)}</text>'
    )
    if y_label:
        out.append(
            f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {top + plot_h / 2:.1f})" {_FONT}>{escape(y_label)}</text>'
        )
    for i, (_, pts) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(pts))
        if len(pts) > 1:
            out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts if len(pts) <= 40 else []:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>')
    out.append(_legend([name for name, _ in series], left, height - 2))
    out.append("</svg>")
    return "".join(out)


def _open(width: int, height: int) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img">'


def _empty(width: int, height: int, text: str) -> str:
    return (
        f'{_open(width, height)}<text x="{width / 2}" y="{height / 2}" font-size="12" text-anchor="middle" '
        f'fill="#9ca3af" {_FONT}>{escape(text)}</text></svg>'
    )
