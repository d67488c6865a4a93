"""Training on a device (`trainer.device`) and running bundles on CUDA (onnxruntime-gpu).

Tests marked `gpu` train a few updates of each torch family on the tiny coverage task with
trainer.device=cuda, resume runs across devices, and compare a bundle's actions on CUDA with
the CPU's; where torch sees no CUDA device they are skipped with that reason. The tests
without the mark run everywhere: trainer.device=cpu trains every family, a CUDA device the
machine lacks is refused before any environment is built, the saved policy holds CPU
tensors, and the ONNX execution provider is chosen from what onnxruntime offers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import policies
import sim
from policies.networks import cpu_modules, cpu_state_dict, resolve_device

torch.set_num_threads(1)

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(
    not CUDA, reason="no CUDA device: torch.cuda.is_available() is False (run on a machine with "
    "an NVIDIA GPU and the CUDA build of torch)")

SMALL = dict(num_drones=2, width=8, height=8, cell_size=0.25, footprint=3, patch_size=5,
             summary_size=2, max_steps=30)
QUIET = {"progress": False, "tensorboard": False}
# A few updates of each torch family: env overrides, trainer, algo, env steps.
OFF_POLICY = ({}, {"num_envs": 2, "rollout_steps": 8}, {"learning_starts": 32, "batch_size": 32},
              96)
TINY = {
    "mappo": ({}, {"num_envs": 2, "rollout_steps": 16}, {}, 96),
    "happo": ({}, {"num_envs": 2, "rollout_steps": 16}, {}, 96),
    "qmix": ({"action_mode": "discrete"}, {"num_envs": 2},
             {"learning_starts": 2, "batch_episodes": 2}, 180),
    "coma": ({"action_mode": "discrete"}, {"num_envs": 2}, {}, 120),
    "hatd3": OFF_POLICY,
    "mf_q": OFF_POLICY,
}


def tiny_config(algo: str, device: str, **trainer) -> dict:
    env, tcfg, acfg, _ = TINY[algo]
    return {"env": {**SMALL, **env}, "trainer": {**QUIET, **tcfg, "device": device, **trainer},
            "algo": acfg}


def train_tiny(algo: str, device: str, out_dir=None, steps: int | None = None, **trainer):
    return policies.train(algo, "coverage", steps or TINY[algo][3], seed=1, out_dir=out_dir,
                          config=tiny_config(algo, device, **trainer))


def saved_tensors(payload) -> list[torch.Tensor]:
    if isinstance(payload, torch.Tensor):
        return [payload]
    if isinstance(payload, dict):
        return [t for v in payload.values() for t in saved_tensors(v)]
    if isinstance(payload, list | tuple):
        return [t for v in payload for t in saved_tensors(v)]
    return []


def acts_after_loading(policy, out_dir) -> None:
    """policy.pt holds CPU tensors only, loads on this machine and acts like the returned policy."""
    payload = torch.load(out_dir / "policy.pt", map_location="meta", weights_only=False)
    tensors = saved_tensors(payload)
    assert tensors and all(t.device.type == "meta" for t in tensors)  # loadable without CUDA
    raw = torch.load(out_dir / "policy.pt", weights_only=False)  # no map_location: as saved
    assert all(t.device.type == "cpu" for t in saved_tensors(raw))
    loaded = policies.load(out_dir)
    params = {k: v for k, v in policy.metadata["env_config"].items() if k != "scenario"}
    env = sim.make_env("coverage", backend="fast", seed=1, **params)
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        a, b = policy.act(obs), loaded.act(obs)
        assert set(a) == set(env.agents)
        for name in a:
            np.testing.assert_allclose(np.asarray(a[name], float), np.asarray(b[name], float))
        obs, *_ = env.step(a)


def module_devices(holder) -> set[str]:
    return {p.device.type for value in vars(holder).values() if isinstance(value, nn.Module)
            for p in value.parameters()}


# -- everywhere -----------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", list(TINY))
def test_every_torch_family_trains_with_trainer_device_cpu(algo, tmp_path):
    policy = train_tiny(algo, "cpu", out_dir=tmp_path)
    assert policy.metadata["global_step"] >= TINY[algo][3]
    acts_after_loading(policy, tmp_path)


def test_a_cuda_device_this_machine_lacks_is_refused_before_any_environment(monkeypatch):
    missing = f"cuda:{torch.cuda.device_count() if CUDA else 0}"  # one index past the last
    built = []
    monkeypatch.setattr(sim, "make_vec_env", lambda *a, **k: built.append(a) or 1 / 0)
    for algo in ("mappo", "qmix", "hatd3", "mf_q"):
        with pytest.raises(ValueError, match=f"trainer.device={missing} but torch sees"):
            train_tiny(algo, missing)
    assert not built
    if not CUDA:
        with pytest.raises(ValueError, match="set trainer.device=auto or cpu"):
            train_tiny("mappo", "cuda")
        assert not built


def test_the_game_family_learns_tables_on_the_cpu_and_refuses_cuda():
    quiet = {"trainer": {**QUIET, "device": "cuda"}}
    with pytest.raises(ValueError, match="does not apply to minimax_q: the game-theoretic family"):
        policies.train("minimax_q", "matching_pennies", 100, config=quiet)
    quiet["trainer"]["device"] = "auto"
    policies.train("minimax_q", "matching_pennies", 100, config=quiet)


def test_auto_is_cuda_exactly_when_torch_sees_a_device():
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_cpu_copies_leave_cpu_modules_alone_and_detach_weights():
    actors = nn.ModuleList([nn.Linear(3, 2)])
    assert cpu_modules(actors) is actors  # the CPU path hands the policy the very modules
    weights = cpu_state_dict(actors)
    weights["0.weight"].add_(1.0)
    assert not torch.equal(weights["0.weight"], actors[0].weight)
    assert not weights["0.weight"].requires_grad


def test_resume_may_move_a_run_to_another_device(tmp_path):
    """policies.train(resume=True) takes trainer.device from the overrides (a run started with
    trainer.device=cuda continues on a machine without a GPU, and the other way round)."""
    train_tiny("mappo", "cpu", out_dir=tmp_path, steps=32, checkpoint_every=1)
    config = (tmp_path / "config.yaml").read_text()
    missing = f"cuda:{torch.cuda.device_count() if CUDA else 0}"
    with pytest.raises(ValueError, match=f"trainer.device={missing}"):
        policies.train("mappo", "coverage", 64, out_dir=tmp_path, resume=True,
                       overrides=[f"trainer.device={missing}"])
    policy = policies.train("mappo", "coverage", 64, out_dir=tmp_path, resume=True,
                            overrides=["trainer.device=cpu"])
    assert policy.metadata["global_step"] == 64
    assert (tmp_path / "config.yaml").read_text() == config  # the run's own config is kept


# -- ONNX execution providers ----------------------------------------------------------------------
@pytest.fixture
def providers(monkeypatch):
    """Pretend onnxruntime offers `listed` and the TensorRT / CUDA driver libraries exist."""
    import onnxruntime

    from marl_ros import runtime

    def offer(listed: list[str], tensorrt: bool = True, driver: bool = True) -> None:
        monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(listed))
        monkeypatch.setattr(runtime, "tensorrt_libraries_present", lambda: tensorrt)
        monkeypatch.setattr(runtime, "cuda_driver_present", lambda: driver)

    return offer


GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_auto_takes_tensorrt_then_cuda_then_cpu_as_far_as_they_work(providers):
    from marl_ros.runtime import choose_providers

    providers(GPU_BUILD)
    assert choose_providers("auto") == GPU_BUILD
    providers(GPU_BUILD, tensorrt=False)  # listed, but libnvinfer is not installed
    assert choose_providers("auto") == GPU_BUILD[1:]
    providers(GPU_BUILD, driver=False)  # onnxruntime-gpu on a machine without a GPU driver
    assert choose_providers("auto") == ["CPUExecutionProvider"]
    providers(["CPUExecutionProvider"])
    assert choose_providers("auto") == ["CPUExecutionProvider"]
    assert choose_providers("cpu") == ["CPUExecutionProvider"]


def test_an_explicit_provider_is_that_one_or_one_sentence(providers):
    from marl_ros.runtime import BundleError, choose_providers

    providers(GPU_BUILD)
    assert choose_providers("cuda") == ["CUDAExecutionProvider"]
    assert choose_providers("tensorrt") == GPU_BUILD[:2]
    providers(GPU_BUILD, tensorrt=False)
    with pytest.raises(BundleError, match="needs TensorRT's libnvinfer"):
        choose_providers("tensorrt")
    providers(["CPUExecutionProvider"])
    for name in ("cuda", "tensorrt"):
        with pytest.raises(BundleError, match=f"'{name}' is not available in this onnxruntime"):
            choose_providers(name)
    with pytest.raises(BundleError, match="choose auto, cpu, cuda or tensorrt"):
        choose_providers("rocm")


# -- on a CUDA device -------------------------------------------------------------------------------
@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("algo", ["mappo", "happo", "qmix", "hatd3", "mf_q"])
def test_every_torch_family_trains_on_cuda_and_saves_a_cpu_policy(algo, tmp_path):
    from policies.config import resolve_config

    resolved = resolve_config(algo, "coverage", tiny_config(algo, "cuda"), seed=1)
    trainer = policies.family_trainer(algo)(resolved, "coverage", tmp_path)
    try:
        assert trainer.device.type == "cuda" and module_devices(trainer.algo) == {"cuda"}
        policy = trainer.train(TINY[algo][3])
    finally:
        trainer.env.close()
    assert module_devices(trainer.algo) == {"cuda"}
    acts_after_loading(policy, tmp_path)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("algo", ["mappo", "qmix", "hatd3"])
def test_a_run_resumes_across_devices(algo, tmp_path):
    """CPU checkpoint -> continues on CUDA -> continues on the CPU, without a complaint."""
    steps = TINY[algo][3]
    train_tiny(algo, "cpu", out_dir=tmp_path, steps=steps, checkpoint_every=1)
    on_gpu = policies.train(algo, "coverage", 2 * steps, out_dir=tmp_path, resume=True,
                            overrides=["trainer.device=cuda"])
    assert on_gpu.metadata["global_step"] >= 2 * steps
    back = policies.train(algo, "coverage", 3 * steps, out_dir=tmp_path, resume=True,
                          overrides=["trainer.device=cpu"])
    assert back.metadata["global_step"] >= 3 * steps
    acts_after_loading(back, tmp_path)


@pytest.mark.gpu
@needs_cuda
def test_a_bundle_acts_on_cuda_as_on_the_cpu(tmp_path):
    from marl_ros.runtime import BundleError, OnnxPolicy
    from policies.export import export_bundle

    policy = train_tiny("mappo", "cuda", out_dir=tmp_path / "run")
    bundle = export_bundle(policy, tmp_path / "bundle")
    cpu = OnnxPolicy.load(bundle, provider="cpu")
    try:
        gpu = OnnxPolicy.load(bundle, provider="cuda")
    except BundleError as err:
        pytest.fail(f"onnxruntime has no working CUDA provider here ({err}); install the gpu "
                    "extra: pip uninstall -y onnxruntime && pip install -e '.[gpu]'")
    assert gpu.providers[0] == "CUDAExecutionProvider"
    obs = np.random.default_rng(0).normal(0, 1, (64, cpu.obs_sizes[cpu.agents[0]]))
    obs = obs.astype(np.float32)
    for agent in cpu.agents:
        a, b = cpu.run(obs, agent), gpu.run(obs, agent)
        np.testing.assert_allclose(a["action"], b["action"], atol=1e-4)
        np.testing.assert_allclose(a["setpoint"], b["setpoint"], atol=1e-4)
