"""The team page's bar charts, laid out on the server (no browser)."""

from __future__ import annotations

from handoffs.web.charts import BOTTOM, HEIGHT, TOP, bar_chart, nice_top


def test_duration_axes_end_on_a_round_time_whose_half_reads_exactly() -> None:
    assert nice_top(150, "duration") == 240  # 4 min, the middle line 2 min
    assert nice_top(400, "duration") == 600
    assert nice_top(0, "duration") == 60
    assert nice_top(5, "count") == 6  # the middle line 3, not 2.5
    assert nice_top(45, "count") == 60
    assert nice_top(3, "count") == 4


def test_bars_scale_to_the_axis_and_no_data_is_no_bar() -> None:
    chart = bar_chart([("Mon", 120.0), ("Tue", None), ("Wed", 0.0), ("Thu", 240.0)], unit="duration")
    plot = HEIGHT - TOP - BOTTOM
    mon, tue, wed, thu = chart.bars
    assert thu.height == plot
    assert mon.height == plot / 2
    assert (tue.height, tue.text) == (0, "no data")
    assert 0 < wed.height < 2  # a median of 0 s still shows, as a sliver
    assert [t.text for t in chart.ticks] == ["0 s", "2 min", "4 min"]
    assert not chart.empty
    assert bar_chart([("Mon", None)], unit="duration").empty


def test_at_most_about_ten_x_labels() -> None:
    chart = bar_chart([(f"d{i}", float(i)) for i in range(30)], unit="count")
    labelled = [b.label for b in chart.bars if b.label]
    assert len(labelled) == 10
    assert all(b.name for b in chart.bars)  # every bar keeps its name for its tooltip
