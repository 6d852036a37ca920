"""The admin page's SVG charts: well-formed and escaped whatever the labels, one line per series
split at holes, sensible axes, and the tick labels' human units."""

import math
import xml.etree.ElementTree as ET

import pytest

from labhub.charts import format_value, line_chart

SVG = "{http://www.w3.org/2000/svg}"
START = 1_700_000_000  # 22:13:20 UTC
END = START + 3600


def minutes(values, first=START):
    return [(first + 60 * i, v) for i, v in enumerate(values)]


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def polylines(svg: str) -> list[ET.Element]:
    return [p for p in parsed(svg).iter(f"{SVG}polyline") if p.get("class") == "series"]


def y_ticks(svg: str) -> list[float]:
    axis = next(g for g in parsed(svg).iter(f"{SVG}g") if g.get("class") == "y-axis")
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}
    return [float(t.text[:-1]) * scale[t.text[-1]] if t.text[-1] in scale else float(t.text)
            for t in axis.iter(f"{SVG}text")]


def test_hostile_label_and_title_are_escaped():
    hostile = 'x"><script>alert(1)</script>'
    svg = line_chart(hostile, [(hostile, minutes([1, 2, 3])), ("nul\x00\x1bbyte", minutes([4]))], "", START, END)
    assert "<script" not in svg
    root = parsed(svg)
    assert root.get("aria-label") == hostile
    assert root.get("role") == "img" and root.get("class") == "labhub-chart"
    assert root.get("viewBox") == "0 0 560 220"
    assert root.find(f"{SVG}title").text == hostile
    assert hostile in [t.text for t in root.iter(f"{SVG}title")][1:]  # the legend's full label


def test_one_polyline_per_series_with_points_each_its_own_colour():
    series = [("ann", minutes([1, 2, 3])), ("bob", minutes([3, 2, 1])), ("cy", []), ("dee", minutes([5]))]
    lines = polylines(line_chart("CPU", series, "percent", START, END))
    assert len(lines) == 3
    assert len({p.get("stroke") for p in lines}) == 3
    for p in lines:
        for pair in p.get("points").split():
            assert all(len(c.split(".")[1]) == 1 for c in pair.split(","))


def test_gap_splits_the_line():
    points = minutes(range(10)) + minutes(range(10), first=START + 1800)
    lines = polylines(line_chart("Memory", [("ann", points)], "bytes", START, END))
    assert len(lines) == 2
    assert lines[0].get("stroke") == lines[1].get("stroke")
    assert [len(p.get("points").split()) for p in lines] == [10, 10]


def test_no_points_says_no_data():
    for series in ([], [("ann", [])], [("ann", [(START, math.nan), (START + 60, math.inf)])]):
        svg = line_chart("Disk", series, "bytes", START, END)
        root = parsed(svg)
        assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "no-data"] == ["no data"]
        assert polylines(svg) == []
        assert root.find(f"{SVG}rect[@class='frame']") is not None


def test_non_finite_values_are_dropped():
    points = minutes([1, math.nan, 3, -math.inf, 5])
    (line,) = polylines(line_chart("Load", [("ann", points)], "", START, END))
    assert len(line.get("points").split()) == 3
    assert "no-data" not in line_chart("Load", [("ann", points)], "", START, END)


@pytest.mark.parametrize("top", [0.003, 0.7, 1, 9.99, 10, 42, 87.3, 100, 101, 333, 999, 1024, 5e5, 123456, 7.7e9])
def test_y_ticks_are_three_to_five_and_cover_the_values(top):
    ticks = y_ticks(line_chart("Load", [("ann", minutes([0, top / 3, top]))], "", START, END))
    assert 3 <= len(ticks) <= 5
    assert ticks[0] == 0 and ticks[-1] >= top and ticks == sorted(ticks)


def test_y_axis_goes_below_zero_for_negative_values():
    ticks = y_ticks(line_chart("Delta", [("ann", minutes([-30, 10, 55]))], "", START, END))
    assert 3 <= len(ticks) <= 5 and ticks[0] <= -30 and ticks[-1] >= 55 and 0 in ticks


def y_labels(svg: str) -> list[str]:
    axis = next(g for g in parsed(svg).iter(f"{SVG}g") if g.get("class") == "y-axis")
    return [t.text for t in axis.iter(f"{SVG}text")]


def test_y_ticks_are_round_in_the_unit_shown():
    assert y_labels(line_chart("Memory", [("ann", minutes([0, 70 * 2**20]))], "bytes", START, END)) == \
        ["0 B", "25 MiB", "50 MiB", "75 MiB"]
    assert y_labels(line_chart("Wait", [("ann", minutes([0, 50 * 60]))], "seconds", START, END)) == \
        ["0 s", "20 min", "40 min", "1 h"]
    assert y_labels(line_chart("Busy", [("ann", minutes([0, 0.42]))], "ratio", START, END)) == \
        ["0 %", "20 %", "40 %", "60 %"]


def test_x_ticks_are_utc_clock_times():
    root = parsed(line_chart("CPU", [("ann", minutes([1, 2]))], "", START, END))
    axis = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "x-axis")
    assert [t.text for t in axis.iter(f"{SVG}text")] == ["22:15", "22:30", "22:45", "23:00"]


def test_legend_shows_eight_series_and_counts_the_rest():
    series = [(f"user{i}", minutes([i, i + 1])) for i in range(10)]
    svg = line_chart("CPU", series, "percent", START, END)
    assert len(polylines(svg)) == 10
    legend = next(g for g in parsed(svg).iter(f"{SVG}g") if g.get("class") == "legend")
    texts = [t.text for t in legend.iter(f"{SVG}text")]
    assert texts == [f"user{i}" for i in range(8)] + ["+2 more"]
    assert len(legend.findall(f".//{SVG}rect")) == 8


@pytest.mark.parametrize("value, unit, text", [
    (0, "bytes", "0 B"), (512, "bytes", "512 B"), (1536, "bytes", "1.5 KiB"), (20 * 2**20, "bytes", "20 MiB"),
    (3.2 * 2**30, "bytes", "3.2 GiB"),
    (0.85, "seconds", "850 ms"), (2.5, "seconds", "2.5 s"), (180, "seconds", "3 min"), (7200, "seconds", "2 h"),
    (0, "seconds", "0 s"),
    (42, "percent", "42 %"), (0.42, "ratio", "42 %"), (1, "ratio", "100 %"),
    (1500, "", "1.5k"), (12345, "", "12.3k"), (2e6, "requests", "2M"), (0.25, "", "0.25"), (3.14159, "", "3.14"),
    (-1500, "", "-1.5k"), (0, "", "0"),
])
def test_format_value(value, unit, text):
    assert format_value(value, unit) == text
