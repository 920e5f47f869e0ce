"""The exception hierarchy: one root, user mistakes as subclasses that say what to do."""

from __future__ import annotations

__all__ = [
    "ForkcheckError",
    "UsageError",
    "ModelError",
    "OpaqueStateError",
    "ForkcheckWarning",
    "OpaqueStateWarning",
    "NondeterminismError",
    "PropertyViolation",
    "InternalError",
    "Interrupted",
    "LivenessNotChecked",
    "UnboundedWarning",
]


class ForkcheckError(Exception):
    """Root of every error forkcheck raises on purpose.

    Examples
    --------
    >>> import forkcheck as fc
    >>> issubclass(fc.UsageError, fc.ForkcheckError)
    True
    """


class UsageError(ForkcheckError, ValueError):
    """A forkcheck API was called the wrong way (bad option, bad value, wrong place)."""


class ModelError(ForkcheckError):
    """The model itself is malformed: its setup failed, an invariant raised, ..."""


class OpaqueStateError(ModelError):
    """The state holds an object whose contents the fingerprint cannot see.

    Without them, two states that differ only inside the object would be taken
    for one, and the search would stop early: a "no violation" that is not
    true.  The message names the object's type, where the state holds it, and
    the fixes: a ``__fc_state__`` method, :func:`forkcheck.register_state`, or
    ``check(opaque="distinct")``.
    """


class ForkcheckWarning(UserWarning):
    """Root of every warning forkcheck gives.

    A check collects its warnings and gives them when it returns, attributed
    to the line that called it (``Model.check``, ``Explorer.run``); the
    command line prints each as one ``forkcheck: warning: ...`` line.

    Examples
    --------
    >>> import forkcheck as fc
    >>> issubclass(fc.LivenessNotChecked, fc.ForkcheckWarning), issubclass(fc.ForkcheckWarning, UserWarning)
    (True, True)
    """


class OpaqueStateWarning(ForkcheckWarning):
    """With ``check(opaque="distinct")``: states hold an object the fingerprint cannot see.

    Each such state is kept apart from every other (it is never merged), so
    the counts grow and a search of a loop may not end without ``max_depth``,
    ``max_states`` or ``time_limit``.
    """


class LivenessNotChecked(ForkcheckWarning):
    """The graph was incomplete, so liveness properties were not judged (the message says why)."""


class UnboundedWarning(ForkcheckWarning):
    """The state space looks infinite: the depth grew with nearly every new state.

    Given once per check, after 1000 new states at least 900 of which were
    each deeper than any before (a counter that grows forever, a
    retransmission without a bound).  The check goes on; bound it with
    :func:`forkcheck.constraint` in the setup function, or ``max_depth``
    or ``max_states``.  It is a hint, not a verdict: a finite model with one
    long path gets it too.

    Examples
    --------
    >>> import warnings
    >>> import forkcheck as fc
    >>> @fc.model
    ... def counter():
    ...     state = {"seq": 0}
    ...     async def tick():
    ...         while True:
    ...             state["seq"] += 1
    ...             await fc.checkpoint()
    ...     fc.spawn(tick)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     r = counter.check(max_states=1500)
    >>> [w.category.__name__ for w in caught]
    ['UnboundedWarning']
    """


class NondeterminismError(ForkcheckError):
    """Re-executing a trace did not reproduce the states it recorded."""


#: The fix for code that is only slow, as every timeout message gives it (the API's keyword and the CLI's flag).
RAISE_TIMEOUT = "raise check(transition_timeout=...) / --transition-timeout"

#: What makes an actor nondeterministic outside forkcheck's control: the end of every message that says so.
OUTSIDE_THE_MODEL = "something outside the model (the clock, random outside fc.choose, id(), files, the environment)"


class InternalError(ForkcheckError):
    """Something inside forkcheck failed; this is a bug in forkcheck, please report it."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message} (this is a bug in forkcheck; please report it)")


class PropertyViolation(ForkcheckError, AssertionError):
    """Raised by :meth:`CheckResult.assert_ok` when a check found a violation.

    It is an ``AssertionError`` so that test runners report it as a failure, and
    its message shows the counterexample and a line that replays it.
    """

    def __init__(self, message: str, violations: list | None = None) -> None:
        super().__init__(message)
        self.violations = list(violations or [])


class Interrupted(KeyboardInterrupt):
    """A check was stopped by Ctrl-C or SIGTERM; ``result`` holds what it had found.

    It is a ``KeyboardInterrupt``, not a :class:`ForkcheckError`, so that
    ``except Exception`` does not swallow the user's Ctrl-C.  Every snapshot
    process has already ended when it is raised.
    """

    def __init__(self, result, signal_name: str = "SIGINT") -> None:
        super().__init__(f"check interrupted by {signal_name}: {result.summary()}")
        self.result = result
        self.signal_name = signal_name
