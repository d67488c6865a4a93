"""`matrix`: a one-step cooperative matrix game as a PettingZoo ParallelEnv.

Every agent picks an action at once and all receive `payoff[u_1][u_2]...[u_N]`; the
episode then ends (terminated). Observations and the global state are a constant 1, so
the only thing to learn is the joint action-value table: the unit test of a
factorisation method (can its Q_tot represent the table, does its greedy joint action
reach the optimum). `policies.train(algo, "matrix", ...)` builds it from the config's
`env` section, e.g. `{"env": {"payoff": [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]}}`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

# The non-monotonic game of the QTRAN/QMIX papers (optimum (0, 0) hidden behind -12s).
DEFAULT_PAYOFF = [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]]


class MatrixGame(ParallelEnv):
    metadata = {"name": "matrix_v0", "render_modes": []}

    def __init__(self, payoff: Any = None, max_steps: int = 1):
        table = np.asarray(DEFAULT_PAYOFF if payoff is None else payoff, np.float32)
        if table.ndim < 1 or min(table.shape) < 1:
            raise ValueError("payoff must be a nested list with one axis per agent, e.g. "
                             "[[8, -12], [-12, 0]] for 2 agents with 2 actions.")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 (got {max_steps}).")
        self.payoff = table
        self.max_steps = max_steps  # repeat the game this many times (one-shot by default)
        self.possible_agents = [f"agent_{i}" for i in range(table.ndim)]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self._action_spaces = {a: spaces.Discrete(table.shape[i])
                               for i, a in enumerate(self.possible_agents)}
        self._t = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    def _obs(self) -> dict[str, np.ndarray]:
        return {a: np.ones(1, np.float32) for a in self.agents}

    def state(self) -> np.ndarray:
        return np.ones(1, np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.agents = list(self.possible_agents)
        self._t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]):
        joint = tuple(int(actions[a]) for a in self.possible_agents)
        reward = float(self.payoff[joint])
        self._t += 1
        done = self._t >= self.max_steps
        obs = self._obs()
        rewards = {a: reward for a in self.agents}
        terms = {a: done for a in self.agents}
        truncs = {a: False for a in self.agents}
        infos = {a: {} for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terms, truncs, infos
