"""A producer, a bounded asyncio.Queue and two consumers: correct in every schedule.

    forkcheck check examples/asyncio_queue.py
    forkcheck check examples/asyncio_queue.py --max-deviations 0   # stock asyncio's schedule only
"""

import asyncio

import forkcheck as fc


@fc.asyncio_model
async def pipeline(items=3, workers=2):
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)
    done = []

    async def worker():
        while True:
            item = await queue.get()
            await asyncio.sleep(0.1)  # the work: virtual time, no real waiting
            done.append(item)
            queue.task_done()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    for i in range(items):
        await queue.put(i)
    await queue.join()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(done) == list(range(items))


if __name__ == "__main__":
    print(pipeline.check())
