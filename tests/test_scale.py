"""Large swarms (64 to 256 drones): fields that hold them, the fast and PyBullet backends at
those sizes, the neighbour search that keeps the per-drone cost flat, and the benchmarks'
large-swarm rows (behaviour only; the figures live in `marl-ros bench`)."""

from __future__ import annotations

import numpy as np
import pytest
from ros_support import domain_id, ros_domain, ros_import_failures, ros_required

import sim
from sim import neighbours
from sim import obs as O
from sim.config import ConfigError, make_config, scaled_field
from sim.scenarios import pairwise_distances, safety_counts
from sim.scripted import random_walk_actions

LARGE = (64, 256)


def _stepped(name: str, n: int, num_envs: int = 2, steps: int = 5, seed: int = 0, **extra):
    """A fast-backend vec env of n drones on its scaled field after `steps` random-walk steps:
    (env, last observation)."""
    venv = sim.make_vec_env(name, num_envs, seed=seed, num_drones=n, **scaled_field(name, n),
                            **extra)
    obs, _ = venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs, *_ = venv.step(random_walk_actions(venv.cfg, rng, (num_envs, n)))
    return venv, obs


# ------------------------------------------------------------------------------------------------
# Fields
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", (4, 64, 128, 256))
def test_scaled_fields_hold_the_swarm_at_the_default_density(n):
    coverage = make_config("coverage", num_drones=n, **scaled_field("coverage", n))
    spread = make_config("spread", num_drones=n, **scaled_field("spread", n))
    assert coverage.cell_size == 0.25 and spread.num_landmarks == n
    assert 95 <= coverage.width * coverage.height / n <= 110  # default: 400 cells / 4 drones
    assert 3.9 <= spread.arena_size ** 2 / n <= 4.1  # default: 16 m^2 / 4 drones
    if n == 4:
        assert scaled_field("coverage", 4) == {"width": 20, "height": 20}
        assert scaled_field("spread", 4) == {"arena_size": 4.0}


@pytest.mark.parametrize("name, n, capacity", [("coverage", 256, 64), ("spread", 64, 36)])
def test_a_field_too_small_for_the_swarm_is_refused_in_one_sentence(name, n, capacity):
    with pytest.raises(ConfigError) as err:
        sim.make_vec_env(name, 1, num_drones=n)
    message = str(err.value)
    assert message == (f"num_drones={n} is more than the field can hold at 0.60 m spacing (at "
                       f"most {capacity}); enlarge the field or use fewer drones.")


# ------------------------------------------------------------------------------------------------
# Fast backend at 64 and 256 drones
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ("coverage", "spread"))
@pytest.mark.parametrize("n", LARGE)
def test_large_swarms_step_on_the_fast_backend_with_valid_observations(name, n):
    venv, obs = _stepped(name, n)
    cfg = venv.cfg
    assert obs.shape == (2, n, O.observation_size(cfg)) and obs.dtype == np.float32
    assert np.isfinite(obs).all() and np.isfinite(venv.state()).all()
    # Neighbour features: exactly the K nearest drones within the communication radius.
    k = cfg.num_neighbours
    feats = obs[..., 6:6 + 7 * k].reshape(2, n, k, 7)
    present = feats[..., 6] == 1.0
    rel = feats[..., :3] * cfg.comm_radius
    assert (np.linalg.norm(rel, axis=-1)[present] <= cfg.comm_radius + 1e-5).all()
    dist = pairwise_distances(venv.positions)
    within = (dist <= cfg.comm_radius).sum(axis=-1)
    np.testing.assert_array_equal(present.sum(axis=-1), np.minimum(within, k))
    nearest = np.sort(dist, axis=-1)[..., :k]
    got = np.where(present, np.linalg.norm(rel, axis=-1), np.inf)
    np.testing.assert_allclose(got[present], nearest[present], rtol=1e-5)


@pytest.mark.parametrize("name", ("coverage", "spread"))
def test_the_neighbour_search_gives_the_all_pairs_observations_and_rewards(name, monkeypatch):
    """Large swarms pass sim.obs only the drones within the radius (a KD-tree): the same
    observations, rewards and metrics as passing every drone, with sensing faults too."""
    def run(dense: bool):
        monkeypatch.setattr(neighbours, "DENSE_MAX_DRONES", 10**6 if dense else 0)
        venv = sim.make_vec_env(name, 3, seed=1, num_drones=64, neighbour_drop=0.3,
                                sensor_noise=0.05, **scaled_field(name, 64))
        out = [venv.reset(seed=1)[0]]
        rng = np.random.default_rng(2)
        for _ in range(30):
            obs, reward, _, _, infos = venv.step(random_walk_actions(venv.cfg, rng, (3, 64)))
            out += [obs, reward, infos["collisions"], infos["geofence_violations"]]
            out.append(infos["coverage" if name == "coverage" else "mean_landmark_distance"])
        return out

    for tree, dense in zip(run(dense=False), run(dense=True), strict=True):
        np.testing.assert_array_equal(tree, dense)


def test_the_tree_queries_match_all_pairs_on_crowded_and_scattered_swarms():
    rng = np.random.default_rng(0)
    pos = np.concatenate([rng.uniform(0, 3, (3, 100, 3)),  # crowded: many close pairs
                          rng.uniform(-50, 50, (3, 100, 3))], axis=0)  # and scattered
    dist = pairwise_distances(pos)
    index, valid = neighbours.neighbours_within(pos, 0.7)
    for e in range(pos.shape[0]):
        for i in range(pos.shape[1]):
            expected = np.flatnonzero(dist[e, i] <= 0.7)
            np.testing.assert_array_equal(index[e, i][valid[e, i]], expected)
    cfg = make_config("coverage", num_drones=100, width=200, height=200)
    dense = np.triu(dist < cfg.collision_distance, k=1).sum(axis=(1, 2))
    assert dense[:3].min() > 0
    np.testing.assert_array_equal(safety_counts(pos, cfg)[0], dense)
    np.testing.assert_array_equal(neighbours.close_partner_counts(pos, cfg.collision_distance),
                                  (dist < cfg.collision_distance).sum(axis=2))
    targets = rng.uniform(0, 3, (6, 40, 3))
    all_pairs = np.linalg.norm(targets[:, :, None] - pos[:, None], axis=-1)
    nearest, index = neighbours.nearest_drones(targets, pos)
    np.testing.assert_allclose(nearest, all_pairs.min(axis=2), rtol=1e-12)
    np.testing.assert_array_equal(index, all_pairs.argmin(axis=2))


# ------------------------------------------------------------------------------------------------
# PyBullet for evaluation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, n", [("coverage", 64), ("spread", 64), ("coverage", 256)])
def test_pybullet_large_swarms_reset_and_step(name, n):
    env = sim.make_env(name, num_drones=n, seed=0, render_mode=None, **scaled_field(name, n))
    try:
        obs, _ = env.reset(seed=0)
        assert len(obs) == n
        start = env.positions.copy()
        for _ in range(3):
            obs, rewards, *_ = env.step({a: np.zeros(4, np.float32) for a in env.agents})
        stacked = np.stack([obs[a] for a in env.possible_agents])
        assert stacked.shape == (n, O.observation_size(env.cfg)) and np.isfinite(stacked).all()
        assert np.isfinite(list(rewards.values())).all()
        # Hovering: every drone holds its start position.
        assert np.abs(env.positions - start).max() < 0.1
    finally:
        env.close()


# ------------------------------------------------------------------------------------------------
# Benchmarks
# ------------------------------------------------------------------------------------------------
def test_bench_sim_scaling_rows_step_the_same_drones_per_call_on_scaled_fields():
    from marl_ros.bench import fast_scaling

    rows = fast_scaling(0.05, drones=(4, 64, 256))
    assert [(r["num_drones"], r["num_envs"], r["width"]) for r in rows] == [
        (4, 256, 20), (64, 16, 80), (256, 4, 160)]
    assert rows[0]["per_drone_cost_ratio"] == 1.0
    for r in rows:
        assert r["agent_steps_per_s"] == pytest.approx(r["env_steps_per_s"] * r["num_drones"])
        assert r["per_drone_cost_ratio"] > 0


@pytest.mark.ros
@pytest.mark.slow
def test_bench_ros_runs_64_drones_in_one_process_and_reports_the_sim_real_time_factor(
        monkeypatch):
    """64 drones at the bundle's 8 Hz: the separate-process row is skipped beyond the
    machine's capacity, the one-process row reports ticks and the sim_node's real-time
    factor."""
    failures = ros_import_failures()
    if failures and not ros_required():
        pytest.skip(f"ROS 2 is not installed here: {'; '.join(failures)}")
    from marl_ros import bench, graph

    monkeypatch.setattr(graph, "agent_process_capacity", lambda: (16, "a test machine"))
    with ros_domain(domain_id(75), failures):
        results = bench.bench_ros(seconds=2.0, rate=8.0, drones=(64,))
    assert not any(key.startswith("n64_separate") for key in results)
    assert results["n64_one_process_deadlines"] >= 64 * 8
    assert 0.0 < results["n64_one_process_sim_real_time_factor"] <= 1.5


class FakeVmas:
    """Stands in for the `vmas` package (never a test dependency): records what the bench asks."""

    def __init__(self):
        self.made, self.steps = [], []

    def make_env(self, scenario, num_envs, device, continuous_actions, seed, n_agents):
        fake = self

        class Agent:
            u_range = 0.5

        class Env:
            agents = [Agent() for _ in range(n_agents)]

            def get_agent_action_size(self, agent):
                return 2

            def reset(self):
                return [None] * n_agents

            def step(self, actions):
                fake.steps.append([a.shape for a in actions])
                assert all(float(a.abs().max()) <= Agent.u_range for a in actions)

        self.made.append((scenario, num_envs, device, continuous_actions, n_agents))
        return Env()


def test_vmas_rate_steps_the_peer_like_the_fast_backend_is_counted(monkeypatch):
    import sys

    import torch

    from marl_ros import bench

    fake = FakeVmas()
    monkeypatch.setitem(sys.modules, "vmas", fake)
    threads = torch.get_num_threads()
    rate = bench.vmas_env_rate("simple_spread", 8, 0.02)
    assert fake.made == [("simple_spread", 8, "cpu", True, 4)]
    assert fake.steps and all(shapes == [(8, 2)] * 4 for shapes in fake.steps)
    assert rate == pytest.approx(8 * (len(fake.steps) - 1) / 0.02, rel=0.9)  # one warm-up step
    assert torch.get_num_threads() == threads


def test_vmas_comparison_interleaves_each_peer_with_its_scenario_and_prints_the_ratio(
        monkeypatch, capsys):
    from rich.console import Console

    from marl_ros import bench

    calls = []
    monkeypatch.setattr(bench, "vmas_installed", lambda: True)
    monkeypatch.setattr(bench, "vmas_env_rate", lambda task, envs, s: calls.append(
        ("vmas", task, envs)) or {"navigation": 100.0, "simple_spread": 400.0}[task])
    monkeypatch.setattr(bench, "fast_env_rate", lambda envs, s, num_drones, scenario: calls.append(
        ("ours", scenario, envs, num_drones)) or {"coverage": 250.0, "spread": 300.0}[scenario])
    results = bench.print_vmas_comparison(0.01, Console(width=200))
    pair = [("vmas", "navigation", 512), ("ours", "coverage", 512, 4)]
    pair2 = [("vmas", "simple_spread", 512), ("ours", "spread", 512, 4)]
    assert calls == pair * 5 + pair2 * 5
    assert results["vs_vmas_coverage_ratio"] == 2.5 and results["vs_vmas_spread_ratio"] == 0.75
    out = capsys.readouterr().out
    assert "simple_spread" in out and "0.75" in out and "2.50" in out


def test_bench_sim_without_vmas_says_how_to_install_it(monkeypatch, capsys):
    from rich.console import Console

    from marl_ros import bench

    monkeypatch.setattr(bench, "vmas_installed", lambda: False)
    assert bench.print_vmas_comparison(0.01, Console(width=200)) == {}
    assert "pip install vmas" in capsys.readouterr().out


def test_pybullet_breakdown_adds_one_layer_of_the_env_step_per_row():
    from marl_ros.bench import pybullet_breakdown

    rows = pybullet_breakdown(2, 0.05)
    assert [r["layer"].split(" ")[0] for r in rows] == [
        "stepSimulation", "+", "+", "PyBulletWorld.step", "coverage"]
    assert rows[1]["vs_floor"] == 1.0
    for r in rows:
        assert r["physics_steps_per_s"] > 0
        assert r["us_per_physics_step"] == pytest.approx(1e6 / r["physics_steps_per_s"])
        assert r["vs_floor"] == pytest.approx(r["physics_steps_per_s"]
                                              / rows[1]["physics_steps_per_s"])
