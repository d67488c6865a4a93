"""The drone model: Crazyflie 2.x physical parameters, its URDF, and velocity-setpoint limits.

Every backend (PyBullet physics, the fast closed-loop model, the ROS simulator node) takes its
numbers from here, so a change to the airframe is made once. The URDF carries mass and inertia
for PyBullet; `check_urdf_matches_params` keeps the two descriptions from drifting apart.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

URDF_PATH = Path(__file__).resolve().parent / "assets" / "cf2x.urdf"
"""The Crazyflie 2.x URDF shipped with the package (one base link, X configuration)."""


@dataclass(frozen=True)
class CrazyflieParams:
    """Published Crazyflie 2.x figures (SI units, RPM for motor speed).

    kf and km map squared motor speed (RPM^2) to thrust (N) and drag torque (N m). Drag and
    ground-effect coefficients follow the usual rotor-drag and image-method models; they only
    matter when those effects are switched on.
    """

    mass: float = 0.027
    arm: float = 0.0397
    ixx: float = 1.4e-5
    iyy: float = 1.4e-5
    izz: float = 2.17e-5
    kf: float = 3.16e-10
    km: float = 7.94e-12
    thrust_to_weight: float = 2.25
    gravity: float = 9.81
    prop_radius: float = 0.0231348
    # Rotor drag: force = -diag(xy, xy, z) * (sum of rotor speeds in rad/s) * body velocity.
    drag_coeff_xy: float = 9.1785e-7
    drag_coeff_z: float = 10.311e-7
    # Ground effect: each rotor's thrust grows by coeff * (prop_radius / (4 h))^2 near the ground.
    ground_effect_coeff: float = 11.36859
    # Below this height the ground-effect term is held constant (the model diverges as h -> 0).
    ground_effect_min_height: float = 0.01
    # Spin direction of motors 0..3 (+1: reaction torque about +z); see `motor_positions`.
    motor_spin: tuple[float, float, float, float] = field(default=(-1.0, 1.0, -1.0, 1.0))

    @property
    def contact_distance(self) -> float:
        """Two rotor spans: two drones closer than this (centre to centre) touch."""
        return 2.0 * (self.arm + self.prop_radius)

    def __post_init__(self) -> None:
        for name in ("mass", "arm", "ixx", "iyy", "izz", "kf", "km", "gravity", "prop_radius"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"CrazyflieParams.{name} must be a finite number > 0 (got {value!r}).")
        if not self.thrust_to_weight > 1.0:
            raise ValueError(
                f"CrazyflieParams.thrust_to_weight must be > 1 to hover (got {self.thrust_to_weight!r}).")

    @property
    def weight(self) -> float:
        """Weight in newtons."""
        return self.mass * self.gravity

    @property
    def inertia(self) -> np.ndarray:
        """Diagonal of the body inertia tensor (kg m^2)."""
        return np.array([self.ixx, self.iyy, self.izz])

    @property
    def hover_rpm(self) -> float:
        """Motor speed at which the four rotors carry the weight."""
        return math.sqrt(self.weight / (4.0 * self.kf))

    @property
    def max_rpm(self) -> float:
        """Motor speed limit implied by the thrust-to-weight ratio."""
        return math.sqrt(self.thrust_to_weight * self.weight / (4.0 * self.kf))

    @property
    def max_thrust(self) -> float:
        """Collective thrust at max_rpm on all four motors (N)."""
        return 4.0 * self.kf * self.max_rpm**2

    @property
    def motor_positions(self) -> np.ndarray:
        """(4, 2) x, y of motors 0..3 in the body frame: front-left, back-left, back-right, front-right."""
        d = self.arm / math.sqrt(2.0)
        return np.array([[d, d], [-d, d], [-d, -d], [d, -d]])

    def allocation_matrix(self) -> np.ndarray:
        """(4, 4) map from per-motor thrusts (N) to [collective thrust, tau_x, tau_y, tau_z].

        Roll torque is sum(y_i F_i), pitch torque is -sum(x_i F_i); yaw torque is the rotors'
        reaction torque, km/kf times thrust with the motor's spin sign.
        """
        xy = self.motor_positions
        return np.stack([
            np.ones(4),
            xy[:, 1],
            -xy[:, 0],
            np.asarray(self.motor_spin) * (self.km / self.kf),
        ])


def read_urdf_inertial(path: str | Path = URDF_PATH) -> dict[str, float]:
    """Mass and inertia diagonal of the URDF's base link, as {'mass', 'ixx', 'iyy', 'izz'}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"drone URDF not found at {path}; reinstall the package or pass a valid path.")
    root = ET.parse(path).getroot()
    inertial = root.find("link/inertial")
    if inertial is None:
        raise ValueError(f"{path} has no <link><inertial> element; the drone needs mass and inertia.")
    mass = inertial.find("mass")
    inertia = inertial.find("inertia")
    if mass is None or inertia is None:
        raise ValueError(f"{path} must give <mass> and <inertia> inside the base link's <inertial>.")
    return {
        "mass": float(mass.attrib["value"]),
        "ixx": float(inertia.attrib["ixx"]),
        "iyy": float(inertia.attrib["iyy"]),
        "izz": float(inertia.attrib["izz"]),
    }


def check_urdf_matches_params(params: CrazyflieParams | None = None,
                              path: str | Path = URDF_PATH, rtol: float = 1e-6) -> None:
    """Raise ValueError if the URDF's mass or inertia differs from `params`.

    PyBullet integrates with the URDF's numbers while the controller and the fast model use
    CrazyflieParams; a silent mismatch would bias every fitted and tuned figure.
    """
    params = params or CrazyflieParams()
    urdf = read_urdf_inertial(path)
    for name, value in urdf.items():
        expected = getattr(params, name)
        if not math.isclose(value, expected, rel_tol=rtol):
            raise ValueError(
                f"URDF {Path(path).name} has {name}={value:g} but CrazyflieParams.{name}={expected:g}; "
                f"make them agree.")


@dataclass(frozen=True)
class VelocityLimits:
    """Bounds on velocity setpoints (vx, vy, vz, yaw_rate): m/s, m/s, rad/s.

    `vxy` bounds each horizontal component separately (a box, like the discrete action set's
    scaling), `vz` the vertical speed and `yaw_rate` the turn rate.
    """

    vxy: float = 2.0
    vz: float = 1.0
    yaw_rate: float = 1.5

    def __post_init__(self) -> None:
        for name in ("vxy", "vz", "yaw_rate"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"VelocityLimits.{name} must be a finite number > 0 (got {value!r}).")

    def as_array(self) -> np.ndarray:
        """(4,) per-component bound in setpoint order (vx, vy, vz, yaw_rate)."""
        return np.array([self.vxy, self.vxy, self.vz, self.yaw_rate])

    def clamp(self, setpoints: np.ndarray) -> np.ndarray:
        """Clip each component of (..., 4) setpoints to its bound; returns a new float64 array."""
        setpoints = np.asarray(setpoints, dtype=np.float64)
        if setpoints.shape[-1:] != (4,):
            raise ValueError(
                f"setpoints must have shape (..., 4) = (vx, vy, vz, yaw_rate) (got {setpoints.shape}).")
        bound = self.as_array()
        return np.clip(setpoints, -bound, bound)
