"""Synchronisation and communication primitives for actors.

Sending never blocks and is not an interleaving point; receiving, acquiring and
waiting are (they are :class:`~forkcheck._app.runtime.Request` objects).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Hashable

from .._errors import UsageError
from .runtime import TIMEOUT, Request, current_world, label_text
from . import runtime as _runtime


def _default_name(prefix: str) -> str:
    world = _runtime._WORLD
    return world.next_name(prefix) if world is not None else prefix


def _note(kind: str, op: str, obj: Any) -> None:
    """Log an operation on a primitive for the reductions (``World.log``; None, and free, when they are off).

    ``kind`` is the primitive's letter (M, N, L, S, E), ``op`` what the step or
    the enabling test did to it; ``_check/reduction.py`` has the table of which
    operations commute.
    """
    world = _runtime._WORLD
    if world is not None:
        log = world.log
        if log is not None:
            log.append((kind, op, id(obj)))


def _timeout_flag(timeout: Any, call: str) -> bool:
    if not isinstance(timeout, bool):
        raise UsageError(f"{call}(timeout={timeout!r}): give True (the receive may time out, returning "
                          "fc.TIMEOUT) or False")
    return timeout


class _Get(Request):
    __slots__ = ("box", "timeout")

    def __init__(self, box, timeout=False):
        self.box = box
        self.timeout = timeout

    def options(self, world, actor):
        _note("M", "g?", self.box)
        out = [(f"get {self.box.name} -> {label_text(self.box._items[0])}", None)] if self.box._items else []
        if self.timeout:
            out.append((f"get {self.box.name} -> TIMEOUT", TIMEOUT))
        return out

    def complete(self, world, actor, payload):
        if payload is TIMEOUT:
            # A timeout takes nothing, but it is the choice the box's emptiness did not rule out: logged as
            # a read, so that it never commutes with a put into the box (conservative, hence sound).
            _note("M", "g?", self.box)
            return TIMEOUT
        _note("M", "get", self.box)
        return self.box._items.popleft()

    def describe(self):
        return f"get {self.box.name}" + (" (or time out)" if self.timeout else "")

    def __fc_state__(self):
        return ("get", self.box, True) if self.timeout else ("get", self.box)


class Mailbox:
    """A FIFO queue between actors: ``box.put(msg)``; ``msg = await box.get()``.

    ``put`` never blocks; ``get`` blocks while the mailbox is empty and is one
    transition.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def ping():
    ...     box = fc.Mailbox("box")
    ...     async def sender():
    ...         box.put("ping")
    ...     async def receiver():
    ...         assert await box.get() == "ping"
    ...     fc.spawn(sender); fc.spawn(receiver)
    >>> ping.check().ok
    True
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or _default_name("mailbox")
        self._items: deque = deque()

    def put(self, msg: Any) -> None:
        """Append ``msg``; never blocks."""
        _note("M", "put", self)
        self._items.append(msg)

    def get(self, timeout: bool = False) -> Request:
        """``await box.get()``: the oldest message, blocking while empty.

        With ``timeout=True`` the receive may also time out, in any state,
        and give ``fc.TIMEOUT`` (one more transition, labelled
        ``get NAME -> TIMEOUT``): see "Timeouts" in docs/guide.md.
        """
        return _Get(self, _timeout_flag(timeout, "box.get"))

    def __len__(self) -> int:
        _note("M", "rd", self)
        return len(self._items)

    def empty(self) -> bool:
        """Whether no message is waiting; ``len(box)`` counts them."""
        _note("M", "rd", self)
        return not self._items

    def __repr__(self) -> str:
        _note("M", "rd", self)
        return f"Mailbox({self.name!r}, {list(self._items)!r})"

    def __fc_state__(self):
        return list(self._items)


class _Recv(Request):
    __slots__ = ("net", "dst", "timeout")

    def __init__(self, net, dst, timeout=False):
        self.net = net
        self.dst = dst
        self.timeout = timeout

    def options(self, world, actor):
        _note("N", "r?", self.net)
        out = [(f"recv {label_text(m)} at {label_text(self.dst)}", m) for m in self.net._distinct(self.dst)]
        if self.timeout:
            out.append((f"recv TIMEOUT at {label_text(self.dst)}", TIMEOUT))
        return out

    def complete(self, world, actor, payload):
        if payload is TIMEOUT:
            _note("N", "r?", self.net)  # as _Get's timeout: a read of the network, never commuting with a send
            return TIMEOUT
        _note("N", "rcv", self.net)
        if not self.net.duplicating:
            self.net._remove(self.dst, payload)
        return payload

    def describe(self):
        return f"recv at {self.dst!r}" + (" (or time out)" if self.timeout else "")

    def __fc_state__(self):
        return ("recv", self.net, self.dst, True) if self.timeout else ("recv", self.net, self.dst)


class Network:
    """An unordered network: messages in flight are delivered in any order.

    ``net.send(dst, msg)`` never blocks; ``await net.recv(dst)`` takes one
    transition per distinct message in flight to ``dst``.  With ``lossy=True``
    the environment may also drop any message in flight (a transition of the
    actor named after the network); with ``duplicating=True`` a delivered message
    stays in flight and can be delivered again.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def reorder():
    ...     net = fc.Network()
    ...     got = []
    ...     async def client():
    ...         net.send("server", 1); net.send("server", 2)
    ...     async def server():
    ...         got.append(await net.recv("server"))
    ...         got.append(await net.recv("server"))
    ...         assert got == [1, 2], f"delivered out of order: {got}"
    ...     fc.spawn(client); fc.spawn(server)
    >>> reorder.check().violations[0].kind
    'assertion'
    """

    def __init__(self, name: str | None = None, *, lossy: bool = False, duplicating: bool = False) -> None:
        self.name = name or _default_name("network")
        self.lossy = bool(lossy)
        self.duplicating = bool(duplicating)
        self._flight: list[tuple[Hashable, Any]] = []
        if self.lossy:
            world = current_world("fc.Network(lossy=True)")
            if world.log is not None:
                world.log.append(("W", "env", 0))
            world.environments.append(self)

    def send(self, dst: Hashable, msg: Any) -> None:
        """Put ``msg`` in flight to ``dst``; never blocks."""
        _note("N", "snd", self)
        if self.duplicating and any(d == dst and m == msg for d, m in self._flight):
            return  # a duplicating network holds a set of messages
        self._flight.append((dst, msg))

    def recv(self, dst: Hashable, timeout: bool = False) -> Request:
        """``await net.recv(dst)``: any message in flight to ``dst``, blocking while there is none.

        With ``timeout=True`` the receive may also time out, in any state,
        and give ``fc.TIMEOUT`` (one more transition, labelled
        ``recv TIMEOUT at DST``): see "Timeouts" in docs/guide.md.
        """
        return _Recv(self, dst, _timeout_flag(timeout, "net.recv"))

    def in_flight(self, dst: Hashable | None = None) -> list:
        """The messages in flight (to ``dst``, or all as ``(dst, msg)`` pairs)."""
        _note("N", "rd", self)
        if dst is None:
            return list(self._flight)
        return [m for d, m in self._flight if d == dst]

    def _distinct(self, dst) -> list:
        from .fingerprint import canonical_key

        seen: list = []
        for d, m in self._flight:
            if d == dst and not any(m == s for s in seen):
                seen.append(m)
        # Order by content, not by send history, so equal states list equal transitions.
        return sorted(seen, key=canonical_key)

    def _remove(self, dst, msg) -> None:
        for i, (d, m) in enumerate(self._flight):
            if d == dst and m == msg:
                del self._flight[i]
                return

    def env_transitions(self) -> list:
        """The environment's transitions in this state, as ``(label, apply)`` pairs.

        A lossy network may drop any distinct message in flight.  The runtime
        calls this; models do not need to.
        """
        from .fingerprint import canonical_key

        _note("N", "r?", self)
        out, seen = [], []
        for pair in sorted(self._flight, key=canonical_key):
            if pair in seen:
                continue
            seen.append(pair)
            out.append((f"drop {label_text(pair[1])} to {label_text(pair[0])}", lambda p=pair: self._drop(p)))
        return out

    def _drop(self, pair) -> None:
        _note("N", "drp", self)
        self._remove(*pair)

    @property
    def actor_name(self) -> str:
        """The name its environment transitions (dropped messages) are shown under: the network's."""
        return self.name

    def __repr__(self) -> str:
        _note("N", "rd", self)
        return f"Network({self.name!r}, in_flight={self._flight!r})"

    def __fc_state__(self):
        from .fingerprint import Unordered

        return Unordered(self._flight)


class _Acquire(Request):
    __slots__ = ("lock",)

    def __init__(self, lock):
        self.lock = lock

    def options(self, world, actor):
        return [(f"acquire {self.lock.name}", None)] if self.lock._can_acquire() else []

    def complete(self, world, actor, payload):
        self.lock._take(actor.name)

    def describe(self):
        return f"acquire {self.lock.name}"

    def __fc_state__(self):
        return ("acquire", self.lock)


class _AsyncContext:
    async def __aenter__(self):
        await self.acquire()
        return self

    async def __aexit__(self, *exc):
        self.release()
        return False


class Lock(_AsyncContext):
    """A mutual-exclusion lock: ``async with lock: ...``.

    Acquiring is a transition, enabled while the lock is free; releasing is not
    an interleaving point.  Releasing a lock the actor does not hold raises.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or _default_name("lock")
        self._owner: str | None = None

    def acquire(self) -> Request:
        """``await lock.acquire()``: take the lock; a transition, enabled while the lock is free."""
        return _Acquire(self)

    def _can_acquire(self) -> bool:
        _note("L", "a?", self)
        return self._owner is None

    def _take(self, who: str) -> None:
        _note("L", "acq", self)
        self._owner = who

    def release(self) -> None:
        """Release the lock the running actor holds; not an interleaving point."""
        _note("L", "rel", self)
        world = _runtime._WORLD
        who = world.running.name if world is not None and world.running is not None else None
        if self._owner is None or (who is not None and self._owner != who):
            raise UsageError(f"{who or 'code'} released lock {self.name!r}, which it does not hold (owner: {self._owner})")
        self._owner = None

    @property
    def owner(self) -> str | None:
        """The name of the actor holding the lock, or None."""
        _note("L", "rd", self)
        return self._owner

    @owner.setter
    def owner(self, who: str | None) -> None:
        _note("L", "own", self)  # a write the table of operations commutes with nothing
        self._owner = who

    def locked(self) -> bool:
        """Whether an actor holds the lock."""
        _note("L", "rd", self)
        return self._owner is not None

    def __repr__(self) -> str:
        _note("L", "rd", self)
        return f"Lock({self.name!r}, owner={self._owner!r})"

    def __fc_state__(self):
        world = _runtime._WORLD
        if world is not None and world.symmetric:
            return world.actor_ident(self._owner)  # under symmetry the owner is renamed with its values
        return self._owner


class Semaphore(_AsyncContext):
    """A counting semaphore: ``async with sem: ...``; acquiring blocks at zero."""

    def __init__(self, value: int = 1, name: str | None = None) -> None:
        if not isinstance(value, int) or value < 0:
            raise UsageError(f"fc.Semaphore(value={value!r}): the initial value must be an int >= 0")
        self.name = name or _default_name("semaphore")
        self._value = value

    def acquire(self) -> Request:
        """``await sem.acquire()``: decrement the count; a transition, enabled while it is above zero."""
        return _Acquire(self)

    def _can_acquire(self) -> bool:
        _note("S", "a?", self)
        return self._value > 0

    def _take(self, who: str) -> None:
        _note("S", "acq", self)
        self._value -= 1

    def release(self) -> None:
        """Increment the count; never blocks and is not an interleaving point."""
        _note("S", "rel", self)
        self._value += 1

    @property
    def value(self) -> int:
        """The count: how many more acquires succeed before one blocks."""
        _note("S", "rd", self)
        return self._value

    @value.setter
    def value(self, value: int) -> None:
        _note("S", "val", self)  # a write the table of operations commutes with nothing
        self._value = value

    def __repr__(self) -> str:
        _note("S", "rd", self)
        return f"Semaphore({self.name!r}, value={self._value})"

    def __fc_state__(self):
        return self._value


class _Wait(Request):
    __slots__ = ("event",)

    def __init__(self, event):
        self.event = event

    def options(self, world, actor):
        _note("E", "w?", self.event)
        return [(f"wait {self.event.name}", None)] if self.event._set else []

    def describe(self):
        return f"wait {self.event.name}"

    def __fc_state__(self):
        return ("wait", self.event)


class Event:
    """A one-shot flag: ``ev.set()``; ``await ev.wait()`` blocks until it is set."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or _default_name("event")
        self._set = False

    def set(self) -> None:
        """Set the flag, waking every actor waiting for it; it stays set."""
        _note("E", "set", self)
        self._set = True

    def is_set(self) -> bool:
        """Whether the flag is set."""
        _note("E", "rd", self)
        return self._set

    def wait(self) -> Request:
        """``await ev.wait()``: a transition, enabled once the flag is set."""
        return _Wait(self)

    def __repr__(self) -> str:
        _note("E", "rd", self)
        return f"Event({self.name!r}, set={self._set})"

    def __fc_state__(self):
        return self._set


__all__ = ["Mailbox", "Network", "Lock", "Semaphore", "Event"]
