# This module drives asyncio through its private attributes (the loop's queues, the tasks' steps), which the
# type stubs do not declare.
# mypy: disable-error-code="attr-defined"
"""asyncio programs inside a snapshot: a controlled event loop (the second program kind, beside runtime.py).

The snapshot process checks an unmodified asyncio program: ``@fc.asyncio_model``
gives either an ``async def main`` (run with ``asyncio.run``) or a plain
function that runs its own loop.  Every event loop the program makes is a
:class:`ControlledLoop`:

* every callback the loop would run (a task's step, a future's done callback,
  a timer's callback) is one transition, and the explorer chooses which: the
  first ready one, as stock asyncio does (first in, first out), or any other
  (a *deviation*), or letting time pass so that the earliest timer fires while
  callbacks are ready (a deviation too);
* time is virtual: ``loop.time()`` starts at 0 and, when nothing is ready,
  jumps to the next timer, so ``await asyncio.sleep(3600)`` costs nothing;
* stock asyncio's iterations are kept: the callbacks ready when an iteration
  starts run before timers that became due meanwhile and before ``stop()``
  takes effect, so that the run without deviations is stock asyncio's run;
* the outside world (sockets, streams, subprocesses, signals, threads) is
  refused at the call, in one line naming it.

The program keeps its own stack (``asyncio.run`` does not return between two
callbacks), so the snapshot's command loop runs *inside* it: at each choice
:meth:`AioWorld.decide` reports the state and serves the explorer's requests
(``serve.py``); a forked child goes back down the stack by :class:`Resume` and
runs the chosen callback.

This module imports asyncio: ``serve.py`` imports it only for asyncio
programs, before the model's modules, and it blocks the ``_asyncio``
accelerator first, so that tasks and futures are the pure-Python classes whose
state the fingerprint walks (a C ``Task`` cannot be reduced).
"""

from __future__ import annotations

import ast
import gc
import heapq
import inspect
import linecache
import os
import sys
import threading
import types
from typing import Any, Callable

if "asyncio" not in sys.modules:
    sys.modules["_asyncio"] = None  # type: ignore[assignment]  # pure-Python Task and Future (see above)

import asyncio  # noqa: E402 - after blocking the accelerator
from asyncio import base_events, events, futures, tasks  # noqa: E402

from .. import _where  # noqa: E402
from .._errors import UsageError  # noqa: E402
from . import runtime as _runtime  # noqa: E402
from .fingerprint import Unordered  # noqa: E402
from .runtime import Stuck, World, _one_line, label_text, stuck_message  # noqa: E402

_PACKAGE_DIR = _runtime._PACKAGE_DIR
_STDLIB = _runtime._STDLIB
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep
_THIS = os.path.abspath(__file__)

#: The clock's resolution: fixed, so that which timers are due is the same on every machine.
_RESOLUTION = 1e-9


class Resume(BaseException):
    """Raised in a new snapshot by the command loop: go back to the program and take ``path``.

    ``watched``: the command loop armed the watchdog, which the next report disarms.
    """

    def __init__(self, path: tuple[int, ...], watched: bool) -> None:
        super().__init__(path)
        self.path = path
        self.watched = watched


def _internal(what: str) -> None:
    """A failure of forkcheck's own machinery inside the program's stack: this process ends at once.

    Raising would run the program's ``finally`` blocks and asyncio's clean-up
    (``asyncio.run`` cancels the tasks and runs the loop again), as if the
    program had failed.  The explorer sees the snapshot die, with this on its
    standard error.
    """
    import traceback

    sys.stderr.write(f"forkcheck: internal error in an asyncio snapshot: {what}\n")
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(70)


# --------------------------------------------------------------------------- tasks and futures


class Task(tasks.Task):
    """asyncio's pure-Python Task, hashed by its name rather than its address.

    Sets of tasks (``asyncio.wait``'s, ``all_tasks()``, a TaskGroup's) then
    iterate in the same order in every process: a replay in a fresh
    interpreter, whose addresses differ, takes the same steps.  The hash is
    not state (a set's iteration order is not, see docs/design.md).
    """

    def __init__(self, coro: Any, *, loop: Any, name: str, context: Any = None) -> None:
        self._fc_hash = hash(name)  # before Task.__init__ registers the task in a WeakSet
        super().__init__(coro, loop=loop, name=name, context=context)

    def __hash__(self) -> int:
        return self._fc_hash

    def __fc_state__(self) -> dict:
        state = dict(self.__dict__)
        del state["_fc_hash"]
        return state


class Future(futures.Future):
    """A future of ``loop.create_future()``, hashed by the order of its creation rather than its address."""

    def __init__(self, *, loop: Any, number: int) -> None:
        self._fc_hash = number
        super().__init__(loop=loop)

    def __hash__(self) -> int:
        return self._fc_hash

    def __fc_state__(self) -> dict:
        state = dict(self.__dict__)
        del state["_fc_hash"]
        return state


def _every_task() -> list:
    """Every task asyncio knows of, done ones included until they are collected (3.12 splits the set in two)."""
    if hasattr(tasks, "_all_tasks"):
        return list(tasks._all_tasks)
    return list(tasks._scheduled_tasks) + list(tasks._eager_tasks)


def _task_of(handle: Any) -> Any:
    """The task whose step ``handle`` runs (``Task.__step``, ``Task.__wakeup``), or None."""
    owner = getattr(handle._callback, "__self__", None)
    return owner if isinstance(owner, tasks.Task) else None


# --------------------------------------------------------------------------- where a task is


def _chain(coro: Any) -> list[tuple[types.FrameType, Any]]:
    """The frames of a task's coroutine and of what it awaits, outermost first, with their objects."""
    out = []
    obj = coro
    while obj is not None:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None) or getattr(obj, "ag_frame", None)
        if frame is None:
            break
        out.append((frame, obj))
        if hasattr(obj, "cr_await"):
            obj = obj.cr_await
        elif hasattr(obj, "gi_yieldfrom"):
            obj = obj.gi_yieldfrom
        else:
            obj = getattr(obj, "ag_await", None)
    return out


def _is_user(filename: str) -> bool:
    return not filename.startswith(_STDLIB) and not filename.startswith(_PACKAGE_DIR)


def _private(qualname: str) -> bool:
    """``_wait``, ``_ContextManagerMixin.__aenter__``, ``__sleep0``: a name part with a leading underscore, dunders apart."""
    for part in qualname.split("."):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return True
    return False


def _awaits(frame: types.FrameType) -> str:
    """What a frame of asyncio (or another library) stands for in "waits at x (what)"."""
    name = frame.f_code.co_qualname
    if name == "Future.__await__":
        fut = frame.f_locals.get("self")
        if isinstance(fut, tasks.Task):
            return f"task {fut.get_name()}"
        if isinstance(fut, tasks._GatheringFuture):
            return "gather"
        return "a future"
    return name.rpartition(".<locals>.")[2]


def task_site(task: Any) -> tuple[str, str]:
    """``(file:line, what)``: where the task's own code waits (its innermost frame outside the libraries)
    and what it waits for there (``sleep``, ``Lock.acquire``, ``task worker-1``...)."""
    chain = _chain(task._coro)
    if not chain:
        return "", ""
    k = 0
    for i in range(len(chain)):
        if _is_user(chain[i][0].f_code.co_filename):
            k = i
    frame = chain[k][0]
    site = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    coro = chain[0][1]
    if not getattr(coro, "cr_suspended", getattr(coro, "gi_suspended", True)) and \
            not getattr(coro, "cr_running", getattr(coro, "gi_running", False)):
        return site, "start"  # not started yet: at its def line
    below = [f for f, _ in chain[k + 1:]]
    if not below:
        return site, ""
    # The deepest public function of the library (Lock.acquire under the mixin's __aenter__, sleep
    # over its __sleep0), else what the future awaited is.
    public = [f for f in below if f.f_code.co_qualname != "Future.__await__" and not _private(f.f_code.co_qualname)]
    return site, public[-1].f_code.co_qualname if public else _awaits(below[-1])


def _fmt_time(t: float) -> str:
    text = f"{t:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _outcome(task: Any) -> str:
    """What a task that just stopped running is now, for the end of a trace line."""
    if task.done():
        if task.cancelled():
            return "cancelled"
        exc = task._exception  # not task.exception(), which would count as retrieving it
        if isinstance(exc, Stuck):
            return "timed out"  # forkcheck's timer interrupted it (AioWorld._stuck)
        return "done" if exc is None else f"raised {type(exc).__name__}"
    site, what = task_site(task)
    return f"{_where.short(site)} ({what})" if what else _where.short(site)


# --------------------------------------------------------------------------- the loop


#: Loop methods that reach outside the process, what they stand for, and what to use instead.
_OUTSIDE = {
    "sockets and streams": ("create_connection", "create_server", "create_unix_connection", "create_unix_server",
                            "create_datagram_endpoint", "connect_accepted_socket", "sock_recv", "sock_recv_into",
                            "sock_recvfrom", "sock_recvfrom_into", "sock_sendall", "sock_sendto", "sock_connect",
                            "sock_accept", "sock_sendfile", "sendfile", "start_tls", "getaddrinfo", "getnameinfo",
                            "connect_read_pipe", "connect_write_pipe", "add_reader", "add_writer", "remove_reader",
                            "remove_writer"),
    "subprocesses": ("subprocess_exec", "subprocess_shell"),
    "signals": ("add_signal_handler", "remove_signal_handler"),
    "threads": ("run_in_executor", "set_default_executor"),
}
_FIX = {
    "sockets and streams": "replace the connection by an in-memory stand-in (an asyncio.Queue per direction)",
    "subprocesses": "replace the subprocess by a task that plays its part",
    "signals": "deliver the signal as a call the program makes (a task that calls the handler)",
    "threads": "run the function in the task itself (it is one step), or make it a task",
}


def _refusal(method: str, what: str) -> Callable[..., Any]:
    def refused(self: ControlledLoop, *args: Any, **kwargs: Any) -> Any:
        self._world.refuse(f"loop.{method}()", what)

    refused.__name__ = refused.__qualname__ = method
    return refused


class ControlledLoop(base_events.BaseEventLoop):
    """An event loop whose every callback is a transition chosen by the explorer, on virtual time."""

    def __init__(self, world: AioWorld) -> None:
        self._world = world
        super().__init__()
        self._clock_resolution = _RESOLUTION
        self._now = 0.0
        self._timers: list[tuple[float, int, events.TimerHandle]] = []  # a heap by (when, order of scheduling)
        self._seq = 0
        self._batch = 0  # callbacks of the current iteration still to run (stock _run_once's ntodo)
        self._futures = 0
        world.loops.append(self)

    # -- what the fingerprint sees --------------------------------------------

    def __fc_state__(self) -> Any:
        # Only what identifies the loop; its queues are walked once, from the world's roots (_Roots),
        # so that the canonical key of a task or a handle does not walk the whole loop.
        return ("loop", self._closed)

    def state(self, ordered: bool) -> tuple:
        """Everything the loop's future behaviour depends on.

        The ready queue and the timers are multisets (the callbacks of the
        current iteration apart from those added since): any order of them
        can be taken, so states that differ only in it reach the same states
        and meet.  ``ordered`` gives the sequences instead, timers by time and
        ties in the order they were scheduled: the order decides which step is
        stock asyncio's (free) and which a deviation, which a bound on
        deviations must tell apart (``AioWorld.order_fingerprint``).
        """
        timers = []
        for when, _, handle in sorted(self._timers, key=_timer_key):
            timers.append((when, handle))
        ready = list(self._ready)
        if ordered:
            queues: tuple = (self._batch, ready, timers)
        else:
            queues = (Unordered(ready[: self._batch]), Unordered(ready[self._batch:]), Unordered(timers))
        return ("loop", self._now, queues, self._stopping, self._closed, self._debug, self._task_factory,
                self._exception_handler, self.slow_callback_duration, Unordered(list(self._asyncgens)),
                self._asyncgens_shutdown_called, self._executor_shutdown_called, self._default_executor)

    # -- time -----------------------------------------------------------------

    def time(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,  # type: ignore[override]
                context: Any = None) -> events.TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        timer = events.TimerHandle(when, callback, args, self, context)
        if timer._source_traceback:
            del timer._source_traceback[-1]
        heapq.heappush(self._timers, (when, self._seq, timer))
        self._seq += 1
        timer._scheduled = True
        return timer

    def _timer_handle_cancelled(self, handle: events.TimerHandle) -> None:
        if handle._scheduled:  # removed at once: a cancelled timer is no state
            self._timers = [t for t in self._timers if t[2] is not handle]
            heapq.heapify(self._timers)
            handle._scheduled = False

    def _due(self) -> None:
        """Timers due at the current time join the ready queue, earliest first (ties: first scheduled first)."""
        while self._timers and self._timers[0][0] <= self._now + self._clock_resolution:
            _, _, handle = heapq.heappop(self._timers)
            handle._scheduled = False
            self._ready.append(handle)

    # -- tasks and futures ----------------------------------------------------

    def create_future(self) -> Future:
        self._futures += 1
        return Future(loop=self, number=self._futures)

    def create_task(self, coro: Any, *, name: Any = None, context: Any = None) -> Any:
        self._check_closed()
        if name is None:
            name = self._world.task_name(self, coro)
        if self._task_factory is None:
            task = Task(coro, loop=self, name=str(name), context=context)
            if task._source_traceback:
                del task._source_traceback[-1]
        else:
            task = self._task_factory(self, coro) if context is None else self._task_factory(self, coro, context=context)
            tasks._set_task_name(task, name)
        self._world.track(task)
        return task

    # -- the outside world ----------------------------------------------------

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any,  # type: ignore[override]
                             context: Any = None) -> events.Handle:
        if threading.get_ident() != self._world.thread:
            self._world.refuse("loop.call_soon_threadsafe() from another thread", "threads")
        return self.call_soon(callback, *args, context=context)

    def _write_to_self(self) -> None:
        pass  # nothing waits in a selector: the explorer decides what runs

    def _process_events(self, event_list: Any) -> None:  # pragma: no cover - no selector
        pass

    # -- running --------------------------------------------------------------

    def close(self) -> None:
        super().close()
        self._timers.clear()

    def _run_once(self) -> None:
        """One iteration of stock asyncio's loop, each callback in it a transition the explorer chooses."""
        world = self._world
        if self._batch == 0:
            self._due()
            if not self._ready and self._timers:
                self._now = max(self._now, self._timers[0][0])  # nothing to run: time jumps to the next timer
                self._due()
            self._batch = len(self._ready)
            if self._batch == 0:
                world.decide(self, [])  # nothing ready, no timer: stuck (never returns)
        while True:
            self._skip_cancelled()
            if self._batch == 0:
                return  # the iteration is over: run_forever checks stop() now, as stock asyncio does
            options: list[int] = list(range(len(self._ready)))
            if self._timers:
                options.append(-1)  # time passes: the next timer fires while callbacks wait
            choice = options[world.decide(self, options)]
            if choice < 0:
                self._now = max(self._now, self._timers[0][0])
                self._due()
                world.after(self, None, None)
                continue
            handle = self._ready[choice]
            del self._ready[choice]
            if choice < self._batch:
                self._batch -= 1
            task = _task_of(handle)
            handle._run()
            world.after(self, handle, task)

    def _skip_cancelled(self) -> None:
        """Cancelled callbacks leave the ready queue (stock asyncio skips them when their turn comes)."""
        k = 0
        while k < len(self._ready):
            if self._ready[k]._cancelled:
                del self._ready[k]
                if k < self._batch:
                    self._batch -= 1
            else:
                k += 1

    def call_exception_handler(self, context: dict) -> None:
        if self._exception_handler is not None and not isinstance(context.get("exception"), Stuck):
            super().call_exception_handler(context)  # the program's own handler decides
            return
        self._world.unhandled(context)


for _what, _methods in _OUTSIDE.items():
    for _method in _methods:
        setattr(ControlledLoop, _method, _refusal(_method, _what))
del _what, _methods, _method


def _timer_key(entry: tuple) -> tuple:
    return entry[0], entry[1]


class _Policy(events.BaseDefaultEventLoopPolicy):
    """asyncio.run, asyncio.new_event_loop and get_event_loop make controlled loops."""

    def __init__(self, world: AioWorld) -> None:
        super().__init__()
        self._world = world

    def new_event_loop(self) -> ControlledLoop:
        return ControlledLoop(self._world)


_stock_init = base_events.BaseEventLoop.__init__


def _refuse_other_loops(self: Any) -> None:
    """Any event loop made in a snapshot must be a ControlledLoop: another one would run the program for real."""
    if not isinstance(self, ControlledLoop):
        world = _runtime._WORLD
        if isinstance(world, AioWorld):
            world.refuse(f"{type(self).__name__}()", "another event loop")
    _stock_init(self)


# --------------------------------------------------------------------------- the roots of the state


class _Roots:
    """What the world holds besides the tasks: every open loop's queues, the policy's loop, the program's stack."""

    __slots__ = ("world",)

    def __init__(self, world: AioWorld) -> None:
        self.world = world

    def __fc_state__(self) -> tuple:
        world = self.world
        loops = []
        for loop in world.loops:
            if not loop._closed:
                loops.append((loop, loop.state(world.ordered)))
        local = world.policy._local
        stack = []
        for frame in world.stack:
            loc = frame.f_locals
            names = sorted(loc)
            values = []
            for name in names:
                values.append((name, loc[name]))
            stack.append((frame.f_code, frame.f_lasti, tuple(values)))
        # What went wrong in the step that led here: an exception in a callback or a task exception never
        # retrieved leaves no other trace, and a state that reports one must not meet one that does not.
        failures = []
        for kind, name, message, _ in world.violations:
            failures.append((kind, name, message))
        return ("asyncio", loops, getattr(local, "_loop", None), getattr(local, "_set_called", False), stack,
                world.finished, failures)


class _Who:
    """The actor of a transition, as the report names it."""

    __slots__ = ("name", "site")

    def __init__(self, name: str, site: str) -> None:
        self.name = name
        self.site = site

    def where(self, library: bool = True) -> str:
        return self.site


class _Option:
    """One choice at a decision point, in the shape ``serve.make_report`` reads (like runtime.Transition)."""

    __slots__ = ("actor", "request", "label", "deviation")

    def __init__(self, actor: _Who, label: str, deviation: int) -> None:
        self.actor = actor
        self.request = None
        self.label = label
        self.deviation = deviation


class _Waiting:
    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def describe(self) -> str:
        return self.what


class _TaskActor:
    """A pending task as the report, the fingerprint and the description see an actor."""

    __slots__ = ("task", "name", "coro", "pending")
    done = False
    failed = False
    daemon = False  # fc.spawn(daemon=True) is @fc.model's; a pending task at the end is a deadlock

    def __init__(self, task: Any) -> None:
        self.task = task
        self.name = task.get_name()
        self.coro = task  # what the fingerprint walks: the task, its coroutine and what it awaits
        self.pending = _Waiting(task_site(task)[1])

    @property
    def status(self) -> str:
        waiter = self.task._fut_waiter
        return "waiting" if waiter is not None and not waiter.done() else "ready"

    def frames(self) -> list[types.FrameType]:
        out = []
        for frame, _ in _chain(self.task._coro):
            if _is_user(frame.f_code.co_filename):
                out.append(frame)
        return out

    def where(self, library: bool = True) -> str:
        return task_site(self.task)[0]


class _RootActor:
    """The loop and the program's stack, walked first; shown as the loop's clock and queues."""

    __slots__ = ("world", "coro")
    name = "(asyncio)"
    done = False
    failed = False
    daemon = False
    pending = None

    def __init__(self, world: AioWorld) -> None:
        self.world = world
        self.coro = _Roots(world)

    @property
    def status(self) -> str:
        loop = self.world.loop
        if loop is None:
            return "no event loop" if not self.world.finished else "the program returned"
        return (f"t={_fmt_time(loop._now)}, {len(loop._ready)} callback(s) ready, {len(loop._timers)} timer(s)"
                + (", closed" if loop._closed else ""))

    def frames(self) -> list[types.FrameType]:
        return [f for f in self.world.stack if _is_user(f.f_code.co_filename)]

    def where(self, library: bool = True) -> str:
        return ""


class _SetupOnly(list):
    """``invariants`` and ``liveness``: declared while main runs to its first await, refused after."""

    def __init__(self, world: AioWorld, what: str) -> None:
        super().__init__()
        self.world = world
        self.what = what

    def __fc_state__(self) -> list:
        return list(self)  # the declared properties (the fingerprint walks world.liveness)

    def append(self, item: Any) -> None:
        if self.world.started:
            self.world.refuse(f"{self.what} declared after main's first await", "setup")
        super().append(item)


class _NoRequests(list):
    """``made``: forkcheck's own primitives (fc.checkpoint, fc.choose, fc.Lock...) are not for asyncio programs."""

    def __init__(self, world: AioWorld) -> None:
        super().__init__()
        self.world = world

    def append(self, item: Any) -> None:
        self.world.refuse(f"forkcheck's {type(item[0]).__name__.lstrip('_').lower()} primitive", "primitive")


# --------------------------------------------------------------------------- the world


class AioWorld(World):
    """An asyncio program inside a snapshot process; the explorer sees it through the World interface.

    ``start_serving(world)`` is the root's report and command loop
    (``serve.serve_root``), entered at the first choice; ``serve_again(world,
    watched)`` reports a new snapshot and serves its requests
    (``serve.report_and_serve``).  Neither returns but by :class:`Resume`.
    ``new_budget()`` gives the next step of a rebuild path a time budget of
    its own (``serve._new_budget``).

    Every callback runs under ``transition_timeout``, as a step of a model
    does: a step the snapshot's timer interrupts (``runtime.Stuck``) is a
    ``timeout`` violation of its task or callback, which asyncio would
    otherwise take for the task's exception.
    """

    blocking = ("Tasks may block only on asyncio's own awaitables (asyncio.sleep, asyncio.Lock, asyncio.Queue, "
                "asyncio.Event, ...)")
    machinery = (_PACKAGE_DIR, _ASYNCIO_DIR)  # the loop runs in asyncio's code between the program's steps

    def __init__(self, start_serving: Callable[[World], None], serve_again: Callable[[World, bool], None],
                 queue_order: bool = False, new_budget: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._start_serving = start_serving
        self._serve_again = serve_again
        self._new_budget = new_budget
        self.order_matters = queue_order  # a bound on deviations: reports carry order_fingerprint()
        self.ordered = False  # the walk in progress takes the loop's queues in their order
        self.invariants = _SetupOnly(self, "fc.invariant()")
        self.constraints = _SetupOnly(self, "fc.constraint()")
        self.liveness = _SetupOnly(self, "a liveness property (fc.eventually, fc.leads_to, ...)")
        self.made = _NoRequests(self)
        self.loops: list[ControlledLoop] = []
        self.loop: ControlledLoop | None = None  # the loop at the last choice
        self.tasks: list[Any] = []  # pending tasks, strongly held (asyncio holds them weakly)
        self.main_task: Any = None
        self.policy = _Policy(self)  # type: ignore[abstract]  # child watchers: subprocesses are refused
        self.thread = threading.get_ident()
        self.stack: list[types.FrameType] = []  # the program's frames below the loop, at the last choice
        self.started = False  # the initial state was reached
        self.finished = False  # the program returned (or raised)
        self.root = True  # this process took no transition yet
        self.handles = 0  # callbacks run so far
        self._options: list[_Option] = []
        self._path: list[int] = []
        self._watched = False
        self._setup_frame: types.FrameType | None = None
        self._simple: dict[tuple[types.CodeType, int], str] = {}
        self._fn: Callable | None = None
        self._main_coro: Any = None  # async def main's coroutine: its task's failure is the program's
        self._main_failure: BaseException | None = None  # reported when main's task failed, not again at the end
        self.arrived = ""

    # -- World's interface ----------------------------------------------------

    @property
    def actors(self) -> list:
        out: list = [_RootActor(self)]
        live = []
        for task in self.tasks:
            if not task.done():
                live.append(task)
        live.sort(key=_task_order)
        for task in live:
            out.append(_TaskActor(task))
        return out

    @actors.setter
    def actors(self, value: list) -> None:
        pass  # World.__init__ sets it; the actors are the world's tasks

    def enabled(self) -> list:
        return self._options

    def order_fingerprint(self) -> bytes:
        """The fingerprint of the state with the loop's queues in their order (the fingerprint has them as multisets)."""
        from .fingerprint import state_fingerprint

        self.ordered = True
        try:
            return state_fingerprint(self)
        finally:
            self.ordered = False

    def execute(self, index: int) -> None:  # pragma: no cover - serve resumes an asyncio program instead
        raise RuntimeError("an asyncio program is resumed (AioWorld.resume), not executed")

    def all_done(self) -> bool:
        return self.finished

    def blocked_message(self) -> str:
        parts = []
        for actor in self.actors[1:]:
            site, what = task_site(actor.task)
            parts.append(f"{actor.name} waits at {_where.short(site)}" + (f" ({what})" if what else ""))
        loop = self.loop
        at = f" at t={_fmt_time(loop._now)}" if loop is not None else ""
        return (f"deadlock{at}: no callback is ready and no timer is pending, and the program has not returned; "
                + ("; ".join(parts) if parts else "no task is pending (the loop runs with nothing to wait for)"))

    def spawn(self, fn: Callable, args: tuple, name: str | None, daemon: bool = False) -> Any:
        self.refuse("fc.spawn()", "primitive")

    def who_runs(self) -> str:
        name = self._running_name()
        return f"task {name}" if name else "the program"

    def resume(self, path: tuple[int, ...], watched: bool) -> None:
        """In a new snapshot (serve's Fork): back to the program, to take ``path``."""
        raise Resume(path, watched)

    def unawaited_coroutine(self, message: str, filename: str, lineno: int) -> None:
        # A coroutine called without await never runs: stock asyncio only warns; here it is the program's bug.
        who = self._running_name()
        self.violations.append(("exception", who or "main",
                                f"{message} (at {_where.short(f'{filename}:{lineno}')}): a coroutine called without "
                                "await does not run; write await before the call, or asyncio.create_task(...)", ""))

    # -- the program ----------------------------------------------------------

    def setup(self, fn: Callable, args: tuple, kwargs: dict) -> None:
        _runtime._WORLD = self
        self._fn = fn
        self._add_globals(fn)
        self.in_setup = True  # fc.invariant() is allowed until the initial state (_SetupOnly checks)
        if self.on_piece is not None:  # the root's setup is one piece: the program up to its first choice
            self.on_piece("the program up to its first await")
            self.on_piece = None
        if tasks.Task is not tasks._PyTask or futures.Future is not futures._PyFuture:
            self.model_error = ("UsageError", "asyncio was imported with its C accelerator before forkcheck could "
                                "block it, so its tasks cannot be seen; check the program with @fc.asyncio_model "
                                "(the snapshot process imports asyncio itself)", "")
            return
        gc.disable()  # garbage (and finalizers: "exception was never retrieved") is collected at fixed points
        base_events.BaseEventLoop.__init__ = _refuse_other_loops  # type: ignore[method-assign]
        events.set_event_loop_policy(self.policy)
        self._setup_frame = sys._getframe()
        try:
            if inspect.iscoroutinefunction(fn):
                self._main_coro = fn(*args, **kwargs)
                asyncio.run(self._main_coro)
            else:
                fn(*args, **kwargs)
        except UsageError as exc:
            self._model_error(exc)
        except BaseException as exc:  # noqa: BLE001 - whatever the program raised
            if exc is not self._main_failure:
                self._program_failed(exc)
        else:
            if not self.loops and self.model_error is None:
                code = getattr(inspect.unwrap(fn), "__code__", None)
                where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
                self.model_error = ("UsageError", f"{getattr(fn, '__qualname__', fn)}{where} never ran an asyncio "
                                    "event loop, so there is nothing to check: decorate an async def main, or a "
                                    "function that calls asyncio.run(...)", "")
        self.finished = True
        self.stack = []
        self.loop = None
        self._options = []
        self._end_checks()
        if not self.root:
            self._serve(final=True)  # a new snapshot: report the end and serve; never returns

    def _program_failed(self, exc: BaseException) -> None:
        """The program (its main) raised ``exc``: a violation, unless it is forkcheck's own UsageError."""
        who = self.main_task.get_name() if self._main_coro is not None and self.main_task is not None else \
            f"{getattr(self._fn, '__name__', 'the program')}()"
        if isinstance(exc, UsageError):
            self._model_error(exc)
        elif isinstance(exc, Stuck):
            self._stuck(exc, "the program", "return")
        elif isinstance(exc, AssertionError):
            self._failed("assertion", exc, who)
        elif isinstance(exc, SystemExit):
            self.violations.append(("crash", "main", f"the program called sys.exit({exc.code!r})", _format_tb(exc)))
        else:
            self._failed("exception", exc, who)

    def _end_checks(self) -> None:
        """At the end of the program: garbage collected (its finalizers report), then unretrieved task exceptions."""
        gc.collect()
        for task in _every_task():
            if task.done() and not task.cancelled() and getattr(task, "_Future__log_traceback", False):
                task._Future__log_traceback = False
                self._task_failure(task, "Task exception was never retrieved")

    # -- choices --------------------------------------------------------------

    def decide(self, loop: ControlledLoop, choices: list[int]) -> int:  # type: ignore[return]  # or never returns
        """A choice point of ``loop``: report the state, and take the transition the explorer forks."""
        self.loop = loop
        self._options = self._describe(loop, choices)
        self._stack_below(sys._getframe(1))
        if self._path and (self.model_error is not None or self.violations):
            # A rebuild path never goes through violating states (a step timed out this time?): stop and
            # report this state, whose fingerprint the explorer finds is not the one it recorded.
            self._path = []
        if self._path:
            if self._new_budget is not None:
                self._new_budget()  # each step of a rebuild path has its own budget
            return self._take(self._path.pop(0))
        if self.root and not self.started:
            if len(choices) == 1 and self.handles == 0 and self.model_error is None:
                return self._take(0)  # setup: main runs to its first await before the initial state
            self.started = True
        try:
            self._serve(final=False)
        except Resume as r:
            # asyncio forgets its running loop in a forked child (it keeps the pid it was set in).
            events._set_running_loop(loop)
            self.root = False
            self._watched = r.watched
            self._path = list(r.path[1:])
            self.violations = []
            self.arrived = ""
            if self.path is not None:
                self.path.extend(r.path)
            return self._take(r.path[0])
        _internal("the snapshot's command loop returned")  # pragma: no cover

    def _serve(self, final: bool) -> None:
        """Report this state and serve the explorer; only a child forked to take a transition comes back."""
        try:
            if self.root:
                self.started = True
                self._start_serving(self)
            else:
                self._serve_again(self, self._watched)
        except Resume:
            if final:
                _internal("a transition was asked of a state that has none")
            raise
        except BaseException:  # noqa: BLE001 - forkcheck's own failure, never the program's: end this process
            _internal("the snapshot's command loop failed")

    def _take(self, index: int) -> int:
        if not 0 <= index < len(self._options):
            _internal(f"transition {index} asked of a state that has {len(self._options)}")
        return index

    def _describe(self, loop: ControlledLoop, choices: list[int]) -> list[_Option]:
        now = _fmt_time(loop._now)
        out = []
        n = len(loop._ready)
        for k in choices:
            if k < 0:
                when = loop._timers[0][0]
                label = (f"t={now} clock (early, {n} ready): time passes to t={_fmt_time(max(when, loop._now))}")
                out.append(_Option(_Who("clock", ""), label, 1))
                continue
            handle = loop._ready[k]
            task = _task_of(handle)
            note = f" ({_ordinal(k + 1)} of {n} ready)" if k else ""
            if task is not None:
                site, what = task_site(task)
                who = _Who(task.get_name(), site)
                label = f"t={now} task {who.name}{note}: {_where.short(site)}" + (" (start)" if what == "start" else "")
            else:
                who = _Who("loop", "")
                kind = "timer" if isinstance(handle, events.TimerHandle) else "callback"
                label = f"t={now} {kind}{note}: {_callback_name(handle)}"
            out.append(_Option(who, label, 1 if k else 0))
        return out

    def after(self, loop: ControlledLoop, handle: Any, task: Any) -> None:
        """After a transition: garbage collected (finalizers report), tasks that ended, where the task stopped."""
        self.handles += 1
        gc.collect()  # at a fixed point, so that what finalizers do is the same in every run
        if task is not None:
            self.arrived = _outcome(task)
        elif handle is None:
            self.arrived = "timers due"
        else:
            self.arrived = _effect(loop, handle)
        still = []
        for t in self.tasks:
            if t.done():
                exc = None if t.cancelled() else t._exception
                if isinstance(exc, Stuck):  # the timer interrupted the task's step: asyncio made it its exception
                    t._Future__log_traceback = False  # reported here, not as never retrieved
                    self._stuck(exc, f"task {t.get_name()}", name=t.get_name())
                elif isinstance(exc, UsageError):
                    self._model_error(exc)
                elif exc is not None and t._coro is self._main_coro and self._main_failure is None:
                    self._main_failure = exc  # nothing can catch it: asyncio.run raises it after clean-up
                    self._program_failed(exc)
            else:
                still.append(t)
        self.tasks = still

    def _stack_below(self, frame: types.FrameType | None) -> None:
        """The program's frames between the setup and the loop's choice: their locals are state."""
        stack = []
        setup = self._setup_frame
        while frame is not None and frame is not setup:
            if frame.f_code.co_filename != _THIS and not frame.f_code.co_filename.startswith(_PACKAGE_DIR):
                stack.append(frame)
                if _is_user(frame.f_code.co_filename):
                    self._check_simple(frame)
            frame = frame.f_back
        stack.reverse()
        self.stack = stack

    def _check_simple(self, frame: types.FrameType) -> None:
        """A frame of the program that runs the loop must hold nothing the walk cannot see (its value stack)."""
        key = (frame.f_code, frame.f_lasti)
        problem = self._simple.get(key)
        if problem is None:
            problem = self._simple[key] = _hidden_values(frame)
        if problem and self.model_error is None:
            self.model_error = ("UsageError", problem, "")

    # -- tasks ----------------------------------------------------------------

    def track(self, task: Any) -> None:
        if self.main_task is None:
            self.main_task = task
        self.tasks.append(task)
        self._add_task_globals(task)

    def _add_task_globals(self, task: Any) -> None:
        coro = getattr(task, "_coro", None)
        frame = getattr(coro, "cr_frame", None)
        g = getattr(frame, "f_globals", None)
        if frame is not None and g is not None and _is_user(frame.f_code.co_filename) and all(g is not r for r in self.globals_roots):
            self.globals_roots.append(g)
            self.globals_roots.sort(key=lambda d: str(d.get("__name__", "")))

    def task_name(self, loop: ControlledLoop, coro: Any) -> str:
        """A canonical name: ``base-k``, the smallest k no live task has, under the parent's name.

        The base is the coroutine function's name; children of the main task
        (and tasks made outside any task) go by it alone (``inc-1``), children
        of other tasks under their parent's (``worker-1/fetch-1``).  The name
        depends only on the parent and the tasks alive, never on the order in
        which other tasks ran, so that equal states reached by different
        schedules meet; a task's name is free again once it is done.
        """
        base = getattr(coro, "__name__", None)
        if base is None and type(coro).__name__ == "async_generator_athrow":  # the loop's aclose() of a generator
            refs = gc.get_referents(coro)
            base = f"{getattr(refs[0], '__name__', 'async_generator')}.aclose" if refs else None
        base = base or type(coro).__name__
        parent = tasks._current_tasks.get(loop)
        live = set()
        for t in self.tasks:
            if not t.done():
                live.add(t.get_name())
        if parent is None and base not in live and self.main_task is None:
            return base
        prefix = "" if parent is None or parent is self.main_task else f"{parent.get_name()}/"
        k = 1
        while f"{prefix}{base}-{k}" in live:
            k += 1
        return f"{prefix}{base}-{k}"

    def _running_name(self) -> str:
        loop = self.loop
        task = tasks._current_tasks.get(loop) if loop is not None else None
        return task.get_name() if task is not None else ""

    # -- failures -------------------------------------------------------------

    def unhandled(self, context: dict) -> None:
        """The loop's exception handler: what stock asyncio logs is a violation here."""
        exc = context.get("exception")
        message = context.get("message") or "unhandled exception"
        handle = context.get("handle")
        if handle is not None and message.startswith("Exception in callback"):
            message = f"Exception in callback {_callback_name(handle)}"  # asyncio's names the file by its path
        message = _runtime._ADDRESS.sub("", message)  # the message is state: the same in every process
        owner = context.get("task") or context.get("future")
        name = owner.get_name() if isinstance(owner, tasks.Task) else self._running_name() or "loop"
        if isinstance(exc, UsageError):
            self._model_error(exc)
            return
        if isinstance(exc, Stuck):  # the timer interrupted a callback (Handle._run passes it here)
            if handle is not None:
                self._stuck(exc, f"callback {_callback_name(handle)}", "return", name)
            else:
                self._stuck(exc, f"task {name}", name=name)
            return
        text = f"{message}: {type(exc).__name__}: {_one_line(exc)}" if exc is not None else message
        if isinstance(owner, tasks.Task):
            text = f"task {name}: {text}"
        kind = "assertion" if isinstance(exc, AssertionError) else "exception"
        self.violations.append((kind, name, text, _format_tb(exc) if exc is not None else ""))

    def _stuck(self, exc: Stuck, who: str, what: str = "reach its next await", name: str = "") -> None:
        """The snapshot's timer interrupted ``who`` (serve.py): a timeout violation of ``name``, once per step."""
        for v in self.violations:
            if v[0] == "timeout":
                return
        name = name or (self.main_task.get_name() if self.main_task is not None else "main")
        self.violations.append(("timeout", name, stuck_message(who, exc.seconds, exc.where, what,
                                                               blocking=self.blocking), _format_tb(exc)))

    def _task_failure(self, task: Any, message: str) -> None:
        self.unhandled({"message": message, "exception": task._exception, "task": task})

    def _failed(self, kind: str, exc: BaseException, who: str) -> None:
        name = self.main_task.get_name() if self.main_task is not None else "main"
        if kind == "assertion":
            text = _one_line(exc) if str(exc).strip() else (_runtime._failing_line(exc) or "assert failed")
            message = f"assertion failed in {who}: {text}"
        else:
            text = str(exc).strip()
            message = f"{who} raised {type(exc).__name__}" + (f": {_one_line(exc)}" if text else "")
        self.violations.append((kind, name, message, _format_tb(exc)))

    def _model_error(self, exc: BaseException) -> None:
        if self.model_error is None:  # the first mistake is the one reported
            self.model_error = ("UsageError", str(exc), "")

    def refuse(self, call: str, what: str) -> None:
        """The program reached outside the model (or misused forkcheck): a model error naming the call, raised."""
        site = _caller_site()
        at = f" at {_where.short(site)}" if site else ""
        if what in _FIX:
            text = (f"the program calls {call}{at}: {what} are outside what forkcheck can explore (the real world "
                    f"would run on, unseen); {_FIX[what]}")
        elif what == "another event loop":
            text = (f"the program makes an event loop of its own, {call}{at}, which would run it unseen: let "
                    "asyncio.run() or asyncio.new_event_loop() make the loop (forkcheck controls those)")
        elif what == "setup":
            text = (f"{call}{at}: declare properties in main before its first await (they hold in every state "
                    "from the initial one)")
        else:
            text = (f"{call}{at} belongs to @fc.model programs; an asyncio program uses asyncio's own "
                    "(asyncio.sleep(0), asyncio.Lock, asyncio.Queue, asyncio.Event)")
        if self.model_error is None:
            self.model_error = ("UsageError", text, "")
        raise UsageError(text)


def _format_tb(exc: BaseException) -> str:
    """The program's traceback: its own frames and the libraries', asyncio's machinery and forkcheck's left out."""
    import traceback

    frames = [fs for fs in traceback.extract_tb(exc.__traceback__)
              if not fs.filename.startswith(_PACKAGE_DIR) and not fs.filename.startswith(_ASYNCIO_DIR)]
    lines = ["Traceback (most recent call last):\n"] + traceback.format_list(frames)
    return "".join(lines + traceback.format_exception_only(type(exc), exc))


def _task_order(task: Any) -> tuple:
    return (task.get_name(),)


def _caller_site() -> str:
    """file:line of the innermost frame of the program's own code on the stack."""
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None:
        if _is_user(frame.f_code.co_filename):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def _effect(loop: ControlledLoop, handle: Any) -> str:
    """What a callback did, for the end of its trace line: the tasks it woke, or that the loop stops."""
    woken = []
    for h in loop._ready:
        task = _task_of(h)
        if task is not None and task.get_name() not in woken:
            woken.append(task.get_name())
    if loop._stopping:
        return "the loop stops"
    return f"wakes task {', '.join(woken)}" if woken else "done"


def _callback_name(handle: Any) -> str:
    cb = handle._callback
    name = label_text(cb, 40)
    owner = None
    for arg in handle._args or ():
        if isinstance(arg, futures.Future):
            owner = arg
            break
    if owner is not None:
        for t in _every_task():
            if getattr(t, "_fut_waiter", None) is owner:
                return f"{name} (wakes task {t.get_name()})"
    return name


# --------------------------------------------------------------------------- the program's own frames


def _runners(block: ast.With | ast.AsyncWith, frame: types.FrameType) -> bool:
    """Whether every context manager of a with block is an asyncio.Runner bound to a name (``as runner``)."""
    for item in block.items:
        var = item.optional_vars
        if not (isinstance(var, ast.Name) and isinstance(frame.f_locals.get(var.id), asyncio.Runner)):
            return False
    return True


def _hidden_values(frame: types.FrameType) -> str:
    """Why the frame may hold values on its evaluation stack that the walk cannot see, or "".

    A frame of the program's own code that runs the loop (``asyncio.run(...)``
    inside a function) is running, not suspended, so only its locals can be
    read.  The call it makes must then be a whole statement (``asyncio.run(x)``,
    ``r = asyncio.run(x)``, ``return asyncio.run(x)``), outside ``for`` loops
    (their iterator is on the stack) and ``with`` blocks (the context manager's
    exit is), except ``with asyncio.Runner() as runner``.
    """
    code = frame.f_code
    where = f"{code.co_filename}:{frame.f_lineno}"
    fix = ("call it as a statement of its own (asyncio.run(main()), result = asyncio.run(main()) or return "
           "asyncio.run(main())), outside for loops and with blocks, or decorate the async main itself")
    lines = linecache.getlines(code.co_filename)
    if not lines:
        return (f"{code.co_qualname}() at {_where.short(where)} runs the event loop, and forkcheck cannot read its "
                f"source to see what it holds meanwhile: {fix}")
    try:
        tree = ast.parse("".join(lines), code.co_filename)
    except SyntaxError:  # pragma: no cover - the source changed since it was loaded
        return f"{code.co_qualname}() at {_where.short(where)}: its source no longer parses: {fix}"
    positions = list(code.co_positions())
    k = frame.f_lasti // 2
    if not 0 <= k < len(positions) or positions[k][0] is None:
        return f"{code.co_qualname}() at {_where.short(where)}: the call that runs the loop cannot be found: {fix}"
    l0, l1, c0, c1 = positions[k]
    parents: dict[ast.AST, ast.AST] = {}
    call: ast.AST | None = None
    for n in ast.walk(tree):
        for child in ast.iter_child_nodes(n):
            parents[child] = n
        if (isinstance(n, (ast.Call, ast.With)) and n.lineno == l0 and n.end_lineno == l1
                and n.col_offset == c0 and n.end_col_offset == c1):
            call = n  # a call, or the exit of a with block (asyncio.Runner's __exit__ runs the loop too)
    if call is None:
        return f"{code.co_qualname}() at {_where.short(where)}: the call that runs the loop cannot be found: {fix}"
    if isinstance(call, ast.With):
        stmt: ast.AST | None = call
        ok = _runners(call, frame)
    else:
        stmt = parents.get(call)
        ok = (isinstance(stmt, (ast.Expr, ast.Return)) or (isinstance(stmt, (ast.Assign, ast.AnnAssign))
                                                            and stmt.value is call))
    node: ast.AST | None = stmt
    while ok and node is not None and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
        parent = parents.get(node)
        if isinstance(parent, (ast.For, ast.AsyncFor)) and node in parent.body:
            ok = False  # the loop's iterator is on the stack
        elif isinstance(parent, ast.ExceptHandler) or (isinstance(parent, ast.Try) and node in parent.finalbody):
            ok = False  # so may be the exception being handled
        elif isinstance(parent, (ast.With, ast.AsyncWith)) and node in parent.body:
            ok = _runners(parent, frame)  # the exit of the block is on the stack: only Runner's is its local
        node = parent
    if ok:
        return ""
    text = ast.get_source_segment("".join(lines), call) or "the call"
    return (f"{code.co_qualname}() at {_where.short(where)} runs the event loop inside an expression, a for loop or "
            f"a with block ({text}), whose pending values forkcheck cannot see: {fix}")
