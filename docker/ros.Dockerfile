# ROS 2 image of marl_ros: the package colcon-built in a workspace on an official ROS 2 base, for
# `ros2 launch marl_ros swarm.launch.py`, `ros2 topic echo`, `ros2 node list` inside. No torch:
# a robot or simulator container runs the ONNX policy (training is the Dockerfile's cpu/cuda).
#   docker build -f docker/ros.Dockerfile -t marl_ros:ros .
#   docker run --rm --init --network host --ipc host marl_ros:ros        # the 4-drone swarm
#   docker run --rm -it --network host --ipc host marl_ros:ros ros2 topic echo /swarm/coverage
# --network host --ipc host: FastDDS delivers between processes of one host through shared
# memory in /dev/shm; containers with their own IPC namespace discover each other (UDP) but
# receive no data. README "Containers".
ARG ROS_DISTRO=kilted

# setup.py's requirements (no torch, no training extra; numpy and PyYAML stay the distribution's:
# rclpy's messages are built against its numpy 1.x), generated apart so that a setup.py change
# that leaves them as they are keeps the pip layer (pybullet compiles for minutes).
FROM ros:${ROS_DISTRO}-ros-base AS requirements
WORKDIR /src
COPY setup.py ./
COPY docker/constraints.txt docker/requirements.py docker/
RUN mkdir /requirements \
 && python3 docker/requirements.py --exclude numpy --exclude pyyaml > /requirements/ros.txt \
 && grep -viE '^(numpy|pyyaml)==' docker/constraints.txt > /requirements/constraints.txt

FROM ros:${ROS_DISTRO}-ros-base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1 \
    PYTHONUNBUFFERED=1 MPLBACKEND=Agg HOME=/home/marl MARL_ROS_WS=/ws
# package.xml's ROS exec_depends beyond ros-base (rosdep keys as Debian packages), numpy and
# PyYAML from the distribution (rclpy's messages are built against its numpy 1.x), colcon, and a
# compiler: pybullet has no wheel for Ubuntu's Python 3.12 and builds from source (~8 min).
RUN apt-get update && apt-get install -y --no-install-recommends \
      python3-pip python3-dev build-essential python3-colcon-common-extensions \
      python3-numpy python3-yaml \
      ros-${ROS_DISTRO}-launch-ros ros-${ROS_DISTRO}-tf2-msgs ros-${ROS_DISTRO}-nav-msgs \
      ros-${ROS_DISTRO}-geometry-msgs ros-${ROS_DISTRO}-visualization-msgs ros-${ROS_DISTRO}-sensor-msgs \
      ros-${ROS_DISTRO}-rosgraph-msgs ros-${ROS_DISTRO}-ros2topic ros-${ROS_DISTRO}-ros2node \
 && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /home/marl /work /ws/src && chmod 1777 /home/marl /work
WORKDIR /ws
# The PyPI requirements at the versions of docker/constraints.txt (numpy < 2: the distribution's).
COPY --from=requirements /requirements/ /opt/requirements/
RUN pip install -c /opt/requirements/constraints.txt -r /opt/requirements/ros.txt "numpy<2"
COPY docker/entrypoint.sh /ros_entrypoint.sh
COPY docker/healthcheck.py /usr/local/lib/marl_ros/healthcheck.py
# The source last: a code change rebuilds only the colcon layer.
COPY . src/marl_ros
# colcon installs the console scripts to lib/marl_ros (for `ros2 run`); `marl-ros` also on PATH.
RUN source "/opt/ros/${ROS_DISTRO}/setup.bash" \
 && colcon build --packages-select marl_ros \
 && rm -rf build log \
 && ln -s /ws/install/marl_ros/lib/marl_ros/marl-ros /usr/local/bin/marl-ros
WORKDIR /work
# Any uid (`--user "$(id -u):$(id -g)"`): HOME and /work are world-writable, sticky.
USER 1000:1000
ENTRYPOINT ["/ros_entrypoint.sh"]
# `docker stop`: SIGINT; `ros2 launch` dies of SIGTERM without stopping its nodes (ros2/launch#666).
STOPSIGNAL SIGINT
# Healthy while the default graph (sim, 4 agents, monitor) is up; other launch arguments: set the
# healthcheck in compose.yaml or `docker run --health-cmd`.
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
  CMD ["/ros_entrypoint.sh", "python3", "/usr/local/lib/marl_ros/healthcheck.py", "--num-drones", "4"]
CMD ["ros2", "launch", "marl_ros", "swarm.launch.py", "report_dir:=/work/runs/swarm"]
