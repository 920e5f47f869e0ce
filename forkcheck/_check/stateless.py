"""A stateless explorer, for comparison: every schedule of an asyncio program run again from the start.

The explorer itself runs in a process of its own (``forkcheck._app.stateless``:
one fork of a fresh copy per schedule, as Python's other asyncio explorers run
one execution per schedule); :func:`count_schedules` starts it and reads what
it found, to set against the states ``check`` explores (``forkcheck bench
asyncio``, tests/test_asyncio.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from .. import _pickle
from .._errors import InternalError, UsageError
from .._model import Model, as_model

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Schedules:
    """What a stateless search found: ``schedules`` (each one run of the program), ``steps`` (callbacks run, all runs
    together), ``seconds``, and whether it ran them all (``complete``; ``limit`` stops it)."""

    schedules: int
    steps: int
    seconds: float
    complete: bool


def count_schedules(model: Model, max_deviations: int | None = None, limit: int | None = None,
                    timeout: float | None = None) -> Schedules:
    """Run every schedule of the asyncio program ``model`` once, without merging states.

    A schedule ends where a path of ``check`` ends: the program's end, a
    violation, a deadlock.  With ``max_deviations``, schedules take at most
    that many deviations from FIFO.  ``limit`` stops after that many.
    """
    model = as_model(model)
    if model.program != "asyncio":
        raise UsageError(f"count_schedules runs asyncio programs (@fc.asyncio_model); {model!r} is a @fc.model")
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"  # as in the snapshot processes
    env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    blob = _pickle.dumps((model, max_deviations, limit))
    proc = subprocess.run([sys.executable, "-m", "forkcheck._app.stateless"], input=blob, env=env,
                          capture_output=True, timeout=timeout, cwd=os.getcwd())
    if proc.returncode != 0:
        raise InternalError(f"the stateless explorer failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    d = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return Schedules(d["schedules"], d["steps"], d["seconds"], d["complete"])
