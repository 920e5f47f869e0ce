"""The last transition taken in place (search.IN_PLACE), off and on, in one run.

`forkcheck bench`'s section 0 (two_phase(n=3), DFS, jobs 1 and 2, seconds per
transition over the node fork floor measured before and after each model
run), run alternately with the internal switch off and on, ``--rounds`` times:
the machine drifts, so the two are compared in the same conditions.

    python benchmarks/in_place.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os

from forkcheck import _bench
from forkcheck._check import search


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    la = os.getloadavg()
    print(f"os.getloadavg() = ({la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f})", flush=True)
    cfg = _bench.MODES["quick"]  # two_phase(n=3), a floor of 500 round trips
    saved = search.IN_PLACE
    try:
        for _ in range(args.rounds):
            for on in (False, True):
                search.IN_PLACE = on
                print(f"\n### search.IN_PLACE = {on}", flush=True)
                _bench.bench_transitions(cfg, lambda line: print(line.lstrip("\n"), flush=True))
    finally:
        search.IN_PLACE = saved
    la = os.getloadavg()
    print(f"\nos.getloadavg() at the end = ({la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f})")


if __name__ == "__main__":
    main()
