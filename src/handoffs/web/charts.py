"""Bar charts for the team page, laid out on the server and drawn by a Jinja macro as SVG.

No chart library and no script: the geometry is computed here (pure), the template writes
``<rect>`` and ``<text>`` elements, and a table beside each chart carries the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from handoffs.domain.notifications.titles import duration

Unit = Literal["duration", "count"]

WIDTH = 640
HEIGHT = 220
LEFT = 56  # room for the y axis' labels
RIGHT = 8
TOP = 14
BOTTOM = 34  # room for the x axis' labels
#: Candidate tops of the duration axis, in seconds: a bar's height reads against a round time.
#: Each halves to a time that reads exactly (the middle grid line): 2 min, 5 min, 30 min, 12 h.
_DURATION_STEPS = (60, 120, 240, 600, 1200, 1800, 3600, 7200, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 4 * 86400)


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    """The x axis' text for this bar ("" when skipped so that labels do not overlap)."""
    name: str
    """The bar's category in full (a day, a priority), for its tooltip."""
    value: float | None
    text: str
    """The value as a person reads it: ``3 min``, ``12``, ``no data``."""


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    baseline: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    empty: bool
    """No bar has a value: the template says so instead of drawing an empty frame."""


def format_value(value: float | None, unit: Unit) -> str:
    if value is None:
        return "no data"
    return duration(value) if unit == "duration" else f"{value:g}"


def nice_top(largest: float, unit: Unit) -> float:
    """The axis' top: a round number at or above the largest value (never 0)."""
    if unit == "duration":
        for step in _DURATION_STEPS:
            if largest <= step:
                return float(step)
        return float(math.ceil(largest / (2 * 86400)) * 2 * 86400)
    if largest <= 4:
        return 4.0
    magnitude = 10 ** math.floor(math.log10(largest))
    for factor in (1, 2, 4, 6, 8, 10):  # even tops: the middle line is a whole count
        if largest <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop ends at 10x


def bar_chart(points: Sequence[tuple[str, float | None]], *, unit: Unit) -> Chart:
    """One bar per point (``None``: no bar, a gap that the table explains as "no data")."""
    values = [v for _, v in points if v is not None]
    top = nice_top(max(values, default=0.0), unit)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = float(TOP + plot_height)
    slot = plot_width / max(1, len(points))
    bar_width = slot * 0.7
    every = max(1, math.ceil(len(points) / 10))  # at most about ten x labels
    bars = []
    for i, (name, value) in enumerate(points):
        # A value of 0 (picked up at once) still shows, as a sliver, unlike a day with no data.
        height = 0.0 if value is None else max(1.5, plot_height * (value / top))
        bars.append(
            Bar(
                x=round(LEFT + i * slot + (slot - bar_width) / 2, 2),
                y=round(baseline - height, 2),
                width=round(bar_width, 2),
                height=round(height, 2),
                label=name if i % every == 0 else "",
                name=name,
                value=value,
                text=format_value(value, unit),
            )
        )
    ticks = tuple(
        Tick(y=round(baseline - plot_height * f, 2), text=format_value(top * f, unit)) for f in (0, 0.5, 1)
    )
    return Chart(WIDTH, HEIGHT, LEFT, baseline, tuple(bars), ticks, empty=not values)
