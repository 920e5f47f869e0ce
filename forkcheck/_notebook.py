"""Interactive exploration: every state a live process you can step, rewind and inspect.

An :class:`Explorer` starts the model's root snapshot process and keeps it, and
every state reached from it, alive until :meth:`Explorer.close`.  A
:class:`Node` is one such state: :meth:`Node.step` forks its process once per
transition taken (the same transition always gives back the same Node), so
going back is just using the parent, and :meth:`Node.eval` runs a function in a
throwaway fork of the state.  :meth:`Explorer.run` explores exhaustively from
the live tree and returns the same :class:`~forkcheck.CheckResult` as
:meth:`forkcheck.Model.check`.

The explorer talks to its snapshot processes from one long-lived trio event
loop in a daemon thread; every public method hands its work to that loop with
``trio.from_thread.run`` and waits.  So it works the same in a plain script and
inside a running Jupyter kernel (whose own asyncio loop runs in the main
thread).  Display helpers (``_repr_html_`` of nodes, results, traces and
violations, the SVG picture of the explored graph, the ipywidgets explorer)
live here too; they escape every text they show.
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import networkx as nx
import trio

from . import _protocol as P
from ._errors import Interrupted, ModelError, NondeterminismError, UsageError
from ._model import as_model
from ._results import CheckResult, Stats, Violation
from ._check.snapshots import Snapshot, SnapshotTree, raise_model_error
from ._graph import StateGraph, violation_kinds
from ._html import _CELL, _RED, _TABLE, _e, state_html, trace_html
from . import _where
from ._trace import Step, Trace, format_state

__all__ = ["Explorer", "Node", "Actor", "Frame", "SVG", "ExplorerWidget"]

_GRAPH_IN_NODE_VIEW = 150  # a node's HTML view embeds the graph picture up to this many states


# --------------------------------------------------------------------------- small value types


@dataclass(frozen=True)
class Frame:
    """One frame of an actor's coroutine chain: function, file:line, locals as reprs."""

    function: str
    where: str
    locals: dict[str, str]


@dataclass(frozen=True)
class Actor:
    """An actor in a state: its name, status ("waiting", "done", "failed"), what it waits for and where.

    ``frames`` is its coroutine chain, outermost first; ``locals`` are those of
    the innermost frame, the one it is stopped in (values as reprs).
    """

    name: str
    status: str
    waiting: str
    where: str
    frames: tuple[Frame, ...] = ()

    @property
    def locals(self) -> dict[str, str]:
        return dict(self.frames[-1].locals) if self.frames else {}

    def __str__(self) -> str:
        status = f"waiting for {self.waiting}" if self.waiting and self.status == "waiting" else \
            f"{self.status}, waiting for {self.waiting}" if self.waiting else self.status
        pos = f" at {_where.short(self.where)}" if self.where else ""
        return f"{self.name}: {status}{pos}"


class SVG(str):
    """SVG markup (a ``str``) that Jupyter shows as a picture."""

    def _repr_html_(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"<SVG picture, {len(self)} characters>"


# --------------------------------------------------------------------------- the event loop thread


class _Loop:
    """One trio event loop in a daemon thread; other threads call into it and wait."""

    def __init__(self) -> None:
        self.token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="forkcheck-explorer-loop", daemon=True)
        self.thread.start()
        self._ready.wait()
        if self._error is not None:  # pragma: no cover - trio failed to start
            raise self._error

    def _main(self) -> None:
        async def serve() -> None:
            self._stop = trio.Event()
            self.token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()

        try:
            trio.run(serve)
        except BaseException as exc:  # noqa: BLE001 - reported to the thread that waits
            self._error = exc
            self._ready.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and self._stop is not None and not self._stop.is_set()

    def call(self, afn: Callable, *args: Any, cancellable: bool = False) -> Any:
        """Run ``await afn(*args)`` in the loop and return its result.

        A KeyboardInterrupt while waiting cancels the call when ``cancellable``;
        otherwise the call finishes in the background (a half-done request
        would leave a snapshot's channel out of step).
        """
        if threading.current_thread() is self.thread:
            raise UsageError("an Explorer method was called from inside its own event loop")
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            raise UsageError("Explorer methods block: from trio code call them in a thread, "
                             "e.g. await trio.to_thread.run_sync(node.step, 0)")
        scope = trio.CancelScope()
        finished = threading.Event()

        async def guarded() -> Any:
            try:
                with scope:
                    return await afn(*args)
                raise KeyboardInterrupt  # cancelled: only after an interrupt
            finally:
                finished.set()

        try:
            return trio.from_thread.run(guarded, trio_token=self.token)
        except KeyboardInterrupt:
            if cancellable and not finished.is_set():
                try:
                    trio.from_thread.run_sync(scope.cancel, trio_token=self.token)
                except (trio.RunFinishedError, RuntimeError):  # pragma: no cover
                    pass
                finished.wait(30)  # let the call clean up before the interrupt goes on
            raise

    def call_sync(self, fn: Callable, *args: Any, timeout: float = 10.0) -> bool:
        """Run ``fn(*args)`` in the loop; False if it did not run within ``timeout``."""
        if not self.alive or threading.current_thread() is self.thread:
            return False
        done = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        assert self.token is not None  # set before __init__ returns
        try:
            self.token.run_sync_soon(run)
        except trio.RunFinishedError:
            return False
        return done.wait(timeout)

    def stop(self) -> None:
        if self._stop is not None and self.token is not None:
            try:
                self.token.run_sync_soon(self._stop.set)
            except trio.RunFinishedError:
                pass
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=5)


def _shutdown(loop: _Loop, tree: SnapshotTree) -> None:
    """End every snapshot process and the loop thread (``Explorer.close``, the finalizer, atexit)."""
    if not loop.call_sync(tree.close):
        tree.close()  # the loop is gone or stuck: close from here (sockets, then the process group)
    loop.stop()


# --------------------------------------------------------------------------- the explorer


class Explorer:
    """Step through a model's states by hand; every state is a live, stopped process.

    Parameters
    ----------
    model : Model or @forkcheck.model function
        What to explore (a decorated function means its default arguments).
    deadlock : bool
        Count states where no actor can move (and not all have returned) as
        violations, as :meth:`forkcheck.Model.check` does by default.
    transition_timeout : float
        Seconds a transition may take before its state is reported as a timeout.
    memory_limit : int, optional
        Address-space limit of each snapshot process, in bytes (as for ``check``).
    huge_pages : bool
        Put the snapshots' heap on 2 MiB pages, so that big heaps fork fast (as
        for ``check``).
    opaque : {"error", "distinct"}
        A state holding an object whose contents forkcheck cannot see: refused
        with :class:`forkcheck.OpaqueStateError`, or kept apart from every
        other state (as for ``check``); :meth:`run` uses the same.
    symmetry : bool
        With values declared by :func:`forkcheck.symmetric`, states that differ
        only by a permutation of them are one node (as for ``check``);
        :meth:`run` uses the same.

    Notes
    -----
    :meth:`close` (or leaving a ``with`` block) ends every process; so does the
    Explorer being garbage collected, and the interpreter (or Jupyter kernel)
    exiting.  Should this process die, the snapshot processes see their
    channels close and exit on their own.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def race():
    ...     state = {"n": 0}
    ...     async def inc():
    ...         tmp = state["n"]           # both actors read n = 0 ...
    ...         await fc.checkpoint()
    ...         state["n"] = tmp + 1       # ... then each writes 0 + 1
    ...     fc.spawn(inc, name="a"); fc.spawn(inc, name="b")
    ...     return state
    >>> ex = fc.Explorer(race)
    >>> [str(t) for t in ex.root.transitions]
    ['a: checkpoint', 'b: checkpoint']
    >>> a = ex.root.step("a")
    >>> a is ex.root.step(0), a.parent is ex.root, a.eval(lambda state: state["n"])
    (True, True, 1)
    >>> done = a.step("b")
    >>> done.eval(lambda state: state["n"]), done.done, [s.actor for s in done.trace]
    (1, True, ['a', 'b'])
    >>> ex.close()
    """

    def __init__(self, model: Any, *, deadlock: bool = True, transition_timeout: float = 30.0,
                 memory_limit: int | None = None, huge_pages: bool = True, opaque: str = "error",
                 symmetry: bool = True) -> None:
        from ._check.options import CheckOptions

        CheckOptions(opaque=opaque, symmetry=symmetry)  # one message for a bad value, as check() gives
        self.model = as_model(model)
        self.opaque = opaque
        self.symmetry = symmetry
        self.deadlock = bool(deadlock)
        self.graph = StateGraph()
        self._sids: dict[str, int] = {}
        self._closed = False
        self._loop = _Loop()
        self._tree = SnapshotTree(self.model, transition_timeout, huge_pages=bool(huge_pages), opaque=opaque,
                                  symmetry=symmetry)
        self._tree.memory_limit = memory_limit
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._tree)
        try:
            snap = self._loop.call(self._tree.start)
        except BaseException:
            self.close()
            raise
        self.root = Node(self, snap, None, None)

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """End every snapshot process of this explorer and its event loop thread; safe to call twice."""
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (or the explorer was garbage-collected): its states are gone."""
        return self._closed or not self._finalizer.alive

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def processes(self) -> list[int]:
        """The pids of the live snapshot processes (the root and every state stepped to)."""
        return sorted(s.pid for s in self._tree.live if not s.closed)

    def _check_open(self) -> None:
        if self.closed:
            raise UsageError("this Explorer is closed: its snapshot processes have ended; make a new one")

    def _call(self, afn: Callable, *args: Any, cancellable: bool = False) -> Any:
        self._check_open()
        return self._loop.call(afn, *args, cancellable=cancellable)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.processes)} live processes"
        return f"<Explorer {self.model!r}: {self.graph.number_of_nodes()} states seen, {state}>"

    # -- the graph of everything seen -------------------------------------------------

    def _state_id(self, report: P.Report, deadlock: bool | None = None) -> int:
        fp = report.fingerprint.hex()
        sid = self._sids.get(fp)
        if sid is None:
            sid = self._sids[fp] = len(self._sids)
            self.graph.add_state(sid, report, self.deadlock if deadlock is None else deadlock)
        return sid

    # -- navigation ---------------------------------------------------------------------

    def goto(self, trace: Trace | str | Violation) -> Node:
        """The node a trace leads to from the root, stepping (and forking) as needed.

        ``trace`` is a :class:`~forkcheck.Trace`, its token, or a
        :class:`~forkcheck.Violation` (its counterexample), e.g. one that
        :meth:`run` found.

        Examples
        --------
        >>> import forkcheck as fc
        >>> @fc.model
        ... def coin():
        ...     async def flip():
        ...         side = await fc.choose(["heads", "tails"])
        ...         assert side == "heads"
        ...     fc.spawn(flip)
        >>> with fc.Explorer(coin) as ex:
        ...     bad = ex.goto(ex.run().violations[0])
        ...     print(bad.violations[0].kind, bad.trace[0].label)
        assertion choose 'tails'
        """
        if isinstance(trace, Violation):
            trace = trace.trace
        if isinstance(trace, str):
            trace = Trace.from_token(trace)
        node = self.root
        for k, st in enumerate(trace, 1):
            ts = node.transitions
            if st.index >= len(ts) or ts[st.index].actor != st.actor or ts[st.index].label != st.label:
                enabled = "; ".join(map(str, ts)) or "none"
                raise NondeterminismError(f"step {k} of the trace takes '{st.actor}: {st.label}', but that state "
                                          f"enables: {enabled}; the trace is not one of this model's")
            node = node.step(st.index)
        return node

    # -- exhaustive search ----------------------------------------------------------------

    def run(self, strategy: str = "bfs", *, start: Node | None = None, **options: Any) -> CheckResult:
        """Explore exhaustively from the live tree, like :meth:`forkcheck.Model.check`.

        The search forks the live ``start`` state (default: the root) and
        releases every process it made when it ends; the nodes you stepped to
        stay alive.  Everything it saw is added to :attr:`graph`.

        Parameters
        ----------
        strategy : {"dfs", "bfs", "random"}
            Search order, as for ``check``.
        start : Node, optional
            Explore from this state; the counterexamples' traces still start
            at the initial state.
        **options
            The options of :meth:`forkcheck.Model.check` (the fields of
            :class:`forkcheck.CheckOptions`: ``max_states``, ``max_depth``,
            ``jobs``, ``stop_on_violation``, ...), validated as ``check``
            validates them; ``deadlock`` defaults to the explorer's.

        Returns
        -------
        CheckResult
            The same states, transitions and violations as ``check`` finds
            (from the root), with the result's own graph.

        Raises
        ------
        forkcheck.Interrupted
            On Ctrl-C, as ``check`` does: its ``result`` holds the counts and
            violations so far (and what was seen is in :attr:`graph`); the
            search's processes have ended, the nodes you stepped to live on.

        Examples
        --------
        >>> import forkcheck as fc
        >>> @fc.model
        ... def two():
        ...     async def a():
        ...         await fc.checkpoint()
        ...     fc.spawn(a); fc.spawn(a)
        >>> with fc.Explorer(two) as ex:
        ...     r = ex.run(strategy="bfs")
        ...     print(r.stats.states, r.stats.transitions, r.ok, ex.graph.number_of_nodes())
        4 4 True 4
        """
        from ._check.options import CheckOptions

        start = self.root if start is None else start
        if not isinstance(start, Node) or start.explorer is not self:
            raise UsageError("run(start=...) takes a Node of this Explorer")
        options.setdefault("deadlock", self.deadlock)
        if options.get("memory_limit") is not None:
            raise UsageError("memory_limit applies to the processes of the explorer: give it to Explorer(...)")
        if options.setdefault("opaque", self.opaque) != self.opaque:
            raise UsageError(f"opaque={options['opaque']!r} differs from the Explorer's opaque={self.opaque!r}: "
                             "the snapshot processes were started with it; give it to Explorer(...)")
        if options.setdefault("symmetry", self.symmetry) != self.symmetry:
            raise UsageError(f"symmetry={options['symmetry']!r} differs from the Explorer's symmetry={self.symmetry!r}: "
                             "the snapshot processes were started with it; give it to Explorer(...)")
        opts = CheckOptions.parse(strategy=strategy, **options)
        if opts.backend != "local":
            raise UsageError(f"backend={opts.backend!r}: an Explorer runs its searches on its own snapshot processes; "
                             "use Model.check(backend='ray') for a cluster")
        if start.snap.report.pid == 0 or start.snap.closed:
            raise UsageError(f"{start!r} has no process to explore from (its transition crashed or timed out)")
        t0 = time.perf_counter()
        running: dict[str, Any] = {}  # the search, for the partial result of an interrupted run
        try:
            search, peak = self._call(self._search, start, opts, running, cancellable=True)
        except KeyboardInterrupt:
            if "search" not in running:
                raise
            # Ctrl-C: the search's processes are gone (the call was cancelled); what it found is kept,
            # as check() keeps it.
            search, peak = running["search"], running["tree"].peak
            search.interrupted = "SIGINT"
        prefix = start.trace.steps
        if prefix:
            for v in search.violations:
                cyc = v.trace.cycle_start
                v.trace = Trace(prefix + v.trace.steps, None if cyc is None else cyc + len(prefix),
                                module=v.trace.module, model=v.trace.model, symmetry=self.symmetry)
            search.discoveries = {k: (None if t is None else Trace(prefix + t.steps, t.cycle_start, module=t.module,
                                                                    model=t.model, symmetry=self.symmetry))
                                  for k, t in search.discoveries.items()}
        from ._check.search import attach_commands, give_warnings

        attach_commands(search.violations, self.model, opts.transition_timeout)
        give_warnings(search.warnings)
        self._merge(search.graph, opts.deadlock)
        stats = Stats(
            states=len(search.seen),
            transitions=search.transitions,
            max_depth=search.max_shortest_depth(),
            seconds=time.perf_counter() - t0,
            memory=self._tree.memory.stats(peak),
            reduction=search.reduction.name,
            skipped=search.reduction.skipped(),
            symmetry=dict(search.symmetric),
        )
        result = CheckResult(search.violations, stats, search.graph, incomplete=search.incomplete,
                             model=repr(self.model), discoveries=search.discoveries)
        if search.interrupted:
            raise Interrupted(result, search.interrupted)
        return result

    async def _search(self, start: Node, opts: Any, running: dict[str, Any] | None = None) -> tuple[Any, int]:
        from ._check.search import Search, run_search

        tree = _Guarded(self._tree, start.snap)
        before = set(self._tree.live)
        try:
            search = Search(tree, self.model, opts)  # type: ignore[arg-type]  # a proxy of the SnapshotTree
            if running is not None:
                running.update(search=search, tree=tree)
            await run_search(search, start.snap)
        finally:
            for snap in list(self._tree.live - before):  # the search's own processes; not the nodes'
                self._tree.release(snap)
        return search, tree.peak

    def _merge(self, graph: nx.DiGraph, deadlock: bool) -> None:
        ids = {}
        for sid, data in graph.nodes(data=True):
            fp = data["fingerprint"]
            if fp not in self._sids:
                self._sids[fp] = len(self._sids)
                self.graph.add_node(self._sids[fp], **{k: (list(v) if isinstance(v, list) else v)
                                                       for k, v in data.items()})
            ids[sid] = self._sids[fp]
        for u, v, data in graph.edges(data=True):
            for step in data["steps"]:
                self.graph.add_step(ids[u], ids[v], step, once=True)

    # -- display --------------------------------------------------------------------------

    def graph_svg(self, current: Node | None = None, max_states: int = 400) -> SVG:
        """A picture of :attr:`graph`: states in layers by distance from the initial state.

        The path to ``current`` is drawn in blue (the state itself ringed),
        violating states in red and final states (every actor returned) in
        green.  Hover a state or an edge for its details.

        Examples
        --------
        >>> import forkcheck as fc
        >>> @fc.model
        ... def one():
        ...     async def a():
        ...         await fc.checkpoint()
        ...     fc.spawn(a)
        >>> with fc.Explorer(one) as ex:
        ...     svg = ex.graph_svg(current=ex.root.step(0))
        >>> svg.startswith("<svg") and svg.count("<circle") >= 2
        True
        """
        path = [n.id for n in current.path] if current is not None else []
        return graph_svg(self.graph, path, max_states=max_states)

    def widget(self, start: Node | None = None) -> ExplorerWidget:
        """An ipywidgets explorer: a button per enabled transition, back and root buttons, the state view.

        Needs ``ipywidgets``.  The returned object displays as the widget;
        ``.node`` is the state it shows, ``.buttons`` the transition buttons.

        Examples
        --------
        >>> import forkcheck as fc
        >>> @fc.model
        ... def one():
        ...     async def a():
        ...         await fc.checkpoint()
        ...     fc.spawn(a, name="a")
        >>> with fc.Explorer(one) as ex:
        ...     w = ex.widget()
        ...     [b.description for b in w.buttons]
        ...     w.buttons[0].click()
        ...     w.node.depth, w.node.done
        ['a: checkpoint']
        (1, True)
        """
        return ExplorerWidget(self, self.root if start is None else start)

    def _repr_html_(self) -> str:
        head = html.escape(repr(self))
        return f"<div><b>{head}</b>{self.graph_svg() if len(self.graph) <= _GRAPH_IN_NODE_VIEW else ''}</div>"


class _Guarded:
    """The explorer's SnapshotTree as a search sees it: it cannot end the start node's process.

    Its ``root`` is the start node's snapshot, from which evicted states are
    rebuilt.  Requests to that process are shielded from cancellation, so that
    an interrupted search never leaves its channel half-way through a request.
    Other attributes are the tree's (setting one sets the tree's).
    """

    _tree: SnapshotTree
    _keep: Snapshot
    root: Snapshot
    peak: int

    def __init__(self, tree: SnapshotTree, keep: Snapshot) -> None:
        object.__setattr__(self, "_tree", tree)
        object.__setattr__(self, "_keep", keep)
        object.__setattr__(self, "root", keep)
        object.__setattr__(self, "peak", len(tree.live))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tree, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "peak":
            object.__setattr__(self, name, value)
        else:
            setattr(self._tree, name, value)

    def release(self, snap: Snapshot) -> None:
        if snap is not self._keep:
            self._tree.release(snap)

    async def step(self, snap: Snapshot, index: int, reseed: bool = False, in_place: bool = False) -> Snapshot:
        # in_place never names the start node: it is this search's root (Search._in_place).
        with trio.CancelScope(shield=snap is self._keep):
            child = await self._tree.step(snap, index, reseed, in_place=in_place)
        self.peak = max(self.peak, len(self._tree.live))
        return child

    async def footprint(self, snap: Snapshot) -> None:
        with trio.CancelScope(shield=snap is self._keep):
            await self._tree.footprint(snap)

    async def describe(self, snap: Snapshot) -> P.Description | None:
        with trio.CancelScope(shield=snap is self._keep):
            return await self._tree.describe(snap)
        return None  # not reached: this scope is never cancelled itself, so it swallows no exception


# --------------------------------------------------------------------------- nodes


class Node:
    """One state of an :class:`Explorer`: a live, stopped process.

    Nodes are made by :meth:`step`; ``explorer.root`` is the initial state.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def counter():
    ...     state = {"n": 0}
    ...     async def inc():
    ...         state["n"] += 1
    ...         await fc.checkpoint()
    ...     fc.spawn(inc, name="a")
    ...     fc.invariant(lambda: state["n"] < 1, name="small")
    ...     return state
    >>> with fc.Explorer(counter) as ex:
    ...     n = ex.root.step("a")
    ...     print(n.parent is ex.root, n.depth, n.eval(lambda s: s["n"]), [v.name for v in n.violations])
    True 1 1 ['small']
    """

    def __init__(self, explorer: Explorer, snap: Snapshot, parent: Node | None, index: int | None) -> None:
        self.explorer = explorer
        self.snap = snap
        self.parent = parent
        self.index = index
        self.depth: int = 0 if parent is None else parent.depth + 1
        self.children: dict[int, Node] = {}
        self._desc: P.Description | None = None
        self._described = False
        rep = snap.report
        self.transitions = [Step.of(i, t) for i, t in enumerate(rep.transitions)]
        self.id = explorer._state_id(rep)
        if parent is not None:
            assert index is not None  # a child is reached by a transition
            info = parent.transitions[index]
            self.last_step: Step | None = Step.of(index, info, rep.fingerprint.hex(), rep.arrived)
            explorer.graph.add_step(parent.id, self.id, self.last_step, once=True)
        else:
            self.last_step = None

    # -- the state -------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """The state's fingerprint (hex): equal fingerprints, same state."""
        return self.snap.report.fingerprint.hex()

    @property
    def done(self) -> bool:
        """Every actor has returned."""
        return self.snap.report.all_done

    @property
    def blocked(self) -> str:
        """Why no actor can move, when none can and not all have returned; else ""."""
        return self.snap.report.blocked

    @property
    def alive(self) -> bool:
        """Whether the state's process is still there (a crashed or timed-out transition has none)."""
        return not self.snap.closed and self.snap.report.pid != 0 and not self.explorer.closed

    @property
    def path(self) -> list[Node]:
        """The nodes from the root to this one."""
        out: list[Node] = []
        node: Node | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    @property
    def trace(self) -> Trace:
        """The transitions from the initial state to this one."""
        return Trace([n.last_step for n in self.path[1:]], symmetry=self.explorer.symmetry)  # type: ignore[misc]  # only the root has none

    @property
    def violations(self) -> list[Violation]:
        """The properties this state violates (with a deadlock, if the explorer counts them)."""
        rep = self.snap.report
        found = [(v.kind, v.name, v.message, v.details) for v in rep.found(self.explorer.deadlock)]
        if not found:
            return []
        trace, state = self.trace, self.description()
        deviations = trace.deviations if self.explorer.model.program == "asyncio" else None
        return [Violation(k, n, m, trace, d, state, repr(self.explorer.model), deviations=deviations) for k, n, m, d in found]

    def description(self) -> P.Description | None:
        """The raw description of the state (actors, frames, shared state), fetched once."""
        if not self._described:
            if self.snap.report.pid == 0 or self.snap.closed:
                self._desc = None
            else:
                self._desc = self.explorer._call(self.explorer._tree.describe, self.snap)
            self._described = True
        return self._desc

    @property
    def actors(self) -> list[Actor]:
        """Every actor: name, status, what it waits for, where (file:line), its frames and locals."""
        desc = self.description()
        if desc is None:
            return []
        return [Actor(a.name, a.status, a.waiting, a.where, tuple(Frame(*f) for f in a.frames)) for a in desc.actors]

    @property
    def state(self) -> str | None:
        """The repr of what the setup function returned, in this state (None if it returned nothing)."""
        desc = self.description()
        return None if desc is None else desc.view

    @property
    def globals(self) -> dict[str, str]:
        """Module globals the model uses (reprs), shown when setup returned nothing."""
        desc = self.description()
        return {} if desc is None else dict(desc.globals)

    def format(self) -> str:
        """The state as text: each actor's position and locals, then the shared state."""
        return format_state(self.description())

    # -- moving ------------------------------------------------------------------------

    def _index(self, which: int | str | Step) -> int:
        ts = self.transitions
        if isinstance(which, Step):
            which = which.index
        if isinstance(which, bool) or not isinstance(which, (int, str)):
            raise UsageError(f"step() takes a transition's index or its 'actor: label', not {which!r}")
        if isinstance(which, int):
            if not -len(ts) <= which < len(ts):
                raise UsageError(f"step({which}): this state has {len(ts)} enabled transitions"
                                 + (f" (0 to {len(ts) - 1})" if ts else "; none can be taken here"))
            return which % len(ts)
        for pick in (lambda t: str(t) == which, lambda t: t.label == which, lambda t: t.actor == which):
            hits = [t.index for t in ts if pick(t)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                break
        enabled = "; ".join(f"{t.index}: {t}" for t in ts) or "none"
        raise UsageError(f"step({which!r}) does not name exactly one enabled transition; enabled: {enabled}")

    def step(self, which: int | str | Step) -> Node:
        """Take a transition and return the state it leads to.

        ``which`` is the transition's index, a :class:`Step`, its
        ``"actor: label"``, its label, or the actor's name when that names one
        transition.  The first time forks this state's process; afterwards the
        same Node is returned.

        Examples
        --------
        >>> import forkcheck as fc
        >>> @fc.model
        ... def pick():
        ...     async def a():
        ...         await fc.choose([1, 2])
        ...     fc.spawn(a, name="a")
        >>> with fc.Explorer(pick) as ex:
        ...     one = ex.root.step("choose 1")
        ...     print(one is ex.root.step(0), one is ex.root.step("a: choose 1"), one.depth)
        True True 1
        """
        i = self._index(which)
        child = self.children.get(i)
        if child is None:
            self.explorer._check_open()
            if not self.alive:
                raise UsageError(f"{self!r} has no live process to step from")
            child = self.explorer._call(self._fork, i)
        return child

    async def _fork(self, i: int) -> Node:
        if i in self.children:  # an interrupted call finished in the background meanwhile
            return self.children[i]
        tree = self.explorer._tree
        snap = await tree.step(self.snap, i)
        if snap.report.model_error is not None:
            tree.release(snap)
            info = self.transitions[i]
            try:
                raise_model_error(snap.report, self.explorer.model)
            except ModelError as exc:
                token = Trace(self.trace.steps + [Step.of(i, info)], symmetry=self.explorer.symmetry).token
                raise ModelError(f"{exc} (reached by {token})") from None
        if snap.report.pid == 0:  # crashed or timed out: no process stays behind
            tree.release(snap)
        child = self.children[i] = Node(self.explorer, snap, self, i)
        return child

    def eval(self, fn: Callable[[Any], Any]) -> Any:
        """Call ``fn(view)`` in a throwaway fork of this state and return the result.

        ``view`` is what the setup function returned (in this state), None if
        it returned nothing.  The state itself does not change.  ``fn`` and its
        result travel by cloudpickle.

        Examples
        --------
        >>> import forkcheck as fc
        >>> @fc.model
        ... def box():
        ...     state = {"x": 1}
        ...     async def a():
        ...         await fc.checkpoint()
        ...     fc.spawn(a)
        ...     return state
        >>> with fc.Explorer(box) as ex:
        ...     ex.root.eval(lambda s: s.update(x=2) or s["x"]), ex.root.eval(lambda s: s["x"])
        (2, 1)
        """
        self.explorer._check_open()
        if not self.alive:
            raise UsageError(f"{self!r} has no live process to evaluate in")
        return self.explorer._call(self.explorer._tree.eval, self.snap, fn)

    # -- display -----------------------------------------------------------------------

    def __repr__(self) -> str:
        last = f" after {self.last_step.actor}: {self.last_step.label}" if self.last_step else " (initial)"
        kinds = violation_kinds(self.snap.report, self.explorer.deadlock)
        extra = f"; {', '.join(kinds)}" if kinds else ""
        return f"<Node #{self.id} depth {self.depth}{last}; {len(self.transitions)} enabled{extra}>"

    def html(self, graph: bool | None = None) -> str:
        """The HTML view: violations, path, actors table, shared state, enabled transitions, graph."""
        if graph is None:
            graph = len(self.explorer.graph) <= _GRAPH_IN_NODE_VIEW
        return node_html(self, graph=graph)

    def _repr_html_(self) -> str:
        return self.html()


# --------------------------------------------------------------------------- the widget


class ExplorerWidget:
    """The ipywidgets explorer of :meth:`Explorer.widget`.

    ``node`` is the state shown; ``buttons`` its transition buttons (in the
    order of ``node.transitions``); :meth:`go`, :meth:`step` and :meth:`back`
    move it as the buttons do.  ``box`` is the ipywidgets container.
    """

    def __init__(self, explorer: Explorer, node: Node) -> None:
        import ipywidgets as W

        self._W = W
        self.explorer = explorer
        self.node = node
        self.title = W.HTML()
        self.back_button = W.Button(description="◀ back", tooltip="the previous state on this path")
        self.root_button = W.Button(description="⏮ initial state", tooltip="the initial state",
                                    layout=W.Layout(width="auto"))
        self.back_button.on_click(lambda _b: self.back())
        self.root_button.on_click(lambda _b: self.go(self.explorer.root))
        self.transitions_box = W.Box(layout=W.Layout(flex_flow="row wrap"))
        self.message = W.HTML()
        self.view = W.HTML()
        self.buttons: list = []
        self.box = W.VBox([self.title, W.HBox([self.back_button, self.root_button]), self.transitions_box,
                           self.message, self.view])
        self.render()

    def go(self, node: Node) -> None:
        """Show ``node``."""
        self.node = node
        self.render()

    def step(self, which: int | str | Step) -> None:
        """Take a transition of the shown state and show where it leads."""
        self.go(self.node.step(which))

    def back(self) -> None:
        """Show the previous state on the path (nothing at the initial state)."""
        if self.node.parent is not None:
            self.go(self.node.parent)

    def _clicked(self, index: int) -> None:
        try:
            self.step(index)
        except Exception as exc:  # noqa: BLE001 - shown in the widget, not lost in the log
            self.message.value = f'<div style="color:#b00020">{html.escape(f"{type(exc).__name__}: {exc}")}</div>'

    def render(self) -> None:
        """Redraw the buttons and the state view for ``node``."""
        W, node = self._W, self.node
        self.message.value = ""
        trail = " → ".join(html.escape(str(s.actor) + ": " + str(s.label)) for s in node.trace) or "the initial state"
        self.title.value = (f"<b>State #{node.id}</b>, depth {node.depth} &nbsp; "
                            f"<span style='color:#555'>{trail}</span>")
        self.back_button.disabled = node.parent is None
        buttons = []
        for t in node.transitions:
            child = node.children.get(t.index)
            style = ""
            if child is not None:
                bad = child.snap.report.ends(self.explorer.deadlock)
                style = "danger" if bad else "info"
            b = W.Button(description=str(t), tooltip=f"{t} at {_where.short(t.where)}" if t.where else str(t),
                         button_style=style, layout=W.Layout(width="auto"))
            b.on_click(lambda _b, i=t.index: self._clicked(i))
            buttons.append(b)
        self.buttons = buttons
        self.transitions_box.children = tuple(buttons)
        if not buttons:
            self.message.value = "<i>No transition is enabled in this state.</i>"
        self.view.value = node.html()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.box._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:  # pragma: no cover - IPython only
        from IPython.display import display

        display(self.box)


# --------------------------------------------------------------------------- HTML


def node_html(node: Node, graph: bool = True) -> str:
    """A node's view: header, violations, path, actors and shared state, enabled transitions, graph."""
    out = [f'<div class="forkcheck-node"><div><b>State #{node.id}</b>, depth {node.depth}, '
           f"fingerprint <code>{_e(node.fingerprint[:12])}</code>"
           f"{', every actor returned' if node.done else ''}</div>"]
    for v in node.violations:
        out.append(f"<div style='color:{_RED}'><b>{_e(v.kind)} violation</b> ({_e(v.name)}): {_e(v.message)}</div>")
        if v.details:
            out.append(f"<pre style='white-space:pre-wrap'>{_e(v.details.rstrip())}</pre>")
    out += ["<details><summary><b>Path</b> (" + str(node.depth) + " steps)</summary>", trace_html(node.trace),
            "</details>", state_html(node.description())]
    if node.transitions:
        rows = "".join(f"<tr><td {_CELL}>{t.index}</td><td {_CELL}><b>{_e(t.actor)}</b></td><td {_CELL}><code>"
                       f"{_e(t.label)}</code></td><td {_CELL}>{_e(_where.short(t.where)) if t.where else ''}</td></tr>"
                       for t in node.transitions)
        out.append(f"<div><b>Enabled transitions</b></div><table {_TABLE}>{rows}</table>")
    else:
        out.append("<div><i>No transition is enabled.</i></div>")
    if graph:
        out.append(node.explorer.graph_svg(current=node))
    out.append("</div>")
    return "".join(out)


# --------------------------------------------------------------------------- SVG


def _layers(graph: nx.DiGraph, root: int = 0) -> list[list[int]]:
    """States in layers by BFS distance from ``root``, each layer ordered to keep edges short."""
    depth: dict[int, int] = {}
    if root in graph:
        depth[root] = 0
        queue = deque([root])
        while queue:
            u = queue.popleft()
            for v in sorted(graph.successors(u)):
                if v not in depth:
                    depth[v] = depth[u] + 1
                    queue.append(v)
    rest = sorted(n for n in graph if n not in depth)
    deepest = max(depth.values(), default=-1)
    for n in rest:  # not reachable from the root (cannot happen in forkcheck's graphs)
        depth[n] = deepest + 1
    layers: list[list[int]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for n in sorted(depth):
        layers[depth[n]].append(n)
    pos: dict[int, float] = {}
    for k, layer in enumerate(layers):
        if k > 0:
            def key(n: int) -> tuple[float, int]:
                ps = [pos[p] for p in graph.predecessors(n) if p in pos and depth[p] == k - 1]
                return (sum(ps) / len(ps) if ps else float("inf"), n)

            layer.sort(key=key)
        for i, n in enumerate(layer):
            pos[n] = i / max(1, len(layer) - 1) if len(layer) > 1 else 0.5
    return layers


def graph_svg(graph: nx.DiGraph, path: Sequence[int] = (), max_states: int = 400) -> SVG:
    """Draw a state graph (forkcheck's schema) as SVG; ``path`` lists state ids from the root."""
    path = list(path)
    if len(graph) > max_states:
        keep = set(sorted(graph)[:max_states]) | set(path)
        graph = graph.subgraph(keep)
        note = f"showing {len(keep)} of the first states only"
    else:
        note = ""
    layers = _layers(graph)
    dx, dy, r, margin = 34, 58, 10, 24
    width = max(max([len(layer) for layer in layers] + [1]) * dx + 2 * margin, 360)  # 360: room for the legend
    height = max(1, len(layers)) * dy + 2 * margin + 18
    xy: dict[int, tuple[float, float]] = {}
    for k, layer in enumerate(layers):
        x0 = (width - len(layer) * dx) / 2 + dx / 2
        for i, n in enumerate(layer):
            xy[n] = (x0 + i * dx, margin + 18 + k * dy + r)
    on_path = set(zip(path, path[1:]))
    current = path[-1] if path else None
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="forkcheck-graph" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
           'style="max-width:100%;height:auto;font-family:sans-serif">',
           '<defs><marker id="fcarrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#999"/></marker>'
           '<marker id="fcarrowp" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1f6fd1"/></marker></defs>']
    legend = [("#1f6fd1", "path / current"), (_RED, "violation"), ("#2e7d32", "final"), ("#fff", "state")]
    lx = 6
    for color, text in legend:
        out.append(f'<circle cx="{lx + 5}" cy="10" r="5" fill="{color}" stroke="#555"/>'
                   f'<text x="{lx + 13}" y="14" font-size="11" fill="#333">{_e(text)}</text>')
        lx += 18 + 7 * len(text)
    if note:
        out.append(f'<text x="{lx}" y="14" font-size="11" fill="#555">({_e(note)})</text>')
    for u, v, data in graph.edges(data=True):
        (x1, y1), (x2, y2) = xy[u], xy[v]
        hot = (u, v) in on_path
        color, w, marker = ("#1f6fd1", 2.5, "fcarrowp") if hot else ("#999", 1, "fcarrow")
        title = f"<title>{_e(chr(10).join(data.get('labels') or [data.get('label', '')]))}</title>"
        if u == v:
            d = f"M{x1 - 4:.1f},{y1 - r:.1f} C{x1 - 18:.1f},{y1 - 30:.1f} {x1 + 18:.1f},{y1 - 30:.1f} {x1 + 4:.1f},{y1 - r:.1f}"
        else:
            ddx, ddy = x2 - x1, y2 - y1
            dist = max((ddx * ddx + ddy * ddy) ** 0.5, 1e-6)
            if y2 > y1 + 1 and abs(y2 - y1) <= dy + 1:  # to the next layer: a straight line
                sx, sy = x1 + ddx / dist * r, y1 + ddy / dist * r
                ex, ey = x2 - ddx / dist * (r + 1), y2 - ddy / dist * (r + 1)
                d = f"M{sx:.1f},{sy:.1f} L{ex:.1f},{ey:.1f}"
            else:  # back, sideways or long edges: a curve bent to the side
                bend = 0.35 * dist + 12
                cx, cy = (x1 + x2) / 2 + ddy / dist * bend, (y1 + y2) / 2 - ddx / dist * bend
                sx, sy = x1 + (cx - x1) / max(1e-6, ((cx - x1) ** 2 + (cy - y1) ** 2) ** 0.5) * r, \
                    y1 + (cy - y1) / max(1e-6, ((cx - x1) ** 2 + (cy - y1) ** 2) ** 0.5) * r
                norm = max(1e-6, ((cx - x2) ** 2 + (cy - y2) ** 2) ** 0.5)
                ex, ey = x2 + (cx - x2) / norm * (r + 1), y2 + (cy - y2) / norm * (r + 1)
                d = f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}"
        out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{w}" marker-end="url(#{marker})">'
                   f"{title}</path>")
    in_path = set(path)
    for n, data in graph.nodes(data=True):
        x, y = xy[n]
        if data.get("violations"):
            fill = _RED
        elif n in in_path:
            fill = "#1f6fd1"
        elif data.get("done"):
            fill = "#2e7d32"
        else:
            fill = "#fff"
        stroke, sw = ("#000", 3) if n == current else (("#1f6fd1", 2.5) if n in in_path else ("#555", 1))
        tip = [f"state #{n}"]
        if data.get("violations"):
            tip.append("violates: " + ", ".join(data["violations"]))
        if data.get("enabled"):
            tip.append("can move: " + ", ".join(data["enabled"]))
        if data.get("done"):
            tip.append("every actor returned")
        out.append(f'<g class="forkcheck-state" data-state="{n}"><title>{_e(chr(10).join(tip))}</title>'
                   f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>')
        if len(graph) <= 200:
            color = "#fff" if fill != "#fff" else "#333"
            out.append(f'<text x="{x:.1f}" y="{y + 3.5:.1f}" font-size="9" text-anchor="middle" fill="{color}">{n}</text>')
        out.append("</g>")
    out.append("</svg>")
    return SVG("".join(out))
