"""The dashboard's chart: records falling due per month, by category, as a server-side SVG.

A picture, not a table; its text alternative (``describe``) says what it shows, and the page
offers the numbers as a table too, for screen readers and for copying.
"""

from __future__ import annotations

import datetime as dt
from html import escape

#: GOV.UK colour palette, in an order that keeps neighbours distinguishable.
COLOURS = ("#1d70b8", "#f47738", "#00703c", "#4c2c92", "#d53880", "#28a197", "#b58840",
           "#6f72af", "#d4351c", "#85994b")
WIDTH, HEIGHT = 960, 360
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 96


def _month_label(month: str) -> str:
    return dt.date.fromisoformat(month + "-01").strftime("%b %Y")


def _nice_ceiling(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return value


def categories_of(data: dict[str, dict[str, int]]) -> list[str]:
    totals: dict[str, int] = {}
    for counts in data.values():
        for category, n in counts.items():
            totals[category] = totals.get(category, 0) + n
    return sorted(totals, key=lambda c: (-totals[c], c))


def describe(data: dict[str, dict[str, int]]) -> str:
    """One or two sentences that say what the chart shows."""
    months = list(data)
    total = sum(sum(c.values()) for c in data.values())
    if not months:
        return "No months to show."
    span = f"{_month_label(months[0])} to {_month_label(months[-1])}"
    if total == 0:
        return f"No records fall due from {span}."
    busiest = max(months, key=lambda m: sum(data[m].values()))
    by_cat = {c: sum(data[m].get(c, 0) for m in months) for c in categories_of(data)}
    parts = ", ".join(f"{c} {n:,}" for c, n in by_cat.items())
    return (f"{total:,} records fall due from {span}. The busiest month is "
            f"{_month_label(busiest)} with {sum(data[busiest].values()):,}. By category: {parts}.")


def render_svg(data: dict[str, dict[str, int]], *, title: str = "Records due per month") -> str:
    """A stacked bar chart, one bar a month, one colour a category, with a legend."""
    months = list(data)
    cats = categories_of(data)
    colour = {c: COLOURS[i % len(COLOURS)] for i, c in enumerate(cats)}
    top = _nice_ceiling(max((sum(c.values()) for c in data.values()), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(months), 1)
    bar = slot * 0.7
    legend_rows = (len(cats) + 2) // 3
    height = HEIGHT + legend_rows * 22
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="chart-title chart-desc" '
        f'font-family="Arial, sans-serif" font-size="13">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(describe(data))}</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    for i in range(5):
        value = top * i // 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#b1b4b6" stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#0b0c0c">'
                   f'{value:,}</text>')
    for i, month in enumerate(months):
        x = LEFT + i * slot + (slot - bar) / 2
        y = TOP + plot_h
        for cat in cats:
            n = data[month].get(cat, 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                       f'fill="{colour[cat]}"><title>{escape(_month_label(month))}: '
                       f'{escape(cat)} {n:,}</title></rect>')
        label_x, label_y = x + bar / 2, TOP + plot_h + 12
        out.append(f'<text x="{label_x:.1f}" y="{label_y:.1f}" text-anchor="end" fill="#0b0c0c" '
                   f'transform="rotate(-45 {label_x:.1f} {label_y:.1f})">'
                   f'{escape(_month_label(month))}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
               f'stroke="#0b0c0c" stroke-width="1"/>')
    for i, cat in enumerate(cats):
        col, row = i % 3, i // 3
        lx, ly = LEFT + col * 300, HEIGHT + row * 22 - 8
        out.append(f'<rect x="{lx}" y="{ly - 11}" width="14" height="14" fill="{colour[cat]}"/>')
        out.append(f'<text x="{lx + 20}" y="{ly}" fill="#0b0c0c">{escape(cat)}</text>')
    if not cats:
        out.append(f'<text x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" '
                   f'fill="#505a5f">Nothing falls due in these 24 months</text>')
    out.append("</svg>")
    return "\n".join(out)
