"""Unmodified asyncio programs, each with the schedule-dependent bug it has (or none), for test_asyncio.py.

Each is plain asyncio code under ``@fc.asyncio_model``: nothing of forkcheck
but the decorator (and ``fc.invariant`` where a test says so).
"""

from __future__ import annotations

import asyncio
import contextvars

import forkcheck as fc


# --------------------------------------------------------------------------- tasks, gather


@fc.asyncio_model
async def lost_update(n=2):
    """Read, await, write: two increments interleave under stock FIFO already."""
    counter = {"x": 0}

    async def inc():
        tmp = counter["x"]
        await asyncio.sleep(0)
        counter["x"] = tmp + 1

    await asyncio.gather(*(inc() for _ in range(n)))
    assert counter["x"] == n, f"lost an update: {counter['x']} of {n}"


@fc.asyncio_model
async def locked_update(n=2):
    """The same increments under an asyncio.Lock: correct in every order."""
    counter = {"x": 0}
    lock = asyncio.Lock()

    async def inc():
        async with lock:
            tmp = counter["x"]
            await asyncio.sleep(0)
            counter["x"] = tmp + 1

    await asyncio.gather(*(inc() for _ in range(n)))
    assert counter["x"] == n


@fc.asyncio_model
async def start_order():
    """create_task's order is only FIFO's: the reader may run before the writer (1 deviation)."""
    log = []

    async def writer():
        log.append("written")

    async def reader():
        assert log, "the reader ran before the writer"

    w = asyncio.create_task(writer())
    r = asyncio.create_task(reader())
    await w
    await r


@fc.asyncio_model
async def gather_results():
    """gather returns results in the order of its arguments, whatever order the tasks run in."""
    async def square(x):
        await asyncio.sleep(0)
        return x * x

    results = await asyncio.gather(square(1), square(2), square(3))
    assert results == [1, 4, 9]


@fc.asyncio_model
async def forgotten_task():
    """A task that fails and that nobody awaits: "Task exception was never retrieved"."""
    async def boom():
        raise ValueError("nobody hears this")

    asyncio.create_task(boom())
    await asyncio.sleep(0)
    await asyncio.sleep(0)


# --------------------------------------------------------------------------- wait, wait_for, timeout


@fc.asyncio_model
async def first_completed():
    """wait(FIRST_COMPLETED) may return more than one done task when the machine is slow (timers due together)."""
    async def fast():
        await asyncio.sleep(0.1)
        return "fast"

    async def slow():
        await asyncio.sleep(0.2)
        return "slow"

    tasks = [asyncio.create_task(fast()), asyncio.create_task(slow())]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert [t.result() for t in done] == ["fast"], f"done holds {sorted(t.result() for t in done)}"


@fc.asyncio_model
async def wait_for_margin():
    """A job of 0.5 s under wait_for(timeout=1): a slow machine can still time it out."""
    async def job():
        await asyncio.sleep(0.5)
        return 42

    assert await asyncio.wait_for(job(), timeout=1) == 42


@fc.asyncio_model
async def wait_for_handled():
    """The same job, its timeout handled: correct in every order."""
    async def job():
        await asyncio.sleep(0.5)
        return 42

    try:
        result = await asyncio.wait_for(job(), timeout=1)
    except asyncio.TimeoutError:
        result = None
    assert result in (42, None)


@fc.asyncio_model
async def timeout_block():
    """asyncio.timeout: the work is done or timed out, exactly one of them, in every order."""
    results = []

    async def work():
        await asyncio.sleep(0.5)
        results.append("done")

    try:
        async with asyncio.timeout(1):
            await work()
    except TimeoutError:
        results.append("timeout")
    assert results in (["done"], ["timeout"]), results


# --------------------------------------------------------------------------- TaskGroup


@fc.asyncio_model
async def group_cancels_sibling():
    """A TaskGroup cancels the siblings of a failed task: the save never happens."""
    written = []

    async def save(x):
        await asyncio.sleep(0)
        written.append(x)

    async def fail():
        raise ValueError("boom")

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(save(1))
            tg.create_task(fail())
    except* ValueError:
        pass
    assert written == [1], "the save was cancelled by its failing sibling"


@fc.asyncio_model
async def group_results():
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    async with asyncio.TaskGroup() as tg:
        a = tg.create_task(double(1))
        b = tg.create_task(double(2))
    assert a.result() + b.result() == 6


# --------------------------------------------------------------------------- Queue


@fc.asyncio_model
async def producer_consumer(n=3, maxsize=1):
    """A bounded queue, a producer and two consumers with task_done and join: correct in every order."""
    q: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
    received = []

    async def producer():
        for i in range(n):
            await q.put(i)

    async def consumer():
        while True:
            item = await q.get()
            received.append(item)
            q.task_done()

    consumers = [asyncio.create_task(consumer()) for _ in range(2)]
    await producer()
    await q.join()
    for c in consumers:
        c.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    assert sorted(received) == list(range(n))


@fc.asyncio_model
async def check_then_get():
    """Two consumers check q.empty() before get(): one of them waits forever (a deadlock)."""
    q: asyncio.Queue = asyncio.Queue()

    async def consumer():
        if not q.empty():
            await asyncio.sleep(0)  # e.g. a log line written before taking the item
            await q.get()

    q.put_nowait("only one")
    await asyncio.gather(consumer(), consumer())


# --------------------------------------------------------------------------- Lock, Event, Condition, Semaphore


@fc.asyncio_model
async def lock_order():
    """Two tasks take two asyncio.Locks in opposite orders: a deadlock."""
    a, b = asyncio.Lock(), asyncio.Lock()

    async def one():
        async with a:
            await asyncio.sleep(0)
            async with b:
                pass

    async def two():
        async with b:
            await asyncio.sleep(0)
            async with a:
                pass

    await asyncio.gather(one(), two())


@fc.asyncio_model
async def lock_order_fixed():
    """The same tasks taking the locks in one order: no deadlock."""
    a, b = asyncio.Lock(), asyncio.Lock()

    async def worker():
        async with a:
            await asyncio.sleep(0)
            async with b:
                await asyncio.sleep(0)

    await asyncio.gather(worker(), worker())


@fc.asyncio_model
async def missed_pulse():
    """ev.set(); ev.clear() wakes only who already waits: a waiter started late misses it (1 deviation)."""
    ev = asyncio.Event()

    async def waiter():
        await ev.wait()

    async def pulser():
        ev.set()
        ev.clear()

    w = asyncio.create_task(waiter())
    p = asyncio.create_task(pulser())
    await p
    await w


@fc.asyncio_model
async def event_handoff():
    """Event.set() before or after the waiter starts: it wakes either way."""
    ev = asyncio.Event()
    data = []

    async def waiter():
        await ev.wait()
        assert data == ["ready"]

    async def setter():
        data.append("ready")
        ev.set()

    await asyncio.gather(waiter(), setter())


@fc.asyncio_model
async def condition_if():
    """`if` instead of `while` around cond.wait(): a consumer woken for an item already taken."""
    cond = asyncio.Condition()
    items = []

    async def consumer():
        async with cond:
            if not items:
                await cond.wait()
            items.pop()

    async def producer():
        await asyncio.sleep(0)
        async with cond:
            items.append(1)
            cond.notify_all()
        await asyncio.sleep(0)
        async with cond:
            items.append(2)
            cond.notify_all()

    await asyncio.gather(consumer(), consumer(), producer())


@fc.asyncio_model
async def condition_while():
    cond = asyncio.Condition()
    items = []
    got = []

    async def consumer():
        async with cond:
            while not items:
                await cond.wait()
            got.append(items.pop())

    async def producer():
        for i in range(2):
            await asyncio.sleep(0)
            async with cond:
                items.append(i)
                cond.notify()

    await asyncio.gather(consumer(), consumer(), producer())
    assert sorted(got) == [0, 1]


@fc.asyncio_model
async def semaphore_limit(limit=2, workers=3):
    """At most ``limit`` workers inside: an invariant declared before main's first await."""
    sem = asyncio.Semaphore(limit)
    state = {"inside": 0}
    fc.invariant(lambda: state["inside"] <= limit, name="at most limit inside")

    async def worker():
        async with sem:
            state["inside"] += 1
            await asyncio.sleep(0)
            state["inside"] -= 1

    await asyncio.gather(*(worker() for _ in range(workers)))


@fc.asyncio_model
async def semaphore_too_wide():
    """A Semaphore(2) guarding what only one may use."""
    sem = asyncio.Semaphore(2)
    state = {"inside": 0}
    fc.invariant(lambda: state["inside"] <= 1, name="one at a time")

    async def worker():
        async with sem:
            state["inside"] += 1
            await asyncio.sleep(0)
            state["inside"] -= 1

    await asyncio.gather(worker(), worker())


# --------------------------------------------------------------------------- sleep, call_later, time


@fc.asyncio_model
async def long_sleep():
    """Virtual time: an hour passes at once, exactly."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(3600)
    assert loop.time() == 3600.0, loop.time()


@fc.asyncio_model
async def sleep_order():
    """Sleeps of 1 s and 2 s: stock asyncio ends them in that order; a slow machine may not."""
    order = []

    async def nap(name, seconds):
        await asyncio.sleep(seconds)
        order.append(name)

    await asyncio.gather(nap("short", 1), nap("long", 2))
    assert order == ["short", "long"], order


@fc.asyncio_model
async def call_later_deadline():
    """A call_later(0.1) check that the 0.05 s work is done by then: a slow machine runs it first."""
    loop = asyncio.get_running_loop()
    state = {"done": False}

    async def work():
        await asyncio.sleep(0.05)
        state["done"] = True

    task = asyncio.create_task(work())
    verdict = loop.create_future()
    loop.call_later(0.1, lambda: verdict.set_result(state["done"]))
    assert await verdict, "the work was not done after 0.1 s"
    await task


@fc.asyncio_model
async def call_later_cancelled():
    """A cancelled call_later never runs."""
    loop = asyncio.get_running_loop()
    fired = []
    handle = loop.call_later(1, fired.append, "fired")
    await asyncio.sleep(0.5)
    handle.cancel()
    await asyncio.sleep(1)
    assert fired == []


# --------------------------------------------------------------------------- state: names, contexts, loops


@fc.asyncio_model
async def ticker(rounds=3):
    """Tasks made again and again, each done before the next: their names come back, so states meet."""
    for _ in range(rounds):
        await asyncio.create_task(asyncio.sleep(0))


@fc.asyncio_model
async def serve_forever():
    """A server loop that spawns a handler per request and never ends: a finite state space all the same
    (the handlers' names come back, and no time passes)."""
    q: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def handle(req):
        await asyncio.sleep(0)

    async def client():
        while True:
            await q.put("req")

    asyncio.create_task(client())
    while True:
        req = await q.get()
        await asyncio.create_task(handle(req))
        q.task_done()


request_id: contextvars.ContextVar = contextvars.ContextVar("request_id", default=None)


@fc.asyncio_model
async def context_per_task():
    """Each task sees its own request id: contexts are state, walked by their contents."""
    seen = []

    async def handler(rid):
        token = request_id.set(rid)  # held across the await: tokens are state too
        await asyncio.sleep(0)
        seen.append((rid, request_id.get()))
        request_id.reset(token)

    await asyncio.gather(handler(1), handler(2))
    assert all(a == b for a, b in seen), seen
    assert request_id.get() is None


# --------------------------------------------------------------------------- entry points that run their own loop


async def _amain(state):
    async def inc():
        tmp = state["x"]
        await asyncio.sleep(0)
        state["x"] = tmp + 1

    await asyncio.gather(inc(), inc())


@fc.asyncio_model
def entry_point():
    """An application's own entry point: it calls asyncio.run, then checks the result."""
    state = {"x": 0}
    asyncio.run(_amain(state))
    assert state["x"] == 2, f"lost an update: {state['x']}"


@fc.asyncio_model
def entry_point_loops():
    """asyncio.run inside a for loop: the loop's iterator is on a running frame's stack, refused."""
    for _ in range(2):
        asyncio.run(_amain({"x": 0}))


@fc.asyncio_model
def no_loop():
    return 42


# --------------------------------------------------------------------------- the outside world, misuse


@fc.asyncio_model
async def opens_a_socket():
    try:
        await asyncio.open_connection("localhost", 80)
    except Exception:  # noqa: BLE001 - the program swallows the refusal: it must still be reported
        pass


@fc.asyncio_model
async def runs_a_subprocess():
    await asyncio.create_subprocess_exec("true")


@fc.asyncio_model
async def uses_a_thread():
    await asyncio.to_thread(print, "hello")


@fc.asyncio_model
async def handles_a_signal():
    import signal

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, print)


@fc.asyncio_model
async def late_invariant():
    await asyncio.sleep(0)
    fc.invariant(lambda: True)


@fc.asyncio_model
async def uses_fc_checkpoint():
    await fc.checkpoint()


@fc.asyncio_model
async def increments(n=3):
    """Atomic increments between awaits: many schedules, few distinct states (they commute)."""
    state = {"x": 0}

    async def inc():
        await asyncio.sleep(0)
        state["x"] += 1

    await asyncio.gather(*(inc() for _ in range(n)))
    assert state["x"] == n


# --------------------------------------------------------------------------- stock asyncio's own order


async def scenario(order):
    """Tasks, sleeps, call_soon, call_later(0), an event, a queue: the order stock asyncio runs them in."""
    loop = asyncio.get_running_loop()

    async def a():
        order.append("a1")
        await asyncio.sleep(0)
        order.append("a2")
        await asyncio.sleep(0.5)
        order.append("a3")

    async def b():
        order.append("b1")
        loop.call_later(0, order.append, "later0")
        loop.call_soon(order.append, "soon")
        await asyncio.sleep(0)
        order.append("b2")
        await asyncio.sleep(0.5)
        order.append("b3")

    ev = asyncio.Event()

    async def c():
        await ev.wait()
        order.append("c")

    q: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def producer():
        for i in range(2):
            await q.put(i)
            order.append(f"put{i}")

    async def consumer():
        for _ in range(2):
            order.append(f"got{await q.get()}")

    tc = asyncio.create_task(c())
    loop.call_later(0.2, ev.set)
    await asyncio.gather(a(), b(), producer(), consumer())
    await tc


@fc.asyncio_model
async def stock_order(expected=()):
    order: list = []
    await scenario(order)
    assert order == list(expected), order


@fc.asyncio_model
def entry_runner():
    """asyncio.Runner as a context manager: accepted (the runner is a local, the with block's exit its method)."""
    state = {"x": 0}
    with asyncio.Runner() as runner:
        runner.run(_amain(state))
    assert state["x"] == 2, f"lost an update: {state['x']}"


@fc.asyncio_model
async def hidden_callback(later=True):
    """Which task ran first shows only in a callback that the loop alone holds (a timer, or a ready callback):
    the loop's queues must be state, or the two orders meet and the alarm is lost."""
    loop = asyncio.get_running_loop()
    state = {"first": None}

    def alarm():
        raise RuntimeError("b ran first")

    async def t(name):
        if state["first"] is None:
            state["first"] = "taken"
            if name == "b":
                if later:
                    loop.call_later(1, alarm)
                else:
                    loop.call_soon(alarm)
        await asyncio.sleep(0)

    await asyncio.gather(t("a"), t("b"))
    await asyncio.sleep(2)


@fc.asyncio_model
async def never_awaited():
    """A coroutine called without await never runs: stock asyncio only warns."""
    log = []

    async def save():
        log.append("saved")

    save()
    await asyncio.sleep(0)
    assert log == ["saved"]


@fc.asyncio_model
async def bad_async_generator():
    """An async generator whose clean-up fails when asyncio.run closes it."""
    async def ticks():
        try:
            yield 1
            yield 2
        finally:
            raise ValueError("cannot close")

    gen = ticks()
    await gen.__anext__()


@fc.asyncio_model
async def async_for(n=2):
    """`async for` over an async generator that awaits: its steps interleave with another task's."""
    seen = []

    async def ticks():
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def reader():
        async for i in ticks():
            seen.append(i)

    async def other():
        await asyncio.sleep(0)
        seen.append("other")

    await asyncio.gather(reader(), other())
    assert seen.index("other") > 0, seen


# --------------------------------------------------------------------------- timeouts and constraints (main's)


@fc.asyncio_model
async def blocks_in_a_task():
    """A task that blocks the loop: forkcheck's timer interrupts it, a timeout of that task."""
    import time

    async def sleeper():
        await asyncio.sleep(0)
        time.sleep(60)

    await asyncio.gather(sleeper())


@fc.asyncio_model
async def blocks_in_a_callback():
    import time

    def stall():
        time.sleep(60)

    asyncio.get_running_loop().call_soon(stall)
    await asyncio.sleep(1)


@fc.asyncio_model
async def counts_forever():
    """An unbounded counter, bounded by a constraint declared before main's first await."""
    state = {"n": 0}
    fc.constraint(lambda: state["n"] < 3, name="below 3")
    while True:
        state["n"] += 1
        await asyncio.sleep(0)


@fc.asyncio_model
async def late_constraint():
    await asyncio.sleep(0)
    fc.constraint(lambda: True)
