"""HATD3: heterogeneous-agent TD3, HADDPG's sequential actor updates with TD3's three fixes.

Zhong, Kuba et al., "Heterogeneous-Agent Reinforcement Learning" (JMLR 2024), after
Fujimoto et al., "Addressing Function Approximation Error in Actor-Critic Methods" (2018):
- twin critics Q_1, Q_2 on the team reward, both regressed towards the smaller target
      y = r + gamma (1 - terminated) min_k Q'_k(x', a'),
- target policy smoothing: a'_i = clip(mu'_i(o'_i) + clip(eps, -noise_clip, noise_clip), -1, 1),
  eps ~ N(0, target_noise^2), on Box actions in [-1, 1] (Discrete actions are Gumbel samples
  already),
- delayed policy updates: the actors take their sequential round (against Q_1) and every
  target network its Polyak step once every `policy_delay` critic steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policies.offpolicy.common import OffPolicyAlgorithm, OffPolicyConfig


@dataclass
class HATD3Config(OffPolicyConfig):
    policy_delay: int = 2
    target_noise: float = 0.2
    noise_clip: float = 0.5

    def validate(self) -> None:
        super().validate()
        if self.policy_delay < 1 or self.target_noise < 0 or self.noise_clip < 0:
            raise ValueError(f"need policy_delay >= 1, target_noise >= 0 and noise_clip >= 0 (got "
                             f"{self.policy_delay}, {self.target_noise}, {self.noise_clip}).")


class HATD3(OffPolicyAlgorithm):
    config_class = HATD3Config
    num_critics = 2
    cfg: HATD3Config

    def smoothing_noise(self, shape: tuple[int, ...]) -> torch.Tensor:
        eps = torch.randn(shape, device=self.device) * self.cfg.target_noise
        return eps.clamp(-self.cfg.noise_clip, self.cfg.noise_clip)

    @torch.no_grad()
    def critic_target(self, batch: dict[str, torch.Tensor],
                      noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """y with smoothed target actions; `noise[i]` (B, W_i) replaces the drawn noise."""
        next_actions = []
        for i in range(self.spec.num_agents):
            a = self.policy_action(i, batch["next_obs"][:, i], target=True)
            if not self.discrete[i]:
                eps = self.smoothing_noise(a.shape) if noise is None else noise[i].clamp(
                    -self.cfg.noise_clip, self.cfg.noise_clip)
                a = (a + eps).clamp(-1.0, 1.0)
            next_actions.append(a)
        joint = self.joint(next_actions)
        q_next = torch.min(*[self.q_value(c, batch["next_state"], joint)
                             for c in self.target_critics])
        team_reward = batch["rewards"].mean(-1)
        return team_reward + self.discount(batch) * (1.0 - batch["terminated"]) * q_next

    def update(self, sample) -> dict[str, float]:
        batch = sample(self.cfg.batch_size)
        target = self.critic_target(batch)
        stats = {"losses/critic_loss": self.critic_step(batch, [target, target])}
        self.gradient_steps += 1
        if self.gradient_steps % self.cfg.policy_delay == 0:
            stats["losses/actor_loss"] = self.sequential_actor_update(batch, self.critics[0])
            self.update_targets()
        return stats
