"""Nash-Q (Hu & Wellman 2003): Q-learning for two-player general-sum Markov games.

Each agent i observes both players' actions and rewards and keeps a Q table of *each*
player j over joint actions, Q^i_j(s, a_1, a_2), so it can solve the stage game both
players face. The backup uses a Nash equilibrium of that stage game at the next state:
    Q^i_j(s, a_1, a_2) <- (1 - alpha) Q^i_j(s, a_1, a_2) + alpha (r_j + gamma Nash_j(s'))
    (pi_1, pi_2), Nash_1(s), Nash_2(s) = select_nash(Q^i_1(s), Q^i_2(s))
with alpha = 1 / n(s, a_1, a_2) (lr "visits") and no bootstrap from a terminal s'. The
agent plays its own component of the selected equilibrium. Equilibria come from nashpy
(`policies.games.stage`), which solves bimatrix games: this Nash-Q is two-player.

A stage game may have several equilibria; both learners must back up the same one, so
`select_nash` applies one fixed rule to the tables in agent order (agent 0's Q as the row
player's) whichever agent solves them. Learners that saw the same transitions hold the
same tables and so select the same equilibrium.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.games.common import GameAlgorithm, GameConfig, GameSpec, Transition, learning_rate
from policies.games.stage import select_nash


@dataclass
class NashQConfig(GameConfig):
    lr_schedule: str = "visits"  # Hu & Wellman's alpha = 1 / n(s, a_1, a_2)


class NashQ(GameAlgorithm):
    config_class = NashQConfig

    def __init__(self, cfg: NashQConfig, spec: GameSpec, rng: np.random.Generator):
        if spec.num_agents != 2:
            raise ValueError(f"nash_q is two-player here (stage games solved as bimatrix games "
                             f"with nashpy) and this game has {spec.num_agents} agents; use "
                             "friend_q or foe_q for more.")
        super().__init__(cfg, spec, rng)
        a0, a1 = spec.action_sizes
        for i in range(2):
            s = spec.state_sizes[i]
            # Agent i's view over its own observation: Q^i_j for j = 0, 1 (Hu & Wellman: 0 to start).
            self.tables[f"q_{i}"] = np.zeros((2, s, a0, a1))
            self.tables[f"nash_value_{i}"] = np.zeros((2, s))  # Nash_j(s) of agent i's tables
            self.tables[f"pi_{i}"] = np.full((s, spec.action_sizes[i]), 1.0 / spec.action_sizes[i])
            self.tables[f"visits_{i}"] = np.zeros((s, a0, a1))
        self._last_key: tuple[bytes, bytes] | None = None
        self._last_solution: tuple = ()

    def strategies(self) -> list[np.ndarray]:
        return [self.tables["pi_0"], self.tables["pi_1"]]

    def solve(self, a: np.ndarray, b: np.ndarray) -> tuple:
        """`select_nash` of the stage game, remembering the last one: in a fully observable
        game both agents update identical tables, so the second solve of a step is the first."""
        key = (a.tobytes(), b.tobytes())
        if key != self._last_key:
            self._last_key, self._last_solution = key, select_nash(a, b)
        return self._last_solution

    def learn(self, t: Transition) -> dict[str, float]:
        errors = []
        for e in range(t.states.shape[0]):  # env rows in order, each one env step
            joint = (int(t.actions[e, 0]), int(t.actions[e, 1]))
            for i in range(2):
                q, nash_value = self.tables[f"q_{i}"], self.tables[f"nash_value_{i}"]
                visits = self.tables[f"visits_{i}"]
                s, s_next = t.states[e, i], t.next_states[e, i]
                visits[(s, *joint)] += 1
                alpha = learning_rate(self.cfg, self.steps, visits[(s, *joint)])
                for j in range(2):
                    # 1. player j's target: its reward plus its Nash value of the next state
                    bootstrap = 0.0 if t.terminated[e] else self.cfg.gamma * nash_value[j, s_next]
                    target = t.rewards[e, j] + bootstrap
                    errors.append(target - q[(j, s, *joint)])
                    q[(j, s, *joint)] += alpha * (target - q[(j, s, *joint)])
                # 2. re-solve the stage game at s (tables in agent order): strategy and Nash values
                p0, p1, v0, v1 = self.solve(q[0, s], q[1, s])
                self.tables[f"pi_{i}"][s] = p0 if i == 0 else p1
                nash_value[:, s] = (v0, v1)
            self.steps += 1
        return {"losses/td_error": float(np.mean(np.abs(errors)))}
