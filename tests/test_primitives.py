"""Every primitive an actor can use, each checked through a real exploration."""

import pytest

import forkcheck as fc


def labels(result):
    return sorted(lbl for _, _, d in result.graph.edges(data=True) for lbl in d["labels"])


def test_choose_takes_one_transition_per_option():
    @fc.model
    def m():
        seen = []

        async def a():
            seen.append(await fc.choose([1, 2, 3]))

        fc.spawn(a)
        return seen

    r = m.check()
    assert (r.stats.states, r.stats.transitions) == (4, 3)
    assert labels(r) == ["a: choose 1", "a: choose 2", "a: choose 3"]


def test_choose_with_callable_is_reevaluated_and_blocks_when_empty():
    @fc.model
    def m():
        items = []

        async def producer():
            await fc.checkpoint()
            items.append("x")

        async def consumer():
            got = await fc.choose(lambda: list(items))
            assert got == "x"

        fc.spawn(consumer)
        fc.spawn(producer)

    r = m.check(strategy="bfs")
    assert r.ok
    # consumer is blocked in the initial state: only the producer can move first.
    assert [d["label"] for _, _, d in r.graph.out_edges(0, data=True)] == ["producer: checkpoint"]
    assert r.stats.states == 3


def test_when_blocks_until_true_and_checkpoint_interleaves():
    @fc.model
    def m():
        flag = {"up": False}

        async def waiter():
            await fc.when(lambda: flag["up"])

        async def setter():
            await fc.checkpoint()
            flag["up"] = True

        fc.spawn(waiter)
        fc.spawn(setter)

    r = m.check(strategy="bfs")
    assert r.ok
    assert r.stats.states == 3  # initial, flag set, waiter through


def test_mailbox_is_fifo_and_get_blocks_when_empty():
    @fc.model
    def m():
        box = fc.Mailbox("box")

        async def sender():
            box.put(1)
            await fc.checkpoint()
            box.put(2)

        async def receiver():
            first = await box.get()
            second = await box.get()
            assert (first, second) == (1, 2)

        fc.spawn(sender)
        fc.spawn(receiver)

    r = m.check()
    assert r.ok
    assert any("get box -> 1" in lbl for lbl in labels(r))


def test_network_delivers_in_any_order():
    @fc.model
    def m():
        net = fc.Network()
        got = []

        async def client():
            net.send("s", "a")
            net.send("s", "b")

        async def server():
            got.append(await net.recv("s"))
            got.append(await net.recv("s"))

        fc.spawn(client)
        fc.spawn(server)
        fc.invariant(lambda: got != ["b", "a"], name="in order")

    r = m.check()
    assert [v.name for v in r.violations] == ["in order"]


def test_lossy_network_can_drop_messages():
    @fc.model
    def m(lossy):
        net = fc.Network("net", lossy=lossy)

        async def client():
            net.send("s", "hello")

        async def server():
            await net.recv("s")

        fc.spawn(client)
        fc.spawn(server)

    assert m(False).check().ok
    r = m(True).check()
    assert [v.kind for v in r.violations] == ["deadlock"]
    assert [s.actor for s in r.violations[0].trace] == ["net"]


def test_duplicating_network_can_deliver_twice():
    @fc.model
    def m():
        net = fc.Network(duplicating=True)
        got = []

        async def client():
            net.send("s", "m")

        async def server():
            got.append(await net.recv("s"))
            got.append(await net.recv("s"))
            assert got == ["m", "m"]

        fc.spawn(client)
        fc.spawn(server)

    assert m.check().ok


def test_lock_gives_mutual_exclusion():
    @fc.model
    def m(use_lock):
        lock = fc.Lock()
        inside = []

        async def worker():
            if use_lock:
                async with lock:
                    inside.append(1)
                    await fc.checkpoint()
                    inside.pop()
            else:
                inside.append(1)
                await fc.checkpoint()
                inside.pop()

        fc.spawn(worker)
        fc.spawn(worker)
        fc.invariant(lambda: len(inside) <= 1, name="exclusive")

    assert m(True).check().ok
    assert m(False).check().violations[0].name == "exclusive"


def test_semaphore_bounds_concurrency():
    @fc.model
    def m():
        sem = fc.Semaphore(2)
        inside = []

        async def worker():
            async with sem:
                inside.append(1)
                await fc.checkpoint()
                inside.pop()

        for _ in range(3):
            fc.spawn(worker)
        fc.invariant(lambda: len(inside) <= 2, name="at most two")
        fc.invariant(lambda: len(inside) < 2, name="never two")

    r = m.check(stop_on_violation=False)
    assert [v.name for v in r.violations] == ["never two"]


def test_event_wait_blocks_until_set():
    @fc.model
    def m():
        ev = fc.Event()
        order = []

        async def waiter():
            await ev.wait()
            order.append("waiter")

        async def setter():
            order.append("setter")
            ev.set()

        fc.spawn(waiter)
        fc.spawn(setter)
        fc.invariant(lambda: order[:1] != ["waiter"], name="after set")

    assert m.check().ok


def test_actor_spawned_in_a_transition_runs_to_its_first_await_within_it():
    @fc.model
    def m():
        log = []

        async def child():
            log.append("child started")
            await fc.checkpoint()

        async def parent():
            await fc.checkpoint()
            fc.spawn(child)
            log.append("parent continues")

        fc.spawn(parent)
        fc.invariant(lambda: log in ([], ["parent continues", "child started"]), name="child runs after parent yields")

    r = m.check()
    assert r.ok, r
    assert r.stats.states == 3


@pytest.mark.parametrize("strategy", ["dfs", "bfs", "random"])
def test_strategies_agree_on_a_small_model(strategy):
    @fc.model
    def m():
        async def a():
            await fc.checkpoint()
            await fc.checkpoint()

        fc.spawn(a)
        fc.spawn(a)

    r = m.check(strategy=strategy, walks=30, seed=1)
    assert r.stats.states == 9
