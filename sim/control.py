"""Cascaded velocity controller for a swarm of quadrotors, batched over drones with numpy.

The policy's action is a velocity setpoint (sim-to-real contract, point 3); on hardware the
flight controller tracks it, in simulation this module does. The cascade is

    velocity error -> desired acceleration (PI)      -> desired thrust vector (tilt-limited)
    desired thrust vector + yaw -> desired attitude  -> body torques (geometric PD + I on SO(3))
    collective thrust + torques -> motor RPMs (X-configuration mixer, clipped to [0, max RPM])

run at CONTROL_HZ. All drones are handled with array operations: a per-drone Python loop would
cost more than the physics it drives.

Why a thrust-bias estimator besides the velocity integrators: an integral of velocity error is
an integral of position error, so an integrator strong enough to cancel a 10 % mass error (domain
randomisation) makes the drone sink tens of centimetres first and overshoot every velocity step.
Estimating the thrust bias from measured vertical acceleration cancels it within a fraction of a
second without touching the tracking response; the velocity integrators stay small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.drone import CrazyflieParams

CONTROL_HZ = 48.0
"""Rate of the onboard velocity controller (matches sim.config.CONTROL_HZ)."""


@dataclass(frozen=True)
class ControllerGains:
    """Gains of the cascade; the defaults are tuned for CrazyflieParams at 48 Hz.

    Velocity gains are in (m/s^2) per (m/s); attitude gains are angular accelerations per
    radian (or per rad/s), so they do not depend on the inertia.
    """

    vel_xy_p: float = 4.0
    vel_xy_i: float = 0.2
    vel_z_p: float = 5.0
    vel_z_i: float = 0.3
    vel_integral_limit: float = 0.5  # m (the integral of a velocity error is a distance)
    max_tilt_deg: float = 30.0
    att_p: float = 300.0  # roll/pitch, rad/s^2 per rad
    att_d: float = 24.0  # roll/pitch, rad/s^2 per rad/s
    att_i: float = 20.0
    att_integral_limit: float = 0.05  # rad s
    yaw_p: float = 60.0
    yaw_d: float = 14.0
    yaw_error_limit: float = 0.5  # rad: the yaw target never runs further ahead than this
    bias_time_constant: float = 0.3  # s, low-pass of the thrust-bias estimate
    bias_limit: float = 3.0  # m/s^2, anti-windup bound of the thrust-bias estimate


# Rotation-matrix entries as c + s1 * (P[a] + s2 * P[b]) with P = 2 q q^T of q = (x, y, z, w):
# entry (0, 0) is 1 - (2yy + 2zz), entry (0, 1) is 2xy - 2wz, ... (row-major).
_X, _Y, _Z, _W = range(4)
_QUAT_A = np.array([_Y * 5, _X * 4 + _Y, _X * 4 + _Z, _X * 4 + _Y, _X * 5, _Y * 4 + _Z,
                    _X * 4 + _Z, _Y * 4 + _Z, _X * 5])
_QUAT_B = np.array([_Z * 5, _W * 4 + _Z, _W * 4 + _Y, _W * 4 + _Z, _Z * 5, _W * 4 + _X,
                    _W * 4 + _Y, _W * 4 + _X, _Y * 5])
_QUAT_SIGN_B = np.array([1.0, -1.0, 1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0])
_QUAT_DIAGONAL = np.array([1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])


def quaternion_to_matrix(quat: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w) as PyBullet returns them -> (..., 3, 3) rotation matrices.

    The textbook entries (1 - 2(yy + zz), 2(xy - wz), ...), computed from the products 2 q q^T
    in a handful of array operations (the PyBullet backend converts every drone's attitude at
    every control tick)."""
    q = np.asarray(quat, dtype=np.float64)
    products = (2.0 * q[..., :, None] * q[..., None, :]).reshape(*q.shape[:-1], 16)
    pairs = products[..., _QUAT_A] + _QUAT_SIGN_B * products[..., _QUAT_B]
    rot = np.where(_QUAT_DIAGONAL == 1.0, 1.0 - pairs, pairs)
    return rot.reshape(*rot.shape[:-1], 3, 3)


def matrix_to_euler(rot: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) roll, pitch, yaw (Z-Y-X, as PyBullet's Euler)."""
    roll = np.arctan2(rot[..., 2, 1], rot[..., 2, 2])
    pitch = np.arcsin(np.clip(-rot[..., 2, 0], -1.0, 1.0))
    yaw = np.arctan2(rot[..., 1, 0], rot[..., 0, 0])
    return np.stack([roll, pitch, yaw], axis=-1)


def euler_to_matrix(rpy: np.ndarray) -> np.ndarray:
    """(..., 3) roll, pitch, yaw -> (..., 3, 3) rotation matrices (R = Rz(yaw) Ry(pitch) Rx(roll))."""
    r, p, y = np.moveaxis(np.asarray(rpy, dtype=np.float64), -1, 0)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    rot = np.stack([
        cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
        sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
        -sp, cp * sr, cp * cr,
    ], axis=-1)
    return rot.reshape(*rot.shape[:-1], 3, 3)


def _clip(x: np.ndarray, limit: float) -> np.ndarray:
    """x clipped to [-limit, limit] (np.clip's values, without its per-call overhead)."""
    return np.minimum(np.maximum(x, -limit), limit)


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


class VelocityController:
    """Velocity-setpoint tracker for `num_drones` quadrotors, stepped once per control tick.

    Setpoints are (vx, vy, vz, yaw_rate) in the world ENU frame, yaw_rate about world z. The
    controller sees true state; sensor noise is a property of what the policy observes.
    """

    def __init__(self, num_drones: int, params: CrazyflieParams | None = None,
                 gains: ControllerGains | None = None, ctrl_hz: float = CONTROL_HZ) -> None:
        if num_drones < 1:
            raise ValueError(f"num_drones must be >= 1 (got {num_drones}).")
        self.num_drones = num_drones
        self.params = params or CrazyflieParams()
        self.gains = gains or ControllerGains()
        self.dt = 1.0 / ctrl_hz
        p, g = self.params, self.gains
        self._tan_tilt = math.tan(math.radians(g.max_tilt_deg))
        # Thrust compensation for tilt stops at 1.5x the tilt limit (upset recovery stays sane).
        self._min_cos_tilt = math.cos(math.radians(min(1.5 * g.max_tilt_deg, 80.0)))
        self._inv_allocation = np.linalg.inv(p.allocation_matrix())
        self._inertia = p.inertia
        self._max_thrust = p.max_thrust
        self._max_motor_thrust = p.kf * p.max_rpm**2
        self._kp_vel = np.array([g.vel_xy_p, g.vel_xy_p, g.vel_z_p])
        self._ki_vel = np.array([g.vel_xy_i, g.vel_xy_i, g.vel_z_i])
        self._kp_att = np.array([g.att_p, g.att_p, g.yaw_p])
        self._kd_att = np.array([g.att_d, g.att_d, g.yaw_d])
        self._ki_att = np.array([g.att_i, g.att_i, 0.0])
        self._vel_integral = np.zeros((num_drones, 3))
        self._att_integral = np.zeros((num_drones, 3))
        self._thrust_bias = np.zeros(num_drones)
        self._yaw_target = np.zeros(num_drones)
        self._fresh = np.ones(num_drones, dtype=bool)  # yaw target and bias memory unset
        self._prev_vz = np.zeros(num_drones)
        self._prev_thrust_accel_z = np.zeros(num_drones)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Clear integrators, thrust-bias estimate and yaw target (all drones, or where mask is True).

        The yaw target is re-read from the state on the next `compute`, so a drone reset to a
        new heading holds that heading.
        """
        sel = slice(None) if mask is None else np.asarray(mask, dtype=bool)
        self._vel_integral[sel] = 0.0
        self._att_integral[sel] = 0.0
        self._thrust_bias[sel] = 0.0
        self._fresh[sel] = True

    def compute(self, rot: np.ndarray, velocity: np.ndarray, body_rates: np.ndarray,
                setpoints: np.ndarray) -> np.ndarray:
        """Motor speeds (N, 4) in RPM for one control tick.

        rot: (N, 3, 3) body-to-world rotation; velocity: (N, 3) world; body_rates: (N, 3) in
        the body frame; setpoints: (N, 4) already clamped to the velocity limits.
        """
        p, g, dt = self.params, self.gains, self.dt
        yaw = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
        cos_body_tilt = rot[:, 2, 2]  # world z of the body z axis

        # Thrust-bias estimate: measured minus predicted vertical specific force of the last tick.
        fresh = self._fresh
        any_fresh = bool(fresh.any())
        if any_fresh:
            self._yaw_target[fresh] = yaw[fresh]
            self._prev_vz[fresh] = velocity[fresh, 2]
            self._prev_thrust_accel_z[fresh] = p.gravity
        measured = (velocity[:, 2] - self._prev_vz) / dt + p.gravity
        residual = measured - self._prev_thrust_accel_z
        alpha = dt / (g.bias_time_constant + dt)
        self._thrust_bias = _clip(self._thrust_bias + alpha * (residual - self._thrust_bias),
                                  g.bias_limit)
        if any_fresh:
            self._thrust_bias[fresh] = 0.0
            fresh[:] = False

        # Velocity loop: PI on the world-frame velocity error, clamped integral (anti-windup).
        vel_error = setpoints[:, :3] - velocity
        self._vel_integral = _clip(self._vel_integral + vel_error * dt, g.vel_integral_limit)
        accel = self._kp_vel * vel_error + self._ki_vel * self._vel_integral
        accel[:, 2] += p.gravity - self._thrust_bias

        # Thrust vector: keep it pointing up and within the tilt limit.
        ax, ay = accel[:, 0], accel[:, 1]
        az = accel[:, 2] = np.maximum(accel[:, 2], 0.1 * p.gravity)
        horizontal = np.sqrt(ax * ax + ay * ay)
        max_horizontal = az * self._tan_tilt
        scale = np.minimum(1.0, max_horizontal / np.maximum(horizontal, 1e-9))
        accel[:, :2] *= scale[:, None]
        # Collective thrust sized for the vertical acceleration at the current tilt, so altitude
        # holds while the attitude loop is still catching up with a new tilt.
        cos_tilt = np.maximum(cos_body_tilt, self._min_cos_tilt)
        thrust = np.minimum(np.maximum(p.mass * az / cos_tilt, 0.0), self._max_thrust)

        # Desired attitude: body z along the thrust vector, heading from the integrated yaw target.
        yaw_rate_sp = setpoints[:, 3]
        self._yaw_target = yaw + _clip(wrap_angle(self._yaw_target + yaw_rate_sp * dt - yaw),
                                       g.yaw_error_limit)
        zx, zy, zz = (accel / np.sqrt(ax * ax + ay * ay + az * az)[:, None]).T
        hx, hy = np.cos(self._yaw_target), np.sin(self._yaw_target)
        # y_des = z_des x heading (heading has no z component), normalised; x_des = y_des x z_des.
        yx, yy, yz = -(zz * hy), zz * hx, zx * hy - zy * hx
        y_norm = np.sqrt(yx * yx + yy * yy + yz * yz)
        yx, yy, yz = yx / y_norm, yy / y_norm, yz / y_norm
        xx, xy, xz = yy * zz - yz * zy, yz * zx - yx * zz, yx * zy - yy * zx

        # Attitude loop on SO(3): e_R = vee(R_d^T R - R^T R_d) / 2, rate error in the body frame.
        # (R_d^T R)_ij = column i of R_d . column j of R; only the vee entries are needed.
        r0, r1, r2 = rot[:, :, 0].T, rot[:, :, 1].T, rot[:, :, 2].T  # body axes in the world
        att_error = 0.5 * np.stack([
            (zx * r1[0] + zy * r1[1] + zz * r1[2]) - (r2[0] * yx + r2[1] * yy + r2[2] * yz),
            (xx * r2[0] + xy * r2[1] + xz * r2[2]) - (r0[0] * zx + r0[1] * zy + r0[2] * zz),
            (yx * r0[0] + yy * r0[1] + yz * r0[2]) - (r1[0] * xx + r1[1] * xy + r1[2] * xz),
        ], axis=1)
        rate_error = body_rates.copy()
        rate_error[:, 2] -= yaw_rate_sp
        self._att_integral = _clip(self._att_integral + att_error * dt, g.att_integral_limit)
        inertia = self._inertia
        ang_accel = -(self._kp_att * att_error + self._kd_att * rate_error
                      + self._ki_att * self._att_integral)
        # Gyroscopic term: body_rates x (inertia * body_rates).
        wx, wy, wz = body_rates.T
        jx, jy, jz = (inertia * body_rates).T
        torque = inertia * ang_accel + np.stack([wy * jz - wz * jy, wz * jx - wx * jz,
                                                 wx * jy - wy * jx], axis=1)

        # Predicted vertical specific force of this command, for next tick's bias estimate.
        self._prev_vz = velocity[:, 2].copy()
        self._prev_thrust_accel_z = thrust * cos_body_tilt / p.mass

        return self.mix(thrust, torque)

    def mix(self, thrust: np.ndarray, torque: np.ndarray) -> np.ndarray:
        """Collective thrust (N,) and body torques (N, 3) -> motor RPMs (N, 4) within [0, max RPM]."""
        wrench = np.concatenate([thrust[:, None], torque], axis=1)
        motor_thrust = wrench @ self._inv_allocation.T
        motor_thrust = np.clip(motor_thrust, 0.0, self._max_motor_thrust)
        return np.sqrt(motor_thrust / self.params.kf)
