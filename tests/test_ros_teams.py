"""ROS 2 end to end with the shipped deep team bundles (`policies/zoo/pursuit_pursuers_2v1`,
`policies/zoo/pursuit_evader_2v1`, trained by `trainer.teams`): each drone's agent node flies
its team's bundle through `marl-ros swarm --scenario pursuit --team-policies ...`, and the
monitor's report says who was caught, and when.

Runs on this file's own ROS_DOMAIN_ID (pid-derived, offset 88), every wait bounded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ros_support import domain_id as _domain_id
from ros_support import ros_fixtures, run_swarm_command, skip_module_without_ros

ROS_IMPORT_FAILURES = skip_module_without_ros()

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parent.parent
# test_ros 0, test_deployment 25, test_ros_pursuit 37, bridges 50, test_ros_worlds 62, scale 75,
# test_ros_heterogeneous 88, test_ros_obstacles 95
DOMAIN_ID = _domain_id(12)
PURSUERS = ROOT / "policies" / "zoo" / "pursuit_pursuers_2v1"
EVADER = ROOT / "policies" / "zoo" / "pursuit_evader_2v1"


ros_domain_id, _ = ros_fixtures(DOMAIN_ID, ROS_IMPORT_FAILURES)


def fly(out: Path, seed: int, *extra: str) -> tuple[str, dict]:
    """`marl-ros swarm --scenario pursuit` for the shipped 2 v 1 at 2x real time."""
    return run_swarm_command(["--scenario", "pursuit", "--num-drones", "3", "--seed", str(seed),
                              "--real-time-factor", "2", "--timeout", "90", *extra], out,
                             DOMAIN_ID, timeout=150)


@pytest.mark.slow  # three whole graphs of 3 agent nodes, ~15 s
def test_the_shipped_deep_team_bundles_play_pursuit_over_ros(tmp_path):
    """The learned pursuers (one bundle for drone_0 and drone_1) against the learned evader
    (drone_2's bundle), seeds 0-2: each time the monitor reports the capture of drone_2 before
    the mission's 100 steps end, and the capture ends the mission (the pursuers caught this
    evader in all 20 PyBullet episodes, README "Teams and self-play")."""
    for seed in range(3):
        stdout, report = fly(tmp_path / f"seed{seed}", seed, "--team-policies",
                             f"pursuers={PURSUERS},evaders={EVADER}")
        assert report["scenario"] == "pursuit" and report["complete"], report
        assert report["capture"] == 1.0 and report["captured_evaders"] == [2], report
        assert 1 <= report["capture_time_steps"] < 100, report
        assert report["steps"] == report["capture_time_steps"]  # the capture ended the mission
        assert "captured 1 evader(s)" in stdout
