"""Top-down pictures of a swarm: an RGB array for `render()` and a PNG report.

The array renderer is plain numpy (no window, no display); the PNG report uses
matplotlib's Agg backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim import obs as O
from sim.config import CoverageConfig, SwarmConfig

PIXELS = 320
COLOURS = np.array([
    [228, 26, 28], [55, 126, 184], [77, 175, 74], [152, 78, 163],
    [255, 127, 0], [166, 86, 40], [247, 129, 191], [153, 153, 153],
], dtype=np.uint8)


def _disc(img: np.ndarray, cx: float, cy: float, radius: float, colour: np.ndarray) -> None:
    h, w = img.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2] = colour


def render_top_down(cfg: SwarmConfig, positions: np.ndarray, covered: np.ndarray | None = None,
                    landmarks: np.ndarray | None = None,
                    trails: np.ndarray | None = None,
                    obstacles: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """RGB uint8 image (PIXELS x PIXELS), north up: covered cells light, uncovered dark,
    obstacles (a layout of sim.obstacles: centres, half sizes, box flags) grey."""
    fx, fy = cfg.field_size
    scale = PIXELS / max(fx, fy)
    h, w = int(round(fy * scale)), int(round(fx * scale))
    img = np.full((h, w, 3), 40, dtype=np.uint8)
    if covered is not None and isinstance(cfg, CoverageConfig):
        cells = O.belief_interior(covered, cfg) == O.COVERED  # (H, W), row = y
        rows = np.minimum((np.arange(h)[::-1] / scale / cfg.cell_size).astype(int), cfg.height - 1)
        cols = np.minimum((np.arange(w) / scale / cfg.cell_size).astype(int), cfg.width - 1)
        img[cells[rows][:, cols]] = (200, 220, 200)
    if obstacles is not None and len(obstacles[0]):
        from sim.obstacles import obstacle_clearances

        xs = (np.arange(w) + 0.5) / scale
        ys = (h - 0.5 - np.arange(h)) / scale
        grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
        inside = (obstacle_clearances(grid, *obstacles) <= 0.0).any(-1).reshape(h, w)
        img[inside] = (120, 120, 120)

    def to_px(p: np.ndarray) -> tuple[float, float]:
        return p[0] * scale, h - 1 - p[1] * scale

    if trails is not None:
        for i in range(trails.shape[1]):
            px = np.clip(np.round(trails[:, i, 0] * scale).astype(int), 0, w - 1)
            py = np.clip(np.round(h - 1 - trails[:, i, 1] * scale).astype(int), 0, h - 1)
            img[py, px] = COLOURS[i % len(COLOURS)]
    if landmarks is not None:
        for p in landmarks:
            _disc(img, *to_px(p), 5.0, np.array([250, 250, 0], dtype=np.uint8))
    for i, p in enumerate(positions):
        _disc(img, *to_px(p), 6.0, COLOURS[i % len(COLOURS)])
    return img


def save_coverage_png(path: str | Path, cfg: CoverageConfig, covered: np.ndarray,
                      trajectories: np.ndarray, title: str,
                      obstacles: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Path:
    """Coverage map with each drone's trajectory (and the obstacles, grey), as a PNG report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fx, fy = cfg.field_size
    fig, ax = plt.subplots(figsize=(6, 6))
    cells = (O.belief_interior(covered, cfg) == O.COVERED).astype(float)
    ax.imshow(cells, origin="lower", extent=(0, fx, 0, fy), cmap="Greens", vmin=-0.3, vmax=1.3)
    if obstacles is not None:
        from matplotlib.patches import Circle, Rectangle

        for (cx, cy), (hx, hy), box in zip(*obstacles, strict=True):
            shape = (Rectangle((cx - hx, cy - hy), 2 * hx, 2 * hy) if box
                     else Circle((cx, cy), hx))
            shape.set(facecolor="0.45", edgecolor="0.2", alpha=0.8)
            ax.add_patch(shape)
    for i in range(trajectories.shape[1]):
        xy = trajectories[:, i, :2]
        colour = COLOURS[i % len(COLOURS)] / 255.0
        ax.plot(xy[:, 0], xy[:, 1], "-", color=colour, lw=1.5, label=f"drone_{i}")
        ax.plot(xy[0, 0], xy[0, 1], "o", color=colour)
        ax.plot(xy[-1, 0], xy[-1, 1], "x", color=colour, ms=8)
    ax.set_xlim(-0.25, fx + 0.25)
    ax.set_ylim(-0.25, fy + 0.25)
    ax.set_xlabel("x [m] (east)")
    ax.set_ylabel("y [m] (north)")
    ax.set_title(title)
    if trajectories.shape[1] <= len(COLOURS):  # beyond, colours repeat and a legend hides the map
        ax.legend(loc="upper right", fontsize=8)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
