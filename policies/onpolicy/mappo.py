"""MAPPO: PPO's clipped objective for every agent at once, centralised V(s) critic.

Yu et al., "The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games" (2022).
All agents share the team advantage A(s, a) from GAE on the centralised critic. With
`share_params` one actor serves every agent (a one-hot agent id tells it who it is);
otherwise each agent has its own actor, updated on the same minibatches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from policies.onpolicy.common import OnPolicyAlgorithm, OnPolicyConfig


@dataclass
class MAPPOConfig(OnPolicyConfig):
    share_params: bool = True
    clip_coef: float = 0.2
    epochs: int = 5
    minibatches: int = 2


class MAPPO(OnPolicyAlgorithm):
    config_class = MAPPOConfig
    cfg: MAPPOConfig

    def update_actors(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        adv = self.advantages(batch)  # (L, B), the same team advantage for every agent
        n = self.spec.num_agents
        stats: dict[str, list[float]] = {"policy_loss": [], "entropy": [], "approx_kl": [],
                                         "clipfrac": []}
        for _ in range(cfg.epochs):
            for idx in self.minibatches(adv.shape[1], cfg.minibatches):
                if cfg.share_params:
                    loss = self._shared_loss(batch, adv, idx, stats)
                    self.actor_optimizers[0].zero_grad()
                    loss.backward()
                    self.clip_actor_grads(0)
                    self.actor_optimizers[0].step()
                    continue
                losses = []
                for i in range(n):
                    log_prob, entropy, _, _ = self.evaluate(
                        i, batch["obs"][:, idx, i], batch["starts"][:, idx],
                        batch["hiddens"][idx, i], batch["actions"][:, idx, i])
                    log_ratio = log_prob - batch["log_probs"][:, idx, i]
                    ratio = log_ratio.exp()
                    a = adv[:, idx]
                    surrogate = torch.min(ratio * a,
                                          ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef) * a)
                    policy_loss = -surrogate.mean()
                    losses.append(policy_loss - cfg.ent_coef * entropy.mean())
                    with torch.no_grad():
                        stats["policy_loss"].append(policy_loss.item())
                        stats["entropy"].append(entropy.mean().item())
                        stats["approx_kl"].append(((ratio - 1) - log_ratio).mean().item())
                        stats["clipfrac"].append(((ratio - 1).abs() > cfg.clip_coef)
                                                 .float().mean().item())
                loss = torch.stack(losses).sum()  # separate actors: each its own loss
                for opt in self.actor_optimizers:
                    opt.zero_grad()
                loss.backward()
                for k, opt in enumerate(self.actor_optimizers):
                    self.clip_actor_grads(k)
                    opt.step()
        return {f"losses/{k}": float(np.mean(v)) for k, v in stats.items()}

    def _shared_loss(self, batch: dict[str, torch.Tensor], adv: torch.Tensor, idx: np.ndarray,
                     stats: dict[str, list[float]]) -> torch.Tensor:
        """A shared actor's loss on one minibatch, every agent in one pass: the mean over
        agents of each agent's clipped objective and entropy bonus (equal sample counts make
        it one mean). Stats are the means over agents, as the per-agent path records them."""
        cfg = self.cfg
        log_prob, entropy = self.evaluate_shared(batch["obs"][:, idx], batch["starts"][:, idx],
                                                 batch["hiddens"][idx], batch["actions"][:, idx])
        log_ratio = log_prob - batch["log_probs"][:, idx]
        ratio = log_ratio.exp()
        a = adv[:, idx, None]
        surrogate = torch.min(ratio * a, ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef) * a)
        policy_loss = -surrogate.mean()
        with torch.no_grad():
            stats["policy_loss"].append(policy_loss.item())
            stats["entropy"].append(entropy.mean().item())
            stats["approx_kl"].append(((ratio - 1) - log_ratio).mean().item())
            stats["clipfrac"].append(((ratio - 1).abs() > cfg.clip_coef).float().mean().item())
        return policy_loss - cfg.ent_coef * entropy.mean()
