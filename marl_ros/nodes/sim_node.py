"""sim_node: the PyBullet world for N drones, standing in for the hardware.

Applies each drone's `cmd_vel` through the same controller as training, steps the
physics, and publishes every drone's `odom`, the swarm state (one message per tick),
TF (when tf2_msgs is installed) and, with `publish_clock`, `/clock` so that nodes
with `use_sim_time` follow simulated time (faster than real time with
`real_time_factor` > 1).

Obstacles (coverage with `obstacles`, `sim.obstacles`): the world holds the layout the
simulator's episode of `seed` draws (start positions first, then the obstacles, as
`VecEnv.reset(seed)`: `sim.obstacles.obstacles_for_seed`), and with range readings in the
bundle (`range_rays`) every tick publishes each drone's `scan` (sensor_msgs/LaserScan in its
body frame) from PyBullet's ray cast, the stand-in for a lidar.

A drone whose commands stop arriving (`cmd_timeout`) hovers: killing its agent leaves
it holding position while the others fly on. Simulated time starts once every drone's
agent has a `cmd_vel` publisher (or after `start_timeout`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Float64MultiArray

from marl_ros.nodes.agent_node import _describe
from marl_ros.nodes.messages import (
    COMMAND_QOS,
    SENSOR_QOS,
    WORLD_FRAME,
    make_laserscan,
    make_odometry,
    pack_swarm_state,
    twist_to_setpoint,
)
from marl_ros.nodes.process import run_node_process
from marl_ros.runtime import default_bundle, load_swarm_config
from sim import obs as O
from sim.config import CONTROL_HZ
from sim.drone import VelocityLimits
from sim.obstacles import obstacles_for_seed
from sim.physics import PyBulletWorld
from sim.scenarios import make_scenario


def _seconds_to_msg(t: float) -> TimeMsg:
    sec = int(t)
    return TimeMsg(sec=sec, nanosec=int(round((t - sec) * 1e9)))


class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sim", **kwargs)
        p = self.declare_parameter
        p("num_drones", 4, _describe("drones to simulate", 1, 1024, integer=True))
        p("bundle", default_bundle(), _describe("policy bundle whose scenario (field, limits) "
                                                "the world follows"))
        p("namespace_prefix", "drone_", _describe("drone i lives in /<prefix><i>"))
        p("odom_topic", "odom", ParameterDescriptor(description="per-drone odometry topic"))
        p("cmd_topic", "cmd_vel", ParameterDescriptor(description="per-drone command topic"))
        p("swarm_topic", "/swarm/state", ParameterDescriptor(description="swarm state topic"))
        p("scan_topic", "scan", ParameterDescriptor(description="per-drone range scan topic "
                                                                "(bundles with range readings)"))
        p("seed", 0, _describe("seed of the start positions (and obstacles)", 0, 2**31 - 1,
                               integer=True))
        p("real_time_factor", 1.0, _describe("simulated seconds per wall second", 0.05, 50.0))
        p("publish_clock", False, ParameterDescriptor(description="publish /clock for "
                                                                  "use_sim_time nodes"))
        p("cmd_timeout", 0.5, _describe("s without commands after which a drone hovers",
                                        0.01, 60.0))
        p("start_timeout", 60.0, _describe("wall s to wait for every agent before starting "
                                           "anyway", 0.0, 3600.0))
        p("gui", False, ParameterDescriptor(description="open the PyBullet GUI"))
        p("stats_dir", "", ParameterDescriptor(description="benchmarks: write the wall and "
                                                           "simulated time of every tick to "
                                                           "<dir>/sim.json at shutdown"))
        g = self.get_parameter
        self.cfg = load_swarm_config(g("bundle").value, g("num_drones").value)
        n = self.cfg.num_drones
        self.prefix = g("namespace_prefix").value
        self.dt = 1.0 / CONTROL_HZ  # one controller period per tick
        # Drones faster than the limits (pursuit's evader_speed > 1, a coverage speed factor
        # > 1): the controller's clamp rises to theirs, as in the training simulator (each agent
        # node clamps its own drone).
        top = max(1.0, float(O.speed_scales(self.cfg).max()))
        self.world = PyBulletWorld(n, limits=VelocityLimits(self.cfg.vxy * top, self.cfg.vz * top,
                                                            self.cfg.yaw_rate),
                                   gui=g("gui").value, seed=g("seed").value)
        self.rays = getattr(self.cfg, "range_rays", 0)
        if getattr(self.cfg, "obstacles", 0):
            starts, *layout = obstacles_for_seed(self.cfg, g("seed").value)
            self.world.reset(starts)
            self.world.set_obstacles(*layout)
        else:
            rng = np.random.default_rng(g("seed").value)
            # The scenario's own start rule (a flock starts as a cluster), as training episodes.
            self.world.reset(make_scenario(self.cfg, 1).start_positions(rng, 1)[0])
        self.setpoints = np.zeros((n, 4))
        self.cmd_time = np.full(n, -np.inf)
        self.cmd_timeout = g("cmd_timeout").value
        self.sim_time = 0.0
        self.started = False
        self.wall_start = time.monotonic()
        self.start_timeout = g("start_timeout").value
        stats_dir = g("stats_dir").value
        self.stats_path = Path(stats_dir) / "sim.json" if stats_dir else None
        self.tick_times: list[tuple[float, float]] = []  # (wall s, simulated s) per tick

        self.odom_pubs = []
        self.odom_msgs = [Odometry() for _ in range(n)]  # filled in place every tick
        self.scan_pubs = []
        self.scan_msgs = [LaserScan() for _ in range(n)] if self.rays else []
        self.cmd_topics = []
        for i in range(n):
            ns = f"/{self.prefix}{i}"
            self.odom_pubs.append(self.create_publisher(Odometry, f"{ns}/{g('odom_topic').value}",
                                                        SENSOR_QOS))
            if self.rays:
                self.scan_pubs.append(self.create_publisher(
                    LaserScan, f"{ns}/{g('scan_topic').value}", SENSOR_QOS))
            topic = f"{ns}/{g('cmd_topic').value}"
            self.cmd_topics.append(topic)
            self.create_subscription(Twist, topic, lambda msg, i=i: self.on_cmd(i, msg),
                                     COMMAND_QOS)
        self.swarm_pub = self.create_publisher(Float64MultiArray, g("swarm_topic").value,
                                               SENSOR_QOS)
        self.clock_pub = (self.create_publisher(Clock, "/clock", 10)
                          if g("publish_clock").value else None)
        self.tf_pub = self._tf_publisher()
        period = self.dt / g("real_time_factor").value
        self.timer = self.create_timer(period, self.tick)
        self.get_logger().info(f"simulating {n} drones in a {self.cfg.field_size[0]:g} x "
                               f"{self.cfg.field_size[1]:g} m field at "
                               f"{g('real_time_factor').value:g}x real time")

    def _tf_publisher(self):
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            self.get_logger().info("tf2_msgs is not installed; not publishing TF")
            return None
        return self.create_publisher(TFMessage, "/tf", 10)

    def on_cmd(self, i: int, msg: Twist) -> None:
        setpoint = twist_to_setpoint(msg)
        if not np.isfinite(setpoint).all():
            self.get_logger().warning(f"drone {i}: ignoring a non-finite cmd_vel",
                                   throttle_duration_sec=2.0)
            return
        self.setpoints[i] = setpoint
        self.cmd_time[i] = self.sim_time

    def _all_agents_ready(self) -> bool:
        return all(self.count_publishers(t) > 0 for t in self.cmd_topics)

    def tick(self) -> None:
        if not self.started:
            waited = time.monotonic() - self.wall_start
            if self._all_agents_ready() or waited > self.start_timeout:
                self.started = True
                self.get_logger().info(f"starting simulated time after {waited:.1f} s")
            self.publish_state()  # let the agents see where they are before time runs
            return
        stale = self.sim_time - self.cmd_time > self.cmd_timeout
        setpoints = np.where(stale[:, None], 0.0, self.setpoints)  # lost agent -> hover
        self.world.step(setpoints, self.dt)
        self.sim_time += self.dt
        self.publish_state()
        if self.stats_path is not None:
            self.tick_times.append((time.time(), self.sim_time))

    def publish_state(self) -> None:
        state = self.world.state()
        # Stamps on the clock the other nodes use: simulated time when /clock is published,
        # else the wall clock (as a motion-capture system would stamp).
        t = self.sim_time if self.clock_pub is not None else self.get_clock().now().nanoseconds * 1e-9
        stamp = _seconds_to_msg(t)
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=stamp))
        n = self.cfg.num_drones
        for i in range(n):
            self.odom_pubs[i].publish(make_odometry(state[i, 0:3], state[i, 3:6], state[i, 8],
                                                    state[i, 9:12], stamp, f"{self.prefix}{i}",
                                                    self.odom_msgs[i]))
        self.swarm_pub.publish(pack_swarm_state(np.arange(n), state[:, 0:3], state[:, 3:6],
                                                np.full(n, t)))
        if self.rays:
            readings = self.world.range_readings(self.rays, self.cfg.range_max)
            for i in range(n):
                self.scan_pubs[i].publish(make_laserscan(readings[i], state[i, 8],
                                                         self.cfg.range_max, stamp,
                                                         f"{self.prefix}{i}", self.scan_msgs[i]))
        if self.tf_pub is not None:
            self._publish_tf(state, stamp)

    def _publish_tf(self, state: np.ndarray, stamp: TimeMsg) -> None:
        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage

        msg = TFMessage()
        for i in range(self.cfg.num_drones):
            t = TransformStamped()
            t.header.stamp = stamp
            t.header.frame_id = WORLD_FRAME
            t.child_frame_id = f"{self.prefix}{i}"
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
                float(v) for v in state[i, 0:3])
            t.transform.rotation.z = float(np.sin(state[i, 8] / 2))
            t.transform.rotation.w = float(np.cos(state[i, 8] / 2))
            msg.transforms.append(t)
        self.tf_pub.publish(msg)

    def destroy_node(self) -> None:
        if self.stats_path is not None:
            self.stats_path.parent.mkdir(parents=True, exist_ok=True)
            self.stats_path.write_text(json.dumps({"columns": ["wall_s", "sim_s"],
                                                   "ticks": self.tick_times}))
        self.world.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node_process("sim_node", lambda: [SimNode()], args, events_executor=True)


if __name__ == "__main__":
    sys.exit(main())
