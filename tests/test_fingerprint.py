"""The default fingerprint: sound (never merges observable differences) and precise (equal states meet).

Both walks are checked: every ``fp()`` below runs the Python walk and the C
walk (``_cfingerprint.c``) and asserts they emit the same tokens.
"""

import collections

import forkcheck as fc
from forkcheck._app import fingerprint as _fingerprint
from forkcheck._app.fingerprint import _Hasher


def walks(obj) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes] | None]:
    """(digest, token stream) of the Python walk and of the C walk (None when it is not built)."""
    h = _Hasher()
    h.stream_parts = []
    h.h(obj)
    py = (h.digest(), b"".join(h.stream_parts))
    if _fingerprint._cfingerprint is None:
        return py, None
    w = _fingerprint._cfingerprint.Walker(keep_stream=True)
    w.h(obj)
    return py, (w.digest(), w.stream())


def fp(obj):
    py, c = walks(obj)
    if c is not None:
        assert c == py, f"the C walk differs from the Python walk:\n  python {py[1][:400]!r}\n  c      {c[1][:400]!r}"
    return py[0]


def test_sets_compare_regardless_of_insertion_order_and_dicts_by_it():
    assert fp({3, 1, 2}) == fp({2, 3, 1})
    assert fp(frozenset("abc")) == fp(frozenset("cba"))
    # a program sees a dict's order (iteration, next(iter(d)), popitem): it is state
    assert fp({"x": 1, "y": 2}) != fp({"y": 2, "x": 1})
    assert fp({"x": 1, "y": 2}) == fp(dict(x=1, y=2))
    assert fp(collections.Counter("ab")) != fp(collections.Counter("ba"))


def test_identity_structure_is_observable():
    shared = [1]
    assert fp([shared, shared]) != fp([[1], [1]])
    assert fp([[1], [1]]) == fp([[1], [1]])


def test_values_and_types_are_distinguished():
    assert fp(1) != fp(1.0) != fp(True)
    assert fp("1") != fp(1)
    assert fp((1, 2)) != fp([1, 2])
    assert fp(b"a") != fp("a")


def test_hidden_iterator_position_is_state():
    items = [1, 2, 3]
    it1, it2 = iter(items), iter(items)
    next(it2)
    assert fp(it1) != fp(it2)
    next(it1)
    assert fp(it1) == fp(it2)


def test_objects_without_dict_and_with_slots():
    class P:
        __slots__ = ("x",)

        def __init__(self, x):
            self.x = x

    assert fp(P(1)) == fp(P(1))
    assert fp(P(1)) != fp(P(2))
    d1, d2 = collections.deque([1, 2], maxlen=5), collections.deque([1, 2], maxlen=6)
    assert fp(d1) != fp(d2)


def test_generator_state_is_state():
    def gen():
        yield 1
        yield 2

    g1, g2 = gen(), gen()
    assert fp(g1) == fp(g2)
    next(g1)
    assert fp(g1) != fp(g2)
    next(g2)
    assert fp(g1) == fp(g2)


def test_independent_steps_in_either_order_meet_in_one_state():
    @fc.model
    def m(container):
        seen = container()

        async def a():
            await fc.checkpoint()
            seen.add("a") if isinstance(seen, set) else seen.update(a=1)

        async def b():
            await fc.checkpoint()
            seen.add("b") if isinstance(seen, set) else seen.update(b=1)

        fc.spawn(a)
        fc.spawn(b)
        return seen

    assert m(set).check().stats.states == 4  # the diamond closes: {a, b} added in either order is one set
    # a dict remembers which key came first, and a program can see it: the diamond stays open
    assert m(dict).check().stats.states == 5


def test_for_loop_iterator_on_the_stack_distinguishes_states():
    @fc.model
    def m():
        async def a():
            for _ in [1, 1, 1]:
                await fc.checkpoint()

        fc.spawn(a)

    # Same line, same locals, but the iterator's position differs: 4 states, not 2.
    assert m.check().stats.states == 4


def test_locals_are_state():
    @fc.model
    def m():
        async def a():
            x = await fc.choose([1, 2])
            await fc.checkpoint()
            del x

        fc.spawn(a)

    assert m.check().stats.states == 4  # initial, x=1, x=2, done


def test_module_globals_are_state():
    r = globals_model.check()
    assert r.stats.states == 3


COUNTER = {"n": 0}


@fc.model
def globals_model():
    # Only the global changes between the loop's visits to the same await.
    async def a():
        while COUNTER["n"] < 2:
            await fc.checkpoint()
            COUNTER["n"] += 1

    fc.spawn(a)


def test_aliasing_difference_in_the_model_is_kept_apart():
    @fc.model
    def m():
        box = {"a": [], "b": []}

        async def a():
            if await fc.choose(["alias", "copy"]) == "alias":
                box["b"] = box["a"]
            else:
                box["b"] = []
            await fc.checkpoint()

        fc.spawn(a)
        return box

    r = m.check(strategy="bfs")
    assert r.stats.states == 5  # the two choices lead to different states although the dicts are ==


class Peer:
    """Knows its peers through a set and hashes by name: objects that reach each other through sets."""

    def __init__(self, name):
        self.name = name
        self.peers = set()

    def __hash__(self):
        return hash(self.name)


def _linked(n, pairs):
    nodes = [Peer(f"n{i}") for i in range(n)]
    for i, j in pairs:
        nodes[i].peers.add(nodes[j])
    return nodes


def test_cycles_through_sets_are_walked_and_canonical():
    import itertools
    import random

    rng = random.Random(7)
    for n in range(2, 7):
        ring = [(i, (i + 1) % n) for i in range(n)] + [((i + 1) % n, i) for i in range(n)]
        clique = [(i, j) for i in range(n) for j in range(n) if i != j]
        for pairs in (ring, clique):
            first = fp(_linked(n, pairs)[0])
            for _ in range(4):  # the same graph, its sets filled in other orders
                shuffled = list(pairs)
                rng.shuffle(shuffled)
                assert fp(_linked(n, shuffled)[0]) == first
            # a root set of all the nodes, built in other orders, too
            assert fp(set(_linked(n, pairs))) == fp(set(reversed(_linked(n, list(reversed(pairs))))))
    # and what differs is seen: a name deep in a clique, an edge of a ring
    nodes = _linked(5, [(i, j) for i, j in itertools.permutations(range(5), 2)])
    before = fp(nodes[0])
    nodes[3].name += "!"
    assert fp(nodes[0]) != before
    ring = _linked(5, [(i, (i + 1) % 5) for i in range(5)])
    before = fp(ring[0])
    ring[2].peers.discard(ring[3])
    ring[2].peers.add(ring[4])
    assert fp(ring[0]) != before


def test_sets_of_objects_keep_identity_structure():
    a1, a2 = Peer("a"), Peer("a")
    # two equal-looking peers, one of them also named elsewhere: which one matters
    s = {a1, a2}
    assert fp([s, a1]) == fp([s, a1])
    assert fp([{a1}, a1]) != fp([{a1}, a2])


def test_a_state_function_found_on_a_base_class_does_not_hide_the_subclass_state():
    import sqlite3
    import weakref

    class A:
        pass

    a = A()
    # weakref.KeyedRef keeps its key in a slot; the weakref function knows only the referent
    assert fp(weakref.KeyedRef(a, None, "one")) != fp(weakref.KeyedRef(a, None, "two"))

    class Conn(sqlite3.Connection):
        pass

    c1, c2 = sqlite3.connect(":memory:", factory=Conn), sqlite3.connect(":memory:", factory=Conn)
    c1.tag, c2.tag = 1, 2
    assert fp(c1) != fp(c2)
    c2.tag = 1
    assert fp(c1) == fp(c2)

    class Told(sqlite3.Connection):  # a class that says what its state is: its own word wins
        def __fc_state__(self):
            return ("told", self.n)

    t1, t2 = sqlite3.connect(":memory:", factory=Told), sqlite3.connect(":memory:", factory=Told)
    t1.n, t2.n = 1, 1
    t2.execute("create table x (y)")  # left out of its own state, so the two are one
    assert fp(t1) == fp(t2)


# --------------------------------------------------------------------------- the binary token stream

def _nan(payload: int) -> float:
    import struct

    return struct.unpack("<d", (0x7FF8000000000000 | payload).to_bytes(8, "little"))[0]


#: Atoms that a text token could confuse (a bytes value spelling a bool, a str spelling a tag,
#: separators and tags inside values) and the edges of each encoding (sign bytes, NaN payloads,
#: negative zeros, lone surrogates).
ATOMS = [None, True, False, 0, 1, -1, 127, 128, -128, -129, 255, 256, 2 ** 63 - 1, -2 ** 63, 2 ** 64, -(2 ** 100),
         0.0, -0.0, 1.0, float("inf"), float("-inf"), float("nan"), _nan(1), -float("nan"), 5e-324, 1e308,
         0j, -0j, complex(0.0, -0.0), complex(float("nan"), 1), complex(_nan(7), 1), complex(1, 2),
         "", "a", "True", "é", "\ud800", "\x1f", "\x04a", "a" * 200,
         b"", b"\x00", b"True", b"\x04a", b"a" * 200, bytearray(), bytearray(b"\x00"), bytearray(b"True")]


def _old_text(o) -> str:
    """The token the text stream hashed for an atom before the binary stream (for the equivalence)."""
    if type(o) is bytearray:
        return f"B{bytes(o)!r}"
    return f"{type(o).__name__[0]}{o!r}"


def test_binary_atom_tokens_keep_the_equivalence_of_the_text_tokens():
    # Exactly today's merges: two atoms give one token where their repr tokens were equal
    # (every NaN is "nan"), and two tokens wherever those differed (-0.0, bytes spelling a bool).
    digests = [fp([o]) for o in ATOMS]
    for i, a in enumerate(ATOMS):
        for j, b in enumerate(ATOMS):
            same_text = _old_text(a) == _old_text(b)
            assert (digests[i] == digests[j]) == same_text, (a, b)


def test_an_atom_token_is_its_bytes_not_its_repr():
    # A buffer costs its length in the stream (plus tag and length), not four characters a byte.
    blob = bytes(range(256)) * 16
    for value in (blob, bytearray(blob)):
        stream = walks(value)[0][1]
        assert blob in stream and len(stream) < len(blob) + 8


def test_the_stream_parses_back_into_its_tokens():
    # Each token is followed by its length (fingerprint._trailer): read from the end, the
    # stream splits into exactly the tokens the walk emitted, whatever bytes they hold.
    value = [b"\x1f\x7f\x80" * 100, "x" * 300, {"k": (1, -2.5)}, bytearray(b"\xff" * 20000)]
    stream = walks(value)[0][1]
    tokens = []
    end = len(stream)
    while end:
        i = end - 1
        n, shift = 0, 0
        while stream[i] & 0x80:
            n |= (stream[i] & 0x7F) << shift
            shift += 7
            i -= 1
        n |= stream[i] << shift
        tokens.append(stream[i - n:i])
        end = i - n
    tokens.reverse()
    assert tokens[0] == b"[4" and tokens[1] == b"\x05" + b"\x1f\x7f\x80" * 100
    assert tokens[2] == b"\x04" + b"x" * 300 and tokens[-1] == b"\x06" + b"\xff" * 20000
    assert b"".join(t + _fingerprint._trailer(len(t)) for t in tokens) == stream
