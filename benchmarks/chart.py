#!/usr/bin/env python3
"""Draw the ratio chart (ours / 0.1.3, log scale) from run.py's chart data.

    python benchmarks/chart.py benchmarks/results/chart-data.json docs/benchmarks.png

Run by run.py with an interpreter that has matplotlib.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

COLORS = {True: "#2e9d4f", False: "#d1453b", None: "#8c8c8c"}
HATCH = {"asyncio": "", "uvloop": "//"}


def fraction(value: float) -> str:
    """0.125 -> '1/8' (goals are unit fractions), else the number."""
    inverse = 1 / value if value > 0 else 0
    if value < 1 and abs(inverse - round(inverse)) < 1e-6:
        return f"1/{round(inverse)}"
    return f"{value:g}"


def draw(bars: list[dict[str, Any]], path: str) -> None:
    labels: list[str] = []
    for bar in bars:
        if bar["label"] not in labels:
            labels.append(bar["label"])
    loops = sorted({bar["loop"] for bar in bars}, key=lambda loop: (loop != "asyncio", loop))
    height = 0.8 / max(1, len(loops))

    fig, ax = plt.subplots(figsize=(10, 0.75 * len(labels) + 1.8))
    values: list[float] = []
    for row, label in enumerate(labels):
        goal: float | None = None
        for k, loop in enumerate(loops):
            match = [b for b in bars if b["label"] == label and b["loop"] == loop]
            if not match:
                continue
            bar = match[0]
            y = row + (k - (len(loops) - 1) / 2) * height
            ratio = float(bar["ratio"])
            values.append(ratio)
            ax.barh(
                y,
                ratio,
                height=height * 0.9,
                color=COLORS[bar["passed"]],
                hatch=HATCH.get(loop, ""),
                edgecolor="white",
                left=0,
            )
            ax.text(ratio * 1.06, y, f"{ratio:.3g}", va="center", fontsize=8)
            goal = bar["goal"] if bar["goal"] is not None else goal
        if goal is not None:
            values.append(goal)
            ax.plot([goal, goal], [row - 0.45, row + 0.45], color="black", linewidth=2)
            ax.text(goal, row - 0.47, f"goal {fraction(goal)}", ha="center", fontsize=7)

    ax.set_xscale("log")
    lo = min(values) / 2 if values else 0.01
    hi = max(max(values) * 2.5 if values else 2.0, 2.0)
    ax.set_xlim(lo, hi)
    ax.axvline(1.0, color="#555555", linestyle="--", linewidth=1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time (or wait) ours / leasepool 0.1.3 — log scale, lower is better")
    ax.set_title("leasepool: ratio to 0.1.3 (black tick = goal, dashed = parity)")
    legend = [
        Patch(facecolor=COLORS[True], label="meets goal"),
        Patch(facecolor=COLORS[False], label="misses goal"),
        Patch(facecolor=COLORS[None], label="no goal"),
        *(
            Patch(facecolor="white", edgecolor="black", hatch=HATCH.get(loop, ""), label=loop)
            for loop in loops
        ),
    ]
    fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
    ax.grid(axis="x", which="both", alpha=0.25)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        bars: list[dict[str, Any]] = json.load(f)
    draw(bars, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
