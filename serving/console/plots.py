"""Small server-side SVG charts (no JavaScript, no asset from anywhere): the pages embed them inline.

Every chart has a ``<title>``/``<desc>`` and a text legend, so it reads without colour; values are
also listed in the page's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

PALETTE = ("#1f6feb", "#d1242f", "#bf8700", "#6e40c9", "#1a7f37", "#57606a")


@dataclass(frozen=True)
class Series:
    label: str
    times: Sequence[datetime]
    colour: str


@dataclass(frozen=True)
class Marker:
    label: str
    at: datetime


def binned_counts(times: Sequence[datetime], start: datetime, bins: int, bin_days: int = 7) -> list[int]:
    """How many of ``times`` fall in each of ``bins`` consecutive ``bin_days``-day bins from ``start``."""
    counts = [0] * bins
    width = bin_days * 86400
    for t in times:
        i = int((t - start).total_seconds() // width)
        if 0 <= i < bins:
            counts[i] += 1
    return counts


def timeline_svg(
    series: Sequence[Series],
    markers: Sequence[Marker] = (),
    *,
    title: str = "Activity over time",
    width: int = 1000,
    height: int = 240,
    end: datetime | None = None,
    max_weeks: int = 104,
) -> str:
    """Counts of each series per week (per 2 or 4 weeks over long spans) as lines on a shared time
    axis, with dashed vertical lines for events such as the case's opening and decision."""
    all_times = [t for s in series for t in s.times] + [m.at for m in markers]
    if not all_times:
        return (
            f'<svg class="chart" role="img" viewBox="0 0 {width} 60" width="{width}" height="60">'
            f"<title>{escape(title)}</title>"
            '<text x="8" y="34" class="chart-empty">no orders, refunds, complaints or reviews</text></svg>'
        )
    last = end or max(all_times)
    first = max(min(all_times), last - timedelta(weeks=max_weeks))
    start = datetime(first.year, first.month, first.day) - timedelta(days=first.weekday())
    span_weeks = (last - start).total_seconds() / (7 * 86400)
    bin_days = 7 if span_weeks <= 40 else 14 if span_weeks <= 80 else 28
    bins = max(2, int((last - start).total_seconds() // (bin_days * 86400)) + 1)
    counts = [binned_counts(s.times, start, bins, bin_days) for s in series]
    # counts: a maximum that quarters into whole numbers
    peak = max((max(c) for c in counts if c), default=1)
    top = float(next((m for m in (4, 8, 12, 20, 40, 60, 100, 200, 400, 1000, 2000, 4000) if peak <= m), peak))
    left, right, top_pad, bottom = 44, 16, 30, 34
    pw, ph = width - left - right, height - top_pad - bottom
    per = "week" if bin_days == 7 else f"{bin_days // 7} weeks"

    def x(i: float) -> float:
        return left + pw * i / max(1, bins - 1)

    def y(v: float) -> float:
        return top_pad + ph * (1 - v / top)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="tl-title tl-desc">',
        f'<title id="tl-title">{escape(title)} (counts per {per})</title>',
        '<desc id="tl-desc">'
        + escape(
            "; ".join(f"{s.label}: {len(s.times)} in total" for s in series)
            + f"; counts per {per} from {start.date()} to {last.date()}"
        )
        + "</desc>",
    ]
    for k in range(5):
        v = top * k / 4
        yy = y(v)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="axis" text-anchor="end">{v:g}</text>')
    # month ticks, every ``step`` months so that labels stay about 60 px apart
    months = max(1.0, span_weeks * 7 / 30.4)
    step = next((k for k in (1, 2, 3, 6, 12) if pw / (months / k) >= 60), 12)
    seen: set[tuple[int, int]] = set()
    last_tick = -1e9
    for i in range(bins):
        d = start + timedelta(days=i * bin_days)
        key = (d.year, d.month)
        if key in seen or (d.year * 12 + d.month - 1) % step:
            continue
        seen.add(key)
        xx = x(i)
        if xx - last_tick < 56:
            continue
        last_tick = xx
        anchor = "end" if xx > left + pw - 28 else "start" if xx < left + 28 else "middle"
        parts.append(
            f'<text x="{xx:.1f}" y="{height - bottom + 16}" class="axis" text-anchor="{anchor}">'
            f"{d.strftime('%Y-%m')}</text>"
        )
    rows: list[list[tuple[float, float]]] = []  # label extents already used, per text row
    for m in markers:
        pos = (m.at - start).total_seconds() / (bin_days * 86400)
        if not 0 <= pos <= bins:
            continue
        xx = x(min(pos, bins - 1))
        text = f"{m.label} {m.at.strftime('%Y-%m-%d')}"
        w = 6.6 * len(text) + 4
        anchor, x0 = ("end", xx - 4 - w) if xx > left + pw - w - 4 else ("start", xx + 4)
        span = (x0, x0 + w)
        row = next((i for i, used in enumerate(rows) if all(span[1] < a or span[0] > b for a, b in used)), len(rows))
        if row == len(rows):
            rows.append([])
        rows[row].append(span)
        tx = xx - 4 if anchor == "end" else xx + 4
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top_pad}" y2="{top_pad + ph}" class="marker"/>')
        parts.append(
            f'<text x="{tx:.1f}" y="{top_pad + 12 + 13 * row}" class="marker-label" text-anchor="{anchor}">'
            f"{escape(text)}</text>"
        )
    for s, c in zip(series, counts, strict=True):
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(c))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{s.colour}" stroke-width="2"/>')
        for i, v in enumerate(c):
            if v:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{s.colour}"/>')
    lx = left
    for s in series:
        parts.append(f'<rect x="{lx}" y="8" width="14" height="4" fill="{s.colour}"/>')
        label = f"{s.label} ({len(s.times)})"
        parts.append(f'<text x="{lx + 18}" y="14" class="legend">{escape(label)}</text>')
        lx += 30 + 7 * len(label)
    parts.append(f'<text x="{left + pw}" y="14" class="axis" text-anchor="end">per {per}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _frame(
    title: str, width: int, height: int, top: float, left: int, pw: float, top_pad: int, ph: float, *, percent: bool
) -> list[str]:
    """The opening of a bar chart: the svg element, its title and five horizontal grid lines up to ``top``."""
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
    ]
    for k in range(5):
        v = top * k / 4
        yy = top_pad + ph * (1 - v / top)
        text = f"{v * 100:.0f}%" if percent else f"{v:g}"
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="axis" text-anchor="end">{text}</text>')
    return parts


def histogram_svg(
    edges: Sequence[float],
    groups: Sequence[tuple[str, Sequence[float], str]],
    *,
    title: str,
    width: int = 1000,
    height: int = 240,
) -> str:
    """Side-by-side bars of shares per bin (each group's shares sum to 1), e.g. reference vs now."""
    nb = len(edges) - 1
    if nb <= 0 or not groups:
        return ""
    peak = max(max(g[1]) for g in groups) * 100
    top = next((m for m in (4, 8, 12, 20, 40, 60, 80, 100) if peak <= m), 100) / 100
    left, right, top_pad, bottom = 44, 12, 28, 36
    pw, ph = width - left - right, height - top_pad - bottom
    bw = pw / nb
    parts = _frame(title, width, height, top, left, pw, top_pad, ph, percent=True)
    inner = bw * 0.8 / len(groups)
    for b in range(nb):
        for gi, (_label, shares, colour) in enumerate(groups):
            h = ph * shares[b] / top
            xx = left + b * bw + bw * 0.1 + gi * inner
            parts.append(
                f'<rect x="{xx:.1f}" y="{top_pad + ph - h:.1f}" width="{inner:.1f}" height="{h:.1f}" fill="{colour}"/>'
            )
        if nb <= 12 or b % 2 == 0:
            parts.append(
                f'<text x="{left + b * bw + bw / 2:.1f}" y="{height - bottom + 14}" class="axis" '
                f'text-anchor="middle">{edges[b]:.2g}–{edges[b + 1]:.2g}</text>'
            )
    lx = left
    for label, _shares, colour in groups:
        parts.append(f'<rect x="{lx}" y="6" width="12" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="15" class="legend">{escape(label)}</text>')
        lx += 30 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def _psi_top(values: Sequence[float]) -> float:
    peak = max([0.3, *values])
    return next((m for m in (0.3, 0.5, 1.0, 2.0, 5.0) if peak <= m), peak)


def trend_svg(
    dates: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    title: str,
    width: int = 1000,
    height: int = 260,
) -> str:
    """PSI per sweep date as lines (one per series), with the 0.1 and 0.25 reading lines dashed."""
    n = len(dates)
    if n == 0 or not series:
        return ""
    top = _psi_top([v for _l, vs, _c in series for v in vs])
    left, right, top_pad, bottom = 44, 16, 44, 34
    pw, ph = width - left - right, height - top_pad - bottom

    def x(i: int) -> float:
        return left + pw * i / max(1, n - 1)

    def y(v: float) -> float:
        return top_pad + ph * (1 - min(v, top) / top)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'aria-labelledby="tr-title tr-desc">',
        f'<title id="tr-title">{escape(title)}</title>',
        '<desc id="tr-desc">'
        + escape("; ".join(f"{label}: " + ", ".join(f"{v:.3f}" for v in vs) for label, vs, _c in series))
        + "</desc>",
    ]
    for k in range(5):
        v = top * k / 4
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" class="axis" text-anchor="end">{v:.2g}</text>')
    for level, name in ((0.1, "moderate"), (0.25, "major")):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(level):.1f}" y2="{y(level):.1f}" class="marker"/>')
        parts.append(f'<text x="{left + pw - 4}" y="{y(level) - 3:.1f}" class="axis" text-anchor="end">{name}</text>')
    for i, d in enumerate(dates):
        anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" class="axis" text-anchor="{anchor}">{d}</text>')
    for label, vs, colour in series:
        width_ = 3 if label == "score" else 1.5
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{width_}"/>')
    lx, ly = left, 12
    for label, vs, colour in series:
        text = f"{label} ({vs[-1]:.3f})" if vs else label
        if lx + 30 + 7 * len(text) > width:
            lx, ly = left, ly + 16
        parts.append(f'<rect x="{lx}" y="{ly - 6}" width="14" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 18}" y="{ly}" class="legend">{escape(text)}</text>')
        lx += 30 + 7 * len(text)
    parts.append("</svg>")
    return "".join(parts)


def sparkline_svg(values: Sequence[float], label: str, width: int = 120, height: int = 24) -> str:
    """A feature's PSI per sweep date as a small line (the 0.25 line dashed), for a table cell."""
    n = len(values)
    if n == 0:
        return ""
    top = _psi_top(values)

    def x(i: int) -> float:
        return 2 + (width - 4) * i / max(1, n - 1)

    def y(v: float) -> float:
        return 2 + (height - 4) * (1 - min(v, top) / top)

    pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    desc = escape(f"PSI of {label} per sweep date: " + ", ".join(f"{v:.3f}" for v in values))
    return (
        f'<svg class="spark" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f"<title>{desc}</title>"
        f'<line x1="0" x2="{width}" y1="{y(0.25):.1f}" y2="{y(0.25):.1f}" class="marker"/>'
        f'<polyline points="{pts}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/></svg>'
    )


def bars_svg(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    colour: str = PALETTE[0],
    percent: bool = False,
    width: int = 1000,
    height: int = 220,
) -> str:
    """One bar per label (counts, or shares 0–1 with ``percent``), e.g. decisions per day."""
    if not labels:
        return ""
    peak = max(max(values), 1e-9)
    top = 1.0 if percent else float(next((m for m in (5, 10, 20, 50, 100, 200, 500, 1000) if peak <= m), peak))
    left, right, top_pad, bottom = 44, 12, 16, 36
    pw, ph = width - left - right, height - top_pad - bottom
    bw = pw / len(labels)
    parts = _frame(title, width, height, top, left, pw, top_pad, ph, percent=percent)
    step = max(1, len(labels) // 10)
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        h = ph * min(v, top) / top
        xx = left + i * bw + bw * 0.15
        parts.append(
            f'<rect x="{xx:.1f}" y="{top_pad + ph - h:.1f}" width="{bw * 0.7:.1f}" height="{h:.1f}" fill="{colour}"/>'
        )
        if i % step == 0:
            parts.append(
                f'<text x="{left + i * bw + bw / 2:.1f}" y="{height - bottom + 14}" class="axis" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
