"""ROS 2 nodes: one agent node per drone, the PyBullet simulator node, the team monitor.

Only these modules import rclpy; the rest of marl_ros stays usable without ROS 2.
"""
