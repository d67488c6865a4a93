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
      ros-${ROS_DISTRO}-geometry-msgs ros-${ROS_DISTRO}-visualization-msgs \
      ros-${ROS_DISTRO}-rosgraph-msgs ros-${ROS_DISTRO}-ros2topic ros-${ROS_DISTRO}-ros2node \
 && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /home/marl /work /ws/src && chmod 1777 /home/marl /work
WORKDIR /ws
# The PyPI requirements (no torch, no training extra) at the versions of docker/constraints.txt,
# except numpy and PyYAML, which stay the distribution's (numpy < 2 for the ROS messages).
COPY setup.py /tmp/marl_ros/
COPY docker/constraints.txt docker/requirements.py /tmp/marl_ros/docker/
RUN cd /tmp/marl_ros \
 && grep -viE '^(numpy|pyyaml)==' docker/constraints.txt > /tmp/constraints.txt \
 && python3 docker/requirements.py --exclude numpy --exclude pyyaml > /tmp/requirements.txt \
 && pip install -c /tmp/constraints.txt -r /tmp/requirements.txt "numpy<2" \
 && rm -rf /tmp/marl_ros /tmp/constraints.txt /tmp/requirements.txt
COPY docker/entrypoint.sh /ros_entrypoint.sh
COPY docker/healthcheck.py /usr/local/lib/marl_ros/healthcheck.py
# The source last: a code change rebuilds only the colcon layer.
COPY . src/marl_ros
RUN source "/opt/ros/${ROS_DISTRO}/setup.bash" \
 && colcon build --packages-select marl_ros \
 && rm -rf build log
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
