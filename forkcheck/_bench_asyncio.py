"""``forkcheck bench asyncio``: schedules a stateless explorer must run, against the states forkcheck explores.

For three unmodified asyncio programs it prints the number of schedules (one
run of the program each: what simloom, simloop or seedloop execute), the
time a stateless explorer takes to run them all (``forkcheck._app.stateless``,
which forks a fresh copy of the program per schedule), and the states,
transitions and time of ``check``, which merges equal states reached by
different schedules.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import forkcheck as fc


@fc.asyncio_model
async def lost_update(n=3):
    """n increments that read, await and write a shared counter (a lost update)."""
    counter = {"x": 0}

    async def inc():
        tmp = counter["x"]
        await asyncio.sleep(0)
        counter["x"] = tmp + 1

    await asyncio.gather(*(inc() for _ in range(n)))


@fc.asyncio_model
async def increments(n=3):
    """n atomic increments between awaits: they commute."""
    state = {"x": 0}

    async def inc():
        await asyncio.sleep(0)
        state["x"] += 1

    await asyncio.gather(*(inc() for _ in range(n)))
    assert state["x"] == n


@fc.asyncio_model
async def pipeline(n=2):
    """A producer, a bounded queue and two consumers, with task_done and join."""
    q = asyncio.Queue(maxsize=1)
    got = []

    async def consumer():
        while True:
            got.append(await q.get())
            q.task_done()

    workers = [asyncio.create_task(consumer()) for _ in range(2)]
    for i in range(n):
        await q.put(i)
    await q.join()
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert sorted(got) == list(range(n))


MODES = {
    "smoke": [(lost_update, {"n": 2}), (increments, {"n": 2}), (pipeline, {"n": 1})],
    "full": [(lost_update, {"n": 3}), (increments, {"n": 3}), (pipeline, {"n": 3})],
}


def row(factory: Any, kwargs: dict) -> dict:
    """One program: the stateless explorer's schedules and time, forkcheck's states, transitions and time."""
    from ._check.stateless import count_schedules

    model = factory(**kwargs)
    s = count_schedules(model)
    r = model.check(stop_on_violation=False)
    return {"program": repr(model), "schedules": s.schedules, "stateless_steps": s.steps,
            "stateless_seconds": s.seconds, "states": r.stats.states, "transitions": r.stats.transitions,
            "forkcheck_seconds": r.stats.seconds, "violations": [v.kind for v in r.violations]}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="forkcheck bench asyncio", description="Schedules a stateless explorer runs "
                                "against the states forkcheck explores, for three asyncio programs.")
    p.add_argument("--smoke", action="store_true", help="the smallest programs, for tests (under a minute)")
    p.add_argument("--out", default=None, help="also write the rows as JSON to this file")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    la = os.getloadavg()
    print(f"# forkcheck bench asyncio ({'smoke' if args.smoke else 'full'}); os.getloadavg() = "
          f"({la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f})" + ("  -- shared machine: timings are noisy" if la[0] > 2 else ""),
          flush=True)
    head = f"{'program':<22} {'schedules':>9} {'stateless s':>11} {'states':>7} {'transitions':>11} {'forkcheck s':>11}"
    print(head)
    rows = []
    t0 = time.perf_counter()
    for factory, kwargs in MODES["smoke" if args.smoke else "full"]:
        r = row(factory, kwargs)
        rows.append(r)
        print(f"{r['program']:<22} {r['schedules']:>9} {r['stateless_seconds']:>11.2f} {r['states']:>7} "
              f"{r['transitions']:>11} {r['forkcheck_seconds']:>11.2f}", flush=True)
    print(f"schedules: runs of the program a stateless explorer makes (each from the start); states and transitions: "
          f"what forkcheck explores, equal states merged; total {time.perf_counter() - t0:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
