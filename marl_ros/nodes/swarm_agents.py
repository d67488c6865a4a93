"""swarm_agents: every drone's agent node in one process on one executor.

For large swarms on small machines: N agent nodes (namespaces /<prefix><i>) share one
SingleThreadedExecutor instead of N processes each paying for its own interpreter,
onnxruntime and DDS participant. The swarm state is received and parsed once per message
for all of them, and one timer ticks every agent in turn (N timers on one thread drift
into each other's way; one tick of all agents takes a fraction of the period). Each agent
still keeps only its own odometry, belief and what it hears.
Parameters as agent_node's, plus num_drones and namespace_prefix; per-drone drone_id is
set here. drone_bundles (string array, optional): drone i flies drone_bundles[i] instead of
bundle (per-team bundles, `team_policies`).
"""

from __future__ import annotations

import sys

from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray

from marl_ros.nodes.agent_node import AgentNode
from marl_ros.nodes.messages import SENSOR_QOS
from marl_ros.nodes.process import run_node_process

SHARED = ("bundle", "rate", "comm_radius", "swarm_topic", "max_vxy", "max_vz", "max_yaw_rate",
          "geofence_margin", "stale_timeout", "neighbour_drop", "seed", "stats_dir",
          "use_sim_time")


def build_agents() -> list[AgentNode]:
    """The agent nodes /<prefix><i>/agent, their shared swarm-state subscription and timer.

    The process is started without a node-name remap (`__node:=`), which would rename every
    node it holds; the parameter host below is the only node named swarm_agents."""
    host = Node("swarm_agents", allow_undeclared_parameters=True,
                automatically_declare_parameters_from_overrides=True)
    n = host.get_parameter_or("num_drones", Parameter("num_drones", value=4)).value
    prefix = host.get_parameter_or("namespace_prefix", Parameter("p", value="drone_")).value
    shared = [Parameter(name, value=host.get_parameter(name).value)
              for name in SHARED if host.has_parameter(name)]
    bundles = (list(host.get_parameter("drone_bundles").value)
               if host.has_parameter("drone_bundles") else [])
    host.destroy_node()
    if bundles and len(bundles) != n:
        raise ValueError(f"drone_bundles lists {len(bundles)} bundles for {n} drones; give one "
                         "per drone (or none: every drone flies bundle).")
    own = [[Parameter("bundle", value=bundles[i])] if bundles else [] for i in range(n)]
    nodes = [AgentNode("agent", namespace=f"/{prefix}{i}", hosted=True,
                       parameter_overrides=shared + own[i] + [Parameter("drone_id", value=i),
                                                              Parameter("num_drones", value=n)])
             for i in range(n)]
    first = nodes[0]

    def deliver(msg: Float64MultiArray) -> None:
        rows = first.parse_swarm(msg)
        if rows is not None:
            for node in nodes:
                node.swarm = rows

    first.create_subscription(Float64MultiArray, first.get_parameter("swarm_topic").value,
                              deliver, SENSOR_QOS)

    def tick_all() -> None:
        for node in nodes:
            node.control_tick()

    timer = first.create_timer(1.0 / first.rate, tick_all)
    for node in nodes:
        node.timer = timer  # read by the benchmark's tick statistics
    return nodes


def main(args: list[str] | None = None) -> int:
    return run_node_process("swarm_agents", build_agents, args, events_executor=True)


if __name__ == "__main__":
    sys.exit(main())
