"""MF-AC: mean-field actor-critic (Yang et al. 2018, section 3.3).

An actor pi(a | s) on the drone's observation and the mean-field critic Q(s, a, a_bar) of
`policies.meanfield.common` (the observation s with the neighbours' mean action a_bar as
its last field), one of each for the whole swarm, with Polyak-averaged targets.

- Discrete actions: a softmax actor, a critic with one output per action. The critic
  regresses Q(s, a, a_bar) towards r + gamma (1 - terminated) sum_a pi'(a | s') Q'(s', a,
  a_bar'); the actor ascends the critic's value of its own distribution,
  sum_a pi(a | s) Q(s, a, a_bar), plus `ent_coef` times its entropy (the gradient through
  the critic's value of every action, not a sampled score-function estimate). Exploration
  samples the actor; the bundle flies its arg-max.
- Box actions: a deterministic tanh actor mu(s) with Gaussian exploration noise (annealed as
  in the off-policy family); the critic Q(s, a, a_bar) takes the action as an input and
  regresses towards r + gamma (1 - terminated) Q'(s', mu'(s'), a_bar'); the actor ascends
  Q(s, mu(s), a_bar), the gradient through the critic's value (DDPG's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from policies.meanfield.common import MeanFieldAlgorithm, MeanFieldConfig, q_network
from policies.networks import Critic


@dataclass
class MFACConfig(MeanFieldConfig):
    ent_coef: float = 0.01  # Discrete actors: entropy bonus, in scaled reward units

    def validate(self) -> None:
        super().validate()
        if self.ent_coef < 0:
            raise ValueError(f"ent_coef must be >= 0 (got {self.ent_coef}).")


class MFAC(MeanFieldAlgorithm):
    config_class = MFACConfig
    cfg: MFACConfig

    def make_critics(self) -> nn.ModuleList:
        size, space, cfg = self.spec.obs_sizes[0], self.spec.action_spaces[0], self.cfg
        if self.discrete[0]:
            return nn.ModuleList([q_network(size, space, cfg.critic_hidden_sizes, cfg.activation)])
        return nn.ModuleList([Critic(size + self.action_width, cfg.critic_hidden_sizes,
                                     cfg.activation)])

    def critic_value(self, critic: nn.Module, obs: torch.Tensor,
                     actions: torch.Tensor) -> torch.Tensor:
        """Q(s, a, a_bar) at critic-view actions (one-hot, or the [-1, 1] Box action)."""
        if self.discrete[0]:
            return (critic.unit_action(obs) * actions).sum(-1)
        return critic(torch.cat([obs, actions], -1))

    @torch.no_grad()
    def critic_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        next_obs = batch["next_obs"]
        actor, critic = self.actor_of(0, target=True), self.target_critics[0]
        if self.discrete[0]:
            pi = torch.softmax(actor.unit_action(next_obs), -1)
            value = (pi * critic.unit_action(next_obs)).sum(-1)
        else:
            value = critic(torch.cat([next_obs, actor.unit_action(next_obs)], -1))
        return self.bootstrap(batch, value)

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.actor_of(0).unit_action(batch["obs"])
        critic = self.critics[0]
        if self.discrete[0]:
            log_pi = torch.log_softmax(out, -1)
            pi = log_pi.exp()
            with torch.no_grad():
                q = critic.unit_action(batch["q_obs"])
            entropy = -(pi * log_pi).sum(-1)
            return -((pi * q).sum(-1) + self.cfg.ent_coef * entropy).mean()
        return -critic(torch.cat([batch["q_obs"], out], -1)).mean()

    def update(self, sample) -> dict[str, float]:
        batch = sample(self.cfg.batch_size)
        target = self.critic_target(batch)
        critic_loss = self.td_loss(self.critic_value(self.critics[0], batch["q_obs"],
                                                     batch["actions"]), target)
        self.step(self.critic_optimizer, critic_loss, self.critics.parameters())
        actor_loss = self.actor_loss(batch)
        self.step(self.optimizer_of(0), actor_loss, self.actor_of(0).parameters())
        self.update_targets()
        self.gradient_steps += 1
        return {"losses/critic_loss": critic_loss.item(), "losses/actor_loss": actor_loss.item()}
