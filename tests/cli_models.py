"""Small models that tests/test_cli.py checks through the ``forkcheck`` command.

The CLI loads this file by path (``tests/cli_models.py:NAME``), so it defines
several models on purpose: leaving out ``:NAME`` is a usage error here.
"""

import time

import forkcheck as fc

JUG_MOVES = ["fill big", "fill small", "empty big", "empty small", "pour big into small", "pour small into big"]


def pour(jugs, move, big, small):
    """Apply one move of the die-hard puzzle to ``jugs`` (a helper, not a model)."""
    if move == "fill big":
        jugs["big"] = big
    elif move == "fill small":
        jugs["small"] = small
    elif move == "empty big":
        jugs["big"] = 0
    elif move == "empty small":
        jugs["small"] = 0
    elif move == "pour big into small":
        amount = min(jugs["big"], small - jugs["small"])
        jugs["big"] -= amount
        jugs["small"] += amount
    else:
        amount = min(jugs["small"], big - jugs["big"])
        jugs["small"] -= amount
        jugs["big"] += amount


@fc.model
def die_hard(big=5, small=3, goal=4):
    """Die Hard 3's jug puzzle: the invariant "big != goal" fails once the hero measures the goal."""
    jugs = {"big": 0, "small": 0}

    # The chosen move goes straight to pour(), so no local remembers the last
    # move and the states are just the jug contents.
    async def hero():
        while True:
            pour(jugs, await fc.choose(JUG_MOVES), big, small)

    fc.spawn(hero, name="hero")
    fc.invariant(lambda: jugs["big"] != goal, name=f"big != {goal}")
    return jugs


@fc.model
def die_hard_functions():
    """The die-hard puzzle with the moves as functions: ``(await fc.choose(OPS))()``."""
    jugs = {"small": 0, "big": 0}

    def fill_small():
        jugs["small"] = 3

    def fill_big():
        jugs["big"] = 5

    def empty_small():
        jugs["small"] = 0

    def empty_big():
        jugs["big"] = 0

    def small_to_big():
        moved = min(jugs["small"], 5 - jugs["big"])
        jugs["small"], jugs["big"] = jugs["small"] - moved, jugs["big"] + moved

    def big_to_small():
        moved = min(jugs["big"], 3 - jugs["small"])
        jugs["small"], jugs["big"] = jugs["small"] + moved, jugs["big"] - moved

    OPS = [fill_small, fill_big, empty_small, empty_big, small_to_big, big_to_small]

    async def hands():
        while True:
            (await fc.choose(OPS))()

    fc.spawn(hands, name="jugs")
    fc.invariant(lambda: jugs["big"] != 4, name="big != 4")
    return jugs


@fc.model
def counter(n=2):
    """``n`` actors increment a counter under a lock: no lost update."""
    state = {"count": 0}
    lock = fc.Lock("lock")

    async def inc():
        async with lock:
            state["count"] += 1

    for i in range(n):
        fc.spawn(inc, name=f"inc{i}")
    fc.invariant(lambda: state["count"] <= n, name="count <= n")
    return state


@fc.model
def greeter(name="world"):
    """Asserts it never greets "bob": a model with a string argument (tests --arg quoting)."""
    said = []

    async def greet():
        await fc.checkpoint()
        said.append(f"hello {name}")
        assert name != "bob", f"greeted {name}"

    fc.spawn(greet, name="greet")
    return said


@fc.model
def philosophers():
    """Two locks taken in opposite orders: a deadlock."""
    left, right = fc.Lock("left"), fc.Lock("right")

    async def one():
        async with left:
            async with right:
                pass

    async def two():
        async with right:
            async with left:
                pass

    fc.spawn(one, name="one")
    fc.spawn(two, name="two")


@fc.model
def slow(steps=20, delay=0.25):
    """A single actor that sleeps in every step: a check that lasts ``steps * delay`` seconds."""
    progress = {"done": 0}

    async def plod():
        for _ in range(steps):
            await fc.checkpoint()
            time.sleep(delay)
            progress["done"] += 1

    fc.spawn(plod, name="plod")
    return progress


# A Model with bound arguments is a model too (listed as "name = repr").
small_die_hard = die_hard(big=3, small=2, goal=1)


def helper():
    """Not a model: naming it as the target is a usage error."""
