"""Message layouts shared by the nodes (standard message types only).

Swarm state, `/swarm/state` by default: one `std_msgs/Float64MultiArray` per tick
carrying every drone, the way motion-capture stacks publish a whole swarm at once
(one delivery per subscriber per tick instead of N per-drone odometry streams):

    layout.dim[0]: label "drones", size N, stride N * 8
    layout.dim[1]: label "id,x,y,z,vx,vy,vz,stamp", size 8, stride 8
    data: row-major N x 8: drone id (the i of /drone_i), position (m, ENU world frame),
          velocity (m/s, ENU world frame), time of the measurement (s, the publisher's clock)

Own state: `nav_msgs/Odometry` on `<ns>/odom`: pose in frame "world" (ENU), twist in the
world frame too (a velocity-setpoint stack's convention; `child_frame_id` names the drone).

Commands: `geometry_msgs/Twist` on `<ns>/cmd_vel`: linear = velocity setpoint in the ENU
world frame (m/s), angular.z = yaw rate (rad/s).

Range readings (coverage with obstacles): `sensor_msgs/LaserScan` on `<ns>/scan`, a planar
scan in the drone's body frame (`frame_id` the drone's name, beams counter-clockwise from
angle_min), as a 2-D lidar or a ring of range sensors publishes it; +inf where a beam sees
nothing within range_max (REP 117). The agent node resamples any such scan to the bundle's
world-frame rays with `sim.obstacles.laserscan_readings`.
"""

from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

SWARM_FIELDS = ("id", "x", "y", "z", "vx", "vy", "vz", "stamp")
WORLD_FRAME = "world"

# Streams of measurements: newest wins, a lost one is replaced by the next (best effort).
SENSOR_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.BEST_EFFORT)
# Commands: delivered reliably, only the newest matters.
COMMAND_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE)


def pack_swarm_state(ids: np.ndarray, pos: np.ndarray, vel: np.ndarray,
                     stamps: np.ndarray) -> Float64MultiArray:
    rows = np.column_stack([ids, pos, vel, stamps]).astype(np.float64)
    msg = Float64MultiArray()
    n, f = rows.shape
    msg.layout.dim = [MultiArrayDimension(label="drones", size=n, stride=n * f),
                      MultiArrayDimension(label=",".join(SWARM_FIELDS), size=f, stride=f)]
    msg.data = rows.ravel().tolist()
    return msg


def unpack_swarm_state(msg: Float64MultiArray) -> np.ndarray:
    """(N, 8) rows; raises ValueError on a layout other than the documented one."""
    f = len(SWARM_FIELDS)
    data = np.asarray(msg.data, dtype=np.float64)
    if data.size % f:
        raise ValueError(f"swarm state has {data.size} values, not a multiple of {f} "
                         f"({','.join(SWARM_FIELDS)} per drone)")
    return data.reshape(-1, f)


def odometry_to_state(msg: Odometry) -> tuple[np.ndarray, np.ndarray]:
    p, v = msg.pose.pose.position, msg.twist.twist.linear
    return np.array([p.x, p.y, p.z]), np.array([v.x, v.y, v.z])


def make_odometry(pos: np.ndarray, vel: np.ndarray, yaw: float, rates: np.ndarray, stamp,
                  child: str, msg: Odometry | None = None) -> Odometry:
    """`msg`: a message to fill in place instead of a new one (a third of the cost: the
    simulator publishes one per drone per tick, and publishing serialises it at once)."""
    msg = Odometry() if msg is None else msg
    msg.header.stamp = stamp
    msg.header.frame_id = WORLD_FRAME
    msg.child_frame_id = child
    msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = map(float, pos)
    msg.pose.pose.orientation.z = math.sin(yaw / 2.0)
    msg.pose.pose.orientation.w = math.cos(yaw / 2.0)
    msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.linear.z = map(float, vel)
    msg.twist.twist.angular.x, msg.twist.twist.angular.y, msg.twist.twist.angular.z = map(
        float, rates)
    return msg


def odometry_yaw(msg: Odometry) -> float:
    """The heading (rad, ENU: 0 along +x, counter-clockwise) of an odometry's orientation."""
    q = msg.pose.pose.orientation
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def make_laserscan(readings: np.ndarray, yaw: float, range_max: float, stamp, frame: str,
                   msg: LaserScan | None = None) -> LaserScan:
    """Range readings (R,) in metres along the world-frame rays of `sim.obstacles.ray_angles`
    (ray k at heading 2 pi k / R) as the scan a body-mounted sensor of a drone heading `yaw`
    publishes: beam k at angle 2 pi k / R - yaw in the body frame, +inf for nothing in range."""
    msg = LaserScan() if msg is None else msg
    rays = len(readings)
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.angle_min = float(-yaw)
    msg.angle_increment = float(2.0 * math.pi / rays)
    msg.angle_max = float(msg.angle_min + (rays - 1) * msg.angle_increment)
    msg.range_min = 0.0
    msg.range_max = float(range_max)
    values = np.asarray(readings, dtype=np.float64)
    msg.ranges = np.where(values >= range_max, np.inf, values).astype(np.float32).tolist()
    return msg


def make_twist(setpoint: np.ndarray) -> Twist:
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.linear.z = (float(v) for v in setpoint[:3])
    msg.angular.z = float(setpoint[3])
    return msg


def twist_to_setpoint(msg: Twist) -> np.ndarray:
    return np.array([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.z])


def stamp_to_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9
