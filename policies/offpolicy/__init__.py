"""The off-policy CTDE family: MADDPG, HADDPG, HATD3; `OFFPOLICY_ALGORITHMS` maps a name to
its algorithm class.

Deterministic actors learned from a replay buffer of joint transitions of vectorised envs,
against centralised Q critics. One file per algorithm (its critic targets and update
order) over `common.py` (hyperparameters, actors, critics, the replay buffer, exploration,
Polyak averaging, the heterogeneous-agent sequential actor update); `trainer.py` holds the
family's hooks for the one training loop of `policies.trainer`.
"""

from __future__ import annotations

from policies.offpolicy.common import OffPolicyAlgorithm, OffPolicyConfig
from policies.offpolicy.haddpg import HADDPG
from policies.offpolicy.hatd3 import HATD3
from policies.offpolicy.maddpg import MADDPG

OFFPOLICY_ALGORITHMS: dict[str, type[OffPolicyAlgorithm]] = {
    "maddpg": MADDPG, "haddpg": HADDPG, "hatd3": HATD3,
}

__all__ = ["OFFPOLICY_ALGORITHMS", "OffPolicyAlgorithm", "OffPolicyConfig"]
