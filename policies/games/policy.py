"""A trained game-theoretic policy: each agent's mixed strategy at each of its states.

In the games these learners solve a mixed strategy is the answer (matching pennies has no
pure equilibrium), so `probabilities` gives the distribution and `act` samples it, with
`deterministic=True` taking the most probable action (the first on ties). An observation
is what the agent's space holds: a `Discrete` index or a one-hot vector of its state.

`save` writes one file (`policies.load` reads it back, like every other family's policy);
`export_bundle` puts the tables inside an ONNX graph (`policies.export`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from policies.games.common import sample_actions
from policies.policy import atomic_torch_save

GAME_POLICY_FORMAT = "game_table"
GAME_POLICY_VERSION = 1


class GamePolicy:
    """Mixed strategies as (S_i, A_i) tables, one per agent."""

    flies_any_count = False  # a table belongs to its agent and its game

    def __init__(self, agents: list[str], tables: list[np.ndarray], metadata: dict[str, Any] | None = None,
                 seed: int | None = None):
        if len(agents) != len(tables):
            raise ValueError(f"{len(agents)} agents but {len(tables)} strategy tables.")
        self.agents = list(agents)
        self.tables = [np.asarray(t, np.float64) for t in tables]
        self.metadata = dict(metadata or {})
        self.rng = np.random.default_rng(self.metadata.get("seed", 0) if seed is None else seed)

    @property
    def state_sizes(self) -> list[int]:
        return [t.shape[0] for t in self.tables]

    @property
    def obs_sizes(self) -> list[int]:
        """The one-hot observation width of each agent (its state count)."""
        return self.state_sizes

    @property
    def action_sizes(self) -> list[int]:
        return [t.shape[1] for t in self.tables]

    def reset(self) -> None:
        """Nothing to forget: the strategies are stationary."""

    def state_index(self, name: str, obs: Any) -> tuple[int, int]:
        """The agent's index and the state its observation names, or one clear error."""
        if name not in self.agents:
            raise KeyError(f"unknown agent {name!r}; this policy was trained for {', '.join(self.agents)}.")
        i = self.agents.index(name)
        size = self.state_sizes[i]
        flat = np.asarray(obs).ravel()
        if flat.size == size and np.count_nonzero(flat) == 1 and flat.max() == 1:
            s = int(flat.argmax())  # a one-hot Box
        elif flat.size == 1 and float(flat[0]).is_integer():
            s = int(flat[0])  # a Discrete observation
        else:
            raise ValueError(f"observation for {name} is neither a state index nor a one-hot vector of "
                             f"{size} states; was the policy trained on another game?")
        if not 0 <= s < size:
            raise ValueError(f"observation for {name} names state {s}; the policy knows states 0..{size - 1}.")
        return i, s

    def probabilities(self, observations: dict[str, Any]) -> dict[str, np.ndarray]:
        """Each agent's action probabilities at the state it observes."""
        out = {}
        for name, obs in observations.items():
            i, s = self.state_index(name, obs)
            out[name] = self.tables[i][s].copy()
        return out

    def act(self, observations: dict[str, Any], deterministic: bool = True) -> dict[str, int]:
        """Sampled actions (the policy's own seeded generator); deterministic: the most probable."""
        out = {}
        for name, probs in self.probabilities(observations).items():
            out[name] = int(probs.argmax()) if deterministic else int(sample_actions(self.rng, probs))
        return out

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"format": GAME_POLICY_FORMAT, "format_version": GAME_POLICY_VERSION,
                           "agents": self.agents, "tables": self.tables, "metadata": self.metadata},
                          path)
        return path

    @classmethod
    def from_payload(cls, data: dict[str, Any], path: Path) -> GamePolicy:
        if data.get("format_version") != GAME_POLICY_VERSION:
            raise ValueError(f"{path} has game-policy format {data.get('format_version')!r}; this "
                             f"version reads {GAME_POLICY_VERSION}. Retrain or use the matching release.")
        return cls(data["agents"], data["tables"], data["metadata"])
