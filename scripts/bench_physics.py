"""Physics throughput of sim.physics.PyBulletWorld: physics steps per second while drones hover.

    python scripts/bench_physics.py [--drones 4 16] [--seconds 20]

Drones fly under velocity commands (a slow circle), the controller runs at 48 Hz, physics at
240 Hz; the figure is stepSimulation calls per wall-clock second, construction excluded.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sim.physics import PyBulletWorld


def physics_steps_per_second(num_drones: int, sim_seconds: float) -> float:
    world = PyBulletWorld(num_drones, seed=0)
    try:
        grid = np.column_stack([np.arange(num_drones) % 4, np.arange(num_drones) // 4, np.ones(num_drones)])
        world.reset(grid)
        start_steps, start = world.physics_steps, time.perf_counter()
        for k in range(round(sim_seconds * 8)):  # 8 Hz policy-rate setpoints
            t = k / 8.0
            setpoints = np.tile([0.3 * np.cos(t), 0.3 * np.sin(t), 0.0, 0.0], (num_drones, 1))
            world.step(setpoints, 1.0 / 8.0)
        return (world.physics_steps - start_steps) / (time.perf_counter() - start)
    finally:
        world.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drones", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per run")
    args = parser.parse_args()
    for n in args.drones:
        print(f"N={n:3d}: {physics_steps_per_second(n, args.seconds):8.0f} physics steps/s")


if __name__ == "__main__":
    main()
