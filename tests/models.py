"""Models with known state spaces, and independent plain-Python searches to compare with."""

from __future__ import annotations

from collections import deque

import forkcheck as fc


@fc.model
def die_hard():
    """The Die Hard jugs puzzle (TLA+'s DieHard.tla): reach 4 gallons in the big jug."""
    jugs = {"small": 0, "big": 0}

    def pour(action):
        s, b = jugs["small"], jugs["big"]
        if action == "fill small":
            s = 3
        elif action == "fill big":
            b = 5
        elif action == "empty small":
            s = 0
        elif action == "empty big":
            b = 0
        elif action == "small to big":
            moved = min(s, 5 - b)
            s, b = s - moved, b + moved
        else:
            moved = min(b, 3 - s)
            s, b = s + moved, b - moved
        jugs["small"], jugs["big"] = s, b

    async def hands():
        while True:
            pour(await fc.choose(["fill small", "fill big", "empty small", "empty big", "small to big", "big to small"]))

    fc.spawn(hands)
    fc.invariant(lambda: jugs["big"] != 4, name="big != 4")
    return jugs


@fc.model
def tcommit(n=3):
    """TLA+'s TCommit.tla: the transaction commit specification (34 states for 3 RMs)."""
    rm = {r: "working" for r in range(n)}

    def actions(r):
        acts = []
        if rm[r] == "working":
            acts.append("prepared")
        if rm[r] == "prepared" and all(s in ("prepared", "committed") for s in rm.values()):
            acts.append("committed")
        if rm[r] in ("working", "prepared") and all(s != "committed" for s in rm.values()):
            acts.append("aborted")
        return acts

    def set_state(r, s):
        rm[r] = s

    async def manager(r):
        while True:
            set_state(r, await fc.choose(lambda: actions(r)))

    for r in range(n):
        fc.spawn(manager, r, name=f"rm{r}")
    fc.invariant(lambda: not ("committed" in rm.values() and "aborted" in rm.values()), name="TCConsistent")
    return rm


def two_phase_spec_bfs(n: int = 3) -> tuple[int, int, int]:
    """TwoPhase.tla explored directly (no forkcheck): (distinct states, transitions, depth)."""
    rms = tuple(range(n))

    def successors(st):
        rm, tm, prepared, msgs = st
        out = []
        if tm == "init":
            for r in rms:
                if ("Prepared", r) in msgs:
                    out.append((rm, tm, prepared | {r}, msgs))
            if prepared == frozenset(rms):
                out.append((rm, "committed", prepared, msgs | {("Commit",)}))
            out.append((rm, "aborted", prepared, msgs | {("Abort",)}))
        for r in rms:
            def upd(s):
                return tuple(s if i == r else x for i, x in enumerate(rm))
            if rm[r] == "working":
                out.append((upd("prepared"), tm, prepared, msgs | {("Prepared", r)}))
                out.append((upd("aborted"), tm, prepared, msgs))
            if ("Commit",) in msgs:
                out.append((upd("committed"), tm, prepared, msgs))
            if ("Abort",) in msgs:
                out.append((upd("aborted"), tm, prepared, msgs))
        return out

    init = (tuple("working" for _ in rms), "init", frozenset(), frozenset())
    depth = {init: 0}
    queue = deque([init])
    transitions = 0
    while queue:
        st = queue.popleft()
        for nxt in successors(st):
            transitions += 1
            if nxt not in depth:
                depth[nxt] = depth[st] + 1
                queue.append(nxt)
    return len(depth), transitions, max(depth.values())


@fc.model
def spinning():
    """One actor whose second step never returns to forkcheck (an endless loop in user code)."""

    async def spinner():
        await fc.checkpoint()
        while True:
            pass

    fc.spawn(spinner)
