"""Two asyncio.Locks taken in opposite orders deadlock; taken in one order they do not.

    forkcheck check examples/asyncio_locks.py:transfer            # deadlock, 0 deviations
    forkcheck check examples/asyncio_locks.py:transfer --arg ordered=True   # no violation
"""

import asyncio

import forkcheck as fc


@fc.asyncio_model
async def transfer(ordered=False):
    accounts = {"a": 100, "b": 100}
    locks = {"a": asyncio.Lock(), "b": asyncio.Lock()}
    fc.invariant(lambda: accounts["a"] + accounts["b"] == 200, name="money is conserved")

    async def move(src, dst, amount):
        first, second = sorted((src, dst)) if ordered else (src, dst)
        async with locks[first]:
            await asyncio.sleep(0)  # e.g. an audit log
            async with locks[second]:
                accounts[src] -= amount
                await asyncio.sleep(0)
                accounts[dst] += amount

    await asyncio.gather(move("a", "b", 10), move("b", "a", 20))


if __name__ == "__main__":
    print(transfer.check())
    print(transfer(ordered=True).check())
