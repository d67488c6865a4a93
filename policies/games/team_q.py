"""Team-Q: equilibrium-based Q-learning of a team over the joint action, linear in basis
functions (the "multi-agent approximated equilibrium-based Q-learning" of UAV field coverage).

In a team game every agent gets the global reward, so the equilibrium that matters is the
joint action of the highest team value: each agent evaluates

    Q_sum(s, a) = sum_i theta_i . phi_i(s, a)        (a: the joint action)

and plays its own component of argmax_a Q_sum(s, a). Our reading of the summed
approximate Q: theta_i are agent i's weights over phi_i, its block of basis functions
(what its own move in a does from s: see `policies.games.coverage_grid.FEATURES`); the sum
is the team's value, learned from the global reward by one TD error

    delta = r + gamma max_a' Q_sum(s', a') - Q_sum(s, a),   theta_i += alpha delta phi_i(s, a)

(the gradient of Q_sum with respect to theta_i is phi_i). Stacking the blocks,
theta = [theta_1 ... theta_N] and phi = [phi_1 ... phi_N], this is theta . phi, which is
how it is stored: one (F,) table "theta". With `normalized_step` the step is divided by
|phi(s, a)|^2 (normalised LMS), so alpha is the fraction of the TD error removed at (s, a)
whatever the features' scale, and on a one-hot basis it is exactly tabular Q-learning.

The social convention makes decentralised execution consistent: several joint actions
can tie for the maximum (untrained weights tie them all), and agents that pick different
maximisers play a joint action nobody chose. Among the joint actions within
`tie_tolerance` of the maximum every agent takes the first in the fixed order (C order
over agents, agent 0 slowest: agent 0's lowest action first, then agent 1's, ...). Every
agent computes the same maximisation from the same observation, so every agent picks the
same joint action and plays its own part of it. Exploration is each agent's own: with
probability epsilon it plays a uniformly random action instead.

Two bases:
- An env with a `basis` method and a `num_features` count (like `CoverageGrid`): the
  observation is the full state, the same for every agent, and `basis(observation)` gives
  phi of every joint action, (J, F), or (E, J, F) for (E, D) rows. The trainer hands the
  env over with `attach_env(env)` (or a loop calls `use_basis(env.basis, env.num_features)`)
  before training and before loading a checkpoint; `reads_features` is then true and `act`
  and `learn` take observation rows (E, N, D) instead of state indices. There is no finite
  state, so no `strategies()`: the policy is `own_action(observation, i)`, and `policy()`
  is a `LinearTeamPolicy`.
- Otherwise the tabular basis: phi is one-hot over (state, joint action), so each agent
  keeps Q_i(s_i, a) = theta_i[s_i, a] over its own finite state and its own reward (the
  global one in a team game) — Littman's team Q-learning. In a fully observable team game
  every agent sees the same states and rewards, so the tables stay equal and the
  convention picks one joint action. `strategies()` is the greedy own component, one-hot.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policies.games.common import (
    GameAlgorithm,
    GameConfig,
    GameSpec,
    Transition,
    epsilon,
    finite_state_size,
    learning_rate,
)
from policies.games.policy import GamePolicy
from policies.policy import atomic_torch_save

LINEAR_TEAM_FORMAT = "team_q_linear"
LINEAR_TEAM_VERSION = 1


@dataclass
class TeamQConfig(GameConfig):
    # A short horizon: a coverage reward comes at once, and basis functions that look one
    # move ahead make a far-sighted linear value prefer hovering next to uncovered cells to
    # covering them: on the 6 x 6 grid after 10k steps, gamma 0.9 left 1 seed of 4 with such a
    # team (coverage 0.70 of 2 drones, 0.35 of 3, against 0.92-0.94); gamma 0.5 none (0.93-0.97).
    gamma: float = 0.5
    # A constant step: the feature basis has no table entries to count visits of.
    lr_schedule: str = "constant"
    lr: float = 0.1
    # Explore a lot first (the coverage grid's greedy team of zero weights stays put).
    epsilon_start: float = 0.5
    epsilon_end: float = 0.05
    epsilon_anneal_steps: int = 10_000
    normalized_step: bool = True  # divide the step by |phi(s, a)|^2 (normalised LMS)
    # Joint actions whose Q_sum is within tie_tolerance * max(1, |max|) of the maximum tie.
    tie_tolerance: float = 1e-9

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.tie_tolerance < 1.0:
            raise ValueError(f"algo.tie_tolerance must be in [0, 1) (got {self.tie_tolerance}); "
                             "it is the relative gap under which two joint values tie.")


def conventional_argmax(q: np.ndarray, tolerance: float) -> np.ndarray:
    """The social convention: the first joint action (C order) within `tolerance` of the
    maximum of each row of (..., J) values, as (...,) indices."""
    best = q.max(axis=-1, keepdims=True)
    ties = q >= best - tolerance * np.maximum(1.0, np.abs(best))
    return ties.argmax(axis=-1)  # argmax of booleans: the first True


class TeamQ(GameAlgorithm):
    """The team's value over joint actions, from the global reward; every agent plays its part
    of the conventional argmax (see the module docstring for the two bases)."""

    config_class = TeamQConfig
    cfg: TeamQConfig
    # The class may read features, so the trainer sizes the spec by observation widths (a
    # one-hot observation's width is its state count); an instance does once it has a basis.
    reads_features = True

    def __init__(self, cfg: TeamQConfig, spec: GameSpec, rng: np.random.Generator):
        super().__init__(cfg, spec, rng)
        self.num_joint_actions = int(np.prod(spec.action_sizes))
        self.basis_fn: Callable[[np.ndarray], np.ndarray] | None = None
        self.reads_features = False
        # The tabular basis until `use_basis`: theta_i[s_i, a] = Q_i(s_i, a), with visit counts
        # for the "visits" learning-rate schedule.
        for j, size in enumerate(spec.state_sizes):
            self.tables[f"q_{j}"] = np.zeros((size, self.num_joint_actions))
            self.tables[f"visits_{j}"] = np.zeros((size, self.num_joint_actions))

    # -- the hooks the trainer calls: the env's basis functions, the trained policy -------------
    def attach_env(self, env: Any) -> None:
        """Read the env's basis functions if it has them; otherwise stay tabular (finite states)."""
        if callable(getattr(env, "basis", None)):
            if not isinstance(getattr(env, "num_features", None), int):
                raise TypeError(f"{type(env).__name__} has basis() but no integer num_features; "
                                "team_q needs both to size its weights.")
            self.use_basis(env.basis, env.num_features)
            return
        for agent in env.possible_agents:
            finite_state_size(env.observation_space(agent), agent)

    def policy(self, metadata: dict[str, Any] | None = None) -> GamePolicy | LinearTeamPolicy:
        """The greedy team: strategy tables on finite states, the weights and basis otherwise."""
        if not self.reads_features:
            return GamePolicy(self.spec.agents, self.strategies(), metadata)
        return LinearTeamPolicy(self.spec.agents, self.spec.action_sizes, self.tables["theta"],
                                self.basis_fn, self.cfg.tie_tolerance, metadata)

    def use_basis(self, basis_fn: Callable[[np.ndarray], np.ndarray], num_features: int) -> None:
        """Learn theta . phi over `basis_fn(observation) -> (J, num_features)` from now on."""
        if self.cfg.lr_schedule == "visits":
            raise ValueError("algo.lr_schedule='visits' counts visits of table entries, which a "
                             "feature basis does not have; use 'constant' or 'decay' for team_q.")
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be an integer >= 1 (got {num_features!r}).")
        self.basis_fn = basis_fn
        self.reads_features = True
        self.tables = {"theta": np.zeros(num_features)}
        # phi of the last observations: learn reads phi(s) that act just computed, and act
        # reads phi(s') that learn just computed, so one basis call a step suffices.
        self._recent_features: dict[bytes, np.ndarray] = {}

    # -- Q_sum and the greedy joint action ------------------------------------------------------
    def features(self, observations: np.ndarray) -> np.ndarray:
        """phi of every joint action of (E, D) observations: (E, J, F), checked."""
        key = np.ascontiguousarray(observations, np.float32).tobytes()
        if key in self._recent_features:
            return self._recent_features[key]
        phi = np.asarray(self.basis_fn(observations))
        if phi.shape != (len(observations), self.num_joint_actions, len(self.tables["theta"])):
            raise ValueError(f"basis gave features of shape {phi.shape}; expected (E, J, F) = "
                             f"({len(observations)}, {self.num_joint_actions}, "
                             f"{len(self.tables['theta'])}) for {len(observations)} observations.")
        if len(self._recent_features) >= 4:
            self._recent_features.pop(next(iter(self._recent_features)))
        self._recent_features[key] = phi
        return phi

    def joint_values(self, observation: np.ndarray | int, agent_index: int = 0) -> np.ndarray:
        """Q_sum(s, a) of every joint action a (J,), as agent `agent_index` computes it from
        its observation (a feature observation, or its state index with the tabular basis)."""
        if self.reads_features:
            return self.features(np.asarray(observation)[None])[0] @ self.tables["theta"]
        return self.tables[f"q_{agent_index}"][int(observation)]

    def joint_action(self, observation: np.ndarray | int, agent_index: int = 0) -> np.ndarray:
        """The greedy joint action (N,) by the social convention."""
        index = conventional_argmax(self.joint_values(observation, agent_index),
                                    self.cfg.tie_tolerance)
        return np.array(np.unravel_index(index, self.spec.action_sizes))

    def own_action(self, observation: np.ndarray | int, agent_index: int) -> int:
        """Agent `agent_index`'s part of the greedy joint action: what a drone node plays."""
        return int(self.joint_action(observation, agent_index)[agent_index])

    def _greedy_joint(self, states: np.ndarray) -> np.ndarray:
        """(E, N) each agent's greedy joint-action index from its own observation."""
        if self.reads_features:
            obs = self._shared_observations(states)
            q = self.features(obs) @ self.tables["theta"]  # (E, J)
            index = conventional_argmax(q, self.cfg.tie_tolerance)
            return np.repeat(index[:, None], self.spec.num_agents, axis=1)
        q = np.stack([self.tables[f"q_{j}"][states[:, j]] for j in range(self.spec.num_agents)],
                     axis=1)  # (E, N, J)
        return conventional_argmax(q, self.cfg.tie_tolerance)

    def _shared_observations(self, observations: np.ndarray) -> np.ndarray:
        """(E, N, D) -> (E, D): the full state every agent observes, or one clear error."""
        obs = np.asarray(observations)
        if obs.ndim != 3 or not np.all(obs == obs[:, :1]):
            raise ValueError("team_q over a basis needs every agent to observe the same full "
                             f"state, (E, N, D) equal along N (got shape {obs.shape}); use an "
                             "env whose observation is the full state, like CoverageGrid.")
        return obs[:, 0]

    # -- acting ----------------------------------------------------------------------------
    def act(self, states: np.ndarray, explore: bool = True) -> np.ndarray:
        """Each agent's component of the conventional greedy joint action, epsilon-uniform."""
        greedy = self._greedy_joint(states)  # (E, N) joint indices
        joint = np.stack(np.unravel_index(greedy, self.spec.action_sizes), axis=-1)  # (E, N, N)
        n = self.spec.num_agents
        actions = joint[:, np.arange(n), np.arange(n)]  # agent j plays component j
        eps = epsilon(self.cfg, self.steps) if explore else 0.0
        if eps:
            explore_mask = self.rng.random(actions.shape) < eps
            random = self.rng.integers(0, np.array(self.spec.action_sizes), size=actions.shape)
            actions = np.where(explore_mask, random, actions)
        return actions.astype(np.int64)

    def strategies(self) -> list[np.ndarray]:
        """Agent i's greedy own action at each of its states, one-hot (S_i, A_i) rows."""
        if self.reads_features:
            raise TypeError("team_q over a basis has no finite state to tabulate a strategy on; "
                            "use own_action(observation, agent_index) for its policy.")
        out = []
        for j, size in enumerate(self.spec.state_sizes):
            index = conventional_argmax(self.tables[f"q_{j}"], self.cfg.tie_tolerance)
            own = np.unravel_index(index, self.spec.action_sizes)[j]
            table = np.zeros((size, self.spec.action_sizes[j]))
            table[np.arange(size), own] = 1.0
            out.append(table)
        return out

    # -- learning ----------------------------------------------------------------------------
    def learn(self, t: Transition) -> dict[str, float]:
        """One TD update per env row, in order; figures: the mean |TD error| and the size of
        the weights (|theta|, or the largest |Q| of the tables)."""
        joint = np.ravel_multi_index(tuple(t.actions.T), self.spec.action_sizes)  # (E,)
        if self.reads_features:
            errors = self._learn_features(t, joint)
            size = float(np.linalg.norm(self.tables["theta"]))
        else:
            errors = self._learn_tables(t, joint)
            size = float(np.mean([np.abs(self.tables[f"q_{j}"]).max()
                                  for j in range(self.spec.num_agents)]))
        return {"losses/td_error": float(np.mean(np.abs(errors))), "charts/q_size": size}

    def _learn_features(self, t: Transition, joint: np.ndarray) -> list[float]:
        theta = self.tables["theta"]
        phi = self.features(self._shared_observations(t.states))  # (E, J, F)
        phi_next = self.features(self._shared_observations(t.next_states))
        reward = t.rewards.mean(axis=1)  # the global reward: every agent's is the same
        errors = []
        for e in range(len(joint)):
            grad = phi[e, joint[e]]  # d Q_sum / d theta: every block phi_i
            bootstrap = 0.0 if t.terminated[e] else (phi_next[e] @ theta).max()
            delta = reward[e] + self.cfg.gamma * bootstrap - grad @ theta
            step = learning_rate(self.cfg, self.steps)
            if self.cfg.normalized_step:
                step = step / max(float(grad @ grad), 1e-12)
            theta += step * delta * grad
            self.steps += 1
            errors.append(delta)
        return errors

    def _learn_tables(self, t: Transition, joint: np.ndarray) -> list[float]:
        errors = []
        for e in range(len(joint)):
            for j in range(self.spec.num_agents):
                q, visits = self.tables[f"q_{j}"], self.tables[f"visits_{j}"]
                s, s_next, a = t.states[e, j], t.next_states[e, j], joint[e]
                bootstrap = 0.0 if t.terminated[e] else q[s_next].max()
                delta = t.rewards[e, j] + self.cfg.gamma * bootstrap - q[s, a]
                visits[s, a] += 1
                # a one-hot phi has |phi|^2 = 1: the normalised step is the plain one
                q[s, a] += learning_rate(self.cfg, self.steps, visits[s, a]) * delta
                errors.append(delta)
            self.steps += 1
        return errors


class LinearTeamPolicy:
    """A trained Team-Q over features: every agent plays its part of the conventional argmax
    of theta . phi(observation, a). The policy is pure, so `act` is the same either way and
    `probabilities` one-hot; `save` keeps the basis function with its env object (pickled),
    so `policies.load` gives back the policy without the env."""

    flies_any_count = False  # theta has one block per drone of the training team

    def __init__(self, agents: list[str], action_sizes: list[int], theta: np.ndarray,
                 basis_fn: Callable[[np.ndarray], np.ndarray], tie_tolerance: float,
                 metadata: dict[str, Any] | None = None):
        self.agents = list(agents)
        self.action_sizes = list(action_sizes)
        self.theta = np.asarray(theta, np.float64).copy()
        self.basis_fn = basis_fn
        self.tie_tolerance = float(tie_tolerance)
        self.metadata = dict(metadata or {})

    def reset(self) -> None:
        """Nothing to forget: the policy reads the full state."""

    @property
    def obs_sizes(self) -> list[int]:
        """The exported graph's input width: the basis functions of every joint action."""
        return [int(np.prod(self.action_sizes)) * len(self.theta)] * len(self.agents)

    @property
    def basis_name(self) -> str:
        """Where the basis functions live (what a caller of the exported graph computes)."""
        owner = getattr(self.basis_fn, "__self__", None)
        where = type(owner) if owner is not None else self.basis_fn
        return f"{where.__module__}.{getattr(where, '__qualname__', repr(where))}.basis"

    def joint_action(self, observation: Any) -> np.ndarray:
        """The greedy joint action (N,) by the social convention."""
        phi = np.asarray(self.basis_fn(np.asarray(observation, np.float32).ravel()))
        if phi.ndim != 2 or phi.shape[1] != len(self.theta):
            raise ValueError(f"the basis gave features of shape {phi.shape}; this policy's "
                             f"weights need (J, {len(self.theta)}). Was it trained on another env?")
        index = conventional_argmax(phi @ self.theta, self.tie_tolerance)
        return np.array(np.unravel_index(index, self.action_sizes))

    def probabilities(self, observations: dict[str, Any]) -> dict[str, np.ndarray]:
        """Each agent's own action of the greedy joint action from its observation, one-hot."""
        out = {}
        for name, obs in observations.items():
            if name not in self.agents:
                raise KeyError(f"unknown agent {name!r}; this policy was trained for "
                               f"{', '.join(self.agents)}.")
            i = self.agents.index(name)
            probs = np.zeros(self.action_sizes[i])
            probs[self.joint_action(obs)[i]] = 1.0
            out[name] = probs
        return out

    def act(self, observations: dict[str, Any], deterministic: bool = True) -> dict[str, int]:
        return {name: int(p.argmax()) for name, p in self.probabilities(observations).items()}

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"format": LINEAR_TEAM_FORMAT, "format_version": LINEAR_TEAM_VERSION,
                           "agents": self.agents, "action_sizes": self.action_sizes,
                           "theta": self.theta, "basis": self.basis_fn,
                           "tie_tolerance": self.tie_tolerance, "metadata": self.metadata}, path)
        return path

    @classmethod
    def from_payload(cls, data: dict[str, Any], path: Path) -> LinearTeamPolicy:
        if data.get("format_version") != LINEAR_TEAM_VERSION:
            raise ValueError(f"{path} has Team-Q policy format {data.get('format_version')!r}; "
                             f"this version reads {LINEAR_TEAM_VERSION}. Retrain or use the "
                             "matching release.")
        return cls(data["agents"], data["action_sizes"], data["theta"], data["basis"],
                   data["tie_tolerance"], data["metadata"])
