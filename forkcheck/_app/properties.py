"""Liveness properties as a model declares them, inside the snapshot process.

:func:`eventually`, :func:`always_eventually`, :func:`leads_to` and
:func:`sometimes` append a small :class:`_Property` to ``World.liveness``
during setup.  Its predicates are evaluated in every state (``serve.make_report``
sends them as the report's ``labels``) and its :meth:`_Property.spec` tells
the explorer what to check; the analysis is ``forkcheck._check.liveness``.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable
from typing import Any

from .._errors import UsageError
from .runtime import _callable_name, current_world

__all__ = ["eventually", "always_eventually", "leads_to", "sometimes"]


class _Property:
    """A declared liveness property: what ``World.liveness`` holds.

    ``labels()`` evaluates the predicates in the current state; ``spec()`` is
    the picklable ``(kind, name, keys)`` the explorer checks; the fingerprint
    sees only the predicates (their closures are state, as for invariants).
    """

    __slots__ = ("kind", "name", "keys", "preds")

    def __init__(self, kind: str, name: str, keys: tuple[str, ...], preds: tuple[Callable[[], Any], ...]) -> None:
        self.kind = kind
        self.name = name
        self.keys = keys
        self.preds = preds

    def labels(self) -> dict[str, bool]:
        return {key: bool(pred()) for key, pred in zip(self.keys, self.preds)}

    def spec(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.kind, self.name, self.keys)

    def __fc_state__(self):
        return self.preds

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name!r}>"


def _default_name(fn: Any) -> str:
    """``lambda: <its body>`` when the source is at hand (two lambdas on a line stay apart), else its name."""
    code = getattr(fn, "__code__", None)
    if getattr(fn, "__name__", None) == "<lambda>" and code is not None:
        try:
            pos = [p for p in code.co_positions() if None not in p and p[2:] != (0, 0)]  # (0, 0): RESUME
            (l0, c0), (l1, c1) = min((p[0], p[2]) for p in pos), max((p[1], p[3]) for p in pos)
            lines = [linecache.getline(code.co_filename, n).encode() for n in range(l0, l1 + 1)]  # columns count bytes
            if all(lines):
                lines[-1] = lines[-1][:c1]
                lines[0] = lines[0][c0:]
                body = " ".join(part.decode(errors="replace").strip() for part in lines)
                if body:
                    return f"lambda: {body}"[:80]
        except (ValueError, IndexError):  # pragma: no cover - odd code objects: fall back to the plain name
            pass
    return _callable_name(fn)


def _declare(kind: str, preds: tuple, name: str | None, default_name: Callable[[], str]) -> None:
    what = f"fc.{kind}()"
    world = current_world(what)
    for pred in preds:
        if not callable(pred):
            raise UsageError(f"{what} needs zero-argument callables, got {type(pred).__name__}: write {what[:-1]}lambda: ...)")
    if not world.in_setup:
        raise UsageError(f"{what} must be called in the model's setup function, not inside an actor")
    if name is not None and (not isinstance(name, str) or not name):
        raise UsageError(f"{what} got name={name!r}: give a non-empty string, or leave it out")
    name = name or default_name()
    keys = (name,) if len(preds) == 1 else (f"{name} [p]", f"{name} [q]")
    for other in world.liveness:
        if other.name == name or set(other.keys) & set(keys):
            raise UsageError(f"{what}: a liveness property named {name!r} is already declared; give each one its own name=")
    world.liveness.append(_Property(kind, name, keys, preds))


def eventually(pred: Callable[[], Any], name: str | None = None) -> None:
    """Declare that every run reaches a state where ``pred()`` is true.

    Call it in the setup function.  A run that loops forever (under the
    ``fairness`` of :meth:`forkcheck.Model.check`) or ends without ever
    reaching such a state is a violation of kind ``"liveness"``, with a lasso
    trace whose loop starts at ``trace.cycle_start``.

    Parameters
    ----------
    pred : callable
        Zero-argument predicate over the model state, evaluated in every state.
    name : str, optional
        The property's name in violations (default: the predicate's name or
        source); names must be unique among liveness properties.

    Raises
    ------
    forkcheck.UsageError
        Outside a model's setup function, or if ``pred`` is not callable.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def hog():
    ...     s = {"done": False}
    ...     async def spinner():
    ...         while True:
    ...             await fc.checkpoint()
    ...     async def worker():
    ...         await fc.checkpoint()
    ...         s["done"] = True
    ...     fc.spawn(spinner); fc.spawn(worker)
    ...     fc.eventually(lambda: s["done"], name="worker done")
    >>> hog.check().ok                       # weak fairness: the worker moves
    True
    >>> v = hog.check(fairness="none").violations[0]
    >>> v.kind, v.name, v.trace.cycle_start, [s.actor for s in v.trace]
    ('liveness', 'worker done', 0, ['spinner'])
    """
    _declare("eventually", (pred,), name, lambda: _default_name(pred))


def always_eventually(pred: Callable[[], Any], name: str | None = None) -> None:
    """Declare that ``pred()`` holds infinitely often on every run.

    A run that from some point on stays forever in states where ``pred`` is
    false is a violation.  A finite run (every actor returned) satisfies it
    when ``pred`` holds in its last state.

    Parameters
    ----------
    pred : callable
        Zero-argument predicate over the model state.
    name : str, optional
        The property's name (default: the predicate's name or source).

    Raises
    ------
    forkcheck.UsageError
        Outside a model's setup function, or if ``pred`` is not callable.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def blinker():
    ...     s = {"on": False}
    ...     async def toggle():
    ...         while True:
    ...             s["on"] = not s["on"]
    ...             await fc.checkpoint()
    ...     fc.spawn(toggle)
    ...     fc.always_eventually(lambda: s["on"], name="light on")
    >>> blinker.check().ok
    True
    """
    _declare("always_eventually", (pred,), name, lambda: _default_name(pred))


def leads_to(p: Callable[[], Any], q: Callable[[], Any], name: str | None = None) -> None:
    """Declare that whenever ``p()`` holds, ``q()`` holds then or later.

    A run with a state where ``p`` holds, after which ``q`` is false forever
    (a fair loop, or the end of a finite run), is a violation.

    Parameters
    ----------
    p, q : callable
        Zero-argument predicates over the model state.
    name : str, optional
        The property's name (default: ``"<p> leads to <q>"``).

    Raises
    ------
    forkcheck.UsageError
        Outside a model's setup function, or if ``p`` or ``q`` is not callable.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def greedy():
    ...     lock = fc.Lock("L")
    ...     s = {"wants": False, "got": False}
    ...     async def hog():
    ...         while True:
    ...             async with lock:
    ...                 await fc.checkpoint()
    ...     async def polite():
    ...         s["wants"] = True
    ...         async with lock:
    ...             s["got"] = True
    ...     fc.spawn(hog); fc.spawn(polite)
    ...     fc.leads_to(lambda: s["wants"], lambda: s["got"], name="polite gets the lock")
    >>> greedy.check().violations[0].message.split(":")[0]
    "leads_to 'polite gets the lock' fails"
    >>> greedy.check(fairness="strong").ok   # polite is enabled infinitely often
    True
    """
    _declare("leads_to", (p, q), name, lambda: f"{_default_name(p)} leads to {_default_name(q)}")


def sometimes(pred: Callable[[], Any], name: str | None = None) -> None:
    """Ask for a witness: a reachable state where ``pred()`` is true.

    Not a requirement, so never a violation: ``result.discoveries[name]`` is
    a shortest path (in the explored graph) to such a state, or ``None`` if no
    explored state satisfies it.  The trace of the initial state is empty
    (and so falsy): compare with ``None``.

    Parameters
    ----------
    pred : callable
        Zero-argument predicate over the model state.
    name : str, optional
        The key in ``discoveries`` (default: the predicate's name or source).

    Raises
    ------
    forkcheck.UsageError
        Outside a model's setup function, or if ``pred`` is not callable.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def dice():
    ...     s = {"sum": 0}
    ...     async def roll():
    ...         die = await fc.choose([1, 2, 3])
    ...         s["sum"] += die
    ...     fc.spawn(roll); fc.spawn(roll)
    ...     fc.sometimes(lambda: s["sum"] == 6, name="double three")
    ...     fc.sometimes(lambda: s["sum"] == 7, name="seven")
    >>> r = dice.check()
    >>> [s.label for s in r.discoveries["double three"]], r.discoveries["seven"]
    (['choose 3', 'choose 3'], None)
    """
    _declare("sometimes", (pred,), name, lambda: _default_name(pred))
