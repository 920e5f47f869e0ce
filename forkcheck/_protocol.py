"""Every message between the explorer and a snapshot process, in one place.

Transport: one ``AF_UNIX``/``SOCK_SEQPACKET`` socket per snapshot process.  A
message is a pickled dataclass, framed as packets: the first packet starts with
an 8-byte little-endian total length, later packets carry the rest.  A
:class:`Report` travels as a ``marshal`` (version 2) of a tuple of its fields
instead, flagged by the top bit of the length: pickling writes the reference
count of every object it memoizes and looks its classes up by name, and each
such write copies a page the new snapshot shares with its parent.  The
explorer makes the socket pair of a new snapshot itself and sends one end with
the :class:`Fork` request (``SCM_RIGHTS`` ancillary data).  The parent forks
and closes its copy; the child keeps it as its channel.  So the parent sends
nothing back on success: one message per transition instead of two, and the
parent is ready for its next request as soon as it has forked.

Requests and their replies::

    explorer                      snapshot process
    Load(model, version, ...) ->  Running(what)*, Report (root only, once; a model error
                                                          "VersionError" when the versions differ;
                                                          Running before each piece of setup)
    Fork(path) + fd           ->  Report                 (the new child, on the socket sent with Fork;
                                                          in_place: the process itself, its old channel closed)
                                  | ForkFailed(errno)    (the parent, on that same socket: EAGAIN, ENOMEM)
                                  | Stuck(message)       (the child, stuck in user code past the timeout)
                                  | <end of file>        (the child died before reporting)
    Describe()                ->  Description
    Footprint()               ->  Report                 (only owners, keys and footprint set)
    Eval(fn)                  ->  EvalResult
    <socket closed>           ->  the process exits
"""

from __future__ import annotations

import array
import marshal
import math
import os
import pickle
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

#: Bumped whenever a message changes shape; checked with the forkcheck version at Load.
PROTOCOL = 9  # 3: Step became Fork; 4: Description.shared; 5: Load.transition_timeout, Running, Stuck,
# Report.constrained; 6: footprints for the reductions (Load, Fork, Footprint, Report); 7: asyncio programs
# (Load.program, Load.queue_order, TransitionInfo.deviation, Report.arrived, Report.order); 8: Load.symmetry,
# Report.symmetric; 9: Fork.in_place

PACKET = 65536 - 512
_HEADER = struct.Struct("<Q")
_MARSHALLED = 1 << 63  # in the length: the body is Report.to_wire() marshalled, not a pickle


# --------------------------------------------------------------------------- time budget


def timer_budget(seconds: float) -> tuple[float, int, int]:
    """How a snapshot times user code that may run ``seconds``: ``(interval, soft, hard)``.

    Its interval timer ticks every ``interval`` seconds; at tick ``soft``
    (``seconds`` after the code started) it interrupts the code where it is
    (``runtime.Stuck``), at tick ``hard`` (half as long again, at least two
    ticks later) it reports and exits.  The explorer waits
    :func:`explorer_wait` before it kills a snapshot that said nothing.

    Examples
    --------
    >>> timer_budget(30.0)
    (1.0, 30, 45)
    >>> timer_budget(0.5)
    (0.5, 1, 3)
    """
    soft = max(1, math.ceil(seconds))
    return seconds / soft, soft, soft + max(2, soft // 2)


def explorer_wait(seconds: float, steps: int = 1) -> float:
    """Seconds the explorer waits for a snapshot that runs ``steps`` steps of at most ``seconds`` each."""
    interval, soft, hard = timer_budget(seconds)
    return seconds * steps + (hard - soft) * interval + 2.0


# --------------------------------------------------------------------------- requests


@dataclass
class Load:
    """Load a model into a fresh root interpreter and run its setup."""

    model: bytes  # cloudpickle of (Model, the functions of fc.register_state): one pickle, so they share classes
    sys_path: list[str]
    cwd: str
    by_value_modules: list[str] = field(default_factory=list)
    memory_limit: int | None = None  # bytes of address space per snapshot process (RLIMIT_AS)
    huge_pages: bool = True  # collapse the heap into huge pages after setup (_hugepages.collapse)
    opaque: str = "error"  # a state holding an object the fingerprint cannot see: "error" or "distinct"
    program: str = "model"  # what the model is: "model" (setup and actors, runtime.py) or "asyncio" (aio.py)
    queue_order: bool = False  # asyncio with max_deviations: report the order of the loop's queues (Report.order)
    footprints: bool = False  # report footprints (a reduction is on: _app/footprint.py)
    symmetry: bool = True  # states that differ by a permutation of fc.symmetric values are one (False: off)
    # The explorer's forkcheck: the root refuses a Load from another version, in one line.
    version: str = ""
    protocol: int = 0
    origin: str = ""  # the directory of the explorer's forkcheck package
    transition_timeout: float = 30.0  # seconds any piece of user code may run (setup, a step, a description)


@dataclass
class Fork:
    """Fork; the child takes the transitions of ``path`` in turn and becomes a new snapshot.

    Sent with the child's socket as ancillary data.  Each element of ``path`` is
    a position in the list of transitions enabled at that point.  A path longer
    than one rebuilds an evicted state with a single fork.  ``reseed``
    reseeds the random module in the child (the determinism check's twins).

    ``in_place``: the process does not fork but takes the path itself, and
    becomes the new snapshot on the socket sent with the request (its old
    channel closes).  The explorer asks it of an expanded state's last
    transition when nothing needs that state's process any more: one fork
    less per expanded state (``search.IN_PLACE``).  The root never gets it.
    """

    path: tuple[int, ...]
    reseed: bool = False
    footprints: bool = False  # the child reports footprints (a reduction is on: _app/footprint.py)
    in_place: bool = False  # take the path in this process instead of a fork of it; no ForkFailed then


@dataclass
class Describe:
    """Ask for a human description of this state (actors, locals, shared state)."""


@dataclass
class Footprint:
    """Ask for the footprints of this state (a reduction is on: _app/footprint.py).

    Asked only of a state about to be expanded, not in every report: most
    children reach a known state and are never expanded.  The snapshot keeps
    the digests of its shared objects for its children to compare with.  The
    answer is a Report whose ``owners``, ``keys`` and ``footprint`` are set
    (None when this process does not log what footprints need).
    """


@dataclass
class Eval:
    """Call ``fn(view)`` in a throwaway fork of this state."""

    fn: bytes  # cloudpickle


# --------------------------------------------------------------------------- replies


@dataclass
class TransitionInfo:
    actor: str
    label: str
    where: str  # file:line of the await the transition completes ("" for the environment)
    deviation: int = 0  # asyncio: 1 for a step away from the loop's own first-in first-out order


@dataclass
class ViolationInfo:
    kind: str
    name: str
    message: str
    details: str = ""


@dataclass
class Report:
    """What the explorer needs to know about a state, sent once per snapshot."""

    pid: int
    fingerprint: bytes
    transitions: list[TransitionInfo]
    violations: list[ViolationInfo]
    all_done: bool
    blocked: str = ""  # when no transition is enabled and some actor has not returned
    model_error: tuple[str, str, str] | None = None  # (error class, message, traceback)
    labels: dict[str, bool] = field(default_factory=dict)  # truth of state predicates (liveness)
    properties: list = field(default_factory=list)  # liveness properties declared by setup: their spec()
    opaque: str = ""  # opaque="distinct": the type of an object the fingerprint could not see, and why
    constrained: str = ""  # the name of the first fc.constraint this state does not satisfy: not expanded
    # Footprints, for the reductions (_app/footprint.py; None when off).  ``effects``, in every report: what
    # the step that made this state did (keys of the parent's shared objects it changed, its operations on
    # primitives), None when unknown.  The others answer a Footprint request: per transition its root
    # (actor index, then environments) and a name stable across states (None when ambiguous), and
    # ``footprint``, (roots, invariants) of _app.footprint.compute.
    owners: list | None = None
    keys: list | None = None
    footprint: tuple | None = None
    effects: tuple | None = None
    arrived: str = ""  # asyncio: where the task of the transition that led here stopped (file:line (what))
    # asyncio with Load.queue_order: a digest of the state with the order of the loop's queues, which the
    # fingerprint leaves out; with a bound on deviations the order decides which steps are free.
    order: bytes = b""
    # In the root's report, under symmetry: the fc.symmetric sets, as (name, number of values).
    symmetric: list[tuple[str, int]] = field(default_factory=list)

    def to_wire(self) -> tuple:
        """The fields as builtins only, for ``marshal``."""
        transitions, violations = [], []
        for t in self.transitions:  # loops: comprehensions make function objects, copying pages in a snapshot
            transitions.append((t.actor, t.label, t.where, t.deviation))
        for v in self.violations:
            violations.append((v.kind, v.name, v.message, v.details))
        return (self.pid, self.fingerprint, transitions, violations, self.all_done, self.blocked, self.model_error,
                self.labels, self.properties, self.opaque, self.constrained, self.owners, self.keys, self.footprint,
                self.effects, self.arrived, self.order, self.symmetric)

    def found(self, deadlock: bool) -> list[ViolationInfo]:
        """What this state violates: its violations, and a deadlock as one more when deadlocks count.

        The one place that says what a deadlock is worth, for the search, the graph, replay and the notebook.
        """
        if self.blocked and deadlock:
            return [*self.violations, ViolationInfo("deadlock", "deadlock", self.blocked)]
        return self.violations

    def ends(self, deadlock: bool) -> bool:
        """Whether this state is an end of the search: it violates something (a deadlock counting when asked)."""
        return bool(self.violations) or bool(self.blocked and deadlock)

    @classmethod
    def from_wire(cls, t: tuple) -> Report:
        # The first eleven fields are protocol 5's, so that a root of that version's refusal still reads.
        (pid, fingerprint, transitions, violations, all_done, blocked, model_error, labels, properties, opaque,
         constrained) = t[:11]
        owners, keys, footprint, effects, arrived, order, symmetric = (
            tuple(t[11:18]) if len(t) >= 18 else (None, None, None, None, "", b"", []))
        return cls(pid, fingerprint, [TransitionInfo(*x) for x in transitions], [ViolationInfo(*x) for x in violations],
                   all_done, blocked, None if model_error is None else tuple(model_error), labels, properties, opaque,
                   constrained, owners, keys, footprint, effects, arrived, order, [tuple(x) for x in symmetric])


@dataclass
class Running:
    """The root starts a piece of its setup (the setup function, an actor's first step): a new time budget."""

    what: str


@dataclass
class Stuck:
    """User code ran past the timeout and did not stop when interrupted: the process exits after this."""

    message: str
    details: str = ""


@dataclass
class ForkFailed:
    errno: int
    message: str


@dataclass
class ActorInfo:
    name: str
    status: str
    waiting: str
    where: str
    frames: list[tuple[str, str, dict[str, str]]]  # (function, file:line, locals as reprs)


@dataclass
class Description:
    actors: list[ActorInfo]
    view: str | None
    globals: dict[str, str]
    # Closure variables that several frames see as one object: reports show them once, not in each
    # frame's locals (which still hold them); None for one that is the view, which reports show anyway.
    shared: dict[str, str | None] = field(default_factory=dict)


@dataclass
class EvalResult:
    value: bytes | None  # cloudpickle of the result
    error: str | None = None


# --------------------------------------------------------------------------- framing (blocking side)


def _encode(msg: Any) -> tuple[bytes, int]:
    if type(msg) is Report:
        try:
            data = marshal.dumps(msg.to_wire(), 2)  # version 2: no reference table, so no reference count written
        except ValueError:  # pragma: no cover - a field of a type marshal lacks: a bug in make_report
            pass
        else:
            return data, len(data) | _MARSHALLED
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    return data, len(data)


def _decode(header: int, data: bytes) -> Any:
    if header & _MARSHALLED:
        return Report.from_wire(marshal.loads(data))
    return pickle.loads(data)


def _packets(msg: Any) -> list[bytes]:
    """One message as the packets that carry it; the first holds the header (and travels with the fd, if any)."""
    data, header = _encode(msg)
    head = PACKET - _HEADER.size
    packets = [_HEADER.pack(header) + data[:head]]
    for off in range(head, len(data), PACKET):
        packets.append(data[off: off + PACKET])
    return packets


def _with_fd(fd: int) -> list:
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]


def send(sock: socket.socket, msg: Any, fd: int | None = None) -> None:
    first, *rest = _packets(msg)
    if fd is None:
        sock.sendall(first)
    else:
        sock.sendmsg([first], _with_fd(fd))
    for packet in rest:
        sock.sendall(packet)


def recv(sock: socket.socket) -> Any:
    """Receive one message; raises EOFError when the peer has closed its end."""
    first = sock.recv(PACKET)
    if not first:
        raise EOFError
    return _assemble(first, lambda: sock.recv(PACKET))


def recv_with_fd(sock: socket.socket) -> tuple[Any, int | None]:
    """Receive one message and the file descriptor sent with it, if any."""
    first, anc, _flags, _addr = sock.recvmsg(PACKET, _FD_SPACE)
    if not first:
        raise EOFError
    return _assemble(first, lambda: sock.recv(PACKET)), _fd(anc)


_FD_SPACE = socket.CMSG_SPACE(array.array("i").itemsize)


def _fd(anc) -> int | None:
    fds = array.array("i")
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    for extra in fds[1:]:  # pragma: no cover - one fd per message is all we send
        os.close(extra)
    return fds[0] if fds else None


class _Reassembly:
    """The packets of one message, as they arrive: ``missing`` bytes are still to come (sans-I/O, for both sides)."""

    def __init__(self, first: bytes) -> None:
        (self.header,) = _HEADER.unpack_from(first)
        self.chunks = [first[_HEADER.size:]]
        self.missing = (self.header & ~_MARSHALLED) - len(self.chunks[0])

    def add(self, part: bytes) -> None:
        if not part:
            raise EOFError
        self.chunks.append(part)
        self.missing -= len(part)

    def message(self) -> Any:
        return _decode(self.header, b"".join(self.chunks))


def _assemble(first: bytes, more) -> Any:
    r = _Reassembly(first)
    while r.missing > 0:
        r.add(more())
    return r.message()


# --------------------------------------------------------------------------- framing (trio side)


async def asend(sock, msg: Any, fd: int | None = None) -> None:
    first, *rest = _packets(msg)
    if fd is None:
        await sock.send(first)
    else:
        await sock.sendmsg([first], _with_fd(fd))
    for packet in rest:
        await sock.send(packet)


async def arecv(sock) -> Any:
    """Receive one message; raises EOFError when the peer has closed its end."""
    first = await sock.recv(PACKET)
    if not first:
        raise EOFError
    r = _Reassembly(first)
    while r.missing > 0:
        r.add(await sock.recv(PACKET))
    return r.message()

