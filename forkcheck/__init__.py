"""forkcheck: model-check simulated concurrent and distributed Python programs.

Every state of the execution graph is a live, stopped, forked process, so
unmodified coroutines are explored without copying or pickling them.

Examples
--------
>>> import forkcheck as fc
>>> @fc.model
... def lost_update():
...     state = {"n": 0}
...     async def inc():
...         tmp = state["n"]
...         await fc.checkpoint()
...         state["n"] = tmp + 1
...     fc.spawn(inc, name="a"); fc.spawn(inc, name="b")
...     return state
>>> r = lost_update.check()
>>> r.ok
True
"""

from ._errors import (
    ForkcheckError,
    InternalError,
    Interrupted,
    ModelError,
    NondeterminismError,
    OpaqueStateError,
    OpaqueStateWarning,
    PropertyViolation,
    UsageError,
)
from ._check.liveness import LivenessNotChecked, always_eventually, eventually, leads_to, sometimes
from ._app.fingerprint import register_state
from ._model import Model, ModelFactory, model
from ._app.primitives import Event, Lock, Mailbox, Network, Semaphore
from ._results import CheckResult, MemoryStats, Stats, Violation
from ._app.runtime import checkpoint, choose, invariant, spawn, when
from ._trace import Replay, ReplayStep, Step, Trace

__version__ = "0.1.0"


def replay(model, token):  # noqa: D103 - documented in _explorer.replay
    from ._check.search import replay as _replay

    return _replay(model, token)


def __getattr__(name: str):
    # The notebook layer needs trio and networkx; snapshot processes import forkcheck too,
    # and must stay small (fewer pages to map at every fork), so it loads on first use.
    if name in ("Explorer", "Node"):
        from . import _notebook

        return getattr(_notebook, name)
    raise AttributeError(f"module 'forkcheck' has no attribute {name!r}")


replay.__doc__ = """Re-execute a trace token in a fresh process; see ``forkcheck._check.search.replay``."""

__all__ = [
    "CheckResult",
    "Event",
    "Explorer",
    "ForkcheckError",
    "InternalError",
    "Interrupted",
    "LivenessNotChecked",
    "Lock",
    "Mailbox",
    "MemoryStats",
    "Model",
    "ModelError",
    "ModelFactory",
    "Network",
    "Node",
    "NondeterminismError",
    "OpaqueStateError",
    "OpaqueStateWarning",
    "PropertyViolation",
    "Replay",
    "ReplayStep",
    "Semaphore",
    "Stats",
    "Step",
    "Trace",
    "UsageError",
    "Violation",
    "always_eventually",
    "checkpoint",
    "choose",
    "eventually",
    "invariant",
    "leads_to",
    "model",
    "register_state",
    "replay",
    "sometimes",
    "spawn",
    "when",
]
