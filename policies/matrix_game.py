"""`matrix`: a one-step matrix game as a PettingZoo ParallelEnv.

Every agent picks an action at once and all receive `payoff[u_1][u_2]...[u_N]`; the
episode then ends (terminated). Observations and the global state are a constant 1, so
the only thing to learn is the joint action-value table: the unit test of a
factorisation method (can its Q_tot represent the table, does its greedy joint action
reach the optimum). `policies.train(algo, "matrix", ...)` builds it from the config's
`env` section, e.g. `{"env": {"payoff": [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]}}`.

General-sum games (the game-theoretic learners' unit tests): with `general_sum=True` the
payoff has a leading axis of one table per agent, shape (N, A_1, ..., A_N), and agent i
receives `payoff[i][u_1]...[u_N]`. This is a flag rather than read from the shape, since
a cooperative 3-agent game of 2 actions each, shape (2, 2, 2), looks like a 2-agent stack.
`MATRIX_GAMES` holds the classic ones by name: `MatrixGame(game="matching_pennies")`.
With `max_steps` > 1 the same game repeats (the observation stays the single state).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

# The non-monotonic game of the QTRAN/QMIX papers (optimum (0, 0) hidden behind -12s).
DEFAULT_PAYOFF = [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]]

# Two-player games as (agent 0's table, agent 1's table); rows are agent 0's actions.
MATRIX_GAMES: dict[str, list] = {
    # Zero-sum, no pure equilibrium: the unique equilibrium is 50/50 (value 0).
    "matching_pennies": [[[1.0, -1.0], [-1.0, 1.0]], [[-1.0, 1.0], [1.0, -1.0]]],
    # Zero-sum, actions rock, paper, scissors: the unique equilibrium is uniform (value 0).
    "rock_paper_scissors": [[[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]],
                            [[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]]],
    # Actions cooperate, defect: defecting dominates, the unique equilibrium pays (1, 1).
    "prisoners_dilemma": [[[3.0, 0.0], [5.0, 1.0]], [[3.0, 5.0], [0.0, 1.0]]],
    # Pure equilibria (0, 0) paying (3, 2) and (1, 1) paying (2, 3); a mixed one,
    # agent 0 plays 0 w.p. 3/5 and agent 1 w.p. 2/5, paying (6/5, 6/5).
    "battle_of_the_sexes": [[[3.0, 0.0], [0.0, 2.0]], [[2.0, 0.0], [0.0, 3.0]]],
    # A common payoff with pure equilibria (0, 0) paying 10 (the optimum) and (1, 1) paying
    # 5, and a mixed one, each playing 0 w.p. 1/3 (paying 10/3).
    "coordination": [[[10.0, 0.0], [0.0, 5.0]], [[10.0, 0.0], [0.0, 5.0]]],
}


class MatrixGame(ParallelEnv):
    metadata = {"name": "matrix_v0", "render_modes": []}

    def __init__(self, payoff: Any = None, max_steps: int = 1, general_sum: bool = False,
                 game: str | None = None):
        if game is not None:
            if game not in MATRIX_GAMES or payoff is not None:
                raise ValueError(f"game must be one of {', '.join(MATRIX_GAMES)} and given "
                                 f"without a payoff (got game={game!r}).")
            payoff, general_sum = MATRIX_GAMES[game], True
        table = np.asarray(DEFAULT_PAYOFF if payoff is None else payoff, np.float32)
        if table.ndim < 1 or min(table.shape) < 1:
            raise ValueError("payoff must be a nested list with one axis per agent, e.g. "
                             "[[8, -12], [-12, 0]] for 2 agents with 2 actions.")
        if general_sum and (table.ndim < 2 or table.shape[0] != table.ndim - 1):
            raise ValueError(f"a general-sum payoff holds one table per agent, shape (N, A_1, ..., "
                             f"A_N), e.g. [[[3, 0], [5, 1]], [[3, 5], [0, 1]]]; got shape "
                             f"{table.shape}.")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 (got {max_steps}).")
        self.payoff = table
        self.general_sum = general_sum  # payoff[i] is agent i's table
        self.max_steps = max_steps  # repeat the game this many times (one-shot by default)
        action_counts = table.shape[1:] if general_sum else table.shape
        self.possible_agents = [f"agent_{i}" for i in range(len(action_counts))]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self._action_spaces = {a: spaces.Discrete(action_counts[i])
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
        self._t += 1
        done = self._t >= self.max_steps
        obs = self._obs()
        if self.general_sum:
            rewards = {a: float(self.payoff[(i, *joint)]) for i, a in enumerate(self.agents)}
        else:
            reward = float(self.payoff[joint])
            rewards = {a: reward for a in self.agents}
        terms = {a: done for a in self.agents}
        truncs = {a: False for a in self.agents}
        infos = {a: {} for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terms, truncs, infos
