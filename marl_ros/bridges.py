"""The ROS-free part of the bridges to real drone stacks: velocity from motion-capture poses,
the motion-capture -> world frame change, rigid-body topic names, quaternion algebra.

Motion-capture drivers publish only poses; the agents need a world-frame velocity too (the
policy observes it). `VelocityFilter` estimates it by a finite difference over the poses'
own measurement stamps followed by a first-order low-pass filter. Stamps, not arrival times,
because DDS and the Python executor add a few milliseconds of jitter to every delivery while
the tracker's stamps are exact; dropped frames then only lengthen one difference instead of
corrupting it. The filter's time constant trades noise for lag: on a 1 m/s circle of 1 m
radius tracked at 110 Hz with 1 mm noise, 0.04 s minimises the RMS error (README,
"Bridges to real drone stacks").

Quaternions here are arrays (w, x, y, z), Hamilton convention, as PX4 writes them; ROS
messages spell the same four numbers as fields x, y, z, w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEFAULT_TIME_CONSTANT_S = 0.04


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation `a` after `b` (Hamilton product a * b), both (w, x, y, z)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw])


def quaternion_conjugate(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def rotation_matrix(q: np.ndarray) -> np.ndarray:
    """3x3 matrix of the unit quaternion q (w, x, y, z): maps child-frame vectors to the
    parent frame."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def yaw_quaternion(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0)])


def quaternion_yaw(q: np.ndarray) -> float:
    """Heading of q (w, x, y, z) about its parent frame's z axis."""
    w, x, y, z = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


@dataclass(frozen=True)
class WorldFrame:
    """Where the motion-capture frame sits in the policy's world frame (ENU, origin at the
    field's corner): the mocap origin at `offset`, its axes turned by `yaw` about z. Trackers
    are calibrated wherever the wand was put down; the policy's field starts at (0, 0)."""

    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw: float = 0.0

    def position(self, mocap_position: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        x, y, z = mocap_position
        return np.array([c * x - s * y, s * x + c * y, z]) + np.asarray(self.offset)

    def orientation(self, mocap_orientation: np.ndarray) -> np.ndarray:
        if self.yaw == 0.0:
            return np.asarray(mocap_orientation, dtype=np.float64)
        return quaternion_multiply(yaw_quaternion(self.yaw), mocap_orientation)


class VelocityFilter:
    """World-frame velocity of one rigid body from its stamped positions.

    Each new pose gives a finite difference over its stamp and the previous one; the
    estimate follows it through a first-order low-pass filter whose gain depends on the
    actual interval (1 - exp(-dt / time_constant)), so dropped frames and irregular stamps
    weigh each difference by the time it covers and the response does not depend on the
    frame rate. A stamp not newer than the last one (a duplicate, or a frame delivered out
    of order) is ignored: a zero or negative interval has no velocity. After a gap longer
    than `max_gap` the difference would average over the gap, so the filter starts over
    from the next two poses.
    """

    def __init__(self, time_constant: float = DEFAULT_TIME_CONSTANT_S, max_gap: float = 0.5):
        if not time_constant > 0.0:
            raise ValueError(f"the velocity filter's time constant must be positive (got "
                             f"{time_constant!r} s); use e.g. {DEFAULT_TIME_CONSTANT_S} s.")
        self.time_constant = time_constant
        self.max_gap = max_gap
        self.stamp: float | None = None
        self.position: np.ndarray | None = None
        self.velocity: np.ndarray | None = None  # None until two poses within max_gap

    def update(self, stamp: float, position: np.ndarray) -> bool:
        """Take a pose measured at `stamp` (s); False if it was ignored (not newer, or
        non-finite)."""
        position = np.asarray(position, dtype=np.float64)
        if not (math.isfinite(stamp) and np.isfinite(position).all()):
            return False
        if self.stamp is not None and stamp <= self.stamp:
            return False
        if self.stamp is None or stamp - self.stamp > self.max_gap:
            self.velocity = None  # first pose, or after a gap: nothing to difference yet
        else:
            dt = stamp - self.stamp
            raw = (position - self.position) / dt
            if self.velocity is None:
                self.velocity = raw  # seed with the first difference, not with zero
            else:
                gain = 1.0 - math.exp(-dt / self.time_constant)
                self.velocity = self.velocity + gain * (raw - self.velocity)
        self.stamp, self.position = stamp, position
        return True


@dataclass
class RigidBodyTrack:
    """One tracked body: its velocity filter and when its last new pose arrived (on the
    bridge's clock). Freshness is judged by arrival, not by the pose's stamp, so a tracker
    whose clock is offset from the bridge's is not declared lost, while a frozen tracker that
    repeats one stamp is."""

    name: str
    filter: VelocityFilter
    orientation: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))
    arrival: float | None = None
    reported_lost: bool = False  # the bridge has warned that this body stopped updating

    def update(self, stamp: float, position: np.ndarray, orientation: np.ndarray,
               arrival: float) -> bool:
        """False (and nothing changes) for an ignored pose: not newer than the last one, or a
        non-finite / zero quaternion or position (how some drivers mark a lost track)."""
        orientation = np.asarray(orientation, dtype=np.float64)
        norm = float(np.linalg.norm(orientation))
        if not (math.isfinite(norm) and norm > 0.0):
            return False
        if not self.filter.update(stamp, position):
            return False
        self.orientation = orientation / norm
        self.arrival = arrival
        return True

    def fresh(self, now: float, timeout: float) -> bool:
        """A velocity is known and the last new pose arrived at most `timeout` s ago."""
        return (self.arrival is not None and self.filter.velocity is not None
                and now - self.arrival <= timeout)


def default_bodies(num_drones: int, prefix: str = "drone_") -> list[str]:
    return [f"{prefix}{i}" for i in range(num_drones)]


def pose_topics(pattern: str, bodies: list[str]) -> list[str]:
    """The pose topic of each rigid body: `pattern` with {body} (the name) and {i} (the drone
    index) filled in, e.g. "/{body}/pose" or "/vrpn_mocap/{body}/pose"."""
    try:
        topics = [pattern.format(body=body, i=i) for i, body in enumerate(bodies)]
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"pose_topic {pattern!r} is not a valid pattern ({err!r}); use "
                         "{body} for the rigid body's name and {i} for the drone index, "
                         "e.g. '/{body}/pose'.") from None
    if len(set(topics)) != len(topics):
        raise ValueError(f"pose_topic {pattern!r} gives the same topic to several drones; "
                         "put {body} or {i} in it.")
    return topics
