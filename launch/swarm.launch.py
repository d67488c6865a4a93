"""Launch a drone swarm: [sim_node], one agent node per drone, monitor_node.

    ros2 launch marl_ros swarm.launch.py num_drones:=4 policy:=/path/to/bundle
    ros2 launch marl_ros swarm.launch.py sim:=false use_sim_time:=false   # real drones

The node list comes from marl_ros.graph.swarm_graph, the same function behind
`marl-ros swarm`, so both start the identical graph.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from marl_ros.graph import LAUNCH_ARGUMENTS, parse_launch_arguments, swarm_graph


def _nodes(context):
    raw = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    specs = swarm_graph(**parse_launch_arguments(raw))
    return [Node(package="marl_ros", executable=spec.executable, name=spec.name,
                 namespace=spec.namespace or None, parameters=[spec.parameters], output="screen")
            for spec in specs]


def generate_launch_description() -> LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
