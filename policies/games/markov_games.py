"""The Markov games the family's learners were introduced on, as PettingZoo ParallelEnvs
with their exact models.

  GridSoccer   Littman 1994's zero-sum soccer (Minimax-Q's test bed), 760 states
  GridGame1    Hu & Wellman 2003's general-sum grid game with separate goals (Nash-Q)
  GridGame2    the same with one shared goal and the stochastic barrier

The state is finite and fully observable: every agent's observation is the same
`Discrete(S)` index of the whole board, actions are `Discrete`. Each game also exposes its
exact model, `env.model() -> FiniteGameModel` (`policies.games.analysis`), built by
enumerating every state, joint action and chance outcome of the same rules `step` draws
from; that is what best responses and exploitability are computed on. `reset(options=
{"state": s})` starts an episode in state s (to probe the dynamics from any state).

The model is the discounted game without the step limit: `max_steps` truncates an episode
(the learners bootstrap through a truncation) only so a training run never stalls in a
game that two cautious players could prolong forever.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.sparse as sp
from gymnasium import spaces
from pettingzoo import ParallelEnv

from policies.games.analysis import FiniteGameModel

# An outcome of one joint step: (next state, reward of each agent, terminated).
Outcome = tuple[int, tuple[float, ...], bool]


class FiniteMarkovGame(ParallelEnv):
    """What the games share: Discrete state observations, seeding, the step limit, the model.

    A game defines `num_states`, `action_names`, `agents_names`, `gamma`,
    `initial_distribution()`, `outcomes(state, joint) -> [(probability, Outcome)]` (every
    chance outcome, for the model) and `sample(state, joint, rng) -> Outcome` (one draw of
    the same rules, for `step`).
    """

    metadata = {"name": "finite_markov_game", "render_modes": []}
    agent_names: tuple[str, ...] = ("player_0", "player_1")
    action_names: tuple[str, ...] = ()
    num_states = 0
    gamma = 0.9

    def __init__(self, max_steps: int = 100):
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be an integer >= 1 (got {max_steps!r}); it is the "
                             "episode's step limit (truncation).")
        self.max_steps = max_steps
        self.possible_agents = list(self.agent_names)
        self.agents: list[str] = []
        self._obs_space = spaces.Discrete(self.num_states)
        self._action_space = spaces.Discrete(len(self.action_names))
        self._rng = np.random.default_rng()
        self._state = 0
        self._t = 0

    # -- what a game defines -------------------------------------------------------------------
    def initial_distribution(self) -> np.ndarray:
        raise NotImplementedError

    def outcomes(self, state: int, joint: tuple[int, ...]) -> list[tuple[float, Outcome]]:
        raise NotImplementedError

    def sample(self, state: int, joint: tuple[int, ...], rng: np.random.Generator) -> Outcome:
        raise NotImplementedError

    # -- the PettingZoo API --------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Discrete:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_space

    def state(self) -> np.ndarray:
        """The global state for a centralised learner: the one-hot board index."""
        out = np.zeros(self.num_states, np.float32)
        out[self._state] = 1.0
        return out

    def _obs(self) -> dict[str, int]:
        return {a: self._state for a in self.possible_agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        start = (options or {}).get("state")
        if start is None:
            self._state = int(self._rng.choice(self.num_states, p=self.initial_distribution()))
        else:
            if not 0 <= int(start) < self.num_states:
                raise ValueError(f"options['state'] must be a state index in [0, "
                                 f"{self.num_states}) (got {start}).")
            self._state = int(start)
        self.agents = list(self.possible_agents)
        self._t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("step called on a finished episode; call reset() first.")
        joint = tuple(int(actions[a]) for a in self.possible_agents)
        if any(not 0 <= u < len(self.action_names) for u in joint):
            raise ValueError(f"actions must be in [0, {len(self.action_names)}) "
                             f"({', '.join(self.action_names)}); got {joint}.")
        self._state, rewards, terminated = self.sample(self._state, joint, self._rng)
        self._t += 1
        truncated = not terminated and self._t >= self.max_steps
        obs = self._obs()
        rew = {a: float(r) for a, r in zip(self.possible_agents, rewards, strict=True)}
        terms = {a: terminated for a in self.possible_agents}
        truncs = {a: truncated for a in self.possible_agents}
        infos = {a: {} for a in self.possible_agents}
        if terminated or truncated:
            self.agents = []
        return obs, rew, terms, truncs, infos

    # -- the exact model -----------------------------------------------------------------------
    def model(self) -> FiniteGameModel:
        """The game's exact model (`FiniteGameModel`), enumerated from `outcomes` once per env."""
        return _model_of(type(self))

    def build_model(self) -> FiniteGameModel:
        s_count, a_count, n = self.num_states, len(self.action_names), len(self.agent_names)
        rows, cols, probs, ends = [], [], [], []
        rewards = np.zeros((n, s_count, a_count, a_count))
        for s in range(s_count):
            for a in range(a_count):
                for b in range(a_count):
                    row = (s * a_count + a) * a_count + b
                    for p, (s_next, r, terminated) in self.outcomes(s, (a, b)):
                        rows.append(row)
                        cols.append(s_next)
                        probs.append(p)
                        ends.append(p if terminated else 0.0)
                        rewards[:, s, a, b] += p * np.asarray(r)
        shape = (s_count * a_count * a_count, s_count)
        # Duplicates (two chance outcomes landing in one state) are summed by the conversion.
        transitions = sp.csr_matrix((probs, (rows, cols)), shape=shape)
        terminations = sp.csr_matrix((ends, (rows, cols)), shape=shape)
        terminations.eliminate_zeros()
        return FiniteGameModel(transitions=transitions, terminations=terminations,
                               rewards=rewards, initial=self.initial_distribution(),
                               gamma=self.gamma, agents=list(self.agent_names))


@functools.cache
def _model_of(game: type[FiniteMarkovGame]) -> FiniteGameModel:
    """One model per game class: the rules do not depend on the step limit or the seed."""
    return game().build_model()


# ---------------------------------------------------------------------------------------------
# Littman 1994: soccer
# ---------------------------------------------------------------------------------------------
SOCCER_ROWS, SOCCER_COLS = 4, 5
SOCCER_GOAL_ROWS = (1, 2)  # the goals are the two middle rows beyond the left and right edges
SOCCER_START = ((1, 3), (2, 1))  # (row, column) of A and B; row 0 is the top
SOCCER_MOVES = ((-1, 0), (1, 0), (0, 1), (0, -1), (0, 0))  # N, S, E, W, stand
A, B = 0, 1


class GridSoccer(FiniteMarkovGame):
    """Littman 1994's soccer: the zero-sum game where a deterministic policy is exploitable.

    A 4x5 board, players A and B (agents "A", "B") on distinct cells, one of them holding
    the ball. Actions 0-4: N, S, E, W, stand. After both choose, the two moves are executed
    in random order (each order with probability 0.5). A move off the board does nothing;
    a move onto the other player's cell does not happen and the ball goes to the
    stationary player (so a ball carrier that bumps loses it; a defender that bumps gains
    nothing). Carrying the ball off the left edge in rows 1-2 is a goal for A, off the
    right edge in rows 1-2 a goal for B: +1 to the scorer, -1 to the other, and the episode
    ends (terminated); after the first mover scores the second move is not executed.
    Littman's board then resets; here the next episode starts from `reset`: A at row 1,
    column 3 and B at row 2, column 1 (row 0 at the top; the paper's figure as we read
    it: A right of centre, B left of centre, each in one of the goal rows), the ball to
    either player with probability 0.5.

    Choices the paper leaves open, made here: carrying the ball into one's own goal is a
    goal for the opponent (no rational player does it; a random one may); the final
    observation of a goal shows the board as the ball crossed the line (the scorer on the
    goal-mouth cell). Littman discounts by 0.9 (`gamma`); his test games also ended in a
    draw with probability 0.1 per step, the continuation that gamma 0.9 models, where here
    `max_steps` (default 100) truncates.

    State index: A's cell ca (0-19, row-major), B's cell cb != ca, the holder h (0 A,
    1 B): ((ca * 19 + cb - (cb > ca)) * 2 + h), 760 states (`encode` / `decode`).
    """

    metadata = {"name": "grid_soccer_v0", "render_modes": []}
    agent_names = ("A", "B")
    action_names = ("N", "S", "E", "W", "stand")
    num_states = SOCCER_ROWS * SOCCER_COLS * (SOCCER_ROWS * SOCCER_COLS - 1) * 2
    gamma = 0.9

    @staticmethod
    def encode(pos_a: tuple[int, int], pos_b: tuple[int, int], holder: int) -> int:
        ca = pos_a[0] * SOCCER_COLS + pos_a[1]
        cb = pos_b[0] * SOCCER_COLS + pos_b[1]
        if ca == cb or holder not in (A, B):
            raise ValueError(f"a soccer state needs distinct cells and holder 0 (A) or 1 (B); got "
                             f"{pos_a}, {pos_b}, {holder}.")
        return ((ca * 19 + cb - (cb > ca)) * 2 + holder)

    @staticmethod
    def decode(state: int) -> tuple[tuple[int, int], tuple[int, int], int]:
        """State index -> (A's (row, col), B's (row, col), holder)."""
        pair, holder = divmod(int(state), 2)
        ca, rest = divmod(pair, 19)
        cb = rest + (rest >= ca)
        return divmod(ca, SOCCER_COLS), divmod(cb, SOCCER_COLS), holder

    def initial_distribution(self) -> np.ndarray:
        p = np.zeros(self.num_states)
        for holder in (A, B):
            p[self.encode(*SOCCER_START, holder)] = 0.5
        return p

    def resolve(self, state: int, joint: tuple[int, ...], a_first: bool) -> Outcome:
        """The step when the moves run in the given order (A's first when a_first)."""
        pos = list(self.decode(state)[:2])
        holder = self.decode(state)[2]
        for mover in ((A, B) if a_first else (B, A)):
            dr, dc = SOCCER_MOVES[joint[mover]]
            if dr == dc == 0:
                continue
            row, col = pos[mover][0] + dr, pos[mover][1] + dc
            if not (0 <= row < SOCCER_ROWS and 0 <= col < SOCCER_COLS):
                if holder == mover and row in SOCCER_GOAL_ROWS and col in (-1, SOCCER_COLS):
                    scorer = A if col == -1 else B  # the left goal is A's to score in
                    rewards = (1.0, -1.0) if scorer == A else (-1.0, 1.0)
                    return self.encode(pos[A], pos[B], holder), rewards, True
                continue  # off the board (or into a goal without the ball): no move
            if (row, col) == pos[1 - mover]:
                holder = 1 - mover  # blocked: the ball goes to the stationary player
                continue
            pos[mover] = (row, col)
        return self.encode(pos[A], pos[B], holder), (0.0, 0.0), False

    def outcomes(self, state: int, joint: tuple[int, ...]) -> list[tuple[float, Outcome]]:
        return [(0.5, self.resolve(state, joint, True)), (0.5, self.resolve(state, joint, False))]

    def sample(self, state: int, joint: tuple[int, ...], rng: np.random.Generator) -> Outcome:
        return self.resolve(state, joint, bool(rng.random() < 0.5))


# ---------------------------------------------------------------------------------------------
# Hu & Wellman 2003: the grid games
# ---------------------------------------------------------------------------------------------
GRID_SIZE = 3
GRID_MOVES = ((-1, 0), (0, -1), (1, 0), (0, 1))  # (dx, dy) of Left, Down, Right, Up
UP = 3
GOAL_REWARD = 100.0
COLLISION_REWARD = -1.0


def grid_cell(x: int, y: int) -> int:
    """Cell index of column x and row y (row 0 at the bottom), 0-8."""
    return y * GRID_SIZE + x


class GridGame(FiniteMarkovGame):
    """Hu & Wellman 2003's general-sum grid games on a 3x3 board (Nash-Q's test beds).

    Two agents ("agent_0", "agent_1") start in the bottom-left and bottom-right corners.
    Actions 0-3: Left, Down, Right, Up, one cell per step, both at once. A move off the
    board leaves the agent where it is. If both agents would end in the same cell they
    collide: both bounce back to where they were and each gets -1 (except in a goal cell
    both may enter together). Swapping cells is not a collision: the paper counts only
    moving into one cell. An agent that enters its goal gets +100; the episode ends
    (terminated) as soon as one agent, or both, reach their goals. gamma 0.99 as in the
    paper; `max_steps` (default 100) truncates an episode that has not ended.

    State index: agent 0's cell * 9 + agent 1's cell (cells `grid_cell(x, y)`), 81 states;
    the ones with both agents in one non-goal cell are never reached.
    """

    agent_names = ("agent_0", "agent_1")
    action_names = ("left", "down", "right", "up")
    num_states = (GRID_SIZE * GRID_SIZE) ** 2
    gamma = 0.99
    starts = (grid_cell(0, 0), grid_cell(2, 0))
    goals: tuple[int, int] = (0, 0)
    barrier_cells: tuple[int, ...] = ()  # moving Up from these succeeds with probability 0.5

    @staticmethod
    def encode(cell_0: int, cell_1: int) -> int:
        return cell_0 * GRID_SIZE * GRID_SIZE + cell_1

    @staticmethod
    def decode(state: int) -> tuple[int, int]:
        return divmod(int(state), GRID_SIZE * GRID_SIZE)

    def initial_distribution(self) -> np.ndarray:
        p = np.zeros(self.num_states)
        p[self.encode(*self.starts)] = 1.0
        return p

    def resolve(self, state: int, joint: tuple[int, ...], passes: tuple[bool, bool]) -> Outcome:
        """The step when agent i's Up through a barrier succeeds iff passes[i]."""
        cells = self.decode(state)
        targets = []
        for i, cell in enumerate(cells):
            x, y = cell % GRID_SIZE, cell // GRID_SIZE
            dx, dy = GRID_MOVES[joint[i]]
            blocked = joint[i] == UP and cell in self.barrier_cells and not passes[i]
            if blocked or not (0 <= x + dx < GRID_SIZE and 0 <= y + dy < GRID_SIZE):
                targets.append(cell)
            else:
                targets.append(grid_cell(x + dx, y + dy))
        if targets[0] == targets[1] and not (targets[0] == self.goals[0] == self.goals[1]):
            return state, (COLLISION_REWARD, COLLISION_REWARD), False
        reached = [targets[i] == self.goals[i] for i in range(2)]
        rewards = tuple(GOAL_REWARD if r else 0.0 for r in reached)
        return self.encode(*targets), rewards, any(reached)

    def _at_barrier(self, state: int, joint: tuple[int, ...]) -> list[bool]:
        return [joint[i] == UP and cell in self.barrier_cells
                for i, cell in enumerate(self.decode(state))]

    def outcomes(self, state: int, joint: tuple[int, ...]) -> list[tuple[float, Outcome]]:
        chances = [(True, False) if b else (True,) for b in self._at_barrier(state, joint)]
        p = 1.0 / (len(chances[0]) * len(chances[1]))
        return [(p, self.resolve(state, joint, (c0, c1))) for c0 in chances[0] for c1 in chances[1]]

    def sample(self, state: int, joint: tuple[int, ...], rng: np.random.Generator) -> Outcome:
        at_barrier = self._at_barrier(state, joint)
        passes = tuple(bool(rng.random() < 0.5) if b else True for b in at_barrier)
        return self.resolve(state, joint, passes)


class GridGame1(GridGame):
    """Grid Game 1: each agent's goal is the opposite top corner (agent 0 top-right, agent 1
    top-left); deterministic. Its equilibria include every pair of 4-step paths that never
    collide: both reach their goals together, worth 100 * 0.99^3 to each agent."""

    metadata = {"name": "grid_game_1_v0", "render_modes": []}
    goals = (grid_cell(2, 2), grid_cell(0, 2))


class GridGame2(GridGame):
    """Grid Game 2: one goal for both, the top-centre cell, behind the paper's barriers:
    moving Up from either bottom corner succeeds with probability 0.5 (otherwise the agent
    stays). In the paper's equilibria one agent walks round through the bottom centre (3 steps,
    100 * 0.99^2) while the other tries the barrier, reaching the goal with it only if it
    passes at once (the episode ends when the first agent arrives): worth 49 to it."""

    metadata = {"name": "grid_game_2_v0", "render_modes": []}
    goals = (grid_cell(1, 2), grid_cell(1, 2))
    barrier_cells = (grid_cell(0, 0), grid_cell(2, 0))
