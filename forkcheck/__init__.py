"""forkcheck: model-check simulated concurrent and distributed Python programs.

Every state of the execution graph is a live, stopped, forked process, so
unmodified coroutines are explored without copying or pickling them.

This module is the public face, and the only one: every public name is
re-exported here (``X as X``, so that type checkers see the re-export), and
its ``__module__`` says ``forkcheck``.  What runs inside the snapshot
processes lives in ``forkcheck._app``, the explorer in ``forkcheck._check``;
the names that need the explorer (trio, networkx) load on first use, so that
a snapshot process, which imports this module too, maps only what it runs.

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

from __future__ import annotations

from typing import TYPE_CHECKING, Any as _Any

from ._app.fingerprint import register_state as register_state
from ._app.primitives import Event as Event
from ._app.primitives import Lock as Lock
from ._app.primitives import Mailbox as Mailbox
from ._app.primitives import Network as Network
from ._app.primitives import Semaphore as Semaphore
from ._app.properties import always_eventually as always_eventually
from ._app.properties import eventually as eventually
from ._app.properties import leads_to as leads_to
from ._app.properties import sometimes as sometimes
from ._app.runtime import TIMEOUT as TIMEOUT
from ._app.runtime import checkpoint as checkpoint
from ._app.runtime import choose as choose
from ._app.runtime import constraint as constraint
from ._app.runtime import invariant as invariant
from ._app.runtime import select as select
from ._app.runtime import spawn as spawn
from ._app.runtime import when as when
from ._app.symmetry import symmetric as symmetric
from ._errors import ForkcheckError as ForkcheckError
from ._errors import ForkcheckWarning as ForkcheckWarning
from ._errors import InternalError as InternalError
from ._errors import Interrupted as Interrupted
from ._errors import LivenessNotChecked as LivenessNotChecked
from ._errors import ModelError as ModelError
from ._errors import NondeterminismError as NondeterminismError
from ._errors import OpaqueStateError as OpaqueStateError
from ._errors import OpaqueStateWarning as OpaqueStateWarning
from ._errors import PropertyViolation as PropertyViolation
from ._errors import UnboundedWarning as UnboundedWarning
from ._errors import UsageError as UsageError
from ._model import Model as Model
from ._model import ModelFactory as ModelFactory
from ._model import asyncio_model as asyncio_model
from ._model import model as model

if TYPE_CHECKING:  # loaded on first use, below
    from ._check.options import CheckOptions as CheckOptions
    from ._notebook import Explorer as Explorer
    from ._notebook import Node as Node
    from ._results import CheckResult as CheckResult
    from ._results import MemoryStats as MemoryStats
    from ._results import Stats as Stats
    from ._results import Violation as Violation
    from ._trace import Replay as Replay
    from ._trace import ReplayStep as ReplayStep
    from ._trace import Step as Step
    from ._trace import Trace as Trace

__version__ = "0.1.0"

#: Public names that load on first use, and their modules: the notebook needs trio and networkx,
#: and options, results and traces belong to the explorer.
_LAZY = {
    "CheckOptions": "_check.options",
    "Explorer": "_notebook", "Node": "_notebook",
    "CheckResult": "_results", "MemoryStats": "_results", "Stats": "_results", "Violation": "_results",
    "Replay": "_trace", "ReplayStep": "_trace", "Step": "_trace", "Trace": "_trace",
}


def replay(model: _Any, token: _Any, *, transition_timeout: float = 30.0) -> Replay:
    """Re-execute a trace in a fresh process, without exploring.

    Each step is identified by its index among the transitions enabled in its
    state, and the state it leads to is checked against the fingerprint the
    trace recorded.  A step whose label or actor reads differently but leads
    to the recorded state (a repr or a name changed) is a note in
    ``Replay.notes``, not an error.

    Parameters
    ----------
    model : Model or model function
        The model, with the same arguments as when the trace was found.
    token : str or Trace
        A trace token (``violation.trace.token``) or the trace itself.
    transition_timeout : float
        Seconds a step (or the setup) may run, as in :meth:`Model.check`:
        give the replay what the check was given (``--transition-timeout``
        on the command line).

    Returns
    -------
    Replay
        The steps, each with the state after it; ``violations`` are those of
        the last state, ``cycle_start`` is where the loop of a lasso (a
        liveness counterexample) starts, ``notes`` what differed harmlessly.

    Raises
    ------
    NondeterminismError
        The trace no longer applies (a step's index is out of range, or it
        leads to another state than when the trace was found).
    ModelError
        A step reaches a state where the model is at fault (an invariant
        raised, ...); ``exc.replay`` holds the steps before it.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def coin():
    ...     async def flip():
    ...         side = await fc.choose(["heads", "tails"])
    ...         assert side == "heads"
    ...     fc.spawn(flip)
    >>> v = coin.check().violations[0]
    >>> [str(s.label) for s in fc.replay(coin, v.trace.token)]
    ["choose 'tails'"]
    """
    from ._check.search import replay as _replay

    return _replay(model, token, transition_timeout=transition_timeout)


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'forkcheck' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"forkcheck.{module}"), name)
    _public(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _public(obj: _Any, old: str | None = None) -> None:
    """Name ``obj`` as ``forkcheck.X``: in tracebacks, reprs, docs and pickles (trio's fix-up).

    A class's own methods move with it, so that doctest and the docs find
    them where they find the class.
    """
    if not isinstance(obj, type) and not callable(obj):
        return  # a value (fc.TIMEOUT): named by its module, pickled by its __reduce__
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str) or not module.startswith("forkcheck.") or (old is not None and module != old):
        return
    obj.__module__ = "forkcheck"
    if isinstance(obj, type):
        for attr in vars(obj).values():
            for fn in (attr, getattr(attr, "__func__", None), getattr(attr, "fget", None)):
                if isinstance(fn, (type(_public), type)):
                    _public(fn, module)


__all__ = [
    "CheckOptions",
    "CheckResult",
    "Event",
    "Explorer",
    "ForkcheckError",
    "ForkcheckWarning",
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
    "TIMEOUT",
    "Trace",
    "UnboundedWarning",
    "UsageError",
    "Violation",
    "always_eventually",
    "asyncio_model",
    "checkpoint",
    "choose",
    "constraint",
    "eventually",
    "invariant",
    "leads_to",
    "model",
    "register_state",
    "replay",
    "select",
    "sometimes",
    "spawn",
    "symmetric",
    "when",
]

for _name in __all__:
    if _name not in _LAZY:
        _public(globals()[_name])
del _name
