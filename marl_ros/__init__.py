"""marl_ros: deployment side of the stack (ONNX policy runtime, ROS 2 nodes, CLI).

Never imports torch at run time; rclpy only inside the nodes.
"""

__version__ = "0.1.0"
