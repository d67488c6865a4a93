"""Running statistics for observations and values.

Both are plain numpy with float64 accumulators so that a checkpoint stores them
exactly (`state_dict` / `load_state_dict`) and a resumed run normalises with
the very same numbers. The observation normaliser travels with the policy:
deployment applies the same (mean, var) before the network.
"""

from __future__ import annotations

import numpy as np
import torch


class RunningMeanStd:
    """Mean and variance over a stream of batches (parallel-variance merge)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch whose trailing dims match `shape`; leading dims are samples."""
        batch = np.asarray(batch, dtype=np.float64)
        batch = batch.reshape(-1, *self.mean.shape)
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.array(state["mean"], dtype=np.float64)
        self.var = np.array(state["var"], dtype=np.float64)
        self.count = float(state["count"])


class ObservationNormalizer(RunningMeanStd):
    """(x - mean) / std, clipped, for observations or global states."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, enabled: bool = True):
        super().__init__(shape)
        self.clip = clip
        self.enabled = enabled

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return np.asarray(x, dtype=np.float32)
        out = (x - self.mean) / np.sqrt(self.var + 1e-8)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def update(self, batch: np.ndarray) -> None:
        if self.enabled:
            super().update(batch)


class ValueNormalizer(RunningMeanStd):
    """Critic targets normalised by running return statistics (MAPPO's value normalisation).

    The critic predicts normalised values; `denormalize` turns them back into returns
    for GAE, `normalize` maps the return targets into the critic's space.
    """

    def __init__(self, enabled: bool = True):
        super().__init__(())
        self.enabled = enabled

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        return (x - float(self.mean)) / float(np.sqrt(self.var + 1e-8))

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        return x * float(np.sqrt(self.var + 1e-8)) + float(self.mean)

    def update(self, batch: np.ndarray) -> None:
        if self.enabled:
            super().update(batch)
