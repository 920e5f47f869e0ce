"""Transitions per second of a real check, next to this machine's raw fork round trip.

The floor is measured in the same run: a Python process forks, the child writes
one byte to a pipe and exits, the parent reads it and reaps the child.  A
forkcheck transition costs at least that (one fork of a snapshot process) plus
the transition itself, the fingerprint and two messages.

    python benchmarks/throughput.py
"""

from __future__ import annotations

import os
import platform
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

from two_phase import two_phase  # noqa: E402

from forkcheck._bench import py_fork_floor  # noqa: E402


def fork_round_trip(samples: int = 500) -> float:
    """Median seconds of fork + one byte through a pipe + exit + wait (forkcheck bench's floor)."""
    return py_fork_floor(0, samples)


def main() -> None:
    floor = fork_round_trip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}")
    print(f"floor: raw Python fork-and-pipe round trip {floor * 1e3:.2f} ms  ({1 / floor:,.0f} forks/s)")
    print(f"{'model':<22}{'strategy':<10}{'jobs':>5}{'states':>8}{'transitions':>13}{'seconds':>9}{'trans/s':>9}{'ms/trans':>10}{'x floor':>9}")
    for strategy in ("bfs", "dfs"):
        for jobs in (1, 2):
            r = two_phase(n=3).check(strategy=strategy, jobs=jobs)
            s = r.stats
            per = s.seconds / s.transitions
            print(f"{'two_phase(n=3)':<22}{strategy:<10}{jobs:>5}{s.states:>8}{s.transitions:>13}{s.seconds:>9.2f}"
                  f"{s.transitions / s.seconds:>9.0f}{per * 1e3:>10.2f}{per / floor:>9.1f}")


if __name__ == "__main__":
    main()
