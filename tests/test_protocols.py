"""What protocol models need: daemon actors (waiting forever is a fine end), receives that time out, select."""

from __future__ import annotations

import pytest

import forkcheck as fc


def edges(r):
    return sorted((u, v, tuple(d["labels"])) for u, v, d in r.graph.edges(data=True))


def labels_from_root(r):
    return sorted(lab for _, _, d in r.graph.out_edges(0, data=True) for lab in d["labels"])


# --------------------------------------------------------------------------- daemons


@fc.model
def echo_service(daemon=False, lossy=False):
    net = fc.Network("net", lossy=lossy)

    async def server():
        while True:  # a server loop: waits for the next request forever
            client, n = await net.recv("server")
            net.send(client, n + 1)

    async def client(i):
        net.send("server", (f"c{i}", i))
        assert await net.recv(f"c{i}") == i + 1

    fc.spawn(server, daemon=daemon)
    for i in range(2):
        fc.spawn(client, i, name=f"c{i}")


def test_a_server_loop_is_a_deadlock_without_the_declaration():
    r = echo_service(daemon=False).check(strategy="bfs")
    (v,) = r.violations
    assert v.kind == "deadlock"
    assert "server waits for recv at 'server'" in v.message


def test_a_daemon_server_waiting_forever_is_a_fine_end():
    r = echo_service(daemon=True).check(strategy="bfs")
    assert r.ok and r.complete, r.summary()
    ends = [n for n, d in r.graph.nodes(data=True) if r.graph.out_degree(n) == 0]
    assert ends and all(r.graph.nodes[n]["done"] for n in ends)  # the clients returned; the server waits


def test_a_lost_message_deadlock_is_still_found_with_daemon_servers():
    r = echo_service(daemon=True, lossy=True).check(strategy="bfs")
    (v,) = r.violations
    assert v.kind == "deadlock"
    assert any(s.label.startswith("drop") for s in v.trace), v.trace
    assert "c0 waits for recv at 'c0'" in v.message or "c1 waits for recv at 'c1'" in v.message
    assert "server (daemon) waits for recv at 'server'" in v.message


def test_being_a_daemon_is_part_of_the_state():
    # The two branches differ only in whether the waiter is a daemon: merged, the deadlock of the
    # second branch (explored after the first) would be lost.
    @fc.model
    def which():
        async def waiter():
            await fc.when(lambda: False)

        async def starter():
            fc.spawn(waiter, name="w", daemon=await fc.choose([True, False]))

        fc.spawn(starter)

    r = which.check(stop_on_violation=False)
    assert [v.kind for v in r.violations] == ["deadlock"]
    assert r.stats.states == 3


def test_daemon_must_be_a_bool():
    @fc.model
    def bad():
        async def a():
            await fc.checkpoint()
        fc.spawn(a, daemon="yes")

    with pytest.raises(fc.UsageError, match=r"fc.spawn\(daemon='yes'\): give True"):
        bad.check()


# --------------------------------------------------------------------------- timeouts


def test_a_receive_may_time_out_even_when_a_message_is_there():
    @fc.model
    def m():
        box = fc.Mailbox("box")
        box.put(1)
        got = []

        async def receiver():
            got.append(await box.get(timeout=True))

        fc.spawn(receiver)
        fc.invariant(lambda: fc.TIMEOUT not in got, name="never timed out")

    r = m.check(stop_on_violation=False)
    assert labels_from_root(r) == ["receiver: get box -> 1", "receiver: get box -> TIMEOUT"]
    (v,) = r.violations
    assert [s.label for s in v.trace] == ["get box -> TIMEOUT"]


@fc.model
def resend(retries=2, lossy=True):
    """Resend on timeout over a lossy network, with a daemon server: a bounded retry protocol."""
    net = fc.Network("net", lossy=lossy)
    state = {"acked": False}

    async def client():
        for _ in range(retries + 1):
            net.send("server", "req")
            reply = await net.recv("client", timeout=True)
            if reply is not fc.TIMEOUT:
                state["acked"] = True
                return
        assert False, "gave up after every retry timed out"

    async def server():
        while True:
            await net.recv("server")
            net.send("client", "ack")

    fc.spawn(client)
    fc.spawn(server, daemon=True)
    return state


def test_a_resend_protocol_times_out_and_gives_up():
    r = resend(retries=2).check(strategy="bfs")
    (v,) = r.violations
    assert v.kind == "assertion"
    assert [s.label for s in v.trace].count("recv TIMEOUT at 'client'") == 3
    again = resend(retries=2).check(strategy="bfs")
    assert edges(again) == edges(r) and str(again.violations[0].trace) == str(v.trace)
    steps = fc.replay(resend(retries=2), v.trace.token)
    assert steps.violations and steps.violations[0][0] == "assertion"


def test_timeout_must_be_a_bool():
    @fc.model
    def bad():
        box = fc.Mailbox()

        async def a():
            await box.get(timeout=5)
        fc.spawn(a)

    with pytest.raises(fc.UsageError, match=r"box.get\(timeout=5\): give True"):
        bad.check()


# --------------------------------------------------------------------------- select


@fc.model
def two_inboxes(timeout=False):
    data, control = fc.Mailbox("data"), fc.Mailbox("control")
    got = []

    async def producer():
        data.put(1)
        control.put("stop")

    async def consumer():
        while True:
            k, msg = await fc.select(data.get(), control.get(), timeout=timeout)
            got.append((k, msg))
            if msg == "stop":
                return

    fc.spawn(producer)
    fc.spawn(consumer)
    return got


def test_select_takes_each_enabled_alternative_and_says_which():
    r = two_inboxes().check(stop_on_violation=False)
    assert r.ok and r.complete
    assert labels_from_root(r) == ["consumer: get control -> 'stop'", "consumer: get data -> 1"]
    views = set()
    for n in r.graph.nodes:
        if r.graph.out_degree(n) == 0:
            views.add(n)
    assert len(views) == 2  # stop first (data left unread), or data then stop


def test_select_with_a_timeout_and_its_replay():
    r = two_inboxes(timeout=True).check(stop_on_violation=False, max_depth=3)
    assert "consumer: select -> TIMEOUT" in labels_from_root(r)

    @fc.model
    def waits():
        a, b = fc.Mailbox("a"), fc.Mailbox("b")

        async def w():
            k, msg = await fc.select(a.get(), b.get(), timeout=True)
            assert msg is not fc.TIMEOUT and k is not None, "timed out"

        fc.spawn(w)

    (v,) = waits.check().violations
    assert [s.label for s in v.trace] == ["select -> TIMEOUT"]
    assert fc.replay(waits, v.trace.token).violations[0][0] == "assertion"


def test_a_select_with_nothing_to_take_is_a_deadlock_that_says_what_it_waits_for():
    @fc.model
    def stuck():
        a, b = fc.Mailbox("a"), fc.Mailbox("b")
        lock = fc.Lock("l")

        async def w():
            await fc.select(a.get(), b.get(), lock.acquire(), fc.when(lambda: False))

        async def holder():
            await lock.acquire()

        fc.spawn(holder)
        fc.spawn(w)

    (v,) = stuck.check().violations
    assert v.kind == "deadlock"
    assert "w waits for select(get a, get b, acquire l, when lambda: False)" in v.message


def test_select_completes_the_request_it_takes():
    @fc.model
    def locks():
        l1, l2 = fc.Lock("l1"), fc.Lock("l2")
        held = {"n": 0}

        async def taker(i):
            k, _ = await fc.select(l1.acquire(), l2.acquire())
            held["n"] += 1
            await fc.checkpoint()
            held["n"] -= 1
            (l1, l2)[k].release()

        for i in range(3):
            fc.spawn(taker, i)
        fc.invariant(lambda: held["n"] <= 2, name="two locks")

    r = locks.check()
    assert r.ok and r.complete


@pytest.mark.parametrize("args, message", [
    ((), r"fc.select\(\) got no request"),
    ((1,), r"fc.select\(\) got int 1 as alternative 0"),
])
def test_select_refuses_what_is_not_a_request(args, message):
    @fc.model
    def bad():
        async def a():
            await fc.select(*args)
        fc.spawn(a)

    with pytest.raises(fc.UsageError, match=message):
        bad.check()


def test_select_refuses_one_request_twice():
    @fc.model
    def bad():
        box = fc.Mailbox()

        async def a():
            r = box.get()
            await fc.select(r, r)
        fc.spawn(a)

    with pytest.raises(fc.UsageError, match="the same request twice"):
        bad.check()
