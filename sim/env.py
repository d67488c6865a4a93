"""PettingZoo `ParallelEnv` over one drone-swarm environment.

The same scenario logic and dynamics as the vector API, with one environment and
dicts keyed by agent id ("drone_0", ...). `state()` gives the global state for
centralised critics; `render()` returns a top-down RGB array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pettingzoo import ParallelEnv

from sim.config import SwarmConfig
from sim.render import render_top_down
from sim.vec_env import VecEnv


class DroneSwarmEnv(ParallelEnv):
    metadata = {"name": "marl_ros_swarm", "render_modes": ["rgb_array"], "is_parallelizable": True}

    def __init__(self, cfg: SwarmConfig, backend: str = "pybullet", render_mode: str | None = None,
                 seed: int | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array' (got {render_mode!r}).")
        self.cfg = cfg
        self.render_mode = render_mode
        self.metadata = dict(self.metadata, name=f"marl_ros_{cfg.scenario}")
        self._vec = VecEnv(cfg, num_envs=1, backend=backend, seed=seed, autoreset=False)
        self.possible_agents = list(self._vec.agents)
        self.agents: list[str] = []
        self._obs_spaces = {a: self._vec.observation_space for a in self.possible_agents}
        self._act_spaces = {a: self._vec.action_space for a in self.possible_agents}
        self.state_space = self._vec.state_space
        self._trails: list[np.ndarray] = []
        self._metric_names = set(self._vec.scenario.metrics())  # the scenario's own, in every info

    def observation_space(self, agent: str):
        return self._obs_spaces[agent]

    def action_space(self, agent: str):
        return self._act_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, metrics = self._vec.reset(seed=seed)
        self.agents = list(self.possible_agents)
        self._trails = [self._vec.positions[0]]
        info = {k: float(v[0]) for k, v in metrics.items()}
        return self._split(obs[0]), {a: dict(info) for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("the episode has ended; call reset() before step().")
        missing = [a for a in self.agents if a not in actions]
        extra = [a for a in actions if a not in self.agents]
        if missing:
            raise ValueError(f"no action for agent {missing[0]}; step() needs one action for each "
                             f"of {', '.join(self.agents)}.")
        if extra:
            raise ValueError(f"action given for unknown agent {extra[0]!r}; agents are "
                             f"{', '.join(self.agents)}.")
        batch = np.stack([np.asarray(actions[a]) for a in self.possible_agents])[None]
        obs, rew, term, trunc, infos = self._vec.step(batch)
        self._trails.append(self._vec.positions[0])
        # The safety counts and the scenario's own metrics (coverage, shape_error, time_to_goal...)
        keep = {"collisions", "geofence_violations", "mean_landmark_distance", *self._metric_names}
        info = {k: float(v[0]) for k, v in infos.items() if k in keep}
        agents = self.agents
        out = (self._split(obs[0]), {a: float(rew[0, i]) for i, a in enumerate(agents)},
               {a: bool(term[0, i]) for i, a in enumerate(agents)},
               {a: bool(trunc[0, i]) for i, a in enumerate(agents)},
               {a: dict(info) for a in agents})
        if term[0].any() or trunc[0].any():
            self.agents = []
        return out

    def _split(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {a: obs[i] for i, a in enumerate(self.possible_agents)}

    def state(self) -> np.ndarray:
        return self._vec.state()[0]

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        scen = self._vec.scenario
        covered = getattr(scen, "covered", None)
        landmarks = getattr(scen, "landmarks", None)
        return render_top_down(self.cfg, self._vec.positions[0],
                               covered=None if covered is None else covered[0],
                               landmarks=None if landmarks is None else landmarks[0],
                               trails=np.array(self._trails), obstacles=self.obstacles)

    @property
    def obstacles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """This episode's obstacle layout (centres (O, 2), half sizes (O, 2), box flags (O,),
        sim.obstacles), or None without obstacles."""
        if not getattr(self.cfg, "obstacles", 0):
            return None
        scen = self._vec.scenario
        return scen.centres[0].copy(), scen.half_sizes[0].copy(), scen.boxes[0].copy()

    @property
    def positions(self) -> np.ndarray:
        return self._vec.positions[0]

    @property
    def covered_map(self) -> np.ndarray | None:
        """Ground-truth coverage (padded map, see sim.obs), or None for other scenarios."""
        covered = getattr(self._vec.scenario, "covered", None)
        return None if covered is None else covered[0].copy()

    @property
    def trajectories(self) -> np.ndarray:
        """Positions of every drone at every step so far: (T + 1, N, 3)."""
        return np.array(self._trails)

    def close(self) -> None:
        self._vec.close()
