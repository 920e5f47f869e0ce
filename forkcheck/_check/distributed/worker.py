"""A worker of the Ray backend: one snapshot tree, a frontier, and the shards to claim states at.

:class:`ExplorerWorker` runs as a threaded Ray actor.  Its :meth:`serve` call
holds one thread for the actor's whole life and runs a trio loop there: it
starts an ordinary snapshot root (``SnapshotTree``: a fresh interpreter, as a
local check does; the Ray process itself, multi-threaded, never forks a
model state) and explores.  The actor's other methods (``status``, ``share``,
``stop``, ``describe``) run on other threads and reach the loop through
trio's ``from_thread``.

Exploring: take a batch of states from the frontier (DFS: the newest; BFS:
the oldest), rebuild those whose process was evicted or that came from
elsewhere (one fork of the nearest live snapshot on their path replays the
rest; the fingerprint must come out as recorded), fork every transition,
claim the children at their shards in one call per shard, keep the new ones
(their processes are here: they are expanded here, locality first), and
report each expanded state's transitions to its own shard.  An idle worker
takes open states from the shards; asked to share, a worker gives the states
it would expand last back to their shards, where an idle one takes them.

This module imports neither Ray nor anything that imports it: ``host.py``
wraps the class with ``ray.remote`` and passes the shard handles in.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from typing import Any, Callable

import trio

from ..._errors import OUTSIDE_THE_MODEL, ForkcheckError, ModelError, NondeterminismError, UsageError
from ..._graph import state_attributes
from ... import _protocol as P
from ..._model import Model
from ..._trace import Step, Trace
from ..options import CheckOptions
from ..pool import REBASE_GENERATION
from ..search import _first_difference, default_max_snapshots
from ..snapshots import Origin, Snapshot, SnapshotTree, raise_model_error
from .shard import shard_of

#: States expanded per round of claims: enough transitions to amortise a round trip to the shards.
BATCH_TRANSITIONS = 48
BATCH_STATES = 16


class _Named(Model):
    """The model as a worker knows it: by its repr only (the pickle goes to the root unopened)."""

    def __init__(self, text: str) -> None:
        super().__init__(lambda: None)
        self._text = text

    def __repr__(self) -> str:
        return self._text


class Item:
    """A state this worker is to expand: its gid, fingerprint, path from the initial state, depth, process."""

    __slots__ = ("gid", "fp", "path", "depth", "snap")

    def __init__(self, gid: int, fp: bytes, path: tuple[int, ...], depth: int, snap: Snapshot | None) -> None:
        self.gid = gid
        self.fp = fp
        self.path = path
        self.depth = depth
        self.snap = snap


def error_payload(exc: BaseException) -> tuple[str, str, list[str]]:
    """A forkcheck error as (class name, message, notes), to raise again in the caller's process."""
    return type(exc).__name__, str(exc), list(getattr(exc, "__notes__", []))


def claim_of(rep: P.Report, deadlock: bool, parent: int, step: tuple | None, depth: int,
             path: tuple[int, ...]) -> tuple:
    """The claim (``shard.Claim``) of the state a report describes, reached from ``parent`` by ``step``.

    A state that a ``fc.constraint`` cuts is recorded and checked, but not
    expanded: the assembly counts it by the constraint's name (the result is
    then incomplete, as a local check's).
    """
    open_ = bool(rep.transitions) and not rep.ends(deadlock)
    # What the assembly needs besides the graph's schema.
    extra = {"opaque": rep.opaque, "faulty": rep.pid == 0, "constrained": rep.constrained if open_ else ""}
    found = [(v.kind, v.name, v.message, v.details) for v in rep.found(deadlock)]
    expandable = open_ and not rep.constrained
    return (rep.fingerprint, parent, step, depth, path, (state_attributes(rep, deadlock), extra), found, expandable)


def revive(payload: tuple[str, str, list[str]]) -> ForkcheckError:
    """The error of an :func:`error_payload`, as an exception of the same forkcheck class, message as it was."""
    import forkcheck

    name, message, notes = payload
    cls = getattr(forkcheck, name, None)
    if not (isinstance(cls, type) and issubclass(cls, ForkcheckError)):
        cls = ForkcheckError
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)  # not cls.__init__: InternalError would append its sentence again
    for note in notes:
        exc.add_note(note)
    return exc


class WorkerEngine:
    """Explore with one snapshot tree; claim at ``shards`` (Ray handles of :class:`VisitedShard`)."""

    def __init__(self, index: int, shards: list, opts: CheckOptions, origin: Origin, model_repr: str,
                 per_node: int = 1, module: str | None = None, found_on: str | None = None) -> None:
        self.index = index
        self.shards = shards
        self.opts = opts
        self.model = _Named(model_repr)
        self.module, self.found_on = module, found_on  # what the traces carry (Trace.module, Trace.model)
        self.tree = SnapshotTree(self.model, opts.transition_timeout, huge_pages=opts.uses_huge_pages,
                                 opaque=opts.opaque, symmetry=opts.symmetry, origin=origin)
        self.tree.memory_limit = opts.memory_limit
        # max_snapshots is per worker; by default this node's share of what it can hold.
        self.bound = opts.max_snapshots or max(16, default_max_snapshots() // max(1, per_node))
        self.dfs = opts.strategy == "dfs"
        self.frontier: deque[Item] = deque()
        self.by_path: dict[tuple[int, ...], Snapshot] = {}  # live snapshots to rebuild from, by their path
        self.factories: OrderedDict[tuple[int, ...], Snapshot] = OrderedDict()
        self.evictions = 0
        self.rebuilds = 0
        self.rebases = 0  # new states released for being deep in fork generations (pool.REBASE_GENERATION)
        self.expanded = 0
        self.checked = 0  # states whose transitions were taken twice (determinism_checks)
        self.nondeterminism: list = []  # Violation objects
        self.idle = False
        self.started = threading.Event()
        self.root_info: dict[str, Any] | None = None
        self.failure: tuple[str, str, list[str]] | None = None
        self._token: Any = None
        self._go: trio.Event | None = None
        self._quit: trio.Event | None = None
        self._explored: trio.Event | None = None
        self._stop = False
        self._share = 0
        self._pending_done: list = []

    # -- the actor's methods ------------------------------------------------------

    def serve(self) -> tuple[str, Any]:
        """The actor's life: the trio loop, until :meth:`quit`.  ("ok", stats) or ("error", payload)."""
        try:
            trio.run(self._main)
        except ForkcheckError as exc:
            self.failure = error_payload(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: its traceback goes back with it
            import traceback

            self.failure = ("InternalError", f"worker {self.index}: {type(exc).__name__}: {exc}",
                            [traceback.format_exc()])
        finally:
            self.tree.close()
            self.started.set()
        if self.failure is not None:
            return "error", self.failure
        return "ok", self.stats()

    def ready(self, timeout: float = 600.0) -> dict[str, Any]:
        """Wait until the root is up: its fingerprint, report and where this worker runs."""
        self.started.wait(timeout)
        if self.failure is not None or self.root_info is None:
            return {"error": self.failure or ("ForkcheckError", f"worker {self.index} did not start its root "
                                              f"within {timeout:g}s", [])}
        return self.root_info

    def go(self) -> None:
        """Start exploring (every worker's root is up and the initial state is claimed)."""
        self._run_sync(lambda: self._go.set())  # type: ignore[union-attr]

    def stop(self) -> None:
        """Finish the batch in hand and stop exploring."""
        self._stop = True

    def finish(self) -> dict[str, Any]:
        """Wait until the exploration has stopped (after :meth:`stop`, or once it failed)."""
        if self._token is not None:
            try:
                self._run(self._wait_explored)
            except (ForkcheckError, RuntimeError):  # the loop ended meanwhile (a failure)
                pass
        return {**self.stats(), "failure": self.failure}

    def share(self, limit: int) -> None:
        """Give up to ``limit`` states back to their shards at the end of the batch in hand."""
        self._share = max(self._share, limit)

    def status(self) -> dict[str, Any]:
        return {"index": self.index, "expanded": self.expanded, "frontier": len(self.frontier),
                "live_snapshots": len(self.tree.live), "idle": self.idle, "pid": os.getpid()}

    def describe(self, requests: list[tuple[tuple[int, ...], bytes]]) -> list:
        """Rebuild each ``(path, fingerprint)`` and describe it (None where the state has no process)."""
        return self._run(self._describe_all, requests)

    def quit(self) -> None:
        self._run_sync(lambda: self._quit.set())  # type: ignore[union-attr]

    def stats(self) -> dict[str, Any]:
        mem = self.tree.memory.stats(self.tree.peak)
        return {"expanded": self.expanded, "peak_snapshots": self.tree.peak, "evictions": self.evictions,
                "rebuilds": self.rebuilds, "rebases": self.rebases, "private_bytes": mem.private_bytes, "logical_bytes": mem.logical_bytes,
                "nondeterminism": self.nondeterminism}

    def _run(self, fn: Callable, *args: Any) -> Any:
        self.started.wait()
        if self._token is None:
            raise ForkcheckError(f"worker {self.index} has stopped")
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def _run_sync(self, fn: Callable) -> Any:
        self.started.wait()
        if self._token is None:
            raise ForkcheckError(f"worker {self.index} has stopped")
        return trio.from_thread.run_sync(fn, trio_token=self._token)

    # -- the loop ----------------------------------------------------------------------

    async def _main(self) -> None:
        self._go, self._quit, self._explored = trio.Event(), trio.Event(), trio.Event()
        try:
            root = await self.tree.start()
        except ForkcheckError as exc:
            self.failure = error_payload(exc)
            return
        rep = root.report
        if rep.symmetric:  # named only when the root canonicalizes (Load.symmetry)
            self.failure = error_payload(UsageError(
                f"{self.model!r} declares fc.symmetric values, and backend='ray' does not reduce by symmetry yet: "
                "pass symmetry=False (--no-symmetry) to explore every state on the cluster, or use backend='local'"))
            return
        self.by_path[()] = root
        self.root_info = {"fingerprint": rep.fingerprint, "report": rep, "pid": os.getpid(),
                          "host": os.uname().nodename}
        self._token = trio.lowlevel.current_trio_token()
        self.started.set()
        try:
            with self.tree.using(transition_timeout=self.opts.transition_timeout, on_fork_failure=self._shrink):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._explore_when_told)
                    await self._quit.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self._token = None

    async def _explore_when_told(self) -> None:
        await self._go.wait()  # type: ignore[union-attr]
        try:
            await self._explore()
        except ForkcheckError as exc:
            self.failure = error_payload(exc)
        except Exception as exc:  # noqa: BLE001 - a Ray call failed (a shard died): the coordinator tells which
            self.failure = ("RayError", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}", [])
        finally:
            self.idle = True
            self._explored.set()  # type: ignore[union-attr]
            if self.failure is not None:
                self._quit.set()  # type: ignore[union-attr]  # serve() returns the failure: the coordinator sees it

    async def _wait_explored(self) -> None:
        await self._explored.wait()  # type: ignore[union-attr]

    async def _explore(self) -> None:
        pause = 0.002
        while not self._stop:
            batch = self._batch()
            if not batch:
                self.idle = True
                if await self._take():
                    pause = 0.002
                    continue
                await self._settle_done()
                await trio.sleep(pause)
                pause = min(pause * 2, 0.05)
                continue
            self.idle = False
            await self._expand(batch)
            if self._share:
                await self._give(self._share)
                self._share = 0
        await self._settle_done()

    def _batch(self) -> list[Item]:
        """The next states to expand: DFS the newest first, BFS the oldest, up to a round's worth of transitions."""
        out: list[Item] = []
        work = 0
        while self.frontier and len(out) < BATCH_STATES and work < BATCH_TRANSITIONS:
            item = self.frontier.pop() if self.dfs else self.frontier.popleft()
            out.append(item)
            work += 4 if item.snap is None else len(item.snap.report.transitions)
        return out

    async def _ray(self, refs: list) -> list:
        """``ray.get`` of ``refs`` in a thread, so that the loop keeps serving snapshots meanwhile."""
        import ray  # this runs in a Ray worker: Ray is loaded already

        return await trio.to_thread.run_sync(ray.get, refs)

    async def _take(self) -> bool:
        """Open states from the shards, to rebuild and expand here.  Whether any came."""
        start = self.index % len(self.shards)
        order = self.shards[start:] + self.shards[:start]
        got = await self._ray([s.take.remote(self.index, 8) for s in order])
        n = 0
        for part in got:
            for gid, fp, path, depth in part:
                self.frontier.append(Item(gid, fp, tuple(path), depth, None))
                n += 1
        if n:
            self.idle = False
        return n > 0

    async def _give(self, limit: int) -> None:
        """Give the states this worker would expand last back to their shards (open for idle workers)."""
        give: list[Item] = []
        while self.frontier and len(give) < limit and len(self.frontier) > 1:
            give.append(self.frontier.popleft() if self.dfs else self.frontier.pop())
        if not give:
            return
        per: dict[int, list[int]] = {}
        for item in give:
            per.setdefault(item.gid % len(self.shards), []).append(item.gid)
        await self._ray([self.shards[s].release.remote(self.index, gids) for s, gids in per.items()])
        for item in give:
            self._drop_item_snapshot(item)

    # -- snapshots: the budget, eviction, rebuilding --------------------------------------

    def _drop_item_snapshot(self, item: Item) -> None:
        if item.snap is not None:
            if self.by_path.get(item.path) is item.snap:
                del self.by_path[item.path]
            self.tree.release(item.snap)
            item.snap = None

    def _make_room(self, k: int) -> None:
        """Evict until ``k`` more snapshots fit within the bound (factories first, then the frontier's far end)."""
        while len(self.tree.live) + k > self.bound:
            if self.factories:
                path, snap = self.factories.popitem(last=False)
                if self.by_path.get(path) is snap:
                    del self.by_path[path]
                self.tree.release(snap)
                continue
            victim = next((it for it in (self.frontier if self.dfs else reversed(self.frontier))
                           if it.snap is not None), None)
            if victim is None:
                return  # everything live is in use: the bound is exceeded for this batch
            self._drop_item_snapshot(victim)
            self.evictions += 1

    def _shrink(self) -> None:
        """A fork failed for lack of resources: lower the bound below what is live."""
        self.bound = max(4, int(len(self.tree.live) * 0.9))
        self._make_room(0)

    def _nearest(self, path: tuple[int, ...]) -> tuple[Snapshot, tuple[int, ...]]:
        """The live snapshot nearest to ``path`` on it (the root at worst), and the rest of the path.

        Only a shallow one in fork generations (as ``pool.py`` rebuilds): forks
        of a deep one walk a long chain of the kernel's ``anon_vma``s.
        """
        for cut in range(len(path), -1, -1):
            snap = self.by_path.get(path[:cut])
            if snap is not None and not snap.closed and (cut == 0 or snap.gen < REBASE_GENERATION // 2):
                if path[:cut] in self.factories:
                    self.factories.move_to_end(path[:cut])
                return snap, path[cut:]
        raise AssertionError("the root is always live")  # pragma: no cover

    async def _rebuild(self, path: tuple[int, ...], fp: bytes | None) -> Snapshot:
        base, rest = self._nearest(path)
        if not rest:
            return base
        self._make_room(1)
        snap = await self.tree.step(base, rest)
        self.rebuilds += 1
        if fp is not None and snap.report.fingerprint != fp:
            self.tree.release(snap)
            raise NondeterminismError(
                f"rebuilding a state by replaying {len(rest)} transitions on worker {self.index} reached a "
                f"different state than the worker that found it: an actor depends on {OUTSIDE_THE_MODEL}, or the "
                "nodes run different Python or forkcheck versions")
        return snap

    async def trace_of(self, path: tuple[int, ...]) -> list[Step]:
        """The steps of ``path`` from the initial state, each with the state it reaches (forks them one by one)."""
        assert self.tree.root is not None
        snap, steps = self.tree.root, []
        for i in path:
            info = snap.report.transitions[i]
            child = await self.tree.step(snap, i)
            steps.append(Step(i, info.actor, info.label, info.where, child.report.fingerprint.hex()))
            if snap is not self.tree.root:
                self.tree.release(snap)
            snap = child
        if snap is not self.tree.root:
            self.tree.release(snap)
        return steps

    # -- one round: expand a batch, claim its children, report --------------------------------

    async def _expand(self, batch: list[Item]) -> None:
        for item in batch:
            if item.snap is None:
                item.snap = await self._rebuild(item.path, item.fp)
                self.by_path[item.path] = item.snap
        twice = []
        for item in batch:
            twice.append(self.checked < self.opts.determinism_checks)
            if twice[-1]:
                self.checked += 1
        forks = 0
        for item, t in zip(batch, twice):
            assert item.snap is not None
            forks += len(item.snap.report.transitions) * (2 if t else 1)
        self._make_room(forks)
        children: dict[tuple[int, int], Snapshot] = {}
        gate = trio.Semaphore(self.opts.jobs)

        async def fork(k: int, i: int) -> None:
            async with gate:
                parent = batch[k].snap
                assert parent is not None
                child = await self.tree.step(parent, i)
                children[k, i] = child
                if twice[k] and child.report.pid != 0:
                    twin = await self.tree.step(parent, i, True)
                    if twin.report.fingerprint != child.report.fingerprint and twin.report.pid != 0:
                        await self._nondeterministic(batch[k], i, child, twin)
                    self.tree.release(twin)

        async with trio.open_nursery() as nursery:
            for k, item in enumerate(batch):
                assert item.snap is not None
                for i in range(len(item.snap.report.transitions)):
                    nursery.start_soon(fork, k, i)
        deadlock = self.opts.deadlock
        per: dict[int, list] = {}
        order: list[tuple[int, int, int]] = []  # (k, i, shard) in claim order
        for k, item in enumerate(batch):
            assert item.snap is not None
            for i in range(len(item.snap.report.transitions)):
                child = children[k, i]
                rep = child.report
                if rep.model_error is not None:
                    await self._model_error(item, i, child)
                info = item.snap.report.transitions[i]
                s = shard_of(rep.fingerprint, len(self.shards))
                per.setdefault(s, []).append(claim_of(rep, deadlock, item.gid, (i, info.actor, info.label, info.where),
                                                      item.depth + 1, item.path + (i,)))
                order.append((k, i, s))
        shard_ids = list(per)
        replies = await self._ray([self.shards[s].claim.remote(self.index, per[s]) for s in shard_ids])
        answers = {s: iter(r) for s, r in zip(shard_ids, replies)}
        kept: list[Item] = []
        results: dict[int, list] = {}
        for k, i, s in order:
            item = batch[k]
            assert item.snap is not None
            gid, new = next(answers[s])
            child = children[k, i]
            rep = child.report
            info = item.snap.report.transitions[i]
            results.setdefault(k, []).append((i, info.actor, info.label, info.where, gid, rep.fingerprint.hex()))
            if new and rep.transitions and not rep.ends(deadlock) and not rep.constrained:  # claim_of's expandable
                it = Item(gid, rep.fingerprint, item.path + (i,), item.depth + 1, child)
                if child.gen >= REBASE_GENERATION:  # deep in fork generations: rebuilt shallow when its turn comes
                    self.tree.release(child)
                    it.snap = None
                    self.rebases += 1
                else:
                    self.by_path[it.path] = child
                kept.append(it)
            else:
                self.tree.release(child)
        # DFS expands the first child next: it goes on top of the stack.
        self.frontier.extend(reversed(kept) if self.dfs else kept)
        per_done: dict[int, list] = {}
        for k, item in enumerate(batch):
            per_done.setdefault(item.gid % len(self.shards), []).append((item.gid, results.get(k, [])))
            self.expanded += 1
            self._retire(item)
        # The reports need not be waited for: a state stays pending until its shard has it.
        self._pending_done += [self.shards[s].done.remote(self.index, r) for s, r in per_done.items()]
        if len(self._pending_done) > 64:
            await self._settle_done()

    async def _settle_done(self) -> None:
        if self._pending_done:
            refs, self._pending_done = self._pending_done, []
            await self._ray(refs)

    def _retire(self, item: Item) -> None:
        """An expanded state: kept to rebuild its descendants from once memory is short, else ended."""
        snap, item.snap = item.snap, None
        if snap is None or snap is self.tree.root:
            return
        if self.evictions:
            if self.by_path.get(item.path) is snap:
                self.factories[item.path] = snap
                self.factories.move_to_end(item.path)
                return
        if self.by_path.get(item.path) is snap:
            del self.by_path[item.path]
        self.tree.release(snap)

    async def _model_error(self, item: Item, i: int, child: Snapshot) -> None:
        assert item.snap is not None
        info = item.snap.report.transitions[i]
        steps = await self.trace_of(item.path) + [Step(i, info.actor, info.label, info.where, "")]
        try:
            raise_model_error(child.report, self.model)
        except ModelError as exc:
            raise ModelError(f"{exc} (reached by {Trace(steps, module=self.module, model=self.found_on).token})") \
                from None

    async def _nondeterministic(self, item: Item, i: int, child: Snapshot, twin: Snapshot) -> None:
        from ..._results import Violation

        assert item.snap is not None
        info = item.snap.report.transitions[i]
        a, b = await self.tree.describe(child), await self.tree.describe(twin)
        cause = _first_difference(a, b)
        trace = Trace(await self.trace_of(item.path) + [Step(i, info.actor, info.label, info.where, "")],
                      module=self.module, model=self.found_on)
        message = (f"actor {info.actor} reached different states when '{info.label}' was taken twice from the same "
                   f"state{': ' + cause if cause else ''}. It depends on {OUTSIDE_THE_MODEL}: make it a fc.choose() "
                   "or model state")
        self.nondeterminism.append(Violation("nondeterminism", info.actor, message, trace, "", a, repr(self.model)))

    # -- describing the states of counterexamples -------------------------------------------------

    async def _describe_all(self, requests: list[tuple[tuple[int, ...], bytes]]) -> list:
        out = []
        for path, fp in requests:
            snap = await self._rebuild(tuple(path), fp)
            out.append(await self.tree.describe(snap))
            if snap is not self.tree.root and snap not in self.by_path.values():
                self.tree.release(snap)
        return out



class ExplorerWorker:
    """The Ray actor: :class:`WorkerEngine`'s methods that other processes call, none of them a coroutine.

    (Ray makes an actor with a coroutine method an asyncio actor, whose
    methods would all share one thread: ``serve`` would then block the rest.)
    """

    def __init__(self, *args: Any) -> None:
        self.engine = WorkerEngine(*args)

    def serve(self) -> tuple[str, Any]:
        return self.engine.serve()

    def ready(self, timeout: float = 600.0) -> dict[str, Any]:
        return self.engine.ready(timeout)

    def go(self) -> None:
        self.engine.go()

    def stop(self) -> None:
        self.engine.stop()

    def finish(self) -> dict[str, Any]:
        return self.engine.finish()

    def share(self, limit: int) -> None:
        self.engine.share(limit)

    def status(self) -> dict[str, Any]:
        return self.engine.status()

    def describe(self, requests: list) -> list:
        return self.engine.describe(requests)

    def quit(self) -> None:
        self.engine.quit()
