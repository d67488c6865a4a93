"""The compiled loops of sim.kernels against their numpy definitions: the K-nearest block bit for
bit, the controller ticks within 1e-12, and whole fast-backend steps with and without them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import sim
from sim import kernels
from sim import obs as O
from sim.fast_dynamics import FastDynamics
from sim.scripted import random_walk_actions

pytestmark = pytest.mark.skipif(not kernels.available(), reason=(
    "numba is not installed (pip install -e '.[train]'); the numpy paths run instead"))


def numpy_nearest(*args):
    """sim.obs._nearest with the compiled loop out of reach (a batch below MIN_ROWS each)."""
    rel_pos = args[0]
    m = rel_pos.shape[-2]
    rows = [O._nearest(r[None], d[None], v[None], ov[None], h[None], *args[5:])[0][0]
            for r, d, v, ov, h in zip(rel_pos.reshape(-1, m, 3), args[1].reshape(-1, m),
                                      args[2].reshape(-1, 3), args[3].reshape(-1, m, 3),
                                      args[4].reshape(-1, m), strict=True)]
    return np.stack(rows).reshape(rel_pos.shape[:-2] + rows[0].shape)


@pytest.mark.parametrize("num_neighbours, m", [(3, 4), (3, 8), (6, 3), (4, 16)])
def test_nearest_block_is_numpys_bit_for_bit(num_neighbours, m):
    """Unheard drones, ties in distance, fewer heard than K: the same features in the same
    order as numpy's stable sort (finite states: what a simulator steps)."""
    cfg = dataclasses.replace(sim.make_config("spread"), num_neighbours=num_neighbours)
    rng = np.random.default_rng(m)
    own = rng.uniform(0, 4, (40, 5, 3))
    others = rng.uniform(0, 4, (40, 5, m, 3))
    others[:, :, 1] = others[:, :, 0]  # a tie
    own_vel, other_vel = rng.normal(size=(40, 5, 3)), rng.normal(size=(40, 5, m, 3))
    rel = O.relative(others, own)
    dist = O.norms(rel)
    heard = O._heard(dist, rng.random((40, 5, m)) > 0.2, cfg.comm_radius)
    args = (rel, dist, own_vel, other_vel, heard, cfg)
    compiled = O._nearest(*args)[0]  # 200 drones: the compiled loop
    assert compiled.dtype == np.float32 and heard.sum() < heard.size
    np.testing.assert_array_equal(compiled, numpy_nearest(*args))


def test_controller_ticks_match_the_numpy_model():
    rng = np.random.default_rng(0)
    compiled = FastDynamics(64, 4, seed=0)
    plain = FastDynamics(64, 4, seed=0, compiled=False)
    assert compiled._compiled and not plain._compiled
    start = rng.uniform(0, 4, (64, 4, 3))
    for dyn in (compiled, plain):
        dyn.reset(np.arange(64), start)
    for _ in range(50):  # large demands: the acceleration and integral limits bind
        setpoints = rng.uniform(-3, 3, (64, 4, 4))
        compiled.step(setpoints)
        plain.step(setpoints)
    np.testing.assert_allclose(compiled.state(), plain.state(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scenario", ["spread", "coverage", "formation"])
def test_a_vector_env_steps_the_same_with_the_compiled_loops(scenario, monkeypatch):
    def run() -> list[np.ndarray]:
        venv = sim.make_vec_env(scenario, 32, seed=1)
        obs, _ = venv.reset(seed=1)
        rng = np.random.default_rng(1)
        out = [obs]
        for _ in range(30):
            obs, rewards, *_ = venv.step(random_walk_actions(venv.cfg, rng, (32, venv.num_agents)))
            out += [obs, rewards]
        return out

    compiled = run()
    monkeypatch.setattr(kernels, "available", lambda: False)
    plain = run()
    for a, b in zip(compiled, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
