"""Docker HEALTHCHECK of a swarm container: healthy when the ROS 2 graph holds every node of
the swarm (the nodes of marl_ros.graph.swarm_graph: /sim, /<prefix><i>/agent, /monitor).

    python3 healthcheck.py --num-drones 4            # sim + 4 agents + monitor
    python3 healthcheck.py --num-drones 4 --no-sim   # the agents and monitor, drones are real
    python3 healthcheck.py --nodes /sim              # exactly these nodes

It joins the graph as a hidden node, waits for discovery until every expected node is seen
or --wait seconds pass, prints what is missing and exits 1 (unhealthy) or 0. It sees what any
ROS tool on the same domain and network sees, so a healthy swarm container is also one that
`ros2 node list` elsewhere can reach (with the same ROS_DOMAIN_ID, host network and IPC).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable


def expected_nodes(num_drones: int, sim: bool = True, namespace_prefix: str = "drone_") -> list[str]:
    """Full names of the nodes swarm_graph starts (tests/test_containers.py compares them)."""
    return ((["/sim"] if sim else [])
            + [f"/{namespace_prefix}{i}/agent" for i in range(num_drones)] + ["/monitor"])


def full_name(name: str, namespace: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


def missing_nodes(seen: Iterable[tuple[str, str]], expected: Iterable[str]) -> list[str]:
    """The expected full node names absent from `seen` ((name, namespace) pairs, as rclpy's
    get_node_names_and_namespaces gives them), in the expected order."""
    present = {full_name(name, namespace) for name, namespace in seen}
    return [name for name in expected if name not in present]


def graph_nodes(wait_s: float, expected: list[str]) -> list[tuple[str, str]]:
    import rclpy
    from rclpy.node import Node

    rclpy.init(args=[])
    try:
        node = Node("_marl_ros_healthcheck")  # leading underscore: hidden from `ros2 node list`
        deadline = time.monotonic() + wait_s
        seen = node.get_node_names_and_namespaces()
        while missing_nodes(seen, expected) and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = node.get_node_names_and_namespaces()
        node.destroy_node()
        return seen
    finally:
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="healthy when the swarm's nodes are in the ROS graph")
    parser.add_argument("--num-drones", type=int, default=4)
    parser.add_argument("--no-sim", action="store_true", help="no sim_node expected")
    parser.add_argument("--namespace-prefix", default="drone_")
    parser.add_argument("--nodes", nargs="+", help="expect exactly these full node names instead")
    parser.add_argument("--wait", type=float, default=8.0, help="seconds of discovery at most")
    args = parser.parse_args(argv)
    expected = args.nodes or expected_nodes(args.num_drones, not args.no_sim, args.namespace_prefix)
    missing = missing_nodes(graph_nodes(args.wait, expected), expected)
    if missing:
        print(f"unhealthy: not in the ROS graph: {', '.join(missing)}")
        return 1
    print(f"healthy: {len(expected)} nodes in the ROS graph")
    return 0


if __name__ == "__main__":
    sys.exit(main())
