"""Friend-or-Foe Q (Littman 2001): Q-learning over joint actions, each other agent a friend
or a foe.

Agent i keeps Q_i(s, a_1, ..., a_N) over the joint action of all agents and its own
reward. It is told which agents are its friends (they help it) and which are foes (they
hurt it), and values a state by
    V_i(s) = max over the friends' mixed joint action  of  min over the foes' joint action
             of  sum pi(x) Q_i(s, x, y)                  (`policies.games.stage.friend_or_foe`)
    Q_i(s, a) <- (1 - alpha) Q_i(s, a) + alpha (r_i + gamma V_i(s'))
with no bootstrap from a terminal s'. It plays the marginal over its own action of the
friends' joint strategy. Two cases have names:
  FriendQ  every other agent a friend: V = max of Q over joint actions (a coordination
           equilibrium where one exists; all friends holding the same table take the same
           first maximum in C order, so they coordinate on it);
  FoeQ     every other agent a foe: V = max-min (Minimax-Q over the foes' joint action).
The config's `friends` overrides the class's default, one list per agent of the other
agents' indices it treats as friends (the rest are foes), e.g. [[1], [0], []] for two
allies against a third agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from policies.games.common import GameAlgorithm, GameConfig, GameSpec, Transition, learning_rate
from policies.games.stage import friend_or_foe


@dataclass
class FriendOrFoeQConfig(GameConfig):
    # friends[i]: the indices of the other agents agent i treats as friends; the rest are
    # its foes. Empty: the algorithm's default (friend_q: all friends, foe_q: all foes).
    friends: list = field(default_factory=list)

    def validate(self) -> None:
        super().validate()
        if not all(isinstance(f, list) and all(isinstance(j, int) and not isinstance(j, bool)
                                               for j in f) for f in self.friends):
            raise ValueError(f"algo.friends must be one list of agent indices per agent, e.g. "
                             f"[[1], [0]] (got {self.friends!r}).")


class FriendOrFoeQ(GameAlgorithm):
    config_class = FriendOrFoeQConfig
    everyone_a_friend = False  # the default when the config names no friends

    def __init__(self, cfg: FriendOrFoeQConfig, spec: GameSpec, rng: np.random.Generator):
        n = spec.num_agents
        friends = cfg.friends or [[j for j in range(n) if j != i and self.everyone_a_friend]
                                  for i in range(n)]
        if len(friends) != n or any(i in f or len(set(f)) != len(f) or not all(0 <= j < n for j in f)
                                    for i, f in enumerate(friends)):
            raise ValueError(f"algo.friends must hold, for each of the {n} agents, a list of the "
                             f"other agents' indices (0 to {n - 1}, not its own, no repeats); "
                             f"got {cfg.friends!r}.")
        super().__init__(cfg, spec, rng)
        # Axes of Q_i(s, .) over the joint action: the friends (own included) in agent order,
        # then the foes. Agent order, not own-first: friends holding the same table then break
        # ties between joint actions by the same C order, so they pick the same one.
        self.friends_axes = [sorted([i, *f]) for i, f in enumerate(friends)]
        self.foes_axes = [[j for j in range(n) if j not in axes] for axes in self.friends_axes]
        joint = spec.joint_action_shape
        for i in range(n):
            s, a = spec.state_sizes[i], spec.action_sizes[i]
            self.tables[f"q_{i}"] = np.zeros((s, *joint))  # Q_i(s, a_1, ..., a_N)
            self.tables[f"v_{i}"] = np.zeros(s)  # V_i(s)
            self.tables[f"pi_{i}"] = np.full((s, a), 1.0 / a)  # own marginal
            self.tables[f"visits_{i}"] = np.zeros((s, *joint))

    def strategies(self) -> list[np.ndarray]:
        return [self.tables[f"pi_{i}"] for i in range(self.spec.num_agents)]

    def learn(self, t: Transition) -> dict[str, float]:
        errors = []
        for e in range(t.states.shape[0]):  # env rows in order, each one env step
            joint = tuple(int(a) for a in t.actions[e])
            for i in range(self.spec.num_agents):
                q, v, visits = self.tables[f"q_{i}"], self.tables[f"v_{i}"], self.tables[f"visits_{i}"]
                s, s_next = t.states[e, i], t.next_states[e, i]
                # 1. the TD target: own reward plus the friend-or-foe value of the next state
                target = t.rewards[e, i] + (0.0 if t.terminated[e] else self.cfg.gamma * v[s_next])
                # 2. move Q_i(s, joint) toward it
                visits[(s, *joint)] += 1
                alpha = learning_rate(self.cfg, self.steps, visits[(s, *joint)])
                errors.append(target - q[(s, *joint)])
                q[(s, *joint)] += alpha * (target - q[(s, *joint)])
                # 3. re-solve the stage game at s; own strategy = marginal of the friends' joint one
                strategy, v[s] = friend_or_foe(q[s], self.friends_axes[i], self.foes_axes[i])
                own = np.moveaxis(strategy, self.friends_axes[i].index(i), 0)
                self.tables[f"pi_{i}"][s] = own.reshape(own.shape[0], -1).sum(axis=1)
            self.steps += 1
        return {"losses/td_error": float(np.mean(np.abs(errors)))}


class FriendQ(FriendOrFoeQ):
    """Friend-or-Foe Q with every other agent a friend (Littman's Friend-Q)."""

    everyone_a_friend = True


class FoeQ(FriendOrFoeQ):
    """Friend-or-Foe Q with every other agent a foe (Littman's Foe-Q)."""

    everyone_a_friend = False
