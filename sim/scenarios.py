"""Scenario logic shared by both dynamics backends: resets, rewards, termination, state.

Everything is batched over environments: arrays are shaped (envs, drones, ...).
A scenario never touches the physics; it reads drone positions and velocities the
dynamics backend produced and keeps the task's own arrays (coverage maps, beliefs,
landmarks). Observations come from `sim.obs`, the contract shared with the robots.
"""

from __future__ import annotations

import functools

import numpy as np

from sim import neighbours
from sim import obs as O
from sim import obstacles as obstacle_geometry
from sim.config import (
    CoverageConfig,
    FlockConfig,
    FormationConfig,
    PursuitConfig,
    SpreadConfig,
    SwarmConfig,
)


def start_positions(cfg: SwarmConfig, rng: np.random.Generator, count: int) -> np.ndarray:
    """Random, well separated start positions at start altitude: (count, N, 3).

    Drones take distinct spots of a grid with start spacing, jittered inside their spot,
    so no two start closer than the near-collision distance.
    """
    fx, fy = cfg.field_size
    s = cfg.start_spacing
    nx, ny = int(fx / s), int(fy / s)
    gx, gy = fx / nx, fy / ny  # spot size >= s
    spots = rng.random((count, nx * ny)).argsort(axis=1)[:, : cfg.num_drones]
    col, row = spots % nx, spots // nx
    # Jitter within the spot while keeping the margin that guarantees separation.
    jitter = (gx - s) * (rng.random(spots.shape) - 0.5), (gy - s) * (rng.random(spots.shape) - 0.5)
    x = (col + 0.5) * gx + jitter[0]
    y = (row + 0.5) * gy + jitter[1]
    z = np.full_like(x, cfg.start_altitude)
    return np.stack([x, y, z], axis=-1)


def pairwise_distances(pos: np.ndarray) -> np.ndarray:
    """(E, N, N) distances, +inf on the diagonal."""
    d = O.norms(pos[:, :, None, :] - pos[:, None, :, :])
    n = pos.shape[1]
    d[:, np.arange(n), np.arange(n)] = np.inf
    return d


def own_safety_counts(pos: np.ndarray, cfg: SwarmConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each drone's near-collision partners and whether it is outside the geofence, (E, N)
    each: half of each pair's count per partner, so the drones' sums are `safety_counts`."""
    if pos.shape[1] > neighbours.DENSE_MAX_DRONES:
        partners = neighbours.close_partner_counts(pos, cfg.collision_distance)
    else:
        partners = (pairwise_distances(pos) < cfg.collision_distance).sum(axis=2)
    return 0.5 * partners, (~O.inside_geofence(pos, cfg)).astype(np.float64)


def safety_counts(pos: np.ndarray, cfg: SwarmConfig) -> tuple[np.ndarray, np.ndarray]:
    """Near-collision pairs and drones outside the geofence, per env: (E,), (E,)."""
    n = pos.shape[1]
    if n > neighbours.DENSE_MAX_DRONES:
        close = neighbours.close_pair_counts(pos, cfg.collision_distance)
    else:  # each pair once, pairs first (outer axis: cheap to sum over)
        first, second = _drone_pairs(n)
        drones = pos.transpose(1, 0, 2)
        d = O.norms(np.take(drones, first, axis=0) - np.take(drones, second, axis=0))
        close = (d < cfg.collision_distance).sum(axis=0)
    outside = (~O.inside_geofence(pos, cfg)).sum(axis=1)
    return close, outside


@functools.cache
def _drone_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The drone pairs i < j of N drones (`np.triu_indices`), made once per N."""
    return np.triu_indices(n, 1)


class Scenario:
    """Base class: the per-task part of the vector environment."""

    cfg: SwarmConfig
    # A competitive task pays each drone its own reward (`drone_rewards`, penalties included,
    # set by `progress`) instead of the team reward the vector env composes.
    zero_sum = False
    drone_rewards: np.ndarray

    def __init__(self, cfg: SwarmConfig, num_envs: int):
        self.cfg = cfg
        self.num_envs = num_envs
        n = cfg.num_drones
        self.other_valid = ~np.eye(n, dtype=bool)[None].repeat(num_envs, axis=0)  # (E, N, N)

    # hooks ---------------------------------------------------------------------------------
    def start_positions(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Start positions of `count` episodes, (count, N, 3): the shared spaced grid unless the
        task needs its own (the simulator node calls this too, so ROS flights start alike)."""
        return start_positions(self.cfg, rng, count)

    def reset(self, env_ids: np.ndarray, pos: np.ndarray, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def progress(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """After a physics step: task reward (E,), terminated (E,), task metrics."""
        raise NotImplementedError

    def observe_tick(self, pos: np.ndarray, vel: np.ndarray, env_ids=slice(None),
                     received: np.ndarray | None = None) -> np.ndarray:
        """Every drone's policy tick: update what it believes from what it hears, then its
        observation, (E, N, D). Call once per step (and once after a reset). received:
        (E, N, N) which other drones' states each drone received this tick (None: all)."""
        raise NotImplementedError

    def state(self, pos: np.ndarray, vel: np.ndarray, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def state_size(self) -> int:
        raise NotImplementedError

    def metrics(self) -> dict[str, np.ndarray]:
        """The task metrics of the current episodes, (E,) each (what reset reports)."""
        return {}

    def speed_scale(self) -> np.ndarray | None:
        """Per-drone factor on the velocity limits, (N,), or None where all fly the same."""
        return None

    def fly(self, setpoints: np.ndarray) -> np.ndarray:
        """The setpoints (E, N, 4) the drones fly this step: the commands, unless the task
        overrides some (drones out of play hover)."""
        return setpoints

    # shared pieces -------------------------------------------------------------------------
    def _received(self, env_ids, received: np.ndarray | None) -> np.ndarray:
        """Which other drones' states each drone has this tick: (E, N, N) bool."""
        valid = self.other_valid[env_ids]
        return valid if received is None else valid & received

    def _others(self, pos: np.ndarray, vel: np.ndarray, env_ids,
                received: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What each drone may hear: positions and velocities (E, N, M, 3) of other drones
        and which entries are real (E, N, M). Small swarms: all N drones (M = N, masked by
        other_valid); large ones: only the drones within the communication radius
        (sim.neighbours, O(N) instead of O(N^2)). sim.obs applies the radius itself, so the
        observation is the same either way."""
        return self._others_indexed(pos, vel, env_ids, received)[:3]

    def _others_indexed(self, pos, vel, env_ids, received):
        """`_others` and the drone index of every entry, (E, N, M), or None for the small-swarm
        layout (entry j is drone j)."""
        n = self.cfg.num_drones
        if n <= neighbours.DENSE_MAX_DRONES:
            return (np.broadcast_to(pos[:, None], pos.shape[:1] + (n,) + pos.shape[1:]),
                    np.broadcast_to(vel[:, None], vel.shape[:1] + (n,) + vel.shape[1:]),
                    self._received(env_ids, received), None)
        index, valid = neighbours.neighbours_within(pos, self.cfg.comm_radius)
        if received is not None:
            valid &= np.take_along_axis(received, index, axis=2)
        rows = np.arange(pos.shape[0])[:, None, None]
        return pos[rows, index], vel[rows, index], valid, index

    def _drone_state(self, pos: np.ndarray, vel: np.ndarray) -> np.ndarray:
        return O.own_features(pos, vel, self.cfg).reshape(pos.shape[0], -1)


class CoverageScenario(Scenario):
    """Coverage, with `cfg.obstacles` static obstacles per episode (sim.obstacles): the
    layout (`centres`, `half_sizes`, `boxes`, (E, O, ...)) is drawn at each reset from the
    env's stream after the start positions. A drone closer to an obstacle's surface than its
    radius (`cfg.drone_radius`) is an obstacle collision: counted per drone and step
    (`obstacle_collisions`, the episode's count in the metrics) and paid obstacle_penalty
    each from the team reward; the drones fly on (a collision is scored, not simulated).
    Cells under an obstacle are covered like any other (a downward sensor sees its top)."""

    cfg: CoverageConfig

    def __init__(self, cfg: CoverageConfig, num_envs: int):
        super().__init__(cfg, num_envs)
        n = cfg.num_drones
        self.covered = O.new_belief(cfg, (num_envs,))  # ground truth, (E, Hp, Wp)
        self.belief = O.new_belief(cfg, (num_envs, n))  # each drone's own belief, (E, N, Hp, Wp)
        self.cells = cfg.width * cfg.height
        self.covered_count = np.zeros(num_envs, dtype=np.int64)
        self.centres, self.half_sizes, self.boxes = obstacle_geometry.empty_layout(cfg, (num_envs,))
        self.obstacle_collisions = np.zeros(num_envs, dtype=np.int64)
        # Heterogeneous swarms: each drone's footprint width by index (None: all cfg.footprint).
        self.footprints = O.drone_footprints(cfg) if cfg.heterogeneous else None

    def speed_scale(self) -> np.ndarray | None:
        return O.speed_scales(self.cfg) if self.cfg.speed_factors else None

    def reset(self, env_ids: np.ndarray, pos: np.ndarray, rng: np.random.Generator) -> None:
        if self.cfg.obstacles:  # after the start positions, from the same stream
            layout = obstacle_geometry.draw_obstacles(self.cfg, rng, pos)
            self.centres[env_ids], self.half_sizes[env_ids], self.boxes[env_ids] = layout
        self.obstacle_collisions[env_ids] = 0
        fresh = O.new_belief(self.cfg)
        self.covered[env_ids] = fresh
        self.belief[env_ids] = fresh  # the first observe_tick marks what the drones see
        # Take-off position counts: drones start over the field and see below them.
        cov = self.covered[env_ids]
        O.mark_footprints(cov, pos, None, self.cfg, self.footprints)
        self.covered[env_ids] = cov
        self.covered_count[env_ids] = self._count(env_ids)

    def task_shares(self, pos: np.ndarray) -> np.ndarray:
        """Each drone's share of the coverage reward the step at `pos` is about to score, (E, N):
        the cells still to cover under its footprint, a cell under k footprints counting 1/k,
        over the field's cells, minus obstacle_penalty if it is in an obstacle collision (call
        before `progress`). The drones' sum is the reward."""
        cfg = self.cfg
        e = pos.shape[0]
        ix, iy = O.position_to_cell(pos, cfg)
        reach = cfg.widest_footprint // 2
        offsets = np.arange(-reach, reach + 1)
        cols = ix[..., None, None] + offsets[None, :]  # (E, N, 1, F)
        rows = iy[..., None, None] + offsets[:, None]  # (E, N, F, 1)
        in_field = (cols >= 0) & (cols < cfg.width) & (rows >= 0) & (rows < cfg.height)
        if self.footprints is not None:  # each drone's own footprint inside the widest one
            own = (self.footprints // 2)[:, None, None]  # (N, 1, 1)
            in_field &= (np.abs(offsets)[None, :] <= own) & (np.abs(offsets)[:, None] <= own)
        cell = np.clip(rows, 0, cfg.height - 1) * cfg.width + np.clip(cols, 0, cfg.width - 1)
        todo = (O.belief_interior(self.covered, cfg) == O.TO_COVER).reshape(e, -1)
        env = np.broadcast_to(np.arange(e)[:, None, None, None], cell.shape)
        # as mark_footprints: a drone outside the geofence covers nothing
        new = in_field & O.inside_geofence(pos, cfg)[..., None, None] & todo[env, cell]
        counts = np.zeros_like(todo, dtype=np.float64)
        np.add.at(counts, (env[new], cell[new]), 1.0)
        share = np.where(new, 1.0 / np.maximum(counts[env, cell], 1.0), 0.0)
        own_hits = self.obstacle_hits(pos)
        return share.sum(axis=(-2, -1)) / self.cells - self.cfg.obstacle_penalty * own_hits

    def obstacle_hits(self, pos: np.ndarray) -> np.ndarray:
        """Which drones at `pos` (E, N, 3) collide with an obstacle of their env, (E, N)."""
        return obstacle_geometry.obstacle_hits(pos, self.centres, self.half_sizes, self.boxes,
                                               self.cfg)

    def range_readings(self, pos: np.ndarray, env_ids=slice(None)) -> np.ndarray:
        """The analytic range readings (E, N, R) of drones at `pos` in envs `env_ids`."""
        return obstacle_geometry.range_readings(
            pos, self.centres[env_ids], self.half_sizes[env_ids], self.boxes[env_ids],
            self.cfg.range_rays, self.cfg.range_max)

    def metrics(self) -> dict[str, np.ndarray]:
        out = {"coverage": self.covered_count / self.cells}
        if self.cfg.obstacles:
            out["obstacle_collisions"] = self.obstacle_collisions.astype(np.float64)
        return out

    def _count(self, env_ids: np.ndarray | slice = slice(None)) -> np.ndarray:
        return (O.belief_interior(self.covered[env_ids], self.cfg) == O.COVERED).sum(axis=(-2, -1))

    def progress(self, pos):
        O.mark_footprints(self.covered, pos, None, self.cfg, self.footprints)
        count = self._count()
        newly = count - self.covered_count
        self.covered_count = count
        reward = newly / self.cells
        terminated = count >= self.cells
        if self.cfg.obstacles:
            hits = self.obstacle_hits(pos).sum(axis=1)
            self.obstacle_collisions += hits
            reward = reward - self.cfg.obstacle_penalty * hits
        return reward, terminated, self.metrics()

    def observe_tick(self, pos, vel, env_ids=slice(None), received=None, ranges=None):
        """ranges: (E, N, R) the drones' range readings, metres (with cfg.range_rays)."""
        others_p, others_v, valid, index = self._others_indexed(pos, vel, env_ids, received)
        extra = {"ranges": ranges}
        if self.cfg.heterogeneous:  # profiles by drone index (dense layout: entry j is drone j)
            n = self.cfg.num_drones
            extra.update(own_id=np.arange(n), other_ids=np.arange(n) if index is None else index)
        if isinstance(env_ids, slice):
            return O.observe_tick(self.cfg, pos, vel, others_p, others_v, valid,
                                  belief=self.belief[env_ids], **extra)
        belief = self.belief[env_ids]  # a copy (fancy index): write it back after the update
        obs = O.observe_tick(self.cfg, pos, vel, others_p, others_v, valid, belief=belief,
                             **extra)
        self.belief[env_ids] = belief
        return obs

    @property
    def state_size(self) -> int:
        return self.cfg.num_drones * 6 + self.cells + 1 + 5 * self.cfg.obstacles

    def state(self, pos, vel, t):
        todo = O.belief_interior(self.covered, self.cfg).reshape(self.num_envs, -1)
        time_left = 1.0 - t / self.cfg.max_steps
        parts = [self._drone_state(pos, vel), todo, time_left[:, None]]
        if self.cfg.obstacles:  # the critic sees the layout
            parts.append(obstacle_geometry.layout_features(self.cfg, self.centres,
                                                           self.half_sizes, self.boxes))
        return np.concatenate(parts, axis=1).astype(np.float32)


class SpreadScenario(Scenario):
    cfg: SpreadConfig

    def __init__(self, cfg: SpreadConfig, num_envs: int):
        super().__init__(cfg, num_envs)
        self.landmarks = np.zeros((num_envs, cfg.num_landmarks, 3))

    def reset(self, env_ids, pos, rng):
        lm = start_positions(self.cfg, rng, len(env_ids))
        lm[..., 2] = self.cfg.landmark_altitude
        self.landmarks[env_ids] = lm

    def nearest_drones(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(E, L) distance from each landmark to its nearest drone, and that drone's index."""
        if pos.shape[1] > neighbours.DENSE_MAX_DRONES:
            return neighbours.nearest_drones(self.landmarks, pos)
        d = self._drone_landmark_distances(pos)
        return d.min(axis=0), d.argmin(axis=0)

    def nearest_distances(self, pos: np.ndarray) -> np.ndarray:
        """(E, L) distance from each landmark to its nearest drone."""
        if pos.shape[1] > neighbours.DENSE_MAX_DRONES:
            return neighbours.nearest_drones(self.landmarks, pos)[0]
        return self._drone_landmark_distances(pos).min(axis=0)

    def _drone_landmark_distances(self, pos: np.ndarray) -> np.ndarray:
        """(N, E, L) distance from every drone to every landmark of its env, drones first: the
        nearest drone is then a reduction over the outer axis, several times cheaper than over
        a short inner one."""
        return O.norms(O.relative(self.landmarks[None], pos.transpose(1, 0, 2)))

    def task_shares(self, pos: np.ndarray) -> np.ndarray:
        """Each drone's share of the step's reward, (E, N): minus the distances of the
        landmarks it is the nearest drone to. The drones' sum is the reward."""
        dist, nearest = self.nearest_drones(pos)
        share = np.zeros(pos.shape[:2])
        env = np.broadcast_to(np.arange(pos.shape[0])[:, None], dist.shape)
        np.add.at(share, (env, nearest), -dist)
        return share

    def progress(self, pos):
        dist = self.nearest_distances(pos)
        reward = -dist.sum(axis=1)
        terminated = np.zeros(self.num_envs, dtype=bool)
        return reward, terminated, {"mean_landmark_distance": dist.mean(axis=1)}

    def observe_tick(self, pos, vel, env_ids=slice(None), received=None):
        others_p, others_v, valid = self._others(pos, vel, env_ids, received)
        return O.observe_tick(self.cfg, pos, vel, others_p, others_v, valid,
                              landmarks=self.landmarks[env_ids][:, None])

    @property
    def state_size(self) -> int:
        return self.cfg.num_drones * 6 + self.cfg.num_landmarks * 3 + 1

    def state(self, pos, vel, t):
        fx, fy = self.cfg.field_size
        lm = (self.landmarks / np.array([fx, fy, self.cfg.altitude_max])).reshape(self.num_envs, -1)
        time_left = 1.0 - t / self.cfg.max_steps
        return np.concatenate([self._drone_state(pos, vel), lm, time_left[:, None]],
                              axis=1).astype(np.float32)


class PursuitScenario(Scenario):
    """Pursuers chase evaders; the rules and rewards are in `sim.config.PursuitConfig`.

    Captures are checked on the true positions after each step. `captured` (E, num_evaders)
    marks the evaders out of play; `first_capture` (E,) the step of the episode's first
    capture (0: none yet).
    """

    cfg: PursuitConfig
    zero_sum = True

    def __init__(self, cfg: PursuitConfig, num_envs: int):
        super().__init__(cfg, num_envs)
        n, p = cfg.num_drones, cfg.num_pursuers
        self.teams = O.team_flags(cfg)  # (N,) +1 pursuer, -1 evader
        self._speed = O.speed_scales(cfg)
        self.captured = np.zeros((num_envs, cfg.num_evaders), dtype=bool)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.first_capture = np.zeros(num_envs, dtype=np.int64)
        self.drone_rewards = np.zeros((num_envs, n))
        self.team_rewards = np.zeros((num_envs, 2))  # (pursuers, evaders): opposite numbers
        # Cells view: the other drones of each drone, in index order, (N, N - 1).
        self._other_ids = np.array([[j for j in range(n) if j != i] for i in range(n)],
                                   dtype=np.intp).reshape(n, n - 1)
        self._pursuers, self._evaders = slice(0, p), slice(p, n)

    def reset(self, env_ids, pos, rng):
        self.captured[env_ids] = False
        self.steps[env_ids] = 0
        self.first_capture[env_ids] = 0

    def out_of_play(self, env_ids=slice(None)) -> np.ndarray:
        """(E, N) drones out of play: the captured evaders."""
        out = np.zeros(self.captured[env_ids].shape[:1] + (self.cfg.num_drones,), dtype=bool)
        out[:, self._evaders] = self.captured[env_ids]
        return out

    def speed_scale(self) -> np.ndarray:
        return self._speed

    def fly(self, setpoints):
        setpoints = setpoints.copy()
        setpoints[self.out_of_play()] = 0.0  # a captured evader hovers where it was caught
        return setpoints

    def capture_distances(self, pos: np.ndarray) -> np.ndarray:
        """(E, num_evaders) horizontal distance from each evader to its nearest pursuer."""
        pur, eva = pos[:, self._pursuers, None, :2], pos[:, None, self._evaders, :2]
        return np.linalg.norm(eva - pur, axis=-1).min(axis=1)

    def progress(self, pos):
        cfg = self.cfg
        self.steps += 1
        in_play = ~self.captured
        caught = in_play & ((self.capture_distances(pos) <= cfg.capture_radius)
                            | ~O.inside_geofence(pos[:, self._evaders], cfg))
        self.captured |= caught
        count = caught.sum(axis=1)
        self.first_capture = np.where((self.first_capture == 0) & (count > 0), self.steps,
                                      self.first_capture)
        # Safety within each team; a violation is paid to the other team (zero-sum).
        close = pairwise_distances(pos) < cfg.collision_distance
        pursuer_pairs = np.triu(close[:, self._pursuers, self._pursuers], k=1).sum(axis=(1, 2))
        evader_close = close[:, self._evaders, self._evaders] & in_play[:, :, None] & in_play[:, None, :]
        evader_pairs = np.triu(evader_close, k=1).sum(axis=(1, 2))
        pursuers_out = (~O.inside_geofence(pos[:, self._pursuers], cfg)).sum(axis=1)
        pursuer = (count - cfg.time_penalty - cfg.collision_penalty * (pursuer_pairs - evader_pairs)
                   - cfg.geofence_penalty * pursuers_out)
        evader = 0.0 - pursuer  # (0.0 - x, not -x: no -0.0 rewards)
        self.team_rewards = np.stack([pursuer, evader], axis=1)
        self.drone_rewards = np.where(self.teams == O.PURSUER, pursuer[:, None], evader[:, None])
        terminated = self.captured.all(axis=1)
        return pursuer, terminated, self.metrics()

    def metrics(self):
        """capture: the fraction of evaders captured this episode (1 v 1: 1 once caught);
        capture_time: policy steps to the first capture, the steps so far while none."""
        time = np.where(self.first_capture > 0, self.first_capture, self.steps)
        return {"capture": self.captured.mean(axis=1), "capture_time": time.astype(np.float64)}

    def observe_tick(self, pos, vel, env_ids=slice(None), received=None):
        if self.cfg.view == "cells":  # every other drone's position, in index order
            return O.observe_tick(self.cfg, pos, vel, pos[:, self._other_ids], None)
        others_p, others_v, valid, index = self._others_indexed(pos, vel, env_ids, received)
        gone = self.out_of_play(env_ids)  # nobody hears a captured evader
        if index is None:
            valid = valid & ~gone[:, None, :]
            other_teams = self.teams
        else:
            valid = valid & ~np.take_along_axis(gone[:, None, :].repeat(index.shape[1], 1), index, 2)
            other_teams = self.teams[index]
        return O.observe_tick(self.cfg, pos, vel, others_p, others_v, valid,
                              own_team=self.teams, other_teams=other_teams)

    @property
    def state_size(self) -> int:
        return self.cfg.num_drones * 6 + self.cfg.num_evaders + 1

    def state(self, pos, vel, t):
        time_left = 1.0 - t / self.cfg.max_steps
        return np.concatenate([self._drone_state(pos, vel), self.captured.astype(np.float64),
                               time_left[:, None]], axis=1).astype(np.float32)


def make_scenario(cfg: SwarmConfig, num_envs: int) -> Scenario:
    if isinstance(cfg, CoverageConfig):
        return CoverageScenario(cfg, num_envs)
    if isinstance(cfg, SpreadConfig):
        return SpreadScenario(cfg, num_envs)
    if isinstance(cfg, PursuitConfig):
        return PursuitScenario(cfg, num_envs)
    if isinstance(cfg, FormationConfig):
        from sim.formation import FormationScenario

        return FormationScenario(cfg, num_envs)
    if isinstance(cfg, FlockConfig):
        from sim.flock import FlockScenario

        return FlockScenario(cfg, num_envs)
    raise TypeError(f"no scenario logic for {type(cfg).__name__}")
