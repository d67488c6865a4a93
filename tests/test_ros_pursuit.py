"""ROS 2 deployment of the pursuit game: per-team bundles in the swarm graph, agent-node parity
with sim/obs.py in both views (team flags, the evaders' speed factor, the cells view's joint
cell and cell moves), and a pursuit mission end to end ending in a capture.

The graph tests need no DDS; the node tests run on this file's own ROS_DOMAIN_ID (pid-derived,
offset 37) like tests/test_ros.py, every wait bounded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ros_support import Probe, ros_fixtures, run_swarm_command, skip_module_without_ros
from ros_support import domain_id as _domain_id

ROS_IMPORT_FAILURES = skip_module_without_ros()

import sim  # noqa: E402
from marl_ros.graph import (  # noqa: E402
    node_command,
    parse_launch_arguments,
    parse_team_policies,
    scenario_teams,
    swarm_graph,
)
from marl_ros.runtime import BundleError  # noqa: E402
from sim import obs as O  # noqa: E402

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_ID = _domain_id(37)  # test_ros.py 0, test_deployment.py 25, test_bridges.py 50, test_scale 75
CELLS = {"view": "cells", "policy_hz": 1, "action_mode": "discrete", "max_steps": 20}


# ------------------------------------------------------------------------------------------------
# Bundles: known tables of the 1 v 1 cells view (state = own cell * 16 + opponent cell)
# ------------------------------------------------------------------------------------------------
def _cells_xy(cfg, cell: int) -> tuple[int, int]:
    return cell % cfg.cells_per_side, cell // cfg.cells_per_side  # (ix, iy), row-major


def chase_table(cfg) -> np.ndarray:
    """One-hot rows: the cell move towards the opponent's cell (the longer axis first, x on
    ties), stay when sharing it."""
    table = np.zeros((cfg.num_joint_cells, 5))
    for s in range(cfg.num_joint_cells):
        (ix, iy), (ox, oy) = _cells_xy(cfg, s // cfg.num_cells), _cells_xy(cfg, s % cfg.num_cells)
        dx, dy = ox - ix, oy - iy
        if dx == dy == 0:
            move = 0
        elif abs(dx) >= abs(dy):
            move = 1 if dx > 0 else 2  # east / west
        else:
            move = 3 if dy > 0 else 4  # north / south
        table[s, move] = 1.0
    return table


def flee_table(cfg) -> np.ndarray:
    """One-hot rows: the cell move away from the opponent along the longer axis, stay where
    that would leave the arena."""
    table = np.zeros((cfg.num_joint_cells, 5))
    c = cfg.cells_per_side
    for s in range(cfg.num_joint_cells):
        (ix, iy), (ox, oy) = _cells_xy(cfg, s // cfg.num_cells), _cells_xy(cfg, s % cfg.num_cells)
        dx, dy = ix - ox, iy - oy
        if abs(dx) >= abs(dy):
            move = 1 if dx >= 0 and ix < c - 1 else 2 if dx < 0 and ix > 0 else 0
        else:
            move = 3 if dy > 0 and iy < c - 1 else 4 if dy < 0 and iy > 0 else 0
        table[s, move] = 1.0
    return table


def stay_table(cfg) -> np.ndarray:
    table = np.zeros((cfg.num_joint_cells, 5))
    table[:, 0] = 1.0
    return table


def game_bundle(out: Path, tables: list[np.ndarray], **params) -> Path:
    """A 1 v 1 cells-view mixed-strategy bundle (drone_0 pursuer, drone_1 evader)."""
    from policies.export import export_bundle
    from policies.games.policy import GamePolicy

    cfg = sim.make_config("pursuit", **{**CELLS, **params})
    policy = GamePolicy(["drone_0", "drone_1"], tables,
                        {"algorithm": "minimax_q", "seed": 0, "global_step": 1,
                         "env_config": cfg.to_dict()})
    return export_bundle(policy, out)


@pytest.fixture(scope="module")
def cfg():
    return sim.make_config("pursuit", **CELLS)


@pytest.fixture(scope="module")
def chase_bundle(tmp_path_factory, cfg) -> Path:
    """Pursuer chases, evader stays (in both tables' agents)."""
    return game_bundle(tmp_path_factory.mktemp("b") / "chase", [chase_table(cfg), stay_table(cfg)])


@pytest.fixture(scope="module")
def flee_bundle(tmp_path_factory, cfg) -> Path:
    """Pursuer stays, evader flees: the evaders' side of a match against chase_bundle."""
    return game_bundle(tmp_path_factory.mktemp("b") / "flee", [stay_table(cfg), flee_table(cfg)])


@pytest.fixture(scope="module")
def still_bundle(tmp_path_factory, cfg) -> Path:
    """Both stay: an evader that holds the centre of its cell."""
    return game_bundle(tmp_path_factory.mktemp("b") / "still", [stay_table(cfg), stay_table(cfg)])


@pytest.fixture(scope="module")
def slow_evader_bundle(tmp_path_factory, cfg) -> Path:
    """evader_speed 0.5: the evader's cell moves are clamped to 1 m/s."""
    return game_bundle(tmp_path_factory.mktemp("b") / "slow", [chase_table(cfg), flee_table(cfg)],
                       evader_speed=0.5)


def drone_view_bundle_in(out: Path, **params) -> Path:
    """A shared-parameter pursuit drone-view bundle with random weights."""
    import torch

    from policies.export import export_bundle
    from policies.normalization import ObservationNormalizer
    from policies.policy import TrainedPolicy, build_actors

    torch.manual_seed(0)
    venv = sim.make_vec_env("pursuit", 1, **params)
    network = {"hidden_sizes": [32, 32], "activation": "tanh", "recurrent": False,
               "gru_size": 16, "init_log_std": -0.5}
    n = venv.num_agents
    actors = build_actors([venv.observation_space] * n, [venv.action_space] * n, True, 0, network)
    last = [m for m in actors[0].modules() if isinstance(m, torch.nn.Linear)][-1]
    last.weight.data.normal_(0.0, 0.3)  # setpoints of ~1 m/s, not the near-zero initial head
    meta = {"algorithm": "mappo", "seed": 0, "global_step": 0, "env_config": venv.cfg.to_dict()}
    policy = TrainedPolicy(venv.agents, [venv.observation_space] * n, [venv.action_space] * n,
                           actors, ObservationNormalizer((venv.observation_size,)), True, 0,
                           network, meta)
    return export_bundle(policy, out)


@pytest.fixture(scope="module")
def drone_view_bundle(tmp_path_factory) -> Path:
    """2 pursuers v 1 evader at evader_speed 0.5."""
    return drone_view_bundle_in(tmp_path_factory.mktemp("b") / "drone_view", evader_speed=0.5,
                                num_drones=3, num_pursuers=2)


ros_domain_id, probe = ros_fixtures(DOMAIN_ID, ROS_IMPORT_FAILURES)


# ------------------------------------------------------------------------------------------------
# Per-team bundles in the graph (no DDS)
# ------------------------------------------------------------------------------------------------
def test_scenario_teams_lists_pursuers_then_evaders_and_no_teams_elsewhere():
    three = sim.make_config("pursuit", num_drones=3, num_pursuers=2, num_evaders=1)
    assert scenario_teams(three) == {"pursuers": [0, 1], "evaders": [2]}
    assert scenario_teams(sim.make_config("pursuit")) == {"pursuers": [0], "evaders": [1]}
    assert scenario_teams(sim.make_config("coverage")) == {}


def test_team_policies_give_each_agent_its_teams_bundle(chase_bundle, flee_bundle):
    specs = swarm_graph(num_drones=2, scenario="pursuit",
                        team_policies=f"pursuers={chase_bundle},evaders={flee_bundle}")
    assert [s.executable for s in specs] == ["sim_node", "agent_node", "agent_node",
                                             "monitor_node"]
    by_drone = {s.parameters["drone_id"]: s.parameters["bundle"] for s in specs
                if s.executable == "agent_node"}
    assert by_drone == {0: str(chase_bundle.resolve()), 1: str(flee_bundle.resolve())}
    # The world (sim_node, monitor_node) follows the first team's bundle.
    assert specs[0].parameters["bundle"] == specs[-1].parameters["bundle"] == str(
        chase_bundle.resolve())

    # A team not named flies `policy`; the launch argument reaches swarm_graph as a string.
    args = parse_launch_arguments({"num_drones": "2", "scenario": "pursuit",
                                   "policy": str(chase_bundle),
                                   "team_policies": f"evaders={flee_bundle}"})
    specs = swarm_graph(**args)
    assert [s.parameters["bundle"] for s in specs if s.executable == "agent_node"] == [
        str(chase_bundle.resolve()), str(flee_bundle.resolve())]

    # One process: each hosted drone gets its own bundle, as a string-array parameter.
    one = swarm_graph(num_drones=2, scenario="pursuit", one_process=True,
                      team_policies=f"pursuers={chase_bundle},evaders={flee_bundle}")
    host = next(s for s in one if s.executable == "swarm_agents")
    assert host.parameters["drone_bundles"] == [str(chase_bundle.resolve()),
                                                str(flee_bundle.resolve())]
    cmd = node_command(host)
    assert f'drone_bundles:=["{chase_bundle.resolve()}","{flee_bundle.resolve()}"]' in cmd


def test_launch_file_passes_team_policies_to_the_agent_nodes(monkeypatch, chase_bundle,
                                                           flee_bundle):
    """swarm.launch.py declares team_policies and its nodes fly the per-team bundles (launch
    and launch_ros replaced by the recording stand-ins of test_deployment.py)."""
    from test_deployment import stand_in_launch_description

    description = stand_in_launch_description(monkeypatch)
    declared = {a.args[0]: a.kwargs["default_value"] for a in description.args[0][:-1]}
    assert declared["team_policies"] == ""
    context = {**declared, "num_drones": "2", "scenario": "pursuit",
               "team_policies": f"pursuers={chase_bundle},evaders={flee_bundle}"}
    actions = description.args[0][-1].kwargs["function"](context)
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    chase, flee = str(chase_bundle.resolve()), str(flee_bundle.resolve())
    assert [(n.kwargs["executable"], n.kwargs["namespace"], n.kwargs["parameters"][0]["bundle"])
            for n in nodes] == [("sim_node", None, chase), ("agent_node", "/drone_0", chase),
                                ("agent_node", "/drone_1", flee), ("monitor_node", None, chase)]


@pytest.mark.parametrize("text, message", [
    ("pursuers", r"entry 'pursuers' is not <team>=<bundle>"),
    ("pursuers=", r"entry 'pursuers=' is not <team>=<bundle>"),
    ("chasers=/x", r"names team 'chasers' but scenario 'pursuit' has the teams pursuers, "
                   r"evaders"),
    ("pursuers=/a,pursuers=/b", r"names team 'pursuers' twice"),
])
def test_team_policies_parse_errors_are_one_sentence(text, message):
    with pytest.raises(ValueError, match=message):
        parse_team_policies(text, "pursuit")


def test_team_policies_refuse_mismatched_bundles_and_non_team_scenarios(
        chase_bundle, slow_evader_bundle, tmp_path):
    from marl_ros.bench import _random_policy
    from policies.export import export_bundle

    with pytest.raises(ValueError, match="scenario 'coverage' has none; pass one bundle with "
                                         "policy:="):
        swarm_graph(num_drones=2, team_policies=f"pursuers={chase_bundle}")
    # The evaders' bundle plays another game (evader_speed is part of the observation).
    with pytest.raises(BundleError, match=r"the evaders bundle .*slow plays another game than "
                                          r"the pursuers bundle .*chase \(evader_speed=0\.5 "
                                          r"against evader_speed=1\.0\)"):
        swarm_graph(num_drones=2, scenario="pursuit",
                    team_policies=f"pursuers={chase_bundle},evaders={slow_evader_bundle}")
    drone_view = drone_view_bundle_in(tmp_path / "drone_view", policy_hz=1,
                                      action_mode="discrete")  # 1 v 1, the "drone" view
    with pytest.raises(BundleError, match=r"plays another game .*\(view='drone' against "
                                          r"view='cells'\)"):
        swarm_graph(num_drones=2, scenario="pursuit",
                    team_policies=f"pursuers={chase_bundle},evaders={drone_view}")
    coverage = export_bundle(_random_policy(False), tmp_path / "coverage")
    with pytest.raises(BundleError, match=r"the evaders bundle .*coverage was trained on "
                                          r"scenario 'coverage', not 'pursuit'"):
        swarm_graph(num_drones=2, scenario="pursuit",
                    team_policies=f"pursuers={chase_bundle},evaders={coverage}")
    with pytest.raises(ValueError, match="names no bundle for the evaders and no policy is "
                                         "given"):
        swarm_graph(num_drones=2, scenario="pursuit", team_policies=f"pursuers={chase_bundle}")
    with pytest.raises(BundleError, match="does not exist"):
        swarm_graph(num_drones=2, scenario="pursuit",
                    team_policies=f"pursuers={chase_bundle},evaders=/nonexistent/bundle")
    # A per-agent 1 v 1 bundle flies 2 drones, and must hold a model for its team's drone id.
    with pytest.raises(BundleError, match="flies exactly 2 drones, not 3"):
        swarm_graph(num_drones=3, scenario="pursuit",
                    team_policies=f"pursuers={chase_bundle},evaders={chase_bundle}")
    from policies.games.policy import GamePolicy

    cfg = sim.make_config("pursuit", **CELLS)
    named = export_bundle(GamePolicy(["chaser", "runner"], [stay_table(cfg)] * 2, {
        "algorithm": "minimax_q", "seed": 0, "global_step": 1, "env_config": cfg.to_dict()}),
        tmp_path / "named")
    with pytest.raises(BundleError, match=r"the evaders bundle .*named holds policies for chaser, "
                                          r"runner but not for drone_1 of its team"):
        swarm_graph(num_drones=2, scenario="pursuit",
                    team_policies=f"pursuers={chase_bundle},evaders={named}")


# ------------------------------------------------------------------------------------------------
# Agent-node parity with sim/obs.py, fed ROS messages over DDS
# ------------------------------------------------------------------------------------------------
class Harness:
    """Agent nodes on the probe's executor, fed odometry and swarm state over DDS by the probe,
    their cmd_vel listened to; `tick(pos, vel, ids)` delivers one state, ticks every node once
    and returns each node's (setpoint, the observation its policy was given)."""

    def __init__(self, probe: Probe, bundle: Path, n: int, drones: list[int]):
        from geometry_msgs.msg import Twist
        from nav_msgs.msg import Odometry
        from rclpy.parameter import Parameter
        from std_msgs.msg import Float64MultiArray

        from marl_ros.nodes.agent_node import AgentNode
        from marl_ros.nodes.messages import COMMAND_QOS, SENSOR_QOS, twist_to_setpoint

        self.probe, self.n, self.drones = probe, n, drones
        self.agents = {i: AgentNode("agent", namespace=f"/drone_{i}", context=probe.context,
                                    parameter_overrides=[Parameter("bundle", value=str(bundle)),
                                                         Parameter("drone_id", value=i),
                                                         Parameter("num_drones", value=n)])
                       for i in drones}
        self.seen: dict[int, list[np.ndarray]] = {i: [] for i in drones}
        for i, agent in self.agents.items():
            agent.timer.cancel()  # the test ticks the nodes, one per delivered state
            probe.executor.add_node(agent)
            act = agent.policy.act

            def recording(obs, key, act=act, i=i):
                self.seen[i].append(np.array(obs))
                return act(obs, key)

            agent.policy.act = recording
        self.odom = {i: probe.node.create_publisher(Odometry, f"/drone_{i}/odom", SENSOR_QOS)
                     for i in drones}
        self.swarm = probe.node.create_publisher(Float64MultiArray, "/swarm/state", SENSOR_QOS)
        self.received: dict[int, list[np.ndarray]] = {i: [] for i in drones}
        for i in drones:
            probe.node.create_subscription(
                Twist, f"/drone_{i}/cmd_vel",
                lambda m, i=i: self.received[i].append(twist_to_setpoint(m)), COMMAND_QOS)
        assert probe.spin_until(
            lambda: all(p.get_subscription_count() == 1 for p in self.odom.values())
            and self.swarm.get_subscription_count() == len(drones)
            and all(probe.node.count_publishers(f"/drone_{i}/cmd_vel") == 1 for i in drones),
            timeout=20), "DDS discovery timed out"

    def tick(self, pos: np.ndarray, vel: np.ndarray, ids: list[int]) -> dict:
        from marl_ros.nodes.messages import make_odometry, pack_swarm_state

        stamp = self.agents[self.drones[0]].get_clock().now()
        stamp_s = stamp.nanoseconds * 1e-9

        def delivered() -> bool:
            return all(a.own_stamp is not None and abs(a.own_stamp - stamp_s) < 1e-6
                       and len(a.swarm) == len(ids) and abs(a.swarm[0, 7] - stamp_s) < 1e-6
                       for a in self.agents.values())

        for _ in range(5):  # best-effort streams: publish again if a sample was lost
            for i in self.drones:
                self.odom[i].publish(make_odometry(pos[i], vel[i], 0.0, np.zeros(3),
                                                   stamp.to_msg(), f"drone_{i}"))
            self.swarm.publish(pack_swarm_state(np.array(ids), pos[ids], vel[ids],
                                                np.full(len(ids), stamp_s)))
            if self.probe.spin_until(delivered, timeout=1.0):
                break
        assert delivered(), "the agents did not receive the state"
        counts = {i: len(self.received[i]) for i in self.drones}
        seen = {i: len(self.seen[i]) for i in self.drones}
        for agent in self.agents.values():
            agent.control_tick()
        assert self.probe.spin_until(lambda: all(len(self.received[i]) == counts[i] + 1
                                                 for i in self.drones), timeout=5)
        return {i: (self.received[i][-1], self.seen[i][-1] if len(self.seen[i]) > seen[i]
                    else None) for i in self.drones}


def test_cells_view_agent_nodes_build_the_joint_cell_and_fly_its_cell_move(
        slow_evader_bundle, probe):
    """Both drones of a 1 v 1 cells-view game (evader_speed 0.5): the node's observation is
    sim/obs.py's one-hot joint cell (own cell first), the published setpoint is
    cell_action_setpoint of the table's one action at the own position with the drone's
    speed factor; a drone whose state is missing makes the other hover."""
    cfg = sim.make_config("pursuit", **CELLS, evader_speed=0.5)
    tables = [chase_table(cfg), flee_table(cfg)]
    harness = Harness(probe, slow_evader_bundle, 2, [0, 1])
    rng = np.random.default_rng(3)
    moved = 0
    for _ in range(8):
        pos = np.column_stack([rng.uniform(0.1, 3.9, 2), rng.uniform(0.1, 3.9, 2),
                               rng.uniform(0.8, 1.2, 2)])
        vel = rng.normal(0, 0.3, (2, 3))
        out = harness.tick(pos, vel, [0, 1])
        for i in (0, 1):
            setpoint, obs = out[i]
            other = pos[[1 - i]]
            np.testing.assert_array_equal(obs, O.cells_observation(cfg, pos[i], other))
            state = int(O.joint_cell_index(cfg, pos[i], other))
            assert obs.argmax() == state
            action = int(tables[i][state].argmax())
            expected = O.cell_action_setpoint(cfg, action, pos[i], O.speed_scales(cfg)[i])
            np.testing.assert_allclose(setpoint, expected, rtol=0, atol=1e-9)
            moved += action != 0
        # The evader's clamp is evader_speed x vxy = 1 m/s, the pursuer's 2 m/s.
        assert np.abs(out[1][0][:2]).max() <= 1.0 + 1e-9
    assert moved >= 8  # the tables move; hover would not tell the setpoints apart

    # Drone 1's row missing from the swarm state: drone 0 cannot know the game's state.
    out = harness.tick(pos, vel, [0])
    np.testing.assert_array_equal(out[0][0], np.zeros(4))
    assert out[0][1] is None  # the policy was not asked


def test_drone_view_agent_nodes_add_team_flags_and_scale_the_evaders_setpoints(
        drone_view_bundle, probe):
    """Pursuit drone view, 2 pursuers v 1 evader at evader_speed 0.5: each node's observation
    equals sim/obs.py's with its own team flag and the heard drones' flags, and the evader's
    setpoint is the bundle's setpoint times 0.5 (the simulator's action_to_setpoint); once
    reported captured, the evader hovers and is no longer heard."""
    from marl_ros.runtime import OnnxPolicy

    cfg = sim.make_config("pursuit", evader_speed=0.5, num_drones=3, num_pursuers=2)
    policy = OnnxPolicy.load(drone_view_bundle)
    venv = sim.make_vec_env("pursuit", 1, evader_speed=0.5, num_drones=3, num_pursuers=2)
    harness = Harness(probe, drone_view_bundle, 3, [0, 1, 2])
    flags = O.team_flags(cfg)
    rng = np.random.default_rng(5)
    for _ in range(4):
        pos = np.column_stack([rng.uniform(0.5, 3.5, 3), rng.uniform(0.5, 3.5, 3),
                               rng.uniform(0.8, 1.2, 3)])
        vel = rng.normal(0, 0.3, (3, 3))
        out = harness.tick(pos, vel, [0, 1, 2])
        actions = np.zeros((1, 3, 4))
        for i in range(3):
            others = [j for j in range(3) if j != i]
            expected_obs = O.build_observation(cfg, pos[i], vel[i], pos[others], vel[others],
                                               own_team=flags[i], other_teams=flags[others])
            setpoint, obs = out[i]
            np.testing.assert_allclose(obs, expected_obs, rtol=0, atol=1e-6)
            actions[0, i] = policy.run(expected_obs, f"drone_{i}")["action"][0]
        expected = venv.action_to_setpoint(actions)[0]
        published = np.array([out[i][0] for i in range(3)])
        np.testing.assert_allclose(published, expected, rtol=0, atol=1e-5)
        assert np.abs(published[2, :2]).max() <= 0.5 * cfg.vxy + 1e-9
    assert np.abs(published[:, :3]).max() > 0.3
    assert np.abs(published[2, :3]).max() > 0.1  # the evader's factor shows in its setpoint
    venv.close()

    # The monitor reports drone 2 captured: out of play, as in the simulator. It hovers, and
    # the pursuers no longer hear it.
    from std_msgs.msg import Int32MultiArray

    from marl_ros.nodes.agent_node import CAPTURED_QOS, CAPTURED_TOPIC

    captured = probe.node.create_publisher(Int32MultiArray, CAPTURED_TOPIC, CAPTURED_QOS)
    captured.publish(Int32MultiArray(data=[2]))
    assert probe.spin_until(lambda: all(a.captured == {2} for a in harness.agents.values()),
                            timeout=10), "the agents did not hear the capture"
    out = harness.tick(pos, vel, [0, 1, 2])
    np.testing.assert_array_equal(out[2][0], np.zeros(4))
    for i in (0, 1):
        expected_obs = O.build_observation(cfg, pos[i], vel[i], pos[[1 - i]], vel[[1 - i]],
                                           own_team=flags[i], other_teams=flags[[1 - i]])
        np.testing.assert_allclose(out[i][1], expected_obs, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# The monitor's capture rule is the simulator's
# ------------------------------------------------------------------------------------------------
def test_monitor_captures_by_the_simulators_rule(probe, tmp_path):
    """2 pursuers v 2 evaders: the monitor's captures, tick by tick, equal
    sim.scenarios.PursuitScenario.progress on the same positions (within capture_radius
    horizontally, altitude ignored, or outside the geofence; a captured evader stays
    captured), and the report names them and the first capture's tick."""
    from rclpy.parameter import Parameter

    from marl_ros.nodes.monitor_node import MonitorNode
    from sim.scenarios import PursuitScenario

    params = dict(num_drones=4, num_pursuers=2, num_evaders=2)
    bundle = drone_view_bundle_in(tmp_path / "b", **params)
    cfg = sim.make_config("pursuit", **params)
    monitor = MonitorNode(context=probe.context, parameter_overrides=[
        Parameter("bundle", value=str(bundle)), Parameter("num_drones", value=4),
        Parameter("report_dir", value=str(tmp_path / "report"))])
    monitor.timer.cancel()
    probe.executor.add_node(monitor)
    from std_msgs.msg import Int32MultiArray

    from marl_ros.nodes.agent_node import CAPTURED_QOS, CAPTURED_TOPIC

    heard: list[list[int]] = []
    probe.node.create_subscription(Int32MultiArray, CAPTURED_TOPIC,
                                   lambda m: heard.append(list(m.data)), CAPTURED_QOS)
    scenario = PursuitScenario(cfg, 1)
    scenario.reset(slice(None), None, None)
    r = cfg.capture_radius
    frames = [  # pursuers 0, 1; evaders 2, 3
        [[1, 1, 1], [3, 3, 1], [1 + r + 0.05, 1, 1], [2, 3, 1]],  # just outside the radius
        [[1, 1, 1], [3, 3, 1], [1 + r - 0.05, 1, 1.4], [2, 3, 1]],  # inside, higher: caught
        [[1, 1, 1], [3, 3, 1], [3, 1, 1], [2, 3, 1]],  # caught stays caught
        [[1, 1, 1], [3, 3, 1], [3, 1, 1], [2, cfg.arena_size + 0.1, 1]],  # left the arena
    ]
    expected_first = None
    for t, frame in enumerate(frames, start=1):
        pos = np.array(frame, dtype=float)
        monitor.positions = pos
        monitor.tick()
        scenario.progress(pos[None])
        np.testing.assert_array_equal(monitor.captured, scenario.captured[0], f"tick {t}")
        ids = [2 + int(j) for j in np.flatnonzero(scenario.captured[0])]
        if ids:  # each capture is announced with every captured id (out of play for agents)
            assert probe.spin_until(lambda ids=ids: heard and heard[-1] == ids, timeout=10), (
                t, heard)
        if expected_first is None and scenario.captured.any():
            expected_first = t
    assert monitor.captured.tolist() == [True, True] and monitor.complete
    report = monitor.report()
    assert report["captured_evaders"] == [2, 3] and report["capture"] == 1.0
    assert report["capture_time_steps"] == expected_first == 2
    assert report["steps"] == 4  # every evader captured: the mission ended there
    assert heard == [[2], [2, 3]]  # announced once per capture, not every tick


# ------------------------------------------------------------------------------------------------
# End to end: `marl-ros swarm --team-policies` over DDS ends in a capture
# ------------------------------------------------------------------------------------------------
def run_pursuit(out: Path, seed: int, *extra: str) -> tuple[str, dict]:
    """`marl-ros swarm --scenario pursuit` for 2 drones at 2x real time: its stdout and report."""
    return run_swarm_command(["--scenario", "pursuit", "--num-drones", "2", "--seed", str(seed),
                              "--real-time-factor", "2", "--timeout", "90", *extra], out,
                             DOMAIN_ID, timeout=120)


@pytest.mark.slow  # two whole graphs, ~20 s: `pytest -m "ros and not slow"` skips it
def test_marl_ros_swarm_with_team_policies_reports_a_capture(chase_bundle, still_bundle, cfg,
                                                             tmp_path):
    """A chasing pursuer (chase_bundle's drone_0) against an evader holding its cell
    (still_bundle's drone_1), at 2x real time: the monitor reports the capture before the
    mission's 20 ticks end, and the capture ends the mission."""
    stdout, report = run_pursuit(tmp_path / "chase", 1, "--team-policies",
                                 f"pursuers={chase_bundle},evaders={still_bundle}")
    assert report["scenario"] == "pursuit" and report["complete"]
    assert report["capture"] == 1.0 and report["captured_evaders"] == [1], report
    assert 1 <= report["capture_time_steps"] < cfg.max_steps, report
    assert report["steps"] == report["capture_time_steps"]  # the capture ended the mission
    assert "captured 1 evader(s)" in stdout

    # The control: a pursuer that holds its cell from the same start captures nothing, and
    # the mission runs to its end.
    stdout, report = run_pursuit(tmp_path / "still", 1, "--mission-steps", "6",
                                 "--team-policies", f"pursuers={still_bundle},evaders={still_bundle}")
    assert report["capture"] == 0.0 and report["captured_evaders"] == [], report
    assert report["capture_time_steps"] is None and report["steps"] == 6 and report["complete"]
