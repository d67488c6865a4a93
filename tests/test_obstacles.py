"""Coverage with obstacles: the config, the per-episode placement (rules, randomisation,
reproducible from a seed), the analytic ray cast against hand-computed geometry and against
PyBullet's rayTestBatch, the LaserScan conversion, collision counting and its penalty, the
observation, both backends flying the same dynamics, the scripted baselines and the PettingZoo
API; without obstacles everything is as before (the shipped coverage bundle still loads)."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from pettingzoo.test import parallel_api_test

import sim
from sim import obs as O
from sim import obstacles as G
from sim.config import ConfigError, make_config
from sim.scripted import evaluate_coverage_baseline

ZOO = Path(__file__).resolve().parents[1] / "policies" / "zoo"
OBSTACLES = dict(obstacles=4, range_rays=8)


def place(venv, positions, env=0):
    """Teleport the drones of one env (at rest) to `positions` (N, 3)."""
    positions = np.asarray(positions, dtype=np.float64)
    venv.dynamics.reset(np.array([env]), positions[None], np.zeros((1, len(positions))))
    venv._pos[env] = venv.dynamics.state()[env, :, :3]


def set_layout(venv, centres, half_sizes, boxes, env=0):
    """Give one env of a vector env this obstacle layout (both backends)."""
    scen = venv.scenario
    scen.centres[env], scen.half_sizes[env], scen.boxes[env] = centres, half_sizes, boxes
    if venv.backend == "pybullet":
        venv.dynamics.set_obstacles(np.array([env]), np.asarray(centres)[None],
                                    np.asarray(half_sizes)[None], np.asarray(boxes)[None])


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    (dict(obstacles=-1), "obstacles must be an integer count >= 0"),
    (dict(obstacles=1.5), "obstacles must be an integer count >= 0"),
    (dict(obstacle_shape="cone"), "obstacle_shape must be one of cylinder, box, mixed"),
    (dict(obstacle_size_min=0.0), "obstacle_size_min must be a finite number of metres > 0"),
    (dict(obstacle_size_min=0.25, obstacle_size_max=0.2), "obstacle_size_min=0.25 is larger than"),
    (dict(obstacles=2, obstacle_size_max=0.3), "obstacle_size_max=0.3 m would hide whole cells"),
    (dict(obstacles=20), "20 obstacles of up to 0.5 m"),
    (dict(obstacle_penalty=-1.0), "obstacle_penalty must be a finite number >= 0"),
    (dict(range_rays=-1), "range_rays must be an integer count of rays >= 0"),
    (dict(range_max=float("inf")), "range_max must be a finite number of metres > 0"),
])
def test_bad_configuration_is_one_sentence_naming_the_parameter(params, message):
    with pytest.raises(ConfigError, match=message) as err:
        make_config("coverage", **params)
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")


def test_without_obstacles_and_rays_everything_is_as_before():
    plain = make_config("coverage")
    shipped = yaml.safe_load((ZOO / "coverage_4" / "policy.yaml").read_text())
    assert O.observation_hash(plain) == shipped["observation"]["hash"]
    assert [list(f) for f in O.observation_layout(plain)] == shipped["observation"]["layout"]
    # obstacles alone are sim-only (they vary per episode); the rays change the observation
    assert O.observation_hash(make_config("coverage", obstacles=4)) == O.observation_hash(plain)
    with_rays = make_config("coverage", range_rays=8)
    assert O.observation_hash(with_rays) != O.observation_hash(plain)
    assert O.observation_layout(with_rays)[-1] == ("ranges", 8)
    assert O.observation_hash(make_config("coverage", range_rays=8, range_max=2.0)) != \
        O.observation_hash(with_rays)
    from marl_ros.runtime import BundleError, OnnxPolicy

    OnnxPolicy.load(ZOO / "coverage_4", config=make_config("coverage", obstacles=4))
    with pytest.raises(BundleError, match="range_rays"):
        OnnxPolicy.load(ZOO / "coverage_4", config=with_rays)
    # and the env: no obstacle metric, the same observation and state sizes
    venv = sim.make_vec_env("coverage", 2, seed=0)
    obs, metrics = venv.reset(seed=0)
    assert set(metrics) == {"coverage"} and obs.shape[-1] == 133
    assert venv.state().shape[-1] == 4 * 6 + 400 + 1


# -- placement ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["cylinder", "box", "mixed"])
def test_placement_keeps_the_rules(shape):
    cfg = make_config("coverage", obstacles=6, obstacle_shape=shape, num_drones=6)
    rng = np.random.default_rng(3)
    starts = sim.scenarios.start_positions(cfg, rng, 200)
    centres, half, boxes = G.draw_obstacles(cfg, rng, starts)
    assert centres.shape == (200, 6, 2) and half.shape == (200, 6, 2) and boxes.shape == (200, 6)
    clear = cfg.obstacle_clearance
    fx, fy = cfg.field_size
    # sizes in range, on the 1 cm grid; a cylinder has one radius
    assert (half >= cfg.obstacle_size_min - 1e-9).all() and (half <= cfg.obstacle_size_max + 1e-9).all()
    assert np.allclose(np.round((half - cfg.obstacle_size_min) / G.SIZE_STEP),
                       (half - cfg.obstacle_size_min) / G.SIZE_STEP)
    assert (half[..., 0] == half[..., 1])[~boxes].all()
    assert {"cylinder": (~boxes).all(), "box": boxes.all(),
            "mixed": 0.3 < boxes.mean() < 0.7}[shape]
    # inside the field with the clearance to its edge
    low, high = centres - half, centres + half
    assert (low >= clear - 1e-9).all() and (high[..., 0] <= fx - clear + 1e-9).all()
    assert (high[..., 1] <= fy - clear + 1e-9).all()
    # clear of every drone's start
    assert (G.obstacle_clearances(starts, centres, half, boxes) >= clear - 1e-9).all()
    # no two obstacles overlap (bounding circles at least the clearance apart)
    radius = np.hypot(half[..., 0], half[..., 1])
    gaps = (np.linalg.norm(centres[:, :, None] - centres[:, None], axis=-1)
            - radius[:, :, None] - radius[:, None])
    gaps[:, np.arange(6), np.arange(6)] = np.inf
    assert gaps.min() >= clear - 1e-9


def test_layouts_are_drawn_per_episode_and_reproducible_from_the_seed():
    cfg = make_config("coverage", **OBSTACLES)
    venv = sim.make_vec_env("coverage", 4, seed=0, **OBSTACLES)
    venv.reset(seed=5)
    first = venv.scenario.centres.copy()
    assert len({tuple(np.round(c.ravel(), 6)) for c in first}) == 4  # each env its own
    for _ in range(cfg.max_steps):  # the episodes end together; autoreset draws new layouts
        venv.step(np.zeros((4, 4, 4)))
    assert not np.isclose(venv.scenario.centres, first).all(axis=(1, 2)).any()
    venv.reset(seed=5)
    assert np.array_equal(venv.scenario.centres, first)
    # the simulator node's redraw: one env reset with the seed (starts first, then obstacles)
    for seed in (0, 1, 42):
        one = sim.make_vec_env("coverage", 1, seed=0, **OBSTACLES)
        one.reset(seed=seed)
        starts, centres, half, boxes = G.obstacles_for_seed(cfg, seed)
        assert np.allclose(starts, one.positions[0])
        assert np.array_equal(centres, one.scenario.centres[0])
        assert np.array_equal(half, one.scenario.half_sizes[0])
        assert np.array_equal(boxes, one.scenario.boxes[0])


def test_every_cell_stays_coverable_from_a_collision_free_spot():
    """Largest boxes the config allows (the worst shape): sample spots on a 1 cm grid, keep
    those clear of every obstacle by the drone radius and inside the field, and check that
    their footprints reach every cell."""
    cfg = make_config("coverage", obstacles=6, obstacle_shape="box", obstacle_size_min=0.26,
                      obstacle_size_max=0.26)
    rng = np.random.default_rng(0)
    starts = sim.scenarios.start_positions(cfg, rng, 40)
    centres, half, boxes = G.draw_obstacles(cfg, rng, starts)
    step = 0.01
    per_cell = round(cfg.cell_size / step)
    axis = (np.arange(cfg.width * per_cell) + 0.5) * step
    grid = np.stack(np.meshgrid(axis, axis, indexing="xy"), axis=-1).reshape(-1, 2)
    r = cfg.footprint // 2
    for e in range(len(centres)):
        free = (G.obstacle_clearances(grid, centres[e], half[e], boxes[e]) >= cfg.drone_radius).all(-1)
        free = free.reshape(cfg.height, per_cell, cfg.width, per_cell).any(axis=(1, 3))
        reach = np.zeros_like(free)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                shifted = np.zeros_like(free)
                ys = slice(max(dy, 0), cfg.height + min(dy, 0))
                yd = slice(max(-dy, 0), cfg.height + min(-dy, 0))
                xs = slice(max(dx, 0), cfg.width + min(dx, 0))
                xd = slice(max(-dx, 0), cfg.width + min(-dx, 0))
                shifted[yd, xd] = free[ys, xs]
                reach |= shifted
        assert reach.all(), f"layout {e} hides cells {np.argwhere(~reach)[:3].tolist()}"
        assert not free.all()  # the obstacles do block spots: the check has teeth


# -- ray cast ----------------------------------------------------------------------------------
def test_ray_cast_matches_hand_computed_geometry():
    angles = G.ray_angles(8)
    assert np.allclose(angles, np.arange(8) * np.pi / 4)
    origin = np.zeros((1, 2))
    # a cylinder of radius 0.5 at (2, 0): ray 0 (east) meets it at 1.5 m, the others miss
    read = G.range_readings(origin, [[2.0, 0.0]], [[0.5, 0.5]], [False], 8, 3.0)
    assert read.shape == (1, 8)
    assert read[0, 0] == pytest.approx(1.5) and (read[0, 1:] == 3.0).all()
    # a ray grazing past: ray 1 (north-east) passes the circle at 2 sin(45 deg) = 1.41 m > 0.5
    # a box with half sides (0.5, 0.25) at (0, 2): ray 2 (north) meets its face at 1.75 m
    read = G.range_readings(origin, [[0.0, 2.0]], [[0.5, 0.25]], [True], 8, 3.0)
    assert read[0, 2] == pytest.approx(1.75) and (np.delete(read[0], 2) == 3.0).all()
    # a box at (2, 2), half side 0.5: ray 1 meets its corner (1.5, 1.5) at 1.5 sqrt 2 m
    read = G.range_readings(origin, [[2.0, 2.0]], [[0.5, 0.5]], [True], 8, 3.0)
    assert read[0, 1] == pytest.approx(1.5 * np.sqrt(2)) and read[0, 0] == 3.0
    # beyond range_max: nothing (range_max); inside an obstacle: 0
    assert (G.range_readings(origin, [[2.0, 0.0]], [[0.5, 0.5]], [False], 8, 1.0) == 1.0).all()
    assert (G.range_readings([[2.1, 0.1]], [[2.0, 0.0]], [[0.5, 0.5]], [False], 8, 3.0) == 0).all()
    assert (G.range_readings([[2.1, 0.1]], [[2.0, 0.0]], [[0.5, 0.5]], [True], 8, 3.0) == 0).all()
    # the nearest of several; batched over envs and drones
    centres = np.array([[[2.0, 0.0], [1.0, 0.0]]] * 3)  # (E=3, O=2, 2)
    half = np.array([[[0.5, 0.5], [0.2, 0.2]]] * 3)
    read = G.range_readings(np.zeros((3, 4, 3)), centres, half, np.zeros((3, 2), bool), 8, 3.0)
    assert read.shape == (3, 4, 8) and np.allclose(read[..., 0], 0.8)


def test_pybullet_rays_agree_with_the_analytic_cast():
    """rayTestBatch from every drone of three PyBullet worlds on random layouts against the
    analytic cast, within 5 mm, except rays grazing an edge (whose reading jumps when the
    obstacles grow or shrink by 5 mm: PyBullet's cylinder is a few mm wide of the exact one)."""
    params = dict(obstacles=6, range_rays=16, range_max=3.0, num_drones=4)
    venv = sim.make_vec_env("coverage", 3, backend="pybullet", seed=0, **params)
    venv.reset(seed=5)
    rng = np.random.default_rng(0)
    scen = venv.scenario
    compared, hits = 0, 0
    try:
        for _ in range(24):
            venv.step(np.concatenate([rng.uniform(-1, 1, (3, 4, 2)), np.zeros((3, 4, 2))], -1))
            bullet = venv.range_readings()
            exact = G.range_readings(venv.positions, scen.centres, scen.half_sizes, scen.boxes, 16, 3.0)
            grow = G.range_readings(venv.positions, scen.centres, scen.half_sizes + 0.005,
                                    scen.boxes, 16, 3.0)
            shrink = G.range_readings(venv.positions, scen.centres, scen.half_sizes - 0.005,
                                      scen.boxes, 16, 3.0)
            steady = (shrink - grow) < 0.02
            assert np.abs(bullet - exact)[steady].max() < 0.005
            compared += steady.sum()
            hits += (exact[steady] < 3.0).sum()
    finally:
        venv.close()
    assert compared > 0.95 * 24 * 3 * 4 * 16 and hits > 100


def test_laserscan_readings_resample_a_scan_to_the_bundle_rays():
    cfg = make_config("coverage", **OBSTACLES)
    centres, half, boxes = G.obstacles_for_seed(cfg, 3)[1:]
    rng = np.random.default_rng(1)
    points = rng.uniform(0.3, 4.7, (20, 2))
    points = points[(G.obstacle_clearances(points, centres, half, boxes) > 0.2).all(-1)]
    beams = 720
    inc = 2 * np.pi / beams
    for p in points:
        want = G.range_readings(p[None], centres, half, boxes, 8, cfg.range_max)[0]
        scan = G.range_readings(p[None], centres, half, boxes, beams, 4.0)[0]  # world beams
        scan[scan >= 4.0] = np.inf  # a sensor reports nothing in range as inf
        # sensor frame: beams from -pi; the drone's heading rotates them (yaw = pi + 5 beams)
        yaw = np.pi + 5 * inc
        sensor = np.roll(scan, -5)  # beam i looks at world angle yaw - pi + i inc
        got = G.laserscan_readings(sensor, -np.pi, inc, 4.0, yaw, 8, cfg.range_max)
        assert np.allclose(got, want)
        # a clockwise scan of the same beams
        back = G.laserscan_readings(sensor[::-1], -np.pi + (beams - 1) * inc, -inc, 4.0, yaw, 8,
                                    cfg.range_max)
        assert np.allclose(back, want)
    # invalid beams are nothing in range; a half scan sees nothing behind it
    assert (G.laserscan_readings([np.nan, np.inf, 9.0, 0.01], 0.0, np.pi / 2, 5.0, 0.0, 4, 1.5,
                                 scan_range_min=0.05) == 1.5).all()
    half_scan = G.laserscan_readings(np.full(181, 0.7), -np.pi / 2, np.pi / 180, 5.0, 0.0, 8, 1.5)
    assert np.allclose(half_scan, [0.7, 0.7, 0.7, 1.5, 1.5, 1.5, 0.7, 0.7])
    # the observation takes the readings in metres, normalised, inf as nothing
    feats = O.range_features(np.array([0.75, np.inf, 3.0, 0.0, np.nan, 1.5, 0.3, 1.2]), (), cfg)
    assert np.allclose(feats, [0.5, 1.0, 1.0, 0.0, 1.0, 1.0, 0.2, 0.8])


# -- the environment ---------------------------------------------------------------------------
def test_observation_ends_with_the_normalised_readings_and_needs_them():
    cfg = make_config("coverage", **OBSTACLES)
    venv = sim.make_vec_env("coverage", 2, seed=0, **OBSTACLES)
    obs, _ = venv.reset(seed=1)
    scen = venv.scenario
    assert obs.shape[-1] == 133 + 8
    want = G.range_readings(venv.positions, scen.centres, scen.half_sizes, scen.boxes, 8, 1.5)
    assert np.allclose(obs[..., -8:], want / 1.5)
    with pytest.raises(ValueError, match="observes 8 range readings; pass ranges"):
        O.build_observation(cfg, np.zeros(3), np.zeros(3), np.zeros((0, 3)), np.zeros((0, 3)),
                            belief=O.new_belief(cfg))


@pytest.mark.parametrize("backend", ["fast", "pybullet"])
def test_obstacle_collisions_are_counted_and_penalised(backend):
    """Three drones parked: one on an obstacle's centre, one just inside the drone radius of
    its surface, one just outside; every step counts two drone-ticks and pays 2 x penalty."""
    params = dict(obstacles=1, obstacle_shape="cylinder", range_rays=8, max_steps=5)
    runs = {}
    for penalty in (0.0, 0.05):
        venv = sim.make_vec_env("coverage", 1, backend=backend, seed=0, obstacle_penalty=penalty,
                                **params)
        venv.reset(seed=0)
        cfg = venv.cfg
        set_layout(venv, [[2.5, 2.5]], [[0.2, 0.2]], [False])
        r = 0.2 + cfg.drone_radius
        place(venv, [[2.5, 2.5, 1.0], [2.5 + r - 0.03, 2.5, 1.0], [2.5 - r - 0.03, 2.5, 1.0],
                     [0.5, 0.5, 1.0]])
        if backend == "pybullet":  # the rays see the obstacle: the parked drone beside it
            assert venv.range_readings()[0, 2, 0] == pytest.approx(0.03 + cfg.drone_radius, abs=0.005)
        rewards, counts = [], []
        for _ in range(cfg.max_steps):
            _, rew, _, _, infos = venv.step(np.zeros((1, 4, 4)))
            rewards.append(rew[0, 0])
            counts.append(infos["obstacle_collisions"][0])
        runs[penalty] = np.array(rewards)
        assert counts == [2.0 * (k + 1) for k in range(cfg.max_steps)]
        assert infos["episode_return"][0] == pytest.approx(runs[penalty].sum(), abs=1e-5)
        venv.close()
    assert np.allclose(runs[0.0] - runs[0.05], 2 * 0.05, atol=1e-6)


def test_agent_rewards_split_the_obstacle_penalty_to_the_drone_that_hit():
    venv = sim.make_vec_env("coverage", 1, seed=0, obstacles=1, obstacle_shape="box",
                            agent_rewards=True)
    venv.reset(seed=0)
    set_layout(venv, [[2.5, 2.5]], [[0.2, 0.2]], [True])
    place(venv, [[2.5, 2.5, 1.0], [0.5, 0.5, 1.0], [4.5, 0.5, 1.0], [0.5, 4.5, 1.0]])
    _, rew, _, _, infos = venv.step(np.zeros((1, 4, 4)))
    assert rew[0].mean() == pytest.approx(infos["team_reward"][0], abs=1e-6)
    assert rew[0, 0] < rew[0, 1:].min() - 4 * 0.05 + 1e-6


def test_both_backends_fly_through_obstacles_as_without_them():
    """Collisions with obstacles are scored, not simulated: in PyBullet a drone flown through
    an obstacle body keeps the trajectory it flies without one."""
    tracks = {}
    for count in (0, 1):
        venv = sim.make_vec_env("coverage", 1, backend="pybullet", seed=0, obstacles=count,
                                obstacle_shape="box")
        venv.reset(seed=0)
        if count:
            set_layout(venv, [[2.5, 2.5]], [[0.25, 0.25]], [True])
        place(venv, [[1.5, 2.5, 1.0], [0.5, 0.5, 1.0], [4.5, 0.5, 1.0], [0.5, 4.5, 1.0]])
        path = []
        for _ in range(12):
            venv.step(np.tile([[0.8, 0.0, 0.0, 0.0]], (1, 4, 1)))
            path.append(venv.positions[0, 0])
        tracks[count] = np.array(path)
        venv.close()
    assert tracks[0][-1, 0] > 3.0  # it flew across the obstacle's place
    assert np.allclose(tracks[0], tracks[1], atol=1e-9)


@pytest.mark.parametrize("backend", ["fast", "pybullet"])
def test_pettingzoo_api_with_obstacles(backend):
    env = sim.make_env("coverage", backend=backend, seed=0, max_steps=30, **OBSTACLES)
    parallel_api_test(env, num_cycles=40)
    obs, infos = env.reset(seed=2)
    assert obs["drone_0"].shape == (141,)
    assert infos["drone_0"]["obstacle_collisions"] == 0.0
    _, _, _, _, infos = env.step({a: np.zeros(4, np.float32) for a in env.agents})
    assert "obstacle_collisions" in infos["drone_0"]
    env.close()


def test_scripted_baselines_report_obstacle_collisions():
    figures = {c: evaluate_coverage_baseline(c, episodes=4, backend="fast", seed=0, **OBSTACLES)
               for c in ("lawnmower", "random")}
    for f in figures.values():
        assert {"coverage", "obstacle_collisions", "episode_return"} <= set(f)
    assert figures["lawnmower"]["coverage"] > figures["random"]["coverage"] + 0.3
    with pytest.raises(ValueError, match="controller must be one of lawnmower, random"):
        evaluate_coverage_baseline("boids", episodes=1, backend="fast")


def test_render_and_coverage_png_draw_the_obstacles(tmp_path):
    from sim.render import save_coverage_png

    env = sim.make_env("coverage", backend="fast", seed=0, render_mode="rgb_array", **OBSTACLES)
    env.reset(seed=0)
    centres, half, boxes = env.obstacles
    assert centres.shape == (4, 2)
    img = env.render()
    scale = img.shape[1] / env.cfg.field_size[0]
    for (cx, cy) in centres:  # each obstacle's centre pixel is grey
        assert tuple(img[int(img.shape[0] - 1 - cy * scale), int(cx * scale)]) == (120, 120, 120)
    path = save_coverage_png(tmp_path / "c.png", env.cfg, env.covered_map, env.trajectories, "t",
                             obstacles=env.obstacles)
    assert path.stat().st_size > 1000
    env.close()


def test_the_shipped_obstacle_bundle_covers_more_and_collides_less_than_the_random_walk():
    from marl_ros.runtime import OnnxPolicy
    from policies.evaluation import run_episodes

    bundle = ZOO / "coverage_obstacles_4"
    meta = yaml.safe_load((bundle / "policy.yaml").read_text())
    assert [list(f) for f in meta["observation"]["layout"]][-1] == ["ranges", 8]
    venv = sim.make_vec_env("coverage", 8, backend="fast", seed=3, **OBSTACLES)
    policy = OnnxPolicy.load(bundle, config=venv.cfg)

    def act(obs):
        flat = policy.run(obs.reshape(-1, obs.shape[-1]), "drone_0")["action"]
        return np.clip(flat, -1.0, 1.0).reshape(obs.shape[:2] + (4,))

    learned = run_episodes(venv, act, seed=3)
    walk = evaluate_coverage_baseline("random", episodes=8, backend="fast", seed=3, **OBSTACLES)
    assert learned["coverage"] > walk["coverage"] + 0.1  # seeds 3-5: +0.14 to +0.31
    assert learned["obstacle_collisions"] < walk["obstacle_collisions"] / 4
