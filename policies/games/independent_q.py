"""Independent Q-learning: each agent learns Q_i(s, a_i) over its own action only, treating
the other agents as part of the environment.

    Q_i(s, a_i) <- (1 - alpha) Q_i(s, a_i) + alpha (r_i + gamma max_a Q_i(s', a))
    (no bootstrap from a terminal s')

It is the baseline Littman 1994 and Hu & Wellman 2003 compare against. Its strategy is the
greedy action (a one-hot row; ties to the lowest action index), so it can never play the
mixed strategy a zero-sum game may need: against a best-responding opponent in soccer a
deterministic policy is exploited, which is the point of Minimax-Q. Acting explores
epsilon-uniformly around the greedy action (the base class's sampling rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.games.common import (
    GameAlgorithm,
    GameConfig,
    GameSpec,
    Transition,
    epsilon,
    learning_rate,
    sample_actions,
)


@dataclass
class IndependentQConfig(GameConfig):
    initial_value: float = 0.0  # Q before any update

    def validate(self) -> None:
        super().validate()
        if not np.isfinite(self.initial_value):
            raise ValueError(f"algo.initial_value must be a finite number (got {self.initial_value}).")


class IndependentQ(GameAlgorithm):
    config_class = IndependentQConfig

    def __init__(self, cfg: IndependentQConfig, spec: GameSpec, rng: np.random.Generator):
        super().__init__(cfg, spec, rng)
        for i in range(spec.num_agents):
            s, a = spec.state_sizes[i], spec.action_sizes[i]
            self.tables[f"q_{i}"] = np.full((s, a), float(cfg.initial_value))  # Q_i(s, own action)
            self.tables[f"visits_{i}"] = np.zeros((s, a))  # n(s, a) for lr "visits"

    @staticmethod
    def greedy(q: np.ndarray) -> np.ndarray:
        """One-hot rows of the greedy action of each row of Q (argmax: the lowest index on ties)."""
        out = np.zeros_like(q)
        out[np.arange(q.shape[0]), q.argmax(axis=1)] = 1.0
        return out

    def strategies(self) -> list[np.ndarray]:
        return [self.greedy(self.tables[f"q_{i}"]) for i in range(self.spec.num_agents)]

    def act(self, states: np.ndarray, explore: bool = True) -> np.ndarray:
        """The base class's epsilon-uniform sampling, on the rows of the visited states only
        (the whole greedy table per step would cost more than the learning)."""
        eps = epsilon(self.cfg, self.steps) if explore else 0.0
        out = np.zeros(states.shape, np.int64)
        for i in range(self.spec.num_agents):
            probs = self.greedy(self.tables[f"q_{i}"][states[:, i]])
            out[:, i] = sample_actions(self.rng, (1.0 - eps) * probs + eps / probs.shape[-1])
        return out

    def learn(self, t: Transition) -> dict[str, float]:
        errors = []
        for e in range(t.states.shape[0]):  # env rows in order, each one env step
            for i in range(self.spec.num_agents):
                q, visits = self.tables[f"q_{i}"], self.tables[f"visits_{i}"]
                s, a, s_next = t.states[e, i], t.actions[e, i], t.next_states[e, i]
                # 1. the TD target: own reward plus the greedy value of the next state
                bootstrap = 0.0 if t.terminated[e] else self.cfg.gamma * q[s_next].max()
                target = t.rewards[e, i] + bootstrap
                # 2. move Q(s, a) toward it
                visits[s, a] += 1
                alpha = learning_rate(self.cfg, self.steps, visits[s, a])
                errors.append(target - q[s, a])
                q[s, a] += alpha * (target - q[s, a])
            self.steps += 1
        return {"losses/td_error": float(np.mean(np.abs(errors)))}
