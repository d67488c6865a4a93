"""HAPPO: heterogeneous-agent PPO, agents updated one after another.

Kuba et al., "Trust Region Policy Optimisation in Multi-Agent Reinforcement
Learning" (ICLR 2022). Each update draws a random order of the agents. Agent
i_m maximises the clipped objective with the advantage weighted by

    M = prod_{k < m} pi_new^{i_k}(a^{i_k} | o^{i_k}) / pi_old^{i_k}(a^{i_k} | o^{i_k}),

the ratios of the agents already updated in this round, so each agent improves
given what its predecessors just changed (the multi-agent advantage decomposition).

With `share_params` (homogeneous agents) the one actor still takes the agents' steps one
after another, each on that agent's samples. Agent i_m's step then also moves its
predecessors' policies, so M is re-evaluated with the current actor before every agent:
M = prod_{k < m} pi_now(a^{i_k} | o^{i_k}) / pi_old(a^{i_k} | o^{i_k}), the predecessors'
policies as they are when agent i_m updates. With separate actors pi_now^{i_k} is agent
i_k's new policy, and this is the M above. This shared-actor M is this project's choice:
HARL's share_param option runs the same sequence on one shared actor but multiplies, for
each agent, the ratio of the actor after that agent's own step to the actor just before
it, without re-evaluating the predecessors once later steps have moved the shared actor.

`last_order` and `last_m_factors` keep the order of the latest update and the M each
agent's objective was weighted with (diagnostics, and the tests' view of the scheme).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from policies.onpolicy.common import OnPolicyAlgorithm, OnPolicyConfig, sequential_agent_order


@dataclass
class HAPPOConfig(OnPolicyConfig):
    clip_coef: float = 0.2
    epochs: int = 5
    minibatches: int = 1


class HAPPO(OnPolicyAlgorithm):
    config_class = HAPPOConfig
    sequential = True
    sequential_shared = True
    cfg: HAPPOConfig

    def update_actors(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        adv = self.advantages(batch)
        m_factor = torch.ones_like(adv)  # product of the predecessors' ratios, (L, B)
        stats: dict[str, list[float]] = {"policy_loss": [], "entropy": [], "approx_kl": [],
                                         "clipfrac": [], "m_factor": [], "m_factor_std": []}
        log_ratios: dict[int, torch.Tensor] = {}  # log pi_now / pi_old of the updated agents
        self.last_order = sequential_agent_order(self.rng, self.spec.num_agents)
        self.last_m_factors: dict[int, torch.Tensor] = {}
        for i in self.last_order:
            self.last_m_factors[i] = m_factor
            old_log_prob = batch["log_probs"][..., i]
            optimizer = self.actor_optimizers[0 if cfg.share_params else i]
            for _ in range(cfg.epochs):
                for idx in self.minibatches(adv.shape[1], cfg.minibatches):
                    log_prob, entropy, _, _ = self.evaluate(
                        i, batch["obs"][:, idx, i], batch["starts"][:, idx],
                        batch["hiddens"][idx, i], batch["actions"][:, idx, i])
                    log_ratio = log_prob - old_log_prob[:, idx]
                    ratio = log_ratio.exp()
                    weighted = m_factor[:, idx] * adv[:, idx]
                    surrogate = torch.min(ratio * weighted,
                                          ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef) * weighted)
                    loss = -surrogate.mean() - cfg.ent_coef * entropy.mean()
                    optimizer.zero_grad()
                    loss.backward()
                    self.clip_actor_grads(i)
                    optimizer.step()
                    stats["policy_loss"].append(-surrogate.mean().item())
                    stats["entropy"].append(entropy.mean().item())
                    with torch.no_grad():
                        stats["approx_kl"].append(((ratio - 1) - log_ratio).mean().item())
                        stats["clipfrac"].append(((ratio - 1).abs() > cfg.clip_coef)
                                                 .float().mean().item())
            with torch.no_grad():  # agent i is done: M for the next agent
                # Separate actors: only agent i's policy changed. A shared actor moved every
                # predecessor's policy too, so all of their ratios are evaluated again.
                for k in (list(log_ratios) + [i]) if cfg.share_params else [i]:
                    new_log_prob, _, _, _ = self.evaluate(
                        k, batch["obs"][..., k, :], batch["starts"], batch["hiddens"][:, k],
                        batch["actions"][..., k, :])
                    log_ratios[k] = new_log_prob - batch["log_probs"][..., k]
                m_factor = torch.ones_like(adv)
                for log_ratio in log_ratios.values():
                    m_factor = m_factor * log_ratio.exp()
            stats["m_factor"].append(m_factor.mean().item())
            stats["m_factor_std"].append(m_factor.std().item())
        return {f"losses/{k}": float(np.mean(v)) for k, v in stats.items()}
