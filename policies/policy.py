"""A trained policy: decentralised actors + observation normaliser, nothing of the critic.

`act` takes a dict of observations keyed by agent id, as a PettingZoo env returns
them, and gives a dict of actions the env accepts. Recurrent actors keep their
hidden state between calls; call `reset()` at the start of an episode.
`save`/`load` write one file holding weights and everything needed to rebuild the
networks (spaces, network options, normaliser statistics, provenance).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from policies.envs import to_env_action
from policies.networks import Actor, action_size
from policies.normalization import ObservationNormalizer

FORMAT_VERSION = 1


def checked_observation(agents: list[str], obs_sizes: list[int], name: str,
                        obs: np.ndarray) -> tuple[int, np.ndarray]:
    """The agent's index and its flat float32 observation, or one clear error."""
    if name not in agents:
        raise KeyError(f"unknown agent {name!r}; this policy was trained for {', '.join(agents)}.")
    i = agents.index(name)
    flat = np.asarray(obs, np.float32).ravel()
    if flat.shape[0] != obs_sizes[i]:
        raise ValueError(f"observation for {name} has {flat.shape[0]} values; the policy expects "
                         f"{obs_sizes[i]} (was it trained on another configuration?).")
    return i, flat


class TrainedPolicy:
    def __init__(self, agents: list[str], observation_spaces: list, action_spaces: list,
                 actors: nn.ModuleList, obs_normalizer: ObservationNormalizer, share_params: bool,
                 id_size: int, network: dict[str, Any], metadata: dict[str, Any] | None = None):
        self.agents = list(agents)
        self.observation_spaces = observation_spaces
        self.action_spaces = action_spaces
        self.actors = actors
        self.obs_normalizer = obs_normalizer
        self.share_params = share_params
        self.id_size = id_size
        self.network = dict(network)
        self.metadata = dict(metadata or {})
        self.obs_sizes = [int(np.prod(s.shape)) for s in observation_spaces]
        self.obs_size = max(self.obs_sizes)
        self._hidden: dict[str, torch.Tensor] = {}
        self._batch_hidden: torch.Tensor | None = None

    @property
    def flies_any_count(self) -> bool:
        """One network told no agent id: it flies a swarm of any size."""
        return self.share_params and not self.id_size

    def actor_of(self, i: int) -> Actor:
        return self.actors[0 if self.share_params else i]

    def reset(self) -> None:
        """Forget recurrent memory (start of an episode)."""
        self._hidden.clear()
        self._batch_hidden = None

    @torch.no_grad()
    def act(self, observations: dict[str, np.ndarray], deterministic: bool = True) -> dict[str, Any]:
        """Actions for the agents present in `observations` (dict keyed by agent id)."""
        out: dict[str, Any] = {}
        for name, obs in observations.items():
            i, flat = checked_observation(self.agents, self.obs_sizes, name, obs)
            padded = np.zeros(self.obs_size, np.float32)
            padded[: flat.shape[0]] = flat
            shared_stats = self.obs_normalizer.mean.ndim == 1  # one normaliser for every agent
            x = self.obs_normalizer(padded) if shared_stats else self._normalize_agent(padded, i)
            x = torch.from_numpy(x[: self.obs_sizes[i]])
            if self.id_size:
                onehot = torch.zeros(self.id_size)
                onehot[i] = 1.0
                x = torch.cat([x, onehot])
            actor = self.actor_of(i)
            hidden = self._hidden.get(name, actor.initial_hidden(1))
            dist, hidden = actor.forward_sequence(x[None, None], torch.zeros(1, 1), hidden)
            self._hidden[name] = hidden
            action = actor.mode(dist) if deterministic else actor.sample(dist)
            out[name] = to_env_action(self.action_spaces[i], action[0, 0].numpy())
        return out

    @torch.no_grad()
    def act_batch(self, obs: np.ndarray, starts: np.ndarray | None = None,
                  deterministic: bool = True) -> np.ndarray:
        """Batched acting for evaluation: obs (E, N, D_max) -> actions (E, N, A_max) float.

        Recurrent memory is kept per (env, agent) and cleared where `starts` is true.
        """
        e, n = obs.shape[:2]
        x_all = torch.from_numpy(self.obs_normalizer(obs))
        starts_t = torch.zeros(1, e) if starts is None else torch.as_tensor(
            starts, dtype=torch.float32)[None]
        if self._batch_hidden is None or self._batch_hidden.shape[0] != e:
            self._batch_hidden = torch.zeros(e, n, self.actor_of(0).hidden_size)
        width = max(action_size(s) for s in self.action_spaces)
        out = np.zeros((e, n, width), np.float32)
        if self.flies_any_count:  # one call for every drone of every env
            actor = self.actor_of(0)
            x = x_all[..., : self.obs_sizes[0]].reshape(1, e * n, -1)
            dist, h = actor.forward_sequence(x, starts_t.repeat_interleave(n, dim=1),
                                             self._batch_hidden.reshape(e * n, -1))
            self._batch_hidden = h.reshape(e, n, -1)
            action = (actor.mode(dist) if deterministic else actor.sample(dist))[0]
            out[..., : action.shape[-1]] = action.reshape(e, n, -1).numpy()
            return out
        for i in range(n):
            x = x_all[:, i, : self.obs_sizes[i]]
            if self.id_size:
                onehot = torch.zeros(e, self.id_size)
                onehot[:, i] = 1.0
                x = torch.cat([x, onehot], -1)
            actor = self.actor_of(i)
            dist, h = actor.forward_sequence(x[None], starts_t, self._batch_hidden[:, i])
            self._batch_hidden[:, i] = h
            action = (actor.mode(dist) if deterministic else actor.sample(dist))[0]
            out[:, i, : action.shape[-1]] = action.numpy()
        return out

    def _normalize_agent(self, obs: np.ndarray, i: int) -> np.ndarray:
        norm = self.obs_normalizer
        if not norm.enabled:
            return obs
        out = (obs - norm.mean[i]) / np.sqrt(norm.var[i] + 1e-8)
        return np.clip(out, -norm.clip, norm.clip).astype(np.float32)

    def payload(self) -> dict[str, Any]:
        """Everything `from_payload` rebuilds the policy from (what `save` writes)."""
        return {
            "format_version": FORMAT_VERSION, "agents": self.agents,
            "observation_spaces": self.observation_spaces, "action_spaces": self.action_spaces,
            "share_params": self.share_params, "id_size": self.id_size, "network": self.network,
            "actors": self.actors.state_dict(), "obs_normalizer": self.obs_normalizer.state_dict(),
            "obs_normalizer_enabled": self.obs_normalizer.enabled, "metadata": self.metadata,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> TrainedPolicy:
        actors = build_actors(data["observation_spaces"], data["action_spaces"],
                              data["share_params"], data["id_size"], data["network"])
        actors.load_state_dict(data["actors"])
        stats = data["obs_normalizer"]
        norm = ObservationNormalizer(np.shape(stats["mean"]), enabled=data["obs_normalizer_enabled"])
        norm.load_state_dict(stats)
        return cls(data["agents"], data["observation_spaces"], data["action_spaces"], actors, norm,
                   data["share_params"], data["id_size"], data["network"], data["metadata"])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the policy to `path` atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(self.payload(), path)
        return path


def atomic_torch_save(obj: Any, path: Path) -> None:
    """The one checkpoint writer: a killed process leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def build_actors(observation_spaces: list, action_spaces: list, share_params: bool, id_size: int,
                 network: dict[str, Any]) -> nn.ModuleList:
    count = 1 if share_params else len(action_spaces)
    if network.get("actor") == "deterministic":  # the off-policy family (MADDPG, HATD3, ...)
        from policies.networks import DeterministicActor

        return nn.ModuleList([
            DeterministicActor(int(np.prod(observation_spaces[i].shape)) + id_size,
                               action_spaces[i], network["hidden_sizes"], network["activation"])
            for i in range(count)])
    return nn.ModuleList([
        Actor(int(np.prod(observation_spaces[i].shape)) + id_size, action_spaces[i],
              network["hidden_sizes"], network["activation"], network["recurrent"],
              network["gru_size"], network["init_log_std"])
        for i in range(count)])


def load(path: str | os.PathLike) -> TrainedPolicy:
    """A policy written by `TrainedPolicy.save` (or a run folder holding policy.pt).

    The file is a torch pickle: load only files you trust.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "policy.pt"
    if not path.exists():
        raise FileNotFoundError(f"no policy at {path}; pass a policy.pt file or a run folder "
                                "written by `marl-ros train`.")
    data = torch.load(path, map_location="cpu", weights_only=False)
    if data.get("format") == "recurrent_agent":  # the episodic family (QMIX, COMA, ...)
        from policies.value.policy import RecurrentAgentPolicy

        return RecurrentAgentPolicy.from_payload(data, path)
    if data.get("format") == "game_table":  # the game-theoretic family's mixed strategies
        from policies.games.policy import GamePolicy

        return GamePolicy.from_payload(data, path)
    if data.get("format") == "team_q_linear":  # Team-Q's weights over its env's basis functions
        from policies.games.team_q import LinearTeamPolicy

        return LinearTeamPolicy.from_payload(data, path)
    if data.get("format") == "team_policies":  # one policy per team (`policies.teams`)
        from policies.teams import TeamPolicies

        return TeamPolicies.from_payload(data)
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has policy format {data.get('format_version')!r}; this version "
                         f"reads format {FORMAT_VERSION}. Retrain or use the matching release.")
    return TrainedPolicy.from_payload(data)
