"""Snapshot management on the explorer side: start, step, describe and release snapshots.

A :class:`Snapshot` is the explorer's handle on one stopped snapshot process:
its pid, its socket and its :class:`~forkcheck._protocol.Report`.  The
:class:`SnapshotTree` owns the root interpreter and its process group, and makes
sure that nothing outlives it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Callable, Iterator

import trio

from .._app import hugepages as _hugepages
from .. import _pickle
from .. import _protocol as P
from .._errors import RAISE_TIMEOUT, ForkcheckError, InternalError, ModelError, OpaqueStateError, UsageError
from .memory import MemoryTracker
from .._model import Model

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # where forkcheck/ is


class Snapshot:
    """A live snapshot process as the explorer sees it."""

    __slots__ = ("pid", "raw", "sock", "report", "lock", "closed", "gen")
    # None only while the process has not answered yet: start() and step() set it before they
    # return the snapshot, so the rest of the explorer reads it as a Report.
    report: P.Report

    def __init__(self, pid: int, raw: socket.socket, report: P.Report | None = None) -> None:
        self.pid = pid
        self.raw = raw
        self.sock = trio.socket.from_stdlib_socket(raw)
        self.report = report  # type: ignore[assignment]  # see the class attribute's comment
        self.lock = trio.Lock()
        self.closed = False
        # Forks between the root and this process: each one lengthens the kernel's chain of anon_vmas
        # that every later fork and exit of it walks (see pool.py, REBASE_GENERATION).
        self.gen = 0


@dataclass(frozen=True)
class Origin:
    """Where a tree's model comes from, when that is not the process that starts the tree.

    A worker of the Ray backend starts the root on behalf of the explorer that
    asked for the check: the model it pickled, its ``sys.path`` and working
    directory, and its pid as the snapshots' ``FORKCHECK_OWNER``.
    """

    blob: bytes  # model_blob() of the model
    sys_path: list[str]
    cwd: str
    owner: str


def model_blob(model: Model) -> tuple[bytes, list[str]]:
    """Pickle a model for the root interpreter; modules that cannot be imported there go by value."""
    by_value = []
    for fn in (model.fn,):
        modname: str = getattr(fn, "__module__", None) or ""
        mod = sys.modules.get(modname)
        if mod is not None and modname != "__main__" and getattr(mod, "__forkcheck_by_value__", False):
            by_value.append(modname)
    from .._app.fingerprint import user_reducers

    try:
        return _pickle.dumps((model, user_reducers())), by_value
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"the model {model!r} cannot be sent to the snapshot process: {type(exc).__name__}: {exc}; "
                         "model arguments must be picklable (plain data, not open files, locks or sockets)") from None


class SnapshotTree:
    """The root snapshot process, its descendants, and the explorer's handles on them."""

    def __init__(self, model: Model, transition_timeout: float = 30.0, huge_pages: bool | None = True,
                 opaque: str = "error", queue_order: bool = False, symmetry: bool = True, *,
                 origin: Origin | None = None) -> None:
        self.model = model
        self.origin = origin  # None: the model, sys.path and working directory of this process
        self.queue_order = queue_order  # Load.queue_order
        self.opaque = opaque  # Load.opaque
        self.symmetry = symmetry  # Load.symmetry
        self.symmetric: list[tuple[str, int]] = []  # the root's Report.symmetric: the sets reduced by
        self.transition_timeout = transition_timeout
        self.proc: subprocess.Popen | None = None
        self.live: set[Snapshot] = set()
        self.root: Snapshot | None = None
        self.fork_failures = 0
        self.on_fork_failure: Callable[[], None] | None = None  # called when a snapshot could not fork: free some
        self.memory_limit: int | None = None
        self.footprints = False  # snapshots report footprints (a reduction is on: _app/footprint.py)
        self.huge_pages = bool(huge_pages)  # put the root's heap on transparent huge pages (_hugepages.py)
        self.peak = 0
        self.memory = MemoryTracker()  # private and logical bytes of the live snapshots at their peak
        self._errfile: IO[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> Snapshot:
        source = self.origin or Origin(model_blob(self.model)[0], list(sys.path), os.getcwd(), str(os.getpid()))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONHASHSEED"] = "0"  # set and dict-of-str orders are part of the program's behaviour
        env["FORKCHECK_OWNER"] = source.owner  # lets tools (and our tests) tell whose snapshots these are
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        if self.huge_pages:
            env = _hugepages.root_env(env)
        # Snapshot processes write to a file the explorer can quote when one dies, not to the terminal.
        self._errfile = None if os.environ.get("FORKCHECK_DEBUG") else tempfile.TemporaryFile(prefix="forkcheck-stderr-")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "forkcheck._app.serve", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], process_group=0, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._errfile,
            )
        finally:
            theirs.close()
        root = self.root = self._adopt(self.proc.pid, ours)
        version, origin = package_version()
        await P.asend(root.sock, P.Load(source.blob, source.sys_path, source.cwd, memory_limit=self.memory_limit,
                                           huge_pages=self.huge_pages, opaque=self.opaque, footprints=self.footprints,
                                           program=self.model.program, queue_order=self.queue_order,
                                           symmetry=self.symmetry, version=version,
                                           protocol=P.PROTOCOL, origin=origin,
                                           transition_timeout=self.transition_timeout))
        # Every piece of the setup (the setup function, each actor's first step) is timed by the root
        # itself, which says when it starts one; a root that says nothing for longer is killed.
        what = "loading the model"
        wait = P.explorer_wait(self.transition_timeout) + 10.0  # the first piece: starting Python too
        while True:
            report = None
            with trio.move_on_after(wait):
                try:
                    report = await P.arecv(root.sock)
                except (EOFError, OSError):
                    raise InternalError(f"the root snapshot process died while loading the model:\n"
                                        f"{self.stderr_tail()}") from None
                except Exception as exc:  # noqa: BLE001 - a reply this explorer cannot decode: another forkcheck wrote it
                    raise UsageError(f"the snapshot process answered in a format forkcheck {version} from {origin} "
                                     f"does not read ({type(exc).__name__}): it runs another forkcheck version; run "
                                     "the explorer and the snapshot processes from one installation (check sys.path "
                                     "and PYTHONPATH)") from None
            if report is None:
                self.close()
                raise ModelError(f"{self.model!r}: the root snapshot process did not answer within {wait:g}s while "
                                 f"it ran {what}, not even to its own timer (stuck in code that never returns to "
                                 "Python?), so it was killed; a blocking call or an endless loop there? if it is "
                                 "just slow, " + RAISE_TIMEOUT)
            if isinstance(report, P.Running):
                what = report.what
                wait = P.explorer_wait(self.transition_timeout)
                continue
            if isinstance(report, P.Stuck):
                stuck = ModelError(f"{self.model!r}: {report.message}")
                if report.details:
                    stuck.add_note(report.details.rstrip())
                raise stuck
            break
        if not isinstance(report, P.Report):
            raise UsageError(f"the snapshot process answered the model's Load with {type(report).__name__}, not a "
                             f"report: it runs another forkcheck version than {version} from {origin}; run the "
                             "explorer and the snapshot processes from one installation (check sys.path and PYTHONPATH)")
        root.report = report
        raise_model_error(root.report, self.model)
        self.symmetric = list(report.symmetric)
        return root

    def _adopt(self, pid: int, raw: socket.socket) -> Snapshot:
        snap = Snapshot(pid, raw)
        self.live.add(snap)
        self.peak = max(self.peak, len(self.live))
        return snap

    def release(self, snap: Snapshot) -> None:
        """End a snapshot process: it exits when its socket closes.

        The root stays until :meth:`close`: when its socket closes it ends the
        whole tree.
        """
        if snap is self.root and self.proc is not None:
            return
        if not snap.closed:
            snap.closed = True
            try:
                snap.sock.close()
            except RuntimeError:  # outside trio (final clean-up): close the socket itself
                snap.raw.close()
            self.live.discard(snap)

    def close(self) -> None:
        """End every snapshot process and reap the root; safe to call twice, from sync code."""
        proc, self.proc = self.proc, None
        for snap in list(self.live):
            self.release(snap)
        if proc is not None:
            deadline = time.monotonic() + 5.0
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything the root could not reap
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        if self._errfile is not None:
            self._errfile.close()
            self._errfile = None

    def stderr_tail(self, limit: int = 4000) -> str:
        if self._errfile is None:
            return ""
        self._errfile.seek(0, os.SEEK_END)
        size = self._errfile.tell()
        self._errfile.seek(max(0, size - limit))
        return self._errfile.read().decode("utf-8", "replace")

    @contextlib.contextmanager
    def using(self, *, transition_timeout: float, on_fork_failure: Callable[[], None] | None,
              footprints: bool = False) -> Iterator[None]:
        """Run one search with its own timeout, fork-failure handler and footprints, then restore the tree's.

        A notebook's tree outlives the searches run on it, each with its options
        (a reduction needs the states it forks to report footprints; the start
        node's own report has none, so it takes every transition).
        """
        saved = self.transition_timeout, self.on_fork_failure, self.footprints
        self.transition_timeout, self.on_fork_failure, self.footprints = transition_timeout, on_fork_failure, footprints
        try:
            yield
        finally:
            self.transition_timeout, self.on_fork_failure, self.footprints = saved

    # -- requests ---------------------------------------------------------------

    async def step(self, snap: Snapshot, index: int | tuple[int, ...], reseed: bool = False,
                   in_place: bool = False) -> Snapshot:
        """Fork ``snap``; the child takes transition ``index`` (or each of a path of them).

        ``reseed`` reseeds the child's random module first (for the determinism check).
        ``in_place``: ``snap``'s own process takes them instead, without a fork
        (``Fork.in_place``), and ``snap`` is released: the caller must need
        nothing more of it and have no other request to it in flight.  Never
        the root.

        Returns the child with its report.  A fork that fails for lack of
        resources (EAGAIN, ENOMEM, EMFILE) calls ``on_fork_failure`` (which frees
        snapshots) and is tried again with a growing pause.
        """
        path = (index,) if isinstance(index, int) else tuple(index)
        assert not (in_place and (reseed or snap is self.root)), "in place: never the root, never a twin"
        last = path[-1]
        info = snap.report.transitions[last] if len(path) == 1 else P.TransitionInfo("?", f"path of {len(path)} steps", "")
        reply: P.Report | P.ForkFailed
        for attempt in range(12):
            try:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            except OSError as exc:  # EMFILE, ENFILE, ENOMEM: out of descriptors or memory
                reply = P.ForkFailed(exc.errno or 0, str(exc))
            else:
                theirs_inode = os.fstat(theirs.fileno()).st_ino
                try:
                    async with snap.lock:
                        await P.asend(snap.sock, P.Fork(path, reseed, self.footprints, in_place),
                                      fd=theirs.fileno())
                except BaseException:
                    ours.close()
                    raise
                finally:
                    theirs.close()  # the parent has its own copy now, and closes it once it has forked
                child = self._adopt(0, ours)
                reply = await self._first_message(snap, child, path, info, theirs_inode, in_place)
                if in_place:  # the process is the child's now (no ForkFailed without a fork): its old channel is done
                    self.release(snap)
                if not isinstance(reply, P.ForkFailed):
                    break
                self.release(child)
            self.fork_failures += 1
            if self.on_fork_failure is not None:
                self.on_fork_failure()
            await trio.sleep(0.01 * 2 ** min(attempt, 6))
        else:
            assert isinstance(reply, P.ForkFailed)  # every attempt failed
            raise ForkcheckError(f"cannot create snapshot processes ({os.strerror(reply.errno)}) even after freeing "
                                 f"some: {len(self.live)} are live; lower max_snapshots or free memory and processes")
        if not isinstance(reply, P.Report):
            raise InternalError(f"snapshot {snap.pid} answered Step with {reply!r}")
        child.pid = reply.pid
        child.report = reply
        child.gen = snap.gen if in_place else snap.gen + 1  # no fork in place: no longer a chain
        self.memory.observe(self.live)  # samples only at new peaks, within a time budget (_memory.py)
        return child

    async def _first_message(self, parent: Snapshot, child: Snapshot, path: tuple[int, ...], info: P.TransitionInfo,
                             inode: int, in_place: bool = False) -> P.Report | P.ForkFailed:
        """The child's report, the parent's ForkFailed, or a fault report when the child dies or hangs.

        ``in_place``: the "child" is the parent's own process (``Fork.in_place``).
        """
        with trio.move_on_after(P.explorer_wait(self.transition_timeout, len(path))):
            try:
                reply = await P.arecv(child.sock)
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):  # ValueError: bad marshal data
                return self._fault(parent, path, info, "crash",
                                   f"the snapshot process died while actor {info.actor} took '{info.label}' "
                                   "(os._exit, a signal such as a segfault, out of memory, or killed)")
            if isinstance(reply, P.Stuck):  # the child's timer: it stopped where it was stuck, and exits
                return self._fault(parent, path, info, "timeout", reply.message, reply.details)
            return reply
        pid = parent.pid if in_place else _holder_of(parent.pid, inode)
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self._fault(parent, path, info, "timeout",
                           f"actor {info.actor} did not reach its next await within {self.transition_timeout:g}s "
                           f"after '{info.label}', and its snapshot process did not answer even to its own timer "
                           "(stuck in code that never returns to Python?), so it was killed: an endless loop in C "
                           "code, a blocking call? if it is just slow, " + RAISE_TIMEOUT)

    def _fault(self, parent: Snapshot, path: tuple[int, ...], info: P.TransitionInfo, kind: str, message: str,
               details: str = "") -> P.Report:
        fp = hashlib.blake2b(parent.report.fingerprint + f"/{path}/{kind}".encode(), digest_size=16).digest()
        return P.Report(pid=0, fingerprint=fp, transitions=[], all_done=False,
                        violations=[P.ViolationInfo(kind, info.actor, message, details)])

    async def footprint(self, snap: Snapshot) -> None:
        """Ask ``snap`` for its footprints (a reduction is on) and put them in its report."""
        if snap.closed or snap.report is None or snap.report.pid == 0:
            return
        async with snap.lock:
            await P.asend(snap.sock, P.Footprint())
            reply = await P.arecv(snap.sock)
        snap.report.owners, snap.report.keys, snap.report.footprint = reply.owners, reply.keys, reply.footprint

    async def describe(self, snap: Snapshot) -> P.Description | None:
        if snap.closed or snap.report is None or snap.report.pid == 0:
            return None
        async with snap.lock:
            await P.asend(snap.sock, P.Describe())
            with trio.move_on_after(P.explorer_wait(self.transition_timeout)):
                return await P.arecv(snap.sock)
        # The description runs the model's reprs in a fork of the snapshot, under the snapshot's timer;
        # a fork that does not even answer that leaves the snapshot waiting: it is of no more use.
        self.release(snap)
        return None

    async def eval(self, snap: Snapshot, fn) -> object:
        res = None
        async with snap.lock:
            await P.asend(snap.sock, P.Eval(_pickle.dumps(fn)))
            with trio.move_on_after(P.explorer_wait(self.transition_timeout)):
                res = await P.arecv(snap.sock)
        if res is None:
            self.release(snap)
            raise ModelError(f"evaluating {getattr(fn, '__name__', fn)!r} in the snapshot did not finish within "
                             f"{P.explorer_wait(self.transition_timeout):g}s, so the snapshot was ended")
        if res.error is not None:
            raise ModelError(f"evaluating {getattr(fn, '__name__', fn)!r} in the snapshot failed: {res.error}")
        return _pickle.loads(res.value)


def _holder_of(parent: int, inode: int) -> int | None:
    """The child of ``parent`` that holds the socket ``inode`` (a hung snapshot to kill), if any."""
    try:
        with open(f"/proc/{parent}/task/{parent}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:  # pragma: no cover - a kernel without CONFIG_PROC_CHILDREN: look at every process
        kids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    want = f"socket:[{inode}]"
    for pid in kids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == want:
                    return pid
            except OSError:
                continue
    return None


def package_version() -> tuple[str, str]:
    """This process's forkcheck version and the directory it was imported from."""
    import forkcheck  # at call time: this module is imported while the package initialises

    return forkcheck.__version__, os.path.dirname(os.path.abspath(forkcheck.__file__))


def raise_model_error(report: P.Report, model: Model) -> None:
    """Turn a report's model error into the matching exception."""
    if report.model_error is None:
        return
    cls_name, message, tb = report.model_error
    if cls_name in ("UsageError", "VersionError"):
        raise UsageError(message)
    if cls_name == "OpaqueStateError":
        raise OpaqueStateError(f"{model!r}: {message}")
    if cls_name in ("InvariantError", "PropertyError", "LoadError", "ResourceError", "StuckError"):
        exc = ModelError(f"{model!r}: {message}")
        if tb:
            exc.add_note(tb.rstrip())  # the model's own traceback: shown where tracebacks are (--debug)
        raise exc
    raise ModelError(f"the setup function of {model!r} raised {cls_name}: {message}\n{tb}".rstrip())
