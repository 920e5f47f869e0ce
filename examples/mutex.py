"""Mutual exclusion without locks: a broken protocol and Peterson's algorithm.

`broken` checks the other's flag and then raises its own in a separate step,
so both can pass the check before either flag is up.  `peterson` adds the
`turn` variable and is correct.

    forkcheck check examples/mutex.py:broken     # violates mutual exclusion
    forkcheck check examples/mutex.py:peterson   # passes
"""

import forkcheck as fc


@fc.model
def broken():
    flag = [False, False]
    in_critical = set()

    async def proc(i):
        other = 1 - i
        while True:
            await fc.when(lambda: not flag[other])
            await fc.checkpoint()  # the gap between testing and setting is the bug
            flag[i] = True
            in_critical.add(i)
            await fc.checkpoint()  # critical section
            in_critical.discard(i)
            flag[i] = False
            await fc.checkpoint()

    fc.spawn(proc, 0, name="p0")
    fc.spawn(proc, 1, name="p1")
    fc.invariant(lambda: len(in_critical) <= 1, name="mutual exclusion")
    return {"flag": flag, "in_critical": in_critical}


@fc.model
def peterson():
    flag = [False, False]
    turn = [0]
    in_critical = set()

    async def proc(i):
        other = 1 - i
        while True:
            flag[i] = True
            await fc.checkpoint()
            turn[0] = other
            await fc.when(lambda: not flag[other] or turn[0] == i)
            in_critical.add(i)
            await fc.checkpoint()  # critical section
            in_critical.discard(i)
            flag[i] = False
            await fc.checkpoint()

    fc.spawn(proc, 0, name="p0")
    fc.spawn(proc, 1, name="p1")
    fc.invariant(lambda: len(in_critical) <= 1, name="mutual exclusion")
    return {"flag": flag, "turn": turn, "in_critical": in_critical}


if __name__ == "__main__":
    print(broken.check(strategy="bfs"))
    print(peterson.check(strategy="bfs"))
