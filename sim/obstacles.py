"""Static obstacles in the coverage field and the range readings that see them.

The obstacles are vertical cylinders and axis-aligned boxes standing on the ground, taller
than any altitude a drone reaches in an episode (the geometry here is 2-D: a ray or a drone
at any height meets them). A layout is three arrays with the same leading shape (batch, O):

- `centres` (..., O, 2): the obstacles' centres (x, y), metres, ENU world frame;
- `half_sizes` (..., O, 2): a cylinder's radius in both entries, a box's half sides (x, y);
- `boxes` (..., O) bool: True for a box, False for a cylinder (the shape flag).

Both backends and the ROS nodes use these functions: `draw_obstacles` places a layout at
each reset (the simulator node redraws the same one with `obstacles_for_seed`),
`range_readings` is the analytic ray cast of the fast backend (the PyBullet backend casts
real rays, `sim.physics.PyBulletWorld.range_readings`, and is tested against it), and
`laserscan_readings` turns a sensor_msgs/LaserScan's fields into the same readings, so a
node can take them from a real range sensor. `obstacle_clearances` gives the distance from a
point to every obstacle's surface, which scores collisions. numpy only.
"""

from __future__ import annotations

import math

import numpy as np

from sim.config import CoverageConfig

OBSTACLE_HEIGHT = 20.0
"""Height of the PyBullet obstacle bodies, metres: above anything a drone reaches in an
episode (the analytic model treats the obstacles as unbounded in height)."""

SIZE_STEP = 0.01
"""Obstacle sizes are drawn on a 1 cm grid (so a PyBullet world reuses its collision shapes)."""

DRAWS_PER_TRY = 5
"""Uniform numbers one candidate obstacle takes from the stream: shape, two sizes, x, y."""

MAX_TRIES = 1000
"""Candidates tried per obstacle before the draw gives up (the config keeps the field far
from full, so this is never reached in practice)."""


# ----------------------------------------------------------------------------------------
# Layouts
# ----------------------------------------------------------------------------------------
def empty_layout(cfg: CoverageConfig, batch_shape: tuple[int, ...] = ()
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays of a layout for `batch_shape` episodes, all zeros (cylinders of radius 0)."""
    o = cfg.obstacles
    return (np.zeros(batch_shape + (o, 2)), np.zeros(batch_shape + (o, 2)),
            np.zeros(batch_shape + (o,), dtype=bool))


def draw_obstacles(cfg: CoverageConfig, rng: np.random.Generator, starts: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place `cfg.obstacles` obstacles for each of E episodes from the drones' start positions
    `starts` (E, N, 2 or 3): the layout arrays (E, O, 2), (E, O, 2), (E, O).

    The draw, reproducible from `rng` (VecEnv.reset draws the start positions first, then
    this, from one stream): episode by episode, obstacle by obstacle, candidates of
    DRAWS_PER_TRY uniforms u = rng.random(5) each until one fits:
    - shape: a box if obstacle_shape is "box", or "mixed" and u[0] >= 0.5; else a cylinder;
    - sizes: obstacle_size_min + SIZE_STEP * floor(u[k] * steps) for k = 1, 2, with `steps`
      the number of grid sizes in [obstacle_size_min, obstacle_size_max] (a cylinder's
      radius is u[1]'s; a box's half sides are (u[1]'s, u[2]'s));
    - centre: anywhere that keeps the obstacle `cfg.obstacle_clearance` inside the field,
      x = edge_x + u[3] * (fx - 2 edge_x), y likewise with u[4] (edge = half size + clearance);
    - it fits when its surface is at least the clearance from every start position and its
      bounding circle at least the clearance from every earlier obstacle's.
    """
    starts = np.asarray(starts, dtype=np.float64)[..., :2]
    e = starts.shape[0]
    centres, half_sizes, boxes = empty_layout(cfg, (e,))
    clear = cfg.obstacle_clearance
    fx, fy = cfg.field_size
    steps = int(math.floor((cfg.obstacle_size_max - cfg.obstacle_size_min) / SIZE_STEP + 1e-9)) + 1
    for env in range(e):
        for k in range(cfg.obstacles):
            for _ in range(MAX_TRIES):
                u = rng.random(DRAWS_PER_TRY)
                box = cfg.obstacle_shape == "box" or (cfg.obstacle_shape == "mixed" and u[0] >= 0.5)
                size = cfg.obstacle_size_min + SIZE_STEP * np.minimum(np.floor(u[1:3] * steps),
                                                                      steps - 1)
                half = size if box else np.array([size[0], size[0]])
                edge = half + clear
                centre = edge + u[3:5] * (np.array([fx, fy]) - 2 * edge)
                gap = obstacle_clearances(starts[env], centre[None], half[None], np.array([box]))
                bound = np.hypot(*half)
                others = np.hypot(*(centres[env, :k] - centre).T) - bound - np.hypot(
                    half_sizes[env, :k, 0], half_sizes[env, :k, 1])
                if (gap >= clear).all() and (others >= clear).all():
                    centres[env, k], half_sizes[env, k], boxes[env, k] = centre, half, box
                    break
            else:
                raise RuntimeError(f"could not place obstacle {k + 1} of {cfg.obstacles} in "
                                   f"{MAX_TRIES} tries; use fewer or smaller obstacles.")
    return centres, half_sizes, boxes


def obstacles_for_seed(cfg: CoverageConfig, seed: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The start positions (N, 3) and obstacle layout ((O, 2), (O, 2), (O,)) that a one-env
    `VecEnv.reset(seed)` draws: the start positions first, then the obstacles, from one
    stream. The simulator node calls this to fly the simulator's episode of a seed."""
    from sim.scenarios import make_scenario

    rng = np.random.default_rng(seed)
    starts = make_scenario(cfg, 1).start_positions(rng, 1)
    centres, half_sizes, boxes = draw_obstacles(cfg, rng, starts)
    return starts[0], centres[0], half_sizes[0], boxes[0]


def layout_features(cfg: CoverageConfig, centres: np.ndarray, half_sizes: np.ndarray,
                    boxes: np.ndarray) -> np.ndarray:
    """The layout as the critic's state sees it, (..., 5 O): per obstacle its centre and half
    sizes over the field size and its shape flag (1 box, 0 cylinder)."""
    field = np.array(cfg.field_size)
    parts = np.concatenate([centres / field, half_sizes / field, boxes[..., None]], axis=-1)
    return parts.reshape(boxes.shape[:-1] + (-1,))


# ----------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------
def obstacle_clearances(points: np.ndarray, centres: np.ndarray, half_sizes: np.ndarray,
                        boxes: np.ndarray) -> np.ndarray:
    """Horizontal distance from each point to each obstacle's surface, metres (negative
    inside): (..., M, O) for points (..., M, 2 or 3) and layout arrays (..., O, ...) with the
    same leading shape (a single point (2,) or (3,) and one layout (O, ...) give (O,))."""
    points = np.asarray(points, dtype=np.float64)[..., :2]
    rel = np.abs(points[..., None, :] - np.asarray(centres)[..., None, :, :])  # (..., M, O, 2)
    half = np.asarray(half_sizes, dtype=np.float64)[..., None, :, :]
    circle = np.linalg.norm(rel, axis=-1) - half[..., 0]
    q = rel - half
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    box = outside + np.minimum(q.max(axis=-1), 0.0)
    return np.where(np.asarray(boxes)[..., None, :], box, circle)


def obstacle_hits(positions: np.ndarray, centres: np.ndarray, half_sizes: np.ndarray,
                  boxes: np.ndarray, cfg: CoverageConfig) -> np.ndarray:
    """Which drones collide with an obstacle, (E, N) bool: positions (E, N, 3) whose centre is
    closer than the drone radius (`cfg.drone_radius`) to an obstacle's surface."""
    if cfg.obstacles == 0:
        return np.zeros(positions.shape[:-1], dtype=bool)
    return (obstacle_clearances(positions, centres, half_sizes, boxes) < cfg.drone_radius).any(-1)


def ray_angles(rays: int) -> np.ndarray:
    """The rays' headings in the world frame, (R,) radians: ray 0 along +x (east), evenly
    spaced counter-clockwise."""
    return 2.0 * np.pi * np.arange(rays) / max(rays, 1)


def range_readings(origins: np.ndarray, centres: np.ndarray, half_sizes: np.ndarray,
                   boxes: np.ndarray, rays: int, range_max: float) -> np.ndarray:
    """The analytic range readings: the distance along each of `rays` horizontal rays
    (`ray_angles`) from each origin to the first obstacle surface, clipped to range_max
    (range_max = nothing in range; 0 from inside an obstacle). Metres, (..., M, R) for
    origins (..., M, 2 or 3) and layout arrays (..., O, ...) with the same leading shape."""
    origins = np.asarray(origins, dtype=np.float64)[..., :2]
    angles = ray_angles(rays)
    d = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (R, 2)
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)  # no 0/0 on a slab's edge
    c = np.asarray(centres, dtype=np.float64)[..., None, None, :, :]  # (..., 1, 1, O, 2)
    h = np.asarray(half_sizes, dtype=np.float64)[..., None, None, :, :]
    f = origins[..., :, None, None, :] - c  # (..., M, 1, O, 2) from each centre to the origin
    dd = d[:, None, :]  # (R, 1, 2)
    # circles: |f + t d| = r, smallest t >= 0
    b = (f * dd).sum(-1)  # (..., M, R, O)
    cc = (f * f).sum(-1) - h[..., 0] ** 2
    disc = b * b - cc
    t_circle = np.where((disc >= 0.0) & (b < 0.0), -b - np.sqrt(np.maximum(disc, 0.0)), np.inf)
    t_circle = np.where(cc <= 0.0, 0.0, t_circle)
    # boxes: the slab method
    t1 = (-h - f) / dd
    t2 = (h - f) / dd
    near = np.minimum(t1, t2).max(-1)
    far = np.maximum(t1, t2).min(-1)
    inside = (np.abs(f) <= h).all(-1)
    t_box = np.where((far >= near) & (far >= 0.0), np.maximum(near, 0.0), np.inf)
    t_box = np.where(inside, 0.0, t_box)
    t = np.where(np.asarray(boxes)[..., None, None, :], t_box, t_circle)
    if t.shape[-1] == 0:
        return np.full(t.shape[:-1], float(range_max))
    return np.minimum(t.min(-1), range_max)


def laserscan_readings(ranges: np.ndarray, angle_min: float, angle_increment: float,
                       scan_range_max: float, yaw: float, rays: int, range_max: float,
                       scan_range_min: float = 0.0) -> np.ndarray:
    """A sensor_msgs/LaserScan's fields -> the readings `range_readings` gives, (R,) metres.

    The scan's beam i points at angle_min + i * angle_increment in the sensor frame (taken
    as the drone's body frame at its centre; yaw is the drone's heading in the world frame),
    so each world-frame ray takes the beam nearest to its heading. A beam reading inf, NaN,
    above scan_range_max or below scan_range_min is nothing in range, as is a ray outside
    the scan's span (more than half an increment beyond its first or last beam). Readings
    are clipped to range_max."""
    ranges = np.asarray(ranges, dtype=np.float64).reshape(-1)
    beams = ranges.size
    out = np.full(rays, float(range_max))
    if beams == 0 or not (math.isfinite(angle_increment) and angle_increment != 0.0):
        return out
    step = abs(angle_increment)
    sign = 1.0 if angle_increment > 0 else -1.0
    offset = np.mod(sign * (ray_angles(rays) - yaw - angle_min), 2.0 * np.pi)  # along the scan
    index = np.rint(offset / step).astype(np.int64)
    full_circle = beams * step >= 2.0 * np.pi - 1e-6
    index = np.where(full_circle, index % beams, index)
    # a ray just before the first beam (offset near 2 pi) is within half an increment of it
    index = np.where(~full_circle & (2.0 * np.pi - offset <= 0.5 * step), 0, index)
    inside = index < beams
    value = ranges[np.minimum(index, beams - 1)]
    valid = inside & np.isfinite(value) & (value <= scan_range_max) & (value >= scan_range_min)
    out[valid] = np.minimum(value[valid], range_max)
    return out


__all__ = [
    "DRAWS_PER_TRY", "OBSTACLE_HEIGHT", "SIZE_STEP", "draw_obstacles", "empty_layout",
    "laserscan_readings", "layout_features", "obstacle_clearances",
    "obstacle_hits", "obstacles_for_seed", "range_readings", "ray_angles",
]
