"""Guards of the test suite itself: a CI run that installs ROS 2 must fail, not skip, when it
does not import (tests/test_ros.py skips without ROS, so these live outside it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICK_ROS_TEST = "test_parse_launch_arguments_types_and_errors"  # no DDS, well under a second


def run_ros_test_with_hidden_module(tmp_path: Path, module: str, require: bool):
    """Run one quick ROS test in a fresh interpreter where `module` raises ImportError."""
    (tmp_path / f"{module}.py").write_text(f"raise ImportError('{module} hidden by the test')\n")
    env = dict(os.environ)
    env.pop("MARL_ROS_REQUIRE_ROS", None)
    if require:
        env["MARL_ROS_REQUIRE_ROS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), str(ROOT),
                                                       env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_ros.py", "-k", QUICK_ROS_TEST], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


@pytest.mark.parametrize("module", ["rclpy", "visualization_msgs"])
def test_ros_tests_fail_when_required_ros_does_not_import(tmp_path, module):
    result = run_ros_test_with_hidden_module(tmp_path, module, require=True)
    out = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, out
    assert "1 error" in out and "skipped" not in out, out
    assert "MARL_ROS_REQUIRE_ROS is set but the ROS 2 Python packages do not import" in out, out
    assert f"{module} hidden by the test" in out, out  # names the package that failed
    assert "`bash scripts/dev.sh test` installs them" in out, out  # and the fix


def test_ros_tests_skip_without_ros_when_not_required(tmp_path):
    result = run_ros_test_with_hidden_module(tmp_path, "rclpy", require=False)
    out = result.stdout + result.stderr
    # The module skips at import, so nothing is collected: not a failure of the run.
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, out
    assert "1 skipped" in out and "rclpy hidden by the test" in out, out


def test_dev_sh_requires_ros_for_the_test_run():
    """CI runs `bash scripts/dev.sh test`, which installs ROS 2; it must ask for it."""
    script = (ROOT / "scripts" / "dev.sh").read_text()
    test_branch = script.split("\n  test)\n", 1)[1].split(";;", 1)[0]
    lines = [line.strip() for line in test_branch.splitlines()]
    assert "export MARL_ROS_REQUIRE_ROS=1" in lines
    pytest_line = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert lines.index("export MARL_ROS_REQUIRE_ROS=1") < pytest_line
