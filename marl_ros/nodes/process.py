"""How every node process starts, spins and stops.

A node process ends cleanly, with exit code 0 and no traceback, on a first and on any
repeated SIGINT or SIGTERM: Ctrl-C in a terminal, `ros2 launch` shutting down (it forwards
SIGINT to every node, on top of the one a terminal's process group already got, then
SIGTERM), `timeout -s INT`, or `marl-ros swarm` tearing its graph down. The handlers only
record the request; the spin loop checks it between callbacks (at least every
`SPIN_PERIOD_S`) and then destroys the nodes; from then on, through the interpreter's
finalisation, further signals are ignored. rclpy's own handlers are not installed: they
raise KeyboardInterrupt wherever the signal lands, e.g. inside `destroy_node()`, which is
how a second SIGINT used to end a node with exit code -2.

A node that is still running `STOP_GRACE_S` after its first stop signal ends itself: the
interpreter's fault handler writes every thread's stack to stderr (the node's log) under
`Timeout (0:00:08)!` and exits with code 1. That bounds a shutdown that hangs (once in CI,
one agent node of four did not end within 13 s of SIGINT, where it takes about 1 s) and
says where it hung, instead of the silent SIGKILL that `ros2 launch` sends after 10 s and
`marl-ros swarm` after 13 s; `marl-ros swarm` names such a node and its log. A whole
16-drone graph, one process per drone, stops in about 2 s on a 2-core machine.

A node whose configuration or bundle is refused at start logs one FATAL sentence and exits
with `START_REFUSED` (2); `marl-ros swarm` reads that sentence from the node's log and
stops the whole graph at once. A node may end its own process (monitor_node at mission end,
with `exit_on_complete`) by calling `rclpy.try_shutdown()`.
"""

from __future__ import annotations

import faulthandler
import gc
import signal
from collections.abc import Callable

import rclpy
import rclpy.executors
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from marl_ros.graph import StopRequest, die_with_parent
from marl_ros.runtime import BundleError

START_REFUSED = 2
SPIN_PERIOD_S = 0.1  # longest wait before a stop request is seen
STOP_GRACE_S = 8.0  # a node still running this long after a stop signal ends itself


def install_stop_handlers(grace_s: float = STOP_GRACE_S) -> StopRequest:
    """Record SIGINT/SIGTERM; from the first one on, end the process (stacks to stderr, exit
    code 1) if it is still running `grace_s` later (a hung shutdown)."""
    stop = StopRequest(on_first=lambda: faulthandler.dump_traceback_later(grace_s, exit=True))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    return stop


def spin(nodes: list[Node], stop: StopRequest, events: bool = False) -> None:
    """Spin nodes on one single-threaded executor (measured steadier than the multi-threaded
    one for many small control loops) until a stop request or rclpy shutdown, then destroy
    them. `events`: rclpy's EventsExecutor (experimental in rclpy), which does not rebuild a
    wait set of every entity for each callback; a process holding many nodes (swarm_agents)
    or many topics (sim_node) spends most of its time there otherwise (64 drones at 8 Hz in
    one process: 17% missed ticks vs 0.8%, `marl-ros bench ros`)."""
    if events:
        from rclpy.experimental import EventsExecutor

        executor = EventsExecutor()
    else:
        executor = rclpy.executors.SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        while not stop.requested and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except rclpy.executors.ExternalShutdownException:
        pass  # a node called rclpy.try_shutdown() (mission complete)
    finally:
        executor.shutdown(timeout_sec=1.0)
        for node in nodes:
            node.destroy_node()


def run_node_process(logger_name: str, build: Callable[[], list[Node]],
                     args: list[str] | None = None,
                     on_exit: Callable[[list[Node]], None] | None = None,
                     events_executor: bool = False) -> int:
    """A node executable's main: install the stop handlers, init rclpy, build the nodes (a
    refused configuration -> one FATAL sentence, exit code 2), spin until stopped, call
    `on_exit(nodes)` (e.g. write a report), shut rclpy down. Returns the exit code."""
    stop = install_stop_handlers()
    die_with_parent()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        try:
            nodes = build()
        except (BundleError, ValueError) as err:  # ConfigError is a ValueError
            rclpy.logging.get_logger(logger_name).fatal(str(err))
            return START_REFUSED
        try:
            if stop.requested:  # stopped while loading: nothing to spin for
                for node in nodes:
                    node.destroy_node()
            else:
                spin(nodes, stop, events=events_executor)
        finally:
            if on_exit is not None:
                on_exit(nodes)
        return 0
    finally:
        # A node handle still in use at destroy_node() is destroyed later, when its last
        # reference goes; collect now, so the DDS participant (and its shared memory in
        # /dev/shm) goes while the process is whole, not in interpreter finalisation,
        # which does not promise to collect everything.
        gc.collect()
        rclpy.try_shutdown()
        # Interpreter finalisation (still seconds with onnxruntime and DDS loaded) resets
        # Python-set handlers to the default, which a late repeated signal would die of
        # (exit code -2/-15); ignored signals stay ignored there.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
