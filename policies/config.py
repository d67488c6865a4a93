"""The one config loader: YAML defaults per algorithm and scenario, merged with overrides.

Resolution order (later wins):
  1. the dataclass defaults (`TrainerConfig`, the algorithm's config class);
  2. `policies/configs/<algo>.yaml`;
  3. when training on a sim scenario (a drone swarm): `policies/configs/swarm.yaml` (the
     section named after the algorithm: shared actors without agent ids, so bundles fly any
     drone count), then `policies/configs/<scenario>.yaml` (its `env`, `trainer`, `algo`
     sections, then the section named after the algorithm, e.g. `mappo: {algo: {...}}`);
  4. the user's config (a dict or a YAML path) given to `policies.train`;
  5. `key=value` overrides (CLI). A key is `section.name` (`algo.lr_actor=3e-4`,
     `trainer.num_envs=64`, `env.num_drones=2`) or a bare name that belongs to exactly
     one section. Values are parsed as YAML (`true`, `1e-3`, `[64, 64]`).

The resolved dict has `algorithm`, `scenario`, `seed`, and the sections `env`
(scenario parameters), `trainer` and `algo`; it is saved as `<run>/config.yaml`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"
SECTIONS = ("env", "trainer", "algo")


@dataclass
class TrainerConfig:
    """How training runs (not what is learned)."""

    num_envs: int = 16
    rollout_steps: int = 64  # policy steps per env between updates
    backend: str = "fast"  # sim scenarios only: dynamics backend for training
    checkpoint_every: int = 20  # updates; also where envs restart (exact resume)
    normalize_obs: bool = True
    normalize_state: bool = True
    progress: bool = True  # rich progress bar
    tensorboard: bool = True
    torch_threads: int = 1
    # A user's ParallelEnv: worker processes stepping the num_envs copies (0 = in this
    # process, one after the other). Sim scenarios step every env in one numpy call.
    env_workers: int = 0
    # A wall-clock budget: stop after the iteration that brings the training loop's time (the
    # wall_s of progress.csv: collection and updates, not checkpoint writes; a resumed run
    # counts on from its checkpoint) to this many minutes. 0 = no limit, train --steps.
    max_minutes: float = 0.0
    # Where the networks learn: auto = CUDA when torch sees a GPU, else cpu; or cpu, cuda,
    # cuda:N. Acting in the environments' loop runs where the networks are.
    device: str = "auto"
    # Ray rollout workers (on-policy and off-policy families): K actors on a Ray cluster each
    # step num_envs / K of the environments with the current actor weights, the learner stays
    # in this process. 0 = today's in-process collection. ray_address: "" starts a local Ray
    # instance; an address (e.g. ray://head:10001 or auto) joins a running cluster.
    workers: int = 0
    ray_address: str = ""
    # Teams (a game between sides, e.g. pursuit's pursuers and evaders; `policies.teams`):
    # team name -> {algo: <on-policy algorithm>, agents: [...] (optional), <algo key>: value}.
    # Empty: one policy for every agent. opponents: "current" (every team learns against the
    # others' current policies) or "past" (each team learns on its share of the envs against
    # snapshots of the others, saved every snapshot_every iterations, pool_size per team).
    teams: dict = field(default_factory=dict)
    opponents: str = "current"
    snapshot_every: int = 10
    pool_size: int = 5

    def validate(self) -> None:
        minutes = self.max_minutes
        if (isinstance(minutes, bool) or not isinstance(minutes, int | float)
                or not math.isfinite(minutes) or minutes < 0):
            raise ValueError(f"trainer.max_minutes must be a number of minutes >= 0 (0 = no "
                             f"limit; got {minutes!r}).")
        for name in ("num_envs", "rollout_steps", "checkpoint_every", "torch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name} must be >= 1 (got {getattr(self, name)}).")
        if not 0 <= self.env_workers <= self.num_envs:
            raise ValueError(f"trainer.env_workers must be between 0 and trainer.num_envs="
                             f"{self.num_envs} (got {self.env_workers}).")
        device = self.device
        if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or (
                device.startswith("cuda:") and device[5:].isdigit())):
            raise ValueError(f"trainer.device must be auto, cpu, cuda or cuda:N (got {device!r}).")
        if not 0 <= self.workers <= self.num_envs:
            raise ValueError(f"trainer.workers must be between 0 and trainer.num_envs="
                             f"{self.num_envs} (got {self.workers}): each worker steps at least "
                             "one environment.")
        if self.workers and self.env_workers:
            raise ValueError("trainer.workers (Ray rollout workers) and trainer.env_workers (local "
                             "env processes) do not combine; set one of them to 0.")
        if self.opponents not in ("current", "past"):
            raise ValueError(f"trainer.opponents must be current or past (got {self.opponents!r}).")
        if self.snapshot_every < 1 or self.pool_size < 1:
            raise ValueError(f"trainer.snapshot_every and trainer.pool_size must be >= 1 (got "
                             f"{self.snapshot_every}, {self.pool_size}).")
        if not isinstance(self.teams, dict):
            raise ValueError(f"trainer.teams must map team names to their settings, e.g. "
                             f"{{pursuers: {{algo: mappo}}, evaders: {{algo: happo}}}} (got "
                             f"{self.teams!r}).")
        if self.backend not in ("fast", "pybullet"):
            raise ValueError(f"trainer.backend must be fast or pybullet (got {self.backend!r}).")


class AlgorithmConfig:
    """Base of every algorithm's hyperparameter dataclass: validated construction from a dict."""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        """Validated construction: unknown keys and wrong types are one clear sentence."""
        data = dict(data or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key {unknown[0]!r}; valid keys: "
                             f"{', '.join(sorted(fields))}.")
        defaults = cls()
        for name, value in data.items():
            expected = type(getattr(defaults, name))
            if expected is float and isinstance(value, int | str) and not isinstance(value, bool):
                try:  # YAML reads 1e-3 as a string; 3 as an int
                    data[name] = float(value)
                except ValueError:
                    raise ValueError(f"{cls.__name__}.{name} must be a number (got {value!r}).") from None
            elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ValueError(f"{cls.__name__}.{name} must be a {expected.__name__} "
                                 f"(got {value!r}).")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Cross-field checks (one clear sentence each); the subclass adds its own."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def trainer_config(data: dict[str, Any]) -> TrainerConfig:
    valid = {f.name for f in dataclasses.fields(TrainerConfig)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ValueError(f"unknown trainer key {unknown[0]!r}; valid keys: {', '.join(sorted(valid))}.")
    cfg = TrainerConfig(**data)
    cfg.validate()
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist; check the path.")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of sections (env, trainer, algo).")
    return data


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `extra` wins, nested dicts merge key by key."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: list[str], known: dict[str, set[str]]) -> dict[str, Any]:
    """`["algo.lr_actor=3e-4", "num_envs=64"]` -> nested dict; `known` maps section -> keys."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value; write e.g. algo.lr_actor=3e-4.")
        key, text = item.split("=", 1)
        value = yaml.safe_load(text)
        if "." in key:
            section, name = key.split(".", 1)
            if section not in SECTIONS:
                raise ValueError(f"override {item!r}: section must be one of {', '.join(SECTIONS)}.")
        elif key == "seed":
            out["seed"] = value
            continue
        else:
            owners = [s for s in SECTIONS if key in known.get(s, set())]
            if len(owners) != 1:
                where = "no section" if not owners else f"sections {', '.join(owners)}"
                raise ValueError(f"override {item!r}: {key!r} belongs to {where}; write it as "
                                 "section.key (env., trainer. or algo.).")
            section, name = owners[0], key
        out.setdefault(section, {})[name] = value
    return out


def resolve_config(algorithm: str, scenario: str | None, config: dict[str, Any] | str | Path | None,
                   overrides: list[str] | None = None, seed: int = 0,
                   check_teams: bool = True) -> dict[str, Any]:
    """The complete config for a run (see the module docstring for the order). check_teams:
    refuse one policy for every agent of a world with teams (`policies.teams` resolves a
    team's defaults with False)."""
    from policies.games import GAME_ALGORITHMS
    from policies.meanfield import MEANFIELD_ALGORITHMS
    from policies.offpolicy import OFFPOLICY_ALGORITHMS
    from policies.onpolicy import ALGORITHMS
    from policies.value import VALUE_ALGORITHMS

    families = {**ALGORITHMS, **VALUE_ALGORITHMS, **OFFPOLICY_ALGORITHMS, **MEANFIELD_ALGORITHMS}
    if algorithm not in families and algorithm not in GAME_ALGORITHMS:
        names = [*families, *GAME_ALGORITHMS]
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of: {', '.join(names)}.")
    algo_cls = (families.get(algorithm) or GAME_ALGORITHMS[algorithm]).config_class
    resolved: dict[str, Any] = {"algorithm": algorithm, "scenario": scenario, "seed": seed,
                                "env": {}, "trainer": dataclasses.asdict(TrainerConfig()),
                                "algo": algo_cls().to_dict()}
    if algorithm in GAME_ALGORITHMS:  # the family's trainer defaults (online, one env)
        games = read_yaml(CONFIG_DIR / "games.yaml")
        resolved = merge(resolved, {k: v for k, v in games.items() if k in SECTIONS})
        resolved = merge(resolved, games.get(algorithm, {}) or {})
    algo_file = CONFIG_DIR / f"{algorithm}.yaml"
    if algo_file.exists():
        resolved = merge(resolved, {k: v for k, v in read_yaml(algo_file).items() if k in SECTIONS})
    from sim import SCENARIOS
    from sim.config import SwarmConfig

    if scenario in SCENARIOS:
        resolved = merge(resolved, read_yaml(CONFIG_DIR / "swarm.yaml").get(algorithm, {}) or {})
    if scenario is not None and (CONFIG_DIR / f"{scenario}.yaml").exists():
        data = read_yaml(CONFIG_DIR / f"{scenario}.yaml")
        resolved = merge(resolved, {k: v for k, v in data.items() if k in SECTIONS})
        resolved = merge(resolved, data.get(algorithm, {}) or {})
    if isinstance(config, str | Path):
        config = read_yaml(config)
    if config:
        unknown = sorted(set(config) - set(SECTIONS) - {"seed", "algorithm", "scenario"})
        if unknown:
            raise ValueError(f"unknown config section {unknown[0]!r}; use env, trainer, algo.")
        resolved = merge(resolved, {k: v for k, v in config.items()
                                    if k not in ("algorithm", "scenario")})
    if overrides:
        known = {"trainer": set(resolved["trainer"]), "algo": set(resolved["algo"])}
        if scenario in SCENARIOS:
            known["env"] = {f.name for f in dataclasses.fields(SCENARIOS[scenario])}
        resolved = merge(resolved, parse_overrides(overrides, known))
    # Validate now, so a typo fails before any environment is built; store typed values.
    resolved["trainer"] = dataclasses.asdict(trainer_config(resolved["trainer"]))
    resolved["algo"] = algo_cls.from_dict(resolved["algo"]).to_dict()
    if resolved["trainer"]["teams"]:
        from policies.teams import resolve_teams

        resolved["trainer"]["teams"] = resolve_teams(resolved)
    elif (check_teams and scenario in SCENARIOS and algorithm not in GAME_ALGORITHMS
          and SCENARIOS[scenario].teams is not SwarmConfig.teams):  # a world that may have teams
        from sim.config import make_config

        teams = list(make_config(scenario, **resolved["env"]).teams)
        if teams:  # the mean of opposite rewards teaches every drone one side's goal
            raise ValueError(f"{scenario} is a game between the teams {' and '.join(teams)}, whose "
                             f"rewards are opposite, so one {algorithm} policy for every drone "
                             "would learn their mean; train one policy per team with "
                             f"trainer.teams='{{{teams[0]}: {{}}, {teams[1]}: {{}}}}' (see "
                             "policies.teams).")
    return resolved


def save_config(resolved: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(resolved, sort_keys=False))
    tmp.replace(path)
