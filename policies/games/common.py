"""What the game-theoretic family shares: the finite Markov-game view of an environment,
exploration and learning-rate schedules, and the base class of its tabular learners.

These learners are the ones the stochastic-game literature defines: a table of values
over states and (joint) actions, updated after every transition, with a stage game
solved at each state (`policies.games.stage`). They read a *finite state*: each agent's
observation is a `Discrete` index or a one-hot `Box`, which the agent's index into its
table. In a fully observable Markov game every agent observes the same state; the tables
are kept per agent over its own observation, so what an agent acts on is only what it
observes (a drone node can act on it).

Batched view (`GameSpec`, `state_indices`): the trainer steps `trainer.num_envs` copies
(one by default: the learners are online and their papers learn from one trajectory) and
hands the algorithm arrays shaped (envs, agents): state indices, actions, rewards.

An algorithm (one file each: minimax_q.py, nash_q.py, ffq.py, wolf_phc.py, team_q.py)
subclasses `GameAlgorithm` and defines:
  act(states, step, explore)   (E, N) int states -> (E, N) int actions
  learn(transition)            one joint transition of every env -> figures to log
  strategies()                 the mixed strategy of every agent: list of (S_i, A_i) tables
  state_dict / load_state_dict numpy arrays and counters (the checkpoint's "algo")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from policies.config import AlgorithmConfig
from policies.offpolicy.common import linear_schedule


def finite_state_size(space: spaces.Space, agent: str = "agent") -> int:
    """How many states an observation space holds, or one clear error."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if (isinstance(space, spaces.Box) and len(space.shape) == 1 and np.all(space.low == 0)
            and np.all(space.high == 1)):
        return int(space.shape[0])
    raise TypeError(f"observation space of {agent} is {space}; the game-theoretic learners need a "
                    "finite state: a Discrete space or a one-hot Box (shape (S,), low 0, high 1).")


def one_hot_space(space: spaces.Space) -> spaces.Box:
    """The Box a `Discrete` observation becomes for the batched trainer (one-hot rows)."""
    n = finite_state_size(space)
    return spaces.Box(0.0, 1.0, (n,), np.float32)


def state_indices(obs: np.ndarray, state_sizes: list[int]) -> np.ndarray:
    """One-hot observation rows (E, N, D) -> state indices (E, N), checked."""
    e, n = obs.shape[:2]
    out = np.zeros((e, n), np.int64)
    for j, size in enumerate(state_sizes):
        rows = obs[:, j, :size]
        out[:, j] = rows.argmax(axis=1)
        ones = (rows == 1.0).sum(axis=1)
        if np.any(ones != 1) or np.any(rows.sum(axis=1) != 1.0):
            raise ValueError(f"observation of agent {j} is not one-hot; the game-theoretic learners "
                             "need a Discrete observation or a one-hot Box.")
    return out


@dataclass
class GameSpec:
    """What a tabular learner knows of its game."""

    agents: list[str]
    state_sizes: list[int]  # per agent: how many observations it can tell apart
    action_sizes: list[int]  # per agent: its Discrete action count
    num_envs: int = 1

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def joint_action_shape(self) -> tuple[int, ...]:
        return tuple(self.action_sizes)

    @classmethod
    def from_env_spec(cls, spec: Any) -> GameSpec:
        """The finite view of a trainer `EnvSpec` (one-hot Box observations, Discrete actions)."""
        action_sizes = []
        for a, s in zip(spec.agents, spec.action_spaces, strict=True):
            if not isinstance(s, spaces.Discrete):
                raise TypeError(f"action space of {a} is {s}; the game-theoretic learners need "
                                "Discrete actions.")
            action_sizes.append(int(s.n))
        state_sizes = [finite_state_size(s, a) for a, s in
                       zip(spec.agents, spec.observation_spaces, strict=True)]
        return cls(list(spec.agents), state_sizes, action_sizes, spec.num_envs)


@dataclass
class Transition:
    """One joint step of every env, (E, N) arrays (E,) flags; `done` rows were reset."""

    states: np.ndarray  # int (E, N)
    actions: np.ndarray  # int (E, N)
    rewards: np.ndarray  # float (E, N), each agent's own reward
    next_states: np.ndarray  # int (E, N): the final observation where done
    terminated: np.ndarray  # bool (E,): no bootstrapping from next_states
    done: np.ndarray  # bool (E,)


@dataclass
class GameConfig(AlgorithmConfig):
    """Hyperparameters every tabular learner shares (Littman 1994's defaults where it gives them)."""

    gamma: float = 0.9
    # Exploration: with probability epsilon an agent plays uniformly at random, annealed
    # linearly from epsilon_start to epsilon_end over epsilon_anneal_steps env steps.
    epsilon_start: float = 0.2
    epsilon_end: float = 0.2
    epsilon_anneal_steps: int = 1
    # Learning rate: "decay" is lr * lr_decay^t (t = env steps, floored at lr_min), as in
    # Littman's soccer experiments; "visits" is lr / n(s, a)^lr_power with n the visit count
    # of the entry updated (Hu & Wellman's 1/n); "constant" is lr.
    lr_schedule: str = "visits"
    lr: float = 1.0
    lr_decay: float = 0.9999954
    lr_min: float = 0.01
    lr_power: float = 1.0

    def validate(self) -> None:
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"algo.gamma must be in [0, 1) (got {self.gamma}).")
        for name in ("epsilon_start", "epsilon_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"algo.{name} must be a probability in [0, 1] (got "
                                 f"{getattr(self, name)}).")
        if self.epsilon_anneal_steps < 1:
            raise ValueError(f"algo.epsilon_anneal_steps must be >= 1 (got {self.epsilon_anneal_steps}).")
        if self.lr_schedule not in ("decay", "visits", "constant"):
            raise ValueError(f"algo.lr_schedule must be decay, visits or constant (got "
                             f"{self.lr_schedule!r}).")
        if not 0.0 < self.lr <= 1.0 or not 0.0 <= self.lr_min <= 1.0:
            raise ValueError(f"algo.lr must be in (0, 1] and algo.lr_min in [0, 1] (got {self.lr}, "
                             f"{self.lr_min}).")
        if not 0.0 < self.lr_decay <= 1.0 or self.lr_power < 0.0:
            raise ValueError("algo.lr_decay must be in (0, 1] and algo.lr_power >= 0.")


def epsilon(cfg: GameConfig, step: int) -> float:
    """The exploration probability after `step` env steps."""
    return linear_schedule(cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_anneal_steps, step)


def learning_rate(cfg: GameConfig, step: int, visits: np.ndarray | float = 1.0) -> np.ndarray | float:
    """The step size of an update after `step` env steps, of entries visited `visits` times."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "decay":
        return max(cfg.lr_min, cfg.lr * cfg.lr_decay ** step)
    return np.maximum(cfg.lr_min, cfg.lr / np.maximum(visits, 1.0) ** cfg.lr_power)


def sample_actions(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One action per row of (..., A) probabilities (inverse CDF on one uniform draw per row)."""
    cdf = np.cumsum(probabilities, axis=-1)
    u = rng.random(probabilities.shape[:-1])[..., None] * cdf[..., -1:]
    return np.minimum((u >= cdf).sum(axis=-1), probabilities.shape[-1] - 1)


class GameAlgorithm:
    """Base of the tabular learners: spec, config, RNG, the step count and epsilon-greedy acting.

    A subclass fills `self.tables` (name -> numpy array) in `__init__`; `state_dict` saves
    them with `self.steps`, so a checkpoint restores the learner exactly.
    """

    config_class: type[GameConfig] = GameConfig

    def __init__(self, cfg: GameConfig, spec: GameSpec, rng: np.random.Generator):
        self.cfg = cfg
        self.spec = spec
        self.rng = rng
        self.steps = 0  # env steps learned from (schedules read it)
        self.tables: dict[str, np.ndarray] = {}

    # -- what an algorithm defines -----------------------------------------------------------
    def strategies(self) -> list[np.ndarray]:
        """Agent i's mixed strategy at each of its states: a (S_i, A_i) table per agent."""
        raise NotImplementedError

    def learn(self, t: Transition) -> dict[str, float]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def act(self, states: np.ndarray, explore: bool = True) -> np.ndarray:
        """Each agent samples its own mixed strategy at its own state (epsilon-uniform when exploring)."""
        e, n = states.shape
        out = np.zeros((e, n), np.int64)
        eps = epsilon(self.cfg, self.steps) if explore else 0.0
        for j, table in enumerate(self.strategies()):
            probs = table[states[:, j]]
            if eps:
                probs = (1.0 - eps) * probs + eps / probs.shape[-1]
            out[:, j] = sample_actions(self.rng, probs)
        return out

    def figures(self) -> dict[str, float]:
        """What the trainer logs of the schedules."""
        return {"charts/epsilon": float(epsilon(self.cfg, self.steps)),
                "charts/learning_rate": float(np.mean(learning_rate(self.cfg, self.steps)))}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "tables": {k: v.copy() for k, v in self.tables.items()}}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.steps = int(data["steps"])
        for k, v in data["tables"].items():
            if k not in self.tables or self.tables[k].shape != v.shape:
                raise ValueError(f"checkpoint table {k!r} does not fit this game; resume the run "
                                 "with the game it was trained on.")
            self.tables[k][...] = v
