"""What the on-policy CTDE family shares: hyperparameters, actors, the critic and its update.

An algorithm file subclasses `OnPolicyConfig` (its hyperparameters) and
`OnPolicyAlgorithm` (its `update_actors`), and nothing else. The actor set is
either one network for every agent (`share_params`, optionally told which agent
it is by a one-hot id) or one network per agent (heterogeneous agents allowed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from policies.config import AlgorithmConfig
from policies.envs import EnvSpec
from policies.networks import Actor, Critic
from policies.normalization import ValueNormalizer


@dataclass
class OnPolicyConfig(AlgorithmConfig):
    """Hyperparameters every on-policy algorithm has."""

    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr_actor: float = 5e-4
    lr_critic: float = 5e-4
    anneal_lr: bool = False  # linear decay of both learning rates to 0 over the run
    critic_epochs: int = 5
    critic_minibatches: int = 1
    max_grad_norm: float = 10.0
    ent_coef: float = 0.01  # HARL's default for every on-policy algorithm
    normalize_advantages: bool = True
    value_normalization: bool = True
    # The critic's loss, HARL's defaults: Huber (delta in normalised return units) and the
    # prediction kept within value_clip of the rollout's value (PPO's value clipping).
    huber_loss: bool = True
    huber_delta: float = 10.0
    clip_value_loss: bool = True
    value_clip: float = 0.2
    # networks
    share_params: bool = False
    agent_id: bool = True  # append a one-hot agent id to a shared actor's input
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    critic_hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    activation: str = "tanh"
    recurrent: bool = False  # GRU actor with explicit hidden state
    gru_size: int = 64
    chunk_len: int = 1  # training sequence length (use > 1 with recurrent actors)
    init_log_std: float = -0.5

    def validate(self) -> None:
        if not 0.0 < self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gamma must be in (0, 1] and gae_lambda in [0, 1] "
                             f"(got {self.gamma}, {self.gae_lambda}).")
        if self.chunk_len < 1:
            raise ValueError(f"chunk_len must be >= 1 (got {self.chunk_len}).")
        if self.huber_delta <= 0 or self.value_clip <= 0:
            raise ValueError(f"huber_delta and value_clip must be > 0 (got {self.huber_delta}, "
                             f"{self.value_clip}); turn them off with huber_loss=false or "
                             "clip_value_loss=false.")


class OnPolicyAlgorithm:
    """Actors, centralised critic, optimisers; `update` = critic regression + `update_actors`."""

    config_class: type[OnPolicyConfig] = OnPolicyConfig
    sequential = False  # agents updated one after another: needs one actor per agent ...
    sequential_shared = False  # ... unless the algorithm handles a shared actor (HAPPO)
    device = torch.device("cpu")  # where the networks live (the trainer's `place` sets it)

    def __init__(self, cfg: OnPolicyConfig, spec: EnvSpec, rng: np.random.Generator):
        self.cfg = cfg
        self.spec = spec
        self.rng = rng  # minibatch shuffles and agent orders come from the trainer's stream
        n = spec.num_agents
        if cfg.share_params and self.sequential and not self.sequential_shared:
            raise ValueError(f"{type(self).__name__} updates agents one after another and needs "
                             "separate parameters; set share_params=false.")
        if cfg.share_params and not spec.homogeneous:
            raise ValueError("share_params=True needs every agent to have the same observation and "
                             "action space; set share_params=false for heterogeneous agents.")
        self.id_size = n if (cfg.share_params and cfg.agent_id) else 0
        count = 1 if cfg.share_params else n
        self.actors = nn.ModuleList([
            Actor(spec.obs_sizes[i] + self.id_size, spec.action_spaces[i], cfg.hidden_sizes,
                  cfg.activation, cfg.recurrent, cfg.gru_size, cfg.init_log_std)
            for i in range(count)])
        self.actor_optimizers = [torch.optim.Adam(a.parameters(), lr=cfg.lr_actor, eps=1e-5)
                                 for a in self.actors]
        self.critic = Critic(spec.state_size, cfg.critic_hidden_sizes, cfg.activation)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic, eps=1e-5)
        self.value_normalizer = ValueNormalizer(cfg.value_normalization)

    # -- acting --------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.actors[0].hidden_size

    def actor_of(self, agent: int) -> Actor:
        return self.actors[0 if self.cfg.share_params else agent]

    def actor_input(self, obs: torch.Tensor, agent: int) -> torch.Tensor:
        """Agent `agent`'s slice of padded observations (..., D), plus its one-hot id."""
        x = obs[..., : self.spec.obs_sizes[agent]]
        if self.id_size:
            onehot = torch.zeros(*x.shape[:-1], self.id_size, device=x.device)
            onehot[..., agent] = 1.0
            x = torch.cat([x, onehot], -1)
        return x

    def shared_input(self, obs: torch.Tensor) -> torch.Tensor:
        """Every agent's input to the shared actor, (..., N, D [+ N]): its observation plus
        its one-hot id, so that one forward pass serves all agents."""
        if not self.id_size:
            return obs
        onehot = torch.eye(self.id_size, device=obs.device).expand(*obs.shape[:-1], self.id_size)
        return torch.cat([obs, onehot], -1)

    def evaluate_shared(self, obs: torch.Tensor, starts: torch.Tensor, hidden: torch.Tensor,
                        actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`evaluate` of every agent in one pass of the shared actor: obs (L, B, N, D), starts
        (L, B), hidden (B, N, H), actions (L, B, N, A) -> log pi(a|o) and entropy, (L, B, N).
        The same numbers as N calls of `evaluate` (a row's result does not depend on the
        others); the agents become B * N sequences of the one network."""
        length, batch, n = obs.shape[:3]
        actor = self.actors[0]
        x = self.shared_input(obs).reshape(length, batch * n, -1)
        starts = starts.repeat_interleave(n, dim=1)
        dist, _ = actor.forward_sequence(x, starts, hidden.reshape(batch * n, hidden.shape[-1]))
        acts = actions.reshape(length, batch * n, -1)[..., : self.action_width(0)]
        shape = (length, batch, n)
        return actor.log_prob(dist, acts).reshape(shape), actor.entropy(dist).reshape(shape)

    def evaluate(self, agent: int, obs: torch.Tensor, starts: torch.Tensor, hidden: torch.Tensor,
                 actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any, torch.Tensor]:
        """log pi(a|o), entropy, the distribution and the last hidden, over (L, B) sequences."""
        actor = self.actor_of(agent)
        dist, h = actor.forward_sequence(self.actor_input(obs, agent), starts, hidden)
        acts = actions[..., : self.action_width(agent)]
        return actor.log_prob(dist, acts), actor.entropy(dist), dist, h

    def action_width(self, agent: int) -> int:
        from policies.networks import action_size

        return action_size(self.spec.action_spaces[agent])

    @torch.no_grad()
    def act(self, obs: np.ndarray, starts: np.ndarray, hidden: np.ndarray,
            deterministic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step for all envs and agents: actions (E, N, A), log-probs (E, N), hidden (E, N, H)."""
        e, n = obs.shape[:2]
        obs_t = torch.from_numpy(obs).to(self.device)
        starts_t = torch.from_numpy(starts.astype(np.float32))[None].to(self.device)
        if self.cfg.share_params:  # one pass for all agents, agent-major rows (E per agent)
            return self._act_shared(obs_t, starts_t, hidden, deterministic)
        actions = np.zeros((e, n, self.spec.action_size), np.float32)
        log_probs = np.zeros((e, n), np.float32)
        new_hidden = np.zeros_like(hidden)
        for i in range(n):
            actor = self.actor_of(i)
            dist, h = actor.forward_sequence(self.actor_input(obs_t[None, :, i], i), starts_t,
                                             torch.from_numpy(hidden[:, i]).to(self.device))
            a = actor.mode(dist) if deterministic else actor.sample(dist)
            actions[:, i, : a.shape[-1]] = a[0].cpu().numpy()
            log_probs[:, i] = actor.log_prob(dist, a)[0].cpu().numpy()
            new_hidden[:, i] = h.cpu().numpy()
        return actions, log_probs, new_hidden

    def _act_shared(self, obs_t: torch.Tensor, starts_t: torch.Tensor, hidden: np.ndarray,
                    deterministic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`act` with the shared actor: the N agents' rows stacked agent by agent, so the
        sampled noise is drawn in the order of N per-agent calls."""
        e, n = obs_t.shape[:2]
        actor = self.actors[0]
        x = self.shared_input(obs_t).transpose(0, 1).reshape(1, n * e, -1)
        width = hidden.shape[-1]
        h0 = torch.from_numpy(np.ascontiguousarray(hidden.swapaxes(0, 1))).reshape(n * e, width)
        h0 = h0.to(self.device)
        dist, h = actor.forward_sequence(x, starts_t.repeat(1, n), h0)
        a = actor.mode(dist) if deterministic else actor.sample(dist)
        actions = np.zeros((e, n, self.spec.action_size), np.float32)
        actions[..., : a.shape[-1]] = a[0].reshape(n, e, -1).transpose(0, 1).cpu().numpy()
        log_probs = actor.log_prob(dist, a)[0].reshape(n, e).T.cpu().numpy()
        new_hidden = h.reshape(n, e, width).transpose(0, 1).cpu().numpy().astype(hidden.dtype)
        return actions, np.ascontiguousarray(log_probs), np.ascontiguousarray(new_hidden)

    @torch.no_grad()
    def values(self, states: np.ndarray) -> np.ndarray:
        """V(s) in return units (denormalised) for states (..., S)."""
        v = self.value_normalizer.denormalize(self.critic(torch.from_numpy(states).to(self.device)))
        return v.cpu().numpy()

    # -- learning ------------------------------------------------------------------------------
    def minibatches(self, size: int, count: int) -> list[np.ndarray]:
        order = self.rng.permutation(size)
        return np.array_split(order, count)

    def advantages(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        adv = batch["advantages"]
        if self.cfg.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        return adv

    def value_loss(self, predicted: torch.Tensor, old: torch.Tensor,
                   targets: torch.Tensor) -> torch.Tensor:
        """The critic's loss on normalised values: Huber or squared error, optionally the
        larger of the loss of the prediction and of the prediction clipped around `old`."""
        cfg = self.cfg

        def error_loss(error: torch.Tensor) -> torch.Tensor:
            if cfg.huber_loss:
                return F.huber_loss(error, torch.zeros_like(error), reduction="none",
                                    delta=cfg.huber_delta)
            return 0.5 * error.pow(2)

        loss = error_loss(predicted - targets)
        if cfg.clip_value_loss:
            clipped = old + (predicted - old).clamp(-cfg.value_clip, cfg.value_clip)
            loss = torch.max(loss, error_loss(clipped - targets))
        return loss.mean()

    def update_critic(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        states = batch["states"].reshape(-1, batch["states"].shape[-1])
        targets = self.value_normalizer.normalize(batch["returns"].reshape(-1))
        # The rollout's predictions, in the critic's (normalised) units.
        old = self.value_normalizer.normalize(batch["values"].reshape(-1))
        losses = []
        for _ in range(self.cfg.critic_epochs):
            for idx in self.minibatches(len(states), self.cfg.critic_minibatches):
                loss = self.value_loss(self.critic(states[idx]), old[idx], targets[idx])
                self.critic_optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.critic.parameters(), self.cfg.max_grad_norm)
                self.critic_optimizer.step()
                losses.append(loss.item())
        return {"losses/value_loss": float(np.mean(losses))}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        stats = self.update_actors(batch)
        stats.update(self.update_critic(batch))
        return stats

    def update_actors(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def set_learning_rate(self, fraction: float) -> None:
        """Scale both learning rates by `fraction` (1 at the start, towards 0 at the end)."""
        for opt in self.actor_optimizers:
            for group in opt.param_groups:
                group["lr"] = self.cfg.lr_actor * fraction
        for group in self.critic_optimizer.param_groups:
            group["lr"] = self.cfg.lr_critic * fraction

    def clip_actor_grads(self, agent: int) -> float:
        return float(nn.utils.clip_grad_norm_(self.actor_of(agent).parameters(),
                                              self.cfg.max_grad_norm))

    # -- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"actors": self.actors.state_dict(), "critic": self.critic.state_dict(),
                "actor_optimizers": [o.state_dict() for o in self.actor_optimizers],
                "critic_optimizer": self.critic_optimizer.state_dict(),
                "value_normalizer": self.value_normalizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actors.load_state_dict(state["actors"])
        self.critic.load_state_dict(state["critic"])
        for opt, s in zip(self.actor_optimizers, state["actor_optimizers"], strict=True):
            opt.load_state_dict(s)
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.value_normalizer.load_state_dict(state["value_normalizer"])


def sequential_agent_order(rng: np.random.Generator, num_agents: int) -> list[int]:
    """HAPPO/HATRPO/HAA2C: a fresh random permutation of the agents for every update."""
    return [int(i) for i in rng.permutation(num_agents)]
