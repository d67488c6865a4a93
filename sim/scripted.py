"""Scripted baselines: a lawnmower sweep (the demo) and a random walk (the learning floor)."""

from __future__ import annotations

import numpy as np

from sim.config import CoverageConfig, SwarmConfig


class LawnmowerPilot:
    """Each drone sweeps its own vertical strip of the field in a serpentine.

    Strips are assigned by the drones' start x order, lanes are one footprint wide,
    and a proportional law turns the next waypoint into a velocity action in [-1, 1].
    """

    def __init__(self, cfg: CoverageConfig, start_positions: np.ndarray, gain: float = 3.0):
        self.cfg = cfg
        self.gain = gain
        fx, fy = cfg.field_size
        n = cfg.num_drones
        lane = cfg.footprint * cfg.cell_size
        half = lane / 2
        order = np.argsort(start_positions[:, 0])
        self.waypoints: list[np.ndarray] = [np.zeros((0, 2))] * n
        for strip, drone in enumerate(order):
            x0, x1 = strip * fx / n, (strip + 1) * fx / n
            lanes = max(1, int(np.ceil((x1 - x0) / lane - 1e-9)))
            xs = np.linspace(x0 + half, x1 - half, lanes) if lanes > 1 else [(x0 + x1) / 2]
            ys = (half, fy - half)
            if abs(start_positions[drone, 1] - ys[1]) < abs(start_positions[drone, 1] - ys[0]):
                ys = ys[::-1]
            points = []
            for k, x in enumerate(xs):
                a, b = (ys if k % 2 == 0 else ys[::-1])
                points += [(x, a), (x, b)]
            self.waypoints[drone] = np.array(points)
        self.next = np.zeros(n, dtype=int)

    def actions(self, positions: np.ndarray) -> np.ndarray:
        """Continuous actions (N, 4) for the current positions (N, 3)."""
        cfg = self.cfg
        out = np.zeros((cfg.num_drones, 4))
        for i, wps in enumerate(self.waypoints):
            if self.next[i] < len(wps) and np.linalg.norm(wps[self.next[i]] - positions[i, :2]) < 0.1:
                self.next[i] += 1
            if self.next[i] >= len(wps):
                continue  # done: hover
            err = wps[self.next[i]] - positions[i, :2]
            out[i, :2] = self.gain * err / cfg.vxy
            out[i, 2] = self.gain * (cfg.start_altitude - positions[i, 2]) / cfg.vz
        return np.clip(out, -1.0, 1.0)


def random_walk_actions(cfg: SwarmConfig, rng: np.random.Generator,
                        batch_shape: tuple[int, ...]) -> np.ndarray:
    """Uniformly random actions: the baseline a learned policy must clearly beat.

    Horizontal moves only (vz = yaw_rate = 0): a random walk that also climbs and
    descends would spend its time outside the altitude band and look worse than it is.
    """
    if cfg.action_mode == "discrete":
        return rng.integers(0, 9, size=batch_shape)  # hover + 8 horizontal directions
    actions = np.zeros(batch_shape + (4,))
    actions[..., :2] = rng.uniform(-1.0, 1.0, size=batch_shape + (2,))
    return actions


__all__ = ["LawnmowerPilot", "random_walk_actions"]
