"""Scenarios through both APIs: PettingZoo conformance, batched arrays, rewards, bad input."""

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import sim
from sim import obs as O
from sim.config import ConfigError
from sim.render import COLOURS, PIXELS
from sim.scripted import LawnmowerPilot, random_walk_actions


@pytest.mark.parametrize("scenario", ["coverage", "spread"])
@pytest.mark.parametrize("action_mode", ["continuous", "discrete"])
def test_parallel_api_conformance(scenario, action_mode):
    env = sim.make_env(scenario, backend="fast", action_mode=action_mode, max_steps=20)
    parallel_api_test(env, num_cycles=60)


def test_pybullet_env_passes_parallel_api_test():
    env = sim.make_env("coverage", backend="pybullet", num_drones=2, max_steps=10)
    parallel_api_test(env, num_cycles=20)
    env.close()


def test_reset_is_reproducible_and_spaces_are_stable():
    env = sim.make_env("coverage", backend="fast")
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    c, _ = env.reset(seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert env.observation_space("drone_0") is env.observation_space("drone_0")
    assert env.state().shape == env.state_space.shape


def test_render_draws_drones_where_they_are_and_covered_cells_light():
    env = sim.make_env("coverage", backend="fast")
    env.reset(seed=0)
    cfg = env.cfg
    fx, fy = cfg.field_size
    scale = PIXELS / max(fx, fy)

    def pixel(img: np.ndarray, x: float, y: float) -> np.ndarray:
        """North up, east right: x to the column, y up the rows from the bottom."""
        return img[int(round(img.shape[0] - 1 - y * scale)), int(round(x * scale))]

    before = env.render()
    assert before.dtype == np.uint8 and before.shape == (PIXELS, PIXELS, 3)  # 5 m x 5 m field
    start = env.positions
    for i, (x, y, _) in enumerate(start):
        np.testing.assert_array_equal(pixel(before, x, y), COLOURS[i], f"drone_{i}")

    # Away from the drones, every covered cell is drawn in one light colour and every
    # uncovered cell in one dark colour.
    covered = O.belief_interior(env.covered_map, cfg) == O.COVERED
    colours = {True: set(), False: set()}
    for iy in range(cfg.height):
        for ix in range(cfg.width):
            x, y = (ix + 0.5) * cfg.cell_size, (iy + 0.5) * cfg.cell_size
            if np.linalg.norm(start[:, :2] - [x, y], axis=1).min() > 0.2:
                colours[bool(covered[iy, ix])].add(tuple(pixel(before, x, y).tolist()))
    assert len(colours[True]) == len(colours[False]) == 1, colours
    light, dark = np.array(colours[True].pop()), np.array(colours[False].pop())
    assert light.sum() > dark.sum() + 300

    # Teleport drone 0 to the north-west, over cells nobody has covered, and hold a tick.
    target = np.array([1.0, 4.0])
    assert not covered[int(target[1] / cfg.cell_size), int(target[0] / cfg.cell_size)]
    moved = start.copy()
    moved[0, :2] = target
    env._vec.dynamics.reset(np.array([0]), moved[None], np.zeros((1, cfg.num_drones)))
    env.step({a: np.zeros(4, np.float32) for a in env.agents})
    after = env.render()
    x0, y0 = env.positions[0, :2]
    np.testing.assert_allclose([x0, y0], target, atol=0.02)
    np.testing.assert_array_equal(pixel(before, x0, y0), dark)
    np.testing.assert_array_equal(pixel(after, x0, y0), COLOURS[0])
    row, col = np.median(np.argwhere((after == COLOURS[0]).all(axis=-1)), axis=0)
    assert row < PIXELS / 4 and col < PIXELS / 4  # north-west is the top-left of the picture
    # Its new footprint is covered now (light, a cell away from the disc); where it was, the
    # disc is gone (4 px north of the old centre, off the trail pixel) and the cells stay light.
    np.testing.assert_array_equal(pixel(before, x0 + cfg.cell_size, y0), dark)
    np.testing.assert_array_equal(pixel(after, x0 + cfg.cell_size, y0), light)
    old_x, old_y = start[0, :2]
    np.testing.assert_array_equal(pixel(before, old_x, old_y + 4 / scale), COLOURS[0])
    np.testing.assert_array_equal(pixel(after, old_x, old_y + 4 / scale), light)
    for i in range(1, cfg.num_drones):  # the others did not move
        np.testing.assert_array_equal(pixel(after, *start[i, :2]), COLOURS[i], f"drone_{i}")


def footprint_cells(cfg, positions: np.ndarray) -> set[tuple[int, int]]:
    """Field cells (column, row) under the drones' footprints: what a fresh episode covers."""
    r = cfg.footprint // 2
    cells = set()
    for x, y, _ in positions:
        ix, iy = int(x // cfg.cell_size), int(y // cfg.cell_size)
        cells |= {(ix + dx, iy + dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1)
                  if 0 <= ix + dx < cfg.width and 0 <= iy + dy < cfg.height}
    return cells


def test_vec_env_shapes_and_autoreset():
    # No penalties: the episode return is then exactly the coverage gained.
    kwargs = dict(backend="fast", seed=0, max_steps=5, collision_penalty=0.0,
                  geofence_penalty=0.0)
    venv = sim.make_vec_env("coverage", 3, **kwargs)
    obs, start_info = venv.reset(seed=0)
    assert obs.shape == (3, 4, O.observation_size(venv.cfg)) and obs.dtype == np.float32
    assert venv.state().shape == (3, venv.state_space.shape[0])
    rng = np.random.default_rng(0)
    coverage = []
    for _ in range(5):
        obs, rew, term, trunc, info = venv.step(random_walk_actions(venv.cfg, rng, (3, 4)))
        assert rew.shape == (3, 4) and term.shape == trunc.shape == (3, 4)
        coverage.append(info["coverage"])
    assert trunc.all() and info["done"].all()
    assert info["episode_length"].tolist() == [5, 5, 5]
    np.testing.assert_allclose(info["final_obs"].shape, obs.shape)

    # info reports the finished episode: its final coverage, the start plus what it gained.
    np.testing.assert_allclose(info["coverage"], start_info["coverage"] + info["episode_return"])
    assert (info["coverage"] >= coverage[-2]).all()
    assert (info["coverage"] > start_info["coverage"]).all()  # the random walk covered cells
    assert not np.array_equal(info["final_obs"], obs)

    # The env itself has started the next episode: time 0, coverage back to the start
    # footprints only, below the final coverage.
    assert (venv.t == 0).all()
    start_count = [len(footprint_cells(venv.cfg, p)) for p in venv.positions]
    assert venv.scenario.covered_count.tolist() == start_count
    assert (venv.scenario.covered_count / venv.scenario.cells < info["coverage"]).all()
    # ... exactly as reset() starts it: the same start positions (the next draw of the seeded
    # stream), observations, global state and coverage.
    fresh = sim.make_vec_env("coverage", 3, **kwargs)
    fresh.reset(seed=0)
    fresh_obs, fresh_info = fresh.reset()
    np.testing.assert_array_equal(venv.positions, fresh.positions)
    np.testing.assert_array_equal(obs, fresh_obs)
    np.testing.assert_array_equal(venv.state(), fresh.state())
    np.testing.assert_array_equal(venv.scenario.covered_count / venv.scenario.cells,
                                  fresh_info["coverage"])


def test_coverage_reward_counts_newly_covered_cells():
    venv = sim.make_vec_env("coverage", 1, backend="fast", seed=1, collision_penalty=0.0,
                            geofence_penalty=0.0)
    venv.reset(seed=1)
    cells = venv.cfg.width * venv.cfg.height
    for _ in range(4):
        before = venv.scenario.covered_count.copy()
        _, rew, *_ = venv.step(np.tile([[1.0, 0.0, 0.0, 0.0]], (1, 4, 1)))
        after = venv.scenario.covered_count
        assert rew[0, 0] == pytest.approx((after[0] - before[0]) / cells)
        assert (rew[0] == rew[0, 0]).all()  # team reward
    assert after[0] > before[0]  # flying east at full speed reaches new cells


def test_episode_ends_at_full_coverage():
    venv = sim.make_vec_env("coverage", 1, backend="fast", seed=0, autoreset=False, width=4,
                            height=4, cell_size=0.5, num_drones=1, footprint=3, patch_size=3,
                            summary_size=2, max_steps=200)
    venv.reset(seed=0)
    pilot = LawnmowerPilot(venv.cfg, venv.positions[0])
    for _ in range(200):
        *_, term, trunc, info = venv.step(pilot.actions(venv.positions[0])[None])
        if info["done"][0]:
            break
    assert term[0].all() and info["coverage"][0] == 1.0


def test_near_collisions_and_geofence_are_penalised():
    venv = sim.make_vec_env("coverage", 1, backend="fast", seed=0, num_drones=2,
                            collision_penalty=1.0)
    venv.reset(seed=0)
    venv.step(np.zeros((1, 2, 4)))
    # Force the two drones together, then outside the field, and read the penalties.
    pos = np.array([[[2.0, 2.0, 1.0], [2.1, 2.0, 1.0]]])
    venv.dynamics.reset(np.array([0]), pos, np.zeros((1, 2)))
    _, rew, *_, info = venv.step(np.zeros((1, 2, 4)))
    assert info["collisions"][0] == 1
    venv.dynamics.reset(np.array([0]), pos + [[[10.0, 0, 0], [-10.0, 0, 0]]], np.zeros((1, 2)))
    _, rew2, *_, info = venv.step(np.zeros((1, 2, 4)))
    assert info["geofence_violations"][0] == 2
    assert rew[0, 0] < 0 and rew2[0, 0] == pytest.approx(-2 * venv.cfg.geofence_penalty)


@pytest.mark.parametrize("agent_rewards", [False, True])
def test_command_change_penalty_charges_each_drones_change_of_command(agent_rewards):
    params = dict(num_drones=2, command_change_penalty=0.5, agent_rewards=agent_rewards)
    venv = sim.make_vec_env("spread", 2, backend="fast", seed=0, **params)
    plain = sim.make_vec_env("spread", 2, backend="fast", seed=0, num_drones=2,
                             agent_rewards=agent_rewards)
    venv.reset(seed=0)
    plain.reset(seed=0)
    up = np.zeros((2, 2, 4))
    up[0, 0, 2] = 1.0  # env 0: drone 0 climbs at full vz, from hovering: a change of 1
    down = -up  # then reverses: a change of 2 on one axis, squared 4
    expected = {0: [[1.0, 0.0], [0.0, 0.0]], 1: [[4.0, 0.0], [0.0, 0.0]],
                2: [[0.0, 0.0], [0.0, 0.0]]}  # holding a command costs nothing
    for k, actions in enumerate((up, down, down)):
        _, rew, *_, info = venv.step(actions)
        _, base, *_, base_info = plain.step(actions)
        change = np.array(expected[k])
        np.testing.assert_allclose(info["team_reward"], base_info["team_reward"]
                                   - 0.5 * change.mean(axis=1), atol=1e-5)
        if agent_rewards:  # the drone that changed its command pays, the other not
            np.testing.assert_allclose(rew, base - 0.5 * change, atol=1e-5)
    with pytest.raises(ConfigError, match="command_change_penalty must be a finite number >= 0"):
        sim.make_vec_env("spread", 1, command_change_penalty=-1.0)
    with pytest.raises(ConfigError, match="command_change_penalty must be 0 for pursuit"):
        sim.make_vec_env("pursuit", 1, command_change_penalty=0.1)


def test_spread_reward_is_negative_distance_to_landmarks():
    venv = sim.make_vec_env("spread", 1, backend="fast", seed=0, collision_penalty=0.0,
                            geofence_penalty=0.0)
    venv.reset(seed=0)
    _, rew, *_ = venv.step(np.zeros((1, 4, 4)))
    lm, pos = venv.scenario.landmarks[0], venv.positions[0]
    expected = -np.linalg.norm(lm[:, None] - pos[None], axis=-1).min(axis=1).sum()
    assert rew[0, 0] == pytest.approx(expected, rel=1e-5)


def test_bad_actions_give_one_clear_error():
    env = sim.make_env("coverage", backend="fast")
    env.reset(seed=0)
    good = {a: np.zeros(4, np.float32) for a in env.agents}
    with pytest.raises(ValueError, match="no action for agent drone_3"):
        env.step({a: v for a, v in good.items() if a != "drone_3"})
    with pytest.raises(ValueError, match="unknown agent 'drone_9'"):
        env.step({**good, "drone_9": np.zeros(4)})
    with pytest.raises(ValueError, match="drone_1 .* is not finite"):
        env.step({**good, "drone_1": np.array([np.nan, 0, 0, 0])})
    denv = sim.make_env("coverage", backend="fast", action_mode="discrete")
    denv.reset(seed=0)
    with pytest.raises(ValueError, match="out of range; valid actions are 0..10"):
        denv.step({a: 11 for a in denv.agents})


def test_bad_configuration_names_the_parameter():
    with pytest.raises(ConfigError, match="unknown backend 'mujoco'; choose one of: fast, pybullet"):
        sim.make_env("coverage", backend="mujoco")
    with pytest.raises(ConfigError, match="unknown scenario 'swarmball'"):
        sim.make_vec_env("swarmball", 2)
    with pytest.raises(ConfigError, match="num_drones must be an integer >= 1"):
        sim.make_env("spread", num_drones=0)
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        sim.make_vec_env("coverage", 0)


def test_random_walk_covers_less_than_lawnmower():
    """The scripted baseline is a meaningful bar: it beats random actions by a wide margin."""
    venv = sim.make_vec_env("coverage", 16, backend="fast", seed=0, autoreset=False)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(venv.cfg.max_steps):
        *_, info = venv.step(random_walk_actions(venv.cfg, rng, (16, 4)))
    random_cov = info["coverage"].mean()
    covs = []
    for seed in range(4):
        env = sim.make_vec_env("coverage", 1, backend="fast", seed=seed, autoreset=False)
        env.reset(seed=seed)
        pilot = LawnmowerPilot(env.cfg, env.positions[0])
        for _ in range(env.cfg.max_steps):
            *_, info = env.step(pilot.actions(env.positions[0])[None])
            if info["done"][0]:
                break
        covs.append(info["coverage"][0])
    assert np.mean(covs) > 0.95
    assert np.mean(covs) > random_cov + 0.2
