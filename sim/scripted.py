"""Scripted baselines: a lawnmower sweep (the demo), a random walk (the learning floor), and
pursuit's opponents: a pursuer that chases the nearest evader and an evader that flees the
nearest pursuer, in either view's action format (for evaluating learned policies)."""

from __future__ import annotations

import numpy as np

from sim import obs as O
from sim.config import CELL_MOVES, DISCRETE_ACTIONS, CoverageConfig, PursuitConfig, SwarmConfig


class LawnmowerPilot:
    """Each drone sweeps its own vertical strip of the field in a serpentine.

    Strips are assigned by the drones' start x order, lanes are one footprint wide,
    and a proportional law turns the next waypoint into a velocity action in [-1, 1].
    In a heterogeneous swarm each drone sweeps lanes of its own footprint, and its strip's
    width is its share of the swarm's sweep rate (speed factor x footprint), so that the
    drones finish together.
    """

    def __init__(self, cfg: CoverageConfig, start_positions: np.ndarray, gain: float = 3.0):
        self.cfg = cfg
        self.gain = gain
        fx, fy = cfg.field_size
        n = cfg.num_drones
        widths = np.asarray(cfg.drone_footprints()) * cfg.cell_size
        rate = np.asarray(cfg.drone_speed_factors()) * widths
        order = np.argsort(start_positions[:, 0])
        edges = np.concatenate([[0.0], np.cumsum(rate[order]) / rate.sum() * fx])
        self.waypoints: list[np.ndarray] = [np.zeros((0, 2))] * n
        for strip, drone in enumerate(order):
            lane = widths[drone]
            half = lane / 2
            x0, x1 = edges[strip], edges[strip + 1]
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
        speed = np.asarray(cfg.drone_speed_factors())  # actions are in each drone's own limits
        for i, wps in enumerate(self.waypoints):
            if self.next[i] < len(wps) and np.linalg.norm(wps[self.next[i]] - positions[i, :2]) < 0.1:
                self.next[i] += 1
            if self.next[i] >= len(wps):
                continue  # done: hover
            err = wps[self.next[i]] - positions[i, :2]
            out[i, :2] = self.gain * err / (cfg.vxy * speed[i])
            out[i, 2] = self.gain * (cfg.start_altitude - positions[i, 2]) / (cfg.vz * speed[i])
        return np.clip(out, -1.0, 1.0)


# -- coverage (with or without obstacles) -------------------------------------------------------
COVERAGE_BASELINES = ("lawnmower", "random")


def evaluate_coverage_baseline(controller: str = "lawnmower", episodes: int = 10,
                               backend: str = "pybullet", seed: int = 12345,
                               **params) -> dict[str, float]:
    """Mean end-of-episode figures of a scripted coverage baseline over `episodes` episodes
    run at once (each env's first episode), on the episodes and figures of `marl-ros eval`:
    "lawnmower" (`LawnmowerPilot`: knows the field, flies its lanes through any obstacle) or
    "random" (`random_walk_actions`, the floor). The lawnmower reads the true positions."""
    import sim

    if controller not in COVERAGE_BASELINES:
        raise ValueError(f"controller must be one of {', '.join(COVERAGE_BASELINES)} "
                         f"(got {controller!r}).")
    venv = sim.make_vec_env("coverage", episodes, backend=backend, seed=seed, **params)
    rng = np.random.default_rng(seed)
    _, metrics = venv.reset(seed=seed)
    shape = (venv.num_envs, venv.num_agents)
    pilots = [LawnmowerPilot(venv.cfg, venv.positions[e]) for e in range(venv.num_envs)]
    keys = ("coverage", *(k for k in metrics if k != "coverage"), "episode_return",
            "episode_length", "episode_collisions")

    def choose() -> np.ndarray:
        if controller == "random":
            return random_walk_actions(venv.cfg, rng, shape)
        pos = venv.positions
        return np.stack([p.actions(pos[e]) for e, p in enumerate(pilots)])

    return first_episode_figures(venv, choose, keys)


def first_episode_figures(venv, choose, keys: tuple[str, ...]) -> dict[str, float]:
    """Step a reset vector env with `choose()`'s actions until every env has finished its
    first episode; the mean over those episodes of each end-of-episode figure in `keys` (what
    `marl-ros eval` reports for a policy). Closes the env."""
    figures = {k: np.zeros(venv.num_envs) for k in keys}
    finished = np.zeros(venv.num_envs, dtype=bool)
    try:
        while not finished.all():
            *_, infos = venv.step(choose())
            first = infos["done"] & ~finished
            if first.any():
                for k in keys:
                    figures[k][first] = infos[k][first]
            finished |= infos["done"]
    finally:
        venv.close()
    return {k: float(v.mean()) for k, v in figures.items()}


def random_walk_actions(cfg: SwarmConfig, rng: np.random.Generator,
                        batch_shape: tuple[int, ...]) -> np.ndarray:
    """Uniformly random actions: the baseline a learned policy must clearly beat.

    Horizontal moves only (vz = yaw_rate = 0): a random walk that also climbs and
    descends would spend its time outside the altitude band and look worse than it is.
    """
    if O.is_cells_view(cfg):
        return rng.integers(0, 5, size=batch_shape)  # the 5 cell moves (stay and 4 planar)
    if cfg.action_mode == "discrete":
        return rng.integers(0, 9, size=batch_shape)  # hover + 8 horizontal directions
    actions = np.zeros(batch_shape + (4,))
    actions[..., :2] = rng.uniform(-1.0, 1.0, size=batch_shape + (2,))
    return actions


# -- pursuit -------------------------------------------------------------------------------------
_HEADINGS = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
_UNITS = np.stack([np.cos(_HEADINGS), np.sin(_HEADINGS)], axis=1)
# Continuous candidates: hover and 16 headings at full speed (the larger component at 1).
_CONTINUOUS_MOVES = np.concatenate([np.zeros((1, 2)),
                                    _UNITS / np.abs(_UNITS).max(axis=1, keepdims=True)])
_DISCRETE_MOVES = np.array([d[:2] for _, d in DISCRETE_ACTIONS[:9]])  # hover + 8 horizontal
# How a drone's horizontal velocity answers a setpoint (sim/fast_model.yaml, rounded): a lag of
# about 2 zeta / wn and the tilt-limited acceleration. The evader uses them to keep its
# stopping point inside the arena.
_VELOCITY_LAG = 0.2  # s
_MAX_ACCELERATION = 5.8  # m/s^2
_FENCE_CLEARANCE = 0.05  # m: how far inside the edge a stopping point must stay
_STOP_MARGIN = 1.5  # safety factor on the stopping distance (no exit at evader_speed <= 2)
_WALL_WEIGHT = 0.3  # what a metre from the nearest wall is worth to an evader, in metres from
# the nearest pursuer (room to turn: a corner is a trap)


def _move_candidates(cfg: PursuitConfig, own: np.ndarray, speed: np.ndarray,
                     extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where each of a drone's candidate moves leads after one policy step, (..., A, 2), and
    the candidates as actions: cell moves or discrete indices (A,), or continuous horizontal
    actions (..., A, 2) in [-1, 1] (`extra` (..., 2) first, when given). own (..., 3); speed
    (...,) the drone's factor on vxy."""
    if O.is_cells_view(cfg):
        moves = np.arange(len(CELL_MOVES))
        targets = O.cell_move_target(cfg, np.broadcast_to(moves, own.shape[:-1] + moves.shape),
                                     own[..., None, :])
        return targets, moves
    step = cfg.vxy * speed[..., None, None] / cfg.policy_hz
    if cfg.action_mode == "discrete":
        return own[..., None, :2] + _DISCRETE_MOVES * step, np.arange(len(_DISCRETE_MOVES))
    units = np.broadcast_to(_CONTINUOUS_MOVES, own.shape[:-1] + _CONTINUOUS_MOVES.shape)
    if extra is not None:
        units = np.concatenate([extra[..., None, :], units], axis=-2)
    return own[..., None, :2] + units * step, units


def _keep_inside(cfg: PursuitConfig, own: np.ndarray, velocity: np.ndarray | None,
                 ends: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The candidates' scores with -inf for those after which the drone could not stop as far
    inside the arena as the best of them allows (`_stopping_points`); cell moves never leave
    it."""
    if O.is_cells_view(cfg):
        return score
    velocity = np.zeros_like(own[..., :2]) if velocity is None else velocity[..., :2]
    setpoints = (ends - own[..., None, :2]) * cfg.policy_hz
    intrusion = _fence_intrusion(cfg, _stopping_points(cfg, own[..., :2], velocity, setpoints))
    least = intrusion.min(axis=-1, keepdims=True)  # 0 unless every move overshoots
    return np.where(intrusion <= least + 1e-9, score, -np.inf)


def _to_actions(cfg: PursuitConfig, own: np.ndarray, choice: np.ndarray, moves: np.ndarray
                ) -> np.ndarray:
    """Chosen candidates (...,) -> actions in the env's format; continuous ones also hold the
    start altitude (proportional, as the lawnmower)."""
    if O.is_cells_view(cfg) or cfg.action_mode == "discrete":
        return moves[choice]
    out = np.zeros(choice.shape + (4,))
    out[..., :2] = np.take_along_axis(moves, choice[..., None, None], axis=-2)[..., 0, :]
    out[..., 2] = np.clip(3.0 * (cfg.start_altitude - own[..., 2]) / cfg.vz, -1.0, 1.0)
    return out


def _split(cfg: PursuitConfig, positions: np.ndarray, captured: np.ndarray | None,
           velocities: np.ndarray | None):
    """Pursuers' and evaders' positions and velocities (None: at rest) and the captured flags;
    in the cells view every position is its cell's centre, so the scripted move depends on
    the cells state alone."""
    positions = np.asarray(positions, dtype=np.float64)
    if O.is_cells_view(cfg):
        positions = positions.copy()
        positions[..., :2] = O.cell_move_target(cfg, np.zeros(positions.shape[:-1], np.int64),
                                                positions)
    p = cfg.num_pursuers
    if captured is None:
        captured = np.zeros(positions.shape[:-2] + (cfg.num_evaders,), dtype=bool)
    vel = (None, None) if velocities is None else (
        np.asarray(velocities, dtype=np.float64)[..., :p, :],
        np.asarray(velocities, dtype=np.float64)[..., p:, :])
    return positions[..., :p, :], positions[..., p:, :], np.asarray(captured, dtype=bool), vel


def _stopping_points(cfg: PursuitConfig, own: np.ndarray, velocity: np.ndarray,
                     setpoints: np.ndarray) -> np.ndarray:
    """Where a drone at `own` (..., 2) flying `velocity` (..., 2) would come to rest if it
    flew each candidate setpoint (..., A, 2) m/s for one policy step and then hovered: the
    step's displacement (the setpoint, plus the lag's carry-over of the current velocity)
    and the stopping distance from the velocity it ends the step with (times _STOP_MARGIN),
    per axis."""
    dt = 1.0 / cfg.policy_hz
    decay = np.exp(-dt / _VELOCITY_LAG)
    gap = velocity[..., None, :] - setpoints
    step = setpoints * dt + gap * _VELOCITY_LAG * (1.0 - decay)
    w = setpoints + gap * decay  # velocity at the end of the step
    stop = _STOP_MARGIN * (w * _VELOCITY_LAG + w * np.abs(w) / (2 * _MAX_ACCELERATION))
    return own[..., None, :] + step + stop


def _fence_intrusion(cfg: PursuitConfig, points: np.ndarray) -> np.ndarray:
    """How far points (..., 2) lie beyond the arena shrunk by `_FENCE_CLEARANCE`, summed over
    x and y: 0 inside."""
    size = np.array(cfg.field_size)
    c = _FENCE_CLEARANCE
    return (np.maximum(c - points, 0.0) + np.maximum(points - (size - c), 0.0)).sum(-1)


def chase_actions(cfg: PursuitConfig, positions: np.ndarray, captured: np.ndarray | None = None,
                  velocities: np.ndarray | None = None) -> np.ndarray:
    """Every pursuer's action towards the nearest evader in play: the candidate move that ends
    nearest to it (cells view: to its cell's centre; continuous: the candidates include
    straight at it at full speed, slowing to arrive in one step), among those after which
    it could still stop inside the arena (see `flee_actions`). positions (..., N, 3) of
    every drone in index order; captured (..., num_evaders) the evaders out of play;
    velocities (..., N, 3) or None (at rest). Returns (..., P) or (..., P, 4)."""
    pursuers, evaders, captured, (vel, _) = _split(cfg, positions, captured, velocities)
    gap = evaders[..., None, :, :2] - pursuers[..., :, None, :2]  # (..., P, E, 2)
    dist = np.where(captured[..., None, :], np.inf, np.linalg.norm(gap, axis=-1))
    target = np.take_along_axis(evaders[..., :2], dist.argmin(axis=-1)[..., None], axis=-2)
    straight = None
    if not O.is_cells_view(cfg) and cfg.action_mode == "continuous":
        d = target - pursuers[..., :2]
        norm = np.linalg.norm(d, axis=-1, keepdims=True)
        unit = d / np.maximum(norm, 1e-9)
        full = 1.0 / np.maximum(np.abs(unit).max(axis=-1, keepdims=True), 1e-9)  # box corner
        straight = unit * np.minimum(full, norm * cfg.policy_hz / cfg.vxy)
    ends, moves = _move_candidates(cfg, pursuers, np.ones(pursuers.shape[:-1]), straight)
    score = -np.linalg.norm(ends - target[..., None, :], axis=-1)
    choice = _keep_inside(cfg, pursuers, vel, ends, score).argmax(axis=-1)
    return _to_actions(cfg, pursuers, choice, moves)


def flee_actions(cfg: PursuitConfig, positions: np.ndarray, captured: np.ndarray | None = None,
                 velocities: np.ndarray | None = None) -> np.ndarray:
    """Every evader's action away from the pursuers: the candidate move that ends farthest from
    the nearest pursuer (plus `_WALL_WEIGHT` times its distance to the nearest wall), among
    those after which it could still stop inside the arena (`_stopping_points`, from its
    velocity: pass `velocities`, else it is taken as at rest); cell moves never leave the
    arena. Captured evaders hover (stay). Arguments as `chase_actions`; returns
    (..., num_evaders) or (..., num_evaders, 4)."""
    pursuers, evaders, captured, (_, vel) = _split(cfg, positions, captured, velocities)
    speed = np.full(evaders.shape[:-1], float(cfg.evader_speed))
    ends, moves = _move_candidates(cfg, evaders, speed)  # (..., E, A, 2)
    gap = ends[..., None, :] - pursuers[..., None, None, :, :2]  # (..., E, A, P, 2)
    size = np.array(cfg.field_size)
    score = (np.linalg.norm(gap, axis=-1).min(axis=-1)
             + _WALL_WEIGHT * np.minimum(ends, size - ends).min(axis=-1))
    choice = _keep_inside(cfg, evaders, vel, ends, score).argmax(axis=-1)
    return _to_actions(cfg, evaders, np.where(captured, 0, choice), moves)


def pursuit_actions(cfg: PursuitConfig, positions: np.ndarray,
                    rng: np.random.Generator | None = None, pursuers: str = "chase",
                    evaders: str = "flee", captured: np.ndarray | None = None,
                    velocities: np.ndarray | None = None) -> np.ndarray:
    """Every drone's scripted action, (..., N) or (..., N, 4): the pursuers "chase" or "random"
    (`random_walk_actions`, needs rng), the evaders "flee" or "random"; pass the drones'
    velocities (..., N, 3) so the scripted ones keep clear of the geofence at speed. Splice a learned side in by replacing its columns (pursuers 0..P-1, evaders
    P..)."""
    p, e = cfg.num_pursuers, cfg.num_evaders
    lead = np.shape(positions)[:-2]
    parts = []
    for name, kind, count, script in (("pursuers", pursuers, p, "chase"),
                                      ("evaders", evaders, e, "flee")):
        if kind == "random":
            if rng is None:
                raise ValueError(f"{name}='random' needs an rng (a numpy Generator).")
            parts.append(random_walk_actions(cfg, rng, lead + (count,)))
        elif kind == script:
            scripted = chase_actions if script == "chase" else flee_actions
            parts.append(scripted(cfg, positions, captured, velocities))
        else:
            raise ValueError(f"{name} must be '{script}' or 'random' (got {kind!r}).")
    return np.concatenate(parts, axis=len(lead))


__all__ = ["COVERAGE_BASELINES", "LawnmowerPilot", "chase_actions", "evaluate_coverage_baseline", "flee_actions", "pursuit_actions",
           "random_walk_actions"]
