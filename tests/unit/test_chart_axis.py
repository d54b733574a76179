"""The dashboard chart's value axis: whole-number ticks in equal steps that reach the
tallest bar, each label drawn where its value is, for every maximum from 1 to 1,000."""

from __future__ import annotations

import itertools
import re

import pytest

from retentiond.web.chart import BOTTOM, HEIGHT, N_LEFT, N_RIGHT, N_WIDTH, TOP, axis, render_svg

NICE = {m * 10 ** k for m in (1, 2, 5) for k in range(6)}


@pytest.mark.parametrize("maximum", range(1, 1001))
def test_axis_ticks_divide_evenly_and_reach_the_maximum(maximum: int) -> None:
    """Ticks start at 0, go up in one step of 1, 2 or 5 x 10^k, end at or above the maximum
    with no empty step beyond it, and are at most 6 lines."""
    ticks = axis(maximum)
    step = ticks[1] - ticks[0]
    assert ticks[0] == 0 and step in NICE
    assert all(b - a == step for a, b in itertools.pairwise(ticks))
    assert ticks[-1] >= maximum > ticks[-2]
    assert len(ticks) <= 6


def _ticks(svg: str) -> list[tuple[int, float, float]]:
    """(value, x, y) of every tick label in an SVG."""
    return [(int(v), float(x), float(y)) for x, y, v in re.findall(
        r'<text x="([\d.]+)" y="([\d.-]+)"[^>]*data-tick="(\d+)"', svg)]


@pytest.mark.parametrize("maximum", range(1, 1001))
def test_labels_sit_at_their_values_and_the_tallest_bar_reaches_its_label(maximum: int) -> None:
    """In both layouts each label's position is proportional to its value, and a bar of
    the maximum ends exactly where a tick of that value would be (a 4 reads 4, not 3.2)."""
    data = {"2026-11": {"education.pupil_record": maximum}, "2026-12": {}}
    plot_h = HEIGHT - TOP - BOTTOM
    wide = render_svg(data)
    ticks = _ticks(wide)
    top = ticks[-1][0]
    assert [v for v, _, _ in ticks] == list(axis(maximum))
    for value, _, y in ticks:
        assert y - 4 == pytest.approx(TOP + plot_h - plot_h * value / top, abs=0.06)
    bar_y = float(re.search(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="[\d.]+" '
                            r'fill="#1d70b8"><title>', wide).group(1))  # type: ignore[union-attr]
    assert bar_y == pytest.approx(TOP + plot_h - plot_h * maximum / top, abs=0.06)

    narrow = render_svg(data, layout="narrow")
    plot_w = N_WIDTH - N_LEFT - N_RIGHT
    ticks = _ticks(narrow)
    assert [v for v, _, _ in ticks] == list(axis(maximum))
    for value, x, _ in ticks:
        assert x == pytest.approx(N_LEFT + plot_w * value / top, abs=0.06)
    bar_w = float(re.search(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="[\d.]+" '
                            r'fill="#1d70b8"><title>', narrow).group(1))  # type: ignore[union-attr]
    assert N_LEFT + bar_w == pytest.approx(N_LEFT + plot_w * maximum / top, abs=0.06)


def test_the_issues_case_a_maximum_of_four() -> None:
    """The issue's example: a maximum of 4 gives gridlines 0, 1, 2, 3, 4 (not 0, 1, 2, 3, 5)."""
    assert axis(4) == (0, 1, 2, 3, 4)
    assert axis(0) == (0, 1)
