"""The `flock` world: move the swarm to a goal region as a group.

N drones start as a compact cluster (`cluster_positions`) somewhere in a square arena and
must bring the whole swarm into a goal region, a disc of `goal_radius` around a goal centre at
least `goal_distance` from the start centroid, while flying as a flock. The reward holds
Reynolds' three objectives, each drone judged against the neighbours it hears (within
`comm_radius`, as the observation), plus a goal term:

- goal: `goal_weight` times the progress of the swarm centroid towards the goal centre this
  step (horizontal metres), and `goal_bonus` once every drone is inside the goal region,
  which ends the episode (terminated); minus `time_penalty` per step (the hurry: the
  progress term alone pays the same for a slow trip as for a fast one);
- cohesion: minus `cohesion_weight` times the mean over drones of the distance to the centroid
  of the neighbours it hears (a drone hearing none pays `comm_radius`: losing the group costs
  most);
- alignment: minus `alignment_weight` times the mean over drones of the distance between its
  velocity and its heard neighbours' mean velocity, over vxy (0 for a drone hearing none);
  the velocities are the true mean velocities over the step (displacement x policy_hz);
- separation: minus `separation_weight` times, per pair closer than `separation_distance`,
  the shortfall (separation_distance - distance) / separation_distance.
The vector environment adds the usual near-collision and geofence penalties.

The mission is the goal centre (x, y; MISSION_SIZE = 2), drawn per episode by `sample_mission`;
`mission_target` is that centre at start altitude with zero velocity, at every step. A drone
observes the goal relative to itself over the arena size (`flock_features`).

Metrics (`FlockTracker`): `time_to_goal`, policy steps until every drone is inside the goal
region (the steps so far while not, so max_steps for an episode that never gets there);
`spread`, the mean over the episode's steps of the mean drone distance to the swarm centroid
(m); `min_separation`, the smallest pairwise distance over the episode's steps (m); and
`goal_reached` (1 once every drone was inside).

Numpy only (the agent and monitor nodes import it): the mission (`sample_mission`,
`mission_target`, `uses_target`), the start sampler, the observation features (called by
`sim.obs`), the tracker, the scenario (`FlockScenario`) and the scripted baseline
(`flock_actions`, Reynolds boids with a goal-seeking term).
"""

from __future__ import annotations

import numpy as np

from sim import obs as O
from sim.config import FlockConfig
from sim.missions import MissionScenario
from sim.scenarios import pairwise_distances

MISSION_SIZE = 2
"""A flock's mission: the goal centre x, y (m, ENU); the goal is at start altitude."""

_MISSION_TRIES = 64


# ----------------------------------------------------------------------------------------
# Start cluster and mission
# ----------------------------------------------------------------------------------------
def cluster_offsets(cfg: FlockConfig) -> np.ndarray:
    """(N, 2) grid offsets of the start cluster around its centre: ceil(sqrt(N)) columns,
    `start_spacing` apart, centred."""
    n = cfg.num_drones
    cols = int(np.ceil(np.sqrt(n)))
    k = np.arange(n)
    xy = np.stack([k % cols, k // cols], axis=-1).astype(np.float64) * cfg.start_spacing
    return xy - xy.mean(axis=0)


def cluster_positions(cfg: FlockConfig, rng: np.random.Generator, count: int) -> np.ndarray:
    """Start positions (count, N, 3) of compact clusters: the grid of `cluster_offsets`
    around a centre uniform in the arena (keeping `cluster_margin` between the fence and the
    cluster), each drone jittered by up to a quarter of the spare spacing per axis, so no
    two drones start closer than collision_distance; at start altitude."""
    offsets = cluster_offsets(cfg)
    lo, hi = cfg.cluster_box
    centre = lo + (hi - lo) * rng.random((count, 2))
    spare = cfg.start_spacing - cfg.collision_distance
    jitter = 0.25 * spare * (2 * rng.random((count, cfg.num_drones, 2)) - 1)
    xy = centre[:, None] + offsets + jitter
    z = np.full(xy.shape[:-1] + (1,), cfg.start_altitude)
    return np.concatenate([xy, z], axis=-1)


def uses_target(cfg: FlockConfig) -> bool:
    """The goal is the mission target: every flock observation needs it."""
    return True


def sample_mission(cfg: FlockConfig, rng: np.random.Generator, start_pos: np.ndarray) -> np.ndarray:
    """Goal centres (E, 2) for start positions (E, N, 3): uniform in the goal box (the goal
    region goal_radius inside the fence), redrawn while closer than `goal_distance` to the
    start centroid; after 64 draws the box corner farthest from the centroid."""
    start_pos = np.asarray(start_pos, dtype=np.float64)
    centroid = start_pos[..., :2].mean(axis=-2).reshape(-1, 2)
    e = centroid.shape[0]
    lo, hi = cfg.goal_box
    goal = np.zeros((e, 2))
    todo = np.ones(e, dtype=bool)
    for _ in range(_MISSION_TRIES):
        draw = lo + (hi - lo) * rng.random((e, 2))
        ok = todo & (np.linalg.norm(draw - centroid, axis=-1) >= cfg.goal_distance)
        goal[ok] = draw[ok]
        todo &= ~ok
        if not todo.any():
            break
    if todo.any():
        corners = np.array([[lo, lo], [lo, hi], [hi, lo], [hi, hi]])
        far = np.linalg.norm(corners[None] - centroid[:, None], axis=-1).argmax(axis=-1)
        goal[todo] = corners[far[todo]]
    return goal.reshape(start_pos.shape[:-2] + (2,))


def mission_target(cfg: FlockConfig, mission: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The goal centre at start altitude with zero velocity, (..., 6), at any step."""
    mission = np.asarray(mission, dtype=np.float64)
    shape = np.broadcast_shapes(mission.shape[:-1], np.shape(step))
    out = np.zeros(shape + (6,))
    out[..., :2] = mission[..., :2]
    out[..., 2] = cfg.start_altitude
    return out


def inside_goal(cfg: FlockConfig, pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., N) whether each drone is inside the goal region: horizontally within goal_radius
    of the goal centre (target (..., 6))."""
    goal = np.asarray(target, dtype=np.float64)[..., None, :2]
    return np.linalg.norm(np.asarray(pos)[..., :2] - goal, axis=-1) <= cfg.goal_radius


# ----------------------------------------------------------------------------------------
# Observation features (called by sim.obs for every drone)
# ----------------------------------------------------------------------------------------
def feature_layout(cfg: FlockConfig) -> list[tuple[str, int]]:
    return [("goal", 3)]  # goal centre relative to the drone / arena_size


def flock_features(cfg: FlockConfig, own_pos: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """The flock part of a drone's observation, (..., 3) float32: the goal centre (the mission
    target's position) relative to the drone, over arena_size."""
    if target is None:
        raise ValueError("flock observations need the mission target (..., 6): the goal centre "
                         "and zero velocity (sim.flock.mission_target; /mission/target on ROS).")
    target = np.broadcast_to(np.asarray(target, dtype=np.float64), own_pos.shape[:-1] + (6,))
    return ((target[..., :3] - own_pos) / cfg.arena_size).astype(O.OBS_DTYPE)


# ----------------------------------------------------------------------------------------
# Reynolds terms
# ----------------------------------------------------------------------------------------
def heard_neighbours(cfg: FlockConfig, pos: np.ndarray) -> np.ndarray:
    """(E, N, N) which other drones each drone hears (within comm_radius, not itself)."""
    return pairwise_distances(pos) <= cfg.comm_radius


def reynolds_terms(cfg: FlockConfig, pos: np.ndarray, vel: np.ndarray) -> dict[str, np.ndarray]:
    """The per-env Reynolds costs (E,) on true states, before their weights: `cohesion` (mean
    distance to the heard neighbours' centroid, comm_radius for a drone hearing none),
    `alignment` (mean |v - heard neighbours' mean v| / vxy, 0 hearing none) and `separation`
    (sum over pairs closer than separation_distance of the relative shortfall)."""
    pos = np.asarray(pos, dtype=np.float64)
    vel = np.asarray(vel, dtype=np.float64)
    dist = pairwise_distances(pos)
    heard = (dist <= cfg.comm_radius).astype(np.float64)
    count = heard.sum(axis=-1)  # (E, N)
    alone = count == 0
    safe = np.maximum(count, 1.0)[..., None]
    centre = np.einsum("enm,emk->enk", heard, pos) / safe
    mean_vel = np.einsum("enm,emk->enk", heard, vel) / safe
    cohesion = np.where(alone, cfg.comm_radius, np.linalg.norm(centre - pos, axis=-1))
    alignment = np.where(alone, 0.0, np.linalg.norm(mean_vel - vel, axis=-1) / cfg.vxy)
    short = np.clip((cfg.separation_distance - dist) / cfg.separation_distance, 0.0, None)
    separation = np.triu(short, k=1).sum(axis=(-2, -1)) if pos.ndim == 3 else None
    return {"cohesion": cohesion.mean(axis=-1), "alignment": alignment.mean(axis=-1),
            "separation": separation}


def spread(pos: np.ndarray) -> np.ndarray:
    """(E,) mean horizontal-and-vertical distance of the drones to the swarm centroid."""
    pos = np.asarray(pos, dtype=np.float64)
    return np.linalg.norm(pos - pos.mean(axis=-2, keepdims=True), axis=-1).mean(axis=-1)


def centroid_distance(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(E,) horizontal distance from the swarm centroid to the goal centre."""
    return np.linalg.norm(np.asarray(pos)[..., :2].mean(axis=-2) - np.asarray(target)[..., :2],
                          axis=-1)


# ----------------------------------------------------------------------------------------
# The metrics
# ----------------------------------------------------------------------------------------
class FlockTracker:
    """The episode's metrics, (E,) each: `time_to_goal` (policy steps until every drone was
    inside the goal region, the steps so far while not), `spread` (mean over the steps of the
    mean distance to the swarm centroid, m), `min_separation` (smallest pairwise distance
    over the steps, m; +inf before the first step or with one drone) and `goal_reached`
    (1.0 once every drone was inside). The scenario and the ROS monitor node use this class."""

    def __init__(self, cfg: FlockConfig, num_envs: int):
        self.cfg = cfg
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.arrival = np.zeros(num_envs, dtype=np.int64)  # 0: not yet
        self.spread_total = np.zeros(num_envs)
        self.min_sep = np.full(num_envs, np.inf)

    def reset(self, env_ids) -> None:
        self.steps[env_ids] = 0
        self.arrival[env_ids] = 0
        self.spread_total[env_ids] = 0.0
        self.min_sep[env_ids] = np.inf

    def update(self, pos: np.ndarray, vel: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Score one policy step (states after it, (E, N, 3); target (E, 6)); returns whether
        every drone is inside the goal region now, (E,)."""
        pos = np.asarray(pos, dtype=np.float64)
        self.steps += 1
        arrived = inside_goal(self.cfg, pos, target).all(axis=-1)
        self.arrival = np.where((self.arrival == 0) & arrived, self.steps, self.arrival)
        self.spread_total += spread(pos)
        if pos.shape[-2] > 1:
            self.min_sep = np.minimum(self.min_sep, pairwise_distances(pos).min(axis=(-2, -1)))
        return arrived

    def metrics(self) -> dict[str, np.ndarray]:
        reached = self.arrival > 0
        return {"time_to_goal": np.where(reached, self.arrival, self.steps).astype(np.float64),
                "spread": self.spread_total / np.maximum(self.steps, 1),
                "min_separation": self.min_sep.copy(),
                "goal_reached": reached.astype(np.float64)}


# ----------------------------------------------------------------------------------------
# The scenario
# ----------------------------------------------------------------------------------------
class FlockScenario(MissionScenario):
    """Rules in `sim.config.FlockConfig` and this module's docstring (the mission bookkeeping:
    `sim.missions.MissionScenario`)."""

    cfg: FlockConfig

    def __init__(self, cfg: FlockConfig, num_envs: int):
        super().__init__(cfg, num_envs)
        self.last_distance = np.zeros(num_envs)
        self.last_pos = np.zeros((num_envs, cfg.num_drones, 3))

    def start_positions(self, rng, count):
        return cluster_positions(self.cfg, rng, count)

    def reset(self, env_ids, pos, rng):
        super().reset(env_ids, pos, rng)
        self.last_distance[env_ids] = centroid_distance(pos, self.target(env_ids))
        self.last_pos[env_ids] = pos

    def progress(self, pos):
        cfg = self.cfg
        self.steps += 1
        target = self.target()
        vel = (pos - self.last_pos) * cfg.policy_hz  # each drone's mean velocity over the step
        self.last_pos = pos.copy()
        arrived = self.tracker.update(pos, vel, target)
        distance = centroid_distance(pos, target)
        terms = reynolds_terms(cfg, pos, vel)
        reward = (cfg.goal_weight * (self.last_distance - distance) + cfg.goal_bonus * arrived
                  - cfg.time_penalty - cfg.cohesion_weight * terms["cohesion"]
                  - cfg.alignment_weight * terms["alignment"]
                  - cfg.separation_weight * terms["separation"])
        self.last_distance = distance
        return reward, arrived, self.tracker.metrics()

    @property
    def state_size(self) -> int:
        return self.cfg.num_drones * 6 + 3 + 1

    def state(self, pos, vel, t):
        """Every drone's own features, the goal centre (scaled as own_features scales a
        position) and the time left."""
        target = self.target()
        goal = O.own_features(target[:, :3], target[:, 3:], self.cfg)[:, :3]
        time_left = 1.0 - t / self.cfg.max_steps
        return np.concatenate([self._drone_state(pos, vel), goal, time_left[:, None]],
                              axis=1).astype(np.float32)


# ----------------------------------------------------------------------------------------
# The scripted baseline
# ----------------------------------------------------------------------------------------
def flock_actions(cfg: FlockConfig, positions: np.ndarray, target: np.ndarray,
                  velocities: np.ndarray | None = None, goal_gain: float = 1.5,
                  cohesion: float = 0.2, alignment: float = 0.5, separation: float = 2.0
                  ) -> np.ndarray:
    """Reynolds boids with a goal-seeking term, fixed weights: continuous actions (..., N, 4).

    Every drone's horizontal velocity setpoint (m/s) is
      goal_gain * (goal - p)                         (seek, proportional, arrives and stops)
    + cohesion * (centroid of the heard neighbours - p)
    + alignment * (heard neighbours' mean velocity - v)   (when `velocities` is given)
    + separation * sum over heard neighbours closer than separation_distance of
      (p - q) / |p - q| * (separation_distance - |p - q|) / separation_distance * vxy,
    clipped to the limits; altitude held at start altitude, no yaw. Neighbours are those
    within comm_radius, as a drone hears them. positions: (..., N, 3) or (N, 3); target:
    (..., 6) the goal (mission target)."""
    pos = np.asarray(positions, dtype=np.float64)
    single = pos.ndim == 2
    if single:
        pos = pos[None]
    vel = (np.zeros_like(pos) if velocities is None
           else np.asarray(velocities, dtype=np.float64).reshape(pos.shape))
    target = np.asarray(target, dtype=np.float64).reshape(pos.shape[:-2] + (6,))
    lead = pos.shape[:-2]
    pos, vel, target = pos.reshape((-1,) + pos.shape[-2:]), vel.reshape(pos.shape), target.reshape(-1, 6)
    dist = pairwise_distances(pos)
    heard = (dist <= cfg.comm_radius).astype(np.float64)
    count = heard.sum(axis=-1)[..., None]
    safe = np.maximum(count, 1.0)
    centre = np.einsum("enm,emk->enk", heard, pos) / safe
    mean_vel = np.einsum("enm,emk->enk", heard, vel) / safe
    setpoint = goal_gain * (target[:, None, :3] - pos)
    setpoint += np.where(count > 0, cohesion * (centre - pos) + alignment * (mean_vel - vel), 0.0)
    rel = pos[:, :, None, :] - pos[:, None, :, :]  # (E, N, N, 3) p_i - p_j
    d = np.where(np.isfinite(dist), dist, 1.0)[..., None]
    push = np.clip((cfg.separation_distance - dist) / cfg.separation_distance, 0.0, None)[..., None]
    setpoint += separation * cfg.vxy * (rel / np.maximum(d, 1e-6) * push).sum(axis=2)
    setpoint[..., 2] = goal_gain * (cfg.start_altitude - pos[..., 2])
    actions = np.zeros(pos.shape[:-1] + (4,))
    actions[..., :3] = setpoint / np.array([cfg.vxy, cfg.vxy, cfg.vz])
    actions = np.clip(actions, -1.0, 1.0).reshape(lead + actions.shape[-2:])
    return actions[0] if single else actions


def straight_actions(cfg: FlockConfig, positions: np.ndarray, target: np.ndarray,
                     gain: float = 1.5) -> np.ndarray:
    """Every drone flies straight to the goal centre on its own (proportional, no flocking):
    `flock_actions` with the cohesion, alignment and separation weights at 0."""
    return flock_actions(cfg, positions, target, None, goal_gain=gain, cohesion=0.0,
                         alignment=0.0, separation=0.0)


BASELINES = ("boids", "straight", "random")


def evaluate_baseline(controller: str = "boids", episodes: int = 10, backend: str = "pybullet",
                      seed: int = 12345, **params) -> dict[str, float]:
    """Mean end-of-episode figures of a baseline over `episodes` episodes run at once (each
    env's first episode): "boids" (`flock_actions`), "straight" (`straight_actions`) or
    "random" (`sim.scripted.random_walk_actions`, the floor). The same figures and
    evaluation seed as `marl-ros eval`. The scripted controllers read the true states."""
    import sim
    from sim.scripted import first_episode_figures, random_walk_actions

    if controller not in BASELINES:
        raise ValueError(f"controller must be one of {', '.join(BASELINES)} (got {controller!r}).")
    venv = sim.make_vec_env("flock", episodes, backend=backend, seed=seed, **params)
    rng = np.random.default_rng(seed)
    venv.reset(seed=seed)
    shape = (venv.num_envs, venv.num_agents)
    keys = ("time_to_goal", "spread", "min_separation", "goal_reached", "episode_return",
            "episode_length", "episode_collisions")

    def choose() -> np.ndarray:
        target = venv.scenario.target()
        if controller == "boids":
            return flock_actions(venv.cfg, venv.positions, target, venv.velocities)
        if controller == "straight":
            return straight_actions(venv.cfg, venv.positions, target)
        return random_walk_actions(venv.cfg, rng, shape)

    return first_episode_figures(venv, choose, keys)


__all__ = ["BASELINES", "evaluate_baseline", "FlockScenario", "FlockTracker", "MISSION_SIZE", "centroid_distance",
           "cluster_offsets", "cluster_positions", "feature_layout", "flock_actions",
           "flock_features", "heard_neighbours", "inside_goal", "mission_target",
           "reynolds_terms", "sample_mission", "spread", "straight_actions", "uses_target"]
