"""ROS 2 deployment of the mission worlds (formation, flock: `sim.missions`): the monitor node
draws the episode's mission and publishes its target on `/mission/target` as the simulator
moves it, the agent nodes build the observation from the target they received with
sim/obs.py, hover without one, and the report holds the world's own metrics.

The node tests run on this file's own ROS_DOMAIN_ID (pid-derived, offset 62), every wait
bounded; `marl-ros swarm` end to end is marked slow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from export_support import random_bundle_in, simulator_episode
from ros_support import domain_id as _domain_id
from ros_support import ros_fixtures, run_swarm_command, skip_module_without_ros

ROS_IMPORT_FAILURES = skip_module_without_ros()

import sim  # noqa: E402
from sim import obs as O  # noqa: E402
from sim.missions import Mission, mission_module, target_after, uses_target  # noqa: E402
from sim.scenarios import make_scenario  # noqa: E402

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_ID = _domain_id(62)  # test_ros 0, test_deployment 25, test_ros_pursuit 37, bridges 50, scale 75
WORLDS = ["formation", "flock"]


ros_domain_id, probe = ros_fixtures(DOMAIN_ID, ROS_IMPORT_FAILURES)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {name: random_bundle_in(root / name, name) for name in WORLDS}


def test_only_the_mission_worlds_need_a_target():
    assert uses_target(sim.make_config("formation")) and uses_target(sim.make_config("flock"))
    # A formation around its own centroid has no mission target to receive.
    assert not uses_target(sim.make_config("formation", reference="centroid"))
    for name in ("coverage", "spread", "pursuit"):
        assert mission_module(sim.make_config(name)) is None and not uses_target(
            sim.make_config(name))
    with pytest.raises(ValueError, match="has no mission"):
        Mission(sim.make_config("coverage"), np.random.default_rng(0), np.zeros((4, 3)))


@pytest.mark.parametrize("world", WORLDS)
def test_agent_node_observes_the_received_target_and_hovers_without_one(world, bundles, probe):
    """The agent node's observation is sim.obs.build_observation on its odometry, the swarm
    state and the target it received on /mission/target (over DDS); before any target, and
    once the newest one is older than stale_timeout, it commands hover."""
    from nav_msgs.msg import Odometry
    from rclpy.parameter import Parameter

    from marl_ros.nodes.agent_node import HOVER, MISSION_TARGET_TOPIC, AgentNode
    from marl_ros.nodes.messages import SENSOR_QOS, make_odometry, pack_swarm_state

    cfg = sim.make_config(world)
    node = AgentNode("agent", namespace="/drone_1", context=probe.context, parameter_overrides=[
        Parameter("bundle", value=str(bundles[world])), Parameter("drone_id", value=1),
        Parameter("num_drones", value=cfg.num_drones)])
    node.timer.cancel()
    probe.executor.add_node(node)
    seen: list[np.ndarray] = []
    act = node.policy.act
    node.policy.act = lambda obs, key: (seen.append(np.array(obs)), act(obs, key))[1]

    rng = np.random.default_rng(3)
    pos = make_scenario(cfg, 1).start_positions(rng, 1)[0]
    vel = rng.normal(0.0, 0.3, pos.shape)
    stamp = node.get_clock().now()
    node.on_odom(make_odometry(pos[1], vel[1], 0.0, np.zeros(3), stamp.to_msg(), "drone_1"))
    ids = np.arange(cfg.num_drones)
    node.on_swarm(pack_swarm_state(ids, pos, vel, np.full(len(ids), stamp.nanoseconds * 1e-9)))
    np.testing.assert_array_equal(node.compute_setpoint(node.now()), HOVER)  # no target yet
    assert not seen

    mission = Mission(cfg, np.random.default_rng(0), pos)
    target = mission.target(4)
    pub = probe.node.create_publisher(Odometry, MISSION_TARGET_TOPIC, SENSOR_QOS)
    assert probe.spin_until(lambda: pub.get_subscription_count() >= 1, timeout=20)
    for _ in range(20):  # best effort: publish again until it arrived
        pub.publish(make_odometry(target[:3], target[3:], 0.0, np.zeros(3),
                                  probe.node.get_clock().now().to_msg(), "mission_target"))
        if probe.spin_until(lambda: node.target is not None, timeout=0.5):
            break
    np.testing.assert_allclose(node.target, target)

    # The target as received, moved on at its velocity for the time since it arrived (the
    # node ticks between the monitor's ticks): here as if it had arrived 0.1 s ago.
    node.target_time -= 0.1
    now = node.now()
    setpoint = node.compute_setpoint(now)
    others = np.delete(np.arange(cfg.num_drones), 1)
    observed_target = target_after(target, now - node.target_time)
    expected = O.build_observation(cfg, pos[1], vel[1], pos[others], vel[others], None,
                                   target=observed_target)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], expected, rtol=1e-6, atol=1e-6)
    assert not np.array_equal(setpoint, HOVER)
    speed = np.linalg.norm(target[3:])
    np.testing.assert_allclose(np.linalg.norm(observed_target[:3] - target[:3]),
                               speed * (now - node.target_time))
    if speed > 0:  # formation's moving reference: the target as received would be ~3 cm off
        as_received = O.build_observation(cfg, pos[1], vel[1], pos[others], vel[others], None,
                                          target=target)
        assert np.abs(seen[0] - as_received).max() > 1e-3

    node.target_time -= 10.0  # the newest target is now stale: hover again
    np.testing.assert_array_equal(node.compute_setpoint(node.now()), HOVER)
    assert len(seen) == 1
    node.destroy_node()


@pytest.mark.parametrize("world", WORLDS)
def test_monitor_publishes_the_simulators_target_and_scores_with_its_tracker(world, bundles,
                                                                            probe, tmp_path):
    """The monitor draws the mission from its seed and the first positions (as a reset does),
    publishes the target of every tick on /mission/target, and its report's mission metrics
    are the world's tracker run on the same positions."""
    from nav_msgs.msg import Odometry
    from rclpy.parameter import Parameter

    from marl_ros.nodes.agent_node import MISSION_TARGET_TOPIC
    from marl_ros.nodes.messages import SENSOR_QOS, odometry_to_state, pack_swarm_state
    from marl_ros.nodes.monitor_node import MonitorNode

    cfg = sim.make_config(world)
    n = cfg.num_drones
    monitor = MonitorNode(context=probe.context, parameter_overrides=[
        Parameter("bundle", value=str(bundles[world])), Parameter("num_drones", value=n),
        Parameter("seed", value=7), Parameter("report_dir", value=str(tmp_path / "report"))])
    monitor.timer.cancel()
    probe.executor.add_node(monitor)
    heard: list[np.ndarray] = []
    probe.node.create_subscription(
        Odometry, MISSION_TARGET_TOPIC,
        lambda m: heard.append(np.concatenate(odometry_to_state(m))), SENSOR_QOS)
    assert probe.spin_until(lambda: monitor.target_pub.get_subscription_count() >= 1, timeout=20)

    rng = np.random.default_rng(11)
    start = make_scenario(cfg, 1).start_positions(rng, 1)[0]
    ids = np.arange(n)
    monitor.on_swarm(pack_swarm_state(ids, start, np.zeros_like(start), np.zeros(n)))
    # The simulator's draw: an env reset with seed 7 draws its start positions, then the mission.
    venv = sim.make_vec_env(world, 1, seed=7, autoreset=False)
    venv.reset(seed=7)
    np.testing.assert_allclose(Mission.for_seed(cfg, 7, venv.positions[0]).numbers,
                               venv.scenario.missions[0])
    reference = Mission.for_seed(cfg, 7, start)
    np.testing.assert_allclose(monitor.mission.numbers, reference.numbers)

    pos = start.copy()
    for step in range(1, 6):
        vel = rng.normal(0.0, 0.5, pos.shape)
        pos = pos + vel / cfg.policy_hz
        monitor.on_swarm(pack_swarm_state(ids, pos, vel, np.full(n, float(step))))
        count = len(heard)
        monitor.tick()
        reference.update(pos, vel, step)
        assert probe.spin_until(lambda count=count: len(heard) > count, timeout=5), step
        np.testing.assert_allclose(heard[-1], reference.target(step), atol=1e-9)
    report = monitor.report()
    assert report["scenario"] == world and report["steps"] == 5
    for key, value in reference.metrics().items():
        assert report["mission"][key] == (None if value is None else pytest.approx(value, abs=1e-4)), key
    monitor.destroy_node()


def run_swarm(bundle: Path, scenario: str, out: Path, seed: int, *extra: str) -> dict:
    """`marl-ros swarm` (sim_node, one agent process per drone, monitor) at 2x real time; the
    monitor's report."""
    return run_swarm_command(["--scenario", scenario, "--policy", str(bundle), "--seed", str(seed),
                              "--real-time-factor", "2", "--timeout", "120", *extra], out,
                             DOMAIN_ID)[1]


@pytest.mark.slow  # whole graphs
@pytest.mark.parametrize("world", WORLDS)
def test_marl_ros_swarm_flies_a_mission_world_to_its_report(world, bundles, tmp_path):
    """The same graph flies a mission world: the agents receive the target, the mission runs
    to its end and the report holds the world's metrics."""
    report = run_swarm(bundles[world], world, tmp_path / world, 1, "--mission-steps", "16")
    assert report["scenario"] == world and report["complete"]
    assert 1 <= report["steps"] <= 16
    metrics = report["mission"]
    assert set(metrics) == set(make_scenario(sim.make_config(world), 1).tracker.metrics())


@pytest.mark.slow  # three whole graphs, ~15 s each
def test_the_shipped_flock_bundle_reaches_the_goal_over_ros_like_the_simulator(tmp_path):
    """policies/zoo/flock_4 over ROS (seeds 1-3, real time): the monitor's mission is the
    simulator's episode of the same seed, and the swarm reaches the goal there as in the
    PyBullet env, in about the same time, without contacts."""
    bundle = ROOT / "policies" / "zoo" / "flock_4"
    if not (bundle / "policy.yaml").is_file():
        pytest.fail(f"the shipped flock bundle {bundle} is missing; train and export it with "
                    "the command in the README's flock section.")
    ros, simulated = [], []
    for seed in (1, 2, 3):
        report = run_swarm(bundle, "flock", tmp_path / f"seed{seed}", seed,
                           "--real-time-factor", "1")
        assert report["complete"] and report["collisions"] == 0, report
        ros.append(report["mission"])
        simulated.append(simulator_episode(bundle, seed))
    assert all(s["goal_reached"] == 1.0 for s in simulated), simulated
    assert all(r["goal_reached"] == 1.0 for r in ros), ros
    # The episode ends at the goal: the flight's length is the time to goal, within a few
    # ticks of the simulator's (ROS timing differs by a controller tick or so).
    ros_time = np.mean([r["time_to_goal"] for r in ros])
    sim_time = np.mean([s["time_to_goal"] for s in simulated])
    assert abs(ros_time - sim_time) <= 4.0, (ros, simulated)
