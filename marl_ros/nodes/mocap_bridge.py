"""mocap_bridge: motion-capture rigid-body poses -> each drone's odometry and the swarm state.

VRPN-based motion-capture drivers for ROS 2 (Vicon, OptiTrack, ...) publish one
`geometry_msgs/PoseStamped` per rigid body and frame (vrpn_mocap on
`/vrpn_mocap/<body>/pose`, vrpn_client_ros on `/<body>/pose`), and usually no velocity. The agents need `/<prefix><i>/odom` (`nav_msgs/Odometry`, twist = velocity
in the world frame) and `/swarm/state` (messages.py), so this node, per drone i:

- maps rigid body `bodies[i]` (topic `pose_topic` with {body}/{i} filled in) to drone i and
  moves its pose into the policy's world frame (`world_offset`, `world_yaw`);
- estimates the velocity with `marl_ros.bridges.VelocityFilter` (finite difference over the
  poses' stamps, first-order low-pass of `velocity_time_constant`); duplicate and
  out-of-order stamps are ignored;
- publishes the odometry at once, one per new pose, stamped with the pose's own stamp;
- publishes the swarm state at `swarm_rate`, each row stamped with that body's last pose
  stamp.

A body with no new pose for `stale_timeout` (by arrival on this node's clock) is left out of
the swarm state (agents see one neighbour fewer, as out of radio range), gets no odometry
(its own agent hovers on its stale-odometry rule) and is named in a throttled warning; it is
back in as soon as two new poses arrive.
"""

from __future__ import annotations

import sys

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray

from marl_ros.bridges import (
    DEFAULT_TIME_CONSTANT_S,
    RigidBodyTrack,
    VelocityFilter,
    WorldFrame,
    default_bodies,
    pose_topics,
)
from marl_ros.nodes.agent_node import _describe
from marl_ros.nodes.messages import SENSOR_QOS, make_odometry, pack_swarm_state, stamp_to_seconds
from marl_ros.nodes.process import run_node_process

# Best effort is compatible with reliable and best-effort driver publishers alike; a few
# frames of depth so that a burst delivered between two spins is differenced, not dropped.
POSE_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.BEST_EFFORT)
WARN_PERIOD_S = 2.0


class MocapBridge(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("mocap_bridge", **kwargs)
        p = self.declare_parameter
        p("num_drones", 4, _describe("drones in the swarm", 1, 1024, integer=True))
        p("namespace_prefix", "drone_", _describe("drone i lives in /<prefix><i>"))
        g = self.get_parameter
        n, prefix = g("num_drones").value, g("namespace_prefix").value
        p("bodies", default_bodies(n, prefix), _describe(
            "rigid-body name of drone 0, 1, ... in the motion-capture system"))
        p("pose_topic", "/{body}/pose", _describe(
            "pose topic per rigid body (geometry_msgs/PoseStamped); {body} = its name, "
            "{i} = the drone index"))
        p("odom_topic", "odom", _describe("per-drone odometry out, under /<prefix><i>"))
        p("swarm_topic", "/swarm/state", _describe("swarm state out (messages.py layout)"))
        p("swarm_rate", 50.0, _describe("swarm-state messages per second", 1.0, 1000.0))
        p("velocity_time_constant", DEFAULT_TIME_CONSTANT_S, _describe(
            "s, low-pass time constant of the finite-difference velocity: longer = less "
            "noise, more lag", 0.001, 10.0))
        p("stale_timeout", 0.5, _describe("s without a new pose after which a body is left "
                                          "out of the swarm state", 0.01, 60.0))
        p("world_offset", [0.0, 0.0, 0.0], ParameterDescriptor(description=(
            "position (m) of the motion-capture origin in the world frame (ENU, origin at "
            "the field's corner)")))
        p("world_yaw", 0.0, _describe("rad, heading of the motion-capture x axis in the "
                                      "world frame", -7.0, 7.0))
        bodies = list(g("bodies").value)
        if len(bodies) != n:
            raise ValueError(f"bodies lists {len(bodies)} rigid bodies but num_drones is {n}; "
                             "give one rigid-body name per drone, drone 0 first.")
        offset = list(g("world_offset").value)
        if len(offset) != 3:
            raise ValueError(f"world_offset has {len(offset)} values; give x, y, z in metres.")
        self.world = WorldFrame(tuple(float(v) for v in offset), float(g("world_yaw").value))
        self.stale = g("stale_timeout").value
        tau = g("velocity_time_constant").value
        topics = pose_topics(g("pose_topic").value, bodies)  # raises ValueError on a bad pattern
        self.tracks = [RigidBodyTrack(body, VelocityFilter(tau, max_gap=self.stale))
                       for body in bodies]
        self.children = [f"{prefix}{i}" for i in range(n)]
        self.odom_pubs = [self.create_publisher(Odometry, f"/{prefix}{i}/{g('odom_topic').value}",
                                                SENSOR_QOS) for i in range(n)]
        for i, topic in enumerate(topics):
            self.create_subscription(PoseStamped, topic, lambda msg, i=i: self.on_pose(i, msg),
                                     POSE_QOS)
        self.swarm_pub = self.create_publisher(Float64MultiArray, g("swarm_topic").value,
                                               SENSOR_QOS)
        self.started = self.now()
        self.timer = self.create_timer(1.0 / g("swarm_rate").value, self.publish_swarm)
        pairs = ", ".join(f"{b} -> {c}" for b, c in zip(bodies, self.children, strict=True))
        self.get_logger().info(f"tracking {n} rigid bodies ({pairs}) on {topics[0]}, ...; "
                               f"velocity time constant {tau:g} s")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_pose(self, i: int, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        track = self.tracks[i]
        position = self.world.position(np.array([p.x, p.y, p.z]))
        orientation = self.world.orientation(np.array([q.w, q.x, q.y, q.z]))
        if not track.update(stamp_to_seconds(msg.header.stamp), position, orientation,
                            self.now()):
            return  # duplicate, out of order, or a lost-track marker
        velocity = track.filter.velocity
        if velocity is None:
            return  # first pose (or first after a gap): no velocity yet
        if track.reported_lost:
            track.reported_lost = False
            self.get_logger().info(f"rigid body {track.name} ({self.children[i]}) is tracked "
                                   "again")
        odom = make_odometry(position, velocity, 0.0, np.zeros(3), msg.header.stamp,
                             self.children[i])
        o = odom.pose.pose.orientation
        o.w, o.x, o.y, o.z = (float(v) for v in track.orientation)
        self.odom_pubs[i].publish(odom)

    def publish_swarm(self) -> None:
        now = self.now()
        fresh = [i for i, t in enumerate(self.tracks) if t.fresh(now, self.stale)]
        self.report_missing(now, set(fresh))
        if not fresh:
            return
        tracks = [self.tracks[i] for i in fresh]
        self.swarm_pub.publish(pack_swarm_state(
            np.array(fresh, dtype=np.float64),
            np.array([t.filter.position for t in tracks]),
            np.array([t.filter.velocity for t in tracks]),
            np.array([t.filter.stamp for t in tracks])))

    def report_missing(self, now: float, fresh: set[int]) -> None:
        """One throttled warning naming every body that stopped updating (and one for bodies
        never seen, once the stale timeout has passed since start)."""
        lost, never = [], []
        for i, track in enumerate(self.tracks):
            if i in fresh:
                continue
            label = f"{track.name} ({self.children[i]})"
            if track.arrival is None:
                never.append(label)
            elif now - track.arrival > self.stale:
                lost.append(f"{label} {now - track.arrival:.2f} s ago")
                track.reported_lost = True
        if lost:
            self.get_logger().warning(
                f"rigid bodies stopped updating (last new pose: {', '.join(lost)}; "
                f"stale_timeout {self.stale:g} s): left out of the swarm state, no odometry; "
                "check the motion-capture tracking of these bodies",
                throttle_duration_sec=WARN_PERIOD_S)
        if never and now - self.started > self.stale:
            self.get_logger().warning(
                f"no pose received yet from rigid bodies {', '.join(never)}; check that the "
                "motion-capture driver publishes them on the pose_topic pattern and that "
                "the bodies parameter names them", throttle_duration_sec=WARN_PERIOD_S)


def main(args: list[str] | None = None) -> int:
    return run_node_process("mocap_bridge", lambda: [MocapBridge()], args)


if __name__ == "__main__":
    sys.exit(main())
