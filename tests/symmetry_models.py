"""Models with fc.symmetric values, for tests/test_symmetry.py, and what to count their orbits with.

Each model takes ``symmetric``: with False its values are plain ints, so
that the same model checks without symmetry as a program without it would
(``check(symmetry=False)`` is the other way to compare).  Models whose whole
state is in their view take ``log``: a file to which an invariant appends,
in every state it is checked in, the state's orbit key (:func:`orbit_key`,
by brute force over every permutation of the values, independent of
forkcheck's canonical walk).  A search without symmetry visits every
reachable state, so the distinct lines of that file count the orbits.
"""

from __future__ import annotations

import itertools

import forkcheck as fc


def values(name: str, n: int, symmetric: bool):
    return fc.symmetric(name, n) if symmetric else range(n)


def orbit_key(view, vals) -> str:
    """The smallest rendering of ``view`` over every renaming of ``vals`` to 0..n-1.

    Dicts keyed by values and sets are rendered sorted (their order is not
    state under the promise of symmetry); everything else as it is.
    """
    vals = list(vals)
    best = None
    for perm in itertools.permutations(range(len(vals))):
        name = {id(v): f"#{p}" for v, p in zip(vals, perm)}

        def render(o):
            if id(o) in name and not isinstance(o, (str, bool)):
                return name[id(o)]
            if isinstance(o, dict):
                return "{" + ",".join(sorted(f"{render(k)}:{render(v)}" for k, v in o.items())) + "}"
            if isinstance(o, (set, frozenset)):
                return "S{" + ",".join(sorted(render(x) for x in o)) + "}"
            if isinstance(o, (list, tuple)):
                return "(" + ",".join(render(x) for x in o) + ")"
            return repr(o)

        text = render(view)
        if best is None or text < best:
            best = text
    assert best is not None
    return best


def two_phase_spec(n: int, symmetric: bool) -> tuple[int, int]:
    """States and transitions of TLA+'s TwoPhase with ``n`` managers, by breadth-first search.

    With ``symmetric`` a state is its orbit: the managers' local states
    (their state, whether the TM has their Prepared, whether they sent it),
    sorted, with the TM's state and the Commit and Abort messages.  The
    transitions counted are those of one state per orbit (as a search of the
    quotient takes them).
    """
    def succ(s):
        rm, tm, prep, msgs = s
        out = []
        if tm == "init":
            out += [(rm, tm, prep | {r}, msgs) for r in range(n) if ("Prepared", r) in msgs]
            if prep == frozenset(range(n)):
                out.append((rm, "committed", prep, msgs | {("Commit",)}))
            out.append((rm, "aborted", prep, msgs | {("Abort",)}))
        for r in range(n):
            def put(v):
                return rm[:r] + (v,) + rm[r + 1:]
            if rm[r] == "working":
                out.append((put("prepared"), tm, prep, msgs | {("Prepared", r)}))
                out.append((put("aborted"), tm, prep, msgs))
            if ("Commit",) in msgs:
                out.append((put("committed"), tm, prep, msgs))
            if ("Abort",) in msgs:
                out.append((put("aborted"), tm, prep, msgs))
        return out

    def key(s):
        if not symmetric:
            return s
        rm, tm, prep, msgs = s
        local = sorted((rm[r], r in prep, ("Prepared", r) in msgs) for r in range(n))
        return (tuple(local), tm, ("Commit",) in msgs, ("Abort",) in msgs)

    init = (("working",) * n, "init", frozenset(), frozenset())
    seen, frontier, transitions = {key(init)}, [init], 0
    while frontier:
        nxt = []
        for s in frontier:
            for t in succ(s):
                transitions += 1
                if key(t) not in seen:
                    seen.add(key(t))
                    nxt.append(t)
        frontier = nxt
    return len(seen), transitions


def _logger(log, view, vals):
    def record():
        with open(log, "a") as f:
            f.write(orbit_key(view, vals) + "\n")
        return True

    return record


@fc.model
def two_phase_bug(n=3, symmetric=True, bug=True):
    """TLA+'s TwoPhase, whose transaction manager (with ``bug``) commits once any manager is prepared."""
    rms = values("rm", n, symmetric)
    rm_state = {r: "working" for r in rms}
    tm = {"state": "init", "prepared": frozenset()}
    msgs = set()

    def tm_actions():
        acts = []
        if tm["state"] == "init":
            for r in rms:
                if ("Prepared", r) in msgs:
                    acts.append(("rcv_prepared", r))
            if tm["prepared"] == frozenset(rms) or (bug and tm["prepared"]):
                acts.append(("commit", None))
            acts.append(("abort", None))
        return acts

    def tm_do(action, r):
        if action == "rcv_prepared":
            tm["prepared"] = tm["prepared"] | {r}
        elif action == "commit":
            tm["state"] = "committed"
            msgs.add(("Commit",))
        else:
            tm["state"] = "aborted"
            msgs.add(("Abort",))

    def rm_actions(r):
        acts = []
        if rm_state[r] == "working":
            acts += ["prepare", "choose_to_abort"]
        if ("Commit",) in msgs:
            acts.append("rcv_commit")
        if ("Abort",) in msgs:
            acts.append("rcv_abort")
        return acts

    def rm_do(r, action):
        if action == "prepare":
            rm_state[r] = "prepared"
            msgs.add(("Prepared", r))
        elif action == "choose_to_abort":
            rm_state[r] = "aborted"
        elif action == "rcv_commit":
            rm_state[r] = "committed"
        else:
            rm_state[r] = "aborted"

    async def transaction_manager():
        while True:
            tm_do(*await fc.choose(tm_actions))

    async def resource_manager(r):
        while True:
            rm_do(r, await fc.choose(lambda: rm_actions(r)))

    fc.spawn(transaction_manager, name="tm")
    for r in rms:
        fc.spawn(resource_manager, r)
    fc.invariant(lambda: not ("committed" in rm_state.values() and "aborted" in rm_state.values()),
                 name="consistent")
    return {"rm_state": rm_state, "tm": tm, "msgs": msgs}


@fc.model
def spawner(n=3, symmetric=True, log=None):
    """An actor spawns a worker per value, in any order it chooses: the actor lists differ in order.

    A worker goes from "idle" to "busy" to "done", and a done worker may hand
    a token to any other value (a choice among the values themselves).
    """
    rms = values("w", n, symmetric)
    state = {"spawned": frozenset(), "status": {}, "tokens": set()}

    def left():
        out = []
        for r in rms:
            if r not in state["spawned"]:
                out.append(r)
        return out

    def worker_actions(r):
        s = state["status"][r]
        if s == "idle":
            return [("busy", None)]
        if s == "busy":
            return [("done", None)]
        out = []
        for other in rms:
            if other != r and (r, other) not in state["tokens"] and len(state["tokens"]) < 2:
                out.append(("give", other))
        return out

    def worker_do(r, action, other):
        if action == "give":
            state["tokens"].add((r, other))
        else:
            state["status"][r] = action

    async def worker(r):
        while True:
            worker_do(r, *await fc.choose(lambda: worker_actions(r)))

    async def boss():
        while left():
            r = await fc.choose(left)
            state["spawned"] = state["spawned"] | {r}
            state["status"][r] = "idle"
            fc.spawn(worker, r)
            del r

    fc.spawn(boss)
    if log is not None:
        fc.invariant(_logger(log, state, rms), name="log")
    return state


@fc.model
def insertion(n=2, symmetric=True):
    """Merged states whose dict keyed by values was filled in different orders: transitions numbered otherwise.

    Each worker files a tag, x or y, in ``pending``; the first x to be filed
    takes one more step.  A collector takes the entries out in the dict's
    order (its options).  {v0: x, v1: y} filed x first and {v0: y, v1: x}
    filed y first are one state under symmetry (a dict keyed by values has
    no order), but the collector's first option takes the x in one and the y
    in the other.  A depth-first search meets the first at depth 3, then the
    second at depth 2.
    """
    rms = values("t", n, symmetric)
    pending = {}
    taken = set()

    def file(r, tag):
        pending[r] = tag

    def take(r):
        taken.add((r, pending.pop(r)))

    async def worker(r):
        tag = await fc.choose(["x", "y"])
        if tag == "x" and not pending:
            await fc.checkpoint()
        file(r, tag)
        del tag

    async def collector():
        while True:
            take(await fc.choose(lambda: list(pending)))

    for r in rms:
        fc.spawn(worker, r)
    fc.spawn(collector, name="collector")
    return {"pending": pending, "taken": taken}


@fc.model
def voters(n=3, symmetric=True, log=None):
    """Each value votes yes or no once; the dict of votes fills in any order."""
    rms = values("v", n, symmetric)
    votes = {}

    def vote(r, v):
        votes[r] = v

    async def voter(r):
        vote(r, await fc.choose(["yes", "no"]))

    for r in rms:
        fc.spawn(voter, r)
    if log is not None:
        fc.invariant(_logger(log, votes, rms), name="log")
    return votes


@fc.model
def mailbox_commit(n=3, symmetric=True, bug=False):
    """Two-phase commit over mailboxes and a network: a coordinator, one mailbox per participant.

    With ``bug`` the coordinator commits on the first yes.  Participants keep
    their vote in a local variable and hold a lock while they record the
    outcome: the state holds actor frames, mailboxes addressed by value, a
    network with values as addresses and in messages, and a lock's owner.
    """
    rms = values("p", n, symmetric)
    boxes = {r: fc.Mailbox() for r in rms}
    net = fc.Network()
    log = fc.Lock()
    outcome = {}
    votes = {}

    async def coordinator():
        for r in rms:
            boxes[r].put("prepare")
        yes = 0
        decision = None
        for _ in rms:
            r, vote = await net.recv("coord")
            votes[r] = vote
            if vote == "yes":
                yes += 1
            if bug and vote == "yes":
                decision = "commit"
                break
            if vote == "no":
                decision = "abort"
                break
        if decision is None:
            decision = "commit" if yes == len(rms) else "abort"
        for r in rms:
            boxes[r].put(decision)

    async def participant(r):
        assert await boxes[r].get() == "prepare"
        vote = await fc.choose(["yes", "no"])
        net.send("coord", (r, vote))
        decision = await boxes[r].get()
        async with log:
            outcome[r] = (vote, decision)

    fc.spawn(coordinator, name="coordinator")
    for r in rms:
        fc.spawn(participant, r)
    fc.invariant(lambda: not any(v == "no" and d == "commit" for v, d in outcome.values()), name="no commit over a no")
    return {"outcome": outcome, "votes": votes}


# --------------------------------------------------------------------------- misuse, and choosing a value


@fc.model
def misuse(how="sort"):
    RM = fc.symmetric("rm", 2)
    box = {}

    async def a(r):
        await fc.checkpoint()
        if how == "sort":
            sorted(RM)
        elif how == "lt":
            r < r  # noqa: B015
        elif how == "int":
            int(r)
        elif how == "index":
            [1, 2][r]
        elif how == "add":
            r + 1
        elif how == "format":
            f"{r:>3}"  # noqa: B021
        elif how == "position":
            RM[0]
        elif how == "string":
            box["name"] = f"box-{r}"
        elif how == "max":
            max(RM)
        await fc.checkpoint()

    for r in RM:
        fc.spawn(a, r)
    return box


@fc.model
def declared(what="outside"):
    if what == "name":
        fc.symmetric("rm1", 2)
    elif what == "n":
        fc.symmetric("rm", 0)
    elif what == "twice":
        fc.symmetric("rm", 2)
        fc.symmetric("rm", 3)
    elif what == "prefix":
        fc.symmetric("r", 2)
        fc.symmetric("rm", 3)
    elif what == "spawn name":
        for r in fc.symmetric("rm", 2):
            fc.spawn(_idle, r, name=f"worker {r}")
    elif what == "liveness":
        for r in fc.symmetric("rm", 2):
            fc.spawn(_idle, r)
        fc.eventually(lambda: True, name="always")
    elif what == "in actor":
        async def late():
            fc.symmetric("rm", 2)
            await fc.checkpoint()
        fc.spawn(late)
        return
    fc.spawn(_idle, None)


async def _idle(r):
    await fc.checkpoint()


@fc.model
def pick():
    RM = fc.symmetric("rm", 3)
    got = set()

    async def chooser():
        got.add(await fc.choose(RM))
        got.add(await fc.choose(RM))

    fc.spawn(chooser)
    return got



# --------------------------------------------------------------------------- random symmetric programs

#: The operations of a random program (tests/test_symmetry.py draws them with hypothesis); every
#: value's actor runs the same program, so the model is symmetric by construction.
OPS = ("set", "race", "locked", "choose", "give", "take", "add")


@fc.model
def program(n=2, ops=(("set", 1),), limit=("count", 2), symmetric=True):
    """The actors of ``n`` values each run ``ops``; ``limit`` is the invariant, ``(what, bound)``."""
    rms = values("a", n, symmetric)
    st = {}
    bag = set()
    count = {"n": 0}
    lock = fc.Lock()
    net = fc.Network()

    async def actor(r):
        for op, arg in ops:
            if op == "set":
                st[r] = arg
            elif op == "race":
                tmp = count["n"]
                await fc.checkpoint()
                count["n"] = tmp + 1
            elif op == "locked":
                async with lock:
                    count["n"] += 1
            elif op == "choose":
                st[r] = await fc.choose(range(arg + 1))
            elif op == "give":
                dst = await fc.choose(rms)
                net.send(dst, (r, arg))
            elif op == "take":
                bag.add(await net.recv(r))
            elif op == "add":
                bag.add((r, arg))

    for r in rms:
        fc.spawn(actor, r)
    what, bound = limit
    if what == "count":
        fc.invariant(lambda: count["n"] < bound, name="count")
    elif what == "bag":
        fc.invariant(lambda: len(bag) < bound, name="bag")
    else:
        fc.invariant(lambda: sum(1 for v in st.values() if v == 1) < bound, name="ones")
    return {"st": st, "bag": bag, "count": count}
