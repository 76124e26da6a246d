"""Plot a run's progress measures as the paper's figure 6/7 does, to read the phases by eye.

    .venv/bin/python bench/phase_plot.py RUN OUT.svg [--marks 1400,9400,14000] [--detected]

Four panels over epochs: train and test loss (log y); restricted and excluded loss (log y);
sum of squared weights; Gini of the W_E and W_L Fourier norms. --marks draws solid lines
(a reading by eye), --detected dashed lines at the boundaries `grok-tui analyze` finds.
Plain SVG (no plotting library needed); `rsvg-convert -w 1600 OUT.svg -o OUT.png` makes a
PNG. The plot without lines is the one to read first.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run

W, PANEL_H, LEFT, RIGHT, TOP, GAP = 1000, 190, 80, 20, 60, 40
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]


def ticks_log(lo: float, hi: float) -> list[float]:
    return [10.0**k for k in range(math.floor(lo), math.ceil(hi) + 1)]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return list(np.arange(math.ceil(lo / step) * step, hi + step / 2, step))


def panel(
    y0: float,
    x: np.ndarray,
    series: list[tuple[str, np.ndarray]],
    title: str,
    log: bool,
    xmax: float,
    lines: list[tuple[float, str]],
) -> list[str]:
    out = [f'<text x="{LEFT}" y="{y0 - 8}" font-size="15" font-weight="bold">{title}</text>']
    vals = np.concatenate([v[np.isfinite(v) & ((v > 0) if log else True)] for _, v in series])
    if log:
        lo, hi = math.log10(vals.min()), math.log10(vals.max())
    else:
        lo, hi = float(vals.min()), float(vals.max())
        pad = 0.05 * (hi - lo or 1)
        lo, hi = lo - pad, hi + pad
    plot_w = W - LEFT - RIGHT

    def px(e: float) -> float:
        return LEFT + plot_w * e / xmax

    def py(v: float) -> float:
        t = (math.log10(v) if log else v) - lo
        return y0 + PANEL_H * (1 - t / (hi - lo or 1))

    out.append(f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_H}" '
               'fill="none" stroke="#444"/>')  # fmt: skip
    for t in ticks_log(lo, hi) if log else nice_ticks(lo, hi):
        if not (lo <= (math.log10(t) if log else t) <= hi):
            continue
        y = py(t)
        label = f"1e{round(math.log10(t))}" if log else f"{t:g}"
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')  # fmt: skip
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" '
                   f'text-anchor="end">{label}</text>')  # fmt: skip
    for e in nice_ticks(0, xmax, 10):
        out.append(f'<line x1="{px(e):.1f}" x2="{px(e):.1f}" y1="{y0}" y2="{y0 + PANEL_H}" '
                   'stroke="#eee"/>')  # fmt: skip
        out.append(f'<text x="{px(e):.1f}" y="{y0 + PANEL_H + 14}" font-size="11" '
                   f'text-anchor="middle">{int(e):,}</text>')  # fmt: skip
    for i, (name, v) in enumerate(series):
        ok = np.isfinite(v) & ((v > 0) if log else True)
        pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x[ok], v[ok], strict=True))
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        out.append(f'<text x="{W - RIGHT - 8}" y="{y0 + 16 + 15 * i}" font-size="12" '
                   f'fill="{colour}" text-anchor="end">{name}</text>')  # fmt: skip
    for e, style in lines:
        dash = ' stroke-dasharray="6,4"' if style == "detected" else ""
        colour = "#000" if style == "eye" else "#c00"
        out.append(f'<line x1="{px(e):.1f}" x2="{px(e):.1f}" y1="{y0}" y2="{y0 + PANEL_H}" '
                   f'stroke="{colour}" stroke-width="1.4"{dash}/>')  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--marks", default="", help="epochs read by eye, comma separated")
    parser.add_argument("--detected", action="store_true", help="dashed lines: the detector's")
    args = parser.parse_args()
    run = Run.open(args.run)
    tracker = ProgressTracker(run)
    tracker.update()
    tracker.fill_excluded()
    t = tracker.table()
    x = t.epochs.astype(float)
    metrics = run.read_metrics()
    me = np.array([r["epoch"] for r in metrics], dtype=float)
    lines = [(float(v), "eye") for v in args.marks.split(",") if v]
    if args.detected:
        lines += [(float(v), "detected") for v in t.phases().values() if v is not None]
    xmax = float(x[-1])
    keys = ", ".join(map(str, t.key_freqs))
    body = []
    y = TOP
    for series, title, log in [
        ([("train", np.array([r["train_loss"] for r in metrics])),
          ("test", np.array([r["test_loss"] for r in metrics]))], "train and test loss", True),
        ([("restricted", t["restricted_loss"]), ("excluded", t["excluded_loss"]),
          ("test", t["test_loss"])], f"restricted and excluded loss (key freqs {keys})", True),
        ([("total", t["sum_sq_weights"])], "sum of squared weights", False),
        ([("W_E", t["gini_W_E"]), ("W_L", t["gini_W_L"])],
         "Gini of per-frequency Fourier norms", False),
    ]:  # fmt: skip
        xs = me if title.startswith("train and test") else x
        body += panel(y, xs, series, title, log, xmax, lines)
        y += PANEL_H + GAP + 10
    height = y + 10
    legend = "solid black: read by eye; dashed red: detected" if lines else "no phase lines"
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
        'font-family="sans-serif">',
        f'<rect width="{W}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="16">{run.path.name}: {legend}</text>',
        *body,
        "</svg>",
    ]
    args.out.write_text("\n".join(svg))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
