"""States per second of the Ray backend with 1, 2 and 4 workers, next to the local backend, on one model.

Every run explores the same graph (the script checks the counts are equal).
"explore s" leaves out the start-up (the local root; for Ray: the host
process, the cluster, the workers' roots), which ``setup s`` shows; states/s
is over the exploration alone.  Each Ray run starts its own private local
cluster (loopback only).  Workers take one CPU each: on a machine with fewer
cores than workers they share them, so this shows the overhead of the
distributed search, not its scaling; run it on a cluster for that (``--address``).

    python benchmarks/distributed.py [--n 4] [--workers 1 2 4] [--address HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

from two_phase import two_phase  # noqa: E402


def row(label: str, r, wall: float) -> tuple[int, int, int]:
    s = r.stats
    explore = s.seconds - s.setup_seconds
    print(f"{label:<26}{s.states:>8}{s.transitions:>13}{wall:>9.1f}{s.setup_seconds:>9.1f}{explore:>11.1f}"
          f"{s.states / explore:>10.0f}{s.transitions / explore:>10.0f}", flush=True)
    return s.states, s.transitions, s.max_depth


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4, help="resource managers of two_phase (default 4: 1568 states)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--address", default=None, help="a Ray cluster to use instead of private local ones")
    args = p.parse_args()
    model = two_phase(n=args.n)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"model: {model!r}, strategy dfs, determinism_checks=0")  # as in docs/benchmarks.md (the default is bfs)
    print(f"{'backend':<26}{'states':>8}{'transitions':>13}{'wall s':>9}{'setup s':>9}{'explore s':>11}"
          f"{'states/s':>10}{'trans/s':>10}")
    counts = set()
    for jobs in (1, 2):
        t = time.perf_counter()
        r = model.check(jobs=jobs, strategy="dfs", determinism_checks=0)
        counts.add(row(f"local, jobs={jobs}", r, time.perf_counter() - t))
    for n in args.workers:
        t = time.perf_counter()
        r = model.check(backend="ray", workers=n, ray_address=args.address, strategy="dfs", determinism_checks=0)
        counts.add(row(f"ray, workers={n}", r, time.perf_counter() - t))
    assert len(counts) == 1, f"the runs disagree: {counts}"
    print(f"load average {os.getloadavg()[0]:.1f} at the end; every run found {counts.pop()} "
          "(states, transitions, depth)")


if __name__ == "__main__":
    main()
