"""Suite-wide options.

`--torch-threads N` runs every torch computation of the session with N intra-op threads,
whatever the code asks for (trainers call `torch.set_num_threads(trainer.torch_threads)`).
It exists to change the floating-point path of the learning tests (another summation
order), which `scripts/learning_spread.sh` uses to show that their margins hold beyond
one machine's exact trajectory.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--torch-threads", type=int, default=0,
                     help="force this many torch threads everywhere (0: leave it to the code)")


def pytest_configure(config: pytest.Config) -> None:
    threads = config.getoption("--torch-threads")
    if threads > 0:
        import torch

        set_threads = torch.set_num_threads
        torch.set_num_threads = lambda _requested: set_threads(threads)
        set_threads(threads)
