"""States, transitions and seconds of two_phase(n) with and without symmetry, next to the fork floor.

The model is examples/two_phase.py (TLA+'s TwoPhase) with its resource
managers declared ``fc.symmetric`` (``symmetric=True``).  Each n is checked
with symmetry (one state per orbit of the managers) and without
(``symmetry=False``: every state, as TLC finds them).  The search without
symmetry grows as 4^n and stops at ``--budget`` seconds: its row then says
how far it got, next to the spec's own counts from a plain-Python search of
the spec (``two_phase_spec`` of tests/symmetry_models.py, which
tests/test_symmetry.py checks against forkcheck's unreduced search); nothing is extrapolated.
The floor (a raw Python fork-and-pipe round trip) and the load average are
measured in the same run.  A last table times the fingerprint of one state in
this process (CPU time of 200 fingerprints of the state after 4 transitions,
with the C walk), with symmetry and with ``symmetry=False``.

    python benchmarks/symmetry.py                 # n = 3..7, jobs=1, 300 s budget without symmetry
    python benchmarks/symmetry.py 3 4 --jobs 2 --budget 60
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from two_phase import two_phase  # noqa: E402

from forkcheck._bench import py_fork_floor  # noqa: E402


def spec_counts(n: int, symmetric: bool) -> tuple[int, int]:
    from symmetry_models import two_phase_spec

    return two_phase_spec(n, symmetric)


def fingerprint_cpu(n: int, symmetry: bool, repeat: int = 200) -> float:
    """CPU seconds of one fingerprint of a two_phase(n, symmetric=True) state, computed in this process."""
    from forkcheck._app import fingerprint, runtime

    w = runtime.World()
    w.symmetry_on = symmetry
    m = two_phase(n=n, symmetric=True)
    w.setup(m.fn, m.args, m.kwargs)
    for i in range(4):
        w.execute(len(w.enabled()) - 1 - (i % 3))
    fingerprint.state_fingerprint(w)
    t = time.process_time()
    for _ in range(repeat):
        fingerprint.state_fingerprint(w)
    runtime._WORLD = None
    return (time.process_time() - t) / repeat


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("n", type=int, nargs="*", default=[3, 4, 5, 6, 7])
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--budget", type=float, default=300.0, help="time limit of each search without symmetry (s)")
    args = p.parse_args()
    floor = py_fork_floor(0, 500)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
          f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}")
    print(f"floor: raw Python fork-and-pipe round trip {floor * 1e3:.2f} ms; jobs={args.jobs}")
    print(f"{'n':>2} {'symmetry':<9}{'states':>9}{'transitions':>13}{'seconds':>9}{'ms/trans':>9}{'x floor':>8}"
          f"   {'spec states':>11} {'orbits':>7}  note")
    for n in args.n:
        full, _ = spec_counts(n, False)
        orbits, _ = spec_counts(n, True)
        for symmetry in (True, False):
            r = two_phase(n=n, symmetric=True).check(symmetry=symmetry, jobs=args.jobs,
                                                      time_limit=None if symmetry else args.budget)
            s = r.stats
            per = s.seconds / max(1, s.transitions)
            note = "complete" if r.complete else "; ".join(r.incomplete)
            print(f"{n:>2} {'on' if symmetry else 'off':<9}{s.states:>9}{s.transitions:>13}{s.seconds:>9.1f}"
                  f"{per * 1e3:>9.2f}{per / floor:>8.1f}   {full:>11} {orbits:>7}  {note}", flush=True)
            assert r.ok, r.summary()
    print(f"{'n':>2} {'fingerprint CPU us, symmetry':>29} {'without':>8} {'ratio':>6}")
    for n in args.n + [9]:
        on, off = fingerprint_cpu(n, True), fingerprint_cpu(n, False)
        print(f"{n:>2} {on * 1e6:>29.0f} {off * 1e6:>8.0f} {on / off:>6.1f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
