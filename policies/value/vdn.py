"""VDN: Q_tot(tau, u) = sum_a Q_a(tau_a, u_a), trained end to end on the team reward.

Sunehag et al., "Value-Decomposition Networks For Cooperative Multi-Agent Learning" (2018).
The sum makes each agent's greedy action the joint greedy action (decentralisable by
construction), at the price of representing only additive joint values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from policies.value.common import QLearner, ValueConfig


@dataclass
class VDNConfig(ValueConfig):
    pass


class SumMixer(nn.Module):
    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return agent_qs.sum(-1)


class VDN(QLearner):
    config_class = VDNConfig

    def make_mixer(self) -> nn.Module:
        return SumMixer()
