"""An application's own entry point, checked as it is: it runs the loop and checks the result.

    forkcheck check examples/asyncio_entry_point.py
"""

import asyncio

import forkcheck as fc


async def fetch(cache, key):
    if key not in cache:
        await asyncio.sleep(0.1)  # a slow lookup
        cache[key] = cache.get("lookups", 0) + 1  # which lookup filled it
        cache["lookups"] = cache.get("lookups", 0) + 1
    return cache[key]


async def serve(cache):
    return await asyncio.gather(fetch(cache, "a"), fetch(cache, "a"))


@fc.asyncio_model
def main():
    cache = {}
    first, second = asyncio.run(serve(cache))
    assert cache["lookups"] == 1, f"the same key was looked up {cache['lookups']} times"


if __name__ == "__main__":
    print(main.check())
