"""The on-policy CTDE family; `ALGORITHMS` maps a name to its algorithm class."""

from __future__ import annotations

from policies.algos.common import OnPolicyAlgorithm, OnPolicyConfig
from policies.algos.haa2c import HAA2C
from policies.algos.happo import HAPPO
from policies.algos.hatrpo import HATRPO
from policies.algos.mappo import MAPPO

ALGORITHMS: dict[str, type[OnPolicyAlgorithm]] = {
    "mappo": MAPPO, "happo": HAPPO, "hatrpo": HATRPO, "haa2c": HAA2C,
}

__all__ = ["ALGORITHMS", "OnPolicyAlgorithm", "OnPolicyConfig"]
