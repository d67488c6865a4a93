"""What the ROS 2 test files share: whether ROS imports, a ROS_DOMAIN_ID per test file,
node processes stopped at teardown, and an in-process probe node.

Each test file takes its own domain (`domain_id(offset)`, derived from the pid) so parallel
runs, and the files of one run, do not hear each other.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The ROS 2 client library and every message package the nodes import.
ROS_MODULES = ("rclpy", "std_msgs.msg", "geometry_msgs.msg", "nav_msgs.msg", "rosgraph_msgs.msg",
               "rcl_interfaces.msg", "builtin_interfaces.msg", "visualization_msgs.msg",
               "sensor_msgs.msg")


def ros_import_failures() -> list[str]:
    """'module (error)' for each of ROS_MODULES that does not import here."""
    failures = []
    for name in ROS_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as err:
            failures.append(f"{name} ({err})")
    return failures


def ros_required() -> bool:
    """`bash scripts/dev.sh test` installs ROS 2 and sets MARL_ROS_REQUIRE_ROS=1: there a ROS
    install that does not import must fail the run, not skip the tests and leave CI green."""
    return os.environ.get("MARL_ROS_REQUIRE_ROS", "") not in ("", "0")


def require_ros_message(failures: list[str]) -> str:
    return (f"MARL_ROS_REQUIRE_ROS is set but the ROS 2 Python packages do not import "
            f"({'; '.join(failures)}); `bash scripts/dev.sh test` installs them (PyPI wheels "
            "when no ROS 2 distribution is sourced; delete .venv/.setup-stamp to force a "
            "reinstall).")


def skip_module_without_ros() -> list[str]:
    """At a test module's top: skip the module when ROS 2 does not import, unless it is
    required (then the failures are returned, for `ros_domain` to fail every test with)."""
    failures = ros_import_failures()
    if failures and not ros_required():
        pytest.skip(f"ROS 2 is not installed here: {'; '.join(failures)}",
                    allow_module_level=True)
    return failures


@contextmanager
def ros_domain(domain: int, failures: list[str]) -> Iterator[int]:
    """A test-only ROS_DOMAIN_ID for this process and every node it starts; with
    MARL_ROS_REQUIRE_ROS set and ROS 2 not importing, a test failure naming the packages
    (the rest of the suite still runs and reports)."""
    if failures:
        pytest.fail(require_ros_message(failures), pytrace=False)
    old = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    try:
        yield domain
    finally:
        if old is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = old


def ros_fixtures(domain: int, failures: list[str]):
    """A ROS test file's two fixtures on its own domain: `ros_domain_id` (module scope, autouse:
    the domain for this process and every node it starts, or a failure naming the ROS packages
    that do not import) and `probe` (an in-process probe node, closed after each test). Use at
    module level: `ros_domain_id, probe = ros_fixtures(DOMAIN_ID, ROS_IMPORT_FAILURES)`."""

    @pytest.fixture(scope="module", autouse=True)
    def ros_domain_id():
        with ros_domain(domain, failures) as value:
            yield value

    @pytest.fixture
    def probe():
        p = Probe(domain)
        yield p
        p.close()

    return ros_domain_id, probe


def domain_id(offset: int) -> int:
    """A test file's ROS_DOMAIN_ID in 1..101 (FastDDS's safe range), offset per file."""
    return 1 + (os.getpid() + offset) % 101


def node_env(domain: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_swarm_command(args: list[str], out: Path, domain: int,
                      timeout: float = 150.0) -> tuple[str, dict]:
    """`marl-ros swarm ARGS --report-dir OUT` in its own process group (on a timeout the CLI
    and every node it started go down together): its stdout and the monitor's report. Fails
    on a non-zero exit and on any node log holding a traceback (every node ended cleanly)."""
    cmd = [sys.executable, "-m", "marl_ros.cli", "swarm", *args, "--report-dir", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=node_env(domain), cwd=ROOT, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        raise
    assert proc.returncode == 0, f"marl-ros swarm failed:\n{stdout}\n{stderr}"
    crashed = [log.name for log in (out / "logs").glob("*.log") if "Traceback" in log.read_text()]
    assert not crashed, f"node logs with a traceback: {crashed}"
    return stdout, json.loads((out / "report.json").read_text())


class Processes:
    """Node processes started by one test; all stopped (SIGINT, then SIGKILL) at teardown."""

    def __init__(self, log_dir: Path, domain: int):
        self.log_dir = log_dir
        self.domain = domain
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], name: str) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    env=node_env(self.domain), cwd=ROOT)
        proc.log_path = self.log_dir / f"{name}.log"
        self.procs.append(proc)
        return proc

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        end = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


class Probe:
    """An in-process rclpy context with one helper node, to publish and listen like a robot."""

    def __init__(self, domain: int, name: str = "probe"):
        import rclpy
        import rclpy.executors

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def close(self) -> None:
        for node in list(self.executor.get_nodes()):
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        self.context.try_shutdown()
