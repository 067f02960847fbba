"""One figure of attainment-vs-rate panels: a row per study, a column per SLO scale (the GPU-scale
and long-reasoning studies draw the same grid)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dynasor.sim.cli import draw_attainment


def plot_attainment_grid(studies: Mapping[str, Mapping[str, Any]], scales: Sequence[float], path: Path,
                         dotted: Sequence[str], title_suffix: str = "") -> None:
    """``studies``: study key -> system name -> that system's sweep entry (its ``rows``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(studies), len(scales), figsize=(5.5 * len(scales), 3.6 * len(studies)),
                             squeeze=False)
    for row_axes, (key, systems) in zip(axes, studies.items()):
        for ax, scale in zip(row_axes, scales):
            draw_attainment(ax, dict(systems), scale, f"{key}, SLO scale {scale:g}{title_suffix}", dotted=list(dotted))
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
