"""The episodic family: value decomposition (IQL, VDN, QMIX, QTRAN-base, QTRAN-alt) and COMA.

Recurrent, parameter-shared agents trained on whole episodes from a replay buffer
(`common.py`), one file per algorithm holding only what differs (its mixer or loss), and
the family's hooks for the one training loop of `policies.trainer` (`trainer.py`).
"""

from __future__ import annotations

from policies.value.coma import COMA
from policies.value.common import EpisodicAlgorithm
from policies.value.iql import IQL
from policies.value.qmix import QMIX
from policies.value.qtran import QTRANAlt, QTRANBase
from policies.value.vdn import VDN

VALUE_ALGORITHMS: dict[str, type[EpisodicAlgorithm]] = {
    "iql": IQL, "vdn": VDN, "qmix": QMIX, "qtran_base": QTRANBase, "qtran_alt": QTRANAlt,
    "coma": COMA,
}

__all__ = ["VALUE_ALGORITHMS", "EpisodicAlgorithm"]
