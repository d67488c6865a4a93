"""HADDPG: heterogeneous-agent DDPG, the agents' actors updated one after another.

Zhong, Kuba et al., "Heterogeneous-Agent Reinforcement Learning" (JMLR 2024). One
centralised critic Q(x, a_1..a_N) learns the team reward (the mean of the agents'
rewards):

    y = r + gamma (1 - terminated) Q'(x', mu'_1(o'_1), ..., mu'_N(o'_N)).

Then every update draws a random order of the agents; agent i_m ascends
Q(x, mu_new^{i_1..i_{m-1}}, mu^{i_m}(o^{i_m}), mu_old^{i_{m+1}..}) evaluated with its
predecessors' new actions (`OffPolicyAlgorithm.sequential_actor_update`), the off-policy
form of the multi-agent advantage decomposition. Separate parameters by default (the point
of HARL); `share_params` runs the same sequence on one shared actor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from policies.offpolicy.common import OffPolicyAlgorithm, OffPolicyConfig


@dataclass
class HADDPGConfig(OffPolicyConfig):
    pass


class HADDPG(OffPolicyAlgorithm):
    config_class = HADDPGConfig
    num_critics = 1

    @torch.no_grad()
    def critic_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        next_actions = [self.policy_action(i, batch["next_obs"][:, i], target=True)
                        for i in range(self.spec.num_agents)]
        q_next = self.q_value(self.target_critics[0], batch["next_state"], self.joint(next_actions))
        team_reward = batch["rewards"].mean(-1)
        return team_reward + self.discount(batch) * (1.0 - batch["terminated"]) * q_next

    def update(self, sample) -> dict[str, float]:
        batch = sample(self.cfg.batch_size)
        critic_loss = self.critic_step(batch, [self.critic_target(batch)])
        actor_loss = self.sequential_actor_update(batch, self.critics[0])
        self.update_targets()
        self.gradient_steps += 1
        return {"losses/critic_loss": critic_loss, "losses/actor_loss": actor_loss}
