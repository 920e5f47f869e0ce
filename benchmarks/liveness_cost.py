"""What a liveness check costs on top of a safety-only check of the same model.

The model is examples/two_phase.py (Lamport's TwoPhase.tla) with two
liveness properties: ``eventually(every resource manager has decided)``, which
fails even under weak fairness (fairness is per actor: the transaction manager
may re-receive the same "Prepared" message forever instead of committing), and
``leads_to(the TM committed, every RM committed)``, which holds under weak and
strong fairness and fails without fairness.  Each variant runs in a
fresh interpreter, so that the peak RSS (``resource.getrusage``) of the
explorer process is its own; a second run of each variant measures the peak of
the explorer's Python allocations with ``tracemalloc`` (slower, so its time is
not reported).  The snapshot processes are the same in all variants; their
memory is not counted.

    python benchmarks/liveness_cost.py            # n = 3 and n = 4 resource managers
    python benchmarks/liveness_cost.py 3          # only n = 3
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))

import forkcheck as fc  # noqa: E402
from two_phase import two_phase  # noqa: E402

VARIANTS = {
    "safety only": {"live": False},
    "liveness, weak fairness": {"live": True, "fairness": "weak"},
    "liveness, strong fairness": {"live": True, "fairness": "strong"},
    "liveness, no fairness": {"live": True, "fairness": "none"},
}


@fc.model
def two_phase_live(n=3, live=True):
    """TwoPhase, plus: every resource manager eventually commits or aborts."""
    view = two_phase.fn(n)
    if live:
        rm = view["rm_state"]
        tm = view["tm"]
        fc.eventually(lambda: all(s in ("committed", "aborted") for s in rm.values()), name="all decided")
        fc.leads_to(lambda: tm["state"] == "committed", lambda: all(s == "committed" for s in rm.values()),
                    name="commit reaches every RM")
    return view


def run_one(n: int, variant: str, trace_memory: bool) -> dict:
    """One check in this (fresh) process; the time of the liveness analysis is measured apart."""
    from forkcheck._check import liveness as _liveness

    spent = {"analyze": 0.0, "analyze_cpu": 0.0}
    real_analyze = _liveness.analyze

    def timed(search, properties):
        t, c = time.perf_counter(), time.process_time()
        real_analyze(search, properties)
        spent["analyze"] += time.perf_counter() - t
        spent["analyze_cpu"] += time.process_time() - c

    _liveness.analyze = timed
    kw = dict(VARIANTS[variant])
    live = kw.pop("live")
    # Import and warm up what a check loads lazily (the explorer, networkx's dispatch), so that the
    # traced peak is the check's own data in every variant, not the code objects of first imports.
    import networkx as nx

    import forkcheck._check.search  # noqa: F401

    list(nx.strongly_connected_components(nx.DiGraph([(0, 1)])))
    nx.single_source_shortest_path_length(nx.DiGraph([(0, 1)]), 0)
    if trace_memory:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    r = two_phase_live(n=n, live=live).check(strategy="bfs", **kw)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1] - base if trace_memory else None
    return {
        "states": r.stats.states, "transitions": r.stats.transitions, "seconds": seconds, "cpu_seconds": cpu,
        "analyze_seconds": spent["analyze"], "analyze_cpu_seconds": spent["analyze_cpu"], "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "traced_peak_bytes": peak, "violations": [v.name for v in r.violations],
    }


def in_fresh_process(n: int, variant: str, trace_memory: bool) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", str(n), variant, str(int(trace_memory))],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        print(json.dumps(run_one(int(argv[1]), argv[2], bool(int(argv[3])))))
        return
    sizes = [int(a) for a in argv] or [3, 4]
    print(f"python {platform.python_version()}, {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} cores, forkcheck {fc.__version__}; model two_phase, strategy bfs, jobs 1")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("time: wall clock of check(); cpu: CPU time of the explorer process (snapshot processes not counted);")
    print("analyze: CPU time of the liveness analysis alone; py peak: tracemalloc peak of the explorer's")
    print("Python allocations during check(), after warm-up imports (a separate run: tracemalloc is slow)")
    print(f"{'n':>2} {'variant':<26} {'states':>6} {'trans':>6} {'time s':>7} {'cpu s':>6} {'analyze s':>9} "
          f"{'peak RSS MiB':>12} {'py peak MiB':>11}  failing properties")
    for n in sizes:
        for variant in VARIANTS:
            a = in_fresh_process(n, variant, False)
            b = in_fresh_process(n, variant, True)
            result = ", ".join(a["violations"]) or "-"
            print(f"{n:>2} {variant:<26} {a['states']:>6} {a['transitions']:>6} {a['seconds']:>7.2f} "
                  f"{a['cpu_seconds']:>6.2f} {a['analyze_cpu_seconds']:>9.3f} {a['maxrss_kib'] / 1024:>12.1f} "
                  f"{b['traced_peak_bytes'] / 2**20:>11.2f}  {result}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main(sys.argv[1:])
