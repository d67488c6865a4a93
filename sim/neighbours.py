"""Who is near whom in every environment, without all-pairs distances for large swarms.

At a fixed density a swarm of N drones has N^2 pairs but only O(N) of them within the
communication radius or the collision distance, so all-pairs arrays make the per-drone cost
grow with N and dominate a step at a few hundred drones. One KD-tree over all environments
at once finds the close pairs instead: each environment's points are shifted along x far
enough that no pair within the search radius (and no nearest point) spans two of them.
Below `DENSE_MAX_DRONES` the all-pairs arrays are cheaper and the callers keep them.

Candidates found here are a superset of the exact test (the radius gets a relative margin of
1e-9); `sim.obs` applies the exact radius filter itself, so observations do not change.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

DENSE_MAX_DRONES = 16
"""Largest swarm for which the callers keep all-pairs arrays (measured no slower than the tree
up to here, on 1024 drones in all)."""

_MARGIN = 1.0 + 1e-9


def _separated(reach: float, *point_sets: np.ndarray) -> list[np.ndarray]:
    """The (E, M, 3) point sets flattened to (E * M, 3), environment e shifted by e * stride
    along x: a stride of twice the diagonal of all points' bounding box plus `reach` puts any
    two points of different environments farther apart than `reach` and than any two points
    of one environment."""
    lo = np.min([s.reshape(-1, 3).min(axis=0) for s in point_sets], axis=0)
    hi = np.max([s.reshape(-1, 3).max(axis=0) for s in point_sets], axis=0)
    stride = 2.0 * float(np.linalg.norm(hi - lo)) + reach + 1.0
    out = []
    for s in point_sets:
        shifted = s.astype(np.float64, copy=True)
        shifted[..., 0] += stride * np.arange(s.shape[0])[:, None]
        out.append(shifted.reshape(-1, 3))
    return out


def _close_pairs(pos: np.ndarray, radius: float) -> np.ndarray:
    """(P, 2) flat indices i < j of the drones of one environment within `radius` (plus margin)."""
    (flat,) = _separated(radius * _MARGIN, pos)
    return cKDTree(flat).query_pairs(radius * _MARGIN, output_type="ndarray")


def neighbours_within(pos: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """For each drone, the other drones of its environment within `radius`: indices
    (E, N, M) into the N drones, ascending, and which entries are real (E, N, M); M is the
    largest count of any drone (at least 1), padding entries point at drone 0."""
    e, n, _ = pos.shape
    pairs = _close_pairs(pos, radius)
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.lexsort((dst, src))  # by drone, then by neighbour index (as the dense order)
    src, dst = src[order], dst[order]
    counts = np.bincount(src, minlength=e * n)
    m = max(int(counts.max(initial=0)), 1)
    slot = np.arange(src.size) - np.repeat(np.cumsum(counts) - counts, counts)
    index = np.zeros((e * n, m), dtype=np.int64)
    valid = np.zeros((e * n, m), dtype=bool)
    index[src, slot] = dst % n
    valid[src, slot] = True
    return index.reshape(e, n, m), valid.reshape(e, n, m)


def close_pairs(pos: np.ndarray, distance: float) -> np.ndarray:
    """(P, 2) flat indices (env * N + drone) of the pairs closer than `distance` (strictly)."""
    pairs = _close_pairs(pos, distance)
    flat = pos.reshape(-1, 3)
    return pairs[np.linalg.norm(flat[pairs[:, 0]] - flat[pairs[:, 1]], axis=-1) < distance]


def close_pair_counts(pos: np.ndarray, distance: float) -> np.ndarray:
    """Pairs of drones closer than `distance` (strictly), per environment: (E,)."""
    e, n, _ = pos.shape
    return np.bincount(close_pairs(pos, distance)[:, 0] // n, minlength=e)


def close_partner_counts(pos: np.ndarray, distance: float) -> np.ndarray:
    """Other drones closer than `distance` (strictly) to each drone: (E, N)."""
    e, n, _ = pos.shape
    return np.bincount(close_pairs(pos, distance).ravel(), minlength=e * n).reshape(e, n)


def nearest_drones(targets: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each target (E, L, 3) to the nearest drone of its environment (E, N, 3),
    computed as `np.linalg.norm` of the difference (like the all-pairs version), and that
    drone's index: (E, L) each."""
    e, n, _ = pos.shape
    flat_targets, flat_pos = _separated(0.0, targets, pos)
    _, nearest = cKDTree(flat_pos).query(flat_targets, k=1)
    diff = targets.reshape(-1, 3) - pos.reshape(-1, 3)[nearest]
    shape = targets.shape[:2]
    return np.linalg.norm(diff, axis=-1).reshape(shape), (nearest % n).reshape(shape)
