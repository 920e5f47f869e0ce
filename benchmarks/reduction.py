"""States, transitions and seconds of each reduction, side by side, with the ratio to the full search.

Models (all explored to the end: ``stop_on_violation=False``, BFS (the default strategy), default options otherwise):

* ``philosophers``: examples/dining_philosophers.py, n = 3..6.  The forks are
  one list every philosopher reaches, and the invariant reads a set that
  every philosopher writes: the reductions see them as shared state;
* ``philosophers (own forks)``: the same philosophers, each handed its two
  forks, no shared list and no invariant (``own_forks`` below);
* ``two_phase_mailboxes``: examples/two_phase_mailboxes.py, two-phase commit
  over mailboxes, n = 3..5 resource managers;
* ``two_phase``: examples/two_phase.py (TLA+'s TwoPhase, n = 3), whose actors
  all read and write the same dicts and set.

The floor is the raw Python fork round trip of this machine (fork, one byte
through a pipe, exit, wait), measured again before each model, since the load
of a shared machine varies: a transition costs at least one.  ``ms/tr`` is
seconds per transition taken, ``x floor`` that over the model's floor; ``x
none`` the ratio of states, transitions and seconds to the full search of the
same model, run just before.

    python benchmarks/reduction.py            # everything (about 30 minutes on 2 loaded cores)
    python benchmarks/reduction.py --quick    # the smallest size of each model
"""

from __future__ import annotations

import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))

import forkcheck as fc  # noqa: E402
from dining_philosophers import philosophers  # noqa: E402
from two_phase import two_phase  # noqa: E402
from two_phase_mailboxes import two_phase_mailboxes  # noqa: E402

from forkcheck._bench import py_fork_floor  # noqa: E402

REDUCTIONS = ("none", "sleep", "por")


@fc.model
def own_forks(n=3):
    """Dining philosophers, each handed its own two forks: the deadlock, with nothing else shared."""
    forks = tuple(fc.Lock(f"fork{i}") for i in range(n))

    async def philosopher(left, right):
        while True:
            async with left:
                async with right:
                    await fc.checkpoint()  # eat
            await fc.checkpoint()  # think

    for i in range(n):
        fc.spawn(philosopher, forks[i], forks[(i + 1) % n], name=f"phil{i}")


def cases(quick: bool) -> list[tuple[str, fc.Model]]:
    out: list[tuple[str, fc.Model]] = []
    for n in (3,) if quick else (3, 4, 5, 6):
        out.append((f"philosophers(n={n})", philosophers(n=n)))
    for n in (3,) if quick else (3, 4, 5, 6):
        out.append((f"own_forks(n={n})", own_forks(n=n)))
    for n in (3,) if quick else (3, 4, 5):
        out.append((f"two_phase_mailboxes(n={n})", two_phase_mailboxes(n=n)))
    out.append(("two_phase(n=3)", two_phase(n=3)))
    return out


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
          f"Python {platform.python_version()}, forkcheck {fc.__version__}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("BFS (the default strategy), stop_on_violation=False; x none: states / transitions / seconds as a fraction of reduction='none'")
    print("floor: raw Python fork-and-pipe round trip, measured before each model")
    print(f"{'model':<26}{'reduction':<10}{'states':>8}{'trans':>8}{'skipped':>8}{'seconds':>9}{'ms/tr':>7}"
          f"{'x floor':>8}   {'x none (states trans secs)':<28}verdicts")
    t0 = time.perf_counter()
    for name, model in cases(quick):
        floor = py_fork_floor(0, 300)
        print(f"{name}: floor {floor * 1e3:.2f} ms, load average {os.getloadavg()[0]:.2f}")
        base = None
        for red in REDUCTIONS:
            r = model.check(reduction=red, stop_on_violation=False)
            s = r.stats
            verdicts = ", ".join(sorted({f"{v.kind} {v.name}" if v.kind != "deadlock" else "deadlock"
                                         for v in r.violations})) or "-"
            if base is None:
                base = s
            per = s.seconds / max(1, s.transitions)
            ratio = f"{s.states / base.states:.2f} {s.transitions / base.transitions:.2f} {s.seconds / base.seconds:.2f}"
            print(f"{name:<26}{red:<10}{s.states:>8}{s.transitions:>8}{s.skipped:>8}{s.seconds:>9.2f}"
                  f"{per * 1e3:>7.2f}{per / floor:>8.1f}   {ratio:<28}{verdicts}", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s; load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main(sys.argv[1:])
