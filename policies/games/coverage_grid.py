"""`CoverageGrid`: the coverage scenario on a coarse grid, the field task of linear Team-Q.

The drone world's coverage field (`sim.config.CoverageConfig`: 20 x 20 cells of 0.25 m,
a camera footprint of 3 x 3 cells) becomes a grid of footprint-wide cells, so a drone over
a cell covers exactly that cell: by default 20 // 3 = 6 cells a side (0.75 m each; the
strip the footprint does not tile, 0.5 m of the 5 m field, is left out). 2 or 3 drones
move one cell a step, actions Discrete(5) in ENU axes like the drone world:

    0 stay, 1 +x (east), 2 -x (west), 3 +y (north), 4 -y (south)

The team (global) reward of a step is the number of newly covered cells, minus a penalty
for every pair of drones in one cell and for every drone that tried to leave the field (it
stays where it was). The penalties are the drone world's (`collision_penalty`,
`geofence_penalty`, paid per pair and per drone there too) in its exchange rate: it pays
1 / (width * height) per fine cell, so one penalty is worth
0.05 * 400 / 9 = 2.2 coarse cells by default. Drones start on distinct random cells, which
count as covered (take-off positions count in the drone world as well), or
`reset(options={"cells": [...], "covered": [...]})` starts from a chosen state; the episode
ends when every cell is covered (terminated) or after `max_steps` steps (truncated).

Observation (every agent the same, the full coarse state): a Box in [0, 1] holding each
drone's cell one-hot (drone 0 first, cells row-major: index = y * size + x) followed by
the covered map (1 = covered), length (N + 1) * size^2. It is NOT a finite-state one-hot:
the number of coarse states is far too large for a table (2^36 covered maps), which is
why Team-Q reads it through basis functions: `basis(observation)` gives the features
phi(s, a) of every joint action a, `(num_joint_actions, num_features)`, joint actions in
C order over agents (agent 0 slowest: index = ((a_0 * 5) + a_1) * 5 + a_2). The features
are in one block per drone (`FEATURES` names them), so a learner's weights split into one
theta_i per drone and theta . phi = sum_i theta_i . phi_i (the summed approximate Q).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from sim.config import CoverageConfig

STAY, EAST, WEST, NORTH, SOUTH = range(5)
MOVES = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]])  # (dx, dy) of each action

# Drone i's block of phi(s, a): what its own move in the joint action a does from state s.
FEATURES = (
    "bias",  # 1: the value of the state apart from the move
    "new_cell",  # its next cell is uncovered
    "leaves_field",  # its move tries to leave the field (it stays)
    "shares_cell",  # another drone's next cell is its next cell
    "distance_to_uncovered",  # Manhattan cells from its next cell to the nearest uncovered
    # cell, over the grid's diameter (2 (size - 1)); 0 when none is left
    "uncovered_nearby",  # uncovered cells among the 4 next to its next cell, over 4
)


def _drone_world_defaults() -> dict[str, float | int]:
    """The coarse grid's size and penalties read off the drone world's coverage defaults."""
    cfg = CoverageConfig()
    fine_cells_per_coarse = cfg.footprint ** 2
    exchange = cfg.width * cfg.height / fine_cells_per_coarse  # coarse cells per unit reward
    return {"size": min(cfg.width, cfg.height) // cfg.footprint,
            "collision_penalty": cfg.collision_penalty * exchange,
            "leave_penalty": cfg.geofence_penalty * exchange}


DEFAULTS = _drone_world_defaults()


class CoverageGrid(ParallelEnv):
    metadata = {"name": "coverage_grid_v0", "render_modes": []}

    def __init__(self, num_drones: int = 2, size: int | None = None, max_steps: int = 20,
                 collision_penalty: float | None = None, leave_penalty: float | None = None):
        size = int(DEFAULTS["size"]) if size is None else size
        if not isinstance(num_drones, int) or not 1 <= num_drones <= 3:
            raise ValueError(f"num_drones must be 1, 2 or 3 (got {num_drones!r}); the joint "
                             "action is enumerated, 5^N rows.")
        if not isinstance(size, int) or size < 2:
            raise ValueError(f"size must be an integer number of cells >= 2 (got {size!r}).")
        if num_drones > size * size:
            raise ValueError(f"{num_drones} drones do not fit on distinct cells of a {size} x "
                             f"{size} grid; use a larger size.")
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be an integer >= 1 (got {max_steps!r}).")
        self.num_drones = num_drones
        self.size = size
        self.max_steps = max_steps
        self.collision_penalty = float(DEFAULTS["collision_penalty"] if collision_penalty is None
                                       else collision_penalty)
        self.leave_penalty = float(DEFAULTS["leave_penalty"] if leave_penalty is None
                                   else leave_penalty)
        if self.collision_penalty < 0 or self.leave_penalty < 0:
            raise ValueError("collision_penalty and leave_penalty must be >= 0 (a penalty is "
                             "subtracted from the reward).")
        self.num_cells = size * size
        self.possible_agents = [f"drone_{i}" for i in range(num_drones)]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, ((num_drones + 1) * self.num_cells,), np.float32)
        self._action_space = spaces.Discrete(len(MOVES))

        # Joint actions in C order (agent 0 slowest), as (J, N) own actions.
        self.joint_actions = np.stack(np.unravel_index(
            np.arange(len(MOVES) ** num_drones), (len(MOVES),) * num_drones), axis=1)
        # Cell geometry, computed once: coordinates, Manhattan distances, 4-neighbourhoods.
        cells = np.arange(self.num_cells)
        self._xy = np.stack([cells % size, cells // size], axis=1)  # (C, 2)
        self._distance = np.abs(self._xy[:, None, :] - self._xy[None, :, :]).sum(-1)  # (C, C)
        self._adjacent = (self._distance == 1).astype(np.float64)
        # Where each own action takes a drone from each cell, and whether it tries to leave.
        target = self._xy[:, None, :] + MOVES[None, :, :]  # (C, 5, 2)
        self._leaves = np.any((target < 0) | (target >= size), axis=-1)  # (C, 5)
        target = np.clip(target, 0, size - 1)
        self._next_cell = target[..., 1] * size + target[..., 0]  # (C, 5)

        self._rng = np.random.default_rng()
        self._cells = np.zeros(num_drones, np.int64)
        self._covered = np.zeros(self.num_cells, bool)
        self._t = 0

    # -- PettingZoo API ----------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._t = 0
        self._cells = self._rng.permutation(self.num_cells)[: self.num_drones]
        self._covered = np.zeros(self.num_cells, bool)
        if options and ("cells" in options or "covered" in options):
            # a hand-made start: {"cells": (N,) cell indices, "covered": (size * size,) map}
            state = self.observation_of(options.get("cells", self._cells),
                                        options.get("covered", self._covered))
            self._cells = state[: self.num_drones * self.num_cells].reshape(
                self.num_drones, -1).argmax(axis=1)
            self._covered = state[self.num_drones * self.num_cells:] > 0.5
        self._covered[self._cells] = True
        obs = self._observation()
        return {a: obs.copy() for a in self.agents}, {a: self._info() for a in self.agents}

    def step(self, actions: dict[str, int]):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first.")
        own = np.array([int(actions[a]) for a in self.possible_agents])
        if np.any((own < 0) | (own >= len(MOVES))):
            raise ValueError(f"actions must be in 0..{len(MOVES) - 1} (got {own.tolist()}).")
        leaving = self._leaves[self._cells, own]
        self._cells = self._next_cell[self._cells, own]
        fresh = np.unique(self._cells[~self._covered[self._cells]])
        self._covered[fresh] = True
        same = self._cells[:, None] == self._cells[None, :]
        pairs = int(np.triu(same, k=1).sum())
        reward = (len(fresh) - self.collision_penalty * pairs
                  - self.leave_penalty * int(leaving.sum()))
        self._t += 1
        terminated = bool(self._covered.all())
        truncated = self._t >= self.max_steps and not terminated
        obs = self._observation()
        agents = self.agents
        if terminated or truncated:
            self.agents = []
        return ({a: obs.copy() for a in agents}, {a: float(reward) for a in agents},
                {a: terminated for a in agents}, {a: truncated for a in agents},
                {a: self._info() for a in agents})

    def state(self) -> np.ndarray:
        """The centralised state: the full coarse state, which every agent observes."""
        return self._observation()

    # -- what Team-Q reads ---------------------------------------------------------------------
    @property
    def num_joint_actions(self) -> int:
        return len(self.joint_actions)

    @property
    def num_features(self) -> int:
        return self.num_drones * len(FEATURES)

    def observation_of(self, cells: Any, covered: Any) -> np.ndarray:
        """The observation of a state given by the drones' cells (N,) and the covered map
        (size * size,) or (size, size) indexed [y, x]: for hand-made states and tests."""
        cells = np.asarray(cells, np.int64).reshape(-1)
        covered = np.asarray(covered, bool).reshape(-1)
        if (cells.shape != (self.num_drones,) or covered.shape != (self.num_cells,)
                or np.any((cells < 0) | (cells >= self.num_cells))):
            raise ValueError(f"a state is {self.num_drones} cells in 0..{self.num_cells - 1} and "
                             f"a covered map of {self.num_cells} cells (got cells "
                             f"{cells.tolist()}, a map of shape {covered.shape}).")
        obs = np.zeros(self._obs_space.shape, np.float32)
        obs[np.arange(self.num_drones) * self.num_cells + cells] = 1.0
        obs[self.num_drones * self.num_cells:] = covered
        return obs

    def basis(self, observation: np.ndarray) -> np.ndarray:
        """phi(s, a) of every joint action a: (J, F), or (B, J, F) for (B, D) observations.

        Row j is the joint action `joint_actions[j]` (C order, agent 0 slowest); columns are
        drone 0's `FEATURES`, then drone 1's, ... Computed for all joint actions at once from
        the (N, 5) own-move table of each drone, so 3 drones' 125 rows cost a few arrays.
        """
        obs = np.asarray(observation, np.float64)
        single = obs.ndim == 1
        obs = obs.reshape(-1, self._obs_space.shape[0])
        b, n, c = obs.shape[0], self.num_drones, self.num_cells
        cells = obs[:, : n * c].reshape(b, n, c).argmax(axis=2)  # (B, N)
        uncovered = 1.0 - obs[:, n * c:]  # (B, C)

        # Per cell: distance to the nearest uncovered cell, uncovered neighbours.
        far = np.where(uncovered[:, None, :] > 0.5, self._distance[None], np.inf).min(axis=2)
        distance = np.where(np.isfinite(far), far, 0.0) / (2 * (self.size - 1))  # (B, C)
        nearby = uncovered @ self._adjacent / 4.0  # (B, C)

        # Each drone's own moves (B, N, 5) then the joint actions' pick of them (B, J, N).
        nxt = self._next_cell[cells]  # (B, N, 5)
        drone = np.arange(n)[None, :]
        pick = (slice(None), drone, self.joint_actions)  # -> (B, J, N)
        nxt_joint = nxt[pick]
        rows = np.arange(b)[:, None, None]
        shares = (nxt_joint[..., :, None] == nxt_joint[..., None, :]).sum(-1) > 1
        phi = np.stack([
            np.ones(nxt_joint.shape),
            uncovered[rows, nxt_joint],
            self._leaves[cells][pick],
            shares,
            distance[rows, nxt_joint],
            nearby[rows, nxt_joint],
        ], axis=-1).astype(np.float64)  # (B, J, N, K)
        phi = phi.reshape(b, self.num_joint_actions, n * len(FEATURES))
        return phi[0] if single else phi

    # -- helpers --------------------------------------------------------------------------------
    def _observation(self) -> np.ndarray:
        return self.observation_of(self._cells, self._covered)

    def _info(self) -> dict[str, float]:
        return {"coverage": float(self._covered.mean())}
