#!/usr/bin/env bash
# One entry point for a fresh machine: creates/refreshes .venv, installs what the project needs,
# then runs the main job (`demo`) or the test suite (`test`).
#   bash scripts/dev.sh demo [marl-ros swarm args...]   (the ROS 2 swarm, shipped policy)
#   bash scripts/dev.sh test [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"
py="$venv/bin/python"

setup_env() {
  if [ ! -x "$py" ]; then
    echo "[setup] creating virtual environment in .venv"
    python3 -m venv "$venv"
  fi
  # Reinstall only when the install inputs changed; a stamp keeps repeat runs fast.
  local stamp="$venv/.setup-stamp" want
  want=$(cat setup.py setup.cfg package.xml scripts/dev.sh scripts/install_torch.py scripts/ros-wheels.txt | sha256sum | cut -d' ' -f1)-${ROS_DISTRO:-pypi-ros}-${MARL_ROS_TORCH:-auto}
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  echo "[setup] installing dependencies (first run takes a few minutes)"
  "$py" -m pip install -q --disable-pip-version-check --upgrade pip
  # torch first and pinned: anything that depends on torch must find it already satisfied,
  # otherwise pip resolves the newest CUDA build (several GB). The CPU build unless the machine
  # has an NVIDIA GPU (MARL_ROS_TORCH, MARL_ROS_TORCH_INDEX override; see the script).
  "$py" scripts/install_torch.py
  if [ -z "${ROS_DISTRO:-}" ]; then
    # No ROS 2 distribution sourced: the ROS 2 client libraries come as PyPI wheels (package.xml's
    # exec_depends; tf2_msgs, launch and launch_ros have none: no TF from sim_node, no `ros2 launch`).
    "$py" -m pip install -q --disable-pip-version-check -r scripts/ros-wheels.txt
  fi
  "$py" -m pip install -q --disable-pip-version-check -e ".[train,test,scale]"
  if [ "${MARL_ROS_TORCH:-auto}" = cuda ] || { [ "${MARL_ROS_TORCH:-auto}" = auto ] &&
      nvidia-smi -L 2>/dev/null | grep -q GPU; }; then
    # The GPU build of the ONNX runtime (the gpu extra) in place of the CPU one: both packages
    # hold the same module, so both go before onnxruntime-gpu is installed alone.
    echo "[setup] NVIDIA GPU: onnxruntime-gpu in place of onnxruntime"
    "$py" -m pip uninstall -q -y onnxruntime onnxruntime-gpu
    "$py" -m pip install -q --disable-pip-version-check "onnxruntime-gpu>=1.17"
  fi
  echo "$want" > "$stamp"
}

cmd=${1:-demo}
shift || true
setup_env
export PATH="$venv/bin:$PATH"
case "$cmd" in
  demo)
    # The main job: the ROS 2 swarm (PyBullet sim_node + one agent node per drone + monitor)
    # flying the shipped coverage policy for one mission.
    exec "$py" -m marl_ros.cli swarm --report-dir runs/swarm "$@"
    ;;
  test)
    "$py" -m ruff check .
    # setup_env installed ROS 2 (PyPI wheels, or the sourced distribution): a ROS install that
    # does not import must fail tests/test_ros.py, not skip it and leave the run green.
    export MARL_ROS_REQUIRE_ROS=1
    exec "$py" -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash scripts/dev.sh {demo|test} [args...]" >&2
    exit 2
    ;;
esac
