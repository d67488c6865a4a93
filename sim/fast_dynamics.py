"""The `fast` backend: a batched closed-loop model of drone + velocity controller.

Training throughput is bounded by physics; this model replaces PyBullet + PID by the closed-loop
response it produces, fitted from PyBullet step responses (`python -m sim.calibrate`, numbers
in sim/fast_model.yaml). Training on `fast` and evaluating on `pybullet` then measures the
sim-to-sim gap instead of hiding it.

Vertical z and yaw: the velocity answers its setpoint u through the linear model

    V(s) / U(s) = wn^2 (1 + b s) / (s^2 + 2 zeta wn s + wn^2)

and position (or yaw angle) is its integral. The setpoint is constant over a policy period, so
the 3-state system [position, z1, z2] is discretised exactly once, with the matrix exponential,
and every step is one small matrix product.

Horizontal x and y: the controller's tilt limit caps the horizontal acceleration (about
g tan 30 deg), so full-speed steps and reversals saturate and a linear model answers them far
too fast. The horizontal model mirrors the controller's structure instead: per axis an internal
velocity w with acceleration a,

    a_cmd = sat(K (u - w) + Ki i),   da/dt = (a_cmd - a) / tau,   dw/dt = a,   di/dt = u - w,

with K = wn / (2 zeta) and tau = 1 / (2 zeta wn), so that unsaturated and without the small
integral term it is the second-order model above (without the zero). The integral i is clipped
to +-integral_limit per axis like the controller's; it winds up during saturated steps and
leaves the small, slowly decaying velocity overshoot PyBullet shows after them. `sat` limits the norm of the 2-D vector (a_cmd_x, a_cmd_y) to
max_acceleration, as the controller limits the tilt. a_cmd is held over each controller tick
(1/48 s, CONTROL_HZ) and the linear part between ticks is discretised exactly, so a policy
step is a few substeps of one small matrix product each. The zero enters as an output shift:
velocity w + b a, position p + b w (b < 0 acts as a short delay).

Roll and pitch are the small-angle tilt that produces the model's horizontal acceleration; body
rates are the finite difference of roll and pitch over the step and the model's yaw rate.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import yaml

from sim import kernels
from sim.control import CONTROL_HZ
from sim.drone import CrazyflieParams, VelocityLimits

FAST_MODEL_PATH = Path(__file__).resolve().parent / "fast_model.yaml"
"""Fitted model parameters written by `python -m sim.calibrate`."""

AXIS_GROUPS = ("xy", "z", "yaw")
GROUND_HEIGHT = 0.0125
"""Lowest body-centre height: half the URDF collision cylinder, resting on the z = 0 plane."""


def load_fast_model(path: str | Path = FAST_MODEL_PATH) -> dict[str, dict[str, float]]:
    """Read and check the fitted model: {group: {natural_frequency, damping, zero_time, ...}}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fast model file {path} is missing; run `python -m sim.calibrate` to create it.")
    with path.open() as f:
        model = yaml.safe_load(f)
    validate_fast_model(model, source=str(path))
    return model


def _check_positive(value: Any, name: str, source: str) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0.0):
        raise ValueError(f"{source}: {name} must be a finite number > 0 (got {value!r}); "
                         "rerun `python -m sim.calibrate`.")


def validate_fast_model(model: Any, source: str = "model") -> None:
    """Raise ValueError unless `model` has positive wn and damping and a finite zero time per group,
    a positive xy.max_acceleration and non-negative xy.integral_gain / integral_limit (default 0)."""
    if not isinstance(model, dict):
        raise ValueError(f"{source} must be a mapping of axis groups {', '.join(AXIS_GROUPS)}.")
    for group in AXIS_GROUPS:
        entry = model.get(group)
        if not isinstance(entry, dict):
            raise ValueError(f"{source} lacks the '{group}' group; rerun `python -m sim.calibrate`.")
        for key in ("natural_frequency", "damping"):
            _check_positive(entry.get(key), f"{group}.{key}", source)
        zero_time = entry.get("zero_time", 0.0)
        if not (isinstance(zero_time, int | float) and math.isfinite(zero_time)):
            raise ValueError(f"{source}: {group}.zero_time must be a finite number (got {zero_time!r}).")
    _check_positive(model["xy"].get("max_acceleration"), "xy.max_acceleration", source)
    for key in ("integral_gain", "integral_limit"):
        value = model["xy"].get(key, 0.0)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{source}: xy.{key} must be a finite number >= 0 (got {value!r}).")


def continuous_axis_model(natural_frequency: float, damping: float,
                          zero_time: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of one linear axis with state [position, z1, z2]; velocity = wn^2 (z1 + b z2)."""
    wn2 = natural_frequency**2
    a = np.array([
        [0.0, wn2, wn2 * zero_time],
        [0.0, 0.0, 1.0],
        [0.0, -wn2, -2.0 * damping * natural_frequency],
    ])
    b = np.array([0.0, 0.0, 1.0])
    return a, b


def discretize(a: np.ndarray, b: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact zero-order-hold discretisation: expm([[A, B], [0, 0]] T)."""
    n = a.shape[0]
    block = np.zeros((n + 1, n + 1))
    block[:n, :n] = a
    block[:n, n] = b
    phi = scipy.linalg.expm(block * period)
    return phi[:n, :n], phi[:n, n]


def velocity_output(entry: dict[str, float]) -> np.ndarray:
    """(3,) row mapping a linear axis state to velocity."""
    wn2 = entry["natural_frequency"] ** 2
    return np.array([0.0, wn2, wn2 * entry.get("zero_time", 0.0)])


class HorizontalModel:
    """The tilt-limited horizontal model of the module docstring, for any batch shape.

    State (..., 2, 4): per horizontal axis [position p, internal velocity w, acceleration a,
    velocity-error integral i]; outputs are position p + b w, velocity w + b a, acceleration a.
    """

    def __init__(self, entry: dict[str, float], tick_s: float) -> None:
        wn, zeta = float(entry["natural_frequency"]), float(entry["damping"])
        self.zero_time = float(entry.get("zero_time", 0.0))
        self.max_acceleration = float(entry["max_acceleration"])
        self.integral_gain = float(entry.get("integral_gain", 0.0))
        self.integral_limit = float(entry.get("integral_limit", 0.0))
        self.gain = wn / (2.0 * zeta)
        self.tick_s = float(tick_s)
        tau = 1.0 / (2.0 * zeta * wn)
        a = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0 / tau]])
        ad, bd = discretize(a, np.array([0.0, 0.0, 1.0 / tau]), tick_s)
        # One axis' [p, w, a] transition and input, kept for the compiled ticks (sim.kernels).
        self.ad, self.bd = np.ascontiguousarray(ad), np.ascontiguousarray(bd)
        # Both axes at once: (M, 8) @ (8, 8) with the state flattened as [x: p w a i, y: p w a i]
        # (the integral column is rewritten after the product).
        block = np.eye(4)
        block[:3, :3] = ad.T
        self.transition_t = np.kron(np.eye(2), block)
        self._input_gain = np.kron(np.eye(2), np.append(bd, 0.0))  # (2, 8)

    def tick(self, state: np.ndarray, setpoint: np.ndarray) -> np.ndarray:
        """State (..., 2, 4) after one controller tick under horizontal setpoints (..., 2)."""
        error = setpoint - state[..., 1]
        integral = state[..., 3] + error * self.tick_s
        np.minimum(integral, self.integral_limit, out=integral)
        np.maximum(integral, -self.integral_limit, out=integral)
        cmd = self.gain * error + self.integral_gain * integral
        # Norm limit of the 2-D demand: scale = a_max / max(|cmd|, a_max).
        squares = cmd * cmd
        norm = np.sqrt(squares[..., 0] + squares[..., 1])
        np.maximum(norm, self.max_acceleration, out=norm)
        scale = self.max_acceleration / norm
        cmd[..., 0] *= scale  # per axis: a broadcast over the short last axis costs more
        cmd[..., 1] *= scale
        out = state.reshape(-1, 8) @ self.transition_t
        out += cmd.reshape(-1, 2) @ self._input_gain
        out = out.reshape(state.shape)
        out[..., 3] = integral
        return out

    def position(self, state: np.ndarray) -> np.ndarray:
        return state[..., 0] + self.zero_time * state[..., 1]

    def velocity(self, state: np.ndarray) -> np.ndarray:
        return state[..., 1] + self.zero_time * state[..., 2]


class FastDynamics:
    """`num_envs` x `num_drones` drones flown by the fitted closed-loop model, all at once.

    Same interface as the PyBullet backend (see sim.dynamics): reset / step / state /
    kinematics / physics_steps / close; state() has the same (E, N, 12) layout. `compiled`:
    run the horizontal controller's ticks through `sim.kernels` where numba is installed.
    """

    def __init__(self, num_envs: int, num_drones: int, *, policy_hz: float = 8,
                 limits: VelocityLimits | None = None, model: dict | None = None,
                 sensor_noise: float = 0.0, seed: int | None = None,
                 compiled: bool = True) -> None:
        if num_envs < 1 or num_drones < 1:
            raise ValueError(f"num_envs and num_drones must be >= 1 (got {num_envs}, {num_drones}).")
        if not (math.isfinite(policy_hz) and policy_hz > 0):
            raise ValueError(f"policy_hz must be a finite number > 0 (got {policy_hz!r}).")
        if not (math.isfinite(sensor_noise) and sensor_noise >= 0):
            raise ValueError(f"sensor_noise must be a finite number >= 0 (got {sensor_noise!r}).")
        if model is None:
            model = load_fast_model()
        else:
            validate_fast_model(model)
        self.num_envs = int(num_envs)
        self.num_drones = int(num_drones)
        self.policy_hz = float(policy_hz)
        self.limits = limits or VelocityLimits()
        self.model = model
        self.sensor_noise = float(sensor_noise)
        self._rng = np.random.default_rng(seed)
        self._gravity = CrazyflieParams().gravity
        period = 1.0 / self.policy_hz

        # Horizontal: controller ticks per policy step (the controller's rate, or near it).
        self._ticks = max(1, round(CONTROL_HZ * period))
        self._xy_model = HorizontalModel(model["xy"], period / self._ticks)
        # Vertical and yaw: exact policy-period discretisation, one (6, 6) block-diagonal product.
        entries = [model["z"], model["yaw"]]
        mats = [discretize(*continuous_axis_model(e["natural_frequency"], e["damping"],
                                                  e.get("zero_time", 0.0)), period) for e in entries]
        self._lin_transition_t = scipy.linalg.block_diag(*[m[0].T for m in mats])
        self._lin_input = np.stack([m[1] for m in mats])  # (2, 3)
        self._lin_velocity = np.stack([velocity_output(e) for e in entries])  # (2, 3)

        shape = (self.num_envs, self.num_drones)
        self._xy = np.zeros((*shape, 2, 4))  # per horizontal axis: [p, w, a, i]
        self._compiled = compiled and kernels.available()
        self._x = np.zeros((*shape, 2, 3))  # z, yaw: [position, z1, z2]
        self._setpoints = np.zeros((*shape, 4))
        self._tilt = np.zeros((*shape, 2))  # roll, pitch
        self._tilt_rate = np.zeros((*shape, 2))
        self._update_tilt()

    @property
    def physics_steps(self) -> int:
        """Always 0: there is no physics engine behind this backend."""
        return 0

    def reset(self, env_ids: np.ndarray, positions: np.ndarray, yaws: np.ndarray | None = None) -> None:
        """Put drones of `env_ids` at rest at `positions` (len, N, 3) with headings `yaws` (len, N)."""
        env_ids = np.asarray(env_ids, dtype=np.intp).reshape(-1)
        positions = np.asarray(positions, dtype=np.float64)
        expected = (len(env_ids), self.num_drones, 3)
        if positions.shape != expected:
            raise ValueError(f"positions must have shape {expected} (got {positions.shape}).")
        yaws = np.zeros(expected[:2]) if yaws is None else np.asarray(yaws, dtype=np.float64)
        if yaws.shape != expected[:2]:
            raise ValueError(f"yaws must have shape {expected[:2]} (got {yaws.shape}).")
        self._xy[env_ids] = 0.0
        self._xy[env_ids, :, :, 0] = positions[..., :2]
        self._x[env_ids] = 0.0
        self._x[env_ids, :, 0, 0] = positions[..., 2]
        self._x[env_ids, :, 1, 0] = yaws
        self._setpoints[env_ids] = 0.0
        self._tilt[env_ids] = 0.0
        self._tilt_rate[env_ids] = 0.0

    def step(self, setpoints: np.ndarray) -> None:
        """Advance every env by one policy period under `setpoints` (E, N, 4), clamped to the limits."""
        setpoints = np.asarray(setpoints, dtype=np.float64)
        expected = (self.num_envs, self.num_drones, 4)
        if setpoints.shape != expected:
            raise ValueError(f"setpoints must have shape {expected} (got {setpoints.shape}).")
        u = self.limits.clamp(setpoints)
        self._setpoints = u
        u_xy = np.ascontiguousarray(u[..., :2])  # contiguous: each tick's error is one flat loop
        if self._compiled:  # the same ticks as a compiled loop (sim.kernels), in place: _xy
            # is C-contiguous (np.zeros, written in place only), so the reshape is a view
            kernels.horizontal_ticks(self._xy.reshape(-1, 8), u_xy.reshape(-1, 2), self._ticks,
                                     self._xy_model)
        else:
            xy = self._xy
            for _ in range(self._ticks):
                xy = self._xy_model.tick(xy, u_xy)
            self._xy = xy
        x = (self._x.reshape(-1, 6) @ self._lin_transition_t).reshape(self._x.shape)
        x += self._lin_input * u[..., 2:, None]
        self._x = x
        # The ground: a drone that reaches the plane stops there (lands) instead of sinking.
        grounded = x[..., 0, 0] < GROUND_HEIGHT
        if grounded.any():
            x[grounded, 0, :] = 0.0
            x[grounded, 0, 0] = GROUND_HEIGHT
        previous = self._tilt
        self._update_tilt()
        self._tilt_rate = (self._tilt - previous) * self.policy_hz

    def state(self) -> np.ndarray:
        """(E, N, 12) float64, the layout of PyBulletWorld.state(): pos, vel (world), roll/pitch/yaw,
        body rates. Yaw is wrapped to [-pi, pi)."""
        xy_model = self._xy_model
        terms = self._x * self._lin_velocity
        lin_vel = terms[..., 0] + terms[..., 1] + terms[..., 2]  # z, yaw rate (.sum(-1), cheaper)
        yaw = (self._x[..., 1, 0] + np.pi) % (2.0 * np.pi) - np.pi
        out = np.concatenate([
            xy_model.position(self._xy), self._x[..., :1, 0], xy_model.velocity(self._xy), lin_vel[..., :1],
            self._tilt, yaw[..., None], self._tilt_rate, lin_vel[..., 1:],
        ], axis=-1)
        if self.sensor_noise > 0.0:
            out[..., :6] += self._rng.normal(0.0, self.sensor_noise, out[..., :6].shape)
        return out

    def kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and velocities (E, N, 3) each: `state()[..., 0:3]` and `[..., 3:6]`, the
        same numbers without building the attitude columns (the vector env's every step)."""
        if self.sensor_noise > 0.0:  # the noise draw is state()'s
            state = self.state()
            return state[..., 0:3], state[..., 3:6]
        xy_model, z = self._xy_model, self._x[..., 0, :]
        pos = np.empty(z.shape[:-1] + (3,))
        vel = np.empty_like(pos)
        pos[..., :2] = xy_model.position(self._xy)
        pos[..., 2] = z[..., 0]
        vel[..., :2] = xy_model.velocity(self._xy)
        terms = z * self._lin_velocity[0]
        vel[..., 2] = terms[..., 0] + terms[..., 1] + terms[..., 2]  # as state()'s lin_vel
        return pos, vel

    def close(self) -> None:
        """Nothing to release; present for interface parity with the PyBullet backend."""

    def _update_tilt(self) -> None:
        """Small-angle roll and pitch that tilt the thrust to the model's horizontal acceleration."""
        acc = self._xy[..., 2]
        yaw = self._x[..., 1, 0]
        cos_yaw, sin_yaw = np.cos(yaw), np.sin(yaw)
        forward = cos_yaw * acc[..., 0] + sin_yaw * acc[..., 1]
        left = -sin_yaw * acc[..., 0] + cos_yaw * acc[..., 1]
        self._tilt = np.stack([np.arctan2(-left, self._gravity), np.arctan2(forward, self._gravity)], axis=-1)
