"""The sim-to-real readiness report: each sweep changes what it claims, and nothing else.

The faults are checked on the observations the policy is fed in the report's own loop
(`fly_episode`'s observer) against the true states of the env, with the shipped bundle.
"""

import json

import numpy as np
import pytest

import sim
from marl_ros import robustness as R
from marl_ros.cli import main
from marl_ros.runtime import SHIPPED_BUNDLE
from sim import obs as O
from sim.config import config_from_dict

STEPS = 16  # policy ticks per test episode


@pytest.fixture(scope="module")
def plan():
    """Every sweep at two values: its ideal one and a fault."""
    return R.plan_report(SHIPPED_BUNDLE, episodes=1, seed=3, mission_steps=STEPS, sweeps=[
        "noise=0,0.3", "delay=0,20.8,250", "randomize=0,0.2", "odom_rate=8,2", "latency=0,250",
        "loss=0,1"])


def config(plan, name: str, value: float):
    rows = dict((s.name, rows) for s, rows in plan.sweeps)[name]
    return next(cfg for v, _, cfg in rows if v == value)


def flight(plan, cfg, backend="pybullet"):
    """Observations fed to the policy and the env's true states at every tick, and the figures."""
    seen, positions, velocities = [], [], []

    def observer(obs, env):
        seen.append(obs[0].copy())
        positions.append(env.positions[0])
        velocities.append(env.velocities[0])

    figures = R.fly_episode(plan.policy, cfg, plan.seeds[0], backend, observer=observer)
    return np.array(seen), np.array(positions), np.array(velocities), figures


def neighbour_block(cfg, obs):
    return obs[..., 6:6 + cfg.num_neighbours * O.NEIGHBOUR_FEATURES]


def expected_neighbours(cfg, pos, vel):
    """Neighbour features built from true states (N, 3): every other drone heard in radius."""
    others = ~np.eye(cfg.num_drones, dtype=bool)
    p = np.broadcast_to(pos[None], (cfg.num_drones,) + pos.shape)
    v = np.broadcast_to(vel[None], (cfg.num_drones,) + vel.shape)
    heard = O.heard_mask(pos, p, others, cfg.comm_radius)
    return O.nearest_neighbours(pos, vel, p, v, heard, cfg).reshape(cfg.num_drones, -1)


def test_ideal_values_reproduce_the_unperturbed_evaluation(plan):
    for _, rows in plan.sweeps:
        assert rows[0][2].to_dict() == plan.baseline.to_dict()  # each sweep's ideal value
    seen, _, _, figures = flight(plan, plan.baseline)
    # The plain evaluation: the bundle in the PettingZoo env of the same scenario and seed.
    seed = plan.seeds[0]
    params = {k: v for k, v in plan.baseline.to_dict().items() if k != "scenario"}
    env = sim.make_env("coverage", backend="pybullet", render_mode=None, seed=seed, **params)
    obs, _ = env.reset(seed=seed)
    plan.policy.reset()
    reference, near, outside = [np.stack([obs[a] for a in env.possible_agents])], 0, 0
    while env.agents:
        actions = {a: np.clip(plan.policy.run(obs[a], a)["action"][0], -1, 1)
                   for a in env.possible_agents}
        obs, _, _, _, infos = env.step(actions)
        reference.append(np.stack([obs[a] for a in env.possible_agents]))
        near += int(infos["drone_0"]["collisions"])
        outside += int(infos["drone_0"]["geofence_violations"])
    env.close()
    np.testing.assert_array_equal(seen, np.array(reference))
    assert figures["coverage"] == infos["drone_0"]["coverage"]
    assert (figures["near_collision_ticks"], figures["geofence_violations"]) == (near, outside)
    assert figures["steps"] == STEPS


def test_message_loss_one_hides_every_neighbour(plan):
    heard, *_ = flight(plan, config(plan, "loss", 0.0))
    lost, *_ = flight(plan, config(plan, "loss", 1.0))
    assert neighbour_block(plan.baseline, heard).any()  # the start has neighbours in radius
    assert not neighbour_block(plan.baseline, lost).any()


def test_odometry_latency_observes_the_state_k_ticks_earlier(plan):
    cfg = config(plan, "latency", 250.0)
    assert cfg.odom_latency == 2
    seen, pos, vel, _ = flight(plan, cfg)
    for t in range(len(seen)):
        old = max(t - 2, 0)  # before the start the drones rested at their start state
        np.testing.assert_array_equal(seen[t, :, :6], O.own_features(pos[old], vel[old], cfg))
        np.testing.assert_array_equal(neighbour_block(cfg, seen[t]),
                                      expected_neighbours(cfg, pos[old], vel[old]))
    assert not np.array_equal(seen[5, :, :6], O.own_features(pos[5], vel[5], cfg))


def test_odometry_rate_holds_the_last_odometry(plan):
    cfg = config(plan, "odom_rate", 2.0)
    assert cfg.odom_period == 4  # 8 Hz policy, 2 Hz odometry
    seen, pos, vel, _ = flight(plan, cfg)
    for t in range(len(seen)):
        sample = t - t % 4
        np.testing.assert_array_equal(seen[t, :, :6],
                                      O.own_features(pos[sample], vel[sample], cfg))
    assert not np.array_equal(seen[4, :, :6], seen[3, :, :6])  # the drones do move


def test_sensor_noise_is_perceived_and_the_truth_is_scored():
    env = sim.make_vec_env("coverage", 1, backend="fast", seed=0, sensor_noise=0.5)
    obs, _ = env.reset(seed=0)
    start = env.positions
    outside, heights = 0, [obs[0, :, 2]]
    for _ in range(10):  # hover: the true state stays at the start, inside the geofence
        obs, _, _, _, infos = env.step(np.zeros((1, env.num_agents, 4)))
        outside += int(infos["geofence_violations"][0])
        heights.append(obs[0, :, 2])
    np.testing.assert_allclose(env.positions, start, atol=1e-9)
    assert outside == 0
    assert np.abs(np.array(heights)).max() > 1.0  # perceived beyond the altitude band


def test_command_delay_flies_earlier_commands():
    actions = np.random.default_rng(0).uniform(-1, 1, (12, 1, 4, 4))
    paths = {}
    for delay in (0, 2):
        env = sim.make_vec_env("coverage", 1, backend="fast", seed=0, command_delay=delay)
        env.reset(seed=0)
        paths[delay] = [env.positions]
        for a in actions:
            env.step(a)
            paths[delay].append(env.positions)
    np.testing.assert_array_equal(paths[2][2:], paths[0][:-2])  # hover, then the same flight
    np.testing.assert_array_equal(paths[2][2], paths[2][0])


class TowardsCentre:
    """A stand-in policy: every drone flies to the field centre, where they meet and stay."""

    def reset(self):
        pass

    def run(self, obs, agent):
        return {"action": np.concatenate([np.clip(-2.0 * obs[:, :3], -1, 1),
                                          np.zeros((len(obs), 1))], axis=1)}


def test_a_pair_that_meets_and_stays_is_one_contact(plan):
    cfg = config_from_dict({**plan.baseline.to_dict(), "num_drones": 2, "max_steps": 40})
    figures = R.fly_episode(TowardsCentre(), cfg, seed=0, backend="fast")
    assert figures["min_separation_m"] < R.CONTACT_DISTANCE
    assert (figures["contacts"], figures["near_misses"]) == (1, 1)
    assert figures["near_collision_ticks"] > 10  # the env counts every tick of it


def test_delay_values_map_to_motor_and_command_delay(plan):
    cfg = plan.baseline
    assert R.SWEEPS["delay"].overrides(20.8, cfg) == {"command_delay": 0, "actuation_delay": 1}
    assert R.SWEEPS["delay"].overrides(250, cfg) == {"command_delay": 2, "actuation_delay": 0}
    assert R.SWEEPS["delay"].overrides(145.8, cfg) == {"command_delay": 1, "actuation_delay": 1}
    assert config(plan, "randomize", 0.2).randomize == 0.2
    assert config(plan, "noise", 0.3).sensor_noise == 0.3


def test_ideal_sweeps_fly_the_baseline_once_and_pass(plan, tmp_path):
    ideal = R.plan_report(SHIPPED_BUNDLE, episodes=1, seed=3, mission_steps=4,
                          sweeps=["noise=0", "odom_rate=8", "loss=0"])
    report = R.run_report(ideal, tmp_path, progress=None)
    for sweep in report["sweeps"]:
        (row,) = sweep["rows"]
        assert row["episodes"] == report["baseline"]["episodes"] and row["passes"]
        assert sweep["cliff"] is None


def test_cli_writes_the_table_and_the_plot(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["eval", str(SHIPPED_BUNDLE), "--robustness", "--sweeps", "loss=0,1",
                 "latency=0,125", "--episodes", "1", "--mission-steps", "6", "--out", str(out)])
    assert code == 0
    for name in ("robustness.json", "robustness.csv", "robustness.md", "robustness.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "robustness.json").read_text())
    assert [s["name"] for s in report["sweeps"]] == ["loss", "latency"]
    assert [r["value"] for r in report["sweeps"][0]["rows"]] == [0.0, 1.0]
    assert report["mission_steps"] == 6 and report["seeds"] == [12345]
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "robustness.csv").read_text().splitlines()) == 1 + 1 + 4
    assert "| loss (probability per tick) | 1 |" in (out / "robustness.md").read_text()
    assert "neighbour" not in capsys.readouterr().err


@pytest.mark.parametrize("extra,words", [
    (["--robustness", "--sweeps", "wind"], "unknown sweep 'wind'"),
    (["--robustness", "--sweeps", "loss=1.5"], "not a probability"),
    (["--robustness", "--sweeps", "latency=100"], "whole number of policy ticks"),
    (["--robustness", "--sweeps", "odom_rate=3"], "does not divide"),
    (["--robustness", "--sweeps", "loss=a,b"], "numbers separated by commas"),
    (["--robustness", "--backend", "fast", "--sweeps", "randomize"], "fast backend"),
    (["--robustness", "--episodes", "0"], "--episodes"),
    (["--sweeps", "loss"], "add --robustness"),
    ([], "is a policy bundle, not a training run"),
])
def test_bad_input_gets_one_sentence_before_any_work(tmp_path, capsys, extra, words):
    out = tmp_path / "never"
    code = main(["eval", str(SHIPPED_BUNDLE), *extra, *(["--out", str(out)]
                                                        if "--robustness" in extra else [])])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert words in err and err.startswith("marl-ros eval: ") and "\n" not in err
    assert not out.exists()


def test_robustness_refuses_a_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("algorithm: mappo\n")
    assert main(["eval", str(run), "--robustness"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a training run" in err and "marl-ros export" in err and "\n" not in err
