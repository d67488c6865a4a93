"""The mean-field family, for large swarms: MF-Q and MF-AC; `MEANFIELD_ALGORITHMS` maps a
name to its algorithm class.

Each drone's Q-function reads its own action and the mean action of the neighbours it
hears (the last field of its observation, `sim.obs.neighbour_mean_action`), so its input
does not grow with the swarm; one network for the whole swarm. One file per algorithm
over `common.py` (hyperparameters, the mean-action views of a batch); `trainer.py` holds
the family's hooks for the one training loop, the off-policy family's loop over per-agent
transitions.
"""

from __future__ import annotations

from policies.meanfield.mf_ac import MFAC
from policies.meanfield.mf_q import MFQ

MEANFIELD_ALGORITHMS = {"mf_q": MFQ, "mf_ac": MFAC}

__all__ = ["MEANFIELD_ALGORITHMS"]
