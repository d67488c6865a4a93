"""Teams (`policies.teams`): one on-policy algorithm per side of a game, self-play against the
other side's current or past policies, checkpoints, per-team policies and bundles."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

import policies
from policies.config import resolve_config
from policies.teams import TeamPolicies, TeamTrainer

PURSUIT_2V1 = {"num_drones": 3, "num_pursuers": 2}
TEAMS = {"pursuers": {}, "evaders": {}}


def small(**trainer):
    return {"env": dict(PURSUIT_2V1),
            "trainer": {"num_envs": 4, "rollout_steps": 8, "progress": False,
                        "tensorboard": False, "teams": dict(TEAMS), **trainer},
            "algo": {"hidden_sizes": [16], "critic_hidden_sizes": [16], "epochs": 1}}


class Sides(ParallelEnv):
    """Three agents in two declared teams; each agent observes (and is paid) its own constant,
    so a team's buffer shows whose data it holds."""

    metadata = {"name": "sides_v0", "render_modes": []}
    PAID = {"a0": 1.0, "a1": 2.0, "b0": -7.0}

    def __init__(self):
        self.possible_agents = list(self.PAID)
        self.agents: list[str] = []
        self.teams = {"left": ["a0", "a1"], "right": ["b0"]}
        self._obs = spaces.Box(-10.0, 10.0, (2,), np.float32)
        self._act = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._t = 0

    def observation_space(self, agent):
        return self._obs

    def action_space(self, agent):
        return self._act

    def _observe(self):
        return {a: np.array([self.PAID[a], self._t / 5], np.float32) for a in self.agents}

    def reset(self, seed=None, options=None):
        self.agents, self._t = list(self.possible_agents), 0
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        self._t += 1
        done = self._t >= 5
        rewards = {a: self.PAID[a] for a in self.agents}
        obs = self._observe()
        out = (obs, rewards, {a: False for a in self.agents}, {a: done for a in self.agents},
               {a: {} for a in self.agents})
        if done:
            self.agents = []
        return out


def sides_config(**trainer):
    return {"trainer": {"num_envs": 2, "rollout_steps": 5, "progress": False, "tensorboard": False,
                        "normalize_obs": False, "teams": {"left": {}, "right": {"algo": "happo"}},
                        **trainer},
            "algo": {"hidden_sizes": [8], "critic_hidden_sizes": [8], "epochs": 1}}


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize("algo, trainer, message", [
    ("mappo", {"teams": {"pursuers": {"algo": "qmix"}, "evaders": {}}},
     r"trainer.teams.pursuers.algo='qmix': a team trains with an on-policy algorithm \(mappo, "
     r"happo, hatrpo, haa2c\); the other families have no team mode yet"),
    ("maddpg", {"teams": dict(TEAMS)}, "maddpg belongs to another family, which has no team mode"),
    ("mappo", {"teams": {"pursuers": {}}}, "name at least two"),
    ("mappo", {"teams": dict(TEAMS), "opponents": "past", "num_envs": 1},
     r"set trainer.num_envs >= 2 \(got 1\)"),
    ("mappo", {"teams": {"pursuers": {"lr_actr": 1.0}, "evaders": {}}}, "unknown MAPPOConfig key 'lr_actr'"),
    ("mappo", {"teams": dict(TEAMS), "opponents": "older"}, "trainer.opponents must be current or past"),
    ("mappo", {}, "pursuit is a game between the teams pursuers and evaders, whose rewards are "
                  "opposite, so one mappo policy for every drone would learn their mean"),
])
def test_a_team_mode_the_trainer_cannot_run_is_refused_in_one_sentence(algo, trainer, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(algo, "pursuit", {"env": dict(PURSUIT_2V1), "trainer": trainer})


def test_each_team_gets_its_algorithm_with_its_overrides_and_the_rest_its_defaults():
    resolved = resolve_config("mappo", "pursuit", {"env": dict(PURSUIT_2V1), "trainer": {
        "teams": {"pursuers": {"lr_actor": 1e-3}, "evaders": {"algo": "happo"}}}})
    teams = resolved["trainer"]["teams"]
    assert teams["pursuers"]["algo"] == "mappo" and teams["pursuers"]["lr_actor"] == 1e-3
    assert teams["evaders"]["algo"] == "happo" and teams["evaders"]["share_params"] is False
    assert resolve_config("mappo", "pursuit", resolved)["trainer"]["teams"] == teams  # idempotent


@pytest.mark.parametrize("teams, message", [
    ({"hunters": {}, "evaders": {}}, "names team 'hunters' but the env's teams are pursuers, evaders"),
    ({"pursuers": {"agents": ["drone_0", "drone_1", "drone_2"]}, "evaders": {}},
     "agent drone_2 is in 2 teams"),
])
def test_teams_that_do_not_partition_the_agents_are_refused(teams, message):
    config = small()
    config["trainer"]["teams"] = teams
    with pytest.raises(ValueError, match=message):
        policies.train("mappo", "pursuit", 32, config=config)


# -- each team learns from its own data --------------------------------------------------------
def make_trainer(env_fn, config, algo="mappo", out_dir=None, resume=False):
    scenario = env_fn if isinstance(env_fn, str) else None
    resolved = resolve_config(algo, scenario, config)
    return TeamTrainer(resolved, env_fn, out_dir, resume=resume)


def test_a_team_buffer_holds_only_its_own_agents_observations_and_reward():
    trainer = make_trainer(Sides, sides_config())
    trainer.start_segment()
    trainer.absorb(trainer.rollout())
    left, right = trainer.teams
    assert (left.name, left.members, right.name, right.members) == ("left", [0, 1], "right", [2])
    assert np.all(left.buffer.rewards == 1.5)  # the mean of a0's 1 and a1's 2, never b0's -7
    assert np.all(right.buffer.rewards == -7.0)
    assert np.all(left.buffer.obs[..., 0] == np.array([1.0, 2.0]))  # a0, a1 observe their own
    assert np.all(right.buffer.obs[..., 0] == -7.0)
    assert left.algo.spec.agents == ["a0", "a1"] and right.algo.spec.agents == ["b0"]
    assert type(left.algo).__name__ == "MAPPO" and type(right.algo).__name__ == "HAPPO"


def test_pursuit_pays_each_team_its_own_reward_and_the_critics_see_the_global_state():
    trainer = make_trainer("pursuit", small())
    trainer.start_segment()
    trainer.absorb(trainer.rollout())
    pursuers, evaders = trainer.teams
    assert (pursuers.members, evaders.members) == ([0, 1], [2])
    np.testing.assert_array_equal(pursuers.buffer.rewards, -evaders.buffer.rewards)  # zero-sum
    assert pursuers.buffer.rewards.any()  # captures or leaving the arena happened
    assert pursuers.buffer.states.shape[-1] == trainer.env.spec.state_size


# -- self-play against past opponents ----------------------------------------------------------
def test_past_opponents_come_from_each_teams_pool_on_the_other_teams_rows():
    trainer = make_trainer(Sides, sides_config(opponents="past", num_envs=4, snapshot_every=2,
                                               pool_size=2))
    left, right = trainer.teams
    np.testing.assert_array_equal(left.rows, [0, 1])  # each team learns on its own share
    np.testing.assert_array_equal(right.rows, [2, 3])
    assert left.buffer.num_envs == 2 and right.buffer.num_envs == 2
    trainer.restart_envs()
    sizes = []
    for _ in range(5):
        trainer.absorb(trainer.rollout())
        trainer.update_step()
        trainer.update += 1
        sizes.append(len(trainer.pools["left"]))
    assert sizes == [1, 2, 2, 2, 2]  # the initial policy, a snapshot every 2nd, at most 2
    drawn = trainer.draw_opponents()
    assert [(team.name, list(rows)) for team, rows, _ in drawn] == [("right", [0, 1]),
                                                                    ("left", [2, 3])]
    # a snapshot is frozen: later updates leave it as it was saved
    snapshot = trainer.pools["left"][-1]
    before = {k: v.clone() for k, v in snapshot["actors"].items()}
    trainer.absorb(trainer.rollout())
    trainer.update_step()
    for key, value in before.items():
        assert torch.equal(snapshot["actors"][key], value)
    current = left.algo.actors.state_dict()
    assert any(not torch.equal(current[k], before[k]) for k in before)


def test_current_opponents_every_team_learns_on_every_row():
    trainer = make_trainer(Sides, sides_config())
    for team in trainer.teams:
        np.testing.assert_array_equal(team.rows, [0, 1])
    assert trainer.draw_opponents() == []


# -- checkpoints, policies, bundles --------------------------------------------------------------
def actor_weights(policy: TeamPolicies):
    return {(name, k): v for name, p in policy.teams.items()
            for k, v in p.actors.state_dict().items()}


def test_a_resumed_team_run_continues_exactly_like_the_uninterrupted_one(tmp_path):
    config = small(opponents="past", snapshot_every=1, pool_size=2, checkpoint_every=2)
    steps = 4 * 8 * 4  # 4 iterations of 4 envs x 8 steps
    whole = policies.train("mappo", "pursuit", steps, config=config, out_dir=tmp_path / "whole")
    policies.train("mappo", "pursuit", steps // 2, config=config, out_dir=tmp_path / "part")
    resumed = policies.train("mappo", "pursuit", steps, out_dir=tmp_path / "part", resume=True)
    a, b = actor_weights(whole), actor_weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    data = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert set(data["opponent_pools"]) == {"pursuers", "evaders"}
    assert len(data["opponent_pools"]["evaders"]) == 2


def test_a_team_run_saves_one_policy_per_team_that_acts_for_its_agents(tmp_path):
    policy = policies.train("mappo", "pursuit", 64, config=small(), out_dir=tmp_path)
    loaded = policies.load(tmp_path)
    assert isinstance(loaded, TeamPolicies)
    assert loaded.teams["pursuers"].agents == ["drone_0", "drone_1"]
    assert loaded.teams["evaders"].agents == ["drone_2"]
    assert policies.load(tmp_path / "policy_evaders.pt").agents == ["drone_2"]
    import sim

    env = sim.make_env("pursuit", seed=0, **PURSUIT_2V1)
    obs, _ = env.reset(seed=0)
    joint = loaded.act(obs)
    for name in ("pursuers", "evaders"):
        team = policy.teams[name]
        own = team.act({a: obs[a] for a in team.agents})
        for agent, action in own.items():
            np.testing.assert_allclose(joint[agent], action)
    env.close()


def test_export_writes_one_bundle_per_team_that_the_swarm_accepts(tmp_path, capsys):
    from marl_ros.cli import main
    from marl_ros.graph import _team_bundles
    from marl_ros.runtime import OnnxPolicy
    from policies.export import _sim_contract
    from sim.obs import observation_hash

    config = small()
    config["trainer"]["teams"] = {"pursuers": {}, "evaders": {"algo": "happo"}}
    policy = policies.train("mappo", "pursuit", 64, config=config, out_dir=tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "b")]) == 0
    pursuers, evaders = (OnnxPolicy.load(tmp_path / "b" / t) for t in ("pursuers", "evaders"))
    assert pursuers.agents == ["drone_0", "drone_1"] and evaders.agents == ["drone_2"]
    assert evaders.meta["team"] == {"name": "evaders", "drones": [2]}
    assert evaders.meta["provenance"]["algorithm"] == "happo"
    cfg, _, _ = _sim_contract(policy.teams["evaders"])
    assert evaders.meta["observation"]["hash"] == observation_hash(cfg)
    _, drones = _team_bundles(f"pursuers={tmp_path / 'b' / 'pursuers'},"
                              f"evaders={tmp_path / 'b' / 'evaders'}", None, "pursuit", 3)
    assert [d.rsplit("/", 1)[-1] for d in drones] == ["pursuers", "pursuers", "evaders"]
    # the bundle's action is the torch team policy's (most probable) action
    import sim

    env = sim.make_env("pursuit", seed=1, **PURSUIT_2V1)
    obs, _ = env.reset(seed=1)
    torch_action = policy.teams["evaders"].act({"drone_2": obs["drone_2"]})["drone_2"]
    onnx_setpoint = evaders.act(obs["drone_2"], "drone_2")
    scale = np.array([cfg.vxy, cfg.vxy, cfg.vz, cfg.yaw_rate])
    np.testing.assert_allclose(onnx_setpoint, np.clip(torch_action, -1, 1) * scale, atol=1e-5)
    env.close()
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "e"),
                 "--team", "evaders"]) == 0
    assert OnnxPolicy.load(tmp_path / "e").agents == ["drone_2"]
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "x"), "--team",
                 "hunters"]) != 0
    assert "has the teams pursuers, evaders, not 'hunters'" in capsys.readouterr().err


def test_marl_ros_eval_measures_a_team_run_against_scripted_and_learned_opponents(tmp_path):
    from policies.evaluation import evaluate_team_run

    policies.train("mappo", "pursuit", 64, config=small(), out_dir=tmp_path / "a")
    policies.train("mappo", "pursuit", 64, config=small(), out_dir=tmp_path / "b", seed=1)
    report = evaluate_team_run(tmp_path / "a", backend="fast", episodes=2, seed=0,
                               opponent=tmp_path / "b")
    matchups = report["matchups"]
    assert {"policy_vs_flee", "random_vs_flee", "chase_vs_policy", "chase_vs_random",
            "policy_vs_policy", "policy_vs_opponent", "opponent_vs_policy"} <= set(matchups)
    for row in matchups.values():
        assert 0.0 <= row["capture_rate"] <= 1.0 and row["episodes"] == 2
    assert (tmp_path / "a" / "eval_fast.json").is_file()


# -- learning ------------------------------------------------------------------------------------
@pytest.mark.slow  # 3 seeds x 40,960 env steps, ~25-40 s each
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_teams_learn_clearly_above_the_random_walk_in_2v1_pursuit(seed):
    """MAPPO for each team, current opponents, 2 v 1 with time_penalty 0.01: the learned
    pursuers catch the scripted fleeing evader far more often than random-walking pursuers
    (5% of the same 20 episodes), and the learned evader survives random-walking pursuers
    longer than a random-walk evader does (fast backend, most probable actions)."""
    from policies.games.evaluation import pursuit_matchup

    config = {"env": {**PURSUIT_2V1, "time_penalty": 0.01},
              "trainer": {"progress": False, "tensorboard": False, "teams": dict(TEAMS)}}
    policy = policies.train("mappo", "pursuit", 40960, seed=seed, config=config)
    env = policy.metadata["env_config"]

    def matchup(pursuers, evaders, learned=policy):
        return pursuit_matchup(learned, env, pursuers, evaders, 20, "fast", 0, deterministic=True)

    random_vs_flee = matchup("random", "scripted", None)
    learned_vs_flee = matchup("policy", "scripted")
    assert learned_vs_flee["capture_rate"] >= random_vs_flee["capture_rate"] + 0.5, learned_vs_flee
    random_vs_random = matchup("random", "random", None)
    random_vs_learned = matchup("random", "policy")
    assert random_vs_learned["capture_time"] >= 1.3 * random_vs_random["capture_time"], (
        random_vs_learned, random_vs_random)


def test_the_shipped_team_bundles_serve_their_teams_of_the_2v1_game():
    """policies/zoo/pursuit_pursuers_2v1 and pursuit_evader_2v1 (README "Teams and self-play"):
    each declares its team and drone ids, and `team_policies` accepts the pair for 3 drones."""
    from pathlib import Path

    from marl_ros.graph import _team_bundles
    from marl_ros.runtime import read_bundle_metadata

    zoo = Path(__file__).resolve().parent.parent / "policies" / "zoo"
    pursuers, evader = zoo / "pursuit_pursuers_2v1", zoo / "pursuit_evader_2v1"
    assert read_bundle_metadata(pursuers)["team"] == {"name": "pursuers", "drones": [0, 1]}
    assert read_bundle_metadata(evader)["team"] == {"name": "evaders", "drones": [2]}
    _, drones = _team_bundles(f"pursuers={pursuers},evaders={evader}", None, "pursuit", 3)
    assert drones == [str(pursuers), str(pursuers), str(evader)]
