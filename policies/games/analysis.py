"""Exact analysis of stationary policies on a finite Markov game: values, best responses,
exploitability.

A learner of a Markov game is judged by what its strategies are worth against the
strongest opponent, not by its returns against the co-learner it happened to train with:
Littman 1994 trained a "challenger" against each frozen policy; with the game's exact
model the challenger is a best response, computed by policy iteration on the MDP that the
frozen policy induces for the other player. Everything here works from the model
(`FiniteGameModel`, which the games of `policies.games.markov_games` return from
`env.model()`) and from strategy tables, one (S, A_i) row-stochastic table per player, the
`strategies()` of a learner or a `GamePolicy`'s `tables`. Values are discounted sums from
the model's initial-state distribution unless a function says per state.

  policy_values(model, policies)            (N, S): each player's value under the joint policy
  best_response(model, policies, player)    (S,) value and (S, A) deterministic policy
  exploitability(model, policies)           (N,): what a best response gains over each player's own
  is_nash(model, policies, tol)             every exploitability <= tol
  worst_case_value(model, policy, player)   what a policy guarantees against an opponent
                                            minimising its value (zero-sum: the best response)
  analysis_report(model, policies)          all of these as named figures (what an eval reports)
  matrix_game_model(payoffs)                a one-shot matrix game as a one-state model

Two players (the games of this family); other counts are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

IMPROVEMENT_TOL = 1e-10  # policy iteration switches an action only for a gain above this


@dataclass
class FiniteGameModel:
    """The exact model of a finite two-player Markov game.

    transitions:  sparse (S * A_1 * A_2, S); row (s, a_1, a_2) in C order (row index
                  (s * A_1 + a_1) * A_2 + a_2) is the distribution of the next observation.
                  Rows sum to 1.
    terminations: same shape, elementwise <= transitions: the part of that mass with
                  which the episode ends (terminated: nothing is bootstrapped after it).
    rewards:      (N, S, A_1, A_2) each player's expected reward of the joint step.
    initial:      (S,) the distribution `reset` draws the first state from.
    gamma:        the discount of the game's paper (a default; every function takes gamma).
    """

    transitions: sp.csr_matrix
    terminations: sp.csr_matrix
    rewards: np.ndarray
    initial: np.ndarray
    gamma: float
    agents: list[str] = field(default_factory=lambda: ["player_0", "player_1"])

    @property
    def num_states(self) -> int:
        return int(self.rewards.shape[1])

    @property
    def action_sizes(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.rewards.shape[2:])

    @property
    def num_players(self) -> int:
        return int(self.rewards.shape[0])

    def continuation(self) -> sp.csr_matrix:
        """The transition mass that goes on (is bootstrapped): transitions - terminations."""
        return (self.transitions - self.terminations).tocsr()

    def is_zero_sum(self, tol: float = 1e-9) -> bool:
        return bool(np.all(np.abs(self.rewards.sum(axis=0)) <= tol))


def _checked(model: FiniteGameModel, policies: Any, gamma: float | None) -> tuple[list[np.ndarray], float]:
    if model.num_players != 2:
        raise ValueError(f"the exact analysis handles two-player games and this model has "
                         f"{model.num_players} players; analyse a two-player game.")
    gamma = model.gamma if gamma is None else float(gamma)
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1) for the discounted values (got {gamma}).")
    if len(policies) != 2:
        raise ValueError(f"policies must hold one (S, A_i) strategy table per player (2); got "
                         f"{len(policies)}.")
    return [_checked_policy(model, p, i) for i, p in enumerate(policies)], gamma


def _checked_policy(model: FiniteGameModel, policy: Any, player: int) -> np.ndarray:
    table = np.asarray(policy, np.float64)
    shape = (model.num_states, model.action_sizes[player])
    if table.shape != shape:
        raise ValueError(f"the strategy table of player {player} has shape {table.shape}; this game "
                         f"needs {shape} (states, actions).")
    if np.any(table < -1e-9) or np.any(np.abs(table.sum(axis=1) - 1.0) > 1e-6):
        raise ValueError(f"the strategy table of player {player} is not a probability distribution "
                         "over actions in every state; pass rows that are >= 0 and sum to 1.")
    return table


def _checked_player(player: int) -> int:
    if player not in (0, 1):
        raise ValueError(f"player must be 0 or 1 (got {player!r}).")
    return int(player)


def _row_weights(weights: np.ndarray, rows: int) -> sp.csr_matrix:
    """A (rows, rows * k) sparse matrix averaging k consecutive model rows with `weights` (rows, k)."""
    k = weights.shape[1]
    return sp.csr_matrix((weights.ravel(), (np.repeat(np.arange(rows), k), np.arange(rows * k))),
                         shape=(rows, rows * k))


def _evaluate(reward: np.ndarray, continuation: sp.csr_matrix, gamma: float) -> np.ndarray:
    """Solve V = reward + gamma * continuation V (a Markov chain's discounted values)."""
    s = reward.shape[0]
    system = (sp.identity(s, format="csc") - gamma * continuation).tocsc()
    return np.atleast_1d(spsolve(system, reward))


def policy_values(model: FiniteGameModel, policies: Any, gamma: float | None = None) -> np.ndarray:
    """Each player's discounted value in every state under the joint policy: (N, S).

    The joint policy turns the game into a Markov chain; its values solve one sparse
    linear system per player (exact up to round-off)."""
    (pi_0, pi_1), gamma = _checked(model, policies, gamma)
    s, (a0, a1) = model.num_states, model.action_sizes
    joint = (pi_0[:, :, None] * pi_1[:, None, :]).reshape(s, a0 * a1)
    chain = _row_weights(joint, s) @ model.continuation()
    reward = np.einsum("sk,isk->is", joint, model.rewards.reshape(2, s, a0 * a1))
    return np.stack([_evaluate(reward[i], chain, gamma) for i in range(2)])


def _induced_mdp(model: FiniteGameModel, other_policy: np.ndarray, player: int,
                 reward: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """The MDP `player` faces when the other plays `other_policy`: continuation (S*A, S) and
    reward (S, A), from the joint reward table `reward` (S, A_0, A_1)."""
    s, (a0, a1) = model.num_states, model.action_sizes
    if player == 0:
        # rows (s, a0) average model rows (s, a0, a1) over a1 ~ pi_1(s)
        weights = np.repeat(other_policy[:, None, :], a0, axis=1).reshape(s * a0, a1)
        continuation = _row_weights(weights, s * a0) @ model.continuation()
        r = np.einsum("sab,sb->sa", reward, other_policy)
    else:
        # model rows are ordered (s, a0, a1): reorder to (s, a1, a0) before averaging over a0
        order = np.arange(s * a0 * a1).reshape(s, a0, a1).transpose(0, 2, 1).ravel()
        weights = np.repeat(other_policy[:, None, :], a1, axis=1).reshape(s * a1, a0)
        continuation = _row_weights(weights, s * a1) @ model.continuation()[order]
        r = np.einsum("sab,sa->sb", reward, other_policy)
    return continuation.tocsr(), r


def _policy_iteration(continuation: sp.csr_matrix, reward: np.ndarray,
                      gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal values (S,) and a deterministic optimal policy (S,) of an MDP.

    Policy iteration ends after finitely many exact evaluations; an action changes only for
    a gain above IMPROVEMENT_TOL, so round-off cannot make it cycle between equal actions.
    """
    s, a = reward.shape
    states = np.arange(s)
    choice = reward.argmax(axis=1)
    for _ in range(10_000):
        rows = states * a + choice
        values = _evaluate(reward[states, choice], continuation[rows], gamma)
        q = reward + gamma * (continuation @ values).reshape(s, a)
        best = q.argmax(axis=1)
        better = q[states, best] > q[states, choice] + IMPROVEMENT_TOL
        if not better.any():
            return values, choice
        choice = np.where(better, best, choice)
    raise RuntimeError("policy iteration did not converge in 10000 steps; the model's rows may "
                       "not be probability distributions.")


def best_response(model: FiniteGameModel, policies: Any, player: int,
                  gamma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`player`'s best response to the other's policy in `policies` (its own entry is ignored).

    Returns its optimal value in every state (S,) and a deterministic best-response
    strategy table (S, A_player), one-hot rows."""
    player = _checked_player(player)
    (pi_0, pi_1), gamma = _checked(model, policies, gamma)
    other = pi_1 if player == 0 else pi_0
    continuation, reward = _induced_mdp(model, other, player, model.rewards[player])
    values, choice = _policy_iteration(continuation, reward, gamma)
    table = np.zeros((model.num_states, model.action_sizes[player]))
    table[np.arange(model.num_states), choice] = 1.0
    return values, table


def exploitability(model: FiniteGameModel, policies: Any, gamma: float | None = None) -> np.ndarray:
    """For each player, what a best response gains over its own policy from the initial
    states: initial . (V_best_response - V_policy) >= 0. All zero iff a Nash equilibrium
    (of the game from its initial distribution, not necessarily in every state)."""
    values = policy_values(model, policies, gamma)
    gains = []
    for i in range(2):
        best, _ = best_response(model, policies, i, gamma)
        gains.append(float(model.initial @ (best - values[i])))
    return np.maximum(np.asarray(gains), 0.0)  # a best response cannot lose: clip round-off


def is_nash(model: FiniteGameModel, policies: Any, gamma: float | None = None,
            tol: float = 1e-6) -> bool:
    """Whether no player gains more than `tol` by deviating from the joint policy."""
    return bool(np.all(exploitability(model, policies, gamma) <= tol))


def worst_case_value(model: FiniteGameModel, policy: Any, player: int,
                     gamma: float | None = None) -> float:
    """The value `policy` guarantees `player` from the initial states against any opponent:
    min over the opponent's policies of the player's value, the opponent solving the MDP
    the policy induces with the player's reward negated. In a zero-sum game that opponent
    is a best response (Littman's challenger, made exact); in a general-sum game it is the
    adversary, not a self-interested player."""
    player = _checked_player(player)
    uniform = [np.full((model.num_states, n), 1.0 / n) for n in model.action_sizes]
    _, gamma = _checked(model, uniform, gamma)  # the model's and gamma's checks
    own = _checked_policy(model, policy, player)
    continuation, reward = _induced_mdp(model, own, 1 - player, -model.rewards[player])
    values, _ = _policy_iteration(continuation, reward, gamma)
    return float(-(model.initial @ values))


def matrix_game_model(payoffs: Any, gamma: float = 0.0) -> FiniteGameModel:
    """A one-shot two-player matrix game as a one-state model whose every step terminates
    (`policies.matrix_game`'s games): its values are the stage game's expected payoffs.

    payoffs: (2, A_1, A_2), each player's table (rows are player 0's actions)."""
    table = np.asarray(payoffs, np.float64)
    if table.ndim != 3 or table.shape[0] != 2:
        raise ValueError(f"payoffs must hold one (A_1, A_2) table per player, shape (2, A_1, A_2); "
                         f"got shape {table.shape}.")
    rows = table.shape[1] * table.shape[2]
    ends = sp.csr_matrix(np.ones((rows, 1)))
    return FiniteGameModel(transitions=ends.copy(), terminations=ends, rewards=table[:, None],
                           initial=np.ones(1), gamma=gamma)


def analysis_report(model: FiniteGameModel, policies: Any, gamma: float | None = None) -> dict[str, float]:
    """The figures an evaluation reports of a joint policy, named by what they are: each
    player's value from the start (`value/<agent>`), what a best response gains over it
    (`exploitability/<agent>`), their sum (`nash_conv`, 0 at a Nash equilibrium) and, in a
    zero-sum game, what each policy guarantees (`worst_case/<agent>`)."""
    values = model.initial @ policy_values(model, policies, gamma).T
    gains = exploitability(model, policies, gamma)
    out = {f"value/{a}": float(v) for a, v in zip(model.agents, values, strict=True)}
    out.update({f"exploitability/{a}": float(g) for a, g in zip(model.agents, gains, strict=True)})
    out["nash_conv"] = float(gains.sum())
    if model.is_zero_sum():
        for i, a in enumerate(model.agents):
            out[f"worst_case/{a}"] = worst_case_value(model, policies[i], i, gamma)
    return out
