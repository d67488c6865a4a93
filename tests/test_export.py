"""Export and the torch-free runtime: torch vs onnxruntime parity, bundle validation."""

import hashlib
import shutil

import numpy as np
import pytest
import torch
import yaml
from export_support import fly_torch_and_onnx

import sim
from marl_ros.runtime import BundleError, OnnxPolicy
from policies.export import export_bundle
from policies.normalization import ObservationNormalizer
from policies.policy import TrainedPolicy, build_actors

torch.set_num_threads(1)
SMALL = dict(num_drones=3, width=8, height=8, footprint=3, patch_size=5, summary_size=2)


def make_policy(action_mode="continuous", share=True, recurrent=False, id_size=0, seed=0):
    """A policy with random weights and random normaliser statistics, as training leaves it."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    venv = sim.make_vec_env("coverage", 1, action_mode=action_mode, **SMALL)
    n = venv.num_agents
    network = {"hidden_sizes": [32, 32], "activation": "tanh", "recurrent": recurrent,
               "gru_size": 16, "init_log_std": -0.5}
    obs_spaces = [venv.observation_space] * n
    act_spaces = [venv.action_space] * n
    actors = build_actors(obs_spaces, act_spaces, share, id_size, network)
    for p in actors.parameters():  # larger weights than the init, so actions are not all ~0
        p.data.normal_(0.0, 0.5)
    size = venv.observation_size
    norm = ObservationNormalizer((size,))
    norm.mean, norm.var = rng.normal(size=size), rng.uniform(0.5, 2.0, size=size)
    meta = {"algorithm": "mappo", "seed": seed, "global_step": 123,
            "env_config": venv.cfg.to_dict()}
    return TrainedPolicy(venv.agents, obs_spaces, act_spaces, actors, norm, share, id_size,
                         network, meta), venv


@pytest.mark.parametrize("action_mode,share,id_size", [
    ("continuous", True, 0), ("continuous", False, 0), ("continuous", True, 3),
    ("discrete", True, 0), ("discrete", False, 0)])
def test_onnx_matches_torch_on_1000_observations(tmp_path, action_mode, share, id_size):
    policy, venv = make_policy(action_mode, share, id_size=id_size)
    bundle = export_bundle(policy, tmp_path / "bundle")
    runtime = OnnxPolicy.load(bundle, config=venv.cfg)
    obs = np.random.default_rng(1).normal(0, 2, size=(1000, venv.num_agents,
                                                         venv.observation_size)).astype(np.float32)
    expected = policy.act_batch(obs)  # (1000, N, A) deterministic
    for i, agent in enumerate(venv.agents):
        out = runtime.run(obs[:, i], agent)
        if action_mode == "discrete":
            np.testing.assert_array_equal(out["action"], expected[:, i, 0].astype(np.int64))
            table = np.array([venv.action_to_setpoint(np.full((1, venv.num_agents), a))[0, 0]
                              for a in out["action"]])
            np.testing.assert_allclose(out["setpoint"], table, atol=1e-5)
        else:
            clipped = np.clip(expected[:, i], -1, 1)
            assert np.abs(out["action"] - clipped).max() <= 1e-5
            scale = np.array([venv.cfg.vxy, venv.cfg.vxy, venv.cfg.vz, venv.cfg.yaw_rate])
            assert np.abs(out["setpoint"] - clipped * scale).max() <= 1e-5


def test_recurrent_onnx_matches_torch_over_50_steps(tmp_path):
    policy, venv = make_policy("continuous", share=True, recurrent=True)
    runtime = OnnxPolicy.load(export_bundle(policy, tmp_path / "gru"))
    assert runtime.hidden_size == 16
    rng = np.random.default_rng(2)
    policy.reset()
    runtime.reset()
    worst = 0.0
    for _ in range(50):
        obs = {a: rng.normal(size=venv.observation_size).astype(np.float32) for a in venv.agents}
        torch_actions = policy.act(obs)
        for agent in venv.agents:
            onnx_action = runtime.run(obs[agent], agent)["action"][0]
            worst = max(worst, float(np.abs(onnx_action - torch_actions[agent]).max()))
    assert worst <= 1e-5
    # The hidden state really carries memory: after reset the same input gives another action.
    runtime_fresh = OnnxPolicy.load(tmp_path / "gru")
    last = runtime.run(obs["drone_0"], "drone_0")["action"]
    first = runtime_fresh.run(obs["drone_0"], "drone_0")["action"]
    assert not np.allclose(last, first)


def test_bundle_metadata_describes_the_contract(tmp_path):
    policy, venv = make_policy()
    meta = yaml.safe_load((export_bundle(policy, tmp_path / "b") / "policy.yaml").read_text())
    assert meta["observation"]["hash"] == sim.obs.observation_hash(venv.cfg)
    assert [tuple(f) for f in meta["observation"]["layout"]] == sim.obs.observation_layout(venv.cfg)
    assert meta["action"]["limits"] == {"vxy": venv.cfg.vxy, "vz": venv.cfg.vz,
                                        "yaw_rate": venv.cfg.yaw_rate}
    assert meta["policy_rate_hz"] == venv.cfg.policy_hz
    assert meta["observation"]["parameters"]["comm_radius"] == venv.cfg.comm_radius
    assert meta["provenance"]["algorithm"] == "mappo"
    assert meta["provenance"]["training_steps"] == 123
    assert meta["onnx"]["opset"] == 17


@pytest.fixture
def bundle(tmp_path):
    policy, venv = make_policy()
    return export_bundle(policy, tmp_path / "good"), venv


def test_runtime_refuses_a_node_configured_differently(bundle):
    path, venv = bundle
    other = sim.config.make_config("coverage", **{**SMALL, "comm_radius": 2.5})
    with pytest.raises(BundleError, match=r"trained with comm_radius=1.5 but this node is "
                                          r"configured with comm_radius=2.5"):
        OnnxPolicy.load(path, config=other)


def test_runtime_refuses_altered_corrupt_or_missing_files(bundle, tmp_path):
    path, _ = bundle
    bad = tmp_path / "altered"
    shutil.copytree(path, bad)
    data = (bad / "policy.onnx").read_bytes()
    (bad / "policy.onnx").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(BundleError, match="checksum of policy.onnx"):
        OnnxPolicy.load(bad)
    # Truncated and checksum updated: the model itself fails to load -> still one clear error.
    meta = yaml.safe_load((bad / "policy.yaml").read_text())
    meta["checksums"]["policy.onnx"] = hashlib.sha256((bad / "policy.onnx").read_bytes()).hexdigest()
    (bad / "policy.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(BundleError, match="is not a loadable ONNX model"):
        OnnxPolicy.load(bad)
    (bad / "policy.onnx").unlink()
    with pytest.raises(BundleError, match="policy.onnx is missing"):
        OnnxPolicy.load(bad)
    with pytest.raises(BundleError, match="does not exist"):
        OnnxPolicy.load(tmp_path / "nowhere")


def test_runtime_refuses_mismatched_metadata(bundle, tmp_path):
    path, _ = bundle
    for field, change, message in [
        ("observation", lambda m: m["observation"].update(hash="0000"),
         "field observation.hash is '0000' but sim/obs.py builds"),
        ("onnx", lambda m: m["onnx"].update(outputs=["action"]),
         r"outputs are \['action', 'setpoint'\] but policy.yaml onnx.outputs says \['action'\]"),
        ("format", lambda m: m.update(format=99), "field format is 99"),
    ]:
        bad = tmp_path / field
        shutil.copytree(path, bad)
        meta = yaml.safe_load((bad / "policy.yaml").read_text())
        change(meta)
        (bad / "policy.yaml").write_text(yaml.safe_dump(meta))
        with pytest.raises(BundleError, match=message):
            OnnxPolicy.load(bad)
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "policy.yaml").write_text("{{{ not yaml")
    with pytest.raises(BundleError, match="not valid YAML"):
        OnnxPolicy.load(tmp_path / "garbage")


def test_runtime_does_not_import_torch(bundle):
    """A robot needs marl_ros + onnxruntime + the observation contract, nothing else."""
    import subprocess
    import sys

    path, _ = bundle
    code = ("import sys\nfrom marl_ros.runtime import OnnxPolicy\n"
            f"p = OnnxPolicy.load({str(path)!r})\n"
            "import numpy as np\nprint(p.act(np.zeros(p.obs_sizes['drone_0']), 'drone_0'))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def make_episodic_policy(agent_id, seed=0):
    """A recurrent agent network of the episodic family (QMIX & co.) with random weights."""
    from policies.value.common import RecurrentAgent
    from policies.value.policy import RecurrentAgentPolicy

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    venv = sim.make_vec_env("coverage", 1, action_mode="discrete", **SMALL)
    n, size, actions = venv.num_agents, venv.observation_size, int(venv.action_space.n)
    input_size = size + actions + (n if agent_id else 0)
    agent = RecurrentAgent(input_size, [32], 16, actions)
    for p in agent.parameters():
        p.data.normal_(0.0, 0.5)
    norm = ObservationNormalizer((size,))
    norm.mean, norm.var = rng.normal(size=size), rng.uniform(0.5, 2.0, size=size)
    network = {"input_size": input_size, "hidden_sizes": [32], "gru_size": 16,
               "num_actions": actions, "agent_id": agent_id, "last_action": True,
               "output": "q", "epsilon": 0.05}
    meta = {"algorithm": "qmix", "seed": seed, "global_step": 7, "env_config": venv.cfg.to_dict()}
    return RecurrentAgentPolicy(venv.agents, [venv.observation_space] * n,
                                [venv.action_space] * n, agent, norm, network, meta), venv


@pytest.mark.parametrize("agent_id", [False, True])
def test_episodic_family_onnx_matches_torch_over_50_steps(tmp_path, agent_id):
    """QMIX/VDN/QTRAN/COMA agents read their previous action: the bundle carries it in the
    recurrent state, so the greedy actions match torch step for step over an episode."""
    policy, venv = make_episodic_policy(agent_id)
    bundle = export_bundle(policy, tmp_path / "q")
    meta = yaml.safe_load((bundle / "policy.yaml").read_text())
    assert len(set(meta["models"].values())) == (venv.num_agents if agent_id else 1)
    runtime = OnnxPolicy.load(bundle, config=venv.cfg)
    assert runtime.hidden_size == 16 + venv.action_space.n
    rng = np.random.default_rng(3)
    policy.reset()
    chosen = set()
    for _ in range(50):
        obs = {a: rng.normal(0, 2, size=venv.observation_size).astype(np.float32)
               for a in venv.agents}
        torch_actions = policy.act(obs)
        for agent in venv.agents:
            out = runtime.run(obs[agent], agent)
            assert int(out["action"][0]) == torch_actions[agent]
            setpoint = venv.action_to_setpoint(np.full((1, venv.num_agents),
                                                       torch_actions[agent]))[0, 0]
            np.testing.assert_allclose(out["setpoint"][0], setpoint, atol=1e-5)
            chosen.add(torch_actions[agent])
    assert len(chosen) > 1  # the comparison covered more than one action


@pytest.mark.parametrize("algo", ["mappo", "qmix"])
def test_default_swarm_training_exports_one_model_that_flies_any_drone_count(tmp_path, algo):
    """`marl-ros train --algo mappo` (or qmix) on a drone scenario: no agent id, one model."""
    import policies
    from marl_ros.runtime import load_swarm_config

    quiet = {"progress": False, "tensorboard": False, "num_envs": 2, "rollout_steps": 8}
    trained = {}
    for agent_id in (None, True):  # the swarm default, then an explicit agent id
        config = {"env": SMALL, "trainer": quiet}
        if algo == "qmix":
            config["algo"] = {"episode_limit": 8, "learning_starts": 2}
            config["env"] = {**SMALL, "action_mode": "discrete", "max_steps": 8}
        if agent_id:
            config.setdefault("algo", {})["agent_id"] = True
        policy = policies.train(algo, "coverage", 32, seed=0, config=config)
        trained[agent_id] = export_bundle(policy, tmp_path / f"{algo}_{agent_id}")
    meta = yaml.safe_load((trained[None] / "policy.yaml").read_text())
    assert len(set(meta["models"].values())) == 1
    for n in (1, 3, 7):  # trained with 3 drones; flies any number
        cfg = load_swarm_config(trained[None], n)
        loaded = OnnxPolicy.load(trained[None], config=cfg)
        obs = np.zeros(loaded.obs_sizes[loaded.agents[0]], np.float32)
        assert np.isfinite(loaded.act(obs, loaded.agents[0])).all()
    with_id = yaml.safe_load((trained[True] / "policy.yaml").read_text())
    assert len(set(with_id["models"].values())) == 3
    load_swarm_config(trained[True], 3)
    with pytest.raises(BundleError, match="flies exactly 3 drones, not 4"):
        load_swarm_config(trained[True], 4)


@pytest.mark.parametrize("algo,action_mode,share", [
    ("maddpg", "continuous", False), ("hatd3", "continuous", True), ("maddpg", "discrete", True)])
def test_off_policy_deterministic_actor_flies_the_same_episode_in_onnx(tmp_path, algo,
                                                                        action_mode, share):
    """MADDPG/HADDPG/HATD3 export their deterministic actor (tanh and the Box scaling, or the
    logits' arg-max, inside the graph) into the same bundle; torch and onnxruntime agree
    action for action along a whole episode flown with the torch actions."""
    import policies

    config = {"env": {**SMALL, "max_steps": 20, "action_mode": action_mode},
              "trainer": {"progress": False, "tensorboard": False, "num_envs": 2,
                          "rollout_steps": 8},
              "algo": {"hidden_sizes": [32, 32], "critic_hidden_sizes": [32, 32],
                       "batch_size": 16, "learning_starts": 16, "share_params": share}}
    policy = policies.train(algo, "coverage", 48, seed=0, config=config)
    torch.manual_seed(1)
    for p in policy.actors.parameters():  # larger weights than the init, so actions vary
        p.data.normal_(0.0, 0.5)
    bundle = export_bundle(policy, tmp_path / algo)
    meta = yaml.safe_load((bundle / "policy.yaml").read_text())
    assert len(set(meta["models"].values())) == (1 if share else 3)
    env = sim.make_env("coverage", backend="fast", seed=2, **config["env"])
    runtime = OnnxPolicy.load(bundle, config=env.cfg)
    worst, seen, steps = fly_torch_and_onnx(policy, runtime, env, seed=2)
    # float32 summation order: the 0.5-std weights put pre-tanh values in the hundreds
    assert steps == 20 and worst <= 5e-5 and len(seen) > 1
