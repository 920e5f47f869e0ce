"""Objects the fingerprint cannot read through pickling: seen exactly, refused, or kept apart.

A forked snapshot keeps every address of its parent, so hashing such an object
by identity would make the state after a transition hash like the state
before it: the search would stop and say "no violation" about a failing
program.  Every model below changes nothing but one such object, in a loop
(the actor's frame is at the same place in every round), and must find the
failure that the third (or second) change causes.  Each runs with both walks.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import mmap
import sqlite3
import threading
import warnings
import zlib

import pytest

import forkcheck as fc
from forkcheck._app import fingerprint as _fingerprint
from test_fingerprint import Peer  # knows its peers through a set: cycles through sets

WALKS = ["auto", "python"] if _fingerprint._cfingerprint is not None else ["python"]


@pytest.fixture(params=WALKS)
def walk(request, monkeypatch):
    """Run the check with the C walk (where built) and with the Python walk."""
    if request.param == "python":
        monkeypatch.setenv("FORKCHECK_PURE_PYTHON_WALK", "1")  # read by each new root interpreter
    return request.param


@fc.model
def opaque_hash():
    async def a():
        h = hashlib.md5()
        while True:
            await fc.checkpoint()
            h.update(b"x")
            assert h.hexdigest() != hashlib.md5(b"xxx").hexdigest(), "three updates"

    fc.spawn(a, name="a")


def test_the_issue_model_finds_its_assertion_in_three_steps(walk):
    r = opaque_hash.check(strategy="bfs")
    assert [v.kind for v in r.violations] == ["assertion"]
    assert len(r.violations[0].trace) == 3
    assert r.stats.states == 4  # the initial state, two updates, and the third, which fails


# One factory per kind of object: (make, change, the assertion's condition). Only the object changes.
def _sqlite():
    conn = sqlite3.connect(":memory:")
    conn.execute("create table t (x)")
    return conn


KINDS = {
    "md5": (hashlib.md5, lambda h: h.update(b"x"), lambda h: h.digest() != hashlib.md5(b"xxx").digest()),
    "sha256": (hashlib.sha256, lambda h: h.update(b"x"), lambda h: h.digest() != hashlib.sha256(b"xxx").digest()),
    "blake2b": (hashlib.blake2b, lambda h: h.update(b"x"), lambda h: h.digest() != hashlib.blake2b(b"xxx").digest()),
    "sha3": (hashlib.sha3_256, lambda h: h.update(b"x"), lambda h: h.digest() != hashlib.sha3_256(b"xxx").digest()),
    "shake": (hashlib.shake_128, lambda h: h.update(b"x"),
              lambda h: h.digest(8) != hashlib.shake_128(b"xxx").digest(8)),
    "hmac": (lambda: hmac.new(b"k", digestmod="sha256"), lambda h: h.update(b"x"),
             lambda h: h.digest() != hmac.new(b"k", b"xxx", "sha256").digest()),
    "mmap": (lambda: mmap.mmap(-1, 16, flags=mmap.MAP_PRIVATE), lambda m: m.write(b"x"), lambda m: m.tell() < 3),
    "sqlite": (_sqlite, lambda c: c.execute("insert into t values (1)"),
               lambda c: c.execute("select count(*) from t").fetchone()[0] < 3),
    "lock": (threading.Lock, lambda lk: lk.release() if lk.locked() else lk.acquire(), None),
    "rlock": (threading.RLock, lambda r: r.acquire(), lambda r: "count=3" not in repr(r)),
    "itertools.count": (itertools.count, next, lambda c: repr(c) != "count(3)"),
    "memoryview": (lambda: memoryview(bytearray(1)), lambda m: m.__setitem__(0, m[0] + 1), lambda m: m[0] < 3),
}


@fc.model
def one_object(kind):
    make, change, ok = KINDS[kind]

    async def a():
        obj = make()
        rounds = 0
        while True:
            await fc.checkpoint()
            if ok is None:  # a lock: locked once, then released: the state of round 0 again
                change(obj)
                assert not (obj.locked() and rounds), "locked a second time"
                rounds = 1 if obj.locked() else rounds
                continue
            change(obj)
            assert ok(obj), f"{kind}: three changes"

    fc.spawn(a, name="a")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_object_is_seen(kind, walk):
    r = one_object(kind).check(strategy="bfs")
    assert [v.kind for v in r.violations] == ["assertion"], r.summary()
    assert len(r.violations[0].trace) == 3


class Unpicklable:
    """A class that pickling refuses, as C extension types without pickle support do."""

    def __init__(self):
        self.n = 0

    def __reduce_ex__(self, protocol):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")


@fc.model
def holds(factory, rounds=3):
    async def worker():
        box = factory()
        while True:
            await fc.checkpoint()
            box.n = (box.n + 1) % rounds

    fc.spawn(worker, name="w")


def test_an_opaque_object_is_refused_naming_it_and_where_it_is(walk):
    with pytest.raises(fc.OpaqueStateError) as info:
        holds(Unpicklable).check()
    msg = str(info.value)
    assert "\n" not in msg
    assert "test_opaque.Unpicklable" in msg
    assert "actor 'w', local 'box' of worker()" in msg
    assert "cannot see its contents (cannot pickle 'Unpicklable' object)" in msg
    assert "fc.register_state(test_opaque.Unpicklable, fn)" in msg and "opaque='distinct'" in msg
    assert isinstance(info.value, fc.ModelError) and isinstance(info.value, fc.ForkcheckError)


def test_a_registered_function_gives_the_state(walk):
    fc.register_state(Unpicklable, lambda box: box.n)
    try:
        r = holds(Unpicklable, rounds=3).check()
    finally:
        fc.register_state(Unpicklable, None)
    assert r.ok and (r.stats.states, r.stats.transitions) == (3, 3)  # n = 0, 1, 2, then 0 again


@fc.model
def registers_in_setup():
    fc.register_state(Unpicklable, lambda box: ("n", box.n))

    async def worker():
        box = Unpicklable()
        for _ in range(2):
            await fc.checkpoint()
            box.n += 1

    fc.spawn(worker)


def test_register_state_in_the_setup_function(walk):
    r = registers_in_setup.check()
    assert r.ok and r.stats.states == 3


def test_distinct_keeps_every_state_holding_it_apart_with_a_warning(walk):
    with pytest.warns(fc.OpaqueStateWarning, match="test_opaque.Unpicklable"):
        r = holds(Unpicklable, rounds=3).check(opaque="distinct", max_depth=6)
    # never merged: one state per depth, where the registered function merges the loop into 3
    assert r.stats.states == 7 and r.ok
    # the same again: the fingerprints of such states come from their paths, so replay meets them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fc.OpaqueStateWarning)
        again = holds(Unpicklable, rounds=3).check(opaque="distinct", max_depth=6)
    assert again.stats.states == r.stats.states and again.stats.transitions == r.stats.transitions


@fc.model
def compressor():
    async def a():
        z = zlib.compressobj()
        for _ in range(3):
            await fc.checkpoint()
            z.compress(b"data")

    fc.spawn(a, name="a")


def test_a_type_with_no_exact_state_gets_no_partial_view():
    with pytest.raises(fc.OpaqueStateError, match=r"zlib.Compress object \(actor 'a', local 'z' of a\(\)\)"):
        compressor.check()


@fc.model
def cached():
    import functools

    @functools.lru_cache
    def f(x):
        return x

    async def a():
        await fc.checkpoint()
        f(1)

    fc.spawn(a)
    fc.invariant(lambda: f.cache_info().hits < 5)


def test_an_lru_cache_is_refused_and_the_message_says_what_to_register():
    with pytest.raises(fc.OpaqueStateError, match="its cache and hit counts are hidden state"):
        cached.check()


@fc.model
def shared_mmap():
    async def a():
        m = mmap.mmap(-1, 8)
        await fc.checkpoint()
        m.write(b"x")

    fc.spawn(a, name="a")


def test_a_shared_mapping_is_refused():
    with pytest.raises(fc.OpaqueStateError, match="MAP_SHARED.*flags=mmap.MAP_PRIVATE"):
        shared_mmap.check()


@fc.model
def sqlite_file(path):
    async def a():
        conn = sqlite3.connect(path)
        await fc.checkpoint()
        conn.close()

    fc.spawn(a)


def test_a_database_file_is_refused(tmp_path):
    with pytest.raises(fc.OpaqueStateError, match="connect to ':memory:'"):
        sqlite_file(str(tmp_path / "db.sqlite")).check()


@fc.model
def product_loop():
    async def a():
        for pair in itertools.product("ab", repeat=2):
            await fc.checkpoint()

    fc.spawn(a, name="a")


def test_itertools_objects_are_refused_without_relying_on_their_reduce():
    # Python 3.12 deprecates and 3.14 removes __reduce__ on itertools objects: no check depends on it.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(fc.OpaqueStateError, match="itertools.product .*a value on the stack of a"):
            product_loop.check()


def test_register_state_rejects_bad_arguments():
    with pytest.raises(fc.UsageError, match="needs a class first"):
        fc.register_state("Unpicklable", lambda x: x)
    with pytest.raises(fc.UsageError, match="walks list objects itself"):
        fc.register_state(list, lambda x: x)
    with pytest.raises(fc.UsageError, match="needs a function of one object"):
        fc.register_state(Unpicklable, 3)
    with pytest.raises(fc.UsageError, match="opaque='sometimes'"):
        holds(Unpicklable).check(opaque="sometimes")


@fc.model
def graph_cycle():
    a, b = Peer("a"), Peer("b")
    a.peers.add(b)
    b.peers.add(a)

    async def w():
        for i in range(2):
            await fc.checkpoint()
            a.name += "!"

    fc.spawn(w, name="w")
    return a


def test_cycles_through_sets_give_three_states(walk):
    r = graph_cycle.check()
    assert r.ok and (r.stats.states, r.stats.transitions) == (3, 2)


@fc.model
def clique_built_two_ways(n=4):
    """Two actors build the same clique, adding the edges in opposite orders: the states meet."""
    nodes = [Peer(f"n{i}") for i in range(n)]
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]

    async def forward():
        await fc.checkpoint()
        for i, j in pairs:
            nodes[i].peers.add(nodes[j])

    async def backward():
        await fc.checkpoint()
        for i, j in reversed(pairs):
            nodes[i].peers.add(nodes[j])

    # one of them runs (a choice), then the clique is complete either way
    async def chooser():
        who = await fc.choose(["forward", "backward"])
        fc.spawn(forward if who == "forward" else backward, name="builder")

    fc.spawn(chooser)
    return nodes


def test_the_same_clique_reached_two_ways_is_one_state(walk):
    r = clique_built_two_ways.check()
    # initial; builder spawned (two states: the builders differ in code); clique complete (one state)
    assert r.ok and r.stats.states == 4, r.summary()


@fc.model
def first_come():
    seen = {}

    async def register(name):
        await fc.checkpoint()
        seen[name] = True

    async def judge():
        await fc.when(lambda: len(seen) == 2)
        assert next(iter(seen)) == "a", "b registered first"

    fc.spawn(register, "a")
    fc.spawn(register, "b")
    fc.spawn(judge, name="judge")


def test_a_dicts_order_is_state(walk):
    # {"a", "b"} and {"b", "a"} are different states: merging them hid the assertion
    r = first_come.check()
    assert [v.kind for v in r.violations] == ["assertion"], r.summary()


@fc.model
def local_class():
    class Tally:  # made by the setup function: its class attributes are state
        n = 0

    async def bump():
        while True:
            await fc.checkpoint()
            Tally.n += 1
            assert Tally.n < 3, "three bumps"

    fc.spawn(bump)


def test_class_attributes_of_a_class_made_in_setup_are_state(walk):
    r = local_class.check()
    assert [v.kind for v in r.violations] == ["assertion"], r.summary()


@fc.model
def holds_then_fails():
    async def worker():
        box = Unpicklable()
        while True:
            await fc.checkpoint()
            box.n += 1
            assert box.n < 3, "three rounds"

    fc.spawn(worker, name="w")


def test_a_counterexample_found_with_distinct_replays():
    with pytest.warns(fc.OpaqueStateWarning):
        r = holds_then_fails.check(opaque="distinct", strategy="bfs")
    (v,) = r.violations
    steps = fc.replay(holds_then_fails, v.trace.token)
    assert len(steps) == 3 and [x[0] for x in steps.violations] == ["assertion"]
    assert not steps.notes


def test_the_notebook_explorer_takes_opaque():
    with pytest.raises(fc.OpaqueStateError, match="test_opaque.Unpicklable"):
        fc.Explorer(holds(Unpicklable))
    with fc.Explorer(holds(Unpicklable), opaque="distinct") as ex:
        a = ex.root.step(0)
        assert a.step(0) is not ex.root  # never merged, even where the loop closes
        with pytest.raises(fc.UsageError, match="differs from the Explorer's opaque='distinct'"):
            ex.run(opaque="error")
    with pytest.raises(fc.UsageError, match="opaque='maybe'"):
        fc.Explorer(holds(Unpicklable), opaque="maybe")
