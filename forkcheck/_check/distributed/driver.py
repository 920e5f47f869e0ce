"""``check(backend="ray")`` in the caller's process: start the host, follow it, build the result.

The caller's process never imports Ray.  It starts ``host.py`` in a process
of its own (own session: a Ctrl-C reaches only the caller, which asks the
host to stop over the socket), sends it the pickled model, the options and
where the model comes from, relays its progress to ``progress``, then puts
the graph together from the shards' records (``assemble.py``), picks the
counterexamples (shortest: the numbering is breadth first), judges liveness
properties on the graph, and has a worker describe the state at the end of
each counterexample (for a lasso, where its loop starts), as a local check
does.  Warnings (opaque states, a likely infinite state space, liveness not
judged) are given when the check returns, at the caller's line.
"""

from __future__ import annotations

import importlib.util
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from ... import _protocol as P
from ..._errors import InternalError, Interrupted, UnboundedWarning, UsageError
from ..._model import Model, bound_repr
from ..._results import CheckResult, MemoryStats, Stats, Violation
from ..._trace import Trace
from ..options import CheckOptions
from ..search import attach_commands, give_warnings, opaque_warning, origin_module
from ..snapshots import _PACKAGE_PARENT, Origin, model_blob
from .assemble import Assembled, assemble
from .cluster import NO_RAY
from .host import TAG
from .worker import revive


class _Finished:
    """What the liveness analysis reads of a search (``liveness.analyze``), for the assembled graph."""

    def __init__(self, graph: Any, opts: CheckOptions, model: Model, violations: list[Violation],
                 incomplete: list[str], stopped: bool) -> None:
        self.graph = graph
        self.opts = opts
        self.model = model
        self.violations = violations
        self.discoveries: dict = {}
        self.warnings: list[Warning] = []  # given when the check returns (search.give_warnings)
        self._reasons: list[str] = []
        self._incomplete = incomplete
        self.stopped = stopped

    def warn(self, warning: Warning) -> None:
        """Search.warn: keep a warning for the caller, once per text."""
        if all(str(w) != str(warning) or type(w) is not type(warning) for w in self.warnings):
            self.warnings.append(warning)

    @property
    def incomplete(self) -> list[str]:
        return self._incomplete + self._reasons

    @property
    def complete(self) -> bool:
        return not self.incomplete


class HostProcess:
    """The host subprocess and the socket to it."""

    def __init__(self, check_tag: str) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["FORKCHECK_OWNER"] = str(os.getpid())
        env[TAG] = check_tag
        env["RAY_USAGE_STATS_ENABLED"] = "0"  # a private cluster reports nothing to anyone
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.errfile = None if os.environ.get("FORKCHECK_DEBUG") else tempfile.TemporaryFile(prefix="forkcheck-ray-")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "forkcheck._check.distributed.host", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], start_new_session=True, env=env, stdin=subprocess.DEVNULL,
                stdout=self.errfile, stderr=self.errfile)
        finally:
            theirs.close()

    def send(self, *msg: Any) -> None:
        P.send(self.sock, msg)

    def recv(self, timeout: float) -> tuple | None:
        """The next message, or None after ``timeout`` seconds (so that Ctrl-C lands between messages)."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        try:
            return P.recv(self.sock)
        except (EOFError, OSError):
            raise InternalError(f"the Ray host process ended unexpectedly (exit status {self.proc.poll()}):\n"
                                f"{self.stderr_tail()}".rstrip()) from None

    def stderr_tail(self, limit: int = 3000) -> str:
        if self.errfile is None:
            return ""
        self.errfile.seek(0, os.SEEK_END)
        size = self.errfile.tell()
        self.errfile.seek(max(0, size - limit))
        return self.errfile.read().decode("utf-8", "replace")

    def close(self, check_tag: str) -> None:
        try:
            self.send("close")
        except OSError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()
        sweep(check_tag)
        if self.errfile is not None:
            self.errfile.close()


def tagged_processes(check_tag: str) -> list[int]:
    """Processes of this machine that belong to the distributed check ``check_tag`` (by their environment)."""
    want = f"{TAG}={check_tag}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    out.append(int(name))
        except OSError:
            continue
    return out


def sweep(check_tag: str, timeout: float = 10.0) -> None:
    """Wait for every process of the check on this machine to end; SIGKILL what is left after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := tagged_processes(check_tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _rebuild_error(payload: tuple[str, str, list[str]]) -> BaseException:
    return revive(payload)  # a ShardLost arrives as its base class, ForkcheckError


def check_ray(model: Model, opts: CheckOptions) -> CheckResult:
    """Explore ``model`` on a Ray cluster with ``opts`` (backend="ray"); see docs/distributed.md."""
    if importlib.util.find_spec("ray") is None:
        raise UsageError(NO_RAY)
    start = time.perf_counter()
    origin = Origin(model_blob(model)[0], list(sys.path), os.getcwd(), str(os.getpid()))
    tag = uuid.uuid4().hex
    host = HostProcess(tag)
    interrupted = ""
    old_term = None

    def on_sigterm(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = interrupted or "SIGTERM"
        try:
            host.send("stop")
        except OSError:
            pass

    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        host.send("check", {"opts": _without_progress(opts), "origin": origin, "model_repr": repr(model),
                            "module": origin_module(model), "found_on": bound_repr(model)})
        data = None
        setup = 0.0
        while data is None:
            try:
                msg = host.recv(0.2)
                if msg is None:
                    continue
                kind = msg[0]
                if kind == "started":
                    setup = time.perf_counter() - start
                elif kind == "progress":
                    if opts.progress is not None:
                        opts.progress(msg[1])
                elif kind == "error":
                    raise _rebuild_error(msg[1])
                elif kind == "explored":
                    data = msg[1]
            except KeyboardInterrupt:
                if interrupted:
                    raise  # a second Ctrl-C: give up on the partial result
                interrupted = "SIGINT"
                host.send("stop")
        data["setup_seconds"] = setup
        result, found = _result(model, opts, data, host, interrupted, start)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        host.close(tag)
    give_warnings(found)
    if interrupted:
        raise Interrupted(result, interrupted)
    return result


def _without_progress(opts: CheckOptions) -> CheckOptions:
    import dataclasses

    return dataclasses.replace(opts, progress=None)


def _result(model: Model, opts: CheckOptions, data: dict[str, Any], host: HostProcess, interrupted: str,
            start: float) -> tuple[CheckResult, list[Warning]]:
    """The result, as a local breadth-first check gives it, and the warnings to give with it."""
    a: Assembled = assemble(data["dumps"], data["root_gid"])
    module, found_on = origin_module(model), bound_repr(model)
    violations: list[Violation] = []
    ends: list[tuple[Violation, int]] = []  # each counterexample and the state it ends in
    known: set[tuple[str, str]] = set()
    for sid in sorted(a.found):
        for kind, name, message, details in a.found[sid]:
            if (kind, name) not in known:  # one counterexample per property: the first in breadth-first order
                known.add((kind, name))
                violations.append(Violation(kind, name, message, a.trace_to(sid), details, None, repr(model)))
                ends.append((violations[-1], sid))
    by_fingerprint = {d["fingerprint"]: sid for sid, d in a.graph.nodes(data=True)}
    for w in data["workers"]:
        for v in w.get("nondeterminism", []):
            if (v.kind, v.name) not in known:
                known.add((v.kind, v.name))
                # The worker's path to the state it was taken from, shortened through the graph (BFS's own).
                frm = v.trace.steps[-2].fingerprint if len(v.trace) > 1 else a.graph.nodes[0]["fingerprint"]
                if frm in by_fingerprint and opts.opaque != "distinct":  # as Search.shorten_traces
                    v.trace = Trace(a.trace_to(by_fingerprint[frm]).steps + v.trace.steps[-1:])
                violations.append(v)
    causes = list(data["causes"])
    if interrupted:
        causes = [c for c in causes if c != "interrupted"] + [f"interrupted by {interrupted}"]
    # Why the graph is not the whole reachable graph, in the order a local check says it (Search.incomplete).
    incomplete = [f"constraint {name!r} cut {n} state{'s' if n != 1 else ''}" for name, n in a.cut.items()]
    left = len(a.unexpanded) + a.lost
    if left:
        what = " and ".join(causes) or "the search stopped"
        incomplete.append(f"{what} with {left} state{'s' if left != 1 else ''} unexpanded")
    elif interrupted:
        incomplete.append(f"interrupted by {interrupted}")
    finished = _Finished(a.graph, opts, model, violations, incomplete, stopped=bool(causes))
    for type_name in a.opaque:
        finished.warn(opaque_warning(type_name))
    if data.get("hint"):
        finished.warn(UnboundedWarning(data["hint"]))
    root = data["root"]
    if root.properties:
        from ..liveness import analyze

        analyze(finished, root.properties)
    # The state at the end of each counterexample (for a lasso, where its loop starts), described by a
    # worker that rebuilds it by its path and checks the fingerprint it reaches.
    ask: list[tuple[Violation, tuple[int, ...], bytes]] = []
    for v, sid in ends:
        if sid not in a.faulty:
            ask.append((v, tuple(s.index for s in v.trace), bytes.fromhex(a.graph.nodes[sid]["fingerprint"])))
    for v in finished.violations:
        if v.kind == "liveness" and v.state is None:
            n = len(v.trace) if v.trace.cycle_start is None else v.trace.cycle_start
            fp = v.trace.steps[n - 1].fingerprint if n else a.graph.nodes[0]["fingerprint"]
            if by_fingerprint.get(fp, -1) not in a.faulty:  # a state without a process has no description
                ask.append((v, tuple(s.index for s in v.trace.steps[:n]), bytes.fromhex(fp)))
    if ask:
        host.send("describe", [(path, fp) for _, path, fp in ask])
        while True:
            msg = host.recv(5.0)
            if msg is not None and msg[0] == "described":
                break
            if msg is not None and msg[0] == "error":
                raise _rebuild_error(msg[1])
        for (v, _, _), desc in zip(ask, msg[1]):
            v.state = desc
    for t in [v.trace for v in finished.violations] + list(finished.discoveries.values()):
        if t is not None:
            t.module, t.model = module, found_on
    attach_commands(finished.violations, model, opts.transition_timeout)
    workers = data["workers"]
    private = [w["private_bytes"] for w in workers]
    logical = [w["logical_bytes"] for w in workers]
    memory = MemoryStats(
        peak_snapshots=sum(w["peak_snapshots"] for w in workers),
        private_bytes=sum(private) if workers and None not in private else None,
        logical_bytes=sum(logical) if workers and None not in logical else None,
    )
    stats = Stats(states=a.graph.number_of_nodes(), transitions=a.transitions, max_depth=a.max_depth,
                  seconds=time.perf_counter() - start, setup_seconds=data["setup_seconds"], memory=memory)
    result = CheckResult(finished.violations, stats, a.graph, incomplete=finished.incomplete, model=repr(model),
                         discoveries=finished.discoveries)
    return result, finished.warnings
