"""Plots as inline SVG strings, drawn here so that the HTML report needs no plotting library.

Every label passes through ``html.escape``: metric names and tags come from user files.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from evaltune.reports.records import MetricComparison, TagBreakdown

GOOD, BAD, NEUTRAL = "#1a7f37", "#cf222e", "#57606a"
BASE_COLOUR, CAND_COLOUR = "#8c959f", "#0969da"


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" class="plot" '
            f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 12, fill: str = "#24292f") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}">'
            f"{escape(text)}</text>")


def _finite(*values: float) -> bool:
    return all(not math.isnan(v) and not math.isinf(v) for v in values)


def delta_plot(metrics: list[MetricComparison]) -> str:
    """Each metric's paired delta as a dot with its 95% CI bar; green better, red worse."""
    rows = [m for m in metrics if _finite(m.delta, m.delta_ci_low, m.delta_ci_high)]
    left, width, row_h = 220, 420, 24
    height = 40 + row_h * max(len(rows), 1)
    span = max([abs(v) for m in rows for v in (m.delta_ci_low, m.delta_ci_high)] + [1e-9]) * 1.1

    def x(value: float) -> float:
        return left + width / 2 + value / span * width / 2

    body = [f'<line x1="{x(0):.1f}" y1="10" x2="{x(0):.1f}" y2="{height - 20}" stroke="#d0d7de"/>',
            _text(x(-span), height - 5, f"{-span:+.3f}", "start", 10),
            _text(x(span), height - 5, f"{span:+.3f}", "end", 10), _text(x(0), height - 5, "0", "middle", 10)]
    for i, m in enumerate(rows):
        y = 25 + i * row_h
        colour = {"better": GOOD, "worse": BAD}.get(m.verdict, NEUTRAL)
        body += [_text(left - 8, y + 4, m.name, "end"),
                 f'<line x1="{x(m.delta_ci_low):.1f}" y1="{y}" x2="{x(m.delta_ci_high):.1f}" y2="{y}" '
                 f'stroke="{colour}" stroke-width="2"/>',
                 f'<circle cx="{x(m.delta):.1f}" cy="{y}" r="4" fill="{colour}"><title>'
                 f"{escape(m.name)}: {m.delta:+.4f} [{m.delta_ci_low:+.4f}, {m.delta_ci_high:+.4f}]</title></circle>"]
    return _svg(left + width + 20, height, body, "paired deltas with 95% intervals")


def tag_heatmap(tags: list[TagBreakdown], direction: dict[str, bool]) -> str:
    """Tags × metrics, each cell the delta; green where the candidate is better, red where worse."""
    tag_names = sorted({t.tag for t in tags})
    metric_names = sorted({t.metric for t in tags})
    cells = {(t.tag, t.metric): t for t in tags}
    left, top, cell_w, cell_h = 160, 30, 90, 26
    scale = max([abs(t.delta) for t in tags] + [1e-9])
    body = [_text(left + j * cell_w + cell_w / 2, top - 8, name[:14], "middle", 11)
            for j, name in enumerate(metric_names)]
    for i, tag in enumerate(tag_names):
        y = top + i * cell_h
        body.append(_text(left - 6, y + cell_h / 2 + 4, tag, "end", 11))
        for j, metric in enumerate(metric_names):
            cell = cells.get((tag, metric))
            fill, label = "#f6f8fa", ""
            if cell is not None:
                good = (cell.delta > 0) == direction.get(metric, True)
                alpha = min(1.0, abs(cell.delta) / scale) * 0.8 + 0.05
                fill = f"rgba({'26,127,55' if good else '207,34,46'},{alpha:.2f})" if cell.delta else "#f6f8fa"
                label = f"{cell.delta:+.2f}"
            body.append(f'<rect x="{left + j * cell_w}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                        f'fill="{fill}"/>')
            body.append(_text(left + j * cell_w + cell_w / 2, y + cell_h / 2 + 4, label, "middle", 11))
    height = top + cell_h * max(len(tag_names), 1) + 10
    return _svg(left + cell_w * max(len(metric_names), 1) + 10, height, body, "per-tag delta heatmap")


def distribution_plot(name: str, baseline: list[float], candidate: list[float], bins: int = 10) -> str:
    """Histograms of one metric's per-item values in both runs (grey baseline, blue candidate)."""
    b_values, c_values = _finite_array(baseline), _finite_array(candidate)
    values = np.concatenate([b_values, c_values])
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    high = high if high > low else low + 1.0
    width, height, pad = 300, 150, 25

    def counts(data: np.ndarray) -> list[int]:
        # Whole arrays at once: a report of two 50,000-item runs draws 100,000 values per plot.
        slots = np.minimum(bins - 1, ((data - low) / (high - low) * bins).astype(np.int64))
        return [int(c) for c in np.bincount(slots, minlength=bins)]

    b_counts, c_counts = counts(b_values), counts(c_values)
    peak = max([*b_counts, *c_counts, 1])
    bar_w = (width - 2 * pad) / bins / 2
    body = [_text(width / 2, 14, name, "middle", 12)]
    for k in range(bins):
        for offset, count, colour in ((0, b_counts[k], BASE_COLOUR), (1, c_counts[k], CAND_COLOUR)):
            h = (height - 2 * pad) * count / peak
            body.append(f'<rect x="{pad + (2 * k + offset) * bar_w:.1f}" y="{height - pad - h:.1f}" '
                        f'width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{colour}"><title>{count}</title></rect>')
    body += [_text(pad, height - 8, f"{low:.2g}", "start", 10),
             _text(width - pad, height - 8, f"{high:.2g}", "end", 10)]
    return _svg(width, height, body, f"distribution of {name}")


def _finite_array(values: list[float]) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    return data[np.isfinite(data)]
