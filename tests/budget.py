"""CPU-time budgets for tests: they measure the code, not how busy the machine is.

A wall-clock budget fails whenever another process takes the core; the CPU time of the thread doing
the work does not grow with load, yet still grows with a real regression (a quadratic parser on a
pathological input blows any budget either way).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Spent:
    cpu_seconds: float = 0.0


@contextmanager
def cpu_budget(seconds: float, what: str = "the work") -> Iterator[Spent]:
    """Fail if the calling thread spends more than `seconds` of CPU time inside the block."""
    spent = Spent()
    started = time.thread_time()
    yield spent
    spent.cpu_seconds = time.thread_time() - started
    assert spent.cpu_seconds < seconds, f"{what} took {spent.cpu_seconds:.2f} s of CPU (budget {seconds} s)"
