"""Minimax-Q (Littman 1994): Q-learning for two-player zero-sum Markov games.

Each agent i keeps Q_i(s, a, o) over its own action a and its opponent's o, and values a
state by the max-min of that stage game instead of a max:
    Q_i(s, a, o) <- (1 - alpha) Q_i(s, a, o) + alpha (r_i + gamma V_i(s'))
    pi_i(s, .), V_i(s) = maxmin(Q_i(s))   (a linear programme, `policies.games.stage.maxmin`)
with no bootstrap from a terminal s'. The max-min strategy is the best guarantee against
any opponent, so in a zero-sum game it converges to the minimax equilibrium (the
mixed strategy a deterministic Q-learner cannot represent: matching pennies' 50/50).

Littman's soccer settings are the defaults: gamma 0.9, explore 0.2 (play uniformly at
random with that probability), alpha from 1.0 decaying by 0.9999954 per env step, and
Q = 1, V = 1, pi uniform to start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.games.common import GameAlgorithm, GameConfig, GameSpec, Transition, learning_rate
from policies.games.stage import maxmin


@dataclass
class MinimaxQConfig(GameConfig):
    lr_schedule: str = "decay"  # Littman's alpha = 1.0 * 0.9999954^t (floored at lr_min)
    initial_value: float = 1.0  # Q and V before any update (Littman: 1)


class MinimaxQ(GameAlgorithm):
    config_class = MinimaxQConfig

    def __init__(self, cfg: MinimaxQConfig, spec: GameSpec, rng: np.random.Generator):
        if spec.num_agents != 2:
            raise ValueError(f"minimax_q is for two-player zero-sum games and this game has "
                             f"{spec.num_agents} agents; use foe_q (every other agent a foe) "
                             "for more than two.")
        super().__init__(cfg, spec, rng)
        for i in range(2):
            s, a, o = spec.state_sizes[i], spec.action_sizes[i], spec.action_sizes[1 - i]
            self.tables[f"q_{i}"] = np.full((s, a, o), cfg.initial_value)  # Q_i(s, own, opponent)
            self.tables[f"v_{i}"] = np.full(s, cfg.initial_value)  # V_i(s)
            self.tables[f"pi_{i}"] = np.full((s, a), 1.0 / a)  # pi_i(s, own)
            self.tables[f"visits_{i}"] = np.zeros((s, a, o))  # n(s, a, o) for lr "visits"

    def strategies(self) -> list[np.ndarray]:
        return [self.tables["pi_0"], self.tables["pi_1"]]

    def learn(self, t: Transition) -> dict[str, float]:
        errors = []
        for e in range(t.states.shape[0]):  # env rows in order, each one env step
            for i in range(2):
                q, v, pi = self.tables[f"q_{i}"], self.tables[f"v_{i}"], self.tables[f"pi_{i}"]
                visits = self.tables[f"visits_{i}"]
                s, s_next = t.states[e, i], t.next_states[e, i]
                a, o = t.actions[e, i], t.actions[e, 1 - i]
                # 1. the TD target: own reward plus the max-min value of the next state
                target = t.rewards[e, i] + (0.0 if t.terminated[e] else self.cfg.gamma * v[s_next])
                # 2. move Q(s, a, o) toward it
                visits[s, a, o] += 1
                alpha = learning_rate(self.cfg, self.steps, visits[s, a, o])
                errors.append(target - q[s, a, o])
                q[s, a, o] += alpha * (target - q[s, a, o])
                # 3. re-solve the stage game at s: the strategy and the value of the state
                pi[s], v[s] = maxmin(q[s])
            self.steps += 1
        return {"losses/td_error": float(np.mean(np.abs(errors))),
                "charts/state_value": float(np.mean(self.tables["v_0"]))}
