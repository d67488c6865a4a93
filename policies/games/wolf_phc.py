"""PHC and WoLF-PHC (Bowling & Veloso 2002, "Multiagent learning using a variable learning rate").

Policy hill-climbing (PHC) is Q-learning on the agent's own action that plays a mixed
strategy and moves it a small step towards the greedy action after every update:
    Q_i(s, a) <- (1 - alpha) Q_i(s, a) + alpha (r_i + gamma max_a' Q_i(s', a'))
    pi_i(s, a) <- pi_i(s, a) - min(pi_i(s, a), delta / (|A_i| - 1))   for every a not greedy,
    pi_i(s, greedy) gains what the others lost                        (pi stays a distribution)
Every agent is an independent learner of its own observation and action: no model of the
others, any number of agents. Against a stationary opponent PHC climbs to a best response;
in self-play on a game whose only equilibrium is mixed (matching pennies,
rock-paper-scissors) the learners chase each other's best responses around the equilibrium
and the strategies they play never settle.

WoLF ("win or learn fast") changes only delta. Each agent also keeps its average policy
    pibar_i(s, .) += (pi_i(s, .) - pibar_i(s, .)) / C(s)     (C(s): visits of s)
and counts itself winning when its current policy does better against its own Q than the
average one would, sum_a pi Q > sum_a pibar Q. It then learns cautiously (delta_win) and
otherwise fast (delta_lose > delta_win): a learner that is being exploited gets away
quickly, one that is doing well gives the other time to adapt. In self-play on these games
that damps the orbit into a spiral: pi itself (not only its average) converges to the
equilibrium, which the paper proves for two-player two-action games and shows on
rock-paper-scissors.

Step sizes. The paper decays its rates in the matrix-game runs as 1 / (c + t / k) in the
step count t; here delta, delta_win and delta_lose are written
    delta_t = delta_0 / (1 + t / delta_decay_steps),
the same hyperbola with its starting value in front. A decaying step is what lets WoLF's
spiral tighten onto the equilibrium instead of ending in a band of width ~delta around it;
its sum still diverges, so the policy can travel any distance. PHC keeps orbiting under
the same schedule, so the contrast between the two is WoLF's, not the schedule's.
Q's step alpha stays constant (0.1): Q must track an opponent whose strategy keeps moving,
and as delta decays the ratio delta / alpha shrinks, so Q stays an accurate read of the
current opponent, the regime the paper's analysis assumes. (Measured on matching pennies:
alpha 0.02 against delta_0 0.01 lags so far that WoLF stops converging; a decaying alpha
converged more slowly than a constant one.)
Defaults, from what converged on every seed of matching pennies and rock-paper-scissors
within 5 * 10^4 steps: delta_win 0.01, delta_lose 0.04 (the ratio 4), decay over 500
steps (over 2000, one rock-paper-scissors seed in eight was still on a wide orbit at 5 * 10^4); PHC's delta 0.02 between them; explore 0.05; gamma 0.9 (a matrix game ends every
step, so gamma only matters in Markov games).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.games.common import GameAlgorithm, GameConfig, GameSpec, Transition, learning_rate


@dataclass
class HillClimbingConfig(GameConfig):
    """What PHC and WoLF-PHC share: exploration, Q's step size and the decay of delta."""

    epsilon_start: float = 0.05
    epsilon_end: float = 0.05
    lr_schedule: str = "constant"
    lr: float = 0.1
    delta_decay_steps: int = 500  # delta_t = delta_0 / (1 + t / delta_decay_steps)

    def validate(self) -> None:
        super().validate()
        if self.delta_decay_steps < 1:
            raise ValueError(f"algo.delta_decay_steps must be >= 1 (got {self.delta_decay_steps}); "
                             "make it large for a policy step that barely decays.")


@dataclass
class PHCConfig(HillClimbingConfig):
    delta: float = 0.02  # the one policy step size (before decay)

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.delta <= 1.0:
            raise ValueError(f"algo.delta must be in (0, 1] (got {self.delta}).")


@dataclass
class WoLFPHCConfig(HillClimbingConfig):
    delta_win: float = 0.01  # policy step while winning: learn slowly
    delta_lose: float = 0.04  # policy step while losing: learn fast

    def validate(self) -> None:
        super().validate()
        for name in ("delta_win", "delta_lose"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"algo.{name} must be in (0, 1] (got {getattr(self, name)}).")
        if self.delta_lose <= self.delta_win:
            raise ValueError(f"algo.delta_lose ({self.delta_lose}) must be larger than "
                             f"algo.delta_win ({self.delta_win}): WoLF learns fast while losing; "
                             "raise delta_lose (e.g. 2-4 times delta_win).")


def decayed(delta: float, step: int, decay_steps: int) -> float:
    """delta / (1 + step / decay_steps): the paper's 1 / (c + t / k) with c = 1 / delta."""
    return delta / (1.0 + step / decay_steps)


def hill_climb(pi: np.ndarray, greedy: int, delta: float) -> np.ndarray:
    """pi moved by delta towards its greedy action; no probability goes below 0."""
    if pi.shape[-1] == 1:
        return pi.copy()
    down = np.minimum(pi, delta / (pi.shape[-1] - 1))
    down[greedy] = 0.0
    out = pi - down
    out[greedy] += down.sum()
    return out


class PHC(GameAlgorithm):
    """Policy hill-climbing: one step size, the baseline that orbits in self-play."""

    config_class = PHCConfig

    def __init__(self, cfg: HillClimbingConfig, spec: GameSpec, rng: np.random.Generator):
        super().__init__(cfg, spec, rng)
        for i, (s, a) in enumerate(zip(spec.state_sizes, spec.action_sizes, strict=True)):
            self.tables[f"q_{i}"] = np.zeros((s, a))  # Q_i(s, own action)
            self.tables[f"pi_{i}"] = np.full((s, a), 1.0 / a)  # what agent i plays
            self.tables[f"pibar_{i}"] = np.full((s, a), 1.0 / a)  # its average policy
            self.tables[f"state_visits_{i}"] = np.zeros(s)  # C(s)
            self.tables[f"visits_{i}"] = np.zeros((s, a))  # n(s, a) for lr_schedule "visits"

    def strategies(self) -> list[np.ndarray]:
        """The current policies pi_i: what the agents play."""
        return [self.tables[f"pi_{i}"] for i in range(self.spec.num_agents)]

    def average_strategies(self) -> list[np.ndarray]:
        """The average policies pibar_i (WoLF's yardstick of winning)."""
        return [self.tables[f"pibar_{i}"] for i in range(self.spec.num_agents)]

    def policy_step(self, i: int, s: int) -> float:
        """delta for agent i at state s now; PHC has one."""
        return decayed(self.cfg.delta, self.steps, self.cfg.delta_decay_steps)

    def learn(self, t: Transition) -> dict[str, float]:
        deltas = []
        for e in range(t.states.shape[0]):  # env rows in order, each one env step
            for i in range(self.spec.num_agents):
                q, pi, pibar = self.tables[f"q_{i}"], self.tables[f"pi_{i}"], self.tables[f"pibar_{i}"]
                state_visits, visits = self.tables[f"state_visits_{i}"], self.tables[f"visits_{i}"]
                s, a, s_next = t.states[e, i], t.actions[e, i], t.next_states[e, i]
                # 1. Q-learning on the own action
                target = t.rewards[e, i] + (0.0 if t.terminated[e] else self.cfg.gamma * q[s_next].max())
                visits[s, a] += 1
                q[s, a] += learning_rate(self.cfg, self.steps, visits[s, a]) * (target - q[s, a])
                # 2. the average policy at s (before this step moves pi)
                state_visits[s] += 1
                pibar[s] += (pi[s] - pibar[s]) / state_visits[s]
                # 3. hill-climb pi towards the greedy action (ties broken at random)
                delta = self.policy_step(i, s)
                best = np.flatnonzero(q[s] == q[s].max())
                greedy = int(best[0] if best.size == 1 else self.rng.choice(best))
                pi[s] = hill_climb(pi[s], greedy, delta)
                deltas.append(delta)
            self.steps += 1
        return {"charts/policy_step": sum(deltas) / len(deltas)}


class WoLFPHC(PHC):
    """PHC whose step is small while winning and large while losing."""

    config_class = WoLFPHCConfig

    def policy_step(self, i: int, s: int) -> float:
        q, pi, pibar = self.tables[f"q_{i}"][s], self.tables[f"pi_{i}"][s], self.tables[f"pibar_{i}"][s]
        winning = pi @ q > pibar @ q  # the current policy beats the average one against Q
        delta = self.cfg.delta_win if winning else self.cfg.delta_lose
        return decayed(delta, self.steps, self.cfg.delta_decay_steps)
