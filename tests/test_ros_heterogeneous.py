"""ROS 2 deployment of a heterogeneous coverage swarm (per-drone speed_factors and footprints
in the bundle): each agent node flies its own drone's speed limit and keeps its belief with
each heard neighbour's own footprint, by the id in the swarm state, as the simulator does; the
shipped bundle flies `marl-ros swarm` with every drone inside its own limit and covers about
what it covers in the PyBullet env.

The node test runs on this file's own ROS_DOMAIN_ID (pid-derived, offset 88), every wait
bounded; `marl-ros swarm` end to end is marked slow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ros_support import domain_id as _domain_id
from ros_support import ros_fixtures, run_swarm_command, skip_module_without_ros

ROS_IMPORT_FAILURES = skip_module_without_ros()

import sim  # noqa: E402
from sim import obs as O  # noqa: E402

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parent.parent
# test_ros 0, test_deployment 25, test_ros_pursuit 37, bridges 50, test_ros_worlds 62, scale 75
DOMAIN_ID = _domain_id(88)
PROFILES = dict(speed_factors=[1.5, 1.5, 0.5, 0.5], footprints=[1, 1, 5, 5])
SHIPPED = ROOT / "policies" / "zoo" / "coverage_hetero_4"


ros_domain_id, probe = ros_fixtures(DOMAIN_ID, ROS_IMPORT_FAILURES)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A shared-parameter heterogeneous coverage bundle with random weights."""
    import torch

    from policies.export import export_bundle
    from policies.normalization import ObservationNormalizer
    from policies.policy import TrainedPolicy, build_actors

    torch.manual_seed(0)
    venv = sim.make_vec_env("coverage", 1, **PROFILES)
    network = {"hidden_sizes": [32, 32], "activation": "tanh", "recurrent": False,
               "gru_size": 16, "init_log_std": -0.5}
    n = venv.num_agents
    actors = build_actors([venv.observation_space] * n, [venv.action_space] * n, True, 0, network)
    last = [m for m in actors[0].modules() if isinstance(m, torch.nn.Linear)][-1]
    last.weight.data.normal_(0.0, 3.0)  # saturated actions: the limits decide the setpoint
    meta = {"algorithm": "mappo", "seed": 0, "global_step": 0, "env_config": venv.cfg.to_dict()}
    policy = TrainedPolicy(venv.agents, [venv.observation_space] * n, [venv.action_space] * n,
                           actors, ObservationNormalizer((venv.observation_size,)), True, 0,
                           network, meta)
    return export_bundle(policy, tmp_path_factory.mktemp("bundles") / "hetero")


@pytest.mark.parametrize("drone_id", [0, 2])
def test_agent_node_flies_its_own_limit_and_marks_each_neighbours_footprint(drone_id, bundle,
                                                                           probe):
    """The node's velocity limits are its own speed factor times the bundle's; its belief after a
    tick is sim.obs.observe_tick's with the footprints of the drones it heard, looked up by the
    ids of their swarm-state rows (a row of an unknown id is not heard), and its observation
    is the one the simulator builds for that drone."""
    from rclpy.parameter import Parameter

    from marl_ros.nodes.agent_node import AgentNode
    from marl_ros.nodes.messages import make_odometry, pack_swarm_state

    cfg = sim.make_config("coverage", **PROFILES)
    node = AgentNode("agent", namespace=f"/drone_{drone_id}", context=probe.context,
                     parameter_overrides=[Parameter("bundle", value=str(bundle)),
                                          Parameter("drone_id", value=drone_id),
                                          Parameter("num_drones", value=4)])
    node.timer.cancel()
    factor = cfg.speed_factors[drone_id]
    np.testing.assert_allclose(node.limits[:3], [cfg.vxy * factor, cfg.vxy * factor,
                                                 cfg.vz * factor])
    seen: list[np.ndarray] = []
    act = node.policy.act
    node.policy.act = lambda obs, key: (seen.append(np.array(obs)), act(obs, key))[1]

    pos = np.array([[1.0, 1.0, 1.0], [1.6, 1.2, 1.0], [1.2, 1.8, 1.0], [4.5, 4.5, 1.0],
                    [1.1, 1.3, 1.0]])  # the last row: a drone of an unknown id (9), nearby
    ids = np.array([0, 1, 2, 3, 9])
    vel = np.zeros_like(pos)
    stamp = node.get_clock().now()
    node.on_odom(make_odometry(pos[drone_id], vel[drone_id], 0.0, np.zeros(3), stamp.to_msg(),
                               f"drone_{drone_id}"))
    node.on_swarm(pack_swarm_state(ids, pos, vel, np.full(len(ids), stamp.nanoseconds * 1e-9)))
    setpoint = node.compute_setpoint(node.now())

    others = [j for j in range(4) if j != drone_id]
    belief = O.new_belief(cfg)
    expected = O.observe_tick(cfg, pos[drone_id], vel[drone_id], pos[others], vel[others], None,
                              belief=belief, own_id=drone_id, other_ids=np.array(others))
    np.testing.assert_array_equal(node.belief, belief)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], expected, rtol=1e-6, atol=1e-6)
    # drone 2's 5 x 5 footprint is in drone 0's belief, drone 0's single cell in drone 2's
    covered = O.belief_interior(node.belief, cfg) == O.COVERED
    ix, iy = O.position_to_cell(pos[2 if drone_id == 0 else 0], cfg)
    width = cfg.footprints[2 if drone_id == 0 else 0]
    r = width // 2
    assert covered[iy - r:iy + r + 1, ix - r:ix + r + 1].all()
    assert covered.sum() <= sum(cfg.footprints[j] ** 2 for j in range(3))
    # saturated actions: each axis at the drone's own limit
    assert np.all(np.abs(setpoint[:3]) <= node.limits[:3] + 1e-9)
    assert np.isclose(np.abs(setpoint[:2]).max(), cfg.vxy * factor)
    node.destroy_node()


@pytest.mark.slow  # two whole graphs, ~30 s each
def test_the_shipped_heterogeneous_bundle_flies_each_drone_in_its_own_limits(tmp_path):
    """policies/zoo/coverage_hetero_4 over ROS (seeds 1-2, real time, one episode): no drone
    flies faster than its own limit (vxy and vz times its factor, plus the controller's
    overshoot), the fast drones fly faster than the slow ones' limit, and the swarm covers
    clearly more than the random walk (a single ROS flight depends on the timing of every
    tick, so it is compared with the floor rather than with the simulator's episode: the
    README lists both)."""
    from sim.scripted import evaluate_coverage_baseline

    if not (SHIPPED / "policy.yaml").is_file():
        pytest.fail(f"the shipped heterogeneous bundle {SHIPPED} is missing; train and export it "
                    "with the commands in the README's heterogeneous swarms section.")
    cfg = sim.make_config("coverage", **PROFILES)
    factors = np.array(cfg.speed_factors)
    ros, contact_free = [], 0
    for seed in (1, 2):
        _, report = run_swarm_command(
            ["--policy", str(SHIPPED), "--seed", str(seed), "--real-time-factor", "1",
             "--timeout", "120"], tmp_path / f"seed{seed}", DOMAIN_ID)
        assert report["complete"] and report["steps"] == cfg.max_steps, report
        top = np.array(report["max_velocity_mps"])  # (4, 3): |vx|, |vy|, |vz|
        assert top[:2, :2].max() > 1.2 * cfg.vxy * factors[2:].max(), top
        ros.append(report["coverage"])
        # A contact knocks a drone past any limit (in CI once: a slow drone hit by a fast one
        # moved at 2.05 m/s); the limits are the drone's own flight, checked without contacts.
        if report["collisions"]:
            continue
        contact_free += 1
        assert np.all(top[:, :2].max(axis=1) <= 1.1 * cfg.vxy * factors), top
        assert np.all(top[:, 2] <= 1.1 * cfg.vz * factors), top
    assert contact_free, "both flights had contacts: the speed limits were not checked"
    random_walk = evaluate_coverage_baseline("random", backend="fast", **PROFILES)  # 31.7%
    assert np.mean(ros) >= random_walk["coverage"] + 0.2, (ros, random_walk)
