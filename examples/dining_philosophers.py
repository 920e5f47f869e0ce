"""Dining philosophers: each takes the fork on the left, then the one on the right.

With every philosopher reaching left first, all can hold their left fork and
wait forever for the right one: forkcheck finds that deadlock.  The classic fix
orders the forks (take the lower-numbered one first); `ordered=True` checks it.

    forkcheck check examples/dining_philosophers.py:philosophers              # deadlock
    forkcheck check examples/dining_philosophers.py:philosophers --arg ordered=True
"""

import forkcheck as fc


@fc.model
def philosophers(n=3, ordered=False):
    forks = [fc.Lock(f"fork{i}") for i in range(n)]
    eating = set()

    async def philosopher(i):
        left, right = i, (i + 1) % n
        first, second = (min(left, right), max(left, right)) if ordered else (left, right)
        while True:
            async with forks[first]:
                async with forks[second]:
                    eating.add(i)
                    await fc.checkpoint()  # eat
                    eating.discard(i)
            await fc.checkpoint()  # think

    for i in range(n):
        fc.spawn(philosopher, i, name=f"phil{i}")
    fc.invariant(lambda: all((i + 1) % n not in eating for i in eating), name="neighbours never eat together")
    return forks


if __name__ == "__main__":
    print(philosophers().check(strategy="bfs"))
    print(philosophers(ordered=True).check(strategy="bfs"))
