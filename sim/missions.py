"""Missions: the per-episode task numbers of the worlds that have one, seen from outside.

Formation holds its shape around a moving reference, flock flies to a goal: each episode
draws its own (`sample_mission`), and every drone observes the mission's *target*, a position
and velocity in the world frame (`mission_target`). The simulator moves the target itself; on
ROS the monitor node draws the mission from its seed and the drones' first positions and
publishes the target each tick (`/mission/target`), and every agent node passes what it
received to the same observation function. Both score the episode with the world's own
tracker class, so a ROS report means what the simulator's metrics mean.

Each world keeps its rules in its own module (`sim.formation`, `sim.flock`); this module only
finds them by scenario name. numpy only.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

import numpy as np

from sim import obs as O
from sim.config import SwarmConfig
from sim.scenarios import Scenario

# scenario -> (module, tracker class, the metric that ends an episode early or None): the
# worlds with a mission interface. A flock's episode ends once every drone is inside the goal.
_WORLDS = {"formation": ("sim.formation", "FormationTracker", None),
           "flock": ("sim.flock", "FlockTracker", "goal_reached")}

TARGET_SIZE = 6  # position (3), velocity (3): ENU world frame, m and m/s


def target_after(target: np.ndarray, seconds: float) -> np.ndarray:
    """The target (..., 6) `seconds` after it was sent, moved on at its own velocity: what a
    drone observes between two targets. The simulator shows each policy step the target of
    that instant; a ROS agent ticks on its own timer, up to a period after the monitor
    published, so with the target as received it would trail a moving reference by its speed
    times that age (0.3 m/s x up to 1/8 s: the few centimetres a formation flight ended off)."""
    target = np.asarray(target, dtype=np.float64)
    out = target.copy()
    out[..., :3] += target[..., 3:] * max(float(seconds), 0.0)
    return out


def mission_module(cfg: SwarmConfig) -> ModuleType | None:
    """The module holding the scenario's mission rules, or None for a world without one."""
    entry = _WORLDS.get(cfg.scenario)
    return None if entry is None else import_module(entry[0])


def uses_target(cfg: SwarmConfig) -> bool:
    """Whether a drone's observation needs the mission target (a formation around a moving
    reference, a flock's goal); a formation around the swarm's own centroid needs none."""
    module = mission_module(cfg)
    return module is not None and bool(module.uses_target(cfg))


class MissionScenario(Scenario):
    """What every mission world's scenario shares: one mission per env, drawn at each reset by
    the world's `sample_mission` from the start positions; the policy steps taken; the target
    now (`target`); the world's tracker, whose metrics are the scenario's. A world adds its
    reward (`progress`, which counts the step), observation and state."""

    def __init__(self, cfg: SwarmConfig, num_envs: int):
        super().__init__(cfg, num_envs)
        self._module = mission_module(cfg)
        self.missions = np.zeros((num_envs, self._module.MISSION_SIZE))
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.tracker = getattr(self._module, _WORLDS[cfg.scenario][1])(cfg, num_envs)

    def reset(self, env_ids, pos, rng):
        self.missions[env_ids] = self._module.sample_mission(self.cfg, rng, pos)
        self.steps[env_ids] = 0
        self.tracker.reset(env_ids)

    def target(self, env_ids=slice(None)) -> np.ndarray:
        """The mission target (E, 6) at the current step of each episode."""
        return self._module.mission_target(self.cfg, self.missions[env_ids], self.steps[env_ids])

    def metrics(self) -> dict[str, np.ndarray]:
        return self.tracker.metrics()

    def observe_tick(self, pos, vel, env_ids=slice(None), received=None):
        """The shared observation with every drone given its episode's target now."""
        others_p, others_v, valid = self._others(pos, vel, env_ids, received)
        return O.observe_tick(self.cfg, pos, vel, others_p, others_v, valid,
                              target=self.target(env_ids)[:, None])


class Mission:
    """One episode's mission for one swarm (what the monitor node holds): its numbers, the
    target at each policy step and the world's metric tracker over the same episode."""

    def __init__(self, cfg: SwarmConfig, rng: np.random.Generator, start_pos: np.ndarray):
        module = mission_module(cfg)
        if module is None:
            raise ValueError(f"scenario {cfg.scenario!r} has no mission; missions exist for "
                             f"{', '.join(sorted(_WORLDS))}.")
        self.cfg = cfg
        self._module = module
        self.numbers = module.sample_mission(cfg, rng, np.asarray(start_pos, float)[None])[0]
        self.tracker = getattr(module, _WORLDS[cfg.scenario][1])(cfg, 1)
        self.tracker.reset(np.arange(1))
        self._ending_metric = _WORLDS[cfg.scenario][2]

    @classmethod
    def for_seed(cls, cfg: SwarmConfig, seed: int, start_pos: np.ndarray) -> Mission:
        """The mission an env reset with this seed draws (`VecEnv.reset(seed)`: the start
        positions first, then the mission, from one stream), given the start positions the
        drones really have. With the simulator node on the same seed a ROS flight is then the
        simulator's episode of that seed."""
        from sim.scenarios import make_scenario

        rng = np.random.default_rng(seed)
        make_scenario(cfg, 1).start_positions(rng, 1)  # the draws the start positions took
        return cls(cfg, rng, start_pos)

    def target(self, step: int) -> np.ndarray:
        """(6,) target position and velocity after `step` policy steps of the episode."""
        return np.asarray(self._module.mission_target(self.cfg, self.numbers, np.asarray(step)),
                          dtype=np.float64).reshape(TARGET_SIZE)

    def update(self, pos: np.ndarray, vel: np.ndarray, step: int) -> None:
        """Score one policy step: the drones' positions and velocities (N, 3) after it."""
        self.tracker.update(np.asarray(pos, float)[None], np.asarray(vel, float)[None],
                            self.target(step)[None])

    def metrics(self) -> dict[str, float | None]:
        """The episode's metrics so far (None for a value not defined yet, e.g. a minimum
        separation before the first step)."""
        values = {name: float(np.asarray(value).reshape(-1)[0])
                  for name, value in self.tracker.metrics().items()}
        return {name: v if np.isfinite(v) else None for name, v in values.items()}

    def ended(self) -> bool:
        """Whether the world ends the episode here, as the simulator would (flock: every
        drone inside the goal region); formation runs until its step limit."""
        return self._ending_metric is not None and bool(self.metrics()[self._ending_metric])
