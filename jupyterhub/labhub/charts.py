"""Line charts for the admin monitoring page, drawn on the server as inline SVG strings: no
JavaScript, standard library only. Every text taken from the caller is escaped, since series
labels are user names and users choose them."""

import html
import math
import re
import statistics
from datetime import datetime, timezone

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")
LEGEND_MAX = 8
LEGEND_COLUMNS = 4
# Steps that read well on a clock, in minutes, close enough together that one always gives 3-5 ticks.
TIME_STEPS = [m * 60 for m in (1, 2, 3, 5, 10, 15, 20, 30, 60, 90, 120, 180, 240, 360, 480, 720,
                               1440, 2 * 1440, 3 * 1440, 5 * 1440, 7 * 1440, 14 * 1440, 28 * 1440)]
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
# XML 1.0 forbids these even escaped: one in a label would make the whole SVG unparsable.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(s: str) -> str:
    return html.escape(NOT_XML.sub("", s), quote=True)


def _num(value: float) -> str:
    """At most 3 significant digits, no trailing zeros."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{round(value, 2 - math.floor(math.log10(abs(value)))):g}"


def _unit(value: float, unit: str) -> tuple[float, str]:
    """The size of the unit format_value shows value in (1024 for KiB, 60 for min...) and its suffix."""
    if unit in ("ratio", "percent"):
        return (0.01 if unit == "ratio" else 1), " %"
    if unit == "bytes":
        sizes = [(1024 ** power, f" {name}") for power, name in enumerate(BYTE_UNITS)]
    elif unit == "seconds":
        sizes = [(0.001, " ms"), (1, " s"), (60, " min"), (3600, " h"), (86400, " d")]
    else:
        sizes = [(1, ""), (1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")]
    return next((size for size in reversed(sizes) if abs(value) >= size[0]), sizes[0])


def format_value(value: float, unit: str) -> str:
    """Human form of a value for axis ticks: unit "bytes" -> 512 B, 1.5 KiB, 20 MiB, 3.2 GiB;
    "seconds" -> 850 ms, 2.5 s, 3 min, 2 h; "percent" -> 42 % (values given as 0..100); "ratio" ->
    value*100 as percent, e.g. 0.42 -> 42 %; "" or other -> a plain number with at most 3
    significant digits (1.5k for 1500)."""
    if value == 0 and unit == "seconds":
        return "0 s"  # rather than "0 ms" at the foot of an axis in minutes
    size, suffix = _unit(value, unit)
    return f"{_num(value / size)}{suffix}"


def _closest_to_four(options: list[list]) -> list:
    # Of the candidate tick lists (finest step first), the one nearest 4 ticks: 3-5 whenever
    # the steps allow, and on a tie between 3 and 5 the finer one.
    return min(options, key=lambda ticks: abs(len(ticks) - 4))


def _value_ticks(lo: float, hi: float) -> list[float]:
    """Round values (1, 2, 2.5 or 5 times a power of ten apart) from lo rounded down to hi rounded up."""
    if hi <= lo:
        hi = lo + 1  # all values 0: a flat line still needs a scale
    base = 10 ** math.floor(math.log10(hi - lo)) / 10
    steps = [m * base for m in (1, 2, 2.5, 5, 10, 20, 25, 50)]
    return _closest_to_four([[k * s for k in range(math.floor(lo / s), math.ceil(hi / s) + 1)] for s in steps])


def _time_ticks(start: float, end: float) -> list[int]:
    return _closest_to_four([list(range(math.ceil(start / s) * s, math.floor(end) + 1, s)) for s in TIME_STEPS])


def _segments(points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """The points cut where the series has a hole (a stopped server, a missed sample), so that no
    line claims values nobody measured."""
    steps = [b[0] - a[0] for a, b in zip(points, points[1:])]
    limit = 3 * statistics.median(steps) if steps else 0
    segments = []
    for i, point in enumerate(points):
        if not segments or (limit and steps[i - 1] > limit):
            segments.append([])
        segments[-1].append(point)
    return segments


def line_chart(title: str, series: list[tuple[str, list[tuple[float, float]]]], unit: str, start: float,
               end: float, width: int = 560, height: int = 220) -> str:
    """An inline <svg> (a string) plotting each series (label, [(unix_time, value), ...]) as a
    polyline over [start, end]. Points outside the window or not finite are left out."""
    lines = [(label, sorted((t, v) for t, v in points if math.isfinite(t) and math.isfinite(v) and start <= t <= end))
             for label, points in series]
    values = [v for _, points in lines for _, v in points]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    # Round steps in the unit the labels show (256 MiB, 15 min), not in bytes or seconds.
    size = _unit(max(hi, -lo), unit)[0]
    y_ticks = [tick * size for tick in _value_ticks(lo / size, hi / size)]
    legend = [label for label, _ in lines[:LEGEND_MAX]]
    more = len(lines) - len(legend)
    rows = math.ceil((len(legend) + bool(more)) / LEGEND_COLUMNS)
    left, top, pw = 56, 26, width - 56 - 12
    ph = height - top - 24 - 16 * rows

    def x(t: float) -> float:
        return left + (t - start) / ((end - start) or 1) * pw

    def y(v: float) -> float:
        return top + (y_ticks[-1] - v) / (y_ticks[-1] - y_ticks[0]) * ph

    name = _text(title)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="labhub-chart" role="img" aria-label="{name}" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'font-family="system-ui, sans-serif" font-size="11" fill="#444">',
           f"<title>{name}</title>", f'<text class="chart-title" x="{left}" y="16" font-weight="600">{name}</text>',
           '<g class="y-axis">']
    for v in y_ticks:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e6e6e6"/>'
                   f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{format_value(v, unit)}</text>')
    # Dates once ticks fall only on midnights (a week's window), where HH:MM would read 00:00 throughout.
    ticks = _time_ticks(start, end)
    clock = "%m-%d" if all(t % 86400 == 0 for t in ticks) else "%H:%M"
    out.append('</g><g class="x-axis">')
    for t in ticks:
        when = datetime.fromtimestamp(t, timezone.utc).strftime(clock)
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#999"/>'
                   f'<text x="{x(t):.1f}" y="{top + ph + 15}" text-anchor="middle">{when}</text>')
    out.append(f'</g><rect class="frame" x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    if not values:
        out.append(f'<text class="no-data" x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" text-anchor="middle">no data</text>')
    out.append('<g fill="none" stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round">')
    for i, (_, points) in enumerate(lines):
        for segment in _segments(points):
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in segment)
            # A lone point would draw nothing; doubled, its round caps make a dot.
            coords = coords if len(segment) > 1 else f"{coords} {coords}"
            out.append(f'<polyline class="series" stroke="{PALETTE[i % len(PALETTE)]}" points="{coords}"/>')
    out.append('</g><g class="legend">')
    cell = pw / LEGEND_COLUMNS
    fits = int((cell - 20) / 6)  # characters at 11px that fit a cell; the full label shows on hover
    for i, label in enumerate([*legend, f"+{more} more"] if more else legend):
        cx, cy = left + i % LEGEND_COLUMNS * cell, top + ph + 24 + i // LEGEND_COLUMNS * 16
        short = label if len(label) <= fits else label[:fits - 1] + "…"
        swatch = f'<rect x="{cx:.1f}" y="{cy + 1}" width="10" height="10" fill="{PALETTE[i]}"/>' if i < len(legend) else ""
        out.append(f'<g><title>{_text(label)}</title>{swatch}'
                   f'<text x="{cx + (14 if swatch else 0):.1f}" y="{cy + 10}">{_text(short)}</text></g>')
    out.append("</g></svg>")
    return "".join(out)
