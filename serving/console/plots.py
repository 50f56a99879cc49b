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


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000):
        if v <= step:
            return float(step)
    return float(v)


def weekly_counts(times: Sequence[datetime], start: datetime, weeks: int) -> list[int]:
    counts = [0] * weeks
    for t in times:
        i = int((t - start).total_seconds() // (7 * 86400))
        if 0 <= i < weeks:
            counts[i] += 1
    return counts


def timeline_svg(
    series: Sequence[Series],
    markers: Sequence[Marker] = (),
    *,
    title: str = "Activity per week",
    width: int = 880,
    height: int = 240,
    end: datetime | None = None,
    max_weeks: int = 104,
) -> str:
    """Weekly counts of each series as lines over a shared time axis, with vertical event markers."""
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
    weeks = max(2, int((last - start).total_seconds() // (7 * 86400)) + 1)
    counts = [weekly_counts(s.times, start, weeks) for s in series]
    top = _nice_max(float(max((max(c) for c in counts if c), default=1)))
    left, right, top_pad, bottom = 44, 12, 28, 34
    pw, ph = width - left - right, height - top_pad - bottom

    def x(i: float) -> float:
        return left + pw * i / max(1, weeks - 1)

    def y(v: float) -> float:
        return top_pad + ph * (1 - v / top)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="tl-title tl-desc">',
        f'<title id="tl-title">{escape(title)}</title>',
        '<desc id="tl-desc">'
        + escape(
            "; ".join(f"{s.label}: {len(s.times)} in total" for s in series)
            + f"; weekly counts from {start.date()} to {last.date()}"
        )
        + "</desc>",
    ]
    for k in range(5):
        v = top * k / 4
        yy = y(v)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="axis" text-anchor="end">{v:g}</text>')
    # month ticks
    seen: set[tuple[int, int]] = set()
    for i in range(weeks):
        d = start + timedelta(weeks=i)
        key = (d.year, d.month)
        if key in seen:
            continue
        seen.add(key)
        if len(seen) % max(1, weeks // 52 + 1) and weeks > 60:
            continue
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 16}" class="axis" text-anchor="middle">'
            f"{d.strftime('%y-%m')}</text>"
        )
    for m in markers:
        pos = (m.at - start).total_seconds() / (7 * 86400)
        if 0 <= pos <= weeks:
            xx = x(min(pos, weeks - 1))
            parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top_pad}" y2="{top_pad + ph}" class="marker"/>')
            parts.append(f'<text x="{xx + 3:.1f}" y="{top_pad + 10}" class="marker-label">{escape(m.label)}</text>')
    for s, c in zip(series, counts, strict=True):
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(c))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{s.colour}" stroke-width="2"/>')
    lx = left
    for s in series:
        parts.append(f'<rect x="{lx}" y="8" width="12" height="4" fill="{s.colour}"/>')
        label = f"{s.label} ({len(s.times)})"
        parts.append(f'<text x="{lx + 16}" y="14" class="legend">{escape(label)}</text>')
        lx += 24 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(
    edges: Sequence[float],
    groups: Sequence[tuple[str, Sequence[float], str]],
    *,
    title: str,
    width: int = 560,
    height: int = 220,
) -> str:
    """Side-by-side bars of shares per bin (each group's shares sum to 1), e.g. reference vs now."""
    nb = len(edges) - 1
    if nb <= 0 or not groups:
        return ""
    top = _nice_max(max(max(g[1]) for g in groups) * 100) / 100
    left, right, top_pad, bottom = 44, 12, 28, 36
    pw, ph = width - left - right, height - top_pad - bottom
    bw = pw / nb
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
    ]
    for k in range(5):
        v = top * k / 4
        yy = top_pad + ph * (1 - v / top)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="axis" text-anchor="end">{v * 100:.0f}%</text>')
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
                f'text-anchor="middle">{edges[b]:.2g}</text>'
            )
    lx = left
    for label, _shares, colour in groups:
        parts.append(f'<rect x="{lx}" y="6" width="12" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="15" class="legend">{escape(label)}</text>')
        lx += 30 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)
