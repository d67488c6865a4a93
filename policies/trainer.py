"""The training loop every on-policy algorithm runs: collect -> advantages -> update -> log.

Files a run writes under `out_dir`:
  config.yaml      the resolved config (what `resume` reads back)
  checkpoint.pt    algorithm + optimiser state, normalisers, RNG states, step counts
                   (atomic: written to a temporary file, then renamed)
  policy.pt        the trained decentralised policy (`policies.load`)
  progress.csv     env step, wall clock, episodic return, coverage, steps/s per update
  tb/              TensorBoard scalars against env steps

Resume, precisely. A checkpoint holds the parameters, optimiser moments, normaliser
statistics, RNG streams and counters; it does not hold the environments (a PyBullet
world or a user's env cannot be saved in general). So with a run folder the trainer
saves every `checkpoint_every` updates and then restarts all environments from a seed
derived from (seed, update); a resumed run loads the checkpoint and restarts the
environments from that same seed. Resuming from such a checkpoint continues exactly
like the uninterrupted run (bit for bit on CPU with one thread): a run killed or stopped
between checkpoints loses at most `checkpoint_every` updates of compute, not exactness.
The one checkpoint off that grid is the last one of a run whose step budget ends between
two: resuming from it (to train further) restarts the environments there, so the
continuation sees fresh episodes where an uninterrupted longer run would have continued
the current ones; everything else is restored. Without a run folder nothing is saved and
the environments are never restarted (episodes simply run on, auto-reset).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.algos import ALGORITHMS
from policies.buffer import RolloutBuffer
from policies.config import save_config, trainer_config
from policies.envs import EPISODE_METRICS, ParallelEnvBatch, SimVecEnv
from policies.normalization import ObservationNormalizer
from policies.policy import TrainedPolicy, atomic_torch_save

CHECKPOINT_VERSION = 1


def segment_seed(seed: int, update: int) -> int:
    """Seed for the environment restart at `update` (the same in a run and its resume)."""
    return int(np.random.SeedSequence([seed, update]).generate_state(1)[0])


def make_batched_env(env_fn: str | Callable[[], Any], resolved: dict[str, Any]):
    tcfg = trainer_config(resolved["trainer"])
    if isinstance(env_fn, str):
        import sim

        venv = sim.make_vec_env(env_fn, tcfg.num_envs, backend=tcfg.backend, seed=resolved["seed"],
                                **resolved["env"])
        return SimVecEnv(venv)
    if not callable(env_fn):
        raise TypeError("env_fn must be a scenario name (e.g. 'coverage') or a function returning "
                        "a PettingZoo ParallelEnv.")
    if resolved["env"]:
        raise ValueError("config section 'env' only applies to sim scenarios; pass the parameters "
                         "to your env_fn instead.")
    return ParallelEnvBatch(env_fn, tcfg.num_envs)


class Trainer:
    """The on-policy trainer; the episodic family's trainer subclasses it and swaps the
    algorithm table, the environment wrapper and the storage (`make_storage`)."""

    algorithms: dict[str, Any] = ALGORITHMS

    def __init__(self, resolved: dict[str, Any], env_fn: str | Callable[[], Any],
                 out_dir: str | Path | None = None, resume: bool = False):
        self.config = resolved
        self.tcfg = trainer_config(resolved["trainer"])
        torch.set_num_threads(self.tcfg.torch_threads)
        self.seed = int(resolved["seed"])
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.env = self.make_env(env_fn, resolved)
        torch.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        algo_cls = self.algorithms[resolved["algorithm"]]
        self.algo = algo_cls(algo_cls.config_class.from_dict(resolved["algo"]), self.env.spec,
                             self.rng)
        self.state_norm = ObservationNormalizer((self.env.spec.state_size,),
                                                enabled=self.tcfg.normalize_state)
        self.make_storage()
        self.global_step = 0
        self.update = 0
        self.wall_time = 0.0
        self.history: list[dict[str, float]] = []
        if resume:
            self.load_checkpoint()
        elif self.out_dir is not None:
            save_config(resolved, self.out_dir / "config.yaml")
        self.writer = None
        if self.out_dir is not None and self.tcfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=self.global_step or None)

    def make_env(self, env_fn: str | Callable[[], Any], resolved: dict[str, Any]) -> Any:
        return make_batched_env(env_fn, resolved)

    def make_storage(self) -> None:
        """The observation normaliser and the rollout buffer."""
        spec = self.env.spec
        n, d = spec.num_agents, spec.obs_size
        self.obs_norm = ObservationNormalizer((d,) if self.algo.cfg.share_params else (n, d),
                                              enabled=self.tcfg.normalize_obs)
        self.buffer = RolloutBuffer(self.tcfg.rollout_steps, spec.num_envs, n, d, spec.state_size,
                                    spec.action_size, self.algo.hidden_size)

    # -- environments ----------------------------------------------------------------------
    def start_segment(self) -> None:
        """Restart every environment and recurrent state (start, after checkpoints, resume)."""
        e, n = self.env.num_envs, self.env.spec.num_agents
        self.obs = self.env.reset(seed=segment_seed(self.seed, self.update))
        self.starts = np.ones(e, np.float32)
        self.hidden = np.zeros((e, n, self.algo.hidden_size), np.float32)
        self.episode_return = np.zeros(e)
        self.episode_length = np.zeros(e, np.int64)

    def collect(self) -> dict[str, float]:
        """One rollout of `rollout_steps` into the buffer; returns finished-episode means."""
        algo, buf = self.algo, self.buffer
        raw_obs, raw_states, finished = [], [], []
        for _ in range(buf.steps):
            state = self.env.state()
            obs_n, state_n = self.obs_norm(self.obs), self.state_norm(state)
            actions, log_probs, hidden = algo.act(obs_n, self.starts, self.hidden)
            values = algo.values(state_n)
            next_obs, reward, terminated, truncated, infos = self.env.step(actions)
            done = infos["done"].astype(bool)
            final_values = np.zeros(len(done), np.float32)
            cut = done & ~terminated  # time limit: bootstrap from the final state's value
            if cut.any():
                final_values[cut] = algo.values(self.state_norm(infos["final_state"][cut]))
            buf.add(obs=obs_n, states=state_n, actions=actions, log_probs=log_probs,
                    hiddens=self.hidden, starts=self.starts, values=values, rewards=reward,
                    dones=done, final_values=final_values)
            raw_obs.append(self.obs)
            raw_states.append(state)
            self.episode_return += reward
            self.episode_length += 1
            for i in np.flatnonzero(done):
                ep = {"episodic_return": float(self.episode_return[i]),
                      "episodic_length": float(self.episode_length[i])}
                ep.update({k: float(infos[k][i]) for k in EPISODE_METRICS if k in infos})
                finished.append(ep)
            self.episode_return[done] = 0.0
            self.episode_length[done] = 0
            self.obs, self.starts, self.hidden = next_obs, done.astype(np.float32), hidden
        last_values = algo.values(self.state_norm(self.env.state()))
        buf.compute_advantages(last_values, algo.cfg.gamma, algo.cfg.gae_lambda)
        algo.value_normalizer.update(buf.returns)
        self.obs_norm.update(np.stack(raw_obs))
        self.state_norm.update(np.stack(raw_states))
        if not finished:
            return {}
        return {k: float(np.mean([ep[k] for ep in finished if k in ep])) for k in finished[0]}

    # -- the loop ----------------------------------------------------------------------------
    def train(self, total_steps: int) -> TrainedPolicy:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        per_update = self.tcfg.rollout_steps * self.env.num_envs
        num_updates = max(1, math.ceil(total_steps / per_update))
        self.start_segment()
        progress = Progress(TextColumn(f"[bold]{self.config['algorithm']}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[rate]:>8} steps/s"),
                            TextColumn("return {task.fields[ret]}"),
                            TextColumn("coverage {task.fields[cov]}"), TimeElapsedColumn(),
                            disable=not self.tcfg.progress)
        last: dict[str, float] = {}
        with progress:
            task = progress.add_task("train", total=num_updates * per_update,
                                     completed=self.update * per_update, rate="-", ret="-", cov="-")
            while self.update < num_updates:
                start = time.perf_counter()
                if self.algo.cfg.anneal_lr:
                    self.algo.set_learning_rate(1.0 - self.update / num_updates)
                episodes = self.collect()
                batch = self.buffer.sequences(self.algo.cfg.chunk_len)
                losses = self.algo.update(batch)
                self.update += 1
                self.global_step += per_update
                elapsed = time.perf_counter() - start
                self.wall_time += elapsed
                last.update(episodes)
                rate = per_update / elapsed
                self.log(episodes, losses, rate)
                progress.update(task, completed=self.update * per_update, rate=f"{rate:,.0f}",
                                ret=f"{last.get('episodic_return', float('nan')):.3f}",
                                cov=f"{100 * last['coverage']:.1f}%" if "coverage" in last else "-")
                if self.out_dir is not None and self.update % self.tcfg.checkpoint_every == 0:
                    self.save_checkpoint()
                    self.start_segment()  # where a resumed run restarts its environments
        policy = self.policy()
        if self.out_dir is not None:
            if self.update % self.tcfg.checkpoint_every:
                self.save_checkpoint()
            policy.save(self.out_dir / "policy.pt")
        if self.writer is not None:
            self.writer.close()
        return policy

    def log(self, episodes: dict[str, float], losses: dict[str, float], rate: float) -> None:
        row = {"global_step": self.global_step, "update": self.update,
               "wall_s": round(self.wall_time, 3), "steps_per_s": round(rate, 1),
               **{k: episodes.get(k, float("nan")) for k in ("episodic_return", "episodic_length")},
               "coverage": episodes.get("coverage", float("nan"))}
        self.history.append(row)
        if self.writer is not None:
            for k, v in episodes.items():
                self.writer.add_scalar(f"charts/{k}", v, self.global_step)
            for k, v in losses.items():
                self.writer.add_scalar(k, v, self.global_step)
            self.writer.add_scalar("charts/steps_per_second", rate, self.global_step)
            self.writer.add_scalar("charts/learning_rate",
                                   self.algo.actor_optimizers[0].param_groups[0]["lr"],
                                   self.global_step)
        if self.out_dir is not None:
            path = self.out_dir / "progress.csv"
            new = not path.exists()
            with path.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)

    # -- results and checkpoints ---------------------------------------------------------------
    def policy(self) -> TrainedPolicy:
        spec, acfg = self.env.spec, self.algo.cfg
        network = {k: getattr(acfg, k) for k in ("hidden_sizes", "activation", "recurrent",
                                                 "gru_size", "init_log_std")}
        metadata = {"algorithm": self.config["algorithm"], "seed": self.seed,
                    "global_step": self.global_step, "scenario": self.config.get("scenario")}
        if isinstance(self.env, SimVecEnv):
            metadata["env_config"] = self.env.cfg.to_dict()
        return TrainedPolicy(spec.agents, spec.observation_spaces, spec.action_spaces,
                             self.algo.actors, self.obs_norm, acfg.share_params,
                             self.algo.id_size, network, metadata)

    def save_checkpoint(self) -> Path:
        assert self.out_dir is not None
        path = self.out_dir / "checkpoint.pt"
        atomic_torch_save({
            "version": CHECKPOINT_VERSION, "config": self.config, "global_step": self.global_step,
            "update": self.update, "wall_time": self.wall_time, "algo": self.algo.state_dict(),
            "obs_norm": self.obs_norm.state_dict(), "state_norm": self.state_norm.state_dict(),
            "rng_numpy": self.rng.bit_generator.state, "rng_torch": torch.get_rng_state(),
        }, path)
        return path

    def load_checkpoint(self) -> None:
        if self.out_dir is None or not (self.out_dir / "checkpoint.pt").exists():
            raise FileNotFoundError(f"no checkpoint.pt in {self.out_dir}; resume needs the folder of "
                                    "a run that saved at least one checkpoint.")
        data = torch.load(self.out_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
        if data.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {data.get('version')!r} is not "
                             f"{CHECKPOINT_VERSION}; it was written by another release.")
        self.global_step, self.update = data["global_step"], data["update"]
        self.wall_time = data["wall_time"]
        self.algo.load_state_dict(data["algo"])
        self.obs_norm.load_state_dict(data["obs_norm"])
        self.state_norm.load_state_dict(data["state_norm"])
        self.rng.bit_generator.state = data["rng_numpy"]
        torch.set_rng_state(data["rng_torch"])
        self._truncate_progress_csv()

    def _truncate_progress_csv(self) -> None:
        """Drop rows logged after the checkpoint (the killed run's lost updates)."""
        path = self.out_dir / "progress.csv" if self.out_dir else None
        if path is None or not path.exists():
            return
        with path.open() as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if int(r["global_step"]) <= self.global_step]
        if rows:
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(keep)
