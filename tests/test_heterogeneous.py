"""Heterogeneous coverage swarms (CoverageConfig.speed_factors, footprints, own_profile): each
drone flies its own speed limit on both backends, its own footprint marks the cells under it in
the ground truth and in the beliefs (a neighbour's footprint too, by its drone index, when
heard), the default profiles leave the coverage world exactly as it was, and bad profiles are
refused in one sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import sim
from sim import obs as O
from sim.config import ConfigError, make_config
from sim.scenarios import make_scenario
from sim.scripted import LawnmowerPilot, random_walk_actions

ROOT = Path(__file__).resolve().parent.parent
PROFILES = dict(speed_factors=[1.5, 1.5, 0.5, 0.5], footprints=[1, 1, 5, 5])  # the README's


def field_mask(cfg, cells: list[tuple[int, int, int]]) -> np.ndarray:
    """(H, W) True under the squares (column, row, width) clipped to the field."""
    mask = np.zeros((cfg.height, cfg.width), dtype=bool)
    for ix, iy, width in cells:
        r = width // 2
        mask[max(iy - r, 0):iy + r + 1, max(ix - r, 0):ix + r + 1] = True
    return mask


def cell_centre(cfg, ix: int, iy: int) -> list[float]:
    return [(ix + 0.5) * cfg.cell_size, (iy + 0.5) * cfg.cell_size, cfg.start_altitude]


# -- defaults and configuration -------------------------------------------------------------------
def test_default_profiles_leave_the_coverage_world_as_it_was():
    cfg = make_config("coverage")
    assert not cfg.heterogeneous
    assert cfg.drone_speed_factors() == (1.0,) * 4 and cfg.drone_footprints() == (3,) * 4
    assert "own_profile" not in dict(O.observation_layout(cfg))
    # the shipped homogeneous bundle still matches (its hash predates the profiles)
    import yaml

    meta = yaml.safe_load((ROOT / "policies/zoo/coverage_4/policy.yaml").read_text())
    assert O.observation_hash(cfg) == meta["observation"]["hash"]
    assert make_scenario(cfg, 1).speed_scale() is None
    # profiles of alike drones are still profiles: part of the hash
    alike = make_config("coverage", footprints=[3, 3, 3, 3])
    assert alike.heterogeneous and O.observation_hash(alike) != O.observation_hash(cfg)


def test_profiles_are_in_the_observation_hash_and_the_own_profile_field():
    cfg = make_config("coverage", **PROFILES)
    other = make_config("coverage", speed_factors=[1.5, 0.5, 1.5, 0.5], footprints=[1, 5, 1, 5])
    assert O.observation_hash(cfg) != O.observation_hash(other)
    layout = dict(O.observation_layout(cfg))
    assert layout["own_profile"] == 2
    assert "own_profile" not in dict(O.observation_layout(
        make_config("coverage", own_profile=False, **PROFILES)))
    venv = sim.make_vec_env("coverage", 2, seed=0, **PROFILES)
    obs, _ = venv.reset(seed=0)
    np.testing.assert_allclose(obs[:, :, -2:], np.broadcast_to(
        [[1.5, 0.2], [1.5, 0.2], [0.5, 1.0], [0.5, 1.0]], (2, 4, 2)))


@pytest.mark.parametrize("params, message", [
    (dict(speed_factors=[1.0, 1.0]), "speed_factors has 2 entries but num_drones=4"),
    (dict(footprints=[1, 3, 5, 7, 9]), "footprints has 5 entries but num_drones=4"),
    (dict(footprints=[1, 2, 3, 5]), r"footprints\[1\] must be an odd integer >= 1"),
    (dict(footprints=[1, -1, 3, 5]), r"footprints\[1\] must be an odd integer >= 1"),
    (dict(footprints=[1, 1, 1, 41]), r"footprints\[3\]=41 is larger than the field"),
    (dict(speed_factors=[1.0, 1.0, 3.0, 1.0]), r"speed_factors\[2\] must be a factor in \[0.25, 2\]"),
    (dict(speed_factors=[1.0, 0.0, 1.0, 1.0]), r"speed_factors\[1\] must be a factor in \[0.25, 2\]"),
    (dict(speed_factors=1.5), "speed_factors must be a list of factors"),
    (dict(own_profile="yes", footprints=[1, 1, 5, 5]), "own_profile must be true or false"),
])
def test_bad_profiles_are_refused_in_one_sentence(params, message):
    with pytest.raises(ConfigError, match=message) as err:
        make_config("coverage", **params)
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")


def test_a_bundle_with_profiles_flies_exactly_its_swarm():
    # The profiles are by drone index, so the config refuses another drone count.
    with pytest.raises(ConfigError, match="speed_factors has 4 entries but num_drones=6"):
        make_config("coverage", num_drones=6, **PROFILES)


# -- speed ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["fast", "pybullet"])
def test_each_drone_flies_its_own_speed_limit(backend):
    """Full-stick commands east (and up for one step): each drone settles at vxy (and vz) times
    its own factor, the faster drones above the shared limit."""
    factors = [1.5, 1.0, 0.5, 0.25]
    venv = sim.make_vec_env("coverage", 1, backend=backend, seed=0, autoreset=False, width=50,
                            height=50, max_steps=40, speed_factors=factors)
    venv.reset(seed=0)
    action = np.zeros((1, 4, 4))
    action[..., 0] = 1.0
    top = np.zeros(4)
    for _ in range(14):
        venv.step(action)
        top = np.maximum(top, venv.velocities[0, :, 0])
    np.testing.assert_allclose(top, venv.cfg.vxy * np.array(factors), rtol=0.06)
    action[..., 0], action[..., 2] = 0.0, 1.0  # climb: vz scales the same way
    for _ in range(3):
        venv.step(action)
    vz = venv.velocities[0, :, 2]
    assert np.all(np.diff(vz) < 0) and np.all(vz <= venv.cfg.vz * np.array(factors) * 1.06), vz
    venv.close()


# -- footprints ----------------------------------------------------------------------------------
def test_each_footprint_marks_its_own_cells_in_the_ground_truth():
    cfg = make_config("coverage", **PROFILES)
    scenario = make_scenario(cfg, 1)
    cells = [(2, 2), (10, 3), (5, 12), (19, 19)]  # the last one's 5 x 5 is clipped at the corner
    pos = np.array([[cell_centre(cfg, *c) for c in cells]])
    scenario.reset(np.array([0]), pos, np.random.default_rng(0))
    covered = O.belief_interior(scenario.covered[0], cfg) == O.COVERED
    expected = field_mask(cfg, [(ix, iy, w) for (ix, iy), w in zip(cells, cfg.footprints, strict=True)])
    np.testing.assert_array_equal(covered, expected)
    assert scenario.covered_count[0] == 1 + 1 + 25 + 9
    # a step east later each drone's share of the reward is its own new cells (the last one
    # has left the field: a drone outside the geofence covers nothing)
    moved = pos + np.array([cfg.cell_size, 0.0, 0.0])
    shares = scenario.task_shares(moved)
    reward, _, _ = scenario.progress(moved)
    np.testing.assert_allclose(shares[0] * scenario.cells, [1, 1, 5, 0])
    assert shares.sum() == pytest.approx(reward[0])


def test_beliefs_mark_each_heard_neighbours_own_footprint():
    """Drone 0 (1 x 1) hears drone 2 (5 x 5) within the comm radius, not drone 3 (5 x 5) beyond
    it: its belief holds its own cell and drone 2's 5 x 5, looked up by drone index."""
    cfg = make_config("coverage", **PROFILES)
    cells = [(4, 4), (19, 0), (7, 5), (15, 15)]
    pos = np.array([cell_centre(cfg, *c) for c in cells])
    belief = O.new_belief(cfg)
    others = [1, 2, 3]
    obs = O.observe_tick(cfg, pos[0], np.zeros(3), pos[others], np.zeros((3, 3)), None,
                         belief=belief, own_id=0, other_ids=np.array(others))
    heard = np.linalg.norm(pos[others] - pos[0], axis=1) <= cfg.comm_radius
    assert heard.tolist() == [False, True, False]
    covered = O.belief_interior(belief, cfg) == O.COVERED
    np.testing.assert_array_equal(covered, field_mask(cfg, [(4, 4, 1), (7, 5, 5)]))
    np.testing.assert_allclose(obs[-2:], [1.5, 0.2])
    with pytest.raises(ValueError, match="need own_id and other_ids"):
        O.observe_tick(cfg, pos[0], np.zeros(3), pos[others], np.zeros((3, 3)), None,
                       belief=O.new_belief(cfg))


def test_the_simulators_beliefs_use_every_drones_own_footprint():
    """In the vector env each drone's belief after the first tick is its own footprint and
    those of the drones it hears, each of its own width."""
    venv = sim.make_vec_env("coverage", 4, seed=3, **PROFILES)
    venv.reset(seed=3)
    cfg = venv.cfg
    for e in range(4):
        pos = venv.positions[e]
        ix, iy = O.position_to_cell(pos, cfg)
        for i in range(4):
            near = np.linalg.norm(pos - pos[i], axis=1) <= cfg.comm_radius
            expected = field_mask(cfg, [(ix[j], iy[j], cfg.footprints[j])
                                        for j in range(4) if near[j]])
            got = O.belief_interior(venv.scenario.belief[e, i], cfg) == O.COVERED
            np.testing.assert_array_equal(got, expected)


# -- the PettingZoo API and the baselines -------------------------------------------------------
@pytest.mark.parametrize("backend", ["fast", "pybullet"])
def test_parallel_api(backend):
    env = sim.make_env("coverage", backend=backend, max_steps=10, **PROFILES)
    parallel_api_test(env, num_cycles=20)
    env.close()


@pytest.mark.parametrize("backend", ["fast", "pybullet"])
def test_profiles_and_obstacles_combine(backend):
    """A heterogeneous swarm among obstacles: the observation holds the own profile, then the
    range readings (last), and the widest footprint bounds the obstacle sizes (a cell under an
    obstacle is covered when any drone can see it)."""
    params = dict(PROFILES, obstacles=3, range_rays=6, max_steps=10)
    cfg = make_config("coverage", **params)
    names = [name for name, _ in O.observation_layout(cfg)]
    assert names[-2:] == ["own_profile", "ranges"]
    env = sim.make_env("coverage", backend=backend, **params)
    parallel_api_test(env, num_cycles=20)
    env.close()
    venv = sim.make_vec_env("coverage", 2, backend=backend, seed=1, **params)
    obs, _ = venv.reset(seed=1)
    ranges = obs[..., -cfg.range_rays:]
    assert ((ranges >= 0) & (ranges <= 1)).all()
    np.testing.assert_allclose(obs[..., -cfg.range_rays - 2],
                               np.tile(PROFILES["speed_factors"], (2, 1)))
    venv.close()
    with pytest.raises(ConfigError, match="obstacle_size_max"):  # footprint 1: 0.019 m at most
        make_config("coverage", speed_factors=[1.5, 1.5, 0.5, 0.5], footprints=[1, 1, 1, 1],
                    obstacles=2)


def test_the_profile_aware_lawnmower_beats_the_random_walk():
    """The scripted sweep gives each drone a strip in proportion to its sweep rate (speed x
    footprint) and lanes of its own footprint; it covers most of the field, the random walk
    far less (README: heterogeneous swarms)."""
    venv = sim.make_vec_env("coverage", 1, seed=0, autoreset=False, **PROFILES)
    lawn, walk = [], []
    rng = np.random.default_rng(0)
    for seed in range(4):
        venv.reset(seed=seed)
        pilot = LawnmowerPilot(venv.cfg, venv.positions[0])
        done = False
        while not done:
            *_, term, trunc, info = venv.step(pilot.actions(venv.positions[0])[None])
            done = bool(term.any() or trunc.any())
        lawn.append(info["coverage"][0])
        venv.reset(seed=seed)
        done = False
        while not done:
            *_, term, trunc, info = venv.step(random_walk_actions(venv.cfg, rng, (1, 4)))
            done = bool(term.any() or trunc.any())
        walk.append(info["coverage"][0])
    assert min(lawn) >= 0.85 and max(walk) <= 0.5, (lawn, walk)


# -- learning ------------------------------------------------------------------------------------
SMALL_HETERO = dict(num_drones=2, width=8, height=8, cell_size=0.25, footprint=3, patch_size=5,
                    summary_size=2, max_steps=30, speed_factors=[1.5, 0.5], footprints=[1, 5])


def small_hetero_coverage(algo: str, seed: int, **env) -> float:
    """Deterministic coverage on 32 seeded episodes of the small heterogeneous task (a fast
    narrow drone and a slow wide one) after 100k env steps of the algorithm's coverage recipe."""
    import policies
    from policies.evaluation import evaluate

    params = {**SMALL_HETERO, **env}
    policy = policies.train(algo, "coverage", 100_000, seed=seed, config={
        "env": params, "trainer": {"progress": False, "tensorboard": False}})
    return evaluate(policy, "coverage", episodes=32, seed=7, **params)["coverage"]


@pytest.mark.slow  # six short trainings, ~80 s
def test_separate_actors_beat_a_shared_actor_that_cannot_tell_the_drones_apart():
    """HAPPO's separate actors (seeds 0-2) cover the small heterogeneous task clearly better
    than MAPPO's shared actor without the own profile (README: measured 0.864 vs 0.582 mean,
    every HAPPO seed above every MAPPO seed), and far above the random walk (0.480)."""
    from policies.evaluation import evaluate_random_walk

    happo = [small_hetero_coverage("happo", seed) for seed in (0, 1, 2)]
    shared = [small_hetero_coverage("mappo", seed, own_profile=False) for seed in (0, 1, 2)]
    walk = evaluate_random_walk("coverage", episodes=32, seed=7, **SMALL_HETERO)["coverage"]
    assert np.mean(happo) > np.mean(shared) + 0.1, (happo, shared)
    assert np.mean(happo) > walk + 0.2, (happo, walk)
