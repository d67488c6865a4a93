"""The trained object of the episodic family: one shared recurrent agent network.

Acting is decentralised: each agent feeds its own normalised observation, its previous
action and its id to the shared network and takes the arg-max of the outputs (greedy
Q-values for IQL/VDN/QMIX/QTRAN, the most likely action of COMA's actor). The recurrent
state and the previous action are kept per agent between calls; `reset()` starts an
episode. Saved with `format: recurrent_agent`, which `policies.load` dispatches on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.normalization import ObservationNormalizer
from policies.policy import atomic_torch_save, checked_observation
from policies.value.common import RecurrentAgent, agent_inputs

FORMAT = "recurrent_agent"
FORMAT_VERSION = 1


class RecurrentAgentPolicy:
    def __init__(self, agents: list[str], observation_spaces: list, action_spaces: list,
                 agent: RecurrentAgent, obs_normalizer: ObservationNormalizer, network: dict[str, Any],
                 metadata: dict[str, Any] | None = None):
        self.agents = list(agents)
        self.observation_spaces, self.action_spaces = observation_spaces, action_spaces
        self.agent = agent
        self.obs_normalizer = obs_normalizer
        self.network = dict(network)  # input flags, sizes, output kind ("q" or "logits")
        self.metadata = dict(metadata or {})
        self.obs_sizes = [int(np.prod(s.shape)) for s in observation_spaces]
        self.obs_size = max(self.obs_sizes)
        self.num_actions = int(network["num_actions"])
        self.available = torch.zeros(len(self.agents), self.num_actions, dtype=torch.bool)
        for i, s in enumerate(action_spaces):
            self.available[i, : int(s.n)] = True
        self._hidden: torch.Tensor | None = None  # (E, N, H) for act_batch, (1, N, H) for act
        self._last: np.ndarray | None = None

    @property
    def flies_any_count(self) -> bool:
        """The one agent network, told no agent id: it flies a swarm of any size."""
        return not self.network["agent_id"]

    def reset(self) -> None:
        """Forget recurrent memory and previous actions (start of an episode)."""
        self._hidden, self._last = None, None

    def _step(self, obs: np.ndarray, present: np.ndarray, deterministic: bool) -> np.ndarray:
        """obs (E, N, D_max) raw -> actions (E, N) int; agents not present keep their memory."""
        e, n = obs.shape[:2]
        if self._hidden is None or tuple(self._hidden.shape[:2]) != (e, n):
            self._hidden = torch.zeros(e, n, self.agent.hidden_size)
            self._last = -np.ones((e, n), np.int64)
        x = torch.from_numpy(self.obs_normalizer(obs).astype(np.float32))
        last = torch.from_numpy(self._last) if self.network["last_action"] else None
        out, hidden = self.agent(agent_inputs(x, last, self.num_actions, self.network["agent_id"]),
                                 self._hidden)
        # another swarm size (a policy without agent ids): every drone has the first's actions
        available = self.available if n == len(self.agents) else self.available[:1]
        out = out.masked_fill(~available, -1e9)
        if deterministic:
            actions = out.argmax(-1)
        elif self.network["output"] == "logits":
            actions = torch.distributions.Categorical(logits=out).sample()
        else:  # Q-values: the final exploration rate of training
            greedy = out.argmax(-1)
            counts = self.available.sum(-1).expand_as(greedy)
            random = (torch.rand(greedy.shape) * counts).long()
            actions = torch.where(torch.rand(greedy.shape) < self.network["epsilon"], random, greedy)
        keep = torch.from_numpy(present)
        self._hidden = torch.where(keep[..., None], hidden, self._hidden)
        actions = actions.numpy()
        self._last = np.where(present, actions, self._last)
        return actions

    @torch.no_grad()
    def act(self, observations: dict[str, np.ndarray], deterministic: bool = True) -> dict[str, Any]:
        """Actions (ints) for the agents present in `observations` (dict keyed by agent id)."""
        obs = np.zeros((1, len(self.agents), self.obs_size), np.float32)
        present = np.zeros((1, len(self.agents)), bool)
        for name, o in observations.items():
            i, flat = checked_observation(self.agents, self.obs_sizes, name, o)
            obs[0, i, : flat.shape[0]] = flat
            present[0, i] = True
        actions = self._step(obs, present, deterministic)
        return {name: int(actions[0, self.agents.index(name)]) for name in observations}

    @torch.no_grad()
    def act_batch(self, obs: np.ndarray, starts: np.ndarray | None = None,
                  deterministic: bool = True) -> np.ndarray:
        """Batched acting for evaluation: obs (E, N, D_max) -> actions (E, N, 1) float."""
        if starts is not None and self._hidden is not None:
            self._hidden[torch.from_numpy(np.asarray(starts, bool))] = 0.0
            self._last[np.asarray(starts, bool)] = -1
        present = np.ones(obs.shape[:2], bool)
        return self._step(obs, present, deterministic)[..., None].astype(np.float32)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the policy to `path` atomically (the one checkpoint writer)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({
            "format": FORMAT, "format_version": FORMAT_VERSION, "agents": self.agents,
            "observation_spaces": self.observation_spaces, "action_spaces": self.action_spaces,
            "network": self.network, "agent": self.agent.state_dict(),
            "obs_normalizer": self.obs_normalizer.state_dict(),
            "obs_normalizer_enabled": self.obs_normalizer.enabled, "metadata": self.metadata,
        }, path)
        return path

    @classmethod
    def from_payload(cls, data: dict[str, Any], path: Path) -> RecurrentAgentPolicy:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path} has {FORMAT} format {data.get('format_version')!r}; this "
                             f"version reads {FORMAT_VERSION}. Retrain or use the matching release.")
        net = data["network"]
        agent = RecurrentAgent(net["input_size"], net["hidden_sizes"], net["gru_size"],
                               net["num_actions"])
        agent.load_state_dict(data["agent"])
        stats = data["obs_normalizer"]
        norm = ObservationNormalizer(np.shape(stats["mean"]), enabled=data["obs_normalizer_enabled"])
        norm.load_state_dict(stats)
        return cls(data["agents"], data["observation_spaces"], data["action_spaces"], agent, norm,
                   net, data["metadata"])
