"""PX4 frames and messages for the px4_relay node, in numpy only (no rclpy, no px4_msgs).

PX4 works in NED (x north, y east, z down) with body frame FRD (forward, right, down); ROS
and the policy in ENU (x east, y north, z up) with body frame FLU (forward, left, up).
Both changes are axis permutations with sign flips, each its own inverse:

    ENU <-> NED: (x, y, z) -> (y, x, -z)        FLU <-> FRD: (x, y, z) -> (x, -y, -z)

Headings: ENU yaw is measured from east, counter-clockwise seen from above; NED yaw from
north, clockwise. So yaw_ned = pi/2 - yaw_enu (and back by the same formula), and a yaw
*rate* only changes sign. Quaternions are (w, x, y, z) arrays, as PX4's `q` field.

The message functions fill whatever class they are given by field name, so they work with
px4_msgs' generated classes and with the plain stand-ins the tests use. Field names follow
px4_msgs for PX4 v1.14 and later (msg/versioned/*.msg in PX4 v1.16, MESSAGE_VERSION 0):
TrajectorySetpoint (timestamp, position[3], velocity[3], acceleration[3], jerk[3], yaw,
yawspeed), OffboardControlMode (timestamp, position, velocity, acceleration, attitude,
body_rate, thrust_and_torque, direct_actuator), VehicleOdometry (timestamp,
timestamp_sample, pose_frame, position[3], q[4], velocity_frame, velocity[3],
angular_velocity[3], ...). PX4 timestamps are integer microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from marl_ros.bridges import quaternion_conjugate, quaternion_multiply, rotation_matrix

_SQRT_HALF = math.sqrt(0.5)
# ENU <- NED is a half turn about the horizontal axis between north and east.
Q_ENU_FROM_NED = np.array([0.0, _SQRT_HALF, _SQRT_HALF, 0.0])
# FRD <- FLU is a half turn about the forward axis.
Q_FRD_FROM_FLU = np.array([0.0, 1.0, 0.0, 0.0])

# VehicleOdometry frame enums (px4_msgs >= v1.14).
POSE_FRAME_NED, POSE_FRAME_FRD = 1, 2
VELOCITY_FRAME_NED, VELOCITY_FRAME_FRD, VELOCITY_FRAME_BODY_FRD = 1, 2, 3


def enu_to_ned(v: np.ndarray) -> np.ndarray:
    """Position or velocity (..., 3) from ENU to NED."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[..., 1], v[..., 0], -v[..., 2]], axis=-1)


def ned_to_enu(v: np.ndarray) -> np.ndarray:
    """Position or velocity (..., 3) from NED to ENU."""
    return enu_to_ned(v)  # the same swap: it is its own inverse


def flu_to_frd(v: np.ndarray) -> np.ndarray:
    """Body-frame vector (..., 3) from FLU (ROS) to FRD (PX4)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[..., 0], -v[..., 1], -v[..., 2]], axis=-1)


def frd_to_flu(v: np.ndarray) -> np.ndarray:
    return flu_to_frd(v)


def wrap_angle(angle: float) -> float:
    """The same angle in [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def yaw_enu_to_ned(yaw: float) -> float:
    return wrap_angle(math.pi / 2.0 - yaw)


def yaw_ned_to_enu(yaw: float) -> float:
    return wrap_angle(math.pi / 2.0 - yaw)


def yaw_rate_enu_to_ned(rate: float) -> float:
    """Counter-clockwise about up is clockwise about down: the rate changes sign."""
    return -rate


def yaw_rate_ned_to_enu(rate: float) -> float:
    return -rate


def quaternion_ned_frd_to_enu_flu(q: np.ndarray) -> np.ndarray:
    """PX4 attitude (FRD body -> NED) as a ROS attitude (FLU body -> ENU), w >= 0."""
    return _positive_w(quaternion_multiply(quaternion_multiply(Q_ENU_FROM_NED, q),
                                           Q_FRD_FROM_FLU))


def quaternion_enu_flu_to_ned_frd(q: np.ndarray) -> np.ndarray:
    """ROS attitude (FLU body -> ENU) as a PX4 attitude (FRD body -> NED), w >= 0."""
    return _positive_w(quaternion_multiply(
        quaternion_multiply(quaternion_conjugate(Q_ENU_FROM_NED), q),
        quaternion_conjugate(Q_FRD_FROM_FLU)))


def _positive_w(q: np.ndarray) -> np.ndarray:
    """q and -q are one rotation; the one with w >= 0 reads more easily."""
    return -q if q[0] < 0 else q


# ------------------------------------------------------------------------------------------------
# Messages
# ------------------------------------------------------------------------------------------------
def microseconds(seconds: float) -> int:
    """A PX4 timestamp (integer microseconds) from seconds."""
    return int(round(seconds * 1e6))


def fill_trajectory_setpoint(cls: type, setpoint_enu: np.ndarray, timestamp_us: int):
    """A velocity-only px4_msgs/TrajectorySetpoint from an ENU (vx, vy, vz, yaw_rate)
    setpoint: PX4 leaves every NaN field uncontrolled, so position, acceleration, jerk and
    yaw are NaN and its position controller tracks the velocity and the yaw rate alone."""
    nan3 = [math.nan] * 3
    msg = cls()
    msg.timestamp = int(timestamp_us)
    msg.position = list(nan3)
    msg.velocity = [float(v) for v in enu_to_ned(setpoint_enu[:3])]
    msg.acceleration = list(nan3)
    msg.jerk = list(nan3)
    msg.yaw = math.nan
    msg.yawspeed = float(yaw_rate_enu_to_ned(float(setpoint_enu[3])))
    return msg


OFFBOARD_MODES = ("position", "velocity", "acceleration", "attitude", "body_rate",
                  "thrust_and_torque", "direct_actuator")


def fill_offboard_control_mode(cls: type, timestamp_us: int):
    """The offboard heartbeat, px4_msgs/OffboardControlMode with only `velocity` set: PX4
    stays in (and may only enter) offboard mode while it arrives faster than 2 Hz. Flags a
    px4_msgs version lacks (thrust_and_torque and direct_actuator are v1.14+) are skipped."""
    msg = cls()
    msg.timestamp = int(timestamp_us)
    for name in OFFBOARD_MODES:
        if hasattr(msg, name):
            setattr(msg, name, name == "velocity")
    return msg


@dataclass(frozen=True)
class Px4State:
    """A VehicleOdometry sample in the package's frames: ENU world, velocities in the world
    frame; orientation (w, x, y, z) FLU body -> ENU (NaN where PX4 has none)."""

    position: np.ndarray
    velocity: np.ndarray
    orientation: np.ndarray
    angular_velocity: np.ndarray  # rad/s, in the ENU world frame (zeros when unknown)
    sample_age_s: float  # how old the sample was when PX4 published it


def vehicle_odometry_to_enu(msg) -> Px4State:
    """The agent's view of a px4_msgs/VehicleOdometry. Raises ValueError (one sentence) for
    a frame the relay cannot turn into ENU or a missing position or velocity."""
    if msg.pose_frame not in (POSE_FRAME_NED, POSE_FRAME_FRD):
        raise ValueError(f"VehicleOdometry pose_frame is {msg.pose_frame} (unknown), not NED "
                         "(1) or FRD (2); check the PX4 estimator's setup (EKF2 reference "
                         "frame).")
    position = np.asarray(msg.position, dtype=np.float64)
    velocity = np.asarray(msg.velocity, dtype=np.float64)
    q_ned = np.asarray(msg.q, dtype=np.float64)
    if not np.isfinite(position).all():
        raise ValueError("VehicleOdometry has no valid position (NaN); PX4 needs a position "
                         "source (motion capture, GNSS, vision) before the swarm can fly.")
    if not np.isfinite(velocity).all():
        raise ValueError("VehicleOdometry has no valid velocity (NaN); wait for the PX4 "
                         "estimator to converge.")
    attitude_known = np.isfinite(q_ned).all() and np.linalg.norm(q_ned) > 0.0
    if msg.velocity_frame == VELOCITY_FRAME_BODY_FRD:
        if not attitude_known:
            raise ValueError("VehicleOdometry gives a body-frame velocity but no attitude "
                             "(q is NaN), so it cannot be turned into the world frame.")
        velocity = rotation_matrix(q_ned) @ velocity  # FRD body -> NED
    elif msg.velocity_frame not in (VELOCITY_FRAME_NED, VELOCITY_FRAME_FRD):
        raise ValueError(f"VehicleOdometry velocity_frame is {msg.velocity_frame} (unknown), "
                         "not NED (1), FRD (2) or body FRD (3); check the PX4 estimator's "
                         "setup.")
    if attitude_known:
        orientation = quaternion_ned_frd_to_enu_flu(q_ned)
        rates_body = np.asarray(msg.angular_velocity, dtype=np.float64)
        angular = (rotation_matrix(orientation) @ frd_to_flu(rates_body)
                   if np.isfinite(rates_body).all() else np.zeros(3))
    else:
        orientation, angular = np.full(4, math.nan), np.zeros(3)
    age = 0.0
    if 0 < msg.timestamp_sample <= msg.timestamp:
        age = (msg.timestamp - msg.timestamp_sample) * 1e-6
    return Px4State(ned_to_enu(position), ned_to_enu(velocity), orientation, angular, age)
