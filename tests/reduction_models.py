"""Models for the reduction tests: a small interpreter of random programs, and hand-written cases.

``program(spec)`` runs a *spec*: plain data (so hypothesis can draw it and
a Model can carry it to the snapshot processes) naming shared objects
(dicts with a value ``v``), mailboxes, locks, a semaphore, an event, a
network, and one program per actor.  Each actor is handed only the objects
its program uses, in a tuple, so that actors that use disjoint objects are
independent, and actors that share one are not.
"""

from __future__ import annotations

import forkcheck as fc

#: Operations of an actor's program (spec format, see ``ops`` in tests/test_reduction.py):
#:   ("read", o)            reg = o["v"]                                  (no await: part of the step)
#:   ("write", o, x)        o["v"] = x
#:   ("bump", o)            o["v"] = (reg + 1) % 3                         (a lost update with read)
#:   ("assert", o, x)       assert o["v"] != x
#:   ("checkpoint",)        await fc.checkpoint()
#:   ("choose", o, n)       o["v"] = await fc.choose(range(n))
#:   ("when", o, x)         await fc.when(lambda: o["v"] == x)
#:   ("put", b, x)          b.put(x)
#:   ("get", b)             reg = await b.get()
#:   ("lock", l) / ("unlock", l)   await l.acquire() / l.release()
#:   ("down",) / ("up",)    the semaphore
#:   ("set",) / ("wait",)   the event
#:   ("send", x) / ("recv",)   the network, to "dst"
#:   ("len", b, o)          o["v"] = len(b) % 3                            (reads a mailbox's length)
#:   ("spawn", k)           fc.spawn(the k-th helper program)
#:   ("tget", b)            reg = await b.get(timeout=True)               (reg = 2 on fc.TIMEOUT)
#:   ("trecv",)             reg = await net.recv("dst", timeout=True)     (reg = 2 on fc.TIMEOUT)
#:   ("select", b, t)       k, reg = await fc.select(b.get(), net.recv("dst"), timeout=t)
OPS_DOC = None


async def _run(prog, objs, prims, helpers, loop):
    """Interpret one program; ``objs`` and ``prims`` hold only what it uses."""
    reg = 0
    while True:
        for op in prog:
            kind = op[0]
            if kind == "read":
                reg = objs[op[1]]["v"]
            elif kind == "write":
                objs[op[1]]["v"] = op[2]
            elif kind == "bump":
                objs[op[1]]["v"] = (reg + 1) % 3
            elif kind == "assert":
                assert objs[op[1]]["v"] != op[2], f"{op[1]} is {op[2]}"
            elif kind == "checkpoint":
                await fc.checkpoint()
            elif kind == "choose":
                objs[op[1]]["v"] = await fc.choose(range(op[2]))
            elif kind == "when":
                o, x = objs[op[1]], op[2]
                await fc.when(lambda: o["v"] == x)
                del o
            elif kind == "put":
                prims[op[1]].put(op[2])
            elif kind == "get":
                reg = await prims[op[1]].get()
            elif kind == "lock":
                await prims[op[1]].acquire()
            elif kind == "unlock":
                prims[op[1]].release()
            elif kind == "down":
                await prims["sem"].acquire()
            elif kind == "up":
                prims["sem"].release()
            elif kind == "set":
                prims["ev"].set()
            elif kind == "wait":
                await prims["ev"].wait()
            elif kind == "send":
                prims["net"].send("dst", op[1])
            elif kind == "recv":
                reg = await prims["net"].recv("dst")
            elif kind == "len":
                objs[op[2]]["v"] = len(prims[op[1]]) % 3
            elif kind == "tget":
                reg = await prims[op[1]].get(timeout=True)
                reg = 2 if reg is fc.TIMEOUT else reg
            elif kind == "trecv":
                reg = await prims["net"].recv("dst", timeout=True)
                reg = 2 if reg is fc.TIMEOUT else reg
            elif kind == "select":
                k, reg = await fc.select(prims[op[1]].get(), prims["net"].recv("dst"), timeout=op[2])
                reg = 2 if reg is fc.TIMEOUT else reg + (k or 0)
            elif kind == "spawn":
                sub, sobjs, sprims = helpers[op[1]]
                fc.spawn(_run, sub, sobjs, sprims, (), False, name=f"helper{op[1]}")
            reg = reg % 3
        if not loop:
            return
        reg = 0


def _uses(prog, helpers_specs) -> tuple[set, set]:
    objs, prims = set(), set()
    for op in prog:
        kind = op[0]
        if kind in ("read", "write", "bump", "assert", "choose", "when"):
            objs.add(op[1])
        elif kind in ("put", "get", "lock", "unlock", "tget"):
            prims.add(op[1])
        elif kind == "select":
            prims.update((op[1], "net"))
        elif kind == "trecv":
            prims.add("net")
        elif kind == "len":
            prims.add(op[1])
            objs.add(op[2])
        elif kind in ("down", "up"):
            prims.add("sem")
        elif kind in ("set", "wait"):
            prims.add("ev")
        elif kind in ("send", "recv"):
            prims.add("net")
        elif kind == "spawn":
            o, p = _uses(helpers_specs[op[1]], helpers_specs)
            objs |= o
            prims |= p
    return objs, prims


@fc.model
def program(spec):
    """Run ``spec``: {"objects": names, "actors": [(program, loop)], "helpers": [program],
    "invariants": [(o1, x1, o2, x2)]: "not (o1 == x1 and o2 == x2)", "lossy": bool}."""
    objects = {name: {"v": 0} for name in spec["objects"]}
    prims = {}
    for name in spec.get("boxes", ()):
        prims[name] = fc.Mailbox(name)
    for name in spec.get("locks", ()):
        prims[name] = fc.Lock(name)
    prims["sem"] = fc.Semaphore(1, "sem")
    prims["ev"] = fc.Event("ev")
    prims["net"] = fc.Network("net", lossy=spec.get("lossy", False))
    helpers_specs = spec.get("helpers", ())

    def handed(prog):
        o, p = _uses(prog, helpers_specs)
        return {k: objects[k] for k in sorted(o)}, {k: prims[k] for k in sorted(p)}

    helpers = tuple((h,) + tuple(handed(h)) for h in helpers_specs)
    for k, (prog, loop) in enumerate(spec["actors"]):
        o, p = handed(prog)
        fc.spawn(_run, tuple(prog), o, p, helpers, loop, name=f"a{k}")
    for k, (o1, x1, o2, x2) in enumerate(spec.get("invariants", ())):
        a, b = objects[o1], objects[o2]
        fc.invariant(lambda a=a, b=b, x1=x1, x2=x2: not (a["v"] == x1 and b["v"] == x2), name=f"inv{k}")
    for k, (box, limit) in enumerate(spec.get("box_invariants", ())):
        fc.invariant(lambda b=prims[box], n=limit: len(b) <= n, name=f"len{k}")
    return objects


# --------------------------------------------------------------------------- hand-written cases


class Token:
    """A message whose label does not tell it apart from another: ``get box -> Token`` for every one."""

    def __init__(self, v):
        self.v = v

    def __repr__(self):
        return "Token"


@fc.model
def two_getters():
    """Two actors take from one mailbox; g0 must not get the second message: dependent gets.

    g0 gets the second message only after g1 took the first.  The two gets
    read alike (``get box -> Token``), so only the table of operations says
    that they do not commute: a reduction that took them for independent
    would put g0 to sleep after g1's get and never see the failure.
    """
    box = fc.Mailbox("box")

    async def producer():
        box.put(Token(1))
        box.put(Token(2))

    async def getter(name):
        got = await box.get()
        assert not (name == "g0" and got.v == 2), "g0 got the second message"

    fc.spawn(producer)
    fc.spawn(getter, "g0", name="g0")
    fc.spawn(getter, "g1", name="g1")


@fc.model
def independent_counters(n=3, steps=2):
    """``n`` actors, each counting on its own object: every interleaving commutes."""
    counters = tuple({"v": 0} for _ in range(n))

    async def count(c):
        for _ in range(steps):
            await fc.checkpoint()
            c["v"] += 1

    for i in range(n):
        fc.spawn(count, counters[i], name=f"c{i}")
    first = counters[0]
    fc.invariant(lambda: first["v"] <= steps, name="bounded")  # reaches one counter: the others' steps are invisible


@fc.model
def philosophers_args(n=3):
    """Dining philosophers, each given its own two forks (no shared list): the deadlock."""
    forks = tuple(fc.Lock(f"fork{i}") for i in range(n))

    async def philosopher(left, right):
        while True:
            async with left:
                async with right:
                    await fc.checkpoint()  # eat
            await fc.checkpoint()  # think

    for i in range(n):
        fc.spawn(philosopher, forks[i], forks[(i + 1) % n], name=f"phil{i}")


@fc.model
def mailbox_commit(n=3):
    """Two-phase commit over mailboxes: a coordinator and ``n`` participants that vote."""
    to_tm = fc.Mailbox("tm")
    boxes = tuple(fc.Mailbox(f"rm{i}") for i in range(n))
    outcome = tuple({"v": None} for _ in range(n))

    async def coordinator():
        for b in boxes:
            b.put("prepare")
        votes = 0
        for _ in range(n):
            votes += await to_tm.get() == "yes"
        decision = "commit" if votes == n else "abort"
        for b in boxes:
            b.put(decision)

    async def participant(i, box, mine):
        await box.get()
        to_tm.put(await fc.choose(["yes", "no"]))
        mine["v"] = await box.get()

    fc.spawn(coordinator, name="tm")
    for i in range(n):
        fc.spawn(participant, i, boxes[i], outcome[i], name=f"rm{i}")
    fc.invariant(lambda: not ("commit" in [o["v"] for o in outcome] and "abort" in [o["v"] for o in outcome]),
                 name="consistent")


@fc.model
def hidden_global():
    """An actor writes a module global that another reads through a function: they depend on each other."""
    async def writer():
        global SHARED
        await fc.checkpoint()
        SHARED = 1

    async def reader():
        await fc.checkpoint()
        assert read_shared() == 0, "saw the write"

    fc.spawn(writer)
    fc.spawn(reader)


SHARED = 0


def read_shared():
    return SHARED


class Tally:
    """A class attribute written through the class: shared state that no object holds."""

    total = 0


@fc.model
def class_attribute():
    async def adder():
        await fc.checkpoint()
        Tally.total += 1

    async def checker():
        await fc.checkpoint()
        assert Tally.total == 0, "saw the class attribute change"

    fc.spawn(adder)
    fc.spawn(checker)


@fc.model
def nonlocal_cell():
    """A closure variable rebound by one actor (nonlocal) and read by another."""
    flag = False

    def raise_flag():
        nonlocal flag
        flag = True

    async def writer():
        await fc.checkpoint()
        raise_flag()

    async def reader():
        await fc.checkpoint()
        assert not flag, "saw the flag"

    fc.spawn(writer)
    fc.spawn(reader)


@fc.model
def spawner():
    """Actors that spawn actors: the world's actor list is shared."""
    seen = []

    async def child(tag):
        seen.append(tag)
        await fc.checkpoint()

    async def parent(tag):
        await fc.checkpoint()
        fc.spawn(child, tag)

    fc.spawn(parent, "x", name="p0")
    fc.spawn(parent, "y", name="p1")
    fc.invariant(lambda: seen != ["y", "x"], name="x first")


@fc.model
def semaphore_event():
    """A semaphore and an event: acquires, releases, sets and waits."""
    sem = fc.Semaphore(1, "sem")
    ev = fc.Event("ev")
    got = {"v": []}

    async def worker(name):
        async with sem:
            got["v"] = got["v"] + [name]
            await fc.checkpoint()
        ev.set()

    async def waiter():
        await ev.wait()
        assert got["v"] != ["w1", "w0"], "w1 first"

    fc.spawn(worker, "w0", name="w0")
    fc.spawn(worker, "w1", name="w1")
    fc.spawn(waiter, name="waiter")


@fc.model
def looping_pair():
    """Two actors that loop for ever on their own objects, a third that can fail: the cycle proviso."""
    a, b, c = {"v": 0}, {"v": 0}, {"v": 0}

    async def spin(o):
        while True:
            await fc.checkpoint()
            o["v"] = 1 - o["v"]

    async def late():
        await fc.checkpoint()
        c["v"] = 1

    fc.spawn(spin, a, name="s0")
    fc.spawn(spin, b, name="s1")
    fc.spawn(late, name="late")
    fc.invariant(lambda: c["v"] == 0, name="late never runs")


@fc.model
def timeout_race():
    """A receive that may time out: the message arriving first is the only way to the failure."""
    box = fc.Mailbox("box")
    net = fc.Network()

    async def waiter():
        m = await box.get(timeout=True)
        assert m is fc.TIMEOUT, "the message came before the timeout"

    async def selector():
        k, m = await fc.select(net.recv("dst"), fc.checkpoint(), timeout=True)
        assert k != 0, f"received {m}"

    async def sender():
        await fc.checkpoint()
        box.put(1)
        net.send("dst", 2)

    fc.spawn(waiter)
    fc.spawn(selector)
    fc.spawn(sender)
