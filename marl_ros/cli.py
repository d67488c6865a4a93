"""`marl-ros`: the command line. Each subcommand is a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    """A coverage episode in PyBullet flown by the scripted lawnmower baseline."""
    import numpy as np
    import yaml

    import sim
    from sim.render import save_coverage_png
    from sim.scripted import LawnmowerPilot

    params = {}
    for item in args.params:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"demo parameter {item!r} is not key=value; write e.g. "
                             "footprints=[1,1,5,5].")
        params[key] = yaml.safe_load(text)
    env = sim.make_env("coverage", backend="pybullet", seed=args.seed, num_drones=args.num_drones,
                       max_steps=args.steps, gui=args.gui, **params)
    obs, infos = env.reset(seed=args.seed)
    pilot = LawnmowerPilot(env.cfg, env.positions)
    start = time.perf_counter()
    steps, collisions, geofence = 0, 0, 0
    info = infos[env.possible_agents[0]]
    while env.agents:
        acts = pilot.actions(env.positions)
        _, _, _, _, infos = env.step({a: acts[i].astype(np.float32)
                                      for i, a in enumerate(env.possible_agents)})
        info = infos[env.possible_agents[0]]
        collisions += int(info["collisions"])
        geofence += int(info["geofence_violations"])
        steps += 1
    wall = time.perf_counter() - start
    out = Path(args.out)
    png = save_coverage_png(out / "coverage.png", env.cfg, env.covered_map,
                            env.trajectories,
                            f"lawnmower, {args.num_drones} drones: {100 * info['coverage']:.1f}% "
                            f"in {steps} steps")
    report = {"scenario": "coverage", "backend": "pybullet", "pilot": "lawnmower",
              "num_drones": args.num_drones, "steps": steps,
              "simulated_s": steps / env.cfg.policy_hz, "wall_s": round(wall, 2),
              "coverage": round(float(info["coverage"]), 4), "near_collisions": collisions,
              "geofence_violations": geofence, "png": str(png)}
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    env.close()
    print(f"coverage {100 * report['coverage']:.1f}% after {steps} steps "
          f"({report['simulated_s']:.1f} s simulated, {wall:.1f} s wall), "
          f"near-collisions {collisions}, geofence violations {geofence}")
    print(f"wrote {png} and {out / 'demo.json'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from marl_ros import bench

    if args.what == "sim":
        bench.bench_sim(seconds=args.seconds or 3.0)
    elif args.what == "train":
        bench.bench_train(tuple(args.algos or ("mappo", "happo")), threshold=args.threshold,
                          budget_minutes=args.minutes, segment_steps=args.segment_steps,
                          out_dir=args.out, throughput_seconds=args.throughput,
                          devices=tuple(args.device or ()))
    elif args.what == "infer":
        bench.bench_infer(repeats=args.repeats, bundle=args.bundle)
    elif args.what == "envs":
        bench.bench_envs(env=args.env, num_envs=args.num_envs,
                         workers=tuple(args.workers or (1, 2, 4)), seconds=args.seconds or 5.0)
    elif args.what == "workers":
        bench.bench_workers(tuple(args.algos or ("mappo", "hatd3")),
                            workers=tuple(args.workers or (0, 1, 2)), seconds=args.seconds or 20.0,
                            backend=args.backend)
    elif args.what == "ros":
        bench.bench_ros(seconds=args.seconds or 10.0, rate=args.rate, bundle=args.bundle,
                        drones=tuple(args.drones))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a trained run as a policy bundle (ONNX + policy.yaml) for the robots."""
    import torch

    import policies
    from marl_ros.runtime import OnnxPolicy
    from policies.export import export_bundle

    torch.set_num_threads(1)
    run = Path(args.run)
    source = run / "policy.pt" if run.is_dir() else run
    policy = policies.load(source)
    evaluation = None
    if run.is_dir():
        reports = sorted(run.glob("eval_*.json"), key=lambda p: p.name != "eval_pybullet.json")
        if reports:
            evaluation = json.loads(reports[0].read_text())
    config = None
    if run.is_dir() and (run / "config.yaml").is_file():
        import yaml

        config = yaml.safe_load((run / "config.yaml").read_text())
    command = args.command_line or " ".join(["marl-ros export", *sys.argv[2:]])
    from policies.teams import TeamPolicies

    if isinstance(policy, TeamPolicies):  # one bundle per team: OUT/<team>, or --team's at OUT
        names = [args.team] if args.team else list(policy.teams)
        if args.team and args.team not in policy.teams:
            raise ValueError(f"{run} has the teams {', '.join(policy.teams)}, not {args.team!r}; "
                             "pass one of those to --team.")
        for name in names:
            out = Path(args.out) if args.team else Path(args.out) / name
            export_bundle(policy.teams[name], out, evaluation=evaluation, config=config,
                          command=command)
            if args.with_torch:
                policy.teams[name].save(out / "policy.pt")
            loaded = OnnxPolicy.load(out)
            print(f"exported the {name} ({', '.join(loaded.agents)}) of {source} -> {out} "
                  f"({len(set(loaded.meta['models'].values()))} ONNX model(s))")
        return 0
    if args.team:
        raise ValueError(f"--team belongs to runs that trained teams (trainer.teams); {run} holds "
                         "one policy: drop --team.")
    out = export_bundle(policy, args.out, evaluation=evaluation, config=config, command=command)
    if args.with_torch:
        policy.save(out / "policy.pt")  # for benchmarks and fine-tuning; robots never load it
    loaded = OnnxPolicy.load(out)  # the bundle must pass the runtime's own checks
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"exported {source} -> {out} ({len(set(loaded.meta['models'].values()))} ONNX model(s), "
          f"{size / 1024:.0f} KiB, opset {loaded.meta['onnx']['opset']})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a CTDE algorithm on a sim scenario (a thin layer over policies.train)."""
    if args.steps < 1:
        raise ValueError(f"--steps must be a positive number of env steps (got {args.steps:,}).")
    if args.algo is None and not args.resume:
        raise ValueError("--algo is required to start a run (only --resume may leave it out, "
                         "continuing the run's own algorithm).")
    if args.out is None and args.algo is None:
        raise ValueError("--resume without --algo needs --out, the folder of the run to continue.")
    import torch

    import policies
    from policies.config import read_yaml

    out = Path(args.out or f"runs/{args.algo}_{args.scenario or 'coverage'}")
    overrides = list(args.overrides)
    if args.num_drones is not None:
        overrides.append(f"env.num_drones={args.num_drones}")
    if args.backend is not None:
        overrides.append(f"trainer.backend={args.backend}")
    algo, scenario = args.algo, args.scenario or "coverage"
    if args.resume:
        if overrides:
            raise ValueError("--resume continues with the run's saved config.yaml; drop the "
                             "overrides (only --steps may change).")
        if not (out / "checkpoint.pt").exists():
            raise FileNotFoundError(f"--resume: no checkpoint.pt in {out}; pass --out with the "
                                    "folder of the run to continue.")
        saved = read_yaml(out / "config.yaml")
        algo, scenario = saved["algorithm"], saved["scenario"]
        if scenario is None:
            raise ValueError(f"{out} holds a run on a user environment, which the CLI cannot "
                             "build; resume it from Python with policies.train(..., "
                             "resume=True) and the same env_fn.")
        if args.algo is not None and args.algo != algo:
            raise ValueError(f"{out} holds a {algo} run, so --resume cannot continue it as "
                             f"{args.algo}; drop --algo or pass --algo {algo}, or train "
                             f"{args.algo} in another --out folder.")
        if args.scenario is not None and args.scenario != scenario:
            raise ValueError(f"{out} holds a run on {scenario}, so --resume cannot continue it on "
                             f"{args.scenario}; drop --scenario or pass --scenario {scenario}, or "
                             f"train on {args.scenario} in another --out folder.")
    elif (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a run; add --resume to continue it or choose "
                         "another --out.")
    torch.set_num_threads(1)
    start = time.perf_counter()
    policy = policies.train(algo, scenario, args.steps, seed=args.seed, out_dir=out,
                            overrides=overrides, resume=args.resume)
    trained = int(policy.metadata["global_step"])
    amount = f"to {trained:,} env steps in all" if args.resume else f"for {trained:,} env steps"
    resolved = read_yaml(out / "config.yaml")
    budget = float(resolved["trainer"].get("max_minutes", 0) or 0)
    if trained < args.steps and budget > 0:
        amount += (f" (asked {args.steps:,}; stopped at trainer.max_minutes={budget:g} of "
                   "training-loop time)")
    elif trained != args.steps:
        amount += f" (asked {args.steps:,}; {training_granularity(resolved)})"
    print(f"trained {algo} on {scenario} {amount} in {time.perf_counter() - start:.0f} s; run "
          f"folder {out} (policy.pt, checkpoint.pt, config.yaml, progress.csv, tb/)")
    return 0


def training_granularity(resolved: dict) -> str:
    """Why a run trains more env steps than asked: it stops only between whole collections."""
    from policies import (
        GAME_ALGORITHM_NAMES,
        MEAN_FIELD_ALGORITHM_NAMES,
        OFF_POLICY_ALGORITHM_NAMES,
        VALUE_ALGORITHM_NAMES,
    )

    trainer = resolved["trainer"]
    if resolved["algorithm"] in VALUE_ALGORITHM_NAMES:
        return f"training collects whole episodes, {trainer['num_envs']} at a time"
    per_update = trainer["num_envs"] * trainer["rollout_steps"]
    if resolved["algorithm"] in GAME_ALGORITHM_NAMES:
        return (f"training learns online in whole iterations of {per_update:,} steps, "
                f"{trainer['num_envs']} envs x {trainer['rollout_steps']} steps")
    if resolved["algorithm"] in OFF_POLICY_ALGORITHM_NAMES + MEAN_FIELD_ALGORITHM_NAMES:
        return (f"training collects whole iterations of {per_update:,} steps into its replay "
                f"buffer, {trainer['num_envs']} envs x {trainer['rollout_steps']} steps")
    return (f"training runs whole rollouts of {per_update:,} steps, {trainer['num_envs']} envs x "
            f"{trainer['rollout_steps']} steps")


def cmd_sweep(args: argparse.Namespace) -> int:
    """Train algorithms x seeds x a grid of overrides as Ray tasks, then summarise the runs
    (a thin layer over policies.sweep)."""
    from policies import sweep

    out = Path(args.out)
    failed = []
    if not args.summarize:
        if not args.algos:
            raise ValueError("--algos is required to run a sweep (only --summarize, which "
                             "trains nothing, may leave it out).")
        if args.steps < 1:
            raise ValueError(f"--steps must be a positive number of env steps (got {args.steps:,}).")
        spec = sweep.SweepSpec(algos=list(args.algos), scenario=args.scenario,
                               seeds=list(args.seeds), steps=args.steps,
                               grid=sweep.parse_grid(args.grid), fixed=list(args.overrides))
        start = time.perf_counter()
        result = sweep.run_sweep(spec, out, address=args.address, num_cpus=args.num_cpus,
                                 eval_episodes=args.eval_episodes)
        failed = result["failed"]
        print(f"sweep: {len(result['trained'])} trials trained, {result['skipped']} already "
              f"finished, {len(failed)} failed, in {time.perf_counter() - start:.0f} s")
    summary = sweep.summarize(out, metric=args.metric, last=args.last, reps=args.reps,
                              eval_episodes=args.eval_episodes)
    sweep.print_summary(summary)
    print(f"wrote {out / 'summary.md'}, {out / 'summary.json'} and {summary['plot']}")
    for failure in failed:
        print(f"marl-ros sweep: {failure['trial']} failed: {failure['error']}", file=sys.stderr)
    return 1 if failed else 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Deterministic evaluation of a run: JSON report, learning curve, coverage PNG, GIF; with
    --robustness, a bundle's sim-to-real readiness report (marl_ros.robustness, torch-free)."""
    target = Path(args.run)
    if args.robustness:
        from marl_ros import robustness

        if args.gif:
            raise ValueError("--gif belongs to the evaluation of a training run; drop it with "
                             "--robustness.")
        plan = robustness.plan_report(target, sweeps=args.sweeps, episodes=args.episodes,
                                      seed=args.seed, backend=args.backend,
                                      mission_steps=args.mission_steps)
        out = Path(args.out or Path("runs/robustness") / target.resolve().name)
        print(f"flying {target} ({args.backend}, {args.episodes} episodes of "
              f"{plan.baseline.max_steps} steps per value): "
              + ", ".join(f"{s.name} {'/'.join(f'{v:g}' for v, _, _ in rows)}"
                          for s, rows in plan.sweeps))
        report = robustness.run_report(plan, out, command=" ".join(["marl-ros eval",
                                                                    *sys.argv[2:]]))
        robustness.print_table(report)
        for sweep in report["sweeps"]:
            if sweep["cliff"] is not None:
                before = ("none" if sweep["last_passing"] is None
                          else f"{sweep['last_passing']:g}")
                print(f"{sweep['name']}: fails the readiness bar at {sweep['cliff']:g} "
                      f"({sweep['unit']}; last passing value: {before})")
        print(f"wrote {', '.join(report['files'].values())} in {report['wall_s']:.0f} s")
        return 0
    from policies.evaluation import is_team_run

    if args.opponent is not None and not (_trains_a_named_game(target) or is_team_run(target)):
        raise ValueError("--opponent belongs to runs on pursuit (the game-theoretic family, or "
                         "teams); drop it for this run.")
    extra = [flag for flag, used in (("--sweeps", args.sweeps), ("--out", args.out),
                                     ("--mission-steps", args.mission_steps)) if used]
    if extra:
        raise ValueError(f"{extra[0]} belongs to the readiness report; add --robustness (with a "
                         "policy bundle) or drop it.")
    if (target / "policy.yaml").is_file():
        raise ValueError(f"{target} is a policy bundle, not a training run; add --robustness for "
                         "its sim-to-real readiness report, or pass a run folder written by "
                         "marl-ros train.")
    import torch

    from policies.evaluation import evaluate_run

    torch.set_num_threads(1)
    if _trains_a_named_game(target):
        return eval_game_run(args)
    if is_team_run(target):
        return eval_team_run(args)
    report = evaluate_run(args.run, backend=args.backend, episodes=args.episodes, seed=args.seed,
                          gif=args.gif, num_drones=args.num_drones)
    pol, base = report["policy"], report["random_walk"]
    swarm = ""
    if args.num_drones is not None:
        env = report["env"]
        field = (f"{env['width']} x {env['height']} cells" if "width" in env
                 else f"{env['arena_size']:g} m arena")
        swarm = f", {args.num_drones} drones on {field}"
    # A world with metrics of its own (formation's shape error, flock's time to goal) reports
    # those against the random walk; the others coverage.
    own = [k for k in pol if k not in ("coverage", "coverage_min", "episode_return",
                                       "episode_length", "episode_collisions")]
    if own and report["scenario"] != "coverage":
        task = ", ".join(f"{k} {pol[k]:.3g} (random walk {base.get(k, float('nan')):.3g})"
                         for k in own)
    else:
        task = (f"coverage {100 * pol['coverage']:.1f}% (min {100 * pol['coverage_min']:.1f}%), "
                f"random walk {100 * base['coverage']:.1f}%")
        if "obstacle_collisions" in pol:  # drone-ticks inside an obstacle's margin
            task += (f"; obstacle collisions/episode {pol['obstacle_collisions']:.2f} (random "
                     f"walk {base['obstacle_collisions']:.2f})")
    print(f"{report['algorithm']} on {report['scenario']} ({args.backend}, {args.episodes} "
          f"episodes{swarm}): {task}; return {pol['episode_return']:.3f}, "
          f"near-collisions/episode {pol['episode_collisions']:.2f}")
    print(f"wrote {report['json']}")
    return 0


def _trains_a_named_game(run: Path) -> bool:
    """A run of the game-theoretic family (a named game, or pursuit's cells view)."""
    from policies import GAME_ALGORITHM_NAMES
    from policies.config import read_yaml

    return ((run / "config.yaml").is_file()
            and read_yaml(run / "config.yaml").get("algorithm") in GAME_ALGORITHM_NAMES)


def eval_team_run(args: argparse.Namespace) -> int:
    """A team run on pursuit: capture rate and time of its sides against scripted, random and
    learned opponents (`policies.evaluation.evaluate_team_run`)."""
    from policies.evaluation import evaluate_team_run

    if args.gif or args.num_drones is not None:
        raise ValueError("--gif and --num-drones belong to single-policy runs; drop them for a "
                         "team run.")
    report = evaluate_team_run(args.run, backend=args.backend, episodes=args.episodes,
                               seed=args.seed, opponent=args.opponent)
    teams = ", ".join(f"{k} {v}" for k, v in report["teams"].items())
    print_matchups(report, f"teams ({teams}) on pursuit ({args.backend}, {args.episodes} episodes "
                           "per matchup; pursuers vs evaders, policy = the learned team, most "
                           "probable actions):")
    return 0


def print_matchups(report: dict, header: str) -> None:
    """A pursuit matchup table (capture rate and time per pairing) and where its JSON went."""
    print(header)
    for name, row in report["matchups"].items():
        print(f"  {name:>18}: capture rate {100 * row['capture_rate']:5.1f}%, mean capture "
              f"time {row['capture_time']:.1f} steps")
    print(f"wrote {report['json']}")


def eval_game_run(args: argparse.Namespace) -> int:
    """A run on a named game: sampled episodes and, where the game has a model, exploitability."""
    from policies.games.evaluation import evaluate_game_run

    if args.gif or args.num_drones is not None:
        raise ValueError("--gif and --num-drones belong to drone scenarios; drop them for a run on "
                         "a named game.")
    report = evaluate_game_run(args.run, episodes=args.episodes, seed=args.seed,
                               backend=args.backend, opponent=args.opponent)
    if "matchups" in report:
        print_matchups(report, f"{report['algorithm']} on pursuit ({args.backend}, "
                               f"{args.episodes} episodes per matchup; pursuers vs evaders, "
                               "policy = the learned strategies sampled):")
        return 0
    returns = ", ".join(f"{k.removeprefix('return_')} {v:.3f}" for k, v in report["policy"].items()
                        if k.startswith("return_"))
    cover = (f", coverage {100 * report['policy']['coverage']:.1f}%"
             if "coverage" in report["policy"] else "")
    print(f"{report['algorithm']} on {report['game']} ({args.episodes} episodes, mixed strategies "
          f"sampled): mean return {returns}{cover}")
    if "exploitability" in report:
        gains = ", ".join(f"{a} {g:.4f}" for a, g in report["exploitability"].items())
        print(f"exploitability (a best response's gain over each player's strategy): {gains}")
    if "worst_case_value" in report:
        worst = ", ".join(f"{a} {v:.4f}" for a, v in report["worst_case_value"].items())
        print(f"worst-case value (against a best-responding opponent): {worst}")
    print(f"wrote {report['json']}")
    return 0


def cmd_swarm(args: argparse.Namespace) -> int:
    """Start the swarm graph (the launch file's node list) as processes and fly one mission."""
    from marl_ros.graph import GraphStopped, agent_process_capacity, run_graph, swarm_graph
    from marl_ros.runtime import BundleError

    if not (args.timeout > 0):
        raise ValueError(f"--timeout must be a positive number of wall seconds (got "
                         f"{args.timeout!r}).")
    capacity, machine = agent_process_capacity()
    one_process = args.one_process or args.num_drones > capacity
    out = Path(args.report_dir)
    try:
        specs = swarm_graph(num_drones=args.num_drones, policy=args.policy,
                            scenario=args.scenario, sim=args.sim, rate=args.rate,
                            namespace_prefix=args.namespace_prefix,
                            use_sim_time=args.use_sim_time, one_process=one_process,
                            real_time_factor=args.real_time_factor, seed=args.seed,
                            report_dir=str(out), mission_steps=args.mission_steps,
                            neighbour_drop=args.neighbour_drop, exit_on_complete=True,
                            team_policies=args.team_policies)
    except ValueError as err:  # the graph's own sentences name launch arguments; say flags
        raise ValueError(_as_flags(str(err))) from None
    check_mission_fits_timeout(specs, args)
    if one_process and not args.one_process:
        print(f"marl-ros swarm: {args.num_drones} drones are more agent processes than this "
              f"machine holds ({capacity}: {machine}); flying them in one swarm_agents process "
              "(as --one-process does).")
    report_path = out / "report.json"
    report_path.unlink(missing_ok=True)
    print(f"starting {len(specs)} node processes: "
          + ", ".join(sorted({s.executable for s in specs})) + f" (logs in {out / 'logs'})")
    try:
        code = run_graph(specs, timeout_s=args.timeout, log_dir=out / "logs")
    except GraphStopped as stopped:
        print(f"marl-ros swarm: {stopped}", file=sys.stderr)
        return stopped.exit_code
    except BundleError as err:
        raise ValueError(str(err)) from None
    if code == 124:
        print(f"marl-ros swarm: the mission did not end within --timeout {args.timeout:g} s; "
              f"every node was stopped (logs in {out / 'logs'}).", file=sys.stderr)
    if not report_path.is_file():
        print(f"marl-ros swarm: no report was written (monitor exit code {code}); see the logs "
              f"in {out / 'logs'}", file=sys.stderr)
        return 1
    report = json.loads(report_path.read_text())
    if "capture" in report:  # pursuit
        first = report["capture_time_steps"]
        print(f"captured {len(report['captured_evaders'])} evader(s) "
              f"({100 * report['capture']:.0f}%)"
              + (f", the first after {first} steps" if first is not None else "")
              + f" of {report['steps']}")
    if "mission" in report:  # formation, flock: the world's own metrics
        print(", ".join(f"{k} {v:.3g}" if v is not None else f"{k} -"
                        for k, v in report["mission"].items()))
    task = ("" if "capture" in report or "mission" in report
            else f"coverage {100 * report['coverage']:.1f}% after ")
    print(f"{task}{report['steps']} steps "
          f"({report['simulated_s']:.1f} s), min separation {report['min_separation_m']} m, "
          f"collisions {report['collisions']}, near-collisions (< "
          f"{report['collision_distance_m']} m) {report['near_collisions']}, geofence "
          f"violations {report['geofence_violations']}"
          + (f", obstacle collisions {report['obstacle_collisions']} (drone-ticks, "
             f"{len(report['obstacles'])} obstacles)" if "obstacle_collisions" in report else ""))
    print(f"wrote {report_path} and {report.get('png', '(no PNG)')}")
    return 0 if code == 0 else 1


def _as_flags(sentence: str) -> str:
    """`num_drones must ...`, `pass scenario:=spread` -> `--num-drones must ...`, `pass
    --scenario spread`: the graph's sentences in the command line's words."""
    import re

    from marl_ros.graph import LAUNCH_ARGUMENTS

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    names = "|".join(sorted(LAUNCH_ARGUMENTS, key=len, reverse=True))
    sentence = re.sub(rf"\b({names}):=", lambda m: flag(m.group(1)) + " ", sentence)
    return re.sub(rf"^({names})(=| )", lambda m: flag(m.group(1)) + " ", sentence)


def check_mission_fits_timeout(specs: list, args: argparse.Namespace) -> None:
    """Refuse a --timeout shorter than the mission itself would take in wall time."""
    from marl_ros.runtime import load_swarm_config

    monitor = next(s for s in specs if s.executable == "monitor_node")
    cfg = load_swarm_config(monitor.parameters["bundle"], args.num_drones)
    steps = args.mission_steps or cfg.max_steps
    speed = args.real_time_factor if args.sim else 1.0
    wall = steps / cfg.policy_hz / speed
    if wall >= args.timeout:
        raise ValueError(f"the mission takes {wall:.1f} wall seconds ({steps} policy ticks at "
                         f"{cfg.policy_hz:g} Hz, {speed:g}x real time) but --timeout is "
                         f"{args.timeout:g} s; raise --timeout (or --real-time-factor, or lower "
                         "--mission-steps).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marl-ros",
        description="Multi-agent RL for drone swarms: simulate, train, export, deploy on ROS 2.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="fly a scripted 4-drone coverage episode in PyBullet",
                          description="Fly one coverage episode in PyBullet with the scripted "
                                      "lawnmower baseline; print coverage and write a PNG of the "
                                      "coverage map and trajectories plus a JSON report.")
    demo.add_argument("--num-drones", type=int, default=4, help="drones in the swarm (default 4)")
    demo.add_argument("--steps", type=int, default=100, help="episode length in policy steps")
    demo.add_argument("--seed", type=int, default=0, help="seed for start positions")
    demo.add_argument("--out", default="runs/demo", help="folder for coverage.png and demo.json")
    demo.add_argument("--gui", action="store_true", help="open the PyBullet GUI")
    demo.add_argument("params", nargs="*", metavar="key=value",
                      help="coverage parameters, e.g. speed_factors=[1.5,1.5,0.5,0.5] "
                           "footprints=[1,1,5,5] (a heterogeneous swarm)")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="throughput benchmarks (not tests)",
                           description="Print throughput figures with a baseline measured in the "
                                       "same run. 'sim': PyBullet physics steps/s for 4, 16, 64 "
                                       "drones, fast-backend env steps/s at 1, 32, 512 envs "
                                       "and at 4, 16, 64, 256 drones per env, and where "
                                       "VMAS is installed (pip install vmas) coverage and "
                                       "spread beside VMAS navigation and simple_spread at "
                                       "512 envs, interleaved, with the ratio. "
                                       "'train': --algos (default MAPPO, HAPPO) on default "
                                       "coverage, training env steps/s (off-policy: also "
                                       "gradient updates/s) and "
                                       "wall clock to 90% pybullet coverage; with --throughput "
                                       "S only S seconds of steady-state training throughput "
                                       "per algorithm, no evaluation. "
                                       "'infer': batch-1 latency, torch eager vs onnxruntime. "
                                       "'ros': agent nodes at --rate Hz with sim_node for "
                                       "--drones (default 4, 8, 16), one process per agent "
                                       "(where the machine holds them) vs one process for "
                                       "all: deadline misses, odom-to-cmd_vel latency, CPU, "
                                       "the sim_node's real-time factor. "
                                       "'envs': a user's PettingZoo ParallelEnv (--env) stepped "
                                       "as the trainer steps it, in one process and over "
                                       "--workers processes (trainer.env_workers). "
                                       "'workers': --algos (default MAPPO, HATD3) training "
                                       "in process and with --workers Ray rollout workers "
                                       "(default 0 1 2; trainer.workers): env steps/s, where "
                                       "an iteration's time goes, and the predicted "
                                       "throughput on a cluster.")
    bench.add_argument("what", choices=["sim", "train", "infer", "ros", "envs", "workers"],
                       help="what to benchmark")
    bench.add_argument("--minutes", type=float, default=30.0,
                       help="train: training budget per algorithm")
    bench.add_argument("--algos", nargs="+", default=None, metavar="ALGO",
                       help="train: algorithms to train one after another (default mappo happo); "
                            "workers: default mappo hatd3")
    bench.add_argument("--threshold", type=float, default=0.9,
                       help="train: pybullet coverage that stops an algorithm (default 0.9)")
    bench.add_argument("--segment-steps", type=int, default=500_000,
                       help="train: env steps between pybullet evaluations (default 500000)")
    bench.add_argument("--out", default=None,
                       help="train: keep the runs under this folder (default: a temporary one)")
    bench.add_argument("--throughput", type=float, default=None, metavar="SECONDS",
                       help="train: only measure steady-state throughput for SECONDS per "
                            "algorithm after warm-up (env steps/s, gradient updates/s, time in "
                            "updates, bare env steps/s); no evaluation, nothing written")
    bench.add_argument("--device", nargs="+", default=None, metavar="DEVICE",
                       help="train: trainer.device of each run (auto, cpu, cuda, cuda:N); "
                            "with --throughput one row per device, e.g. --device cpu cuda")
    bench.add_argument("--backend", choices=["fast", "pybullet"], default="fast",
                       help="workers: the training backend (default fast)")
    bench.add_argument("--seconds", type=float, default=None,
                       help="sim: measuring time per figure (default 3); ros: per row (default 10); "
                            "envs: per row (default 5)")
    bench.add_argument("--repeats", type=int, default=2000, help="infer: calls per latency figure")
    bench.add_argument("--rate", type=float, default=30.0, help="ros: agent control rate in Hz")
    bench.add_argument("--drones", type=int, nargs="+", default=[4, 8, 16], metavar="N",
                       help="ros: drone counts, one row each (default 4 8 16; e.g. 4 8 16 32 64)")
    bench.add_argument("--bundle", default=None,
                       help="infer: bundle holding policy.pt (default the shipped coverage_4); "
                            "ros: bundle flown (default random weights, shared parameters)")
    bench.add_argument("--env", default="mpe2.simple_spread_v3:parallel_env",
                       metavar="MODULE:FUNCTION",
                       help="envs: the ParallelEnv constructor (default MPE's simple_spread, "
                            "pip install mpe2)")
    bench.add_argument("--num-envs", type=int, default=16, help="envs: copies (default 16)")
    bench.add_argument("--workers", type=int, nargs="+", default=None, metavar="W",
                       help="envs: worker processes, one row each (default 1 2 4); workers: "
                            "Ray rollout workers, one row each (default 0 1 2)")
    bench.set_defaults(func=cmd_bench)
    train = sub.add_parser("train", help="train a CTDE algorithm (on-policy, value "
                                         "decomposition, COMA, off-policy, mean-field or "
                                         "game-theoretic) on a scenario",
                           description="Train a CTDE policy on a sim scenario. Configs: "
                                       "policies/configs/<algo>.yaml and <scenario>.yaml, then "
                                       "key=value overrides (algo.lr_actor=3e-4, "
                                       "trainer.num_envs=64, env.width=8). Writes config.yaml, "
                                       "checkpoint.pt, policy.pt, progress.csv and tb/ to --out.")
    train.add_argument("--algo", default=None,
                       choices=["mappo", "happo", "hatrpo", "haa2c",  # policies.ALGORITHM_NAMES
                                "iql", "vdn", "qmix", "qtran_base", "qtran_alt", "coma",
                                "maddpg", "haddpg", "hatd3", "mf_q", "mf_ac",
                                "minimax_q", "nash_q", "friend_q", "foe_q", "wolf_phc", "phc",
                                "independent_q", "team_q"],
                       help="required unless --resume (which continues the run's own); iql, vdn, "
                            "qmix, qtran_base, qtran_alt, coma and mf_q need discrete actions "
                            "(their config sections set env.action_mode=discrete)")
    train.add_argument("--scenario", default=None,
                       help="sim scenario (default coverage; with --resume the run's own), or "
                            "for the game-theoretic algorithms a named game (soccer, "
                            "grid_game_1, matching_pennies, ...; policies.games.worlds)")
    train.add_argument("--num-drones", type=int, default=None, help="drones (scenario default 4)")
    train.add_argument("--steps", type=int, default=1_000_000,
                       help="env steps to train for (rounded up to whole rollouts or episodes; "
                            "with --resume, the run's total)")
    train.add_argument("--backend", choices=["fast", "pybullet"], default=None,
                       help="training dynamics (default fast)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default=None, help="run folder (default runs/<algo>_<scenario>)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    train.set_defaults(func=cmd_train)

    sweep = sub.add_parser(
        "sweep", help="train algorithms x seeds x hyperparameters on Ray and summarise them "
                      "(IQM, bootstrap CIs, learning curves)",
        description="Train every (algorithm, grid point, seed) as a Ray task, each a normal run "
                    "folder OUT/<algo>/<overrides>/seed<k>; rerunning the same sweep skips "
                    "finished trials and resumes interrupted ones. Then write OUT/summary.md, "
                    "summary.json and summary.png: per configuration the interquartile mean of "
                    "the seeds' final scores with a 95% stratified bootstrap CI (rliable), mean, "
                    "median, and IQM learning curves with bootstrap bands.")
    sweep.add_argument("--algos", nargs="+", default=None, metavar="ALGO",
                       help="algorithms to sweep (required unless --summarize)")
    sweep.add_argument("--scenario", default="coverage", help="sim scenario (default coverage)")
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED",
                       help="seeds of every configuration (default 0 1 2)")
    sweep.add_argument("--steps", type=int, default=200_000, help="env steps per trial")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="a swept override and its values, e.g. algo.lr_actor=1e-4,5e-4; "
                            "repeat for a product grid")
    sweep.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                       metavar="KEY=VALUE", help="overrides of every trial (env.num_drones=2 ...)")
    sweep.add_argument("--out", default="runs/sweep", help="sweep folder (default runs/sweep)")
    sweep.add_argument("--address", default=None,
                       help="Ray cluster address (ray.init(address=...)); default: a local Ray "
                            "on this machine, shut down at the end")
    sweep.add_argument("--num-cpus", type=int, default=None,
                       help="local Ray: trials at once (default the machine's cores)")
    sweep.add_argument("--metric", choices=["coverage", "episodic_return"], default=None,
                       help="score (default coverage where the scenario logs it, else the team "
                            "return)")
    sweep.add_argument("--last", type=int, default=10,
                       help="final score = mean of the last N logged values (default 10)")
    sweep.add_argument("--eval-episodes", type=int, default=0, metavar="N",
                       help="score each final policy by N deterministic episodes (fast backend) "
                            "instead of its last training episodes")
    sweep.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    sweep.add_argument("--summarize", action="store_true",
                       help="only (re)build the summary from the run folders in --out")
    sweep.set_defaults(func=cmd_sweep)

    evaluate = sub.add_parser(
        "eval", help="evaluate a trained run deterministically, or a bundle's sim-to-real "
                     "readiness (--robustness)",
        description="Run K deterministic episodes of a run's policy (and the random walk, same "
                    "seeds); write eval_<backend>.json, learning_curve.png, "
                    "coverage_<backend>.png and optionally a GIF into the run folder. With "
                    "--robustness and a policy bundle: fly the bundle with the ONNX runtime "
                    "through sweeps of deployment faults (noise: sensor noise std in m and m/s; "
                    "delay: command delay in ms, 1 control tick or whole policy ticks; "
                    "randomize: +/- fraction of mass and motor constants; odom_rate: odometry "
                    "rate in Hz, held in between; latency: odometry age in ms; loss: probability "
                    "of losing each neighbour's state per tick), K episodes per value, and write "
                    "robustness.json/.csv/.md/.png (coverage and safety counts per value) to "
                    "--out.")
    evaluate.add_argument("run", help="run folder written by marl-ros train, or with "
                                      "--robustness a policy bundle folder (policy.yaml)")
    evaluate.add_argument("--backend", choices=["fast", "pybullet"], default="pybullet")
    evaluate.add_argument("--episodes", type=int, default=10,
                          help="episodes (per swept value with --robustness; default 10)")
    evaluate.add_argument("--seed", type=int, default=12345,
                          help="seed of the first episode (--robustness: episode i uses seed + i)")
    evaluate.add_argument("--gif", action="store_true", help="also write an episode GIF")
    evaluate.add_argument("--opponent", default=None, metavar="RUN",
                          help="pursuit runs of the game-theoretic family: another run whose "
                               "learned pursuer and evader play this run's")
    evaluate.add_argument("--num-drones", type=int, default=None, metavar="N",
                          help="fly N drones instead of the trained count, on the field "
                               "sim.config.scaled_field gives N (the default drone density); "
                               "writes eval_<backend>_n<N>.json (a policy without agent ids)")
    evaluate.add_argument("--robustness", action="store_true",
                          help="sim-to-real readiness report of a policy bundle")
    evaluate.add_argument("--sweeps", nargs="+", default=None, metavar="NAME[=V1,V2,...]",
                          help="--robustness: sweeps to run, each with its default values or "
                               "the given ones (noise, delay, randomize, odom_rate, latency, "
                               "loss; default all)")
    evaluate.add_argument("--mission-steps", type=int, default=0,
                          help="--robustness: episode length in policy ticks (0 = the bundle "
                               "scenario's)")
    evaluate.add_argument("--out", default=None,
                          help="--robustness: report folder (default runs/robustness/<bundle>)")
    evaluate.set_defaults(func=cmd_eval)

    export = sub.add_parser("export", help="export a trained run as a policy bundle",
                            description="Write BUNDLE_DIR/policy.onnx (one per agent when "
                                        "parameters are not shared) and policy.yaml: observation "
                                        "layout and hash, action mapping and limits, policy rate, "
                                        "scenario parameters, recurrent state, agent ids, "
                                        "checksums and provenance (with the run's evaluation "
                                        "report if eval was run). The bundle is loaded back and "
                                        "validated before the command returns.")
    export.add_argument("run", help="run folder written by marl-ros train (or a policy.pt)")
    export.add_argument("--out", required=True, help="bundle folder to write")
    export.add_argument("--with-torch", action="store_true",
                        help="also copy policy.pt into the bundle (for bench infer, fine-tuning)")
    export.add_argument("--team", default=None,
                        help="a team run (trainer.teams): write only this team's bundle at --out "
                             "(default: one bundle per team, --out/<team>)")
    export.add_argument("--command-line", default=None,
                        help="training command to record in the provenance")
    export.set_defaults(func=cmd_export)

    swarm = sub.add_parser(
        "swarm", help="run the ROS 2 swarm graph (sim + agents + monitor) for one mission",
        description="Start the node graph of launch/swarm.launch.py without ros2/launch_ros: "
                    "sim_node (unless --no-sim), one agent_node per drone (or one process with "
                    "--one-process) and monitor_node, each a process. Ends when the monitor "
                    "reports the mission complete; prints coverage and writes report.json and "
                    "coverage.png to --report-dir.")
    swarm.add_argument("--num-drones", type=int, default=4)
    swarm.add_argument("--policy", default=None, help="bundle folder (default: shipped coverage_4)")
    swarm.add_argument("--scenario", default="coverage")
    swarm.add_argument("--no-sim", dest="sim", action="store_false",
                       help="do not start sim_node (real drones provide odom and swarm state)")
    swarm.add_argument("--rate", type=float, default=0.0, help="agent rate in Hz (0 = bundle's)")
    swarm.add_argument("--namespace-prefix", default="drone_")
    swarm.add_argument("--use-sim-time", type=lambda v: v.lower() == "true", default=None,
                       help="true/false (default: true with the simulator)")
    swarm.add_argument("--one-process", action="store_true",
                       help="all agent nodes in one process on one executor (chosen by itself "
                            "beyond the agent processes the machine holds: 8 per CPU)")
    swarm.add_argument("--real-time-factor", type=float, default=1.0)
    swarm.add_argument("--seed", type=int, default=0, help="start positions")
    swarm.add_argument("--mission-steps", type=int, default=0,
                       help="mission length in policy ticks (0 = scenario episode length)")
    swarm.add_argument("--neighbour-drop", type=float, default=0.0,
                       help="fault injection: probability of losing a neighbour's state")
    swarm.add_argument("--team-policies", default="",
                       help="one bundle per team, e.g. pursuers=DIR,evaders=DIR (pursuit); "
                            "teams not named fly --policy")
    swarm.add_argument("--report-dir", default="runs/swarm")
    swarm.add_argument("--timeout", type=float, default=300.0,
                       help="wall seconds at most; then every node is stopped")
    swarm.set_defaults(func=cmd_swarm)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"marl-ros {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
