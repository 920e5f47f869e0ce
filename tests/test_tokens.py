"""The binary token stream of the fingerprint walks, on random nested values.

The C walk and the Python walk must write the same tokens for every value
(test_cfingerprint.py checks them object by object and state by state); here
hypothesis draws nested containers of atoms of every encoding, with the same
mutable objects reached more than once.  (A file of its own: the module
globals of test_cfingerprint.py are the state of its models.)
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forkcheck._app import fingerprint as _fingerprint
from test_fingerprint import ATOMS, fp, walks

if _fingerprint._cfingerprint is None:
    pytest.skip("the C walk is not built for this Python: nothing to compare the Python walk with",
                allow_module_level=True)

_hashable = st.recursive(
    st.sampled_from([a for a in ATOMS if type(a) is not bytearray]) | st.integers() | st.floats() | st.text(max_size=5)
    | st.binary(max_size=300),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
    max_leaves=12,
)
_values = st.recursive(
    _hashable | st.binary(max_size=40).map(bytearray),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_hashable, inner, max_size=4)
    | st.sets(_hashable, max_size=4) | st.tuples(inner, inner),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values, st.lists(st.integers(0, 30), max_size=4))
def test_random_nested_values_give_the_python_tokens(value, aliases):
    # Atoms of every encoding inside every container, canonical keys of tuples and frozensets
    # (shallow keys) in sets, and the same mutable objects reached twice (back-references).
    mutable = [value]
    stack = [value]
    while stack:
        o = stack.pop()
        children = list(o.values()) if type(o) is dict else list(o) if type(o) in (list, tuple) else []
        for x in children:
            if type(x) in (list, dict, bytearray):
                mutable.append(x)
            stack.append(x)
    state = [value] + [mutable[i % len(mutable)] for i in aliases]
    py, c = walks(state)
    assert c == py


@pytest.mark.parametrize("sizes", [(10, 70_000, 3), (65_530, 5, 20_000, 1), (200_000,), (16_383, 16_385, 16_384)])
def test_a_walk_that_hashes_as_it_goes_gives_the_digest_of_the_whole_stream(sizes):
    # The C walk gives its buffer to the hash every 64 KiB and hashes big buffers where they
    # lie, unless it keeps its stream: the digest must be that of the whole stream regardless.
    value = []
    for i, n in enumerate(sizes):
        value.append(bytes([i]) * n)
        value.append(bytearray(b"x" * (n // 3)))
        value.append([j for j in range(n // 50)])
    value.append([bytearray(1000) for _ in range(3 * _fingerprint._UNIT)])  # units of more than 64 KiB
    py, kept = walks(value)
    assert kept == py
    w = _fingerprint._cfingerprint.Walker()
    w.h(value)
    assert w.digest() == py[0] == w.digest()
    with pytest.raises(RuntimeError, match="keep_stream=True"):
        w.stream()


def test_every_bytes_like_object_costs_its_bytes_in_the_stream():
    # bytes and bytearray are atoms' tokens; array.array and memoryview reach their bytes through
    # their reductions (a memoryview: the object it views, then the bytes of its view).  None of
    # them costs four characters of repr a byte any more.
    import array

    n = 65536
    buf = bytearray(range(256)) * (n // 256)
    for value, copies in ((bytes(buf), 1), (buf, 1), (array.array("B", buf), 1), (array.array("d", bytes(buf)), 1),
                          (memoryview(buf), 2)):
        py, c = walks(value)
        assert c == py
        assert copies * n <= len(py[1]) < copies * n + 1024, type(value)


# --------------------------------------------------------------------------- units of long lists

_UNIT = _fingerprint._UNIT


def _big(n: int, seed: int) -> list:
    import random

    rng = random.Random(seed)
    return [rng.choice([lambda: bytearray(rng.randbytes(rng.randint(0, 9))), lambda: [i, str(i)],
                        lambda: rng.randint(-9, 9), lambda: (i, b"t")])() for i in range(n)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(_UNIT - 2, 3 * _UNIT * _UNIT), st.integers(0, 2 ** 32),
       st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 10 ** 6)), max_size=4), st.booleans())
def test_long_lists_in_units_give_the_python_tokens(n, seed, aliases, cycle):
    # Units whose references stay inside them are replaced by their digests; a back-reference
    # to an object before a unit (an alias across units, the list itself) keeps it inline.
    value = _big(n, seed)
    for a, b in aliases:
        if n:
            value[b % n] = value[a % n]
    if cycle:
        value.append(value)
    py, c = walks([value, value[:3]])
    assert c == py


def test_a_unit_reads_the_same_wherever_it_stands():
    # Back-references are distances: the same long list after other objects gives the same
    # digests for its units, and so the state's stream holds them unchanged.
    value = _big(5 * _UNIT, 1)
    alone = walks(value)[0][1]
    after = walks([[[]] * 0, {"x": [1]}, value])[0][1]
    units = [alone[i:i + 17] for i in range(len(alone)) if alone[i] == 7 and alone[i + 17:i + 18] == b"\x11"]
    assert len(units) == 5
    for u in units:
        assert u in after


def test_units_keep_every_difference_a_long_list_makes():
    # The digest of a unit stands for its tokens: any item changed, aliased or un-aliased, moved
    # or added, at any depth and in any unit, gives another fingerprint; equal lists, one.
    n = 3 * _UNIT * _UNIT + 5
    base = _big(n, 2)
    reference = fp([base])
    assert fp([_big(n, 2)]) == reference
    variants = []
    for i in (0, _UNIT - 1, _UNIT, _UNIT * _UNIT, n - 1):
        v = _big(n, 2)
        v[i] = "changed"
        variants.append(v)
        v = _big(n, 2)
        v[i] = v[(i + 1) % n]  # an alias: one object twice
        variants.append(v)
        v = _big(n, 2)
        if isinstance(v[i], list):
            v[i].append(0)  # two levels down
        else:
            v[i] = [v[i]]
        variants.append(v)
    v = _big(n, 2)
    v.append(None)
    variants.append(v)
    digests = [fp([v]) for v in variants]
    assert reference not in digests and len(set(digests)) == len(digests)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(_UNIT - 2, 2 * _UNIT * _UNIT), st.integers(0, 2 ** 32), st.lists(st.integers(0, 10 ** 6), max_size=5),
       st.booleans())
def test_long_dicts_in_units_give_the_python_tokens(n, seed, deleted, cycle):
    # A dict's entries in units too, in insertion order; deleted entries (holes in its table)
    # and a split table (an instance's) are walked alike.
    items = _big(n, seed)
    d = {f"k{i}": v for i, v in enumerate(items)}
    for j in deleted:
        if d:
            d.pop(f"k{j % n}", None)
    d["last"] = d
    if cycle:
        d["again"] = items
    py, c = walks([d, items[:2]])
    assert c == py
