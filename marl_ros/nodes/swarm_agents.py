"""swarm_agents: every drone's agent node in one process on one executor.

For large swarms on small machines: N agent nodes (namespaces /<prefix><i>) share one
SingleThreadedExecutor instead of N processes each paying for its own interpreter,
onnxruntime and DDS participant. The swarm state is received and parsed once per message
for all of them, and one timer ticks every agent in turn (N timers on one thread drift
into each other's way; one tick of all agents takes a fraction of the period). Each agent
still keeps only its own odometry, belief and what it hears.
Parameters as agent_node's, plus num_drones and namespace_prefix; per-drone drone_id is
set here.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray

from marl_ros.nodes.agent_node import AgentNode, run_nodes
from marl_ros.nodes.messages import SENSOR_QOS
from marl_ros.runtime import BundleError

SHARED = ("bundle", "rate", "comm_radius", "swarm_topic", "max_vxy", "max_vz", "max_yaw_rate",
          "geofence_margin", "stale_timeout", "neighbour_drop", "seed", "stats_dir",
          "use_sim_time")


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    host = Node("swarm_agents", allow_undeclared_parameters=True,
                automatically_declare_parameters_from_overrides=True)
    n = host.get_parameter_or("num_drones", Parameter("num_drones", value=4)).value
    prefix = host.get_parameter_or("namespace_prefix", Parameter("p", value="drone_")).value
    shared = [Parameter(name, value=host.get_parameter(name).value)
              for name in SHARED if host.has_parameter(name)]
    host.destroy_node()
    try:
        nodes = [AgentNode("agent", namespace=f"/{prefix}{i}", hosted=True,
                           parameter_overrides=shared + [Parameter("drone_id", value=i),
                                                         Parameter("num_drones", value=n)])
                 for i in range(n)]
    except (BundleError, ValueError) as err:
        rclpy.logging.get_logger("swarm_agents").fatal(str(err))
        rclpy.shutdown()
        return 2
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
    run_nodes(nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
