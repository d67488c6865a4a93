"""The one training loop every family runs: collect -> update -> log -> checkpoint.

A family (`policies/<family>/trainer.py`) subclasses `Trainer` and supplies its hooks:
  algorithms               its registry: algorithm name -> class
  make_env(env_fn, cfg)    the batched environments (default: `make_batched_env`)
  make_algorithm(cls, cfg) the algorithm (default: its config and the env's `EnvSpec`)
  make_storage()           its observation normaliser and its buffer (rollout, episodes)
  plan(total_steps)        the env-step count a run of `total_steps` trains to (default:
                           exactly that; the on-policy family rounds up to whole rollouts)
  start_segment()          restart the environments (at the start, after each checkpoint)
  collect()                fill the buffer (a rollout, whole episodes), advance `global_step`
                           by the env steps taken; returns finished-episode means
  update_step()            the gradient step(s) of one iteration; returns losses to log
  progress_fields()        the finished-episode figures progress.csv records (default: return,
                           length, coverage; teams add capture and each team's return)
  checkpoint_fields()      what the checkpoint holds beyond the shared fields (the replay
  load_checkpoint_fields() buffer), and restoring it
  policy()                 the exported decentralised policy
Everything else lives here once: setup (config, seeding, environments, normalisers,
logging), the iteration loop, the progress bar, TensorBoard and progress.csv, the atomic
checkpoint, resume, and the final policy save.

Files a run writes under `out_dir`:
  config.yaml      the resolved config (what `resume` reads back)
  checkpoint.pt    algorithm + optimiser state, normalisers, RNG states, step counts and
                   the family's fields (atomic: written to a temporary file, then renamed)
  policy.pt        the trained decentralised policy (`policies.load`)
  progress.csv     env step, wall clock, episodic return, coverage, steps/s per iteration
  tb/              TensorBoard scalars against env steps

Resume, precisely. A checkpoint holds the parameters, optimiser moments, normaliser
statistics, RNG streams, counters and the family's storage that outlives an iteration
(the episodic replay buffer); it does not hold the environments (a PyBullet world or a
user's env cannot be saved in general). So with a run folder the trainer saves every
`checkpoint_every` iterations and then restarts all environments from a seed derived
from (seed, update) (`segment_seed`); a resumed run loads the checkpoint and restarts
the environments from that same seed. Resuming from such a checkpoint continues exactly
like the uninterrupted run (bit for bit on CPU with one thread): a run killed or stopped
between checkpoints loses at most `checkpoint_every` iterations of compute, not exactness.
The one checkpoint off that grid is the last one of a run whose step budget ends between
two: resuming from it (to train further) restarts the environments there, so the
continuation sees fresh episodes where an uninterrupted longer run would have continued
the current ones; everything else is restored. Without a run folder nothing is saved and
the environments are never restarted (episodes simply run on, auto-reset). A family
whose every iteration starts fresh episodes (the episodic one) restarts nothing here.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.config import save_config, trainer_config
from policies.envs import ParallelEnvBatch, SimVecEnv, SubprocessEnvBatch
from policies.networks import place, resolve_device
from policies.normalization import ObservationNormalizer
from policies.policy import atomic_torch_save
from policies.rollout_workers import RolloutWorkers

CHECKPOINT_VERSION = 1


def segment_seed(seed: int, update: int) -> int:
    """Seed for the environment restart at `update` (the same in a run and its resume)."""
    return int(np.random.SeedSequence([seed, update]).generate_state(1)[0])


def make_batched_env(env_fn: str | Callable[[], Any], resolved: dict[str, Any],
                     wrap: Callable[[Any], Any] | None = None):
    """The trainer's batch of a sim scenario or of a user's ParallelEnv (each copy passed
    through `wrap`, e.g. the game family's one-hot encoding of Discrete observations)."""
    tcfg = trainer_config(resolved["trainer"])
    if isinstance(env_fn, str):
        import sim

        if tcfg.env_workers:
            raise ValueError(f"trainer.env_workers={tcfg.env_workers} is for a user's ParallelEnv; "
                             f"the {env_fn!r} scenario steps every env in one numpy call (set "
                             "trainer.env_workers=0).")
        venv = sim.make_vec_env(env_fn, tcfg.num_envs, backend=tcfg.backend, seed=resolved["seed"],
                                **resolved["env"])
        return SimVecEnv(venv)
    if not callable(env_fn):
        raise TypeError("env_fn must be a scenario name (e.g. 'coverage') or a function returning "
                        "a PettingZoo ParallelEnv.")
    if resolved["env"]:
        raise ValueError("config section 'env' only applies to sim scenarios; pass the parameters "
                         "to your env_fn instead.")
    make = env_fn if wrap is None else lambda: wrap(env_fn())
    if tcfg.env_workers:
        return SubprocessEnvBatch(make, tcfg.num_envs, tcfg.env_workers)
    return ParallelEnvBatch(make, tcfg.num_envs)


class Trainer:
    """The shared loop; a family's subclass supplies the hooks listed in the module docstring."""

    algorithms: dict[str, Any] = {}
    supports_workers = False  # collection is `rollout` + `absorb`: Ray rollout workers can do it

    def __init__(self, resolved: dict[str, Any], env_fn: str | Callable[[], Any],
                 out_dir: str | Path | None = None, resume: bool = False):
        self.config = resolved
        self.tcfg = trainer_config(resolved["trainer"])
        self.device = self.resolve_device()  # before any environment is built
        torch.set_num_threads(self.tcfg.torch_threads)
        self.seed = int(resolved["seed"])
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if resolved["algorithm"] not in self.algorithms:
            raise ValueError(f"{type(self).__name__} does not train {resolved['algorithm']!r}; "
                             "policies.train picks the trainer of its family "
                             "(policies.family_trainer).")
        if self.tcfg.workers and not self.supports_workers:
            raise ValueError(f"trainer.workers={self.tcfg.workers}: Ray rollout workers serve the "
                             "on-policy, off-policy and mean-field families, not "
                             f"{resolved['algorithm']}; set trainer.workers=0.")
        self.env = self.make_env(env_fn, resolved)
        torch.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.algo = self.make_algorithm(self.algorithms[resolved["algorithm"]], resolved)
        place(self.algo, self.device)  # built on the CPU (the same weights), learns on the device
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

    # -- family hooks ----------------------------------------------------------------------------
    def resolve_device(self) -> torch.device:
        """Where the networks learn: `trainer.device` (auto = CUDA when torch sees one)."""
        return resolve_device(self.tcfg.device)

    def make_env(self, env_fn: str | Callable[[], Any], resolved: dict[str, Any]) -> Any:
        """The batched environments: in this process, or spread over Ray rollout workers
        (`trainer.workers`) for the families whose collection is `rollout` + `absorb`."""
        if self.tcfg.workers:
            return RolloutWorkers(type(self), resolved, env_fn)
        return make_batched_env(env_fn, resolved)

    def make_algorithm(self, algo_cls: Any, resolved: dict[str, Any]) -> Any:
        """The algorithm, from its validated config and what it knows of the environment."""
        return algo_cls(algo_cls.config_class.from_dict(resolved["algo"]), self.env.spec, self.rng)

    def learning_rate(self) -> float:
        """The step size logged as charts/learning_rate (the first actor optimiser's)."""
        return self.algo.actor_optimizers[0].param_groups[0]["lr"]

    def per_agent_obs_normalizer(self) -> ObservationNormalizer:
        """Running observation statistics: one set for a shared network, else one per agent."""
        n, d = self.env.spec.num_agents, self.env.spec.obs_size
        return ObservationNormalizer((d,) if self.algo.cfg.share_params else (n, d),
                                     enabled=self.tcfg.normalize_obs)

    def make_storage(self) -> None:
        """Set `self.obs_norm` and `self.buffer`."""
        raise NotImplementedError

    def plan(self, total_steps: int) -> int:
        """The env-step count a run asked for `total_steps` trains to."""
        return total_steps

    def start_segment(self) -> None:
        """Restart the environments (the start of a run or resume, after every checkpoint)."""
        raise NotImplementedError

    def collect(self) -> dict[str, float]:
        """Fill the buffer and advance `global_step`; returns finished-episode means. A family
        with `rollout` and `absorb` collects here or on its Ray rollout workers."""
        record = self.env.rollout(self) if self.tcfg.workers else self.rollout()
        return self.absorb(record)

    def rollout(self) -> dict[str, Any]:
        """Step this process's environments for one iteration into the storage; returns what
        `absorb` needs (raw inputs for the normalisers, finished episodes, env steps)."""
        raise NotImplementedError

    def absorb(self, record: dict[str, Any]) -> dict[str, float]:
        """The learner's side of an iteration's data; returns finished-episode means."""
        raise NotImplementedError

    def restart_envs(self) -> None:
        """Restart the environments: here, or on the rollout workers at their next rollout."""
        if self.tcfg.workers:
            self.segment_ended()
            self.env.restart()
        else:
            self.start_segment()

    def segment_ended(self) -> None:
        """The learner's part of an environment restart (the off-policy n-step window)."""

    def update_step(self) -> dict[str, float]:
        """The iteration's learning from the buffer; returns the figures to log."""
        raise NotImplementedError

    def progress_fields(self) -> tuple[str, ...]:
        """The finished-episode figures progress.csv records (after step, update, time, rate)."""
        return ("episodic_return", "episodic_length", "coverage")

    def checkpoint_fields(self) -> dict[str, Any]:
        """The family's checkpoint entries beyond the shared ones."""
        return {}

    def load_checkpoint_fields(self, data: dict[str, Any]) -> None:
        """Restore what `checkpoint_fields` saved."""

    def policy(self) -> Any:
        """The trained decentralised policy (`save`, `act`, `policies.load`)."""
        raise NotImplementedError

    # -- the loop ----------------------------------------------------------------------------
    def train(self, total_steps: int) -> Any:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        planned = self.plan(total_steps)
        self.restart_envs()
        progress = Progress(TextColumn(f"[bold]{self.config['algorithm']}"), BarColumn(),
                            TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                            TextColumn("{task.fields[rate]:>8} steps/s"),
                            TextColumn("return {task.fields[ret]}"),
                            TextColumn("coverage {task.fields[cov]}"), TimeElapsedColumn(),
                            disable=not self.tcfg.progress)
        last: dict[str, float] = {}
        with progress:
            task = progress.add_task("train", total=planned, completed=self.global_step,
                                     rate="-", ret="-", cov="-")
            while self.global_step < planned and not self.out_of_time():
                start = time.perf_counter()
                before = self.global_step
                episodes = self.collect()
                losses = self.update_step()
                self.update += 1
                elapsed = time.perf_counter() - start
                self.wall_time += elapsed
                last.update(episodes)
                rate = (self.global_step - before) / elapsed
                self.log(episodes, losses, rate)
                progress.update(task, completed=self.global_step, rate=f"{rate:,.0f}",
                                ret=f"{last.get('episodic_return', float('nan')):.3f}",
                                cov=f"{100 * last['coverage']:.1f}%" if "coverage" in last else "-")
                if self.out_dir is not None and self.update % self.tcfg.checkpoint_every == 0:
                    self.save_checkpoint()
                    self.restart_envs()  # where a resumed run restarts its environments
        policy = self.policy()
        if self.out_dir is not None:
            if self.update % self.tcfg.checkpoint_every:
                self.save_checkpoint()
            policy.save(self.out_dir / "policy.pt")
        if self.writer is not None:
            self.writer.close()
        return policy

    def out_of_time(self) -> bool:
        """True once the training loop has used `trainer.max_minutes` (when set)."""
        budget = self.tcfg.max_minutes
        return budget > 0 and self.wall_time >= 60.0 * budget

    def log(self, episodes: dict[str, float], losses: dict[str, float], rate: float) -> None:
        row = {"global_step": self.global_step, "update": self.update,
               "wall_s": round(self.wall_time, 3), "steps_per_s": round(rate, 1),
               **{k: episodes.get(k, float("nan")) for k in self.progress_fields()}}
        self.history.append(row)
        if self.writer is not None:
            for k, v in episodes.items():
                self.writer.add_scalar(f"charts/{k}", v, self.global_step)
            for k, v in losses.items():
                self.writer.add_scalar(k, v, self.global_step)
            self.writer.add_scalar("charts/steps_per_second", rate, self.global_step)
            self.writer.add_scalar("charts/learning_rate", self.learning_rate(), self.global_step)
        if self.out_dir is not None:
            path = self.out_dir / "progress.csv"
            new = not path.exists()
            with path.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)

    # -- results and checkpoints ---------------------------------------------------------------
    def policy_metadata(self) -> dict[str, Any]:
        """Provenance every exported policy carries."""
        metadata = {"algorithm": self.config["algorithm"], "seed": self.seed,
                    "global_step": self.global_step, "scenario": self.config.get("scenario")}
        sim_cfg = self.env.cfg if isinstance(self.env, SimVecEnv | RolloutWorkers) else None
        if sim_cfg is not None:
            metadata["env_config"] = sim_cfg.to_dict()
        return metadata

    def save_checkpoint(self) -> Path:
        assert self.out_dir is not None
        path = self.out_dir / "checkpoint.pt"
        atomic_torch_save({
            "version": CHECKPOINT_VERSION, "config": self.config, "global_step": self.global_step,
            "update": self.update, "wall_time": self.wall_time, "algo": self.algo.state_dict(),
            "obs_norm": self.obs_norm.state_dict(), "state_norm": self.state_norm.state_dict(),
            **self.checkpoint_fields(),
            "rng_numpy": self.rng.bit_generator.state, "rng_torch": torch.get_rng_state(),
        }, path)
        return path

    def load_checkpoint(self) -> None:
        if self.out_dir is None or not (self.out_dir / "checkpoint.pt").exists():
            raise FileNotFoundError(f"no checkpoint.pt in {self.out_dir}; resume needs the folder of "
                                    "a run that saved at least one checkpoint.")
        # On the CPU whatever device wrote it (the torch RNG state must be a CPU tensor); the
        # modules' and optimisers' load_state_dict copy the weights and moments onto the device.
        data = torch.load(self.out_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
        if data.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {data.get('version')!r} is not "
                             f"{CHECKPOINT_VERSION}; it was written by another release.")
        self.global_step, self.update = data["global_step"], data["update"]
        self.wall_time = data["wall_time"]
        self.algo.load_state_dict(data["algo"])
        self.obs_norm.load_state_dict(data["obs_norm"])
        self.state_norm.load_state_dict(data["state_norm"])
        self.load_checkpoint_fields(data)
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
