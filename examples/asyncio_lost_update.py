"""A lost update in unmodified asyncio code: forkcheck check examples/asyncio_lost_update.py

Two tasks read a shared counter, await, and write it back: stock asyncio
itself interleaves them (the counterexample has 0 deviations from FIFO).
"""

import asyncio

import forkcheck as fc


@fc.asyncio_model
async def main(n=2):
    counter = {"x": 0}

    async def inc():
        tmp = counter["x"]
        await asyncio.sleep(0)  # any await: a log write, a database call
        counter["x"] = tmp + 1

    await asyncio.gather(*(inc() for _ in range(n)))
    assert counter["x"] == n, f"lost an update: {counter['x']} of {n}"


if __name__ == "__main__":
    print(main.check())
