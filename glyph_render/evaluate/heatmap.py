"""The needle-in-a-haystack heat map: depth down, context length across, score as colour.

matplotlib (the ``bench`` extra) draws it when installed; otherwise Pillow draws the same grid,
so ``-o DIR`` always gets its heatmap.png. Red is 0, green is 1, grey a cell with no score;
each column is labelled with its length and the compression ratio it was asked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import OutputError

__all__ = ["draw_heatmap"]


def draw_heatmap(path: str | Path, grid: Sequence[Sequence[float | None]],
                 row_labels: Sequence[str], col_labels: Sequence[str], *, title: str = "",
                 xlabel: str = "context length (text tokens)",
                 ylabel: str = "needle depth") -> Path:
    """Write ``grid[row][col]`` (scores in [0, 1] or None) as a PNG; returns the path."""
    out = Path(path)
    if len(grid) != len(row_labels) or any(len(r) != len(col_labels) for r in grid):
        raise ValueError("grid shape does not match the labels")
    try:
        _matplotlib(out, grid, row_labels, col_labels, title, xlabel, ylabel)
    except ImportError:
        _pillow(out, grid, row_labels, col_labels, title)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the heat map ({exc.strerror})") from None
    return out


def _matplotlib(out: Path, grid: Sequence[Sequence[float | None]], rows: Sequence[str],
                cols: Sequence[str], title: str, xlabel: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.array([[np.nan if v is None else v for v in r] for r in grid], dtype=float)
    cmap = matplotlib.colormaps["RdYlGn"].copy()
    cmap.set_bad("#d0d0d0")
    fig, ax = plt.subplots(figsize=(1.4 + 1.1 * max(2, len(cols)), 1.4 + 0.5 * max(2, len(rows))),
                           layout="constrained")
    try:
        im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=0.0, vmax=1.0,
                       aspect="auto")
        for i, r in enumerate(grid):
            for j, v in enumerate(r):
                if v is not None:
                    ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=9,
                            color="black")
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, label="score", fraction=0.05)
        fig.savefig(out, dpi=120)
    finally:
        plt.close(fig)


def _colour(v: float | None) -> tuple[int, int, int]:
    """Red (0) through yellow (0.5) to green (1), grey for no score."""
    if v is None:
        return (208, 208, 208)
    v = min(1.0, max(0.0, v))
    if v < 0.5:
        return (215, int(48 + 2 * v * (220 - 48)), 39)
    return (int(255 - 2 * (v - 0.5) * (255 - 26)), int(220 - 2 * (v - 0.5) * (220 - 152)), 80)


def _pillow(out: Path, grid: Sequence[Sequence[float | None]], rows: Sequence[str],
            cols: Sequence[str], title: str) -> None:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    cw, ch, left, top = 90, 36, 80, 50
    img = Image.new("RGB", (left + cw * len(cols) + 20, top + ch * len(rows) + 60), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 10), title, fill="black", font=font)
    for i, r in enumerate(grid):
        draw.text((10, top + i * ch + ch // 2 - 6), rows[i], fill="black", font=font)
        for j, v in enumerate(r):
            x, y = left + j * cw, top + i * ch
            draw.rectangle([x, y, x + cw - 2, y + ch - 2], fill=_colour(v))
            if v is not None:
                draw.text((x + cw // 2 - 10, y + ch // 2 - 6), f"{100 * v:.0f}", fill="black",
                          font=font)
    for j, label in enumerate(cols):
        for k, line in enumerate(label.split("\n")):
            draw.text((left + j * cw + 4, top + len(rows) * ch + 6 + 14 * k), line,
                      fill="black", font=font)
    img.save(out, format="PNG")
