"""HAPPO: heterogeneous-agent PPO, agents updated one after another.

Kuba et al., "Trust Region Policy Optimisation in Multi-Agent Reinforcement
Learning" (ICLR 2022). Each update draws a random order of the agents. Agent
i_m maximises the clipped objective with the advantage weighted by

    M = prod_{k < m} pi_new^{i_k}(a^{i_k} | o^{i_k}) / pi_old^{i_k}(a^{i_k} | o^{i_k}),

the ratios of the agents already updated in this round, so each agent improves
given what its predecessors just changed (the multi-agent advantage decomposition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from policies.algos.common import OnPolicyAlgorithm, OnPolicyConfig, sequential_agent_order


@dataclass
class HAPPOConfig(OnPolicyConfig):
    clip_coef: float = 0.2
    epochs: int = 5
    minibatches: int = 1


class HAPPO(OnPolicyAlgorithm):
    config_class = HAPPOConfig
    sequential = True
    cfg: HAPPOConfig

    def update_actors(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        adv = self.advantages(batch)
        m_factor = torch.ones_like(adv)  # product of the predecessors' ratios, (L, B)
        stats: dict[str, list[float]] = {"policy_loss": [], "entropy": [], "m_factor": []}
        for i in sequential_agent_order(self.rng, self.spec.num_agents):
            old_log_prob = batch["log_probs"][..., i]
            for _ in range(cfg.epochs):
                for idx in self.minibatches(adv.shape[1], cfg.minibatches):
                    log_prob, entropy, _, _ = self.evaluate(
                        i, batch["obs"][:, idx, i], batch["starts"][:, idx],
                        batch["hiddens"][idx, i], batch["actions"][:, idx, i])
                    ratio = (log_prob - old_log_prob[:, idx]).exp()
                    weighted = m_factor[:, idx] * adv[:, idx]
                    surrogate = torch.min(ratio * weighted,
                                          ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef) * weighted)
                    loss = -surrogate.mean() - cfg.ent_coef * entropy.mean()
                    self.actor_optimizers[i].zero_grad()
                    loss.backward()
                    self.clip_actor_grads(i)
                    self.actor_optimizers[i].step()
                    stats["policy_loss"].append(-surrogate.mean().item())
                    stats["entropy"].append(entropy.mean().item())
            with torch.no_grad():  # agent i is done: fold its new/old ratio into M
                new_log_prob, _, _, _ = self.evaluate(i, batch["obs"][..., i, :], batch["starts"],
                                                      batch["hiddens"][:, i], batch["actions"][..., i, :])
                m_factor = m_factor * (new_log_prob - old_log_prob).exp()
            stats["m_factor"].append(m_factor.mean().item())
        return {f"losses/{k}": float(np.mean(v)) for k, v in stats.items()}
