"""The `formation` world: hold a shape around a reference while the reference moves.

N drones take the N slots of a shape (`sim.config.formation_offsets`: line, wedge, ring,
grid; neighbouring slots `spacing` apart, held in the world frame) around a reference point.
Which drone takes which slot is theirs to choose: the shape error is the mean drone-to-slot
distance under the optimal assignment of drones to slots, so any permutation of a perfect
formation scores 0.

The reference (`FormationConfig.reference`):
- "moving": the mission. It starts over the drones' start centroid (clipped into the box
  where the whole formation fits, `FormationConfig.reference_box`) and flies a straight leg
  at `reference_speed` with a random heading, reflected at the box's sides like a billiard
  ball: `mission_target` gives its position and velocity at any policy step in closed form,
  so the simulator and the ROS monitor node compute the same target from the same three
  mission numbers. The drones observe it as the mission target.
- "centroid": the swarm's own centroid. Each drone computes it from itself and the
  neighbours it hears (in the observation code, so a node computes it the same way); the
  metric uses the true centroid of all drones. No mission target.

Everything here is batched over leading dimensions and numpy only (the agent and monitor
nodes import it): the mission (`sample_mission`, `mission_target`, `uses_target`), the
observation features (`formation_features`, called by `sim.obs`), the metric tracker
(`FormationTracker`), the scenario (`FormationScenario`) and the scripted baseline
(`formation_actions`).
"""

from __future__ import annotations

import itertools

import numpy as np

from sim import obs as O
from sim.config import FormationConfig
from sim.missions import MissionScenario

MISSION_SIZE = 3
"""A moving reference's mission: start x, start y (m, ENU) and heading (rad, from +x)."""

SLOT_SCALE = 2.0
"""Metres per unit of the observation's relative slot positions."""

_PERMUTATION_MAX_DRONES = 7  # up to 7! = 5040 assignments are enumerated at once; beyond, scipy


# ----------------------------------------------------------------------------------------
# Shape and mission
# ----------------------------------------------------------------------------------------
def slot_offsets(cfg: FormationConfig) -> np.ndarray:
    """(N, 3) slot positions relative to the reference (z = 0), metres."""
    xy = np.asarray(cfg.slot_offsets(), dtype=np.float64).reshape(cfg.num_drones, 2)
    return np.concatenate([xy, np.zeros((cfg.num_drones, 1))], axis=1)


def slots(cfg: FormationConfig, reference: np.ndarray) -> np.ndarray:
    """Slot positions (..., N, 3) around reference positions (..., 3)."""
    return np.asarray(reference, dtype=np.float64)[..., None, :] + slot_offsets(cfg)


def uses_target(cfg: FormationConfig) -> bool:
    """A moving reference is the mission target; the centroid reference needs none."""
    return cfg.reference == "moving"


def sample_mission(cfg: FormationConfig, rng: np.random.Generator,
                   start_pos: np.ndarray) -> np.ndarray:
    """Missions (E, MISSION_SIZE) for start positions (E, N, 3): the start centroid clipped
    into the reference box, and a uniformly random heading (the rng's only draw)."""
    start_pos = np.asarray(start_pos, dtype=np.float64)
    low, high = cfg.reference_box
    start = np.clip(start_pos[..., :2].mean(axis=-2), low, high)
    heading = rng.uniform(-np.pi, np.pi, size=start.shape[:-1])
    return np.concatenate([start, heading[..., None]], axis=-1)


def mission_target(cfg: FormationConfig, mission: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The reference's position and velocity (..., 6) after `step` policy steps: the straight
    leg unfolded onto the box [low, high]^2 (a triangle wave per axis), at start_altitude."""
    mission = np.asarray(mission, dtype=np.float64)
    t = np.asarray(step, dtype=np.float64) / cfg.policy_hz
    low, high = cfg.reference_box
    span = high - low
    out = np.zeros(np.broadcast_shapes(mission.shape[:-1], t.shape) + (6,))
    heading = mission[..., 2]
    for axis, direction in enumerate((np.cos(heading), np.sin(heading))):
        speed = cfg.reference_speed * direction
        folded = np.mod(mission[..., axis] - low + speed * t, 2 * span)
        forward = folded <= span
        out[..., axis] = low + np.where(forward, folded, 2 * span - folded)
        out[..., 3 + axis] = np.where(forward, speed, -speed)
    out[..., 2] = cfg.start_altitude
    return out


# ----------------------------------------------------------------------------------------
# The shape error (assignment-free)
# ----------------------------------------------------------------------------------------
def _permutations(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.intp).reshape(-1, n)


_PERMS = {n: _permutations(n) for n in range(1, 5)}


def _slot_costs(pos: np.ndarray, slot_pos: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Every drone-to-slot distance, (B, N, N) with the batch flattened, and the batch shape."""
    pos = np.asarray(pos, dtype=np.float64)
    slot_pos = np.asarray(slot_pos, dtype=np.float64)
    n = pos.shape[-2]
    batch = np.broadcast_shapes(pos.shape[:-2], slot_pos.shape[:-2])
    cost = O.norms(pos[..., :, None, :] - slot_pos[..., None, :, :])
    return np.broadcast_to(cost, batch + (n, n)).reshape(-1, n, n), batch


def _best_slots(cost: np.ndarray) -> np.ndarray:
    """The slot of each drone under the assignment of least total distance, (B, N), for
    costs (B, N, N). Up to 7 drones every assignment is scored at once (24 for 4 drones);
    beyond, scipy's Hungarian algorithm per swarm."""
    n = cost.shape[-1]
    if n <= _PERMUTATION_MAX_DRONES:
        perms = _PERMS.get(n)
        if perms is None:
            perms = _PERMS[n] = _permutations(n)
        total = cost[:, np.arange(n), perms].sum(axis=-1)  # (B, P): drone i in slot perms[p, i]
        return perms[total.argmin(axis=-1)]
    from scipy.optimize import linear_sum_assignment

    return np.array([linear_sum_assignment(c)[1] for c in cost], dtype=np.intp).reshape(-1, n)


def best_assignment(pos: np.ndarray, slot_pos: np.ndarray) -> np.ndarray:
    """The slot index of each drone under the assignment of least total drone-to-slot
    distance, (..., N), for positions and slots (..., N, 3)."""
    cost, batch = _slot_costs(pos, slot_pos)
    return _best_slots(cost).reshape(batch + (cost.shape[-1],))


def matched_distances(pos: np.ndarray, slot_pos: np.ndarray) -> np.ndarray:
    """Each drone's distance to its slot under the best assignment (`best_assignment`),
    (..., N) metres; pos, slot_pos: (..., N, 3)."""
    cost, batch = _slot_costs(pos, slot_pos)
    slot = _best_slots(cost)
    matched = np.take_along_axis(cost, slot[..., None], axis=-1)[..., 0]
    return matched.reshape(batch + (cost.shape[-1],))


def shape_error(pos: np.ndarray, slot_pos: np.ndarray) -> np.ndarray:
    """Mean drone-to-slot distance under the best assignment of drones to slots, (...,) metres
    (`matched_distances` averaged over the drones)."""
    return matched_distances(pos, slot_pos).mean(axis=-1)


# ----------------------------------------------------------------------------------------
# Observation features (called by sim.obs for every drone)
# ----------------------------------------------------------------------------------------
def feature_layout(cfg: FormationConfig) -> list[tuple[str, int]]:
    return [
        ("slots", cfg.num_drones * 3),  # every slot relative to the drone / SLOT_SCALE, nearest first
        ("assigned_slot", 3),  # the drone's slot under the best assignment it can compute / SLOT_SCALE
        ("reference_velocity", 3),  # divided by the velocity limits
    ]


def observed_reference(cfg: FormationConfig, own_pos: np.ndarray, own_vel: np.ndarray,
                       other_pos: np.ndarray, other_vel: np.ndarray, heard: np.ndarray,
                       target: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The reference position and velocity a drone observes, (..., 3) each: the mission
    target (moving) or the centroid of itself and the neighbours it heard (centroid)."""
    if uses_target(cfg):
        if target is None:
            raise ValueError("formation observations with reference='moving' need the mission "
                             "target (..., 6): the reference's position and velocity "
                             "(sim.formation.mission_target; /mission/target on ROS).")
        target = np.broadcast_to(np.asarray(target, dtype=np.float64), own_pos.shape[:-1] + (6,))
        return target[..., :3], target[..., 3:]
    weight = heard.astype(np.float64)[..., None]
    count = 1.0 + weight.sum(axis=-2)
    ref_pos = (own_pos + (weight * other_pos).sum(axis=-2)) / count
    ref_vel = (own_vel + (weight * other_vel).sum(axis=-2)) / count
    return ref_pos, ref_vel


def assigned_slot(cfg: FormationConfig, own_pos: np.ndarray, other_pos: np.ndarray,
                  heard: np.ndarray, slot_pos: np.ndarray) -> np.ndarray:
    """The slot index (...,) a drone takes under the best assignment of itself and the
    neighbours it heard to the slots (least total distance; a neighbour it did not hear, or
    one beyond the N - 1 it lists, takes no slot). Every drone that hears the whole swarm
    computes the same assignment, so they agree on who flies where without a message.

    own_pos (..., 3), other_pos (..., M, 3) and heard (..., M) as the observation builder
    has them (any order, unheard rows ignored), slot_pos (..., N, 3)."""
    n = cfg.num_drones
    k = min(other_pos.shape[-2], n - 1)
    first = np.argsort(~heard, axis=-1, kind="stable")[..., :k]  # the heard rows first
    others = np.take_along_axis(other_pos, first[..., None], axis=-2)
    rows = np.concatenate([own_pos[..., None, :], others], axis=-2)
    cost = O.norms(rows[..., :, None, :] - slot_pos[..., None, :, :])
    # an unheard row costs 0 in any slot: it claims none
    cost[..., 1:, :] *= np.take_along_axis(heard, first, axis=-1)[..., None]
    if k + 1 < n:  # fewer drones than slots: rows of 0 take the slots left over
        cost = np.concatenate([cost, np.zeros(cost.shape[:-2] + (n - 1 - k, n))], axis=-2)
    batch = cost.shape[:-2]
    return _best_slots(cost.reshape(-1, n, n))[:, 0].reshape(batch)


def formation_features(cfg: FormationConfig, own_pos: np.ndarray, own_vel: np.ndarray,
                       other_pos: np.ndarray, other_vel: np.ndarray, heard: np.ndarray,
                       target: np.ndarray | None) -> np.ndarray:
    """The formation part of a drone's observation, (..., 3 N + 6) float32 (`feature_layout`)."""
    ref_pos, ref_vel = observed_reference(cfg, own_pos, own_vel, other_pos, other_vel, heard,
                                          target)
    slot_pos = slots(cfg, ref_pos)
    rel = slot_pos - own_pos[..., None, :]
    mine = assigned_slot(cfg, own_pos, other_pos, heard, np.broadcast_to(slot_pos, rel.shape))
    assigned = np.take_along_axis(rel, mine[..., None, None], axis=-2)[..., 0, :] / SLOT_SCALE
    # nearest slot first: every slot is as good as any other (the error matches drones to
    # slots), so the list is ordered as the neighbours are, by what matters to this drone
    order = np.argsort(np.linalg.norm(rel, axis=-1), axis=-1, kind="stable")
    rel = np.take_along_axis(rel, order[..., None], axis=-2) / SLOT_SCALE
    vel = ref_vel / np.array([cfg.vxy, cfg.vxy, cfg.vz])
    return np.concatenate([rel.reshape(own_pos.shape[:-1] + (-1,)), assigned, vel],
                          axis=-1).astype(O.OBS_DTYPE)


# ----------------------------------------------------------------------------------------
# The metric
# ----------------------------------------------------------------------------------------
def true_reference(cfg: FormationConfig, pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The reference the formation is scored against, (E, 3): the target's position, or the
    true centroid of all drones."""
    if uses_target(cfg):
        return np.asarray(target, dtype=np.float64)[..., :3]
    return np.asarray(pos, dtype=np.float64).mean(axis=-2)


class FormationTracker:
    """The episode's metrics, (E,) each: `shape_error`, the mean over the episode's policy
    steps of the shape error (m, optimal assignment), and `final_shape_error`, the last
    step's. The scenario and the ROS monitor node use the same class."""

    def __init__(self, cfg: FormationConfig, num_envs: int):
        self.cfg = cfg
        self.total = np.zeros(num_envs)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.last = np.zeros(num_envs)

    def reset(self, env_ids) -> None:
        self.total[env_ids] = 0.0
        self.steps[env_ids] = 0
        self.last[env_ids] = 0.0

    def update(self, pos: np.ndarray, vel: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Score one policy step (positions after it, (E, N, 3)); returns its shape error (E,).
        Velocities are not scored (the signature is every world's)."""
        error = shape_error(pos, slots(self.cfg, true_reference(self.cfg, pos, target)))
        self.total += error
        self.steps += 1
        self.last = error
        return error

    def metrics(self) -> dict[str, np.ndarray]:
        return {"shape_error": self.total / np.maximum(self.steps, 1),
                "final_shape_error": self.last.copy()}


# ----------------------------------------------------------------------------------------
# The scenario
# ----------------------------------------------------------------------------------------
class FormationScenario(MissionScenario):
    """Rules in `sim.config.FormationConfig`; the mission, metric and features above (the
    mission bookkeeping: `sim.missions.MissionScenario`)."""

    cfg: FormationConfig

    def progress(self, pos):
        self.steps += 1
        error = self.tracker.update(pos, np.zeros_like(pos), self.target())
        reward = -self.cfg.shape_weight * error
        return reward, np.zeros(self.num_envs, dtype=bool), self.tracker.metrics()

    def task_shares(self, pos):
        """Each drone's share of the step's task reward, (E, N) (`agent_rewards=True`): minus
        shape_weight times its own distance to its slot under the optimal assignment, over N.
        The drones' sum is the reward `progress` is about to pay (called before it, so the
        target is the one of the step being scored)."""
        target = mission_target(self.cfg, self.missions, self.steps + 1)
        distances = matched_distances(pos, slots(self.cfg, true_reference(self.cfg, pos, target)))
        return -self.cfg.shape_weight * distances / self.cfg.num_drones

    @property
    def state_size(self) -> int:
        return self.cfg.num_drones * 6 + 7

    def state(self, pos, vel, t):
        """Every drone's own features, the true reference (position as own_features scale it,
        velocity over the limits) and the time left."""
        target = self.target()
        reference = true_reference(self.cfg, pos, target)
        ref_vel = target[:, 3:] if uses_target(self.cfg) else vel.mean(axis=1)
        ref = O.own_features(reference, ref_vel, self.cfg)
        time_left = 1.0 - t / self.cfg.max_steps
        return np.concatenate([self._drone_state(pos, vel), ref, time_left[:, None]],
                              axis=1).astype(np.float32)


# ----------------------------------------------------------------------------------------
# The scripted baseline
# ----------------------------------------------------------------------------------------
def formation_actions(cfg: FormationConfig, positions: np.ndarray, target: np.ndarray | None,
                      velocities: np.ndarray | None = None, gain: float = 2.0,
                      assignment: np.ndarray | None = None) -> np.ndarray:
    """Continuous actions (..., N, 4): drone i flies to slot i (its index, no matching, no
    collision avoidance), or to slot assignment[..., i] when given, with a proportional law
    on the position error (`gain`, 1/s) plus the reference's velocity as feed-forward, at
    start altitude, no yaw.

    positions: (..., N, 3) true positions; target: (..., 6) the mission target (moving) or
    None (centroid: the true centroid of `positions`, with the drones' mean `velocities` as
    feed-forward when given)."""
    positions = np.asarray(positions, dtype=np.float64)
    if uses_target(cfg):
        target = np.asarray(target, dtype=np.float64)
        ref_pos, ref_vel = target[..., :3], target[..., 3:6]
    else:
        ref_pos = positions.mean(axis=-2)
        ref_vel = (np.zeros_like(ref_pos) if velocities is None
                   else np.asarray(velocities, dtype=np.float64).mean(axis=-2))
    goal = slots(cfg, ref_pos)
    if assignment is not None:
        goal = np.take_along_axis(goal, np.asarray(assignment)[..., None], axis=-2)
    goal[..., 2] = cfg.start_altitude
    setpoint = ref_vel[..., None, :] + gain * (goal - positions)
    actions = np.zeros(positions.shape[:-1] + (4,))
    actions[..., :3] = setpoint / np.array([cfg.vxy, cfg.vxy, cfg.vz])
    return np.clip(actions, -1.0, 1.0)


def evaluate_baseline(controller: str = "scripted", episodes: int = 10, backend: str = "pybullet",
                      seed: int = 12345, **params) -> dict[str, float]:
    """Mean end-of-episode figures of a baseline over `episodes` episodes run at once:
    "scripted" (`formation_actions`, slot i for drone i), "matched" (the same law, each drone
    to its slot under the best assignment from the start positions, kept for the episode: a
    centralised planner's reference, not a decentralised policy), "random"
    (`sim.scripted.random_walk_actions`, the floor) or "hover". The same figures and
    evaluation seed as `marl-ros eval`."""
    import sim
    from sim.scripted import random_walk_actions

    if controller not in ("scripted", "matched", "random", "hover"):
        raise ValueError(f"controller must be scripted, matched, random or hover (got "
                         f"{controller!r}).")
    venv = sim.make_vec_env("formation", episodes, backend=backend, seed=seed, autoreset=False,
                            **params)
    rng = np.random.default_rng(seed)
    venv.reset(seed=seed)
    shape = (venv.num_envs, venv.num_agents)
    assignment = None
    if controller == "matched":
        reference = true_reference(venv.cfg, venv.positions, venv.scenario.target())
        assignment = best_assignment(venv.positions, slots(venv.cfg, reference))
    try:
        while True:
            if controller in ("scripted", "matched"):
                actions = formation_actions(venv.cfg, venv.positions, venv.scenario.target(),
                                            venv.velocities, assignment=assignment)
            elif controller == "random":
                actions = random_walk_actions(venv.cfg, rng, shape)
            else:  # hover
                actions = np.zeros(shape + (4,))
            *_, infos = venv.step(actions)
            if infos["done"].all():  # every episode has the same length
                break
    finally:
        venv.close()
    keys = ("shape_error", "final_shape_error", "episode_return", "episode_collisions")
    return {k: float(np.mean(infos[k])) for k in keys}


__all__ = ["FormationScenario", "FormationTracker", "MISSION_SIZE", "assigned_slot", "best_assignment",
           "evaluate_baseline", "feature_layout", "formation_actions", "formation_features",
           "matched_distances", "mission_target", "observed_reference", "sample_mission",
           "shape_error", "slot_offsets", "slots", "uses_target"]
