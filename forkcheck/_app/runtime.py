"""The simulation runtime that lives inside a snapshot process.

A :class:`World` holds the actors (coroutines) of one simulated program, the
properties declared by its setup function, and the transitions enabled in the
current state.  It never forks and never talks to the explorer: the snapshot
command loop (``_snapshot.py``) does that, and calls :meth:`World.report` and
:meth:`World.execute`.

Actors suspend only on forkcheck *requests* (subclasses of :class:`Request`):
an awaitable that yields itself to the scheduler.  Everything an actor does
between two requests is one atomic step.
"""

from __future__ import annotations

import enum
import functools
import inspect
import linecache
import os
import re
import sys
import traceback
import types
from collections.abc import Callable, Sequence
from typing import Any

from .. import _where
from .._errors import RAISE_TIMEOUT, UsageError
from .symmetry import Symmetric, holds_value_deep, leaked_name

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # forkcheck/, not forkcheck/_app/
_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep

#: The world of this process, set while a model is loaded (one per snapshot process).
_WORLD: World | None = None


def current_world(what: str) -> World:
    """The loaded world, or a UsageError naming ``what`` was called outside a model."""
    if _WORLD is None:
        raise UsageError(
            f"{what} was called outside a model: call it in a @forkcheck.model setup "
            "function or in an actor that setup spawned"
        )
    return _WORLD


class Stuck(BaseException):
    """Raised by the snapshot's timer (``serve.py``) in user code that ran past ``transition_timeout``.

    A ``BaseException``, so that ``except Exception`` in a model does not
    swallow it.  ``where`` says where the code was interrupted
    (``bank.py:9 (`lock.acquire()`)``).
    """

    def __init__(self, seconds: float, where: str) -> None:
        super().__init__(where)
        self.seconds = seconds
        self.where = where


def stuck_where(frame: types.FrameType | None) -> tuple[str, str]:
    """Where code interrupted in ``frame`` is, and the stack of the model's frames there.

    The place is the innermost frame of the model (not forkcheck's, not the
    standard library's), with its source line; when the innermost frame is in
    the standard library (``queue.get`` waiting in ``threading.py``), that
    function is named too.
    """
    if frame is None:
        return "?", ""
    stack = [f for f in traceback.extract_stack(frame) if not f.filename.startswith(_PACKAGE_DIR)]
    if not stack:
        return "forkcheck's own code", ""
    inner = stack[-1]
    users = [f for f in stack if not f.filename.startswith(_STDLIB)]
    user = users[-1] if users else inner
    text = _where.short(f"{user.filename}:{user.lineno}")
    if user.line:
        text += f" (`{user.line.strip()}`)"
    if user is not inner:
        text += f", in {inner.name} at {_where.short(f'{inner.filename}:{inner.lineno}')}"
    details = "Stack when interrupted (most recent call last):\n" + "".join(traceback.format_list(stack))
    return text, details


#: What a step may block on, as the timer's messages say it (``World.blocking``; aio.py says asyncio's).
BLOCK_ON = "Actors may block only on forkcheck's primitives (fc.Lock, fc.Mailbox, fc.when, ...)"


def stuck_message(who: str, seconds: float, where: str, what: str = "reach its next await", more: str = "",
                  blocking: str = BLOCK_ON) -> str:
    """The one line that says user code is stuck: who, for how long, where, and what to do."""
    return (f"{who} did not {what} within {seconds:g}s: stuck at {where}{more}. A blocking call (a threading lock held "
            f"across an await, time.sleep, I/O, input()) or an endless loop? {blocking}; if it is just slow, "
            + RAISE_TIMEOUT)


# --------------------------------------------------------------------------- requests


class Request:
    """Something an actor awaits; the scheduler completes it as one transition.

    Subclasses implement :meth:`options` (the enabled completions in this state,
    as ``(label, payload)`` pairs; empty means blocked) and :meth:`complete`
    (apply the chosen completion and return the value the ``await`` evaluates to).

    A request must be awaited in the step that creates it: one created and not
    awaited by the end of the step (``fc.checkpoint()`` without ``await``) is
    an error naming where it was created, since it silently does nothing (the
    interleaving point the model meant is not there).  One stored and awaited
    in a later step is an error too: which state it belongs to is unclear.
    """

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Request:
        req = object.__new__(cls)
        world = _WORLD
        if world is not None:
            # Where it was made, cheaply: the caller of the factory (fc.checkpoint(), box.get(), ...).
            # The code object and instruction offset are enough; the line is looked up only to report.
            try:
                f = sys._getframe(2)
            except ValueError:  # pragma: no cover - made at the top of the stack
                f = sys._getframe(1)
            world.made.append((req, f.f_code, f.f_lasti))
        return req

    def __await__(self):
        return (yield self)

    def options(self, world: World, actor: Actor) -> list[tuple[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def complete(self, world: World, actor: Actor, payload: Any) -> Any:
        return payload

    def describe(self) -> str:
        """What the actor waits for, for humans."""
        return type(self).__name__.lower()


class _Checkpoint(Request):
    __slots__ = ()

    def options(self, world, actor):
        return [("checkpoint", None)]

    def describe(self):
        return "checkpoint"

    def __fc_state__(self):
        return "checkpoint"


class _Choose(Request):
    __slots__ = ("choices", "names")

    def __init__(self, choices, names=None):
        self.choices = choices
        self.names = names  # None, a callable option -> str, or a sequence of str (see choose())

    def _evaluate(self) -> Sequence:
        opts = self.choices() if callable(self.choices) else self.choices
        _check_sequence(opts, "the callable given to fc.choose() returned" if callable(self.choices) else "fc.choose() got")
        if not isinstance(opts, Sequence):  # a symmetric set: its values
            opts = tuple(opts)
        return opts

    def _texts(self, opts: Sequence) -> list[str]:
        names = self.names
        texts = []
        if names is None:
            for o in opts:  # a loop: a comprehension would make a function object per state
                texts.append(label_text(o))
        elif callable(names):
            for o in opts:
                text = names(o)
                if not isinstance(text, str):
                    raise UsageError(f"fc.choose(label=...) returned {type(text).__name__} {short_repr(text)} for "
                                     f"option {label_text(o)}: the label callable must return a str")
                texts.append(text)
        else:
            if len(names) != len(opts):
                raise UsageError(f"fc.choose(label=[...]) has {len(names)} names for {len(opts)} options: "
                                 "give one name per option, or a callable that names each option")
            texts = list(names)
        return texts

    def options(self, world, actor):
        opts = self._evaluate()
        texts = self._texts(opts)
        # Options that read alike (two objects of one class, two bound methods of one name) are told
        # apart by their position in the options, which is the same in every process and every run.
        counts: dict[str, int] = {}
        for text in texts:
            counts[text] = counts.get(text, 0) + 1
        out = []
        for k in range(len(texts)):
            text = texts[k]
            if counts[text] > 1:
                text = f"{text[:-1]} #{k}>" if text.endswith(">") else f"{text} #{k}"
            out.append((f"choose {text}", opts[k]))
        return out

    def describe(self):
        return "choose"

    def __fc_state__(self):
        # The names are not state: they change what a transition is called, never what it does.
        return ("choose", self.choices)


class _When(Request):
    __slots__ = ("predicate",)

    def __init__(self, predicate):
        self.predicate = predicate

    def options(self, world, actor):
        return [(f"when {_callable_name(self.predicate)}", None)] if self.predicate() else []

    def describe(self):
        return f"when {_callable_name(self.predicate)}"

    def __fc_state__(self):
        return ("when", self.predicate)


class _Timeout:
    """``fc.TIMEOUT``: what a receive that timed out returns (``box.get(timeout=True)``, ``fc.select``).

    A single object, the same in every snapshot process: compare with ``is``.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def impatient():
    ...     box = fc.Mailbox("box")
    ...     async def waiter():
    ...         msg = await box.get(timeout=True)
    ...         assert msg is not fc.TIMEOUT, "gave up waiting"
    ...     fc.spawn(waiter)
    >>> impatient.check().violations[0].message
    'assertion failed in actor waiter: gave up waiting'
    """

    def __repr__(self) -> str:
        return "fc.TIMEOUT"

    def __reduce__(self) -> str:
        return "TIMEOUT"  # pickled by name: the module's one TIMEOUT

    def __copy__(self) -> _Timeout:
        return self

    def __deepcopy__(self, memo: dict) -> _Timeout:
        return self

    def __fc_state__(self) -> str:
        return "TIMEOUT"


TIMEOUT = _Timeout()
"""What a receive that timed out returns: ``if msg is fc.TIMEOUT: ...``.

``box.get(timeout=True)``, ``net.recv(dst, timeout=True)`` and
``fc.select(..., timeout=True)`` (as ``(None, fc.TIMEOUT)``) give it on
their timeout transition, which is enabled in every state.
"""


class _Select(Request):
    __slots__ = ("requests", "timeout")

    def __init__(self, requests, timeout):
        self.requests = requests
        self.timeout = timeout

    def options(self, world, actor):
        out = []
        for k in range(len(self.requests)):  # loops: a comprehension would make a function object per state
            for label, payload in self.requests[k].options(world, actor):
                out.append((label, (k, payload)))
        if self.timeout:
            out.append(("select -> TIMEOUT", (None, TIMEOUT)))
        # Alternatives that read alike (two checkpoints) are told apart by their position.
        counts: dict[str, int] = {}
        for label, _ in out:
            counts[label] = counts.get(label, 0) + 1
        for j in range(len(out)):
            label, payload = out[j]
            if counts[label] > 1:
                out[j] = (f"{label} #{j}", payload)
        return out

    def complete(self, world, actor, payload):
        k, inner = payload
        if k is None:
            return (None, TIMEOUT)
        return (k, self.requests[k].complete(world, actor, inner))

    def describe(self):
        parts = []
        for r in self.requests:
            parts.append(r.describe())
        if self.timeout:
            parts.append("timeout")
        return f"select({', '.join(parts)})"

    def __fc_state__(self):
        return ("select", self.requests, self.timeout)


def select(*requests: Request, timeout: bool = False) -> Request:
    """Wait for the first of several requests: ``k, value = await fc.select(a.get(), b.get())``.

    One transition per completion of each request that is enabled (a
    message of either mailbox, a free lock, a true condition...), in the
    order given.  Awaiting it gives ``(k, value)``: the position of the
    request that completed and what awaiting it alone would have given;
    the others are dropped, as if never made.  With ``timeout=True`` one
    more transition is always enabled, which gives ``(None, fc.TIMEOUT)``.

    Parameters
    ----------
    *requests : Request
        Requests made and not awaited: ``box.get()``, ``net.recv(dst)``,
        ``lock.acquire()``, ``sem.acquire()``, ``ev.wait()``, ``fc.when(...)``,
        ``fc.checkpoint()``, ``fc.choose(...)``, another ``fc.select(...)``.
    timeout : bool
        Whether giving up is an alternative, enabled in every state (see
        "Timeouts" in docs/guide.md for why it is not only enabled when
        nothing else is).

    Returns
    -------
    Request
        Awaiting it gives ``(k, value)``, or ``(None, fc.TIMEOUT)``.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def two_inboxes():
    ...     data, control = fc.Mailbox("data"), fc.Mailbox("control")
    ...     async def producer():
    ...         data.put(1)
    ...         control.put("stop")
    ...     async def consumer():
    ...         k, msg = await fc.select(data.get(), control.get())
    ...         assert k == 0, f"control came first: {msg}"
    ...     fc.spawn(producer); fc.spawn(consumer)
    >>> r = two_inboxes.check()
    >>> [s.label for s in r.violations[0].trace]
    ["get control -> 'stop'"]
    """
    world = current_world("fc.select()")
    if not isinstance(timeout, bool):
        raise UsageError(f"fc.select(timeout={timeout!r}): give True (giving up is an alternative) or False")
    if not requests and not timeout:
        raise UsageError("fc.select() got no request: give the requests to wait for, "
                         "e.g. fc.select(box.get(), net.recv(dst))")
    for k, r in enumerate(requests):
        if not isinstance(r, Request):
            raise UsageError(f"fc.select() got {type(r).__name__} {short_repr(r)} as alternative {k}: give requests "
                             "made and not awaited, such as box.get(), net.recv(dst), lock.acquire(), ev.wait(), "
                             "fc.when(lambda: ...)")
        for other in requests[:k]:
            if other is r:
                raise UsageError(f"fc.select() got the same request twice (alternative {k}): make each one anew")
    # The requests are the select's, awaited through it: not each one in its step.
    made = world.made
    kept = []
    for m in made:
        mine = False
        for r in requests:
            if m[0] is r:
                mine = True
        if not mine:
            kept.append(m)
    made[:] = kept
    return _Select(tuple(requests), timeout)


def _check_sequence(opts, prefix: str) -> None:
    if type(opts) is Symmetric:
        return  # fc.choose(RM): one transition per value
    if isinstance(opts, (set, frozenset, dict)) or not isinstance(opts, Sequence) or isinstance(opts, (str, bytes)):
        hint = " (sets and dicts have no deterministic order: pass sorted(...) or a list)" if isinstance(opts, (set, frozenset, dict)) else ""
        raise UsageError(f"{prefix} {type(opts).__name__} {short_repr(opts)}: options must be a list, tuple or range{hint}")


def choose(options: Sequence | Callable[[], Sequence], label: Sequence[str] | Callable[[Any], str] | None = None) -> Request:
    """Nondeterministic choice: ``await fc.choose(options)`` returns one element.

    The explorer takes one transition per option.

    Parameters
    ----------
    options : sequence or callable
        A non-empty list, tuple or range, or a zero-argument callable returning
        one, evaluated again in every state; while it returns an empty
        sequence, the actor is blocked.
    label : sequence of str or callable, optional
        How traces name the options: a list of names, one per option in the
        same order, or a callable that takes an option and returns its name
        (a ``str``).  By default an option is named by its ``repr`` when that
        holds no memory address; functions, methods and classes by their
        qualified name; enum members as ``Class.NAME``; objects with the
        default ``repr`` by their class and attributes; tuples, lists, dicts
        and sets element by element.  Options whose names coincide get their
        position appended (``#k``).  Names only label transitions: they are
        not part of the state, and replay tells steps apart by position.

    Returns
    -------
    Request
        Awaiting it gives the chosen option.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def coin():
    ...     async def flip():
    ...         side = await fc.choose(["heads", "tails"])
    ...         assert side == "heads", "tails came up"
    ...     fc.spawn(flip)
    >>> coin.check().violations[0].kind
    'assertion'

    Naming options that are functions or objects:

    >>> @fc.model
    ... def dial():
    ...     async def turn():
    ...         step = await fc.choose([1, -1], label=["up", "down"])
    ...         assert step == 1
    ...     fc.spawn(turn)
    >>> [s.label for s in dial.check().violations[0].trace]
    ['choose down']
    """
    current_world("fc.choose()")
    if not callable(options):
        _check_sequence(options, "fc.choose() got")
        if len(options) == 0:
            raise UsageError("fc.choose() got an empty sequence: give at least one option, or a callable that returns the options of each state")
    if label is not None and not callable(label):
        if isinstance(label, str) or not isinstance(label, Sequence):
            raise UsageError(f"fc.choose(label={short_repr(label)}): give a list of names (one str per option) "
                             "or a callable that takes an option and returns its name")
        for name in label:
            if not isinstance(name, str):
                raise UsageError(f"fc.choose(label=[...]) holds {type(name).__name__} {short_repr(name)}: "
                                 "every name must be a str")
        if not callable(options) and len(label) != len(options):
            raise UsageError(f"fc.choose(label=[...]) has {len(label)} names for {len(options)} options: "
                             "give one name per option, or a callable that names each option")
        label = tuple(label)  # a copy: the names must not change under the explorer
    return _Choose(options, label)


def when(predicate: Callable[[], bool]) -> Request:
    """Block until ``predicate()`` is true: ``await fc.when(lambda: queue)``.

    The predicate is evaluated in every state and must not change anything.
    """
    current_world("fc.when()")
    if not callable(predicate):
        raise UsageError(f"fc.when() needs a zero-argument callable, got {type(predicate).__name__}: write fc.when(lambda: ...)")
    return _When(predicate)


def checkpoint() -> Request:
    """A plain interleaving point: ``await fc.checkpoint()`` lets other actors run."""
    current_world("fc.checkpoint()")
    return _Checkpoint()


# --------------------------------------------------------------------------- actors


class Actor:
    """One spawned coroutine and its scheduling status."""

    __slots__ = ("name", "fn", "coro", "pending", "done", "failed", "daemon", "ident")

    def __init__(self, name: str, fn: Callable, coro, daemon: bool = False, ident: Any = None) -> None:
        self.name = name
        # What the fingerprint walks for the actor under symmetry: its name, or for an actor spawned for
        # symmetric values without name=, (function, arguments, k), so that renaming the values renames it.
        self.ident = name if ident is None else ident
        self.fn = fn
        self.coro = coro
        self.pending: Request | None = None
        self.done = False
        self.failed = False
        self.daemon = daemon  # waiting forever is a fine end for it (a server loop): never a deadlock

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.done:
            return "done"
        return "waiting"

    def frames(self) -> list[types.FrameType]:
        """The actor's frame chain, outermost first, forkcheck's own frames left out."""
        out = []
        obj = self.coro
        while obj is not None:
            frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
            if frame is not None and not frame.f_code.co_filename.startswith(_PACKAGE_DIR):
                out.append(frame)
            obj = getattr(obj, "cr_await", None) if hasattr(obj, "cr_await") else getattr(obj, "gi_yieldfrom", None)
        return out

    def where(self, library: bool = True) -> str:
        """``file:line`` of the innermost frame; with ``library=False``, the innermost outside the standard library
        (and the packages installed under it), where the model awaited it."""
        frames = self.frames()
        if not library:
            frames = [f for f in frames if not f.f_code.co_filename.startswith(_STDLIB)] or frames
        if not frames:
            return ""
        f = frames[-1]
        return f"{f.f_code.co_filename}:{f.f_lineno}"


class Transition:
    """An enabled transition: an actor's pending request completed with a payload."""

    __slots__ = ("actor", "request", "payload", "label", "apply")
    deviation = 0  # a step away from the program's own order (asyncio programs, aio.py); never here

    def __init__(self, actor, request, payload, label, apply=None):
        self.actor = actor  # Actor, or None for an environment transition
        self.request = request
        self.payload = payload
        self.label = label
        self.apply = apply  # environment transitions: a callable


class World:
    """The whole simulated program inside one snapshot process."""

    #: Whether reports carry ``order_fingerprint()`` besides the fingerprint (asyncio programs, aio.py).
    order_matters = False
    #: What the timer's messages say a step may block on (``stuck_message``).
    blocking = BLOCK_ON
    #: Code under these paths is the machinery, not the model: the timer never interrupts it there but
    #: waits a tick (forkcheck's own; aio.py adds asyncio's, whose loop runs between the program's steps).
    machinery: tuple[str, ...] = (_PACKAGE_DIR,)

    def __init__(self) -> None:
        self.actors: list[Actor] = []
        self.invariants: list[tuple[str, Callable[[], Any]]] = []
        self.constraints: list[tuple[str, Callable[[], Any]]] = []  # fc.constraint: states outside are not expanded
        self.liveness: list = []  # properties declared by the liveness API, evaluated per state
        self.environments: list = []  # objects with env_transitions() (lossy networks)
        self.globals_roots: list[dict] = []
        # fc.symmetric(): the sets declared, and all their values in order (a value's _k indexes this list).
        self.symmetric: list = []
        self.symmetric_values: list = []
        self.symmetry_on = True  # Load.symmetry: False explores every state (check(symmetry=False))
        self.view: Any = None
        self.running: Actor | None = None
        self.in_setup = False
        self.violations: list[tuple[str, str, str, str]] = []  # (kind, name, message, details)
        self.model_error: tuple[str, str, str] | None = None  # (error class, message, traceback)
        self._starting: list[Actor] = []
        self._enabled: list[Transition] | None = None
        self._names: dict[str, int] = {}
        self.counters: dict[str, int] = {}
        # The transitions taken from the initial state, kept only where a fingerprint may need them
        # (opaque="distinct": distinct_fingerprint); None elsewhere, to keep them off the hot path.
        self.path: list[int] | None = None
        # Requests made in the current step (setup or one actor's step) and where: (request, code, offset).
        self.made: list[tuple[Request, types.CodeType, int]] = []
        # Where the actor of the last transition stopped, for traces (asyncio programs, aio.py); "" here.
        self.arrived = ""
        # The reductions (_app/footprint.py, _check/reduction.py): whether this process reports footprints,
        # the log primitives write their operations to while a step or an enabling test runs (None: off),
        # what the last step did, and what each actor's enabling test read in this state.
        self.footprints = False
        self.log: list[tuple[str, str, int]] | None = None
        self.step_ops: tuple | None = None
        self.guards: list[tuple] = []
        # Set by the snapshot's timer when it interrupts user code (serve.py): the step ran too long.
        self.stuck = False
        self.timeout = 30.0  # transition_timeout, for messages
        # The root calls it before each piece of its setup (the setup function, each actor's first
        # step): each gets its own time budget.  None in forks: a transition is one piece.
        self.on_piece: Callable[[str], None] | None = None

    # -- building -------------------------------------------------------------

    def _add_globals(self, fn) -> None:
        g = getattr(inspect.unwrap(fn), "__globals__", None)
        if g is not None and all(g is not r for r in self.globals_roots):
            self.globals_roots.append(g)

    def spawn(self, fn: Callable, args: tuple, name: str | None, daemon: bool = False) -> Actor:
        target = fn.func if hasattr(fn, "func") and hasattr(fn, "args") else fn  # functools.partial
        if inspect.iscoroutine(fn):
            fn.close()  # it will never run: no "never awaited" warning on top of this error
            name_ = fn.__qualname__.rpartition("<locals>.")[2]
            raise UsageError(f"fc.spawn() got a coroutine, {name_}(...) already called: pass the function and its "
                             f"arguments, fc.spawn({name_}, arg, ...), and forkcheck calls it")
        if not inspect.iscoroutinefunction(fn) and not inspect.iscoroutinefunction(target):
            raise UsageError(
                f"fc.spawn({getattr(fn, '__qualname__', fn)!r}): an actor must be an async function; "
                "define it with `async def`"
            )
        symmetric = None
        if self.symmetric:
            if name is None:
                symmetric = [a if holds_value_deep(a) else label_text(a, 20) for a in args]
                if not any(holds_value_deep(a) for a in args):
                    symmetric = None
            elif self.symmetry_on and isinstance(name, str):
                leak = leaked_name(name, self.symmetric_names())
                if leak is not None:
                    raise UsageError(f"fc.spawn(..., name={name!r}): the name holds symmetric value {leak}'s name, "
                                     "and renaming the values would leave it behind; leave name= out: fc.spawn "
                                     "names an actor from its arguments, and symmetry renames them with the values")
        if name is None:
            base = getattr(target, "__name__", "actor")
            name = base if not args else f"{base}({', '.join(label_text(a, 20) for a in args)})"
        if name in self._names:
            self._names[name] += 1
            k = self._names[name]
            name = f"{name}#{k}"
        else:
            self._names[name] = k = 0
        if self.log is not None:
            self.log.append(("W", "spawn", 0))
        ident = None if symmetric is None else (getattr(target, "__qualname__", "actor"), tuple(symmetric), k)
        actor = Actor(name, fn, fn(*args), daemon, ident)
        self.actors.append(actor)
        self._add_globals(target)
        self._starting.append(actor)
        return actor

    def symmetric_names(self) -> tuple:
        """((name, n), ...) of the symmetric sets: what a string must not name (symmetry.leaked_name)."""
        return tuple((s.name, s.n) for s in self.symmetric)

    def actor_ident(self, name: str | None) -> Any:
        """What the walk emits for the actor called ``name`` (a lock's owner): its ident under symmetry."""
        if name is None or not self.symmetric or not self.symmetry_on:
            return name
        for a in self.actors:
            if a.name == name:
                return a.ident
        return name

    def next_name(self, prefix: str) -> str:
        if self.log is not None:
            self.log.append(("W", "name", 0))
        n = self.counters.get(prefix, 0)
        self.counters[prefix] = n + 1
        return f"{prefix}{n}"

    def setup(self, fn: Callable, args: tuple, kwargs: dict) -> None:
        """Run the model's setup function, then every actor up to its first await."""
        global _WORLD
        _WORLD = self
        self._add_globals(fn)
        self.in_setup = True
        self.made.clear()
        if self.on_piece is not None:
            self.on_piece("the setup function")
        try:
            self.view = fn(*args, **kwargs)
        except Stuck as exc:
            self.model_error = ("StuckError", stuck_message("the setup function", exc.seconds, exc.where, "return"),
                                _format_tb(exc))
            return
        except BaseException as exc:  # noqa: BLE001 - reported to the explorer, never swallowed silently
            self.model_error = (type(exc).__name__, _one_line(exc), _format_tb(exc))
            return
        finally:
            self.in_setup = False
        if self.symmetric and self.symmetry_on and self.liveness:
            names = ", ".join(repr(p.name) for p in self.liveness)
            self.model_error = ("UsageError", f"the model declares liveness properties ({names}) and symmetric "
                                f"values (fc.symmetric({self.symmetric[0].name!r}, ...)): liveness under symmetry "
                                "is not checked (fairness and lassos need the actors' identities, which symmetry "
                                "merges); check with symmetry=False (--no-symmetry), or declare the properties in "
                                "a model without fc.symmetric", "")
            return
        if self.made:
            self._unawaited("the setup function", None)
            return
        if not self.actors:
            # Nothing to interleave: the check would pass on one state whatever the model says.
            code = getattr(inspect.unwrap(fn), "__code__", None)
            where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
            self.model_error = ("UsageError", f"the setup function {_callable_name(fn)}{where} spawned no actor, "
                                "so there is nothing to check: start the model's actors with fc.spawn(fn) in it", "")
            return
        self._start_new()

    # -- running --------------------------------------------------------------

    def _start_new(self) -> None:
        while self._starting:
            actor = self._starting.pop(0)
            if self.on_piece is not None:
                self.on_piece(f"the first step of actor {actor.name}")
            self._resume(actor, None)

    def _resume(self, actor: Actor, value: Any) -> None:
        self.running = actor
        made = self.made
        made.clear()  # anything made outside a step (a predicate, a description) is not this step's
        try:
            req = actor.coro.send(value)
        except StopIteration:
            actor.done = True
            actor.pending = None
            if made:
                self._unawaited(f"actor {actor.name}", None)
        except Stuck as exc:
            self._fail(actor, "timeout", exc, stuck_message(f"actor {actor.name}", exc.seconds, exc.where))
        except AssertionError as exc:
            self._fail(actor, "assertion", exc)
        except UsageError as exc:
            actor.failed = True
            if self.model_error is None:  # the first mistake is the one to report
                self.model_error = ("UsageError", f"in actor {actor.name}: {exc}", _format_tb(exc))
        except SystemExit as exc:
            self._fail(actor, "crash", exc, f"actor {actor.name} called sys.exit({exc.code!r})")
        except BaseException as exc:  # noqa: BLE001 - user code may raise anything
            misuse = _misuse(exc)
            if misuse is None:
                self._fail(actor, "exception", exc)
            else:  # not the program's failure: the model awaits something forkcheck does not run
                actor.failed = True
                actor.pending = None
                if self.model_error is None:
                    self.model_error = ("UsageError", f"in actor {actor.name}: {misuse}", _format_tb(exc))
        else:
            if isinstance(req, Request):
                actor.pending = req
                if len(made) > 1 or (made and made[0][0] is not req):
                    self._unawaited(f"actor {actor.name}", req)
            else:
                where = actor.where(library=False)  # before close(): the frames go with it
                actor.coro.close()
                self.violations.append((
                    "exception", actor.name,
                    f"actor {actor.name} awaited {short_repr(req)} at {_where.short(where)}, which is not a forkcheck "
                    "primitive" + (" (a bare yield, as asyncio.sleep(0) makes)" if req is None else "") + ": inside "
                    "a model, await only fc.choose/fc.when/fc.checkpoint, mailboxes, networks, locks and events",
                    where,
                ))
                actor.failed = True
                actor.pending = None
        finally:
            self.running = None

    def unawaited_coroutine(self, message: str, filename: str, lineno: int) -> None:
        """Python's "coroutine ... was never awaited" came during a step: the call did not run, a model error."""
        if self.model_error is not None:
            return
        who = f"actor {self.running.name}" if self.running is not None else "the setup function"
        self.model_error = ("UsageError", f"in {who}: {message} (at {filename}:{lineno}): an async function called "
                            "without `await` does not run at all; write `await` before the call", "")

    def _unawaited(self, who: str, awaited: Request | None) -> None:
        """A request was made in this step and not awaited: a model error naming where it was made."""
        for req, code, offset in self.made:
            if req is not awaited:
                break
        self.made.clear()
        if self.model_error is not None:
            return  # the first error of the step is the one reported
        line, call = _call_at(code, offset)
        what = f"`{call}`" if call else f"a {req.describe()} request"
        awaited_form = f"`await {call}`" if call else "`await` before it"  # a call over several lines: no text
        where = f"{code.co_filename}:{line}"
        if awaited is None and who == "the setup function":
            text = (f"in the setup function: {what} at {where} makes a request, which only an actor can await: "
                    f"move it into an actor, with {awaited_form}")
        else:
            text = (f"in {who}: {what} at {where} makes a request that is not awaited in the step that makes it, "
                    f"so it does nothing (no interleaving point, no value): write {awaited_form}")
        self.model_error = ("UsageError", text, "")

    def _fail(self, actor: Actor, kind: str, exc: BaseException, message: str | None = None) -> None:
        actor.failed = True
        actor.pending = None
        tb = _format_tb(exc)
        if message is None:
            if kind == "assertion":
                text = _one_line(exc) if str(exc).strip() else (_failing_line(exc) or "assert failed")
                message = f"assertion failed in actor {actor.name}: {text}"
            else:
                message = f"actor {actor.name} raised {type(exc).__name__}: {_one_line(exc)}"
        self.violations.append((kind, actor.name, message, tb))

    def enabled(self) -> list[Transition]:
        """The enabled transitions in deterministic order: actors in spawn order, then the environment."""
        if self._enabled is not None:
            return self._enabled
        out: list[Transition] = []
        guards: list[tuple] = []
        logging = self.footprints and self.log is None
        for actor in self.actors:
            req = actor.pending
            if req is None:
                if logging:
                    guards.append(())
                continue
            if logging:
                self.log = []
            try:
                opts = req.options(self, actor)
            except UsageError as exc:
                self.model_error = ("UsageError", f"in actor {actor.name}: {exc}", "")
                continue
            except Stuck as exc:
                self._fail(actor, "timeout", exc, stuck_message(f"the condition actor {actor.name} waits on "
                                                                f"({req.describe()})", exc.seconds, exc.where, "return"))
                continue
            except BaseException as exc:  # noqa: BLE001
                self._fail(actor, "exception", exc,
                           f"the condition actor {actor.name} waits on ({req.describe()}) raised {type(exc).__name__}: {_one_line(exc)}")
                continue
            finally:
                if logging:
                    assert self.log is not None
                    guards.append(tuple(self.log))
                    self.log = None
            for label, payload in opts:
                out.append(Transition(actor, req, payload, label))
        for env in self.environments:
            if logging:
                self.log = []
            try:
                trs = env.env_transitions()
            finally:
                if logging:
                    assert self.log is not None
                    guards.append(tuple(self.log))
                    self.log = None
            for label, apply in trs:
                out.append(Transition(None, env, None, label, apply))
        self._enabled = out
        if logging:
            self.guards = guards
        return out

    def execute(self, index: int) -> None:
        """Take enabled transition ``index`` (as listed by :meth:`enabled`)."""
        t = self.enabled()[index]
        self._enabled = None
        self.violations = []
        if self.path is not None:
            self.path.append(index)
        if self.footprints:
            self.log = []
        try:
            if t.actor is None:
                t.apply()
            else:
                actor = t.actor
                try:
                    value = t.request.complete(self, actor, t.payload)
                except BaseException as exc:  # noqa: BLE001
                    self._fail(actor, "exception", exc)
                else:
                    actor.pending = None
                    self._resume(actor, value)
            self._start_new()
        finally:
            if self.log is not None:
                self.step_ops = tuple(self.log)
                self.log = None

    # -- checking -------------------------------------------------------------

    def _holds(self, what: str, name: str, pred: Callable[[], Any]) -> bool | None:
        """Whether predicate ``what`` ``name`` holds here; None when it raised or ran too long (a model error)."""
        try:
            return bool(pred())
        except Stuck as exc:
            self.model_error = ("InvariantError", stuck_message(f"{what} {name!r}", exc.seconds, exc.where, "return"),
                                _format_tb(exc))
        except BaseException as exc:  # noqa: BLE001
            frames = _user_frames(exc.__traceback__)
            at = f" at {_where.short(f'{frames[-1].filename}:{frames[-1].lineno}')}" if frames else ""
            self.model_error = (
                "InvariantError",
                f"{what} {name!r} raised {type(exc).__name__}{at}: {_one_line(exc)}; {'an' if what[0] in 'aeiou' else 'a'} "
                f"{what} must return a truth value in every reachable state",
                _format_tb(exc),
            )
        return None

    def check_invariants(self) -> None:
        for name, pred in self.invariants:
            ok = self._holds("invariant", name, pred)
            if ok is None:
                return
            if not ok:
                self.violations.append(("invariant", name, f"invariant {name!r} is violated", ""))

    def check_constraints(self) -> str:
        """The name of the first constraint this state does not satisfy ("" when it satisfies them all)."""
        for name, pred in self.constraints:
            ok = self._holds("constraint", name, pred)
            if ok is None:
                return ""
            if not ok:
                return name
        return ""

    def blocked_message(self) -> str:
        waiting = [a for a in self.actors if not a.done and not a.failed]
        parts = [f"{a.name}{' (daemon)' if a.daemon else ''} waits for {a.pending.describe() if a.pending else '?'} "
                 f"at {_where.short(a.where())}" for a in waiting]
        return "deadlock: no actor can move; " + "; ".join(parts)

    def order_fingerprint(self) -> bytes:
        """What the fingerprint leaves out and the state key needs (asyncio programs, aio.py); nothing here."""
        return b""

    def who_runs(self) -> str:
        """Whose code runs now, for the timer's messages: an actor, the setup function, or the model's code."""
        if self.running is not None:
            return f"actor {self.running.name}"
        if self.in_setup:
            return "the setup function"
        return "the model's code"

    def all_done(self) -> bool:
        """Whether the program has ended normally: every actor returned, daemons aside (they may wait forever)."""
        for a in self.actors:  # a loop: a generator expression would make a function object per state
            if not a.done and not a.daemon:
                return False
        return True


# --------------------------------------------------------------------------- public API used in setup


def spawn(fn: Callable, *args: Any, name: str | None = None, daemon: bool = False) -> None:
    """Start an actor: ``fc.spawn(worker, 1, name="w1")``.

    ``fn`` must be an ``async def`` function; it runs up to its first forkcheck
    ``await`` within the step that spawns it (or, from setup, before the
    initial state).  Names default to the function name and arguments, made
    unique by a ``#k`` suffix.

    With ``daemon=True``, waiting forever is a fine end for the actor, as
    for a server loop (``while True: msg = await net.recv("server")``): a
    state where no actor can move is a deadlock only when some actor that
    is not a daemon has not returned (SPIN's end-state labels, for a whole
    actor).  A daemon still runs and is checked like any actor.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def service():
    ...     net = fc.Network()
    ...     async def server():
    ...         while True:
    ...             client, n = await net.recv("server")
    ...             net.send(client, n + 1)
    ...     async def client():
    ...         net.send("server", ("client", 1))
    ...         assert await net.recv("client") == 2
    ...     fc.spawn(server, daemon=True)
    ...     fc.spawn(client)
    >>> service.check().ok
    True
    """
    if not isinstance(daemon, bool):
        raise UsageError(f"fc.spawn(daemon={daemon!r}): give True (waiting forever is a fine end for this actor) "
                         "or False")
    current_world("fc.spawn()").spawn(fn, args, name, daemon)


def invariant(predicate: Callable[[], Any], name: str | None = None) -> None:
    """Declare a safety property checked in every reachable state.

    Call it in the setup function.  A false result is a violation of kind
    ``"invariant"``; an exception is a :class:`forkcheck.ModelError`.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def counter():
    ...     state = {"n": 0}
    ...     async def inc():
    ...         state["n"] += 1
    ...     fc.spawn(inc); fc.spawn(inc)
    ...     fc.invariant(lambda: state["n"] < 2, name="below two")
    >>> counter.check().violations[0].name
    'below two'
    """
    world = current_world("fc.invariant()")
    if not callable(predicate):
        raise UsageError(f"fc.invariant() needs a zero-argument callable, got {type(predicate).__name__}: write fc.invariant(lambda: ...)")
    if not world.in_setup:
        raise UsageError("fc.invariant() must be called in the model's setup function, not inside an actor")
    world.invariants.append((name or _callable_name(predicate), predicate))


def constraint(predicate: Callable[[], Any], name: str | None = None) -> None:
    """Bound the state space by a condition, as TLC's ``CONSTRAINT`` does: states outside it are not expanded.

    Call it in the setup function.  Every reachable state is still checked
    (invariants, assertions, deadlocks), but from a state where
    ``predicate()`` is false no transition is taken.  When that cuts a state
    that had transitions, the result is incomplete
    (``r.incomplete == ["constraint 'NAME' cut N states"]``): a "no
    violation" then covers only the states within the constraint.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def retransmit():
    ...     net = fc.Network("net")
    ...     async def sender():
    ...         while True:  # resends forever: an infinite state space
    ...             net.send("receiver", "msg")
    ...             await fc.checkpoint()
    ...     fc.spawn(sender)
    ...     fc.constraint(lambda: len(net.in_flight()) <= 2, name="at most 2 in flight")
    >>> r = retransmit.check()
    >>> r.stats.states, r.incomplete
    (3, ["constraint 'at most 2 in flight' cut 1 state"])
    """
    world = current_world("fc.constraint()")
    if not callable(predicate):
        raise UsageError(f"fc.constraint() needs a zero-argument callable, got {type(predicate).__name__}: write "
                         "fc.constraint(lambda: ...)")
    if not world.in_setup:
        raise UsageError("fc.constraint() must be called in the model's setup function, not inside an actor")
    world.constraints.append((name or _callable_name(predicate), predicate))


# --------------------------------------------------------------------------- helpers


def short_repr(obj: Any, limit: int = 60) -> str:
    try:
        text = repr(obj)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break the checker
        text = f"<{type(obj).__name__} (repr raised {type(exc).__name__})>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: How CPython's default reprs show an address: ``<function f at 0x7f...>``.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

#: Types whose repr never holds an address and reads the same in every process.
_PLAIN = (type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis))


def label_text(obj: Any, limit: int = 60) -> str:
    """The name of a value in a transition label: the same in every process and every run.

    Labels travel in trace tokens and are shown in reports, so they never hold
    a memory address (it differs between interpreters).  Functions, methods and
    classes show their qualified name (``fill_big``, ``Jug.fill``), lambdas
    their source text, enum members ``Class.NAME``, objects with the default
    ``repr`` their class and attributes (``Op(n=1)``, or ``<Op>`` without
    any), and tuples, lists, dicts and sets are named element by element.
    Other objects show their ``repr``, with any ``" at 0x..."`` removed.

    Examples
    --------
    >>> def fill(): pass
    >>> label_text((fill, 3, [None]))
    '(fill, 3, [None])'
    >>> class Op: pass
    >>> label_text(Op())
    '<Op>'
    """
    text = _label(obj, 0)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(o: Any, depth: int) -> str:
    t = type(o)
    if t in _PLAIN:
        return repr(o)
    if depth > 4:
        return "..."  # deep or cyclic containers: the limit cuts the text anyway
    try:
        if isinstance(o, enum.Enum) and isinstance(o.name, str):
            return f"{_local_name(t.__qualname__)}.{o.name}"
        if t is types.FunctionType:
            return _lambda_text(o.__code__) if o.__name__ == "<lambda>" else _local_name(o.__qualname__)
        if t is types.MethodType:
            return _label(o.__func__, depth)
        if t is types.BuiltinFunctionType or t is types.MethodWrapperType or t is types.WrapperDescriptorType \
                or t is types.MethodDescriptorType:
            return _local_name(getattr(o, "__qualname__", o.__name__))
        if isinstance(o, type):
            return _local_name(o.__qualname__)
        if t is functools.partial:
            parts = [_label(o.func, depth + 1)] + [_label(a, depth + 1) for a in o.args]
            parts += [f"{k}={_label(v, depth + 1)}" for k, v in o.keywords.items()]
            return f"partial({', '.join(parts)})"
        if isinstance(o, tuple) and hasattr(t, "_fields") and t.__repr__ is not tuple.__repr__:  # a namedtuple
            fields = ", ".join(f"{k}={_label(v, depth + 1)}" for k, v in zip(t._fields, o))
            return f"{t.__name__}({fields})"
        if t.__repr__ is tuple.__repr__:
            inner = ", ".join(_label(x, depth + 1) for x in o)
            return f"({inner},)" if len(o) == 1 else f"({inner})"
        if t.__repr__ is list.__repr__:
            return "[" + ", ".join(_label(x, depth + 1) for x in o) + "]"
        if t.__repr__ is dict.__repr__:
            return "{" + ", ".join(f"{_label(k, depth + 1)}: {_label(v, depth + 1)}" for k, v in o.items()) + "}"
        if t.__repr__ is set.__repr__ or t.__repr__ is frozenset.__repr__:
            # Sorted: a set's order can depend on its history and on addresses (objects hashed by id).
            inner = ", ".join(sorted(_label(x, depth + 1) for x in o))
            if not o:
                return f"{t.__name__}()"
            return "{" + inner + "}" if t is set else f"{t.__name__}({{{inner}}})"
        if t.__repr__ is object.__repr__:
            return _object_label(o, t, depth)
        text = repr(o)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ or attribute must not break the checker
        return f"<{t.__name__} (repr raised {type(exc).__name__})>"
    # The last resort for a class's own repr: drop what reads as an address.
    return _ADDRESS.sub("", text)


def _object_label(o: Any, t: type, depth: int) -> str:
    """``Class(attr=value, ...)`` of an object with the default repr, ``<Class>`` when it has no attributes."""
    attrs = dict(getattr(o, "__dict__", None) or {})
    for klass in t.__mro__:
        for slot in klass.__dict__.get("__slots__", ()):
            if isinstance(slot, str) and slot not in ("__dict__", "__weakref__") and slot not in attrs:
                try:
                    attrs[slot] = getattr(o, slot)
                except AttributeError:
                    pass
    name = _local_name(t.__qualname__)
    if not attrs:
        return f"<{name}>"
    return f"{name}(" + ", ".join(f"{k}={_label(v, depth + 1)}" for k, v in attrs.items()) + ")"


def _local_name(qualname: str) -> str:
    """A qualified name without the functions it was defined in: ``diehard.<locals>.fill`` -> ``fill``."""
    return qualname.rpartition("<locals>.")[2]


def _lambda_text(code: types.CodeType) -> str:
    """A lambda's source text, ``lambda x: x + 1``, exactly as written (a body over several lines on one).

    The lambda is found in its file's syntax tree: among the lambdas that
    start on its first line, the one whose body holds every source position
    of its code (the innermost such), else the one with its argument names
    (and constant body).
    What follows it on the line (a closing parenthesis, a comment) is not
    part of it.  Without the source, or when two lambdas on one line cannot
    be told apart, ``<lambda at file.py:12>``.
    """
    text = _LAMBDA_TEXTS.get(code)
    if text is None:
        text = _LAMBDA_TEXTS[code] = _find_lambda(code)
    return text


#: Lambda texts by code object, and the lambdas of each source file by first line: a file is
#: parsed once per process (and its children inherit what the root found).
_LAMBDA_TEXTS: dict[types.CodeType, str] = {}
_FILE_LAMBDAS: dict[str, dict[int, list[_Lambda]]] = {}
_NO_CONSTANT = object()


class _Lambda:
    """A lambda of a source file: its body's span (first line, column, last line, column), argument names, text."""

    __slots__ = ("span", "names", "constant", "text")

    def __init__(self, span: tuple[int, int, int, int], names: tuple[str, ...], constant: Any, text: str) -> None:
        self.span, self.names, self.constant, self.text = span, names, constant, text


def _file_lambdas(filename: str) -> dict[int, list[_Lambda]]:
    found = _FILE_LAMBDAS.get(filename)
    if found is not None:
        return found
    import ast

    found = {}
    source = "".join(linecache.getlines(filename))
    try:
        tree = ast.parse(source) if source else None
    except (SyntaxError, ValueError):
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Lambda) and node.end_lineno is not None and node.end_col_offset is not None:
                segment = ast.get_source_segment(source, node) or ""
                args = node.args
                names = tuple(a.arg for a in args.posonlyargs + args.args + args.kwonlyargs)
                body = node.body
                if body.end_lineno is None or body.end_col_offset is None:  # pragma: no cover - parsed source has them
                    continue
                span = (body.lineno, body.col_offset, body.end_lineno, body.end_col_offset)
                constant = node.body.value if isinstance(node.body, ast.Constant) else _NO_CONSTANT
                text = re.sub(r"\s*\n\s*", " ", segment).strip()
                found.setdefault(node.lineno, []).append(_Lambda(span, names, constant, text))
    _FILE_LAMBDAS[filename] = found
    return found


def _find_lambda(code: types.CodeType) -> str:
    fallback = f"<lambda at {os.path.basename(code.co_filename)}:{code.co_firstlineno}>"
    candidates = _file_lambdas(code.co_filename).get(code.co_firstlineno, [])
    # Source positions of the body (columns count UTF-8 bytes, as the syntax tree's offsets do).
    positions = [(l0, c0, l1, c1) for l0, l1, c0, c1 in code.co_positions()
                 if l0 is not None and l1 is not None and c0 is not None and c1 is not None and (l0, c0) != (l1, c1)]

    def holds(span: tuple[int, int, int, int]) -> bool:
        return all((span[0], span[1]) <= (l0, c0) and (l1, c1) <= (span[2], span[3]) for l0, c0, l1, c1 in positions)

    if positions:
        fit = [c for c in candidates if holds(c.span)]
        if fit:
            # Nested lambdas: the outer one holds the inner one's positions too; the innermost is the smallest.
            return min(fit, key=lambda c: (c.span[2] - c.span[0], c.span[3] - c.span[1])).text
    # No positions to go by (Python 3.12 gives none for `lambda: 3`): the argument names, then the constant.
    names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    fit = [c for c in candidates if c.names == names]
    if len(fit) > 1:
        fit = [c for c in fit if c.constant is not _NO_CONSTANT and any(
            type(k) is type(c.constant) and k == c.constant for k in code.co_consts)] or fit
    texts = {c.text for c in fit}
    return texts.pop() if len(texts) == 1 else fallback


def _callable_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None)
    if name and name != "<lambda>":
        return name
    code = getattr(fn, "__code__", None)
    if code is not None:
        return _lambda_text(code)
    return label_text(fn)


def _call_at(code: types.CodeType, offset: int) -> tuple[int, str]:
    """The line and source text of the call at byte ``offset`` of ``code`` ("" when the source is not at hand)."""
    positions = list(code.co_positions())
    k = offset // 2  # 2-byte code units
    if not 0 <= k < len(positions) or positions[k][0] is None:
        return code.co_firstlineno, ""
    l0, l1, c0, c1 = positions[k]
    assert l0 is not None  # checked above
    if l1 != l0 or c0 is None or c1 is None:
        return l0, ""
    text = linecache.getline(code.co_filename, l0).encode()[c0:c1]  # columns count bytes
    return l0, text.decode(errors="replace").strip()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _user_frames(tb) -> list:
    return [fs for fs in traceback.extract_tb(tb) if not fs.filename.startswith(_PACKAGE_DIR)]


def _format_tb(exc: BaseException) -> str:
    frames = _user_frames(exc.__traceback__)
    lines = ["Traceback (most recent call last):\n"] + traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def _failing_line(exc: BaseException) -> str:
    frames = _user_frames(exc.__traceback__)
    if not frames:
        return ""
    fs = frames[-1]
    return f"{(fs.line or '').strip()} ({_where.short(f'{fs.filename}:{fs.lineno}')})"


def _misuse(exc: BaseException) -> str | None:
    """What a model did wrong, when ``exc`` comes from awaiting something forkcheck does not run, or None.

    asyncio's primitives need a running event loop, which a model does not
    have: ``asyncio.sleep`` raises "no running event loop", a contended
    ``asyncio.Lock`` an AttributeError deep inside asyncio.  A
    ``threading.Lock`` used with ``async with`` is Python's TypeError.  Each
    would otherwise read as the program's own exception.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    asyncio_file = getattr(sys.modules.get("asyncio"), "__file__", None)
    # Without asyncio loaded there is no asyncio directory to leave out (abspath("") would be the
    # current directory, and every frame of the model's files under it would be left out).
    asyncio_dir = os.path.dirname(os.path.abspath(asyncio_file)) + os.sep if asyncio_file else "\0"
    user = [f for f in _user_frames(exc.__traceback__) if not f.filename.startswith(asyncio_dir)]
    at = f" at {_where.short(f'{user[-1].filename}:{user[-1].lineno}')}" if user else ""
    code = f" ({user[-1].line.strip()})" if user and user[-1].line else ""
    if sys.modules.get("asyncio") is not None and frames and frames[-1].filename.startswith(asyncio_dir):
        return (f"asyncio used{at}{code}: asyncio's primitives need an event loop, and a forkcheck model runs on "
                "forkcheck's scheduler; use fc.checkpoint(), fc.Lock, fc.Mailbox, fc.Event, fc.Semaphore instead")
    if isinstance(exc, TypeError) and "asynchronous context manager" in str(exc):
        return (f"{_one_line(exc)}{at}{code}: a threading lock cannot be held across an await; use fc.Lock "
                "(async with lock: ...), which is an interleaving point forkcheck explores")
    return None

