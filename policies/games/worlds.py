"""Named games the family trains on by name (`policies.train("minimax_q", "soccer", ...)`,
`marl-ros train --algo minimax_q --scenario soccer`), their parameters from the config's
`env` section:

  matching_pennies, rock_paper_scissors, prisoners_dilemma, battle_of_the_sexes,
  coordination        repeated matrix games (`policies.matrix_game`, one state)
  soccer              Littman's grid soccer (`policies.games.markov_games`)
  grid_game_1, grid_game_2   Hu & Wellman's general-sum grid games
  coverage_grid       the coverage field on a coarse grid for Team-Q
                      (`policies.games.coverage_grid`)

A game with an exact model (`env.model()`) is analysed by `policies.games.analysis`
(best responses, exploitability), which `marl-ros eval` reports.
"""

from __future__ import annotations

import importlib
from typing import Any

MATRIX_GAME_NAMES = ("matching_pennies", "rock_paper_scissors", "prisoners_dilemma",
                     "battle_of_the_sexes", "coordination")
GAMES = {
    **{name: "policies.matrix_game:MatrixGame" for name in MATRIX_GAME_NAMES},
    "soccer": "policies.games.markov_games:GridSoccer",
    "grid_game_1": "policies.games.markov_games:GridGame1",
    "grid_game_2": "policies.games.markov_games:GridGame2",
    "coverage_grid": "policies.games.coverage_grid:CoverageGrid",
}


def make_game(name: str, **params: Any) -> Any:
    """The named game as a PettingZoo ParallelEnv, or one clear error."""
    if name not in GAMES:
        raise ValueError(f"unknown game {name!r}; choose one of: {', '.join(GAMES)}.")
    module, cls = GAMES[name].split(":")
    factory = getattr(importlib.import_module(module), cls)
    if name in MATRIX_GAME_NAMES:
        params = {"game": name, **params}
    try:
        return factory(**params)
    except TypeError as exc:
        raise ValueError(f"bad env parameters for {name}: {exc}; see {module}.{cls}.") from None
