"""The batched vector environment: E environments x N drones as numpy arrays.

This is the fast path for training (`sim.make_vec_env`); the PettingZoo
`ParallelEnv` in `sim.env` is the same machinery with one environment.

Arrays (E = num_envs, N = num_agents):
- `reset(seed)` -> obs (E, N, D) float32, infos
- `step(actions)` -> obs, rewards (E, N), terminated (E, N), truncated (E, N), infos;
  actions are (E, N, 4) in [-1, 1] (continuous) or (E, N) integers (discrete).
- `state()` -> (E, S) float32, the global state for centralised critics.

Rewards: every drone is paid the team reward (task reward minus the collision and geofence
penalties; also in `infos["team_reward"]`, (E,)). With `agent_rewards=True` each drone is
paid its own share instead, times N so that the drones' mean is the team reward: its part
of the task reward (`scenario.task_shares`: coverage, the new cells under its footprint, a
cell under k footprints counting 1/k; spread, minus the distances of the landmarks it is the
nearest drone to) minus its own penalties (half of each near-collision it is in, its own
geofence violation). Independent learners of large swarms (the mean-field family) learn
from it; the team reward of a 64-drone swarm says little about one drone's action.
`command_change_penalty` > 0 also charges each drone the squared change of its commanded
velocity since its last command (each axis over its limit), averaged over the drones in the
team reward, its own in its share: a policy that reverses its command every tick pays for it.

Pursuit (a zero-sum game, `sim.config.PursuitConfig`) always pays each drone its team's
reward, penalties included (the scenario's `drone_rewards`): every pursuer
`infos["pursuer_reward"]`, every evader `infos["evader_reward"]` (its negative);
`infos["team_reward"]` is the drones' mean, as for any env whose agents are paid differently,
and `episode_return` sums it. Infos also report `capture` and `capture_time`. The evaders'
velocity limits are evader_speed times the pursuers'; the cells view maps its 5 actions to
setpoints with `sim.obs.cell_action_setpoint`, from the position each drone perceives.

With `autoreset=True` (the default) an environment that ends is reset in the same
call: the returned obs is the first of the new episode, the last one is in
`infos["final_obs"]` (and `infos["final_state"]`) for the rows where
`infos["done"]` is True, along with `episode_return`, `episode_length` and the
final task metrics.

Perception: the scenario scores the true state (coverage, near-collisions, geofence), while
the drones observe what a robot would receive. By default that is the true state; the
configuration can model deployment faults in it, as the agent node meets them: `sensor_noise`
(Gaussian std in m and m/s on every measured position and velocity), `odom_latency` (the
measured states are that many policy ticks old), `odom_period` (odometry, own and swarm
state, is refreshed every that many policy ticks and held in between), `neighbour_drop`
(each neighbour's state is lost with this probability per drone and tick, as the agent
node's `neighbour_drop` does) and `command_delay` (a drone flies the command computed that
many policy ticks earlier; hover before the first). The observation is still built by
`sim.obs.observe_tick`, on the perceived states, so the belief maps follow what the drones
perceive.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from sim import obs as O
from sim.config import CELL_MOVES, DISCRETE_ACTIONS, SwarmConfig
from sim.drone import VelocityLimits
from sim.dynamics import make_dynamics
from sim.scenarios import make_scenario, own_safety_counts, safety_counts

DISCRETE_DIRECTIONS = np.array([d for _, d in DISCRETE_ACTIONS])  # (A, 3) unit (vx, vy, vz)


def _perception_rng(seed: int | None) -> np.random.Generator:
    """The perception faults' own stream, so that they leave start positions unchanged."""
    return np.random.default_rng(None if seed is None else [int(seed), 1])


class VecEnv:
    """Batched drone-swarm environments over a dynamics backend."""

    def __init__(self, cfg: SwarmConfig, num_envs: int = 1, backend: str = "fast",
                 seed: int | None = None, autoreset: bool = True):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1 (got {num_envs!r}).")
        self.cfg = cfg
        self.num_envs = num_envs
        self.num_agents = cfg.num_drones
        self.backend = backend
        self.autoreset = autoreset
        self.agents = [f"drone_{i}" for i in range(cfg.num_drones)]
        self.limits = VelocityLimits(vxy=cfg.vxy, vz=cfg.vz, yaw_rate=cfg.yaw_rate)
        self._scale = np.array([cfg.vxy, cfg.vxy, cfg.vz, cfg.yaw_rate])
        self.scenario = make_scenario(cfg, num_envs)
        self._speed = self.scenario.speed_scale()  # (N,) per-drone factor on the limits, or None
        clamp = self.limits  # what the dynamics clamp setpoints to
        if self._speed is not None and self._speed.max() > 1.0:  # faster evaders: raise it
            top = float(self._speed.max())
            clamp = VelocityLimits(vxy=cfg.vxy * top, vz=cfg.vz * top, yaw_rate=cfg.yaw_rate)
        options = {}
        if backend == "pybullet":  # sensor noise is perception (below), not the dynamics' state
            options = dict(gui=cfg.gui, drag=cfg.drag, ground_effect=cfg.ground_effect,
                           actuation_delay=cfg.actuation_delay, randomize=cfg.randomize)
        self.rng = np.random.default_rng(seed)
        self._perception_rng = _perception_rng(seed)
        self.dynamics = make_dynamics(backend, num_envs, cfg.num_drones, policy_hz=cfg.policy_hz,
                                      limits=clamp, seed=seed, **options)

        self.observation_size = O.observation_size(cfg)
        self.observation_space = spaces.Box(*O.observation_bounds(cfg), (self.observation_size,),
                                            np.float32)
        self._cells = O.is_cells_view(cfg)
        if cfg.action_mode == "continuous":
            self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        else:
            moves = CELL_MOVES if self._cells else DISCRETE_ACTIONS
            self.action_space = spaces.Discrete(len(moves))
        self.state_space = spaces.Box(-np.inf, np.inf, (self.scenario.state_size,), np.float32)

        self.t = np.zeros(num_envs, dtype=np.int64)
        self.episode_return = np.zeros(num_envs)
        self.episode_collisions = np.zeros(num_envs, dtype=np.int64)
        self.episode_geofence = np.zeros(num_envs, dtype=np.int64)
        self._pos = np.zeros((num_envs, self.num_agents, 3))
        self._vel = np.zeros((num_envs, self.num_agents, 3))
        # Perception (off by default: the drones observe the true state, at no cost).
        self._perceives = bool(cfg.sensor_noise or cfg.odom_latency or cfg.odom_period > 1
                               or cfg.neighbour_drop)
        self._measured = np.zeros((cfg.odom_latency + 1, num_envs, self.num_agents, 6))  # newest first
        self._perceived = np.zeros((num_envs, self.num_agents, 6))  # position, velocity held
        self._commands = np.zeros((cfg.command_delay, num_envs, self.num_agents, 4))  # oldest first
        # The last command of each drone (velocity over its limits), for command_change_penalty.
        self._last_command = np.zeros((num_envs, self.num_agents, 3))
        self._command_scale = np.array([cfg.vxy, cfg.vxy, cfg.vz])
        # Obstacles (coverage): the PyBullet worlds get each episode's layout as static bodies;
        # range readings come from the backend's own sensing (PyBullet rays, the fast backend
        # the analytic cast), taken from the true positions as a drone's sensor takes them.
        self._obstacles = int(getattr(cfg, "obstacles", 0))
        self._range_rays = int(getattr(cfg, "range_rays", 0))
        self._needs_reset = True

    # -- actions ------------------------------------------------------------------------------
    def action_to_setpoint(self, actions: np.ndarray,
                           positions: np.ndarray | None = None) -> np.ndarray:
        """Policy actions -> velocity setpoints (E, N, 4) in m/s and rad/s; validates input.

        The pursuit cells view's setpoints depend on where each drone is: `positions`
        (E, N, 3), by default what the drones perceive."""
        e, n = self.num_envs, self.num_agents
        actions = np.asarray(actions)
        setpoint = self._action_to_setpoint(actions, e, n, positions)
        if self._speed is not None and not self._cells:
            setpoint[..., :3] *= self._speed[:, None]
        return setpoint

    def _action_to_setpoint(self, actions, e, n, positions):
        if self.cfg.action_mode == "continuous":
            if actions.shape != (e, n, 4):
                raise ValueError(f"continuous actions must have shape (num_envs, num_agents, 4) = "
                                 f"{(e, n, 4)} (got {actions.shape}).")
            if not np.isfinite(actions).all():  # one flat check; the rows only to name one
                env, agent = np.argwhere(~np.isfinite(actions).all(axis=-1))[0]
                raise ValueError(f"action for {self.agents[agent]} (env {env}) is not finite "
                                 f"({actions[env, agent].tolist()}); actions must be numbers in [-1, 1].")
            return np.clip(actions, -1.0, 1.0) * self._scale
        if actions.shape != (e, n):
            raise ValueError(f"discrete actions must have shape (num_envs, num_agents) = {(e, n)} "
                             f"(got {actions.shape}).")
        count = int(self.action_space.n)
        if not np.issubdtype(actions.dtype, np.integer):
            if not np.isfinite(actions).all() or not np.all(actions == np.round(actions)):
                raise ValueError(f"discrete actions must be integers in [0, {count - 1}] "
                                 f"(got {actions.ravel()[:8].tolist()}...).")
            actions = actions.astype(np.int64)
        bad = (actions < 0) | (actions >= count)
        if bad.any():
            env, agent = np.argwhere(bad)[0]
            raise ValueError(f"discrete action {int(actions[env, agent])} for {self.agents[agent]} "
                             f"is out of range; valid actions are 0..{count - 1}.")
        if self._cells:
            if positions is None:
                positions = self._perceived[..., :3] if self._perceives else self._pos
            return O.cell_action_setpoint(self.cfg, actions, positions, self._speed)
        setpoint = np.zeros((e, n, 4))
        setpoint[..., :3] = DISCRETE_DIRECTIONS[actions] * self._scale[:3]
        return setpoint

    # -- API ------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self._perception_rng = _perception_rng(seed)
        self._reset_envs(np.arange(self.num_envs))
        self._needs_reset = False
        return self._observe(), self._metrics()

    def _reset_envs(self, env_ids: np.ndarray) -> None:
        pos = self.scenario.start_positions(self.rng, len(env_ids))
        yaw = np.zeros(pos.shape[:2])
        self.dynamics.reset(env_ids, pos, yaw)
        state = self.dynamics.state()
        self._pos[env_ids] = state[env_ids, :, 0:3]
        self._vel[env_ids] = state[env_ids, :, 3:6]
        self.scenario.reset(env_ids, self._pos[env_ids], self.rng)
        if self._obstacles and self.backend == "pybullet":
            scen = self.scenario
            self.dynamics.set_obstacles(env_ids, scen.centres[env_ids], scen.half_sizes[env_ids],
                                        scen.boxes[env_ids])
        self.t[env_ids] = 0
        self.episode_return[env_ids] = 0.0
        self.episode_collisions[env_ids] = 0
        self.episode_geofence[env_ids] = 0
        self._commands[:, env_ids] = 0.0  # hover until the first command arrives
        self._last_command[env_ids] = 0.0  # the drones start hovering
        if self._perceives:
            self._measure(env_ids)

    def _measure(self, env_ids: np.ndarray | None = None) -> None:
        """Refresh what the drones perceive from the true state: every env after a step, or
        `env_ids` at their reset (the drones rested at their start state before it)."""
        truth = np.concatenate([self._pos, self._vel], axis=-1)
        if env_ids is None:
            self._measured = np.roll(self._measured, 1, axis=0)
            self._measured[0] = truth
            refresh = self.t % self.cfg.odom_period == 0
        else:
            self._measured[:, env_ids] = truth[env_ids]
            refresh = np.zeros(self.num_envs, dtype=bool)
            refresh[env_ids] = True
        sample = self._measured[-1]  # odom_latency ticks old
        if self.cfg.sensor_noise > 0.0:
            sample = sample + self._perception_rng.normal(0.0, self.cfg.sensor_noise, sample.shape)
        self._perceived[refresh] = sample[refresh]

    def range_readings(self, env_ids: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The drones' range readings now, (E, N, R) metres (coverage with range_rays): PyBullet
        casts rays at the obstacle bodies, the fast backend the analytic rays of the layout."""
        if self.backend == "pybullet":
            return self.dynamics.range_readings(env_ids, self.cfg.range_rays, self.cfg.range_max)
        return self.scenario.range_readings(self._pos[env_ids], env_ids)

    def _observe(self, env_ids: np.ndarray | None = None) -> np.ndarray:
        """Every drone's policy tick (all envs, or `env_ids`) on what it perceives."""
        ids = slice(None) if env_ids is None else env_ids
        extra = {"ranges": self.range_readings(ids)} if self._range_rays else {}
        if not self._perceives:
            return self.scenario.observe_tick(self._pos[ids], self._vel[ids], ids, **extra)
        seen = self._perceived[ids]
        received = None
        if self.cfg.neighbour_drop > 0.0:
            n = self.num_agents
            shape = (self.num_envs if env_ids is None else len(env_ids), n, n)
            received = self._perception_rng.random(shape) >= self.cfg.neighbour_drop
        return self.scenario.observe_tick(seen[..., :3], seen[..., 3:], ids, received=received,
                                          **extra)

    def step(self, actions: np.ndarray):
        if self._needs_reset:
            raise RuntimeError("call reset() before step(); with autoreset=False, reset after an "
                               "episode ends.")
        setpoints = self.action_to_setpoint(actions)
        change = None
        if self.cfg.command_change_penalty:  # each drone's squared command change, (E, N)
            command = setpoints[..., :3] / self._command_scale
            change = np.square(command - self._last_command).sum(axis=-1)
            self._last_command = command
        if self.cfg.command_delay:  # fly the oldest queued command, queue the new one
            flown = self._commands[0].copy()
            self._commands = np.roll(self._commands, -1, axis=0)
            self._commands[-1] = setpoints
            setpoints = flown
        self.dynamics.step(self.scenario.fly(setpoints))
        self._pos[:], self._vel[:] = self.dynamics.kinematics()
        self.t += 1

        zero_sum = self.scenario.zero_sum
        shares = (self.scenario.task_shares(self._pos)
                  if self.cfg.agent_rewards and not zero_sum else None)
        task_reward, terminated, metrics = self.scenario.progress(self._pos)
        collisions, outside = safety_counts(self._pos, self.cfg)
        n = self.num_agents
        if zero_sum:  # each team is paid its own reward, penalties included (the scenario's)
            rewards = self.scenario.drone_rewards
            reward = rewards.mean(axis=1)
        else:
            reward = (task_reward - self.cfg.collision_penalty * collisions
                      - self.cfg.geofence_penalty * outside)
            if change is not None:
                reward = reward - self.cfg.command_change_penalty * change.mean(axis=1)
            if shares is not None:  # each drone's share of the team reward, times N
                close_own, outside_own = own_safety_counts(self._pos, self.cfg)
                rewards = n * (shares - self.cfg.collision_penalty * close_own
                               - self.cfg.geofence_penalty * outside_own)
                if change is not None:  # its own command change
                    rewards -= self.cfg.command_change_penalty * change
            else:
                rewards = np.repeat(reward[:, None], n, axis=1)
        self.episode_return += reward
        self.episode_collisions += collisions
        self.episode_geofence += outside
        truncated = (self.t >= self.cfg.max_steps) & ~terminated
        done = terminated | truncated

        infos = self._metrics()
        infos.update(metrics)
        infos["collisions"] = collisions
        infos["geofence_violations"] = outside
        infos["done"] = done
        infos["team_reward"] = reward.astype(np.float32)  # what every drone is paid by default
        if zero_sum:
            infos["pursuer_reward"] = self.scenario.team_rewards[:, 0].astype(np.float32)
            infos["evader_reward"] = self.scenario.team_rewards[:, 1].astype(np.float32)
        if self._perceives:
            self._measure()
        obs = self._observe()
        if done.any():
            infos["final_obs"] = obs.copy()
            infos["final_state"] = self.state()
            infos["episode_return"] = self.episode_return.copy()
            infos["episode_length"] = self.t.copy()
            infos["episode_collisions"] = self.episode_collisions.copy()
            infos["episode_geofence_violations"] = self.episode_geofence.copy()
            if self.autoreset:
                ids = np.flatnonzero(done)
                self._reset_envs(ids)
                obs[ids] = self._observe(ids)
            else:
                self._needs_reset = True
        return (obs, rewards.astype(np.float32),
                np.repeat(terminated[:, None], n, axis=1), np.repeat(truncated[:, None], n, axis=1),
                infos)

    def _metrics(self) -> dict[str, np.ndarray]:
        return self.scenario.metrics()

    def state(self) -> np.ndarray:
        return self.scenario.state(self._pos, self._vel, self.t)

    @property
    def positions(self) -> np.ndarray:
        """Drone positions (E, N, 3), metres, ENU."""
        return self._pos.copy()

    @property
    def velocities(self) -> np.ndarray:
        return self._vel.copy()

    @property
    def physics_steps(self) -> int:
        return self.dynamics.physics_steps

    def close(self) -> None:
        self.dynamics.close()
