"""Compiled loops for the two hot paths of a batched simulator step (numba, optional).

A 512-env fast-backend step spends most of its time in numpy's fixed cost per call on arrays
of a few thousand numbers: the horizontal controller's substeps (`sim.fast_dynamics`, six a
policy step) and the K-nearest-neighbour block of the observation (`sim.obs._nearest`). Where
numba is installed (`pip install -e '.[train]'`), those two run here as plain loops; the numpy
code stays the definition and the fallback:
- `nearest_rows` gives `sim.obs._nearest` bit for bit on finite states (same float64 products,
  the same stable order; numpy's padding also carries a NaN of an unheard drone, the loop's
  stays zero), and sim.obs uses it only for batches of `MIN_ROWS` drones or more, so an agent node
  (one drone a tick) never imports numba;
- `horizontal_ticks` is `HorizontalModel.tick` repeated, within 1e-12 (numpy's 8 x 8 product
  sums in BLAS's order, this loop in its own).
`tests/test_kernels.py` holds both to their numpy twins. Compiled functions are cached beside
this file (`__pycache__`) after a process's first call, which takes a few seconds.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

MIN_ROWS = 64  # smaller batches (an agent node's one drone) stay in numpy


@functools.cache
def available() -> bool:
    """Whether numba is installed (looked up once: the lookup costs ~25 us)."""
    return importlib.util.find_spec("numba") is not None


_compiled: dict[str, object] = {}


def _kernels() -> dict[str, object]:
    if _compiled:
        return _compiled
    import numba

    @numba.njit(cache=True, boundscheck=False)
    def horizontal_ticks(state, setpoint, ticks, ad, bd, gain, integral_gain, tick_s,
                         integral_limit, max_acceleration):
        # Rows [x: p w a i, y: p w a i]; the drones innermost, so that each tick's
        # arithmetic runs over independent drones instead of one drone's serial chain.
        for _ in range(ticks):
            for r in range(state.shape[0]):
                ex = setpoint[r, 0] - state[r, 1]
                ey = setpoint[r, 1] - state[r, 5]
                ix = min(max(state[r, 3] + ex * tick_s, -integral_limit), integral_limit)
                iy = min(max(state[r, 7] + ey * tick_s, -integral_limit), integral_limit)
                cx = gain * ex + integral_gain * ix
                cy = gain * ey + integral_gain * iy
                scale = max_acceleration / max(np.sqrt(cx * cx + cy * cy), max_acceleration)
                cx *= scale
                cy *= scale
                for base, c in ((0, cx), (4, cy)):
                    p, w, a = state[r, base], state[r, base + 1], state[r, base + 2]
                    for j in range(3):
                        state[r, base + j] = ad[j, 0] * p + ad[j, 1] * w + ad[j, 2] * a + bd[j] * c
                state[r, 3] = ix
                state[r, 7] = iy

    @numba.njit(cache=True, boundscheck=False)
    def nearest_rows(rel_pos, dist, own_vel, other_vel, heard, out, inv_radius, inv_vxy):
        rows, m = dist.shape
        order = np.empty(m, np.int64)
        for r in range(rows):
            count = 0
            for j in range(m):  # insertion sort of the heard, stable: ties keep index order
                if heard[r, j]:
                    d = dist[r, j]
                    q = count
                    while q > 0 and dist[r, order[q - 1]] > d:
                        order[q] = order[q - 1]
                        q -= 1
                    order[q] = j
                    count += 1
            for q in range(min(out.shape[1], count)):
                j = order[q]
                for c in range(3):
                    out[r, q, c] = rel_pos[r, j, c] * inv_radius
                    out[r, q, 3 + c] = (other_vel[r, j, c] - own_vel[r, c]) * inv_vxy
                out[r, q, 6] = 1.0

    _compiled.update(horizontal_ticks=horizontal_ticks, nearest_rows=nearest_rows)
    return _compiled


def horizontal_ticks(state: np.ndarray, setpoint: np.ndarray, ticks: int, model) -> None:
    """`ticks` controller ticks of `model` (a `HorizontalModel`) on `state` (R, 8), in place,
    under horizontal setpoints (R, 2)."""
    _kernels()["horizontal_ticks"](state, setpoint, ticks, model.ad, model.bd, model.gain,
                                   model.integral_gain, model.tick_s, model.integral_limit,
                                   model.max_acceleration)


def nearest_rows(rel_pos: np.ndarray, dist: np.ndarray, own_vel: np.ndarray,
                 other_vel: np.ndarray, heard: np.ndarray, out: np.ndarray,
                 comm_radius: float, vxy: float) -> None:
    """The K nearest heard neighbours' features into `out` (R, K, 7), zero-initialised: rows
    of `rel_pos` (R, M, 3), `dist` and `heard` (R, M), `own_vel` (R, 3), `other_vel` (R, M, 3);
    the numbers `sim.obs._nearest` computes."""
    _kernels()["nearest_rows"](rel_pos, dist, own_vel, other_vel, heard, out,
                               1.0 / comm_radius, 1.0 / vxy)
