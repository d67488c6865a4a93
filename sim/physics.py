"""PyBullet world with N Crazyflie drones flown by velocity setpoints.

Physics runs at 240 Hz, the cascaded controller at 48 Hz. Throughput is a requirement (the
`pybullet` backend trains and evaluates on it), so the per-physics-step work is the minimum
PyBullet needs: one collective-thrust force and one torque per drone (external forces are
cleared by every stepSimulation), then the step. Everything else happens once per control
tick, in numpy, for all drones at once: reading states, the controller, motor speeds, drag and
ground effect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pybullet as p
import pybullet_data

from sim.control import VelocityController, matrix_to_euler, quaternion_to_matrix
from sim.drone import URDF_PATH, CrazyflieParams, VelocityLimits

_ORIGIN = (0.0, 0.0, 0.0)

OBSTACLE_GROUP = 0x40
"""Collision group bit of the obstacle bodies: range rays test this group only, so they pass
through every drone (their own body included) and the ground."""

MAX_ACTUATION_DELAY = 1
"""Control ticks (1/48 s each) of motor delay the default controller gains stay stable with."""


class PyBulletWorld:
    """`num_drones` quadrotors in one PyBullet client, stepped in blocks of physics steps.

    Optional effects (all off by default): `drag` rotor drag proportional to body velocity and
    summed rotor speed; `ground_effect` extra thrust close to z = 0; `sensor_noise` Gaussian std
    (m, m/s) added to reported position and velocity; `actuation_delay` motor commands applied
    that many control ticks late; `randomize` per-drone +/- fractional spread of mass, kf and km,
    re-sampled at every reset.
    """

    def __init__(self, num_drones: int, *, physics_hz: int = 240, ctrl_hz: int = 48,
                 limits: VelocityLimits | None = None, gui: bool = False, drag: bool = False,
                 ground_effect: bool = False, sensor_noise: float = 0.0, actuation_delay: int = 0,
                 randomize: float = 0.0, seed: int | None = None,
                 params: CrazyflieParams | None = None) -> None:
        if not (isinstance(num_drones, int | np.integer) and num_drones >= 1):
            raise ValueError(f"num_drones must be an integer >= 1 (got {num_drones!r}).")
        if physics_hz <= 0 or ctrl_hz <= 0 or physics_hz % ctrl_hz != 0:
            raise ValueError(f"physics_hz must be a positive multiple of ctrl_hz "
                             f"(got physics_hz={physics_hz!r}, ctrl_hz={ctrl_hz!r}).")
        if not (math.isfinite(sensor_noise) and sensor_noise >= 0):
            raise ValueError(f"sensor_noise must be a finite number >= 0 (got {sensor_noise!r}).")
        if not (isinstance(actuation_delay, int | np.integer) and 0 <= actuation_delay <= MAX_ACTUATION_DELAY):
            raise ValueError(f"actuation_delay must be an integer in [0, {MAX_ACTUATION_DELAY}] control ticks; "
                             f"the default gains lose attitude stability beyond (got {actuation_delay!r}).")
        if not (0.0 <= randomize < 1.0):
            raise ValueError(f"randomize must be in [0, 1) (got {randomize!r}).")
        self.num_drones = int(num_drones)
        self.physics_hz = int(physics_hz)
        self.ctrl_hz = int(ctrl_hz)
        self.limits = limits or VelocityLimits()
        self.params = params or CrazyflieParams()
        self.drag = drag
        self.ground_effect = ground_effect
        self.sensor_noise = float(sensor_noise)
        self.actuation_delay = int(actuation_delay)
        self.randomize = float(randomize)
        self._rng = np.random.default_rng(seed)
        self._steps_per_tick = self.physics_hz // self.ctrl_hz
        self._physics_steps = 0
        self.controller = VelocityController(self.num_drones, self.params, ctrl_hz=self.ctrl_hz)

        self._client = p.connect(p.GUI if gui else p.DIRECT)
        cid = self._client
        p.setGravity(0.0, 0.0, -self.params.gravity, physicsClientId=cid)
        p.setTimeStep(1.0 / self.physics_hz, physicsClientId=cid)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        self._plane = p.loadURDF("plane.urdf", physicsClientId=cid)
        self._bodies: list[int] = []
        for i in range(self.num_drones):
            body = p.loadURDF(str(URDF_PATH), [0.0, 0.0, 1.0 + i], flags=p.URDF_USE_INERTIA_FROM_FILE,
                              physicsClientId=cid)
            # No built-in damping (drag is modelled explicitly) and no sleeping: a deactivated
            # body ignores external forces.
            p.changeDynamics(body, -1, linearDamping=0.0, angularDamping=0.0,
                             activationState=p.ACTIVATION_STATE_DISABLE_SLEEPING, physicsClientId=cid)
            self._bodies.append(body)

        n = self.num_drones
        self._mass_scale = np.ones(n)
        self._kf_scale = np.ones(n)
        self._km_scale = np.ones(n)
        self._motor_xy = self.params.motor_positions
        self._motor_spin = np.asarray(self.params.motor_spin)
        self._setpoints = np.zeros((n, 4))
        self._rpm_queue = np.zeros((self.actuation_delay + 1, n, 4))
        self._forces: list[Sequence[float]] = [_ORIGIN] * n  # per drone, held until the next tick
        self._torques: list[Sequence[float]] = [_ORIGIN] * n
        self._pos = np.zeros((n, 3))
        self._vel = np.zeros((n, 3))
        self._rot = np.tile(np.eye(3), (n, 1, 1))
        self._rates = np.zeros((n, 3))
        self._obstacle_bodies: list[int] = []
        self._obstacle_shapes: dict[tuple, tuple[int, int]] = {}  # (box, hx, hy) -> shapes
        self._layout = (np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, dtype=bool))
        self.reset(np.column_stack([np.arange(n, dtype=float), np.zeros(n), np.ones(n)]))

    # -- public API ---------------------------------------------------------------------------
    @property
    def physics_steps(self) -> int:
        """Total stepSimulation calls since construction."""
        return self._physics_steps

    def reset(self, positions: np.ndarray, yaws: np.ndarray | None = None) -> None:
        """Place every drone at rest at `positions` (N, 3) with headings `yaws` (N,), reset the controller."""
        n = self.num_drones
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (n, 3):
            raise ValueError(f"positions must have shape ({n}, 3) (got {positions.shape}).")
        yaws = np.zeros(n) if yaws is None else np.asarray(yaws, dtype=np.float64)
        if yaws.shape != (n,):
            raise ValueError(f"yaws must have shape ({n},) (got {yaws.shape}).")
        cid = self._client
        if self.randomize > 0.0:
            spread = self.randomize
            self._mass_scale = 1.0 + self._rng.uniform(-spread, spread, n)
            self._kf_scale = 1.0 + self._rng.uniform(-spread, spread, n)
            self._km_scale = 1.0 + self._rng.uniform(-spread, spread, n)
        for i, body in enumerate(self._bodies):
            p.resetBasePositionAndOrientation(body, positions[i].tolist(),
                                              p.getQuaternionFromEuler([0.0, 0.0, float(yaws[i])]),
                                              physicsClientId=cid)
            p.resetBaseVelocity(body, _ORIGIN, _ORIGIN, physicsClientId=cid)
            if self.randomize > 0.0:
                p.changeDynamics(body, -1, mass=float(self.params.mass * self._mass_scale[i]),
                                 physicsClientId=cid)
        self.controller.reset()
        self._setpoints[:] = 0.0
        self._rpm_queue[:] = self.params.hover_rpm
        self._forces = [_ORIGIN] * n
        self._torques = [_ORIGIN] * n
        self._tick_phase = 0
        self._read_states()

    def step(self, setpoints: np.ndarray, duration_s: float) -> None:
        """Track `setpoints` (N, 4) = (vx, vy, vz, yaw_rate), clamped to the limits, for `duration_s`.

        Runs round(duration_s * physics_hz) physics steps; the controller runs on every
        physics_hz / ctrl_hz-th step, counted across calls so that ticks stay evenly spaced.
        """
        setpoints = np.asarray(setpoints, dtype=np.float64)
        if setpoints.shape != (self.num_drones, 4):
            raise ValueError(f"setpoints must have shape ({self.num_drones}, 4) (got {setpoints.shape}).")
        self._setpoints = self.limits.clamp(setpoints)
        cid, bodies = self._client, self._bodies
        apply_force, apply_torque, step = p.applyExternalForce, p.applyExternalTorque, p.stepSimulation
        link_frame = p.LINK_FRAME
        held = list(zip(bodies, self._forces, self._torques, strict=True))
        for k in range(round(duration_s * self.physics_hz)):
            if self._tick_phase == 0:
                if k > 0:  # at k = 0 the states are those read at the end of the last call
                    self._read_states()
                self._control_tick()
                held = list(zip(bodies, self._forces, self._torques, strict=True))
            self._tick_phase = (self._tick_phase + 1) % self._steps_per_tick
            # Positional arguments: PyBullet parses them in about half the time of keywords.
            for body, force, torque in held:
                apply_force(body, -1, force, _ORIGIN, link_frame, cid)
                apply_torque(body, -1, torque, link_frame, cid)
            step(cid)
        self._physics_steps += round(duration_s * self.physics_hz)
        self._read_states()

    def state(self) -> np.ndarray:
        """(N, 12) float64: position (world ENU), linear velocity (world), roll/pitch/yaw,
        angular velocity (body frame, as a gyro reports it). Noise, if any, on position and velocity."""
        out = np.concatenate([self._pos, self._vel, matrix_to_euler(self._rot), self._rates], axis=1)
        if self.sensor_noise > 0.0:
            out[:, :6] += self._rng.normal(0.0, self.sensor_noise, (self.num_drones, 6))
        return out

    def set_obstacles(self, centres: np.ndarray, half_sizes: np.ndarray, boxes: np.ndarray) -> None:
        """Replace the obstacles by a layout (sim.obstacles): (O, 2) centres, (O, 2) half sizes
        (a cylinder's radius twice), (O,) box flags. Each is a static body OBSTACLE_HEIGHT m
        tall standing on the ground, with a collision shape (the range rays hit it) whose
        collisions with the drones are switched off: a drone flies through an obstacle as in
        the fast backend, and the scenario scores it. Shapes are kept per size (sizes come on
        a 1 cm grid), since PyBullet cannot free a shape once a body used it."""
        from sim.obstacles import OBSTACLE_HEIGHT

        cid = self._client
        for body in self._obstacle_bodies:
            p.removeBody(body, physicsClientId=cid)
        self._obstacle_bodies = []
        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        half_sizes = np.asarray(half_sizes, dtype=np.float64).reshape(-1, 2)
        boxes = np.asarray(boxes, dtype=bool).reshape(-1)
        self._layout = (centres, half_sizes, boxes)
        for centre, half, box in zip(centres, half_sizes, boxes, strict=True):
            key = (bool(box), round(float(half[0]), 6), round(float(half[1]), 6))
            if key not in self._obstacle_shapes:
                if box:
                    extents = [float(half[0]), float(half[1]), OBSTACLE_HEIGHT / 2]
                    shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=extents, physicsClientId=cid)
                    visual = p.createVisualShape(p.GEOM_BOX, halfExtents=extents,
                                                 rgbaColor=[0.5, 0.5, 0.5, 1], physicsClientId=cid)
                else:
                    shape = p.createCollisionShape(p.GEOM_CYLINDER, radius=float(half[0]),
                                                   height=OBSTACLE_HEIGHT, physicsClientId=cid)
                    visual = p.createVisualShape(p.GEOM_CYLINDER, radius=float(half[0]),
                                                 length=OBSTACLE_HEIGHT,
                                                 rgbaColor=[0.5, 0.5, 0.5, 1], physicsClientId=cid)
                self._obstacle_shapes[key] = (shape, visual)
            shape, visual = self._obstacle_shapes[key]
            body = p.createMultiBody(0.0, shape, visual,
                                     [float(centre[0]), float(centre[1]), OBSTACLE_HEIGHT / 2],
                                     physicsClientId=cid)
            p.setCollisionFilterGroupMask(body, -1, OBSTACLE_GROUP, -1, physicsClientId=cid)
            for drone in self._bodies:
                p.setCollisionFilterPair(drone, body, -1, -1, 0, physicsClientId=cid)
            self._obstacle_bodies.append(body)

    def range_readings(self, rays: int, range_max: float) -> np.ndarray:
        """(N, R) distances, metres, along `rays` horizontal rays from every drone's centre
        (ray k at heading 2 pi k / R in the world frame, sim.obstacles.ray_angles) to the first
        obstacle body, range_max where none is in range: one rayTestBatch. Rays see only the
        obstacles (OBSTACLE_GROUP). A ray cannot hit a body it starts inside, so a drone whose
        centre is inside an obstacle reads 0, as the analytic cast does."""
        from sim.obstacles import obstacle_clearances, ray_angles

        n = self.num_drones
        out = np.full((n, rays), float(range_max))
        if rays == 0 or not self._obstacle_bodies:
            return out
        angles = ray_angles(rays)
        direction = np.stack([np.cos(angles), np.sin(angles), np.zeros(rays)], axis=-1)
        start = np.repeat(self._pos, rays, axis=0)  # (N R, 3), drone by drone
        end = start + range_max * np.tile(direction, (n, 1))
        hits = p.rayTestBatch(start.tolist(), end.tolist(), collisionFilterMask=OBSTACLE_GROUP,
                              physicsClientId=self._client)
        fraction = np.array([h[2] if h[0] >= 0 else 1.0 for h in hits]).reshape(n, rays)
        out = fraction * range_max
        inside = (obstacle_clearances(self._pos, *self._layout) < 0.0).any(axis=-1)
        out[inside] = 0.0
        return out

    def close(self) -> None:
        """Disconnect the PyBullet client (safe to call twice)."""
        if self._client is not None and p.isConnected(physicsClientId=self._client):
            p.disconnect(physicsClientId=self._client)
        self._client = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: pybullet may already be gone
            pass

    # -- internals ----------------------------------------------------------------------------
    def _read_states(self) -> None:
        """Refresh pos/vel/rotation/body rates from PyBullet (2 calls per drone)."""
        cid, pose, velocity = self._client, p.getBasePositionAndOrientation, p.getBaseVelocity
        # One (N, 13) array per read: position, quaternion, linear and angular velocity.
        rows = []
        for body in self._bodies:
            position, orientation = pose(body, physicsClientId=cid)
            linear, angular = velocity(body, physicsClientId=cid)
            rows.append(position + orientation + linear + angular)
        rows = np.array(rows)
        self._pos = rows[:, 0:3]
        self._rot = quaternion_to_matrix(rows[:, 3:7])
        self._vel = rows[:, 7:10]
        self._rates = np.einsum("nji,nj->ni", self._rot, rows[:, 10:13])

    def _control_tick(self) -> None:
        """Controller -> motor speeds -> the force and torque held until the next tick, on the
        states just read."""
        prm = self.params
        rpm_cmd = self.controller.compute(self._rot, self._vel, self._rates, self._setpoints)
        # Actuation delay: a FIFO of motor commands, oldest applied.
        if self.actuation_delay:
            self._rpm_queue = np.roll(self._rpm_queue, -1, axis=0)
        self._rpm_queue[-1] = rpm_cmd
        rpm = self._rpm_queue[0]
        rpm_sq = rpm**2
        motor_thrust = prm.kf * self._kf_scale[:, None] * rpm_sq
        if self.ground_effect:
            height = np.maximum(self._pos[:, 2], prm.ground_effect_min_height)
            # Image-method model, per rotor, with the rotors' height taken as the body's.
            gain = 1.0 + prm.ground_effect_coeff * (prm.prop_radius / (4.0 * height)) ** 2
            motor_thrust = motor_thrust * gain[:, None]
        xy = self._motor_xy
        force = np.zeros((self.num_drones, 3))
        force[:, 2] = motor_thrust.sum(axis=1)
        torque = np.empty((self.num_drones, 3))
        torque[:, 0] = motor_thrust @ xy[:, 1]
        torque[:, 1] = -(motor_thrust @ xy[:, 0])
        torque[:, 2] = (prm.km * self._km_scale[:, None] * rpm_sq) @ self._motor_spin
        if self.drag:
            omega_sum = rpm.sum(axis=1) * (2.0 * math.pi / 60.0)
            vel_body = np.einsum("nji,nj->ni", self._rot, self._vel)
            coeff = np.array([prm.drag_coeff_xy, prm.drag_coeff_xy, prm.drag_coeff_z])
            force -= coeff * omega_sum[:, None] * vel_body
        self._forces = force.tolist()  # PyBullet takes each drone's [x, y, z] as a list
        self._torques = torque.tolist()
