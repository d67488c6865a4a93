"""The on-policy CTDE family; `ALGORITHMS` maps a name to its algorithm class.

One file per algorithm (its actor update) over `common.py` (hyperparameters, actors, the
critic and its update); `trainer.py` holds the family's hooks for the one training loop
of `policies.trainer` (rollout collection, GAE, the update step).
"""

from __future__ import annotations

from policies.onpolicy.common import OnPolicyAlgorithm, OnPolicyConfig
from policies.onpolicy.haa2c import HAA2C
from policies.onpolicy.happo import HAPPO
from policies.onpolicy.hatrpo import HATRPO
from policies.onpolicy.mappo import MAPPO

ALGORITHMS: dict[str, type[OnPolicyAlgorithm]] = {
    "mappo": MAPPO, "happo": HAPPO, "hatrpo": HATRPO, "haa2c": HAA2C,
}

__all__ = ["ALGORITHMS", "OnPolicyAlgorithm", "OnPolicyConfig"]
