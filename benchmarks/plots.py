"""The benchmarks' one plot: two panels (e.g. speed and memory) against a log2 x axis, one line per series."""
from __future__ import annotations

from pathlib import Path

from dnax.atomic import atomic_write_bytes
from dnax.plotting import png_bytes, subplots


def two_panels(series: dict[str, list[tuple[float, float, float]]], xlabel: str, ylabels: tuple[str, str],
               title: str, out: Path, log_y: bool = False) -> None:
    """`series`: label -> [(x, left y, right y)] (sorted here); written to `out` atomically."""
    fig, axes = subplots(1, 2, figsize=(11, 4), dpi=120)
    for label, pts in series.items():
        pts = sorted(pts)
        if pts:
            for panel, ax in enumerate(axes):
                ax.plot([p[0] for p in pts], [p[1 + panel] for p in pts], marker="o", label=label)
    for ax, ylabel in zip(axes, ylabels):
        ax.set_xscale("log", base=2)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=8)
    atomic_write_bytes(out, png_bytes(fig))
