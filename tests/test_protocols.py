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
