"""The dashboard's chart: records falling due per month, by category, as a server-side SVG.

A picture, not a table; its text alternative (``describe``) says what it shows, and the page
offers the numbers as a table too, for screen readers and for copying. Two layouts: ``wide``
(a column a month) and ``narrow`` (a row a month, for phones: text stays readable at 320 CSS
pixels because the picture is drawn at about that width, not scaled down from 960).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from html import escape

#: GOV.UK colour palette, in an order that keeps neighbours distinguishable.
COLOURS = ("#1d70b8", "#f47738", "#00703c", "#4c2c92", "#d53880", "#28a197", "#b58840",
           "#6f72af", "#d4351c", "#85994b")
WIDTH, HEIGHT = 960, 360
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 96
#: The narrow layout: drawn at a phone's width so its 13-pixel text is 13 pixels there.
N_WIDTH, N_LEFT, N_RIGHT, N_ROW, N_TOP = 340, 78, 14, 20, 28
MAX_TICKS = 5

Label = Callable[[str], str]


def _month_label(month: str) -> str:
    return dt.date.fromisoformat(month + "-01").strftime("%b %Y")


def month_words(month: str) -> str:
    """``2027-03`` -> 'March 2027' (the table under the chart)."""
    return dt.date.fromisoformat(month + "-01").strftime("%B %Y")


def axis(maximum: int) -> tuple[int, ...]:
    """The value axis for bars up to ``maximum``: 0 and then equal steps of 1, 2 or 5 times a
    power of ten, the last at or just above ``maximum``, at most ``MAX_TICKS`` steps. Every
    label is a whole number and sits where its value is (a bar of 4 reaches the line '4')."""
    if maximum <= 0:
        return (0, 1)
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            steps = math.ceil(maximum / step)
            if steps <= MAX_TICKS:
                return tuple(step * i for i in range(steps + 1))
        magnitude *= 10


def categories_of(data: dict[str, dict[str, int]]) -> list[str]:
    totals: dict[str, int] = {}
    for counts in data.values():
        for category, n in counts.items():
            totals[category] = totals.get(category, 0) + n
    return sorted(totals, key=lambda c: (-totals[c], c))


def describe(data: dict[str, dict[str, int]], label: Label = str) -> str:
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
    parts = ", ".join(f"{label(c)} {n:,}" for c, n in by_cat.items())
    return (f"{total:,} records fall due from {span}. The busiest month is "
            f"{_month_label(busiest)} with {sum(data[busiest].values()):,}. By category: {parts}.")


def _head(width: float, height: float, title: str, description: str, ident: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="{ident}-title {ident}-desc" '
        f'font-family="Arial, sans-serif" font-size="13">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]


def render_svg(data: dict[str, dict[str, int]], *, title: str = "Records due per month",
               label: Label = str, layout: str = "wide") -> str:
    """A stacked bar chart, one bar a month, one colour a category, with a legend."""
    if layout == "narrow":
        return _render_narrow(data, title=title, label=label)
    months = list(data)
    cats = categories_of(data)
    colour = {c: COLOURS[i % len(COLOURS)] for i, c in enumerate(cats)}
    ticks = axis(max((sum(c.values()) for c in data.values()), default=0))
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(months), 1)
    bar = slot * 0.7
    legend_rows = (len(cats) + 1) // 2
    height = HEIGHT + legend_rows * 22
    out = _head(WIDTH, height, title, describe(data, label), "chart")
    for value in ticks:
        y = TOP + plot_h - plot_h * value / top
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#b1b4b6" stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#0b0c0c" '
                   f'data-tick="{value}">{value:,}</text>')
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
                       f'{escape(label(cat))} {n:,}</title></rect>')
        label_x, label_y = x + bar / 2, TOP + plot_h + 12
        out.append(f'<text x="{label_x:.1f}" y="{label_y:.1f}" text-anchor="end" fill="#0b0c0c" '
                   f'transform="rotate(-45 {label_x:.1f} {label_y:.1f})">'
                   f'{escape(_month_label(month))}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
               f'stroke="#0b0c0c" stroke-width="1"/>')
    for i, cat in enumerate(cats):
        col, row = i % 2, i // 2
        lx, ly = LEFT + col * 440, HEIGHT + row * 22 - 8
        out.append(f'<rect x="{lx}" y="{ly - 11}" width="14" height="14" fill="{colour[cat]}"/>')
        out.append(f'<text x="{lx + 20}" y="{ly}" fill="#0b0c0c">{escape(label(cat))}</text>')
    if not cats:
        out.append(f'<text x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" '
                   f'fill="#505a5f">Nothing falls due in these 24 months</text>')
    out.append("</svg>")
    return "\n".join(out)


def _render_narrow(data: dict[str, dict[str, int]], *, title: str, label: Label) -> str:
    """A row a month, bars growing to the right. No legend inside: at this width a long
    category label would be cut off, so the page lists the colours as text under it
    (``legend``)."""
    months = list(data)
    cats = categories_of(data)
    colour = {c: COLOURS[i % len(COLOURS)] for i, c in enumerate(cats)}
    ticks = axis(max((sum(c.values()) for c in data.values()), default=0))
    top = ticks[-1]
    plot_w = N_WIDTH - N_LEFT - N_RIGHT
    plot_h = N_ROW * max(len(months), 1)
    height = N_TOP + plot_h + 8
    out = _head(N_WIDTH, height, title, describe(data, label), "chart-narrow")
    for value in ticks:
        x = N_LEFT + plot_w * value / top
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{N_TOP - 4}" y2="{N_TOP + plot_h}" '
                   f'stroke="#b1b4b6" stroke-width="1"/>')
        out.append(f'<text x="{x:.1f}" y="{N_TOP - 10}" text-anchor="middle" fill="#0b0c0c" '
                   f'data-tick="{value}">{value:,}</text>')
    for i, month in enumerate(months):
        y = N_TOP + i * N_ROW
        x = float(N_LEFT)
        for cat in cats:
            n = data[month].get(cat, 0)
            if not n:
                continue
            w = plot_w * n / top
            out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{N_ROW - 6}" '
                       f'fill="{colour[cat]}"><title>{escape(_month_label(month))}: '
                       f'{escape(label(cat))} {n:,}</title></rect>')
            x += w
        out.append(f'<text x="{N_LEFT - 6}" y="{y + N_ROW / 2 + 4:.1f}" text-anchor="end" '
                   f'fill="#0b0c0c">{escape(_month_label(month))}</text>')
    out.append(f'<line x1="{N_LEFT}" x2="{N_LEFT}" y1="{N_TOP - 4}" y2="{N_TOP + plot_h}" '
               f'stroke="#0b0c0c" stroke-width="1"/>')
    if not cats:
        out.append(f'<text x="{N_WIDTH / 2}" y="{N_TOP + plot_h / 2}" text-anchor="middle" '
                   f'fill="#505a5f">Nothing falls due in these 24 months</text>')
    out.append("</svg>")
    return "\n".join(out)


def legend(data: dict[str, dict[str, int]]) -> list[tuple[int, str]]:
    """(colour index, category) for each category, in the charts' order, for a legend the
    page writes as text (a CSS class per colour: the pages allow no inline style)."""
    return [(i % len(COLOURS), c) for i, c in enumerate(categories_of(data))]
