"""Inline SVG plots for the status page, rendered on the server.

Pure functions from plain data to an ``<svg>`` string: no script, no external font,
stylesheet or image (the page's Content-Security-Policy allows none), readable without
JavaScript; every point carries a ``<title>`` (the browser's tooltip) and ``data-``
attributes (tests, scrapers). Every text is XML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

#: colour-blind-friendly palette (Okabe-Ito), one colour per series in order
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
RESULT_COLOURS = {
    "ok": "#3a9a3a",
    "partial": "#e0a800",
    "failed": "#c62828",
    "dry-run": "#9e9e9e",
    "unknown": "#9e9e9e",
}
FONT = 'font-family="sans-serif" font-size="11"'

W, H = 640, 220
MAX_MARKERS = 60  # over_time: points with a marker and tooltip up to this many per series
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 14, 28


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp  # pragma: no cover


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _frame(title: str, y_max: float, unit: str, x_ticks: Sequence[tuple[float, str]]) -> list[str]:
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" width="{W}" '
        f'height="{H}" viewBox="0 0 {W} {H}" {FONT}>',
        f"<title>{_e(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/>',
    ]
    for i in range(5):
        v = y_max * i / 4
        y = TOP + ph - ph * i / 4
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#e4e4e4"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_e(_fmt(v))}</text>'
        )
    out.append(
        f'<text x="12" y="{TOP + ph / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + ph / 2:.1f})">{_e(unit)}</text>'
    )
    for x, label in x_ticks:
        out.append(
            f'<text x="{x:.1f}" y="{H - 10}" text-anchor="middle">{_e(label)}</text>'
            f'<line x1="{x:.1f}" y1="{TOP + ph}" x2="{x:.1f}" y2="{TOP + ph + 4}" stroke="#999"/>'
        )
    return out


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names[:12]):
        y = TOP + 10 + i * 16
        colour = PALETTE[i % len(PALETTE)]
        label = name if len(name) <= 22 else name[:21] + "\u2026"
        out.append(
            f'<rect x="{W - RIGHT + 10}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{W - RIGHT + 24}" y="{y + 1}">{_e(label)}</text>'
        )
    if len(names) > 12:
        out.append(f'<text x="{W - RIGHT + 10}" y="{TOP + 10 + 12 * 16}">+{len(names) - 12}</text>')
    return out


def empty(title: str, text: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot empty" role="img" width="{W}" '
        f'height="40" viewBox="0 0 {W} 40" {FONT}><title>{_e(title)}</title>'
        f'<text x="{LEFT}" y="24" fill="#666">{_e(text)}</text></svg>'
    )


def per_day(
    title: str, days: Sequence[str], values: Mapping[str, Mapping[str, float]], unit: str
) -> str:
    """One line per series (e.g. VO) with one point per day (0 when nothing that day).

    ``values``: ``{day: {series: value}}``; ``days``: ISO dates, oldest first.
    """
    names = sorted({s for d in values.values() for s in d})
    if not names or not days:
        return empty(title, "nothing yet")
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    y_max = _nice_max(max((v for d in values.values() for v in d.values()), default=0))
    step = pw / max(1, len(days) - 1) if len(days) > 1 else 0
    xs = [LEFT + (i * step if len(days) > 1 else pw / 2) for i in range(len(days))]
    out = _frame(title, y_max, unit, [(x, d[5:]) for x, d in zip(xs, days, strict=True)])
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        pts = []
        for x, day in zip(xs, days, strict=True):
            v = float(values.get(day, {}).get(name, 0))
            pts.append((x, TOP + ph - ph * v / y_max, day, v))
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y, _d, _v in pts)
            + '"/>'
        )
        for x, y, day, v in pts:
            out.append(
                f'<circle class="point" data-series="{_e(name)}" data-x="{_e(day)}" '
                f'data-value="{v:g}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{_e(name)} {_e(day)}: {v:g} {_e(unit)}</title></circle>"
            )
    return "\n".join([*out, *_legend(names), "</svg>"])


def over_time(
    title: str,
    series: Mapping[str, Sequence[Sequence[Any]]],
    unit: str,
    *,
    start: datetime,
    end: datetime,
) -> str:
    """One line per series of ``[iso_time, value]`` points between ``start`` and ``end``."""
    names = [n for n in sorted(series) if series[n]]
    if not names:
        return empty(title, "nothing yet")
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    span = max(1.0, (end - start).total_seconds())
    y_max = _nice_max(max(float(v) for n in names for _t, v in series[n]))
    ticks = []
    day = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=1)
    while day <= end:
        ticks.append((LEFT + pw * (day - start).total_seconds() / span, day.strftime("%m-%d")))
        day += timedelta(days=1)
    out = _frame(title, y_max, unit, ticks)
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        pts = []
        for when, v in series[name]:
            try:
                t = datetime.fromisoformat(str(when))
            except ValueError:
                continue
            t = t if t.tzinfo else t.replace(tzinfo=UTC)
            if not start <= t <= end:
                continue
            x = LEFT + pw * (t - start).total_seconds() / span
            pts.append((x, TOP + ph - ph * float(v) / y_max, str(when), float(v)))
        if len(pts) > 1:
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y, _w, _v in pts)
                + '"/>'
            )
        if len(pts) > MAX_MARKERS:  # a line only: the page stays light (runs every few minutes)
            continue
        for x, y, when, v in pts:
            out.append(
                f'<circle class="point" data-series="{_e(name)}" data-x="{_e(when)}" '
                f'data-value="{v:g}" cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{colour}">'
                f"<title>{_e(name)} {_e(when)}: {v:g} {_e(unit)}</title></circle>"
            )
    return "\n".join([*out, *_legend(names), "</svg>"])


def result_strip(runs: Sequence[Mapping[str, Any]], *, slots: int = 24) -> str:
    """The last runs of a job as coloured squares, oldest left; hover: time and error."""
    size, gap = 12, 2
    width = slots * (size + gap)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="strip" role="img" width="{width}" '
        f'height="{size}" viewBox="0 0 {width} {size}">'
    ]
    shown = list(runs)[-slots:]
    offset = slots - len(shown)
    for i, r in enumerate(shown):
        status = str(r.get("status", "unknown"))
        colour = RESULT_COLOURS.get(status, RESULT_COLOURS["unknown"])
        tip = f"{r.get('finished', '?')}: {status}"
        if isinstance(r.get("duration"), int | float):
            tip += f" in {r['duration']:.1f}s"
        why = r.get("error") or r.get("nothing_accepted")
        if why:
            tip += f" \u2014 {why}"
        out.append(
            f'<rect class="run" data-status="{_e(status)}" x="{(offset + i) * (size + gap)}" '
            f'y="0" width="{size}" height="{size}" fill="{colour}"><title>{_e(tip)}</title></rect>'
        )
    for i in range(offset):
        out.append(
            f'<rect x="{i * (size + gap)}" y="0" width="{size}" height="{size}" fill="none" '
            'stroke="#ddd"/>'
        )
    out.append("</svg>")
    return "".join(out)
