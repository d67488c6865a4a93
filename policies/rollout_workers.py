"""Ray rollout workers: a run's environments stepped by K Ray actors with the current actors;
the learner (on its device) stays in the trainer's process.

`trainer.workers=K` splits the `trainer.num_envs` environments into K contiguous shares
(sizes differ by at most one). Each worker is a Ray actor holding a CPU copy of the family's
trainer over its share, built from the run's config (same algorithm and networks,
`trainer.device=cpu`). Each iteration the learner puts its acting state in the object store
once (actor weights and observation statistics; the on-policy family adds the critic and
the value statistics its GAE needs), every worker runs its family's `rollout` (the code the
in-process path runs) and returns its arrays, and the learner joins them env-wise in worker
order and absorbs them as if it had stepped every environment itself. Learning (buffer,
replay, normaliser updates, gradient steps, checkpoints) is unchanged.

Random streams. Worker 0 steps its share with the run's seed and continues the learner's
numpy and torch streams (their states go with each request and come back), so one worker
holding every environment reproduces the in-process run exactly. Worker k > 0 seeds its
environments from `worker_seed(seed, k)` and, at every environment restart, reseeds its
streams from that seed and the update count, so a resumed run with the same K continues
exactly too. K > 1 workers give data of the same distribution as one process, not the
same numbers.

Ray: a Ray already initialised in this process is used as it is; otherwise the trainer
starts `ray.init(address=trainer.ray_address or None)` (a local instance with at least K
CPUs, or the cluster at that address, whose nodes need this package installed) and shuts
down what it started when the run ends. Each worker reserves one CPU.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from policies.config import trainer_config


def worker_seed(seed: int, index: int) -> int:
    """Worker `index`'s seed: the run's own for worker 0, a derived one for the others."""
    if index == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(index), 0x5EED]).generate_state(1)[0])


def worker_config(resolved: dict[str, Any], index: int, share: int) -> dict[str, Any]:
    """The run's config for worker `index`: its share of the envs, on the CPU, silent."""
    trainer = {**resolved["trainer"], "num_envs": share, "workers": 0, "device": "cpu",
               "progress": False, "tensorboard": False, "max_minutes": 0.0}
    return {**resolved, "seed": worker_seed(resolved["seed"], index), "trainer": trainer}


def join_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What every family absorbs from its workers' rollouts, joined env-wise in worker order:
    raw observations and states (T, E, ...), finished episodes, env steps."""
    return {"raw_obs": np.concatenate([r["raw_obs"] for r in records], 1),
            "raw_states": np.concatenate([r["raw_states"] for r in records], 1),
            "finished": [ep for r in records for ep in r["finished"]],
            "steps": sum(r["steps"] for r in records)}


class RolloutWorker:
    """One Ray actor: a CPU copy of the family's trainer over its share of the environments."""

    def __init__(self, trainer_cls: type, resolved: dict[str, Any],
                 env_fn: str | Callable[[], Any], index: int, total_envs: int):
        self.index = index
        self.trainer = trainer_cls(resolved, env_fn)
        self.trainer.total_envs = total_envs  # schedules count every worker's env steps

    def describe(self) -> tuple[Any, Any]:
        """The env spec of this share and the sim scenario's config (None for a user env)."""
        from policies.envs import SimVecEnv

        env = self.trainer.env
        return env.spec, env.cfg if isinstance(env, SimVecEnv) else None

    def rollout(self, state: dict[str, Any], global_step: int, update: int, restart: bool,
                rng_states: tuple[Any, torch.Tensor] | None) -> dict[str, Any]:
        t = self.trainer
        t.load_acting_state(state)
        t.global_step, t.update = global_step, update
        if rng_states is not None:  # worker 0: the learner's streams
            t.rng.bit_generator.state = rng_states[0]
            torch.set_rng_state(rng_states[1])
        elif restart:  # its own streams, restarted with the environments (exact resume)
            seed = int(np.random.SeedSequence([t.seed, update]).generate_state(1)[0])
            t.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
            torch.manual_seed(seed)
        if restart:
            t.start_segment()
        start = time.perf_counter()
        record = t.worker_rollout()
        record["rollout_s"] = time.perf_counter() - start
        if rng_states is not None:
            record["rng_states"] = (t.rng.bit_generator.state, torch.get_rng_state())
        return record

    def close(self) -> None:
        self.trainer.env.close()


class RolloutWorkers:
    """The trainer's environments as K Ray rollout workers (`trainer.env` when workers > 0):
    `spec`, `num_envs`, `cfg` like a local batch, plus `rollout(trainer)` and `restart()`."""

    def __init__(self, trainer_cls: type, resolved: dict[str, Any],
                 env_fn: str | Callable[[], Any]):
        tcfg = trainer_config(resolved["trainer"])
        count, total = tcfg.workers, tcfg.num_envs
        try:
            import ray
        except ImportError:
            raise ImportError(f"trainer.workers={count} needs Ray: pip install -e '.[scale]' (or "
                              "pip install ray), or set trainer.workers=0.") from None
        self.ray = ray
        self.workers: list[Any] = []
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            address = tcfg.ray_address or None
            options: dict[str, Any] = {"include_dashboard": False}
            if address is None:  # a local instance: room for every worker, whatever the cores
                options["num_cpus"] = max(os.cpu_count() or 1, count)
            ray.init(address=address, **options)
        try:
            cpus = ray.cluster_resources().get("CPU", 0.0)
            if cpus < count:
                raise ValueError(f"trainer.workers={count} needs {count} CPUs on the Ray cluster, "
                                 f"which has {cpus:g}; lower trainer.workers or add nodes.")
            shares = [len(rows) for rows in np.array_split(np.arange(total), count)]
            actor = ray.remote(num_cpus=1)(RolloutWorker)
            self.workers = [actor.remote(trainer_cls, worker_config(resolved, i, share), env_fn, i,
                                         total) for i, share in enumerate(shares)]
            spec, self.cfg = self.get([w.describe.remote() for w in self.workers])[0]
        except BaseException:
            self.close()
            raise
        self.spec = dataclasses.replace(spec, num_envs=total)
        self.num_envs = total
        self.restart_due = True
        self.last_rollout_s = 0.0

    def get(self, futures: list[Any]) -> list[Any]:
        """The workers' results; a worker's exception is raised here with its traceback."""
        ray = self.ray
        try:
            return ray.get(futures)
        except ray.exceptions.RayTaskError as err:
            raise err.as_instanceof_cause() from None
        except ray.exceptions.RayActorError as err:
            cause = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise RuntimeError(f"a rollout worker died ({cause}); if it could not be built, the "
                               "env_fn and the modules it uses must be importable on every Ray "
                               "node; a run that saved a checkpoint goes on with --resume.") from None

    def restart(self) -> None:
        """Every worker restarts its environments at its next rollout."""
        self.restart_due = True

    def rollout(self, trainer: Any) -> dict[str, Any]:
        """One iteration of every worker with the trainer's current acting state, joined by
        the trainer's `merge_rollouts`."""
        state = self.ray.put(trainer.acting_state())
        streams = (trainer.rng.bit_generator.state, torch.get_rng_state())
        records = self.get([w.rollout.remote(state, trainer.global_step, trainer.update,
                                             self.restart_due, streams if i == 0 else None)
                            for i, w in enumerate(self.workers)])
        self.restart_due = False
        trainer.rng.bit_generator.state, torch_state = records[0].pop("rng_states")
        torch.set_rng_state(torch_state)
        # the slowest worker's own stepping time; the rest of a collection is the transfer
        # of weights and arrays, the join and the learner's absorb (see `marl-ros bench workers`)
        self.last_rollout_s = max(r.pop("rollout_s") for r in records)
        return trainer.merge_rollouts(records)

    def close(self) -> None:
        """End the workers (their environments first) and the Ray instance this run started."""
        ray = self.ray
        if self.workers:
            try:
                ray.get([w.close.remote() for w in self.workers], timeout=30)
            except Exception:  # a dead or hung worker: killed below all the same
                pass
            for w in self.workers:
                ray.kill(w)
            self.workers = []
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()
