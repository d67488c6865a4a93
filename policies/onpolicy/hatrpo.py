"""HATRPO: the sequential heterogeneous-agent scheme with a trust-region step per agent.

Kuba et al., "Trust Region Policy Optimisation in Multi-Agent Reinforcement
Learning" (ICLR 2022). For agent i_m, in a random order:
  g   = grad of the surrogate E[M * ratio * A]   (M: ratios of the agents updated before)
  x   = F^-1 g by conjugate gradient, F the Hessian of the mean KL(pi_old || pi) (via
        Hessian-vector products, never formed)
  step = sqrt(2 delta / x^T F x) x, then a backtracking line search that accepts the
        largest fraction whose KL <= delta and whose surrogate improves.
The accepted step's KL is recorded (`losses/kl_agent<i>`, `losses/kl_max`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch.distributions import kl_divergence
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from policies.onpolicy.common import OnPolicyAlgorithm, OnPolicyConfig, sequential_agent_order


@dataclass
class HATRPOConfig(OnPolicyConfig):
    kl_threshold: float = 0.01  # delta, the trust-region radius in mean KL
    cg_iterations: int = 10
    cg_damping: float = 0.1
    line_search_steps: int = 10
    backtrack_coef: float = 0.5
    accept_ratio: float = 0.0  # required fraction of the linearly expected improvement


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iterations: int, tolerance: float = 1e-10) -> torch.Tensor:
    """Solve A x = b for symmetric positive-definite A given only x -> A x."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iterations):
        ap = matvec(p)
        alpha = rr / (p @ ap + 1e-12)
        x += alpha * p
        r -= alpha * ap
        rr_new = r @ r
        if rr_new < tolerance:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


class HATRPO(OnPolicyAlgorithm):
    config_class = HATRPOConfig
    sequential = True
    cfg: HATRPOConfig

    def mean_kl(self, agent: int, inputs: tuple, old_dist) -> torch.Tensor:
        """Mean KL(pi_old || pi) of `agent` over the batch."""
        _, _, dist, _ = self.evaluate(agent, *inputs)
        kl = kl_divergence(old_dist, dist)
        return (kl if self.actor_of(agent).discrete else kl.sum(-1)).mean()

    def surrogate(self, agent: int, inputs: tuple, weighted: torch.Tensor,
                  old_log_prob: torch.Tensor) -> torch.Tensor:
        """E[ratio * M * A] for `agent`: the objective its trust-region step improves."""
        log_prob, _, _, _ = self.evaluate(agent, *inputs)
        return ((log_prob - old_log_prob).exp() * weighted).mean()

    def fisher_vector(self, agent: int, inputs: tuple, old_dist, params: list,
                      v: torch.Tensor) -> torch.Tensor:
        """(F + damping I) v, F the Hessian of the mean KL, by double backpropagation."""
        kl = self.mean_kl(agent, inputs, old_dist)
        kl_grad = parameters_to_vector(torch.autograd.grad(kl, params, create_graph=True))
        hvp = parameters_to_vector(torch.autograd.grad(kl_grad @ v, params))
        return hvp + self.cfg.cg_damping * v

    def update_actors(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        adv = self.advantages(batch)
        m_factor = torch.ones_like(adv)
        stats: dict[str, float] = {}
        for i in sequential_agent_order(self.rng, self.spec.num_agents):
            actor = self.actor_of(i)
            params = list(actor.parameters())
            old_log_prob = batch["log_probs"][..., i]
            inputs = (batch["obs"][..., i, :], batch["starts"], batch["hiddens"][:, i],
                      batch["actions"][..., i, :])
            with torch.no_grad():
                _, _, old_dist, _ = self.evaluate(i, *inputs)
            weighted = m_factor * adv
            loss = self.surrogate(i, inputs, weighted, old_log_prob)
            grad = parameters_to_vector(torch.autograd.grad(loss, params))
            fisher = partial(self.fisher_vector, i, inputs, old_dist, params)
            direction = conjugate_gradient(fisher, grad, cfg.cg_iterations)
            curvature = direction @ fisher(direction)
            full_step = torch.sqrt(2 * cfg.kl_threshold / (curvature + 1e-12)) * direction
            expected = grad @ full_step
            old_params = parameters_to_vector(params).detach().clone()
            accepted_kl, accepted = 0.0, False
            with torch.no_grad():
                for k in range(cfg.line_search_steps):
                    fraction = cfg.backtrack_coef**k
                    vector_to_parameters(old_params + fraction * full_step, params)
                    improvement = (self.surrogate(i, inputs, weighted, old_log_prob) - loss).item()
                    kl = self.mean_kl(i, inputs, old_dist).item()
                    if (kl <= cfg.kl_threshold and improvement > 0
                            and improvement >= cfg.accept_ratio * fraction * expected.item()):
                        accepted_kl, accepted = kl, True
                        break
                if not accepted:  # no acceptable step: keep the old policy
                    vector_to_parameters(old_params, params)
                new_log_prob, entropy, _, _ = self.evaluate(i, *inputs)
                m_factor = m_factor * (new_log_prob - old_log_prob).exp()
            stats[f"losses/kl_agent{i}"] = accepted_kl
            stats[f"losses/step_accepted_agent{i}"] = float(accepted)
            stats.setdefault("losses/entropy", 0.0)
            stats["losses/entropy"] += entropy.mean().item() / self.spec.num_agents
        stats["losses/kl_max"] = max(v for k, v in stats.items() if k.startswith("losses/kl_agent"))
        stats["losses/m_factor"] = m_factor.mean().item()
        return stats


__all__ = ["HATRPO", "HATRPOConfig", "conjugate_gradient"]
