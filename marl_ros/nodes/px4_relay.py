"""px4_relay: one PX4 vehicle (uXRCE-DDS, px4_msgs) on the agent node's ENU contract.

Per drone, in its namespace (/drone_i):
- `<px4_namespace>/fmu/out/vehicle_odometry` (px4_msgs/VehicleOdometry, NED) -> `odom`
  (nav_msgs/Odometry, ENU world frame, twist in the world frame), stamped with the receipt
  time minus the sample's age inside PX4 (timestamp - timestamp_sample), so the stamp does
  not depend on whether PX4's clock is synchronised with this one;
- `cmd_vel` (geometry_msgs/Twist, ENU velocity + yaw rate) -> `<px4_namespace>/fmu/in/
  trajectory_setpoint` (px4_msgs/TrajectorySetpoint: velocity in NED and yawspeed, every
  other field NaN, i.e. uncontrolled), at once on each command;
- `<px4_namespace>/fmu/in/offboard_control_mode` (px4_msgs/OffboardControlMode, velocity
  only) at `heartbeat_rate` (10 Hz): PX4 enters and stays in offboard mode only while this
  arrives faster than 2 Hz. Each heartbeat repeats the current setpoint too; when `cmd_vel`
  has been silent for `cmd_timeout` (or never came) that setpoint is hover (zero velocity),
  as the simulator does for a lost agent. If this relay dies, the heartbeat stops and
  PX4's own offboard-loss failsafe (COM_OF_LOSS_T, COM_OBL_RC_ACT) takes over.

Timestamps sent to PX4 are this node's clock in microseconds, as the px4_ros_com examples
send them. Arming, the switch to offboard mode, takeoff and landing stay with the operator.
px4_msgs is not on PyPI: without it the node exits with code 2 and one sentence saying what
to install. The conversions and message filling live in `marl_ros.px4` (no ROS needed).
"""

from __future__ import annotations

import sys

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from marl_ros import px4
from marl_ros.nodes.agent_node import _describe
from marl_ros.nodes.messages import COMMAND_QOS, SENSOR_QOS, make_odometry, twist_to_setpoint
from marl_ros.nodes.process import run_node_process

PX4_MSGS_MISSING = (
    "px4_msgs is not installed: build px4_msgs from https://github.com/PX4/px4_msgs (the "
    "branch matching your PX4 firmware version, such as release/1.15 for PX4 v1.15) in your "
    "ROS 2 workspace with colcon and source its install/setup.bash before starting px4_relay.")
# What PX4's uXRCE-DDS bridge offers and expects (the px4_ros_com examples' profile): best
# effort, transient local. A best-effort volatile reader is compatible with any writer.
PX4_IN_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
HOVER = np.zeros(4)
WARN_PERIOD_S = 2.0


def import_px4_msgs():
    """(OffboardControlMode, TrajectorySetpoint, VehicleOdometry) from px4_msgs, or a
    ValueError with the sentence that says what to install (the start is refused)."""
    try:
        from px4_msgs.msg import OffboardControlMode, TrajectorySetpoint, VehicleOdometry
    except ImportError:
        raise ValueError(PX4_MSGS_MISSING) from None
    return OffboardControlMode, TrajectorySetpoint, VehicleOdometry


def _time_msg(seconds: float) -> TimeMsg:
    ns = int(round(seconds * 1e9))
    return TimeMsg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class Px4Relay(Node):
    def __init__(self, offboard_cls: type, setpoint_cls: type, odometry_cls: type,
                 **kwargs) -> None:
        super().__init__("px4_relay", **kwargs)
        p = self.declare_parameter
        p("px4_namespace", "", _describe("prefix of the vehicle's PX4 topics: '' for "
                                         "/fmu/..., '/px4_1' for a second vehicle"))
        p("odom_topic", "odom", _describe("odometry out (nav_msgs/Odometry, ENU)"))
        p("cmd_topic", "cmd_vel", _describe("velocity setpoint in (geometry_msgs/Twist, ENU)"))
        p("heartbeat_rate", 10.0, _describe("OffboardControlMode messages per second; PX4 "
                                            "needs more than 2", 2.5, 100.0))
        p("cmd_timeout", 0.5, _describe("s without cmd_vel after which the setpoint is hover",
                                        0.01, 60.0))
        g = self.get_parameter
        self.offboard_cls, self.setpoint_cls = offboard_cls, setpoint_cls
        fmu = g("px4_namespace").value.rstrip("/") + "/fmu"
        self.child = self.get_namespace().strip("/") or "base_link"
        self.cmd_timeout = g("cmd_timeout").value
        self.setpoint = HOVER.copy()
        self.cmd_time: float | None = None

        self.odom_pub = self.create_publisher(Odometry, g("odom_topic").value, SENSOR_QOS)
        self.setpoint_pub = self.create_publisher(setpoint_cls, f"{fmu}/in/trajectory_setpoint",
                                                  PX4_IN_QOS)
        self.offboard_pub = self.create_publisher(offboard_cls,
                                                  f"{fmu}/in/offboard_control_mode", PX4_IN_QOS)
        self.create_subscription(odometry_cls, f"{fmu}/out/vehicle_odometry",
                                 self.on_vehicle_odometry, SENSOR_QOS)
        self.create_subscription(Twist, g("cmd_topic").value, self.on_cmd, COMMAND_QOS)
        self.timer = self.create_timer(1.0 / g("heartbeat_rate").value, self.heartbeat)
        self.get_logger().info(f"relaying {fmu}/out/vehicle_odometry -> odom and cmd_vel -> "
                               f"{fmu}/in/trajectory_setpoint (heartbeat "
                               f"{g('heartbeat_rate').value:g} Hz)")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_vehicle_odometry(self, msg) -> None:
        try:
            state = px4.vehicle_odometry_to_enu(msg)
        except ValueError as err:
            self.get_logger().warning(f"ignoring PX4 odometry: {err}",
                                      throttle_duration_sec=WARN_PERIOD_S)
            return
        odom = make_odometry(state.position, state.velocity, 0.0, state.angular_velocity,
                             _time_msg(self.now() - state.sample_age_s), self.child)
        o = odom.pose.pose.orientation
        o.w, o.x, o.y, o.z = (float(v) for v in state.orientation)
        self.odom_pub.publish(odom)

    def on_cmd(self, msg: Twist) -> None:
        setpoint = twist_to_setpoint(msg)
        if not np.isfinite(setpoint).all():
            self.get_logger().warning("ignoring a non-finite cmd_vel",
                                      throttle_duration_sec=WARN_PERIOD_S)
            return
        self.setpoint, self.cmd_time = setpoint, self.now()
        self.publish_setpoint(setpoint)

    def publish_setpoint(self, setpoint: np.ndarray) -> None:
        self.setpoint_pub.publish(px4.fill_trajectory_setpoint(
            self.setpoint_cls, setpoint, px4.microseconds(self.now())))

    def heartbeat(self) -> None:
        now = self.now()
        self.offboard_pub.publish(px4.fill_offboard_control_mode(self.offboard_cls,
                                                                 px4.microseconds(now)))
        if self.cmd_time is None or now - self.cmd_time > self.cmd_timeout:
            silent = ("no cmd_vel received yet" if self.cmd_time is None else
                      f"no cmd_vel for {now - self.cmd_time:.2f} s > cmd_timeout "
                      f"{self.cmd_timeout:g} s")
            self.get_logger().warning(f"{silent}; streaming hover setpoints",
                                      throttle_duration_sec=WARN_PERIOD_S)
            self.publish_setpoint(HOVER)
        else:
            self.publish_setpoint(self.setpoint)


def build_relay() -> list[Node]:
    return [Px4Relay(*import_px4_msgs())]


def main(args: list[str] | None = None) -> int:
    return run_node_process("px4_relay", build_relay, args)


if __name__ == "__main__":
    sys.exit(main())
