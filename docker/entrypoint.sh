#!/bin/bash
# Entrypoint of the marl_ros images: the ROS 2 environment where the image has one (the ROS image:
# the distribution, then the colcon workspace), a writable HOME whatever uid `--user` runs as,
# then the command itself (exec: it becomes the process `docker stop` signals).
set -e
if [ -n "${ROS_DISTRO:-}" ] && [ -f "/opt/ros/${ROS_DISTRO}/setup.bash" ]; then
  # shellcheck disable=SC1090
  source "/opt/ros/${ROS_DISTRO}/setup.bash"
fi
if [ -f "${MARL_ROS_WS:-/ws}/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "${MARL_ROS_WS:-/ws}/install/setup.bash"
fi
# The images' HOME is world-writable (mode 1777); a HOME mounted or set read-only falls back to
# /tmp so matplotlib, ROS logs (~/.ros) and torch caches still have somewhere to write.
if [ ! -w "${HOME:-/nonexistent}" ]; then
  export HOME=/tmp
fi
if [ "$#" -eq 0 ]; then
  set -- marl-ros --help
fi
exec "$@"
