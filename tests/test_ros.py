"""ROS 2 deployment over real DDS: the swarm graph end to end, agent-node parity with the
simulator, fault tolerance, and the launch/graph helpers.

Every test runs on its own ROS_DOMAIN_ID (derived from the pid) so parallel runs do not
hear each other; node processes are the ones `marl-ros swarm` starts (this interpreter,
`-m marl_ros.nodes.<node>`), each stopped at teardown, every wait bounded.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ros_support import (
    Probe,
    Processes,
    node_env,
    ros_domain,
    run_swarm_command,
    skip_module_without_ros,
)
from ros_support import domain_id as _domain_id

ROS_IMPORT_FAILURES = skip_module_without_ros()

from marl_ros.graph import (  # noqa: E402
    LAUNCH_ARGUMENTS,
    node_command,
    parse_launch_arguments,
    swarm_graph,
)
from marl_ros.runtime import SHIPPED_BUNDLE, BundleError, OnnxPolicy, load_swarm_config  # noqa: E402

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_ID = _domain_id(0)
# Missions from three start configurations: one flight diverges from its simulator twin (ROS
# timing differs by a controller tick or so and coverage flights are chaotic), the mean does not.
MISSION_SEEDS = (1, 2, 3)  # seed 0 starts two drones on crossing paths: near-passes even in the simulator
MISSION_STEPS = 100  # policy ticks: the coverage scenario's episode length (12.5 s at 8 Hz)


# ------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def ros_domain_id():
    with ros_domain(DOMAIN_ID, ROS_IMPORT_FAILURES) as domain:
        yield domain


@pytest.fixture(scope="module")
def shipped_bundle() -> Path:
    """The shipped coverage policy (MARL_ROS_TEST_BUNDLE points elsewhere while it is made)."""
    path = Path(os.environ.get("MARL_ROS_TEST_BUNDLE", SHIPPED_BUNDLE))
    if not (path / "policy.yaml").is_file():
        pytest.fail(f"the shipped policy bundle {path} is missing; train and export it with "
                    "`marl-ros export RUN --out policies/zoo/coverage_4`.")
    return path


@pytest.fixture(scope="module")
def random_bundle(tmp_path_factory) -> Path:
    """A shared-parameter coverage bundle with random weights (for tests of plumbing)."""
    from marl_ros.bench import _random_policy
    from policies.export import export_bundle

    return export_bundle(_random_policy(False), tmp_path_factory.mktemp("bundle") / "random")


@pytest.fixture(scope="module")
def meanfield_bundle(tmp_path_factory) -> Path:
    """A mean-field (MF-AC, Box actions) coverage bundle: briefly trained, then given a larger
    output layer so that its drones move and its observations' mean-action field varies."""
    import torch

    import policies
    from policies.export import export_bundle

    policy = policies.train("mf_ac", "coverage", 512, seed=0, overrides=[
        "trainer.progress=false", "trainer.tensorboard=false", "algo.learning_starts=256",
        "algo.hidden_sizes=[32, 32]", "algo.critic_hidden_sizes=[32, 32]"])
    torch.manual_seed(0)
    policy.actors[0].head[0].weight.data.normal_(0.0, 0.02)  # setpoints up to ~1 m/s
    return export_bundle(policy, tmp_path_factory.mktemp("bundle") / "meanfield")


def _env() -> dict[str, str]:
    return node_env(DOMAIN_ID)


@pytest.fixture
def processes(tmp_path):
    procs = Processes(tmp_path, DOMAIN_ID)
    yield procs
    procs.stop()


@pytest.fixture
def probe():
    p = Probe(DOMAIN_ID)
    yield p
    p.close()


def simulator_mission(bundle: Path, seed: int, steps: int) -> dict:
    """The bundle flown by OnnxPolicy in the PyBullet env from the start positions sim_node uses
    for the same seed (both draw them first from default_rng(seed)). Returns coverage and, per
    tick, every drone's position and velocity and each drone's setpoint."""
    from sim.env import DroneSwarmEnv

    cfg = load_swarm_config(bundle, 4)
    policy = OnnxPolicy.load(bundle, config=cfg)
    env = DroneSwarmEnv(cfg, backend="pybullet", render_mode=None, seed=seed)
    obs, infos = env.reset(seed=seed)
    positions, velocities, setpoints = [], [], []
    coverage, near_collisions = infos["drone_0"]["coverage"], 0
    for _ in range(steps):
        outputs = {a: policy.run(obs[a], a) for a in env.possible_agents}
        positions.append(env.positions)
        velocities.append(env._vec.velocities[0])
        setpoints.append(np.stack([outputs[a]["setpoint"][0] for a in env.possible_agents]))
        obs, _, _, _, infos = env.step({a: outputs[a]["action"][0] for a in env.possible_agents})
        coverage = infos["drone_0"]["coverage"]
        near_collisions += int(infos["drone_0"]["collisions"])
        if not env.agents:
            break
    env.close()
    return {"coverage": coverage, "near_collisions": near_collisions,
            "positions": np.array(positions),
            "velocities": np.array(velocities), "setpoints": np.array(setpoints)}


@pytest.fixture(scope="module")
def simulator_reference(shipped_bundle) -> dict:
    """The bundle in the PyBullet env from the missions' start positions: mean coverage and
    near-collisions per mission."""
    runs = [simulator_mission(shipped_bundle, seed, MISSION_STEPS) for seed in MISSION_SEEDS]
    return {"coverage": float(np.mean([r["coverage"] for r in runs])),
            "near_collisions": [r["near_collisions"] for r in runs]}


def run_swarm_cli(bundle: Path, out: Path, seed: int, *extra: str, timeout: float = 150.0):
    return run_swarm_command(["--policy", str(bundle), "--seed", str(seed), "--mission-steps",
                              str(MISSION_STEPS), "--timeout", "120", *extra], out, DOMAIN_ID,
                             timeout)


# ------------------------------------------------------------------------------------------------
# Graph and launch helpers (no DDS)
# ------------------------------------------------------------------------------------------------
def test_swarm_graph_lists_one_agent_per_drone_or_one_process(random_bundle):
    separate = swarm_graph(num_drones=3, policy=str(random_bundle))
    assert [s.executable for s in separate] == ["sim_node"] + ["agent_node"] * 3 + ["monitor_node"]
    agents = separate[1:4]
    assert [s.namespace for s in agents] == ["/drone_0", "/drone_1", "/drone_2"]
    assert [s.parameters["drone_id"] for s in agents] == [0, 1, 2]
    assert all(s.parameters["use_sim_time"] for s in separate[1:])  # agents follow /clock
    assert separate[0].parameters["publish_clock"] and not separate[0].parameters["use_sim_time"]

    one = swarm_graph(num_drones=3, policy=str(random_bundle), one_process=True)
    assert [s.executable for s in one] == ["sim_node", "swarm_agents", "monitor_node"]
    assert one[1].parameters["num_drones"] == 3

    hardware = swarm_graph(num_drones=2, policy=str(random_bundle), sim=False)
    assert [s.executable for s in hardware] == ["agent_node", "agent_node", "monitor_node"]
    assert not any(s.parameters["use_sim_time"] for s in hardware)  # real drones: wall clock

    cmd = node_command(agents[1])
    assert cmd[:3] == [sys.executable, "-m", "marl_ros.nodes.agent_node"]
    assert "__ns:=/drone_1" in cmd and "drone_id:=1" in cmd and "use_sim_time:=true" in cmd


def test_swarm_graph_refuses_a_bundle_of_another_scenario(random_bundle):
    with pytest.raises(BundleError, match="trained on scenario 'coverage'.*scenario:=coverage"):
        swarm_graph(policy=str(random_bundle), scenario="spread")
    with pytest.raises(BundleError, match="does not exist"):
        swarm_graph(policy="/nonexistent/bundle")


def test_parse_launch_arguments_types_and_errors():
    args = parse_launch_arguments({"num_drones": "8", "one_process": "true", "sim": "false",
                                   "rate": "30", "use_sim_time": "auto"})
    assert args["num_drones"] == 8 and args["one_process"] is True and args["sim"] is False
    assert args["rate"] == 30.0 and args["use_sim_time"] is None and args["policy"] is None
    assert set(args) == set(LAUNCH_ARGUMENTS)  # every launch argument reaches swarm_graph
    with pytest.raises(ValueError, match="unknown launch argument 'drones'"):
        parse_launch_arguments({"drones": "4"})
    with pytest.raises(ValueError, match="launch argument one_process must be true or false "
                                         r"\(got 'maybe'\)"):
        parse_launch_arguments({"one_process": "maybe"})
    with pytest.raises(ValueError, match="launch argument num_drones must be a whole number "
                                         r"\(got 'abc'\)"):
        parse_launch_arguments({"num_drones": "abc"})


def test_launch_file_yields_a_launch_description():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (no ROS 2 launch "
                                             "system here; `marl-ros swarm` starts the graph)")
    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location("swarm_launch", ROOT / "launch" /
                                                  "swarm.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    declared = {a.name for a in description.get_launch_arguments()}
    assert declared == set(LAUNCH_ARGUMENTS)


# ------------------------------------------------------------------------------------------------
# A bundle that cannot be flown stops the node at start with one sentence
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing", "comm_radius"])
def test_missing_or_mismatched_bundle_stops_the_node_with_one_sentence(case, random_bundle):
    params = {"missing": ["bundle:=/nonexistent/bundle"],
              "comm_radius": [f"bundle:={random_bundle}", "comm_radius:=3.0"]}[case]
    cmd = [sys.executable, "-m", "marl_ros.nodes.agent_node", "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT,
                            timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out
    fatal = [line for line in out.splitlines() if "FATAL" in line]
    assert len(fatal) == 1, out
    expected = {"missing": "policy bundle /nonexistent/bundle does not exist",
                "comm_radius": "trained with comm_radius=1.5 but this node is configured with "
                               "comm_radius=3.0"}[case]
    assert expected in fatal[0]


# ------------------------------------------------------------------------------------------------
# Parity: the agent node fed the simulator's states publishes the simulator's commands
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bundle_name", ["shipped_bundle", "meanfield_bundle"])
def test_agent_nodes_fed_recorded_states_publish_the_simulator_commands(bundle_name, probe,
                                                                       request):
    """Node parity: the agent nodes, fed the simulator's states over DDS, publish the
    simulator's setpoints; for the mean-field bundle this includes the neighbours' mean
    action each node computes from the swarm-state velocities it hears."""
    import rclpy
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from rclpy.parameter import Parameter
    from std_msgs.msg import Float64MultiArray

    from marl_ros.nodes.agent_node import AgentNode
    from marl_ros.nodes.messages import (
        COMMAND_QOS,
        SENSOR_QOS,
        make_odometry,
        pack_swarm_state,
        twist_to_setpoint,
    )

    shipped_bundle = request.getfixturevalue(bundle_name)
    ticks = 40
    record = simulator_mission(shipped_bundle, seed=11, steps=ticks)
    n = record["positions"].shape[1]
    agents = [AgentNode("agent", namespace=f"/drone_{i}", context=probe.context,
                        parameter_overrides=[Parameter("bundle", value=str(shipped_bundle)),
                                             Parameter("drone_id", value=i),
                                             Parameter("num_drones", value=n),
                                             # the untrained bundle leaves the field: no guard
                                             Parameter("geofence_margin", value=100.0)])
              for i in range(n)]
    for agent in agents:
        agent.timer.cancel()  # ticks are driven by the test, one per recorded state
        probe.executor.add_node(agent)
    odom_pubs = [probe.node.create_publisher(Odometry, f"/drone_{i}/odom", SENSOR_QOS)
                 for i in range(n)]
    swarm_pub = probe.node.create_publisher(Float64MultiArray, "/swarm/state", SENSOR_QOS)
    received: dict[int, list[np.ndarray]] = {i: [] for i in range(n)}
    for i in range(n):
        probe.node.create_subscription(Twist, f"/drone_{i}/cmd_vel",
                                       lambda msg, i=i: received[i].append(twist_to_setpoint(msg)),
                                       COMMAND_QOS)
    assert probe.spin_until(lambda: all(p.get_subscription_count() == 1 for p in odom_pubs)
                            and swarm_pub.get_subscription_count() == n
                            and all(probe.node.count_publishers(f"/drone_{i}/cmd_vel") == 1
                                    for i in range(n)), timeout=20), "DDS discovery timed out"

    published = np.zeros_like(record["setpoints"])
    for t in range(ticks):
        pos, vel = record["positions"][t], record["velocities"][t]
        stamp = agents[0].get_clock().now()
        stamp_s = stamp.nanoseconds * 1e-9

        def delivered(stamp_s: float = stamp_s) -> bool:
            return all(a.own_stamp is not None and abs(a.own_stamp - stamp_s) < 1e-6
                       and len(a.swarm) == n and abs(a.swarm[0, 7] - stamp_s) < 1e-6
                       for a in agents)

        for _ in range(5):  # best-effort streams: publish again if a sample was lost
            for i in range(n):
                odom_pubs[i].publish(make_odometry(pos[i], vel[i], 0.0, np.zeros(3),
                                                   stamp.to_msg(), f"drone_{i}"))
            swarm_pub.publish(pack_swarm_state(np.arange(n), pos, vel, np.full(n, stamp_s)))
            if probe.spin_until(delivered, timeout=1.0):
                break
        assert delivered(), f"tick {t}: the agents did not receive the recorded state"
        for agent in agents:
            agent.control_tick()
        assert probe.spin_until(lambda t=t: all(len(received[i]) == t + 1 for i in range(n)),
                                timeout=5), f"tick {t}: not every agent published cmd_vel"
        published[t] = [received[i][-1] for i in range(n)]

    assert np.abs(published).max() > 0.1  # the policy flies; hover would trivially match
    np.testing.assert_allclose(published, record["setpoints"], rtol=0, atol=1e-5)
    assert rclpy.ok(context=probe.context)


# ------------------------------------------------------------------------------------------------
# Faults on the agent's inputs: hover and warn (throttled), never die
# ------------------------------------------------------------------------------------------------
def test_bad_or_stale_odometry_makes_the_agent_hover_and_warn(random_bundle, processes, probe):
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from std_msgs.msg import Float64MultiArray

    from marl_ros.nodes.messages import (
        COMMAND_QOS,
        SENSOR_QOS,
        make_odometry,
        pack_swarm_state,
        twist_to_setpoint,
    )

    agent = processes.start([sys.executable, "-m", "marl_ros.nodes.agent_node", "--ros-args",
                             "-r", "__ns:=/drone_0", "-p", f"bundle:={random_bundle}",
                             "-p", "stale_timeout:=0.5"], "agent")
    node = probe.node
    odom_pub = node.create_publisher(Odometry, "/drone_0/odom", SENSOR_QOS)
    swarm_pub = node.create_publisher(Float64MultiArray, "/swarm/state", SENSOR_QOS)
    commands: list[tuple[float, np.ndarray]] = []
    node.create_subscription(Twist, "/drone_0/cmd_vel", lambda m: commands.append(
        (time.monotonic(), twist_to_setpoint(m))), COMMAND_QOS)
    assert probe.spin_until(lambda: len(commands) > 0 and odom_pub.get_subscription_count() > 0,
                            timeout=45), "the agent node did not come up"

    good_pos = np.array([[2.0, 2.5, 1.0], [2.6, 2.5, 1.0], [1.0, 1.0, 1.0], [4.0, 4.0, 1.0]])
    good_vel = np.zeros((4, 3))

    def feed(seconds: float, odom: np.ndarray | None = None, swarm=None, speed: float = 0.0):
        """Publish at 20 Hz for `seconds`; return the commands received in the second half."""
        end = time.monotonic() + seconds
        half = time.monotonic() + seconds / 2
        while time.monotonic() < end:
            stamp = node.get_clock().now()
            if odom is not None:
                odom_pub.publish(make_odometry(odom, np.array([speed, 0.0, 0.0]), 0.0,
                                               np.zeros(3), stamp.to_msg(), "drone_0"))
            msg = swarm if swarm is not None else pack_swarm_state(
                np.arange(4), good_pos, good_vel, np.full(4, stamp.nanoseconds * 1e-9))
            swarm_pub.publish(msg)
            probe.spin_for(0.05)
        return np.array([c for t, c in commands if t >= half])

    def hovering(cmds: np.ndarray) -> bool:
        return len(cmds) >= 3 and np.abs(cmds).max() == 0.0

    flying = feed(1.5, good_pos[0])
    assert len(flying) >= 3 and np.abs(flying).max() > 1e-4, "valid odometry must be flown"
    assert hovering(feed(2.0, np.array([np.nan, 2.5, 1.0]))), "NaN odometry must give hover"
    assert not hovering(feed(1.0, good_pos[0])), "the agent must recover on valid odometry"
    assert hovering(feed(2.0, np.array([1e4, 2.5, 1.0]))), "an absurd position must give hover"
    # rclpy throttles per call site, so this phase outlasts the previous fault's 2 s throttle.
    assert hovering(feed(2.5, good_pos[0], speed=100.0)), "an absurd speed must give hover"
    malformed = Float64MultiArray(data=[1.0] * 7)  # not a multiple of 8 values per drone
    assert not hovering(feed(1.5, good_pos[0], swarm=malformed)), \
        "a malformed swarm state costs the neighbours, not the own control"
    assert hovering(feed(2.0, None)), "stale own odometry must give hover"
    assert agent.poll() is None, "the agent node died on bad input"

    processes.stop()
    assert agent.returncode == 0
    log = agent.log_path.read_text()
    assert "Traceback" not in log
    for phrase, seconds in [("NaN or infinite", 2.0), ("position [10000.0", 2.0),
                            ("speed 100.0 m/s", 2.5), ("malformed swarm state", 1.5),
                            ("stale", 2.0)]:
        warnings = [line for line in log.splitlines() if "WARN" in line and phrase in line]
        # 8 Hz ticks for `seconds` would repeat it 12-16 times; the 2 s throttle allows 1-2.
        assert 1 <= len(warnings) <= math.ceil(seconds / 2.0) + 1, (phrase, warnings)


def test_geofence_guard_flies_back_beyond_the_margin_and_passes_setpoints_inside(
        shipped_bundle, probe):
    from rclpy.parameter import Parameter

    from marl_ros.nodes.agent_node import AgentNode
    from marl_ros.nodes.messages import make_odometry

    def agent(name: str, margin: float) -> AgentNode:
        node = AgentNode(name, namespace="/drone_0", context=probe.context,
                         parameter_overrides=[Parameter("bundle", value=str(shipped_bundle)),
                                              Parameter("geofence_margin", value=margin)])
        node.timer.cancel()  # the test calls the node's methods; nothing spins
        probe.executor.add_node(node)  # destroyed with the probe
        return node

    node = agent("agent", 0.5)
    m, limits = node.margin, node.limits
    assert m == 0.5
    fx, fy = node.cfg.field_size
    z_lo, z_hi = node.cfg.altitude_min, node.cfg.altitude_max
    centre = np.array([fx / 2, fy / 2, (z_lo + z_hi) / 2])
    setpoint = np.array([0.7, -0.4, 0.3, 0.9]) * limits

    # Inside the field and band, and outside them but within the margin: the policy flies.
    within = [centre] + [np.where(np.arange(3) == axis, coord, centre)
                         for axis, coord in [(0, -0.9 * m), (0, fx + 0.9 * m), (1, -0.9 * m),
                                             (1, fy + 0.9 * m), (2, z_lo - 0.9 * m),
                                             (2, z_hi + 0.9 * m)]]
    for pos in within:
        np.testing.assert_array_equal(node.geofence_guard(pos, setpoint), setpoint, str(pos))

    # Beyond the margin on each side: that axis flies back towards the field at half its limit
    # (outward or zero commands replaced, inward ones at least that fast); the other axes and
    # the yaw rate are the policy's.
    beyond = [(0, -1, -m - 0.1), (0, 1, fx + m + 0.1), (1, -1, -m - 0.1), (1, 1, fy + m + 0.1),
              (2, -1, z_lo - m - 0.1), (2, 1, z_hi + m + 0.1)]
    for axis, side, coord in beyond:
        pos = centre.copy()
        pos[axis] = coord
        others = [a for a in range(4) if a != axis]
        for commanded in (side * limits[axis], 0.0, -side * limits[axis]):  # out, none, in
            sp = setpoint.copy()
            sp[axis] = commanded
            out = node.geofence_guard(pos, sp)
            np.testing.assert_array_equal(out[others], sp[others], str((pos, sp)))
            if commanded * side >= 0:
                assert out[axis] == pytest.approx(-side * 0.5 * limits[axis]), (pos, sp, out)
            else:
                assert -side * out[axis] >= 0.5 * limits[axis] - 1e-9, (pos, sp, out)

    # A corner beyond x, y and z at once: every axis comes back, yaw rate untouched.
    corner = np.array([-m - 0.2, fy + m + 0.2, z_hi + m + 0.2])
    outward = np.array([-1.0, 1.0, 1.0, 0.9]) * limits
    np.testing.assert_allclose(node.geofence_guard(corner, outward),
                               [0.5 * limits[0], -0.5 * limits[1], -0.5 * limits[2], outward[3]])

    # The margin is the parameter: with geofence_margin 0 the field edge itself is the fence.
    strict = agent("agent_no_margin", 0.0)
    just_outside = np.array([-0.9 * m, fy / 2, centre[2]])
    assert node.geofence_guard(just_outside, -limits)[0] == -limits[0]
    assert strict.geofence_guard(just_outside, -limits)[0] == pytest.approx(0.5 * limits[0])

    # And the node applies it to the policy's command: own odometry beyond the corner.
    node.on_odom(make_odometry(corner, np.zeros(3), 0.0, np.zeros(3),
                               node.get_clock().now().to_msg(), "drone_0"))
    commanded = node.compute_setpoint(node.now())
    np.testing.assert_allclose(commanded[:3], [0.5 * limits[0], -0.5 * limits[1],
                                               -0.5 * limits[2]])


# ------------------------------------------------------------------------------------------------
# The swarm end to end: `marl-ros swarm` (sim_node + 4 agent processes + monitor) over DDS.
# Marked slow (whole graphs, missions of tens of seconds): `pytest -m "ros and not slow"` skips them.
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_marl_ros_swarm_flies_the_shipped_policy_like_the_simulator(shipped_bundle, tmp_path,
                                                                   simulator_reference):
    coverage, reports = [], {}
    for seed in MISSION_SEEDS:
        # Real time: at twice the wall clock a loaded 2-core machine (a CI run beside three
        # training jobs) made the agents late enough for one contact on seed 3 (min separation
        # 0.114 m); the claims are about the policy over ROS, not about a starved CPU.
        out = tmp_path / f"seed{seed}"
        stdout, report = run_swarm_cli(shipped_bundle, out, seed)
        assert "coverage" in stdout and (out / "coverage.png").stat().st_size > 0
        assert report["complete"] and report["steps"] == MISSION_STEPS
        coverage.append(report["coverage"])
        reports[seed] = {k: report[k] for k in ("collisions", "min_separation_m",
                                                "near_collisions")}
    # Contacts (two airframes closer than two rotor spans at a tick) as rare as in the
    # simulator. The policy is not contact-free there: from seeds 0-39 in PyBullet, 3 of 40
    # missions touch (seed 35 down to 0.04 m), and a mission over ROS is the same policy on a
    # trajectory perturbed by DDS timing (one CI run: seed 2, 0.059 m, where the simulator
    # keeps 0.34 m). At the simulator's 3 in 40, two contact missions out of three would come
    # in 1.6% of runs; these seeds keep >= 0.34 m in the simulator, and one contact mission
    # in the CI runs so far puts them lower. (Passes under the 0.3 m safety margin,
    # "near-collisions", are penalised in training and reported; the policy has a few in
    # the simulator too.)
    touched = [seed for seed, r in reports.items() if r["collisions"] > 0]
    assert len(touched) <= 1, (
        f"contacts over ROS on seeds {touched}: {reports}; in the simulator the policy has "
        f"{simulator_reference['near_collisions']} near-collisions on seeds {MISSION_SEEDS}")
    assert abs(np.mean(coverage) - simulator_reference["coverage"]) <= 0.10, (
        coverage, simulator_reference)
    assert np.mean(coverage) > 0.25  # well above a hovering swarm's start footprints


@pytest.mark.slow
def test_marl_ros_swarm_flies_a_mean_field_bundle_to_the_end(meanfield_bundle, tmp_path):
    """The same graph flies a mean-field bundle unchanged: the agents compute the mean action
    from the swarm-state topic, the mission completes, every node ends cleanly."""
    stdout, report = run_swarm_cli(meanfield_bundle, tmp_path / "mf", 1)
    assert report["complete"] and report["steps"] == MISSION_STEPS
    assert report["coverage"] > 0.0 and "coverage" in stdout


@pytest.mark.slow
def test_dropping_a_fifth_of_neighbour_messages_keeps_coverage(shipped_bundle, tmp_path,
                                                               simulator_reference):
    coverage = []
    for seed in MISSION_SEEDS:
        _, report = run_swarm_cli(shipped_bundle, tmp_path / f"seed{seed}", seed,
                                  "--real-time-factor", "2", "--neighbour-drop", "0.2")
        assert report["complete"], report
        coverage.append(report["coverage"])
    assert abs(np.mean(coverage) - simulator_reference["coverage"]) <= 0.10, (
        coverage, simulator_reference)


@pytest.mark.slow
def test_killing_one_agent_leaves_the_others_flying_and_its_drone_holding(shipped_bundle,
                                                                          processes, probe):
    from geometry_msgs.msg import Twist
    from std_msgs.msg import Float64, Float64MultiArray

    from marl_ros.nodes.messages import COMMAND_QOS, SENSOR_QOS, unpack_swarm_state

    specs = swarm_graph(num_drones=4, policy=str(shipped_bundle), seed=MISSION_SEEDS[0],
                        real_time_factor=2.0, mission_steps=10_000,
                        report_dir=str(processes.log_dir / "report"))
    names = [s.name + s.namespace.replace("/", "_") for s in specs]  # sim, agent_drone_0, ...
    procs = {name: processes.start(node_command(s), name) for name, s in zip(names, specs,
                                                                               strict=True)}
    states: list[np.ndarray] = []  # (4, 8) rows per swarm-state message, stamped in sim time
    coverage: list[tuple[float, float]] = []
    probe.node.create_subscription(Float64MultiArray, "/swarm/state",
                                   lambda m: states.append(unpack_swarm_state(m)), SENSOR_QOS)
    probe.node.create_subscription(Float64, "/swarm/coverage", lambda m: coverage.append(
        (states[-1][0, 7] if states else 0.0, m.data)), 10)

    def sim_time() -> float:
        return states[-1][0, 7] if states else -1.0

    commands: dict[int, list[tuple[float, float]]] = {i: [] for i in range(4)}  # (sim t, |cmd|)
    for i in range(4):
        probe.node.create_subscription(Twist, f"/drone_{i}/cmd_vel", lambda m, i=i: commands[
            i].append((sim_time(), abs(m.linear.x) + abs(m.linear.y) + abs(m.linear.z))),
            COMMAND_QOS)

    assert probe.spin_until(lambda: sim_time() >= 2.0, timeout=60), "the swarm did not start"
    victim = procs["agent_drone_0"]
    victim.kill()  # SIGKILL: no goodbye, its commands just stop
    victim.wait(timeout=5)
    killed_at = sim_time()
    assert probe.spin_until(lambda: sim_time() >= killed_at + 6.0, timeout=30)
    assert all(p.poll() is None for name, p in procs.items() if name != "agent_drone_0"), \
        "the other nodes must keep running"

    stamps = np.array([s[0, 7] for s in states])
    pos = np.array([s[:, 1:4] for s in states])  # (T, 4, 3) in drone-id order
    settled = stamps >= killed_at + 1.5  # cmd_timeout 0.5 s, then the controller stops it
    hold = pos[settled, 0]
    drift = np.linalg.norm(hold - hold[0], axis=1).max()
    assert len(hold) > 100 and drift < 0.15, f"the lost drone must hold (drifted {drift:.3f} m)"
    for i in (1, 2, 3):  # 8 Hz policies: ~36 commands in 4.5 simulated seconds
        flown = [size for t, size in commands[i] if t >= killed_at + 1.5]
        assert len(flown) >= 20 and max(flown) > 0.05, f"drone {i} must keep being flown"
    others = pos[settled, 1:]
    travelled = np.linalg.norm(np.diff(others, axis=0), axis=2).sum()
    assert travelled > 1.0, f"the other drones must keep flying (moved {travelled:.2f} m)"
    cov = np.array(coverage)
    after = cov[cov[:, 0] >= killed_at + 1.5, 1]
    assert after[-1] - after[0] >= 0.01, f"coverage must keep growing ({after[0]} -> {after[-1]})"
