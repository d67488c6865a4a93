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

    import sim
    from sim.render import save_coverage_png
    from sim.scripted import LawnmowerPilot

    env = sim.make_env("coverage", backend="pybullet", seed=args.seed, num_drones=args.num_drones,
                       max_steps=args.steps, gui=args.gui)
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
        bench.bench_sim(seconds=args.seconds)
    return 0


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
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="throughput benchmarks (not tests)",
                           description="Print throughput figures with a baseline measured in the "
                                       "same run. 'sim': PyBullet physics steps/s for 4 and 16 "
                                       "drones, fast-backend env steps/s at 1, 32, 512 envs.")
    bench.add_argument("what", choices=["sim"], help="what to benchmark")
    bench.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    bench.set_defaults(func=cmd_bench)
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
