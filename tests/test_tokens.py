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
from test_fingerprint import ATOMS, walks

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
