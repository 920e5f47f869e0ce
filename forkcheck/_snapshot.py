"""The snapshot process: a stopped, forked copy of the simulated program.

The explorer starts the root as a fresh interpreter (``python -m
forkcheck._snapshot FD``); every other snapshot is a fork of its parent
snapshot.  Each process holds exactly one socket, its own channel to the
explorer, and serves the requests of ``_protocol.py`` until that channel
closes: then it exits.  The root is a child subreaper and ignores SIGCHLD, so
every descendant is reaped, and on its way out it kills whatever is left of its
process group.
"""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import signal
import socket
import sys
import threading
import time

from . import _protocol as P
from ._fingerprint import _global_items, state_fingerprint
from ._runtime import World, short_repr

_PR_SET_CHILD_SUBREAPER = 36

try:
    # libc's fork without CPython's after-fork hooks (thread-state reinit, the random
    # module's reseed, threading and logging clean-ups): half the cost of os.fork() and
    # fewer pages copied.  Safe because a snapshot has one thread (checked before forking)
    # and PyDLL keeps the GIL held across the call.
    _raw_fork = ctypes.PyDLL(None).fork
    _raw_fork.restype = ctypes.c_int
    _raw_fork.argtypes = []
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _raw_fork = os.fork


def _fork() -> int:
    pid = _raw_fork()
    if pid < 0:
        raise OSError(ctypes.get_errno(), "fork failed")
    if pid == 0 and "random" in sys.modules:
        # os.fork() would reseed the random module; do it too, so that code using random
        # outside fc.choose() is caught as nondeterministic instead of silently repeating.
        sys.modules["random"].seed()
    return pid


def make_report(world: World) -> P.Report:
    """Check the current state and describe it for the explorer."""
    pid = os.getpid()
    if world.model_error is None and threading.active_count() > 1:
        world.model_error = ("UsageError", "an actor started a thread: a snapshot process must stay single-threaded "
                             "to be forked; model concurrency with actors (fc.spawn) instead", "")
    if world.model_error is None:
        world.check_invariants()
    enabled = world.enabled() if world.model_error is None else []
    if world.model_error is not None:
        return P.Report(pid, b"", [], [], False, model_error=world.model_error)
    transitions = [
        P.TransitionInfo(t.actor.name if t.actor is not None else t.request.name, t.label,
                         t.actor.where() if t.actor is not None else "")
        for t in enabled
    ]
    blocked = ""
    if not enabled and not world.all_done() and not any(a.failed for a in world.actors):
        blocked = world.blocked_message()
    labels = {}
    for prop in world.liveness:
        try:
            labels.update(prop.labels())
        except BaseException as exc:  # noqa: BLE001
            return P.Report(pid, b"", [], [], False, model_error=(
                "PropertyError", f"the predicate of property {prop.name!r} raised {type(exc).__name__}: {exc}", ""))
    return P.Report(
        pid=pid,
        fingerprint=state_fingerprint(world),
        transitions=transitions,
        violations=[P.ViolationInfo(*v) for v in world.violations],
        all_done=world.all_done(),
        blocked=blocked,
        labels=labels,
        properties=[prop.spec() for prop in world.liveness],
    )


def describe(world: World) -> P.Description:
    actors = []
    for a in world.actors:
        frames = []
        for f in a.frames():
            loc = {k: short_repr(v, 200) for k, v in f.f_locals.items()}
            frames.append((f.f_code.co_qualname, f"{f.f_code.co_filename}:{f.f_lineno}", loc))
        actors.append(P.ActorInfo(a.name, a.status, a.pending.describe() if a.pending is not None else "", a.where(), frames))
    view = None if world.view is None else short_repr(world.view, 4000)
    glob: dict[str, str] = {}
    for g in world.globals_roots:
        for name, v in _global_items(g):
            if not callable(v) or isinstance(v, tuple):
                glob[name] = short_repr(v, 400)
    return P.Description(actors, view, glob)


def _throwaway(fn):
    """Run ``fn()`` in a fork of this process and return its pickled result."""
    r, w = os.pipe()
    pid = _fork()
    if pid == 0:  # pragma: no cover - runs in the fork
        os.close(r)
        try:
            data = pickle.dumps(("ok", fn()), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001
            data = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
        view = memoryview(data)
        while view:
            n = os.write(w, view)
            view = view[n:]
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    if not chunks:
        return ("error", "the process evaluating the request died")
    return pickle.loads(b"".join(chunks))


def _eval(world: World, blob: bytes):
    import cloudpickle

    fn = cloudpickle.loads(blob)
    return cloudpickle.dumps(fn(world.view))


class _Watchdog:
    """While user code runs, exit if the explorer has gone (its socket closed)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _check(self, signum, frame) -> None:
        try:
            if self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                os._exit(0)
        except BlockingIOError:
            pass
        except OSError:
            os._exit(0)

    def __enter__(self):
        signal.signal(signal.SIGALRM, self._check)
        signal.setitimer(signal.ITIMER_REAL, 1.0, 1.0)
        return self

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        return False


def serve(sock: socket.socket, world: World, root: bool) -> None:
    """The command loop of one snapshot process."""
    while True:
        try:
            msg = P.recv(sock)
        except (EOFError, OSError):
            _leave(root)
        if isinstance(msg, P.Step):
            try:
                a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            except OSError as exc:
                P.send(sock, P.ForkFailed(exc.errno or 0, str(exc)))
                continue
            try:
                pid = _fork()
            except OSError as exc:
                a.close()
                b.close()
                P.send(sock, P.ForkFailed(exc.errno or 0, str(exc)))
                continue
            if pid == 0:
                sock.close()
                a.close()
                sock, root = b, False
                with _Watchdog(sock):
                    for k, index in enumerate(msg.path):
                        if k and (world.model_error is not None or world.violations):
                            break  # a rebuild path never goes through violating states; stop defensively
                        world.execute(index)
                    report = make_report(world)
                P.send(sock, report)
                continue
            b.close()
            P.send(sock, P.Forked(pid), fd=a.fileno())
            a.close()
        elif isinstance(msg, P.Describe):
            status, value = _throwaway(lambda: describe(world))
            P.send(sock, value if status == "ok" else P.Description([], f"<describe failed: {value}>", {}))
        elif isinstance(msg, P.Eval):
            status, value = _throwaway(lambda: _eval(world, msg.fn))
            P.send(sock, P.EvalResult(value, None) if status == "ok" else P.EvalResult(None, value))
        else:  # pragma: no cover - protocol misuse is a bug
            raise RuntimeError(f"unexpected message {msg!r}")


def _group_members(pgrp: int, me: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgrp and fields[0] != b"Z":
            out.append(int(name))
    return out


def _leave(root: bool) -> None:
    """Exit; the root first kills and reaps every other snapshot."""
    if root:
        me, pgrp = os.getpid(), os.getpgrp()
        for _ in range(200):
            members = _group_members(pgrp, me)
            if not members:
                break
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)
        try:
            while True:  # SIGCHLD is ignored: wait returns ECHILD once every child is gone
                os.wait()
        except ChildProcessError:
            pass
    os._exit(0)


def _no_fork(*args, **kwargs):
    from ._errors import UsageError

    raise UsageError("an actor called os.fork(): forkcheck forks the snapshot processes itself; "
                     "model concurrency with actors (fc.spawn) instead")


def _prepare_process(root: bool) -> None:
    os.fork = _no_fork  # user code must not fork a snapshot (forkcheck uses libc's fork directly)
    if hasattr(os, "forkpty"):
        os.forkpty = _no_fork
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the explorer's to handle
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forks are reaped by the kernel
    if root:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - not Linux
            pass
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))


def main(argv: list[str]) -> None:
    sock = socket.socket(fileno=int(argv[1]))
    _prepare_process(root=True)
    try:
        load = P.recv(sock)
    except EOFError:
        _leave(True)
    sys.path[:] = load.sys_path
    if load.memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (load.memory_limit, load.memory_limit))
    try:
        os.chdir(load.cwd)
    except OSError:
        pass
    import cloudpickle

    world = World()
    try:
        model = cloudpickle.loads(load.model)
    except BaseException as exc:  # noqa: BLE001
        world.model_error = ("LoadError", f"the model could not be loaded in the snapshot process: {type(exc).__name__}: {exc}", "")
    else:
        world.setup(model.fn, model.args, model.kwargs)
    report = make_report(world)
    gc.collect()
    gc.freeze()  # the collector leaves setup's objects alone: fewer pages copied per fork
    P.send(sock, report)
    serve(sock, world, root=True)


if __name__ == "__main__":
    main(sys.argv)
