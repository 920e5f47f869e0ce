"""The C fingerprint walk: the Python walk's tokens exactly, on every kind of object and every state.

The C walk (``forkcheck/_cfingerprint.c``) exists so that a snapshot computes its
fingerprint without writing the objects it reads (see docs/design.md, "Cheap
snapshots"); these tests hold it to the Python walk's output token for token.
"""

from __future__ import annotations

import _thread
import collections
import copyreg
import enum
import functools
import hashlib
import itertools
import mmap
import operator
import os
import re
import sqlite3
import sys
import types
import weakref

import pytest

import forkcheck as fc
from forkcheck._app import fingerprint as _fingerprint
from test_fingerprint import Peer, walks

C = _fingerprint._cfingerprint
#: The Pythons whose frames and objects _cfingerprint.c reads; elsewhere it does not build.
BUILT_ON = ((3, 11), (3, 12), (3, 13))

if C is None and sys.version_info[:2] not in BUILT_ON:
    pytest.skip(f"the C walk is not built for Python {sys.version_info.major}.{sys.version_info.minor}: "
                "the Python walk runs alone", allow_module_level=True)


def test_the_c_walk_is_built_and_used():
    # setup.py builds it optional, so that installs without a compiler still work: a build that
    # broke would go unnoticed but for this test.
    assert sys.version_info[:2] in BUILT_ON
    assert C is not None, "forkcheck._app._cfingerprint did not build: run `pip install -e .` with a C compiler"
    assert _fingerprint.C_WALK


def test_the_environment_can_force_the_python_walk():
    import subprocess

    probe = [sys.executable, "-c", "from forkcheck._app import fingerprint; print(fingerprint.C_WALK)"]
    env = dict(os.environ, FORKCHECK_PURE_PYTHON_WALK="1")
    assert subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.strip() == "False"
    env.pop("FORKCHECK_PURE_PYTHON_WALK")
    assert subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.strip() == "True"


def test_blake2b_matches_hashlib():
    for n in (0, 1, 127, 128, 129, 255, 256, 257, 1000, 65536 + 3):
        data = os.urandom(n)
        assert C.blake2b16(data) == hashlib.blake2b(data, digest_size=16).digest(), n


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Hooked:
    def __init__(self, v):
        self.v = v

    def __fc_state__(self):
        return ("hooked", self.v, [self.v])


class Plain:
    def __init__(self):
        self.a = [1, 2]
        self.b = {"k": (1, 2.5, None)}


class Empty:
    pass


class Slots:
    __slots__ = ("x", "y")

    def __init__(self):
        self.x = 1


class FailsToReduce:
    def __reduce_ex__(self, protocol):
        raise TypeError("no")


class ReducesToName:
    def __reduce_ex__(self, protocol):
        return "ReducesToName"


class WithItems:
    def __reduce_ex__(self, protocol):
        return (WithItems, (), None, iter([1, 2]), iter([("a", 1), ("b", [2])]))


class Shadowed:
    """An instance attribute named like a pickling method changes what reduce does."""

    def __init__(self):
        self.__reduce_ex__ = lambda protocol: ("shadowed",)


class OwnGetstate:
    def __getstate__(self):
        return {"state": 1}


class Listish(list):
    pass


def _gen(n):
    x = [n]

    def inner():
        return x

    for i in range(n):
        yield i


async def _coro(a, *, k=3):
    q = collections.deque([1, 2])
    try:
        raise ValueError("v")
    except ValueError:
        await types.coroutine(lambda: (yield "inner"))()
    return q


async def _agen():
    yield 1


def _closure_gen(n):
    seen = [n]

    def gen():  # seen is a free variable of this generator's frame
        for i in range(n):
            seen.append(i)
            yield seen

    return gen()


def zoo():
    g1 = _gen(3)
    next(g1)
    g3 = _gen(1)
    list(g3)
    c1 = _coro(1)
    c1.send(None)
    a1 = _agen()
    with pytest.raises(StopIteration):
        a1.__anext__().send(None)  # suspended at its yield
    cg = _closure_gen(3)
    next(cg)
    big = collections.deque(range(200), maxlen=300)
    big.rotate(37)
    for _ in range(10):
        big.popleft()
    shared = [1]
    plain = Plain()
    return [
        None, True, False, 0, -5, 2 ** 70, -(2 ** 64), 1.5, float("nan"), -0.0, 1e300, 1 + 2j,
        "", "s", "it's", "\"q\" and 'q'", "tab\tnl\ncr\r\x00\x7f\\", "é\ud800", "日本", b"", b"\x00b'\"\xff", bytearray(b"ab"),
        (1, (2, [3])), frozenset({1, "a", (2,)}), _fingerprint.Unordered([3, 1, [2]]), {3, 1, 2}, set(),
        {"b": 1, "a": [2], 3: "x", (1, 2): None, True: 0, frozenset(): 1, 2 ** 80: 2, "é": 3},
        collections.defaultdict(list, {"a": [1]}), collections.defaultdict(None), collections.Counter("abca"),
        collections.deque([1, [2]], maxlen=4), big, collections.OrderedDict(a=1),
        int, Plain, type(None), types, _fingerprint, Color.RED, Color, Hooked(5), plain, plain, plain.__dict__,
        Empty(), Slots(), ReducesToName(), WithItems(), Shadowed(), OwnGetstate(), Listish([1, 2]),
        _gen.__code__, g1, _gen(2), g3, c1, _coro(2), _agen(), a1, cg, _closure_gen(1), len, [].append, shared, shared,
        lambda x=[1], *, y=(2,): (x, y), functools.partial(max, 1), operator.itemgetter(1), iter([1, 2, 3]),
        plain.__init__, "x".upper, dict.fromkeys, range(3), slice(1, 2), print, copyreg.__newobj__, sys.maxsize,
        # unordered containers inside canonical keys, and cycles through them
        {(1, frozenset({"a", (2, Color.RED)})), (1, frozenset({"b"}))}, {frozenset({frozenset({1}), int})},
        [{"k": {Plain(), Empty()}}], {Peer("a"), Peer("b")}, ring(4), clique(4), {Peer("x"): {Peer("y")}},
        # objects given a state by _reducers.py
        hashlib.md5(b"x"), hashlib.sha256(), hashlib.blake2b(b"y"), hashlib.shake_128(b"z"), itertools.count(3, 2),
        {"a": 1}.keys(), {"a": 1}.values(), {"a": [1]}.items(), weakref.ref(Color), memoryview(b"abc"),
        re.match("a(b)", "abc"), _thread.allocate_lock(), _thread.RLock(), sqlite3.connect(":memory:"),
        mmap.mmap(-1, 16, flags=mmap.MAP_PRIVATE),
        *_asyncio_kit(),
        # classes made by code: their class attributes are state, cycles through them end
        local_class(), [local_class()] * 2, local_class().Inner,
    ]


def _finalize(agen) -> None:
    pass


def _asyncio_kit() -> list:
    """What asyncio programs hold (issue 17): contexts and their variables and tokens, a traceback, the
    awaitables of an async generator."""
    import contextvars

    var = contextvars.ContextVar("var", default=[1])
    bare = contextvars.ContextVar("bare")
    ctx = contextvars.copy_context()
    token = ctx.run(var.set, "set")
    used = ctx.run(bare.set, 2)
    ctx.run(bare.reset, used)
    try:
        raise ValueError("kept")
    except ValueError as exc:
        tb = exc.__traceback__
    gen = _agen()
    step = gen.__anext__()
    closing = _agen().aclose()
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=None, finalizer=_finalize)  # as an event loop does: a finalizer to walk
    try:
        hooked = _agen()
        started = hooked.__anext__()
        try:
            started.send(None)
        except StopIteration:
            pass
    finally:
        sys.set_asyncgen_hooks(*hooks)
    out = [var, bare, ctx, contextvars.Context(), token, used, tb, step, closing, hooked]
    step.close()
    closing.close()
    return out


def local_class():
    class Local:
        count = [0]
        label = "x"

        class Inner:
            again = None

        def method(self):
            return self

    Local.Inner.again = Local  # a cycle through class attributes
    Local.me = Local()
    return Local


def ring(n, order=None):
    nodes = [Peer(f"n{i}") for i in range(n)]
    for i in (order or range(n)):
        nodes[i].peers.add(nodes[(i + 1) % n])
        nodes[(i + 1) % n].peers.add(nodes[i])
    return nodes[0]


def clique(n, order=None):
    nodes = [Peer(f"n{i}") for i in range(n)]
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    for i, j in (order or pairs):
        nodes[i].peers.add(nodes[j])
    return set(nodes)


def test_every_kind_of_object_gives_the_python_tokens():
    objects = zoo()
    for i, obj in enumerate(objects):
        py, c = walks(obj)
        assert c == py, f"object {i} ({obj!r:.80}):\n  python {py[1][:300]!r}\n  c      {c[1][:300]!r}"
    py, c = walks(objects)  # all at once: back-references across objects
    assert c == py
    for obj in objects:
        if isinstance(obj, types.CoroutineType):
            obj.close()


def test_an_object_that_cannot_be_reduced_is_opaque_to_both_walks():
    obj = FailsToReduce()
    for walker in (_fingerprint._Hasher(), C.Walker()):
        with pytest.raises(_fingerprint.Opaque) as info:
            walker.h([1, {"k": obj}])
        assert info.value.obj is obj and info.value.reason == "no"


def test_a_plain_object_first_walked_without_its_dict_then_with_it():
    # CPython keeps a fresh instance's attributes outside a dict until something asks for one
    # (3.11 and 3.12: a values array, 3.13: values inline in the object): the C walk leaves such
    # objects to Python's pickling, which makes the dict.  The C walk goes first here: the
    # Python walk would make the dict itself.
    Plain().__reduce_ex__(4)  # copyreg caches Plain.__slotnames__: the C walk then reduces Plain objects itself
    for make in (Plain, lambda: [Plain(), Plain()], lambda: {"k": Plain(), "e": Empty()}):
        obj = make()
        w = C.Walker(keep_stream=True)
        w.h(obj)
        first = (w.digest(), w.stream())
        py, c = walks(obj)
        assert first == py == c
        assert walks(obj) == (py, c)


def test_a_name_assigned_through_frame_f_locals_makes_the_c_walk_fall_back():
    # A suspended generator's frame.f_locals keeps a name that is not one of its fast locals
    # (3.11 and 3.12: in the dict the frame keeps, 3.13: in the frame object's extra locals):
    # the Python walk sees it, the C walk reads only the fast locals, so it falls back.
    g = _gen(3)
    next(g)
    py, c = walks(g)
    assert c == py
    g.gi_frame.f_locals["extra"] = [1]
    with pytest.raises(_fingerprint.Fallback):
        C.Walker().h(g)
    world = types.SimpleNamespace(actors=[], globals_roots=[], view=g, invariants=[], liveness=[], constraints=[])
    digest, stream = _fingerprint.walk_stream(world, stream=True)
    assert (digest, stream) == _fingerprint.walk_stream(world, "python", stream=True)
    assert b"extra" in stream
    g.close()


def test_nesting_deeper_than_the_c_walk_goes_falls_back_to_python():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(30000)
    try:
        deep = []
        for _ in range(6000):
            deep = [deep]
        w = C.Walker()
        with pytest.raises(_fingerprint.Fallback):
            w.h(deep)
        h = _fingerprint._Hasher()
        h.h(deep)
        world = types.SimpleNamespace(actors=[], globals_roots=[], view=deep, invariants=[], liveness=[], constraints=[])
        assert _fingerprint.state_fingerprint(world) == _fingerprint.state_fingerprint(world, "python")
    finally:
        sys.setrecursionlimit(old)


@fc.model
def kinds():
    """A model whose state holds many kinds of objects, changing as it runs."""
    box = {"log": [], "seen": set(), "q": collections.deque(maxlen=3), "count": collections.Counter(),
           "by": collections.defaultdict(list), "color": Color.RED, "obj": Plain(), "hook": Hooked(0)}

    async def worker(i):
        it = iter(range(2))
        for k in it:
            v = await fc.choose([i, -i])
            box["log"].append((i, v))
            box["seen"].add(frozenset({i, k}))
            box["q"].append(v)
            box["count"][i] += 1
            box["by"][v].append(k)
            box["color"] = Color.BLUE if v < 0 else Color.RED
            box["obj"].a.append(v)
            box["hook"] = Hooked(v)

    for i in (1, 2):
        fc.spawn(worker, i)
    fc.invariant(lambda: len(box["log"]) <= 4)
    return box


@pytest.mark.parametrize("name", ["kinds", "die_hard", "tcommit", "two_phase", "philosophers", "peterson"])
def test_the_c_walk_gives_the_same_state_graph_as_the_python_walk(name, monkeypatch):
    from dining_philosophers import philosophers
    from models import die_hard, tcommit
    from mutex import peterson
    from two_phase import two_phase

    model = {"kinds": kinds, "die_hard": die_hard, "tcommit": tcommit, "two_phase": two_phase,
             "philosophers": philosophers, "peterson": peterson}[name]

    def graph():
        r = model.check(max_states=3000)
        return ({d["fingerprint"] for _, d in r.graph.nodes(data=True)}, r.stats.states, r.stats.transitions)

    c = graph()
    monkeypatch.setenv("FORKCHECK_PURE_PYTHON_WALK", "1")  # read by the root snapshot process at import
    py = graph()
    assert c == py
    assert c[1] > 3


def _every_state(model, limit):
    """The states of ``model`` (up to ``limit``), each a World rebuilt in this process by replaying its
    path; states are told apart by the C walk's fingerprint (the first walk of each state)."""
    from forkcheck._app.runtime import World

    def replay(path):
        world = World()
        world.setup(model.fn, model.args, model.kwargs)
        for i in path:
            world.execute(i)
        return world

    if isinstance(model, fc.ModelFactory):  # @fc.model without arguments
        model = model()
    seen, frontier = set(), [()]
    while frontier and len(seen) < limit:
        path = frontier.pop(0)
        world = replay(path)
        digest = _fingerprint.state_fingerprint(world, "c")
        if digest not in seen:
            seen.add(digest)
            yield world
            if world.model_error is None:
                frontier.extend(path + (i,) for i in range(len(world.enabled())))
        for actor in world.actors:
            if actor.coro is not None and not actor.done:
                actor.coro.close()


@pytest.mark.parametrize("name", ["kinds", "die_hard", "tcommit", "two_phase", "philosophers", "peterson"])
def test_the_c_walk_reads_every_state_itself_and_gives_the_python_tokens(name, monkeypatch):
    # The state-graph test above goes through snapshots, where a Fallback would silently hand a
    # state to the Python walk: here the C walk must read every state itself ("c" raises
    # Fallback), before and after the Python walk (which leaves frame objects and, before 3.13,
    # f_locals dicts in the generators' frames).
    from dining_philosophers import philosophers
    from models import die_hard, tcommit
    from mutex import peterson
    from two_phase import two_phase

    from forkcheck._app import runtime

    model = {"kinds": kinds, "die_hard": die_hard, "tcommit": tcommit, "two_phase": two_phase,
             "philosophers": philosophers, "peterson": peterson}[name]
    monkeypatch.setattr(runtime, "_WORLD", None)  # World.setup makes its world current: none after the test
    n = 0
    for world in _every_state(model, limit=150):
        before = _fingerprint.walk_stream(world, "c", stream=True)
        py = _fingerprint.walk_stream(world, "python", stream=True)
        after = _fingerprint.walk_stream(world, "c", stream=True)
        assert before == py == after, f"state {n}:\n  python {py[1][:300]!r}\n  c      {before[1][:300]!r}"
        n += 1
    assert n > 3


class _HookingMeta(type):
    def __getattr__(cls, name):
        if name == "__fc_state__":
            return lambda self: ("from the metaclass", 1)
        raise AttributeError(name)


class ViaMeta(metaclass=_HookingMeta):
    pass


def test_a_hook_given_by_a_metaclass_getattr_is_used_by_both_walks():
    py, c = walks(ViaMeta())
    assert c == py
    assert b"from the metaclass" in py[1]
