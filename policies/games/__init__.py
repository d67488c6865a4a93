"""The game-theoretic family: tabular learners of stochastic (Markov) games and the linear
equilibrium-based Team-Q. `GAME_ALGORITHMS` maps a name to its algorithm class.

  minimax_q    two-player zero-sum: Q(s, a, o), V(s) = max-min of the stage game (an LP)
  nash_q       general-sum: Q_i(s, a_1, a_2) for both players, Nash_i(s) of the stage game
  friend_q     Friend-or-Foe Q with every other agent a friend (max over joint actions)
  foe_q        Friend-or-Foe Q with every other agent a foe (max-min, an LP)
  wolf_phc     Q_i(s, a_i), policy hill-climbing, "win or learn fast" step sizes
  phc          the same without WoLF (one step size): the baseline that cycles
  independent_q  Q-learning on the own action only: the baseline of the papers
  team_q       linear Q over basis functions of (state, joint action), global reward

One file per algorithm over `common.py` (the finite-state view, schedules, the base class)
and `stage.py` (the stage-game solvers: scipy's linprog, nashpy); `trainer.py` holds the
family's hooks for the one training loop; `policy.py` the mixed-strategy policy.
The registry is lazy so importing `policies` does not import scipy's LP solvers or nashpy.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

_CLASSES = {
    "minimax_q": "policies.games.minimax_q:MinimaxQ",
    "nash_q": "policies.games.nash_q:NashQ",
    "friend_q": "policies.games.ffq:FriendQ",
    "foe_q": "policies.games.ffq:FoeQ",
    "wolf_phc": "policies.games.wolf_phc:WoLFPHC",
    "phc": "policies.games.wolf_phc:PHC",
    "independent_q": "policies.games.independent_q:IndependentQ",
    "team_q": "policies.games.team_q:TeamQ",
}


class _LazyRegistry(Mapping):
    def __getitem__(self, name: str) -> Any:
        module, cls = _CLASSES[name].split(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


GAME_ALGORITHMS: Mapping[str, Any] = _LazyRegistry()
GAME_ALGORITHM_NAMES = tuple(_CLASSES)

__all__ = ["GAME_ALGORITHMS", "GAME_ALGORITHM_NAMES"]
