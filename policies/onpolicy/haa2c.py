"""HAA2C: the heterogeneous-agent sequential scheme with an A2C-style actor step.

Zhong et al., "Heterogeneous-Agent Reinforcement Learning" (JMLR 2024). Agents are
updated in a random order; agent i_m takes plain policy-gradient steps on
E[M * ratio * A] (at ratio = 1 this is A2C's grad log pi * A, weighted by M, the
product of the ratios of the agents updated before it), without clipping. HARL's
defaults: 5 epochs over the rollout per agent, entropy bonus 0.01 (`OnPolicyConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from policies.onpolicy.common import OnPolicyAlgorithm, OnPolicyConfig, sequential_agent_order


@dataclass
class HAA2CConfig(OnPolicyConfig):
    epochs: int = 5
    minibatches: int = 1


class HAA2C(OnPolicyAlgorithm):
    config_class = HAA2CConfig
    sequential = True
    cfg: HAA2CConfig

    def update_actors(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        adv = self.advantages(batch)
        m_factor = torch.ones_like(adv)
        stats: dict[str, list[float]] = {"policy_loss": [], "entropy": [], "m_factor": []}
        for i in sequential_agent_order(self.rng, self.spec.num_agents):
            old_log_prob = batch["log_probs"][..., i]
            for _ in range(cfg.epochs):
                for idx in self.minibatches(adv.shape[1], cfg.minibatches):
                    log_prob, entropy, _, _ = self.evaluate(
                        i, batch["obs"][:, idx, i], batch["starts"][:, idx],
                        batch["hiddens"][idx, i], batch["actions"][:, idx, i])
                    ratio = (log_prob - old_log_prob[:, idx]).exp()
                    policy_loss = -(m_factor[:, idx] * ratio * adv[:, idx]).mean()
                    loss = policy_loss - cfg.ent_coef * entropy.mean()
                    self.actor_optimizers[i].zero_grad()
                    loss.backward()
                    self.clip_actor_grads(i)
                    self.actor_optimizers[i].step()
                    stats["policy_loss"].append(policy_loss.item())
                    stats["entropy"].append(entropy.mean().item())
            with torch.no_grad():
                new_log_prob, _, _, _ = self.evaluate(i, batch["obs"][..., i, :], batch["starts"],
                                                      batch["hiddens"][:, i], batch["actions"][..., i, :])
                m_factor = m_factor * (new_log_prob - old_log_prob).exp()
            stats["m_factor"].append(m_factor.mean().item())
        return {f"losses/{k}": float(np.mean(v)) for k, v in stats.items()}
