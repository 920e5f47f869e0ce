"""The snapshot process: a stopped, forked copy of the simulated program.

The explorer starts the root as a fresh interpreter (``python -m
forkcheck._app.serve FD``); every other snapshot is a fork of its parent
snapshot.  Each process holds exactly one socket, its own channel to the
explorer, and serves the requests of ``_protocol.py`` until that channel
closes: then it exits.  The root is a child subreaper and ignores SIGCHLD, so
every descendant is reaped, and on its way out it kills whatever is left of its
process group.
"""

from __future__ import annotations

import _thread
import ctypes
import gc
import os
import pickle
import signal
import socket
import sys
import time
import warnings
from typing import Callable

from _signal import getsignal as _getsignal  # type: ignore[import-not-found]  # signal.getsignal runs Python code

from .. import _protocol as P
from .._errors import RAISE_TIMEOUT
from . import fingerprint as _fingerprint
from . import footprint as _footprint
from .fingerprint import Opaque, SymmetryLeak, _global_items, distinct_fingerprint, locate, state_fingerprint
from .hugepages import collapse
from . import runtime as _runtime
from .runtime import Stuck, World, short_repr, stuck_message, stuck_where

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
    _raw_fork = os.fork  # type: ignore[assignment]  # libc's fork or os.fork: both are called as fork()


try:
    from _random import Random as _CRandom

    _random_seed: Callable[..., None] | None = _CRandom.seed
except ImportError:  # pragma: no cover - a Python without _random
    _random_seed = None


def _settle_malloc() -> None:
    """Let glibc's malloc put its free chunks in order now, before this process is forked.

    glibc files the chunks freed since the last request of a large block (1 KiB
    or more) only at the next one, writing the headers of chunks all over the
    heap.  A child that did it would copy those pages, every child again.  One
    large request here does it once, in the process the children share.  A
    4 KiB ``bytes`` is such a request under either allocator (pymalloc passes
    blocks over 512 bytes to malloc), made and freed at once by one C call.
    """
    bytes(4096)


def _fork(reseed: bool = False) -> int:
    pid = _raw_fork()
    if pid < 0:
        raise OSError(ctypes.get_errno(), "fork failed")
    if pid == 0 and reseed and "random" in sys.modules:
        # The determinism check's twin: os.fork() would reseed the random module, and so does
        # the twin, so that code using random outside fc.choose() is caught as
        # nondeterministic.  Other children inherit their parent's generator, like any state.
        _reseed(sys.modules["random"])
    return pid


def _reseed(random) -> None:
    inst = getattr(random, "_inst", None)
    if _random_seed is not None and isinstance(inst, random.Random):
        _random_seed(inst)  # urandom, like Random.seed(None)
        inst.gauss_next = None
    else:  # pragma: no cover - a replaced random module
        random.seed()


def make_report(world: World, root: bool = False, step_effects: bool = True) -> P.Report:
    """Check the current state and describe it for the explorer.

    ``root``: the root's report also names the fc.symmetric sets (under
    symmetry).  With ``world.footprints`` (a reduction is on), the report also
    carries the state's footprints and, when ``step_effects``, what the step
    just taken from the parent state did (``_app/footprint.py``); a state
    rebuilt by a path of several steps has no parent state here to compare with.
    """
    pid = os.getpid()
    effects = None
    if world.footprints:
        ops, world.step_ops = world.step_ops, None
        if step_effects and ops is not None:
            written = _footprint.effects()
            if written is not None:
                effects = (written, ops)
    if world.model_error is None and _thread._count() > 0:  # threading.active_count() runs Python code
        world.model_error = ("UsageError", "an actor started a thread: a snapshot process must stay single-threaded "
                             "to be forked; model concurrency with actors (fc.spawn) instead", "")
    constrained = ""
    if world.model_error is None:
        world.check_invariants()
    if world.constraints and world.model_error is None:
        constrained = world.check_constraints()
    enabled = world.enabled() if world.model_error is None else []
    if world.stuck and world.model_error is None:
        _caught_interruption(world)
    if world.model_error is not None:
        return P.Report(pid, b"", [], [], False, model_error=world.model_error)
    # Loops, not comprehensions, on this path: in Python 3.11 each comprehension makes a function
    # object, writing the reference counts of its code, name and globals (pages a snapshot copies).
    transitions = []
    for t in enabled:
        actor = t.actor
        if actor is not None:
            transitions.append(P.TransitionInfo(actor.name, t.label, actor.where(), t.deviation))
        else:
            transitions.append(P.TransitionInfo(t.request.name, t.label, ""))
    blocked = ""
    if not enabled and not world.all_done() and not any(a.failed for a in world.actors):
        blocked = world.blocked_message()
    labels = {}
    for prop in world.liveness:
        try:
            labels.update(prop.labels())
        except Stuck as exc:
            return P.Report(pid, b"", [], [], False, model_error=(
                "PropertyError", stuck_message(f"the predicate of property {prop.name!r}", exc.seconds, exc.where,
                                               "return"), ""))
        except BaseException as exc:  # noqa: BLE001
            return P.Report(pid, b"", [], [], False, model_error=(
                "PropertyError", f"the predicate of property {prop.name!r} raised {type(exc).__name__}: {exc}", ""))
    opaque = ""
    try:
        fingerprint = state_fingerprint(world)
    except Opaque as exc:
        if _OPAQUE[0] != "distinct":
            return P.Report(pid, b"", [], [], False, model_error=("OpaqueStateError", opaque_message(world, exc), ""))
        fingerprint = distinct_fingerprint(world)
        opaque = f"{_type_name(exc.obj)} ({exc.reason})"
    except SymmetryLeak as exc:
        return P.Report(pid, b"", [], [], False, model_error=("UsageError", leak_message(world, exc), ""))
    symmetric = []
    if root and world.symmetry_on:
        for owner in world.symmetric:
            symmetric.append((owner.name, owner.n))
    report = P.Report(
        pid=pid,
        fingerprint=fingerprint,
        transitions=transitions,
        violations=[P.ViolationInfo(*v) for v in world.violations],
        all_done=world.all_done(),
        blocked=blocked,
        labels=labels,
        properties=[prop.spec() for prop in world.liveness],
        opaque=opaque,
        constrained=constrained,
        arrived=world.arrived,
        order=world.order_fingerprint() if world.order_matters and not opaque else b"",
        symmetric=symmetric,
    )
    report.effects = effects
    return report


def footprint_report(world: World) -> P.Report:
    """The answer to a Footprint request: this state's footprints (and the digests kept for its children)."""
    report = P.Report(os.getpid(), b"", [], [], False)
    if world.footprints and world.model_error is None:
        enabled = world.enabled()
        report.owners, report.keys = _footprint.transition_keys(world, enabled)
        report.footprint = _footprint.compute(world)
    return report


def _caught_interruption(world: World) -> None:
    """The timer interrupted user code and the step went on: the model caught the interruption.

    The state it reached is not one the program reaches (its handler ran
    because forkcheck interrupted it), so it is reported as the timeout it is
    and never expanded.
    """
    for v in world.violations:
        if v[0] == "timeout":
            return
    world.violations.append((
        "timeout", world.running.name if world.running is not None else "timeout",
        f"a step did not finish within {world.timeout:g}s, and the model caught forkcheck's interruption (a bare "
        "`except:` or `except BaseException:`) and went on: the state it reached is not trusted. Let "
        "forkcheck.Stuck propagate; if the step is just slow, " + RAISE_TIMEOUT, ""))


_OPAQUE = ["error"]  # Load.opaque: what a state holding an object the fingerprint cannot see gets


def _type_name(obj) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def opaque_message(world: World, exc: Opaque) -> str:
    """The error for a state holding an object whose state the fingerprint cannot see."""
    name = _type_name(exc.obj)
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return (f"the state holds {article} {name} object ({locate(world, exc.obj)}) and forkcheck cannot see its "
            f"contents ({exc.reason}), so it would take states that differ inside it for one. Fix: give its class "
            f"a __fc_state__ method, or call fc.register_state({name}, fn) with fn(obj) returning everything its "
            "behaviour depends on; or check(opaque='distinct') (--opaque distinct) to keep every state that holds it apart "
            "(never merged: the search may not end)")


def leak_message(world: World, exc: SymmetryLeak) -> str:
    """The error for a string in the state that names a symmetric value (a broken promise of symmetry)."""
    return (f"the state holds the string {short_repr(exc.obj)} ({locate(world, exc.obj)}), which names symmetric value "
            f"{exc.name}: renaming the values would leave the string behind, so symmetry could merge states that "
            "differ. Keep the value itself (as a dict key, a set member, a tuple element) instead of a string made "
            "from it; a string that only looks like a value's name needs another name for the fc.symmetric set; "
            "or check with symmetry=False (--no-symmetry)")


def describe(world: World) -> P.Description:
    """The state for humans: each actor's frames and locals, the closure variables they share, the view.

    A closure variable that several frames see as the same object (the
    setup function's state, a network, locks) is named in ``shared``, which
    reports show once instead of in the locals of every frame; one that is
    the view itself maps to None (reports show the view).  A closure variable
    only one frame sees, or that differs between frames (an actor factory's
    argument), is only its frame's.  The frames' locals hold them all.
    """
    raw = []
    seen: dict[str, list] = {}  # closure variable -> the objects the frames that see it hold
    for a in world.actors:
        frames = []
        for f in a.frames():
            free = f.f_code.co_freevars
            loc = f.f_locals
            for k in free:
                if k in loc:
                    seen.setdefault(k, []).append(loc[k])
            frames.append((f, loc, free))
        raw.append((a, frames))
    shared: dict[str, str | None] = {}
    for k, objs in seen.items():
        if all(o is objs[0] for o in objs):
            if world.view is not None and objs[0] is world.view:
                shared[k] = None
            elif len(objs) > 1:
                shared[k] = short_repr(objs[0], 400)
    actors = []
    for a, frames in raw:
        out = []
        for f, loc, free in frames:
            shown = {k: short_repr(v, 200) for k, v in loc.items()}
            out.append((f.f_code.co_qualname, f"{f.f_code.co_filename}:{f.f_lineno}", shown))
        actors.append(P.ActorInfo(a.name, a.status, a.pending.describe() if a.pending is not None else "", a.where(), out))
    view = None if world.view is None else short_repr(world.view, 4000)
    glob: dict[str, str] = {}
    for g in world.globals_roots:
        for name, v in _global_items(g):
            if not callable(v) or isinstance(v, tuple):
                glob[name] = short_repr(v, 400)
    return P.Description(actors, view, glob, shared)


def _throwaway(fn):
    """Run ``fn()`` in a fork of this process and return its pickled result."""
    try:
        r, w = os.pipe()
    except OSError as exc:
        return ("error", f"no pipe to a throwaway fork: {exc}")
    try:
        pid = _fork()
    except OSError as exc:
        os.close(r)
        os.close(w)
        return ("error", f"no throwaway fork: {exc}")
    if pid == 0:  # pragma: no cover - runs in the fork
        os.close(r)
        _in_throwaway[0] = True
        if _getsignal(signal.SIGALRM) is _watchdog:
            _arm()  # reprs, fn(view): user code, timed like any other
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


_watched: socket.socket | None = None  # the channel of this snapshot process, for _watchdog

#: The timer of user code: [interval, soft tick, hard tick, seconds] (``_protocol.timer_budget``),
#: set from Load.transition_timeout; ``_ticks`` counts the ticks of the piece of code running now.
_TIMER: list = [1.0, 30, 45, 30.0]
_ticks = [0]
_in_throwaway = [False]  # a throwaway fork (Describe, Eval) shares its parent's channel: it must not write to it


def _set_budget(seconds: float) -> None:
    interval, soft, hard = P.timer_budget(seconds)
    _TIMER[:] = [interval, soft, hard, seconds]


def _arm() -> None:
    """Start timing a piece of user code (the handler was installed once, in the root)."""
    _ticks[0] = 0
    signal.setitimer(signal.ITIMER_REAL, _TIMER[0], _TIMER[0])


def _new_budget() -> None:
    """The next step of a rebuild path starts: it gets a budget of its own (aio.py calls it; serve's loop inlines it)."""
    _ticks[0] = 0


def _watchdog(signum, frame) -> None:
    """While user code runs: exit if the explorer has gone, and stop code that runs past its budget.

    The handler is installed once, in the root; a transition only arms and
    disarms the interval timer (``setitimer``, which forks do not inherit), so
    that watching costs a snapshot no Python-level set-up.

    At the soft tick it raises :class:`~forkcheck._app.runtime.Stuck` where
    the model's code is (a Python-level blocking call such as
    ``threading.Lock.acquire`` or ``time.sleep`` is interrupted by the
    signal); the runtime reports it as a timeout with that place.  In
    forkcheck's own code it waits a tick.  At the hard tick (the code caught
    the interruption, or never returned to Python between ticks) it tells the
    explorer where the code is and exits.
    """
    sock = _watched
    if sock is None:
        return
    try:
        if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
            os._exit(0)
    except BlockingIOError:
        pass
    except OSError:
        os._exit(0)
    ticks = _ticks[0] + 1
    _ticks[0] = ticks
    if ticks < _TIMER[1]:
        return
    if ticks >= _TIMER[2]:
        _give_up(stuck_where(frame))
    world = _runtime._WORLD
    if world is None or world.stuck or frame is None or frame.f_code.co_filename.startswith(world.machinery):
        return
    world.stuck = True
    raise Stuck(_TIMER[3], stuck_where(frame)[0])


def _give_up(where: tuple[str, str], who: str | None = None) -> None:
    """Code ran past its budget and kept running: tell the explorer where it is (not from a throwaway) and exit."""
    world = _runtime._WORLD
    who = who or (world.who_runs() if world is not None else "the model's code")
    message = stuck_message(who, _TIMER[3], where[0], "finish",
                            " (and went on after forkcheck interrupted it, so its snapshot process was ended)",
                            world.blocking if world is not None else _runtime.BLOCK_ON)
    if not _in_throwaway[0] and _watched is not None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            P.send(_watched, P.Stuck(message, where[1]))
        except OSError:
            pass
    os._exit(1)


def _reserve(sock: socket.socket) -> int | None:
    """Hold one file descriptor, so that the socket of a new snapshot always has a slot to land in.

    A request's descriptor that finds no free slot is dropped by the kernel
    without a trace the explorer could tell from a crash.  A snapshot closes its
    reserve just before it waits for a request: the slot is then free even when
    the model has used every descriptor its limit allows.
    """
    try:
        return os.dup(sock.fileno())
    except OSError:
        return None


_NO_DESCRIPTOR = ("ResourceError", "the model has used every file descriptor that RLIMIT_NOFILE allows; "
                  "each snapshot process needs one for its channel to the explorer: close files the model "
                  "opens, or raise the limit (ulimit -n)", "")


def serve(sock: socket.socket, world: World, root: bool, reserve: int | None) -> None:
    """The command loop of one snapshot process."""
    while True:
        if reserve is not None:
            os.close(reserve)  # a free slot for the socket that may come with the request
            reserve = None
        _settle_malloc()
        try:
            msg, fd = P.recv_with_fd(sock)
        except (EOFError, OSError):
            _leave(root)
        if isinstance(msg, P.Fork):
            if fd is None:  # pragma: no cover - the reserve makes room for it; a bug otherwise
                raise RuntimeError("Fork arrived without the child's socket")
            try:
                # In place: this process takes the path itself, nothing needs its state any more (the
                # explorer says so, never to the root, which holds the tree together; a root asked
                # anyway forks as usual).
                pid = 0 if msg.in_place and not root else _fork(msg.reseed)
            except OSError as exc:
                with socket.socket(fileno=fd) as chan:
                    P.send(chan, P.ForkFailed(exc.errno or 0, str(exc)))
                pid = -1
            if pid == 0:
                # The channel takes the number of the parent's socket, under the same socket object
                # (a new one would run socket.py's Python code, copying pages): the slot it came in
                # is the one under the descriptor limit, and stays free for the reserve.
                root = False
                try:
                    os.dup2(fd, sock.fileno())
                except OSError:  # above a limit the model lowered: keep the channel where it is
                    os.close(sock.detach())
                    sock = _watch(socket.socket(fileno=fd))
                else:
                    os.close(fd)
                # A model that installed a SIGALRM handler of its own goes without the watchdog.
                world.stuck = False
                watched = _getsignal(signal.SIGALRM) is _watchdog
                if watched:
                    _arm()
                world.footprints = msg.footprints
                if not msg.footprints:
                    _footprint._TABLE = None
                resume = getattr(world, "resume", None)
                if resume is not None:
                    resume(msg.path, watched)  # a program that keeps its own stack (aio.py) goes back to it
                try:
                    for k, index in enumerate(msg.path):
                        if k and (world.model_error is not None or world.violations):
                            break  # a rebuild path never goes through violating states; stop defensively
                        _ticks[0] = 0  # each step of a rebuild path has its own budget
                        world.execute(index)
                except Stuck as exc:  # interrupted where no caller reports it (a __fc_state__, a repr)
                    _give_up((exc.where, ""))
                reserve = _finish_step(sock, world, watched, step_effects=len(msg.path) == 1)
                continue
            if pid > 0:
                os.close(fd)  # the channel is the child's alone: its end of file means the child died
        else:
            if fd is not None:  # pragma: no cover - only Fork carries a socket
                os.close(fd)
            if isinstance(msg, P.Footprint):
                P.send(sock, footprint_report(world))
            elif isinstance(msg, P.Describe):
                status, value = _throwaway(lambda: describe(world))
                P.send(sock, value if status == "ok" else P.Description([], f"<describe failed: {value}>", {}))
            elif isinstance(msg, P.Eval):
                status, value = _throwaway(lambda: _eval(world, msg.fn))
                P.send(sock, P.EvalResult(value, None) if status == "ok" else P.EvalResult(None, value))
            else:  # pragma: no cover - protocol misuse is a bug
                raise RuntimeError(f"unexpected message {msg!r}")
        reserve = _reserve(sock)


def _finish_step(sock: socket.socket, world: World, watched: bool, step_effects: bool = True) -> int | None:
    """A new snapshot has taken its transitions: report its state; the descriptor it keeps in reserve.

    The report runs user code (invariants, constraints, a ``__fc_state__``,
    a repr) under the step's budget, which it disarms once the report is made.
    ``step_effects``: the snapshot took one step from its parent, whose effects
    a reduction may use (not a rebuild path).
    """
    try:
        reserve = _reserve(sock)
        if reserve is None and world.model_error is None:
            world.model_error = _NO_DESCRIPTOR
        report = make_report(world, step_effects=step_effects)
    except Stuck as exc:  # interrupted where no caller reports it (a __fc_state__, a repr)
        _give_up((exc.where, ""))
    if watched:
        signal.setitimer(signal.ITIMER_REAL, 0)
    P.send(sock, report)
    return reserve


def report_and_serve(world: World, watched: bool) -> None:
    """In a new snapshot of a program that keeps its own stack (aio.py): report, then serve requests.

    It returns only by the exception that ``world.resume`` raises in a child.
    """
    sock = _watched
    assert sock is not None  # the channel, set by main() and by every fork
    reserve = _finish_step(sock, world, watched)
    serve(sock, world, root=False, reserve=reserve)


def _watch(sock: socket.socket) -> socket.socket:
    global _watched
    _watched = sock
    return sock


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
    from .._errors import UsageError

    raise UsageError("an actor called os.fork(): forkcheck forks the snapshot processes itself; "
                     "model concurrency with actors (fc.spawn) instead")


def _showwarning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as usual, except an un-awaited coroutine of the model, which is a model error."""
    from . import runtime as _runtime

    world = _runtime._WORLD
    if world is not None and issubclass(category, RuntimeWarning) and str(message).endswith("was never awaited"):
        world.unawaited_coroutine(str(message), filename, lineno)
        return
    _plain_showwarning(message, category, filename, lineno, file, line)


_plain_showwarning = warnings.showwarning


def _prepare_process(root: bool) -> None:
    # `helper()` for `await helper()` only warns, when the coroutine is dropped: without this
    # the actor's step silently skips the helper's awaits and a buggy model passes.
    warnings.filterwarnings("always", message=r"coroutine .* was never awaited", category=RuntimeWarning)
    warnings.showwarning = _showwarning
    os.fork = _no_fork  # user code must not fork a snapshot (forkcheck uses libc's fork directly)
    if hasattr(os, "forkpty"):
        os.forkpty = _no_fork
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the explorer's to handle
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forks are reaped by the kernel
    signal.signal(signal.SIGALRM, _watchdog)  # armed only while a transition runs user code
    if root:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - not Linux
            pass
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))


def _refuse(sock: socket.socket, message: str) -> None:
    """Answer the Load with a one-line error and exit: a Report, which every explorer version decodes."""
    try:
        P.send(sock, P.Report(os.getpid(), b"", [], [], False, model_error=("VersionError", message, "")))
    except OSError:
        pass
    _leave(True)


def _receive_load(sock: socket.socket) -> P.Load:
    """The first message, checked to come from an explorer of this forkcheck version.

    Anything else gets a one-line answer instead of a traceback or a hang: a
    Load that does not decode (its classes changed), or one whose framing
    announces more packets than come (its framing changed), is an explorer of
    another version as surely as a Load with another version number.
    """
    from .. import __version__

    origin = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the forkcheck package
    fix = "run the explorer and the snapshot processes from one installation (check sys.path and PYTHONPATH)"
    try:
        first = sock.recv(P.PACKET)
    except OSError:
        _leave(True)
    if not first:
        _leave(True)
    sock.settimeout(10.0)  # the explorer sends the whole Load at once: the rest arrives at once or never
    try:
        load = P._assemble(first, lambda: sock.recv(P.PACKET))
    except Exception as exc:  # noqa: BLE001 - bad framing, a missing class, a timeout
        _refuse(sock, f"the snapshot process runs forkcheck {__version__} from {origin} and cannot read the "
                      f"explorer's first message ({type(exc).__name__}): the explorer runs another forkcheck "
                      f"version; {fix}")
    finally:
        sock.settimeout(None)
    version, protocol = getattr(load, "version", None), getattr(load, "protocol", None)
    if not isinstance(load, P.Load) or (version, protocol) != (__version__, P.PROTOCOL):
        theirs = (f"forkcheck {version} (protocol {protocol}) from {getattr(load, 'origin', '?')}" if version
                  else "a forkcheck older than its version check")
        _refuse(sock, f"the snapshot process runs forkcheck {__version__} (protocol {P.PROTOCOL}) from {origin} "
                      f"but the explorer runs {theirs}: {fix}")
    return load


def main(argv: list[str]) -> None:
    fd = int(argv[1])
    low = os.dup(fd)  # the lowest free number: below any descriptor limit the model may set later
    if low < fd:
        os.close(fd)
    else:
        os.close(low)
        low = fd
    sock = _watch(socket.socket(fileno=low))
    reserve = _reserve(sock)  # taken before the model's setup can use up the descriptors
    _prepare_process(root=True)
    load = _receive_load(sock)
    sys.path[:] = load.sys_path
    if load.memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (load.memory_limit, load.memory_limit))
    try:
        os.chdir(load.cwd)
    except OSError:
        pass
    world: World
    if load.program == "asyncio":
        # Imported before the model's modules (cloudpickle below): it blocks asyncio's C accelerator.
        from .aio import AioWorld

        world = AioWorld(lambda w: serve_root(sock, w, load.huge_pages, reserve), report_and_serve,
                         queue_order=load.queue_order, new_budget=_new_budget)
    else:
        world = World()
    import cloudpickle

    _OPAQUE[0] = load.opaque
    _set_budget(load.transition_timeout)
    world.symmetry_on = load.symmetry
    world.footprints = load.footprints
    world.timeout = load.transition_timeout
    if load.opaque == "distinct":
        world.path = []
    try:
        model, reducers = cloudpickle.loads(load.model)
        _fingerprint.install_reducers(reducers)
    except BaseException as exc:  # noqa: BLE001
        world.model_error = ("LoadError", f"the model could not be loaded in the snapshot process: {type(exc).__name__}: {exc}", "")
    else:
        def piece(what: str) -> None:  # each piece of the setup gets its own budget, and the explorer's wait
            _ticks[0] = 0
            P.send(sock, P.Running(what))

        world.on_piece = piece
        _arm()
        try:
            world.setup(model.fn, model.args, model.kwargs)
        except Stuck as exc:  # pragma: no cover - the runtime reports the setup's and the actors'
            _give_up((exc.where, ""))
        world.on_piece = None
    serve_root(sock, world, load.huge_pages, reserve)


def serve_root(sock: socket.socket, world: World, huge_pages: bool, reserve: int | None) -> None:
    """The root, its setup done: report the initial state and serve the explorer's requests.

    The setup's timer is still armed: the initial state's check (invariants,
    a ``__fc_state__``, a repr) is timed as the setup's last piece.  An
    asyncio program (aio.py) enters here from inside its own stack, at its
    first choice.
    """
    try:
        report = make_report(world, root=True)
        if report.model_error is None and not report.opaque:
            # The first walk caches what pickling caches (copyreg's __slotnames__ on classes), which
            # resets the attribute caches of those classes; a second walk fills them again here,
            # where every snapshot shares them, not in each child of the root.
            state_fingerprint(world)
    except Stuck as exc:
        _give_up((exc.where, ""), "the initial state's check (an invariant, a __fc_state__, a repr)")
    signal.setitimer(signal.ITIMER_REAL, 0)
    gc.collect()
    gc.freeze()  # the collector leaves setup's objects alone: fewer pages copied per fork
    if huge_pages:
        collapse()  # fewer page-table entries to copy per fork (module docstring of _hugepages)
    P.send(sock, report)
    serve(sock, world, root=True, reserve=reserve)


if __name__ == "__main__":
    main(sys.argv)
