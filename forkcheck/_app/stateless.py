"""A stateless explorer of an asyncio program, for comparison: every schedule run again from the start.

Python's asyncio explorers (simloom, simloop, seedloop) work this way: no
store of visited states, one run of the program per schedule, each run
replaying a prefix of choices and then taking the first ones (an odometer).
This process does the same with forkcheck's controlled loop (``aio.py``):
for every schedule it forks a fresh copy of itself from before the program
started, runs the program along the schedule and reports the choices it met.
A schedule ends where a path of ``check`` ends: the program's end, a
violation (invariants included), or a deadlock; with a bound on deviations
it takes at most that many.

``python -m forkcheck._app.stateless`` reads ``cloudpickle((model, bound,
limit))`` on stdin and writes one JSON line: schedules, runs, steps, seconds,
complete.  ``forkcheck._check.stateless`` runs it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any


def _run(model: Any, prefix: list[int], bound: int | None, out: int) -> None:
    """In a fresh fork: run the program along ``prefix``, then first choices; write the choices met; exit."""
    from .aio import AioWorld, ControlledLoop

    taken: list[int] = []
    counts: list[list[int]] = []  # per choice point, the deviation of each option
    used = [0]

    def finish() -> None:
        os.write(out, json.dumps([taken, counts]).encode())
        os._exit(0)

    class Replayer(AioWorld):
        def decide(self, loop: ControlledLoop, choices: list[int]) -> int:
            self.loop = loop
            self.started = True
            self.check_invariants()
            if self.violations or self.model_error is not None or not choices:
                finish()  # a violation, a model error or a deadlock ends the schedule
            options = self._describe(loop, choices)
            devs = [o.deviation for o in options]
            k = len(taken)
            if k < len(prefix):
                i = prefix[k]
            else:
                i = next(j for j, d in enumerate(devs) if bound is None or used[0] + d <= bound)
            used[0] += devs[i]
            taken.append(i)
            counts.append(devs)
            return i

    world = Replayer(lambda w: None, lambda w, watched: None)
    world.setup(model.fn, model.args, model.kwargs)
    finish()


def _next(taken: list[int], counts: list[list[int]], bound: int | None) -> list[int] | None:
    """The odometer: the next schedule's prefix after ``taken``, or None when every schedule was run."""
    used = [0]
    for devs, i in zip(counts, taken):
        used.append(used[-1] + devs[i])
    for k in range(len(taken) - 1, -1, -1):
        devs = counts[k]
        for j in range(taken[k] + 1, len(devs)):
            if bound is None or used[k] + devs[j] <= bound:
                return taken[:k] + [j]
    return None


def _warnings() -> None:
    """As in a snapshot (serve.py): a coroutine never awaited is the program's error."""
    import warnings

    from . import runtime

    plain = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        world = runtime._WORLD
        if world is not None and issubclass(category, RuntimeWarning) and str(message).endswith("was never awaited"):
            world.unawaited_coroutine(str(message), filename, lineno)
            return
        plain(message, category, filename, lineno, file, line)

    warnings.filterwarnings("always", message=r"coroutine .* was never awaited", category=RuntimeWarning)
    warnings.showwarning = show


def main() -> None:
    from . import aio  # noqa: F401 - before the model's modules: it blocks asyncio's C accelerator
    import cloudpickle

    _warnings()
    model, bound, limit = cloudpickle.loads(sys.stdin.buffer.read())
    gc.collect()
    gc.freeze()  # as a snapshot's root does: a run's collections (one per callback) see only its own objects
    start = time.perf_counter()
    schedules = steps = 0
    prefix: list[int] | None = []
    complete = True
    while prefix is not None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the fork
            os.close(r)
            try:
                _run(model, prefix, bound, w)
            finally:
                os._exit(1)
        os.close(w)
        chunks = []
        while True:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        os.waitpid(pid, 0)
        if not chunks:
            raise RuntimeError(f"a run of schedule {prefix} died")
        taken, counts = json.loads(b"".join(chunks))
        schedules += 1
        steps += len(taken)
        if limit is not None and schedules >= limit:
            complete = False
            break
        prefix = _next(taken, counts, bound)
    print(json.dumps({"schedules": schedules, "runs": schedules, "steps": steps,
                      "seconds": time.perf_counter() - start, "complete": complete}))


if __name__ == "__main__":
    main()
