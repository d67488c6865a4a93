"""Stage-game solvers: what a tabular learner of a Markov game computes at one state.

Each learner of the family keeps values over (state, joint action); at a state these form
a matrix (or tensor) game, and the learner's value of the state and its strategy there are
a solution concept of that game:
  maxmin          zero-sum: the row player's max-min mixed strategy (Minimax-Q, Foe-Q)
  nash_equilibria general-sum bimatrix: every equilibrium nashpy finds (Nash-Q)
  select_nash     one of them, by a fixed rule both players apply alike (Nash-Q)
  friend_or_foe   max over the friends' joint action of the min over the foes' (FFQ)

The zero-sum value is a linear programme (scipy's HiGHS); equilibria of bimatrix games come
from nashpy's support enumeration, with Lemke-Howson as the fallback where support
enumeration finds none (degenerate games).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import nashpy
import numpy as np
from scipy.optimize import linprog

ROUND = 9  # decimals: equilibria equal after rounding to 1e-9 are one equilibrium


def _clean_distribution(x: np.ndarray) -> np.ndarray:
    """An LP's or a linear solve's probabilities: tiny negatives from round-off clipped to 0,
    the rest rescaled to sum to 1 (so a strategy can be sampled as it is)."""
    x = np.clip(np.asarray(x, np.float64), 0.0, None)
    total = x.sum()
    if total <= 0.0:
        return np.full(x.shape, 1.0 / x.size)
    return x / total


def maxmin(payoff: np.ndarray) -> tuple[np.ndarray, float]:
    """The row player's max-min mixed strategy of a zero-sum matrix game and its value.

    payoff: (A, O), the row player's payoff when it plays a and the opponent plays o.
    Solves  max_{pi, v} v  s.t.  sum_a pi_a payoff[a, o] >= v  for every o,  pi in the simplex
    (Littman 1994's V(s) = max_pi min_o sum_a pi_a Q(s, a, o)); the minimum over the
    opponent's *pure* actions suffices because the inner problem is linear in its mixture.
    A game with a saddle point is answered by its pure max-min row without the LP.
    Returns (strategy (A,), value).
    """
    m = np.asarray(payoff, np.float64)
    if m.ndim != 2 or min(m.shape) < 1:
        raise ValueError(f"maxmin needs a 2-D payoff (row actions, opponent actions); got shape "
                         f"{m.shape}.")
    a, o = m.shape
    # A saddle point (the best row minimum equals the lowest column maximum) makes the pure
    # max-min row optimal: no LP needed (the first such row, a deterministic tie rule).
    # Learners meet it often (e.g. every state of a table not yet updated), and an LP costs ms.
    row_minima = m.min(axis=1)
    if row_minima.max() >= m.max(axis=0).min():
        strategy = np.zeros(a)
        strategy[int(np.argmax(row_minima))] = 1.0
        return strategy, float(row_minima.max())
    # Variables x = (pi_1..pi_A, v); linprog minimises, so the objective is -v.
    objective = np.zeros(a + 1)
    objective[-1] = -1.0
    # v - sum_a pi_a m[a, o] <= 0 for every opponent action o.
    a_ub = np.hstack([-m.T, np.ones((o, 1))])
    a_eq = np.hstack([np.ones((1, a)), np.zeros((1, 1))])
    bounds = [(0.0, None)] * a + [(None, None)]
    result = linprog(objective, A_ub=a_ub, b_ub=np.zeros(o), A_eq=a_eq, b_eq=[1.0],
                     bounds=bounds, method="highs")
    if not result.success:  # a bounded feasible LP: only numerical trouble gets here
        raise RuntimeError(f"the max-min linear programme failed ({result.message}); check the "
                           "payoff for NaN or infinite entries.")
    strategy = _clean_distribution(result.x[:a])
    # The value of the cleaned strategy (not the LP's v), so value and strategy agree exactly.
    return strategy, float((strategy @ m).min())


def nash_equilibria(a: np.ndarray, b: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every Nash equilibrium nashpy finds of the bimatrix game (A, B), as a list of (p, q).

    a, b: (m, n) payoffs of the row and the column player. Support enumeration over
    equal-size supports finds all equilibria of a non-degenerate game; a degenerate game
    (e.g. one with ties, like an all-zero table of a learner that has seen nothing yet) may
    have infinitely many, of which it reports those with equal-size supports; where there
    are none, those of every support pair, and where that finds none, Lemke-Howson from every
    starting label (m + n runs) finds at least one. Duplicates (equal to 1e-9) are dropped;
    the order is the order found.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or a.shape != b.shape or min(a.shape) < 1:
        raise ValueError(f"a bimatrix game needs two payoff tables of one 2-D shape; got {a.shape} "
                         f"and {b.shape}.")
    game = nashpy.Game(a, b)
    found: list[tuple[np.ndarray, np.ndarray]] = []
    seen: set[tuple[float, ...]] = set()

    def keep(p: np.ndarray, q: np.ndarray) -> None:
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))) or p.sum() <= 0 or q.sum() <= 0:
            return  # Lemke-Howson on a degenerate game can return an empty or invalid profile
        p, q = _clean_distribution(p), _clean_distribution(q)
        key = tuple(np.round(np.concatenate([p, q]), ROUND))
        if key not in seen:
            seen.add(key)
            found.append((p, q))

    with warnings.catch_warnings():
        # nashpy warns of degenerate games (an even count); the fallback below handles them.
        warnings.simplefilter("ignore", RuntimeWarning)
        # Equal-size supports first (all a non-degenerate game has, a third of the pairs of a
        # 4 x 4 game); every support pair only where that finds none (a degenerate game).
        for p, q in game.support_enumeration(non_degenerate=True):
            keep(p, q)
        if not found:
            for p, q in game.support_enumeration():
                keep(p, q)
        if not found:
            for label in range(sum(a.shape)):
                p, q = game.lemke_howson(initial_dropped_label=label)
                keep(p, q)
    if not found:
        raise RuntimeError("nashpy found no Nash equilibrium of the stage game; check the payoff "
                           "tables for NaN or infinite entries.")
    return found


def select_nash(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """One Nash equilibrium of (A, B) by a fixed rule, with both players' values: (p, q, v1, v2).

    Nash-Q needs every learner to back up the *same* equilibrium of a stage game with
    several (Hu & Wellman 2003 discuss this coordination requirement). The rule, applied to
    the equilibria `nash_equilibria` finds, picks
      1. the highest sum v1 + v2 (the most efficient equilibrium),
      2. then the highest min(v1, v2) (the most equal one),
      3. then the highest v1 (the row player's preference),
      4. then the lexicographically smallest p, then q (rounded to 1e-9).
    It depends only on the two tables, so learners holding the same tables pick the same
    equilibrium. Rules 1-2 do not depend on which player is the row player; rules 3-4 do,
    so a learner must pass the tables in the game's agent order (agent 0's table as A,
    agent 1's as B), whichever agent it is — as `NashQ` does.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)

    def rank(eq: tuple[np.ndarray, np.ndarray]) -> tuple:
        p, q = eq
        v1, v2 = round(float(p @ a @ q), ROUND), round(float(p @ b @ q), ROUND)
        return (-(v1 + v2), -min(v1, v2), -v1, tuple(np.round(p, ROUND)), tuple(np.round(q, ROUND)))

    p, q = min(nash_equilibria(a, b), key=rank)
    return p, q, float(p @ a @ q), float(p @ b @ q)


def friend_or_foe(payoff: np.ndarray, friends_axes: Sequence[int],
                  foes_axes: Sequence[int]) -> tuple[np.ndarray, float]:
    """Littman 2001's Friend-or-Foe value of a stage game and the friends' joint strategy.

    payoff: one axis per agent (the learner's own axis among `friends_axes`), the learner's
    payoff of each joint action. The value is
        max over mixed joint actions pi of the friends  of  min over the foes' pure joint
        actions  of  sum pi(x) payoff[x, y],
    an LP over the flattened friends' joint actions (`maxmin` of the friends-by-foes
    matrix). With no foes it is the plain max over joint actions (Friend-Q): a pure joint
    action, the first maximum in C order over `friends_axes` (a deterministic tie rule, so
    learners holding the same table pick the same joint action). With no friend besides
    the learner it is the learner's `maxmin`.
    Returns (joint strategy shaped (sizes of friends_axes, in that order), value).
    """
    q = np.asarray(payoff, np.float64)
    friends, foes = [int(i) for i in friends_axes], [int(i) for i in foes_axes]
    if not friends or sorted(friends + foes) != list(range(q.ndim)):
        raise ValueError(f"friends_axes {friends} and foes_axes {foes} must split the payoff's "
                         f"{q.ndim} axes between them, the learner's own axis among the friends.")
    friend_shape = tuple(q.shape[i] for i in friends)
    matrix = np.transpose(q, friends + foes).reshape(int(np.prod(friend_shape)), -1)
    if not foes:
        flat = matrix[:, 0]
        best = int(np.argmax(flat))  # the first maximum in C order
        strategy = np.zeros(flat.shape)
        strategy[best] = 1.0
        return strategy.reshape(friend_shape), float(flat[best])
    strategy, value = maxmin(matrix)
    return strategy.reshape(friend_shape), value
