"""Launch a drone swarm: [sim_node], one agent node per drone, monitor_node.

    ros2 launch marl_ros swarm.launch.py num_drones:=4 policy:=/path/to/bundle
    ros2 launch marl_ros swarm.launch.py sim:=false use_sim_time:=false   # real drones
    ros2 launch marl_ros swarm.launch.py scenario:=pursuit num_drones:=2 \
        team_policies:=pursuers=/path/to/a,evaders=/path/to/b   # one bundle per team

The node list comes from marl_ros.graph.swarm_graph, the same function behind
`marl-ros swarm`, so both start the identical graph (and refuse the same bad arguments
with the same sentence before any node starts). With exit_on_complete:=true (the
default) the monitor exits when the mission is complete and its exit shuts the whole
launch down: every agent stops commanding its drone and the launch ends with exit code 0.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from marl_ros.graph import LAUNCH_ARGUMENTS, parse_launch_arguments, swarm_graph


def _nodes(context):
    raw = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    args = parse_launch_arguments(raw)
    actions = []
    for spec in swarm_graph(**args):
        # No name for swarm_agents: launch_ros would remap every node of the process to it.
        node = Node(package="marl_ros", executable=spec.executable, name=spec.name or None,
                    namespace=spec.namespace or None, parameters=[spec.parameters],
                    output="screen")
        actions.append(node)
        if spec.executable == "monitor_node" and args["exit_on_complete"]:
            actions.append(RegisterEventHandler(OnProcessExit(
                target_action=node,
                on_exit=[EmitEvent(event=Shutdown(reason="mission complete"))])))
    return actions


def generate_launch_description() -> LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
