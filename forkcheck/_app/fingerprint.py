"""State fingerprints: a canonical hash of everything the program can observe.

Runs inside the snapshot process.  The walk starts from every actor (its frame
chain: code position, locals, cells, evaluation stack), the globals of the
modules that define the model, and the view returned by setup.  Rules (see
docs/design.md, "Fingerprints"):

* the roots are the actors, the model's module globals, the view and the
  predicates of declared properties (what their closures reach);
* immutable atoms (None, bool, int, float, complex, str, bytes) and tuples and
  frozensets of them compare by value;
* mutable objects carry identity: the first visit numbers the object, later
  visits emit a back-reference, so two names for one list differ from two
  equal lists;
* dicts are walked in insertion order (a program sees it); sets and
  frozensets are canonical regardless of it (their order is arbitrary in
  Python, and changes with the hash seed);
* hidden state is reached through ``__reduce_ex__`` (iterators expose their
  position) and through the frames of generators and coroutines;
* objects may define ``__fc_state__()`` to say what their state is, and
  :func:`register_state` gives a type from elsewhere a function that does;
  common standard-library types that cannot be pickled come with one
  (``_reducers.py``);
* an object whose state the walk cannot see (it cannot be reduced, nor has a
  registered function) is never hashed by identity: :class:`Opaque` is raised,
  and the snapshot reports an :class:`~forkcheck.OpaqueStateError` naming the
  object's type and where the state holds it, or, with ``opaque="distinct"``,
  the state gets a fingerprint of its own path (it is never merged).

Two walks emit the same tokens: the C walk of ``_cfingerprint.c`` (CPython
3.11 to 3.13, built when the package is installed), which reads the state
without writing it, and the Python walk below, which every read of an object
makes write its reference count, and so copy its page in a forked snapshot.  The C
walk raises :class:`Fallback` for whatever it cannot reproduce exactly, and the
Python walk takes over.  ``FORKCHECK_PURE_PYTHON_WALK=1`` in the environment
forces the Python walk.
"""

from __future__ import annotations

import collections
import copyreg
import enum
import gc
import os
import struct
import types
from typing import Any, Callable

from .symmetry import SymmetricValue, holds_value, leaked_name

_ATOMS = (type(None), bool, int, float, complex, str, bytes)
_BATCH = 64
_UNIT = 64  # items of a list per unit, and units per unit above (the C walk's UNIT)
_NO_REF = 1 << 62

try:  # _blake2 directly: hashlib would also load OpenSSL, more mappings in every snapshot to fork
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - a Python built without _blake2
    from hashlib import blake2b as _blake2b
_SKIP_GLOBAL_TYPES = (types.ModuleType,)


class Fallback(Exception):
    """Raised by the C walk for a state only the Python walk reproduces exactly."""


class Opaque(Exception):
    """The state holds ``obj``, whose state the walk cannot see (``reason`` says why)."""

    def __init__(self, obj: Any, reason: str | BaseException) -> None:
        if isinstance(reason, BaseException):  # why __reduce_ex__ failed
            reason = _one_line(reason)
        super().__init__(reason)
        self.obj = obj
        self.reason = reason


class SymmetryLeak(Exception):
    """Under symmetry, the state holds the string ``obj``, which names the symmetric value ``name``."""

    def __init__(self, obj: str, name: str) -> None:
        super().__init__(name)
        self.obj = obj
        self.name = name


# --------------------------------------------------------------------------- the hashes of signatures

_M64 = (1 << 64) - 1


def fnv64(data: bytes) -> int:
    """FNV-1a, 64 bits: how a key enters a signature context (the C walk computes the same)."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & _M64
    return h


def mix(a: int, b: int) -> int:
    """Two 64-bit numbers into one (splitmix64's finaliser): the steps of a signature context."""
    z = (a * 0x9E3779B97F4A7C15 + b) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class Unordered:
    """Marks a list whose order does not matter (a multiset) for the hasher."""

    __slots__ = ("items",)

    def __init__(self, items) -> None:
        self.items = list(items)


# --------------------------------------------------------------------------- the token stream

def _trailer(n: int) -> bytes:
    """What follows a token of ``n`` bytes: ``n`` in base 128, most significant group first.

    The first byte has its high bit clear, the others set, so the stream parses
    back into its tokens from its end, whatever bytes a token holds: a binary
    atom needs neither escaping nor a separator.  (The C walk's ``close_tok``.)
    """
    groups = [n & 0x7F]
    n >>= 7
    while n:
        groups.append(n & 0x7F)
        n >>= 7
    groups.reverse()
    return bytes([groups[0]] + [g | 0x80 for g in groups[1:]])


_TRAILERS = [bytes((n,)) for n in range(128)]


def _framed(token: bytes) -> bytes:
    n = len(token)
    return token + (_TRAILERS[n] if n < 128 else _trailer(n))


def _text_framed(token: str | bytes) -> bytes:
    return _framed(token.encode("utf-8", "surrogatepass") if isinstance(token, str) else token)


_pack_d = struct.Struct("<d").pack
_NAN = (0x7FF8000000000000).to_bytes(8, "little")  # every NaN: repr() wrote "nan" for all of them


def _double(x: float) -> bytes:
    return _pack_d(x) if x == x else _NAN


# The atoms' tokens: a tag byte that no text token starts with, then the value's bytes, with the
# equivalence of the repr() the walk hashed before (ints in two's complement, floats as IEEE
# doubles, str as UTF-8 with lone surrogates passed through, bytes as they are); None and bools
# keep their text.  Hashing a buffer costs its bytes, not four characters of repr per byte.
_ATOM_TOKEN: dict[type, Callable[[Any], Any]] = {
    type(None): lambda o: "NNone",
    bool: lambda o: "bTrue" if o else "bFalse",
    int: lambda o: b"\x01" + o.to_bytes((o.bit_length() + 8) >> 3, "little", signed=True),
    float: lambda o: b"\x02" + _double(o),
    complex: lambda o: b"\x03" + _double(o.real) + _double(o.imag),
    str: lambda o: b"\x04" + o.encode("utf-8", "surrogatepass"),
    bytes: lambda o: b"\x05" + o,
    bytearray: lambda o: b"\x06" + bytes(o),
}


def _atom_token(o: Any) -> str | bytes:
    """The token of an atom (a type in ``_ATOMS``, or a bytearray's content)."""
    return _ATOM_TOKEN[type(o)](o)


class _Hasher:
    """The walk's output: tokens, each followed by its length (:func:`_trailer`), hashed.

    A token is a ``str`` (structure and names, hashed as UTF-8) or ``bytes``
    (an atom's binary token).  Tokens go to the hash function in batches of
    about ``_BATCH``, so that a big state does not keep all its tokens alive
    at once; the digest is that of the whole stream.
    """

    __slots__ = ("out", "memo", "keep", "hash", "stream_parts", "key_mode", "labels", "names", "sym",
                 "track", "ctx", "base", "nflushed", "sigs", "frames", "units_on", "open_units", "minref")

    def __init__(self, key_mode: bool = False, labels: tuple | None = None, names: tuple = (), sym: bool = False,
                 track: bool = False) -> None:
        self.out: list[str | bytes] = []
        self.memo: dict[int, int] = {}
        self.keep: list = []  # keeps visited objects alive so ids stay unique during the walk
        self.hash = _blake2b(digest_size=16)
        self.stream_parts: list[bytes] | None = None  # a list when a test asks for the stream
        # The walk of a canonical key (canonical_key): it orders the unordered containers it
        # meets by shallow keys, so that a key never needs the key of another object.
        self.key_mode = key_mode
        # Symmetry (symmetry.py, docs/symmetry.md).  ``labels``: the token of each symmetric value by its
        # number _k (None: the value's own name); ``names``: the ((set name, n), ...) that no string of the
        # state may name; ``sym``: dicts keyed by values are walked in key order; ``track``: the walk
        # records, for each value, the contexts it occurs in (its signature, see signatures()).
        self.labels = labels
        self.names = names
        self.sym = sym
        self.track = track
        self.ctx = 0  # the context of the innermost frame (a memoized object, an element of an unordered one)
        self.base = 0  # the number of the frame's first token
        self.nflushed = 0  # tokens flushed so far: with len(out), the number of the next token
        self.sigs: list[list[int]] | None = [[] for _ in labels] if track and labels is not None else None
        self.frames: list[tuple[int, int]] = []
        # Units (docs/design.md, "Units"): the chunks of a long list, each hashed on its own when no
        # reference inside it leads out of it.  Not in keys nor under symmetry, whose signatures
        # count tokens.
        self.units_on = not key_mode and labels is None and not names and not sym
        self.open_units = 0
        self.minref = _NO_REF  # the lowest number a back-reference inside the open units named

    def backref(self, i: int) -> None:
        """A later visit of the object numbered ``i``: its distance back from the next number.

        A distance, not the number: inside a unit whose references all stay inside it, the
        tokens do not depend on how many objects came before the unit.
        """
        if i < self.minref:
            self.minref = i
        self.out.append(f"@{len(self.memo) - i}")

    def units(self, o: list, lo: int, hi: int, pairs: bool = False) -> None:
        """Items ``lo`` to ``hi`` (more than ``_UNIT`` of them) of ``o``, as units of the largest
        power of ``_UNIT`` items below their number (the last one shorter).  ``pairs``: the
        items are a dict's (key, value) pairs."""
        span = _UNIT
        while span * _UNIT < hi - lo:
            span *= _UNIT
        for a in range(lo, hi, span):
            self.unit(o, a, min(a + span, hi), pairs)

    def unit(self, o: list, lo: int, hi: int, pairs: bool = False) -> None:
        """A unit: replaced by the digest of its tokens when no back-reference inside it names an
        object numbered before it (it reads the same wherever it stands in the state)."""
        out = self.out
        start = len(out)
        base = len(self.memo)
        outer = self.minref
        self.minref = _NO_REF
        self.open_units += 1
        if hi - lo > _UNIT:
            self.units(o, lo, hi, pairs)
        elif pairs:
            for i in range(lo, hi):
                k, v = o[i]
                self.h(k)
                self.h(v)
        else:
            for i in range(lo, hi):
                self.h(o[i])
        self.open_units -= 1
        inner = self.minref
        if inner >= base:
            parts = []
            for t in out[start:]:
                parts.append(_text_framed(t))
            digest = _blake2b(b"".join(parts), digest_size=16).digest()
            del out[start:]
            out.append(b"\x07" + digest)
        self.minref = inner if inner < outer else outer

    def child(self, key_mode: bool) -> _Hasher:
        """A walker of its own (a key, a subkey) that names the values as this one does."""
        return _Hasher(key_mode, self.labels, self.names, self.sym)

    def flush(self) -> None:
        parts: list[bytes] = []
        trailers = _TRAILERS
        for t in self.out:
            b = t.encode("utf-8", "surrogatepass") if isinstance(t, str) else t
            parts.append(b)
            n = len(b)
            parts.append(trailers[n] if n < 128 else _trailer(n))
        data = b"".join(parts)
        self.hash.update(data)
        if self.stream_parts is not None:
            self.stream_parts.append(data)
        self.nflushed += len(self.out)
        self.out.clear()

    def emit(self, token: str) -> None:
        self.out.append(token)

    def globals(self, g: dict) -> None:
        out = self.out
        for name, v in _global_items(g):
            out.append(name)
            self.h(v)

    def digest(self) -> bytes:
        self.flush()
        return self.hash.digest()

    # -- symmetry: canonical keys with this walk's labels, subkeys, signature contexts

    def key(self, obj: Any) -> bytes:
        """canonical_key(obj) with this walk's names of the symmetric values."""
        return canonical_key(obj, self)

    def actor(self, key: bytes, coro: Any) -> None:
        """The signature contexts of an actor keyed ``key`` (its identity and status) running ``coro``.

        A walk of ``coro`` of its own, that knows the objects this walk has
        numbered so far (the shared state, walked first: references with their
        numbers; new objects numbered after them), records the contexts of the
        values it meets; each is then tied to the digest of that walk, which
        stands for what the actor holds.  Every actor is walked alike, whatever
        the order of the others, so tied actors give their values alike
        contexts.
        """
        sub = _Hasher(False, self.labels, self.names, self.sym, True)
        sub.memo = dict(self.memo)
        sub.keep = self.keep
        sub.ctx = mix(4, fnv64(key))
        sub.h(coro)
        tag = fnv64(sub.digest())
        sigs = self.sigs
        assert sigs is not None  # only while signatures are computed
        for k, contexts in enumerate(sub.sigs or ()):
            for c in contexts:
                sigs[k].append(mix(tag, c))

    def signatures(self) -> list[int]:
        """Per symmetric value (by _k): the contexts it occurred in, sorted and folded into one number."""
        out = []
        for contexts in self.sigs or ():
            contexts.sort()
            acc = 0
            for c in contexts:
                acc = mix(acc, c)
            out.append(acc)
        return out

    def value(self, o: Any) -> None:
        """A symmetric value: its label (its canonical name, or its own), and under track its context."""
        labels = self.labels
        if self.sigs is not None:
            self.sigs[o._k].append(mix(mix(5, self.ctx), self.nflushed + len(self.out) - self.base))
        self.out.append(o._tok if labels is None else labels[o._k])

    def unordered(self, tag: str, items) -> None:
        if self.key_mode:
            # Inside a key: the elements' shallow keys, sorted, stand for the container (no walk of
            # the elements, so that keys of objects that know each other through sets terminate).
            keys = []
            for x in items:
                keys.append(shallow_key(x, self.labels))
            keys.sort()
            self.out.append(f"{tag}{len(keys)}")
            self.out.extend(keys)
            return
        keyed = sorted(((canonical_key(x, self), i) for i, x in enumerate(items)))
        self.out.append(f"{tag}{len(keyed)}")
        items = list(items)
        if self.sigs is None:
            for _, i in keyed:
                self.h(items[i])
            return
        outer, base = self.ctx, self.base
        head = mix(mix(2, outer), self.nflushed + len(self.out) - 1 - base)
        for key, i in keyed:
            self.ctx = mix(head, fnv64(key))
            self.base = self.nflushed + len(self.out)
            self.h(items[i])
        self.ctx, self.base = outer, base

    def symmetric_dict(self, o: dict) -> None:
        """A dict with a symmetric key (symmetry.holds_value): its entries in the order of their keys' keys.

        Its insertion order is an order among the values, which the model
        promises not to depend on.  Entries whose keys have equal keys (only
        while signatures are computed, where values go unnamed) are ordered
        by their values' keys, then as inserted.
        """
        items = list(o.items())
        n = len(items)
        kk = []
        for k, _ in items:
            kk.append(canonical_key(k, self))
        vk = [b""] * n
        track = self.sigs is not None
        if track:
            for i in range(n):
                vk[i] = canonical_key(items[i][1], self)
        else:
            count: dict[bytes, int] = {}
            for key in kk:
                count[key] = count.get(key, 0) + 1
            for i in range(n):
                if count[kk[i]] > 1:
                    vk[i] = canonical_key(items[i][1], self)
        order = sorted(range(n), key=lambda i: (kk[i], vk[i], i))
        out = self.out
        out.append(f"{{{type(o).__name__}{n}")
        if not track:
            for i in order:
                self.h(items[i][0])
                self.h(items[i][1])
            return
        outer, base = self.ctx, self.base
        head = mix(mix(3, outer), self.nflushed + len(out) - 1 - base)
        for i in order:
            self.ctx = mix(mix(head, fnv64(kk[i])), fnv64(vk[i]))
            self.base = self.nflushed + len(out)
            self.h(items[i][0])
            self.h(items[i][1])
        self.ctx, self.base = outer, base

    def h(self, o: Any) -> None:  # noqa: C901 - one dispatch, kept flat for speed
        out = self.out
        if len(out) >= _BATCH and not self.open_units:
            self.flush()
        t = type(o)
        if t in _ATOMS:
            if t is str and self.names:
                leak = leaked_name(o, self.names)
                if leak is not None:
                    raise SymmetryLeak(o, leak)
            out.append(_ATOM_TOKEN[t](o))
            return
        if t is SymmetricValue:
            self.value(o)
            return
        if t is tuple:
            out.append(f"({len(o)}")
            for x in o:
                self.h(x)
            return
        if t is frozenset:
            self.unordered("F", o)
            return
        if t is Unordered:
            self.unordered("U", o.items)
            return
        if t is type or isinstance(o, type):
            qualname = o.__qualname__
            out.append(f"T{o.__module__}.{qualname}")
            if "<locals>" in qualname and issubclass(t, type) and _TYPE_FLAGS(o) & _HEAPTYPE:
                self.local_class(o)
            return
        if t is types.ModuleType:
            out.append(f"M{o.__name__}")
            return
        if t is types.CodeType:
            # The file's base name, not its path: a token must replay after the model file moves.
            out.append(f"C{os.path.basename(o.co_filename)}:{o.co_qualname}:{o.co_firstlineno}")
            return
        if t is types.FrameType:
            out.append("f")  # frames are walked through their generator/coroutine
            return
        i = self.memo.get(id(o))
        if i is not None:
            self.backref(i)
            return
        self.memo[id(o)] = len(self.memo)
        self.keep.append(o)
        if self.sigs is None:
            self.mutable(o, t)
            return
        self.frames.append((self.ctx, self.base))
        self.ctx = mix(1, len(self.memo) - 1)
        self.base = self.nflushed + len(out)
        self.mutable(o, t)
        self.ctx, self.base = self.frames.pop()

    def mutable(self, o: Any, t: type) -> None:  # noqa: C901 - one dispatch, kept flat for speed
        """An object with identity, at its first visit (numbered already)."""
        out = self.out
        if t is list:
            n = len(o)
            out.append(f"[{n}")
            if n > _UNIT and self.units_on:
                self.units(o, 0, n)
            else:
                for x in o:
                    self.h(x)
        elif t is dict or t is collections.defaultdict or t is collections.Counter:
            if t is collections.defaultdict:
                self.h(o.default_factory)
            if self.sym:
                for k in o:
                    if holds_value(k):
                        self.symmetric_dict(o)
                        return
            # In insertion order: a program sees it (iteration, next(iter(d)), popitem), so two
            # dicts that differ only in it are different states.
            out.append(f"{{{t.__name__}{len(o)}")
            if len(o) > _UNIT and self.units_on:
                self.units(list(o.items()), 0, len(o), pairs=True)
                return
            for k, v in o.items():
                self.h(k)
                self.h(v)
        elif t is set:
            self.unordered("S", o)
        elif t is collections.deque:
            out.append(f"Q{o.maxlen}:{len(o)}")
            for x in o:
                self.h(x)
        elif t is bytearray:
            out.append(_atom_token(o))
        elif t is types.CoroutineType:
            self.frame(o, o.cr_code, o.cr_frame, o.cr_await)
        elif t is types.GeneratorType:
            self.frame(o, o.gi_code, o.gi_frame, o.gi_yieldfrom)
        elif t is types.AsyncGeneratorType:
            self.frame(o, o.ag_code, o.ag_frame, o.ag_await)
        elif t is types.FunctionType:
            self.h(o.__code__)
            self.h(o.__defaults__)
            self.h(o.__kwdefaults__)
            self.h(o.__closure__)
        elif t is types.CellType:
            try:
                v = o.cell_contents
            except ValueError:
                out.append("<empty>")
            else:
                self.h(v)
        elif t is types.MethodType:
            self.h(o.__func__)
            self.h(o.__self__)
        elif t is types.BuiltinFunctionType or t is types.BuiltinMethodType:
            out.append(f"b{o.__qualname__}")
            s = o.__self__
            if s is not None and type(s) is not types.ModuleType:
                self.h(s)
        elif isinstance(o, enum.Enum):
            out.append(f"E{t.__module__}.{t.__qualname__}.{o.name}")
        else:
            fn: Any = _REDUCER_CACHE.get(t, _MISSING)  # a reducer, None, or _MISSING when not looked up yet
            if fn is _MISSING:
                fn = resolve_reducer(t)
            if fn is not None:
                out.append(f"R{t.__module__}.{t.__qualname__}")
                state = fn(o)
                self.keep.append(state)
                self.h(state)
                return
            hook = getattr(t, "__fc_state__", None)
            if hook is not None:
                out.append(f"H{t.__qualname__}")
                self.h(hook(o))
            else:
                self.reduced(o, t)

    def local_class(self, cls: type) -> None:
        """A class made by the model's code (``<locals>`` in its name): its class attributes are state."""
        i = self.memo.get(id(cls))
        if i is not None:
            self.backref(i)
            return
        self.memo[id(cls)] = len(self.memo)
        self.keep.append(cls)
        attrs = class_attrs(cls)
        self.keep.append(attrs)
        self.h(attrs)

    def frame(self, gen, code, frame, awaited) -> None:
        self.h(code)
        if frame is None:
            self.out.append("<finished>")
            return
        self.out.append(f"L{frame.f_lasti}")
        loc = frame.f_locals
        self.out.append(f"l{len(loc)}")
        for name in sorted(loc):
            self.out.append(name)
            self.h(loc[name])
        # get_referents lists locals and the evaluation stack (for loop iterators ...).
        refs = [x for x in gc.get_referents(gen) if x is not loc and x is not code and type(x) is not types.FrameType]
        self.out.append(f"r{len(refs)}")
        for x in refs:
            self.h(x)
        self.h(awaited)

    def reduced(self, o, t) -> None:
        try:
            rv = o.__reduce_ex__(4)
        except Exception as exc:  # noqa: BLE001 - some C objects cannot be reduced
            # Never its identity instead: a fork keeps every address, so the state after a
            # transition would hash like the one before it whatever changed inside the object.
            raise Opaque(o, exc) from None
        if isinstance(rv, str):
            self.out.append(f"g{rv}")
            return
        fn = rv[0]
        args = rv[1] if len(rv) > 1 else ()
        if fn is copyreg.__newobj__ or getattr(fn, "__name__", "") == "__newobj__":  # type: ignore[attr-defined]  # not in typeshed
            self.out.append(f"N{t.__module__}.{t.__qualname__}")
            args = args[1:]
        else:
            self.h(fn)
        self.h(args)
        state = rv[2] if len(rv) > 2 else None
        self.h(state)
        if len(rv) > 3 and rv[3] is not None:
            self.out.append("li")
            for x in rv[3]:
                self.h(x)
        if len(rv) > 4 and rv[4] is not None:
            self.out.append("di")
            self.h(dict(rv[4]))


def canonical_key(obj: Any, parent: _Hasher | None = None) -> bytes:
    """A content hash of ``obj`` alone, used to order unordered containers.

    It is a walk of ``obj`` with a memo of its own, in which the unordered
    containers met are ordered by :func:`shallow_key`: a key never needs the
    key of another object, so objects that hold each other in sets (rings,
    cliques) have keys, and a key does not depend on insertion orders.  Any
    order of equal keys gives a sound fingerprint (the walk emits every
    element in full); keys only decide which equal states meet.

    ``parent``, the walk that asks, says how symmetric values are named (a
    value's key is its name there: ``b"y~rm3"``).
    """
    t = type(obj)
    if t is str:
        return b"s" + obj.encode("utf-8", "surrogatepass")
    if t is int or t is bool:
        return b"i" + str(obj).encode()
    if t is SymmetricValue:
        labels = None if parent is None else parent.labels
        return b"y" + (obj._tok if labels is None else labels[obj._k]).encode()
    h = _Hasher(key_mode=True) if parent is None else parent.child(True)
    h.h(obj)
    return h.digest()


def shallow_key(o: Any, labels: tuple | None = None) -> bytes:
    """The key of ``o`` inside a canonical key: its value for atoms (and tuples and frozensets
    of them), a symmetric value's name in ``labels``, its type's name for anything else; never
    a walk, so never a cycle.  It is the tokens a walk of that much writes, each followed by
    its length (:func:`_trailer`), as the C walk copies them from a walk of its own."""
    t = type(o)
    if t in _ATOMS:
        return _text_framed(_ATOM_TOKEN[t](o))
    if t is SymmetricValue:
        return _text_framed(o._tok if labels is None else labels[o._k])
    if t is tuple:
        parts = [_text_framed(f"({len(o)}")]
        for x in o:
            parts.append(shallow_key(x, labels))
        return b"".join(parts)
    if t is frozenset:
        parts = []
        for x in o:
            parts.append(shallow_key(x, labels))
        parts.sort()
        out = [_text_framed(f"F{len(o)}")]
        for k in parts:  # each element's key is one token of the frozenset's, as in unordered()
            out.append(_framed(k))
        return b"".join(out)
    if t is type or isinstance(o, type):
        return _text_framed(f"T{o.__module__}.{o.__qualname__}")
    if isinstance(o, enum.Enum):
        return _text_framed(f"E{t.__module__}.{t.__qualname__}.{o.name}")
    return _text_framed(f"t{t.__module__}.{t.__qualname__}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- the state of opaque types

_MISSING = object()
#: Functions registered with register_state, by type: what a model or a test added.
_USER_REDUCERS: dict[type, Callable[[Any], Any]] = {}
#: type -> the function that gives its state, or None: the resolved lookup, for every type met.
_REDUCER_CACHE: dict[type, Callable[[Any], Any] | None] = {}


def resolve_reducer(t: type) -> Callable[[Any], Any] | None:
    """The function that gives the state of instances of ``t``, or None: the walk reduces them.

    A function registered for ``t`` or its nearest base wins.  Then, unless
    the class says what its state is (``__fc_state__``): ``copyreg.dispatch_table``
    (how pickle reduces ``re.Pattern``, say), then the built-in table of
    ``reducers.py`` (looked up by type name, so that no module is imported to
    build it).  A function found on a base class sees only the base's state,
    so for a subclass the instance's own attributes (its ``__dict__`` and
    slots) are added to what it returns.  The answer is cached per type.
    """
    fn, found = None, t
    own_hook = getattr(t, "__fc_state__", None) is not None
    for base in t.__mro__:
        found = base
        fn = _USER_REDUCERS.get(base)
        if fn is not None or own_hook:
            break  # a class's own __fc_state__ gives way only to a registration
        fn = copyreg.dispatch_table.get(base)
        if fn is None and base is not object:
            fn = builtin_reducer(base)
        if fn is not None:
            break
    if fn is not None and found is not t:
        fn = _with_own_attributes(fn, t)
    _REDUCER_CACHE[t] = fn
    return fn


def _with_own_attributes(fn: Callable[[Any], Any], t: type) -> Callable[[Any], Any]:
    """``fn`` for instances of ``t``, a subclass of the class ``fn`` knows: plus their own attributes."""
    slots = tuple(copyreg._slotnames(t))  # type: ignore[attr-defined]  # what pickle uses, across the MRO

    def reducer(obj: Any) -> Any:
        filled = []  # (name, value) of the slots that hold a value
        for name in slots:
            try:
                filled.append((name, getattr(obj, name)))
            except AttributeError:
                pass
        return (fn(obj), getattr(obj, "__dict__", None), tuple(filled))

    return reducer


_WALKED_TYPES = (list, dict, set, frozenset, tuple, collections.deque, collections.defaultdict,
                 collections.Counter, bytearray, types.FunctionType, types.CodeType, types.ModuleType,
                 types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType, types.CellType,
                 types.MethodType, types.BuiltinFunctionType, type) + _ATOMS


def register_state(cls: type, fn: Callable[[Any], Any] | None) -> None:
    """Tell forkcheck what the state of instances of ``cls`` is: ``fn(obj)``.

    Use it for objects the fingerprint cannot see into (C types that cannot be
    pickled) or whose pickled form leaves out what their behaviour depends on,
    when the class is not yours to give a ``__fc_state__`` method.  ``fn``
    returns plain data (or objects forkcheck walks) that is equal for two
    objects exactly when they behave alike from now on: return *everything*
    their future depends on, since what ``fn`` leaves out, forkcheck cannot
    tell apart.  It applies to subclasses too, whose own attributes are added
    to what ``fn`` returns; ``fn=None`` removes it.

    Register before calling ``check()`` (the registry travels to the snapshot
    processes with the model), or in the model's setup function.

    Examples
    --------
    >>> import forkcheck as fc, zlib
    >>> class Box:                    # a class that cannot be pickled
    ...     def __init__(self): self.items = []
    ...     def __reduce_ex__(self, protocol): raise TypeError("no pickling")
    >>> fc.register_state(Box, lambda box: box.items)
    >>> @fc.model
    ... def boxes():
    ...     box = Box()
    ...     async def put():
    ...         for i in range(3):
    ...             await fc.checkpoint()
    ...             box.items.append(i)
    ...     fc.spawn(put)
    >>> boxes.check().stats.states
    4
    >>> fc.register_state(Box, None)
    """
    from .._errors import UsageError

    if not isinstance(cls, type):
        raise UsageError(f"fc.register_state() needs a class first, got {type(cls).__name__} {cls!r}: "
                         "write fc.register_state(TheClass, lambda obj: ...)")
    if cls in _WALKED_TYPES or cls is object:
        raise UsageError(f"fc.register_state({cls.__qualname__}, ...): forkcheck walks {cls.__qualname__} objects "
                         "itself; register a subclass, or give your own class a __fc_state__ method")
    if fn is None:
        _USER_REDUCERS.pop(cls, None)
    elif not callable(fn):
        raise UsageError(f"fc.register_state({cls.__qualname__}, ...) needs a function of one object, "
                         f"got {type(fn).__name__}: write fc.register_state({cls.__qualname__}, lambda obj: ...)")
    else:
        _USER_REDUCERS[cls] = fn
    _REDUCER_CACHE.clear()


def user_reducers() -> dict[type, Callable[[Any], Any]]:
    """The functions registered so far (sent to the snapshot processes with the model)."""
    return dict(_USER_REDUCERS)


def install_reducers(reducers: dict[type, Callable[[Any], Any]]) -> None:
    """In a new root interpreter: the explorer's registrations."""
    _USER_REDUCERS.update(reducers)
    _REDUCER_CACHE.clear()


def _global_items(g: dict):
    for name in sorted(g):
        if name.startswith("__") and name.endswith("__"):
            continue
        v = g[name]
        if isinstance(v, _SKIP_GLOBAL_TYPES):
            continue
        if isinstance(v, type) and v.__module__ == g.get("__name__"):
            # A class of the model's own module: its mutable class attributes are state.
            yield name, (v, class_attrs(v))
            continue
        yield name, v


_TYPE_FLAGS = type.__dict__["__flags__"].__get__  # a metaclass cannot answer for it
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: made by a class statement, not by C


def class_attrs(cls: type) -> dict:
    """The class attributes of ``cls`` that can be state: not dunders, methods or properties."""
    attrs = {}
    for k, a in vars(cls).items():
        if (k.startswith("__") and k.endswith("__")) or callable(a) or isinstance(a, (classmethod, staticmethod, property)):
            continue
        attrs[k] = a
    return attrs


def _walk(h, world) -> None:
    emit = h.emit
    emit(f"A{len(world.actors)}")
    for actor in world.actors:
        emit(f"{actor.name}|{int(actor.done)}{int(actor.failed)}{'d' if actor.daemon else ''}")
        if not actor.done and not actor.failed:
            h.h(actor.coro)
    _walk_shared(h, world)


def _walk_shared(h, world) -> None:
    """The roots besides the actors: the model's module globals, the view, the properties."""
    emit = h.emit
    for g in world.globals_roots:
        emit("G")
        h.globals(g)
    emit("V")
    h.h(world.view)
    # Properties observe the state through their closures: what only they can see is state too.
    emit("P")
    preds = []
    for _, pred in world.invariants:  # a loop: a comprehension would make a function object (pages copied)
        preds.append(pred)
    for _, pred in world.constraints:  # (none in most models: their fingerprints are unchanged)
        preds.append(pred)
    h.h(preds)
    h.h(world.liveness)


def _walk_symmetric(h, world, track: bool = False) -> None:
    """The walk of a world with symmetric values, under symmetry (docs/symmetry.md).

    The shared roots come first (globals, the view, the properties), so that
    an actor's own walk sees the shared state as references; then the
    actors as a multiset, ordered by the key of their identity
    (``Actor.ident``: the function and arguments they were spawned with,
    values renamed; names are unique, so are identities).  The actor list's
    order is the order in which the explorer numbers transitions, which the
    program does not see.  With ``track`` (signatures, values unnamed) each
    actor is walked on its own instead (``actor``).
    """
    emit = h.emit
    _walk_shared(h, world)
    actors = world.actors
    n = len(actors)
    keys = []
    for a in actors:
        keys.append(h.key(a.ident))
    status = []
    for a in actors:
        status.append(f"|{int(a.done)}{int(a.failed)}{'d' if a.daemon else ''}")
    if track:  # signatures: each actor on its own (Hasher.actor); the stream is not hashed
        for i in range(n):
            a = actors[i]
            h.actor(keys[i] + status[i].encode(), (a.ident, a.coro if not a.done and not a.failed else None))
        return
    order = sorted(range(n), key=lambda i: (keys[i], i))
    emit(f"A{n}")
    for i in order:
        a = actors[i]
        h.h(a.ident)
        emit(status[i])
        if not a.done and not a.failed:
            h.h(a.coro)


def canonical_labels(world, walker: Callable[..., Any]) -> tuple[str, ...]:
    """The canonical names of the world's symmetric values (by ``_k``).

    One walk with every value of a set unnamed (``~rm?``) records, for each
    value, the contexts it occurs in: the memoized object or the element of
    an unordered container (a set member, a dict entry keyed by values, an
    actor) around it, by number or key, and its place there.  Values sort by
    these signatures within their set (ties by position: tied values are
    usually interchangeable in this very state, and any order is sound), and
    are named ``~rm0``, ``~rm1``, ... in that order.  ``walker(labels, track)``
    makes the walker (C or Python).
    """
    values = world.symmetric_values
    anon = []
    for v in values:
        anon.append(f"~{v._set.name}?")
    w = walker(tuple(anon), True)
    _walk_symmetric(w, world, track=True)
    sigs = w.signatures()
    labels = [""] * len(values)
    for owner in world.symmetric:
        ks = []
        for v in owner:
            ks.append(v._k)
        ks.sort(key=lambda k: (sigs[k], k))
        for rank, k in enumerate(ks):
            labels[k] = f"~{owner.name}{rank}"
    return tuple(labels)


# Imported now, not at the first type met: a model may have used up its file descriptors by then.
from .reducers import builtin_reducer  # noqa: E402 - it needs Opaque, defined above

try:
    from . import _cfingerprint  # type: ignore[attr-defined]  # the C extension: no stub, and optional
except ImportError:  # not built: no C compiler at install time, or not CPython 3.11 to 3.13
    _cfingerprint = None
else:
    _cfingerprint.configure(Fallback, collections.deque, collections.defaultdict, collections.Counter,
                            Unordered, enum.Enum, copyreg.__newobj__, Opaque, _REDUCER_CACHE,  # type: ignore[attr-defined]
                            resolve_reducer)
    _cfingerprint.configure_symmetry(SymmetricValue, SymmetryLeak)

C_WALK = _cfingerprint is not None and os.environ.get("FORKCHECK_PURE_PYTHON_WALK", "") in ("", "0")


def state_fingerprint(world, walk: str = "auto") -> bytes:
    """The canonical fingerprint of a :class:`~forkcheck._app.runtime.World`.

    ``walk`` is ``"auto"`` (the C walk where built and not disabled), ``"c"`` or
    ``"python"``.  A state holding an object whose state the walk cannot see
    raises :class:`Opaque`.
    """
    return walk_stream(world, walk)[0]


def distinct_fingerprint(world) -> bytes:
    """The fingerprint of a state that must never meet another (``opaque="distinct"``).

    The hash of its path from the initial state: no other state has it, and
    the same state rebuilt or replayed along that path has it again.
    """
    return _blake2b(repr(world.path).encode(), digest_size=16, person=b"fc-distinct").digest()


def walk_stream(world, walk: str = "auto", stream: bool = False) -> tuple[bytes, bytes | None]:
    """The fingerprint and, with ``stream``, the tokens it hashes (for tests).

    A world with symmetric values under symmetry is walked twice: once to
    find the canonical names of the values (:func:`canonical_labels`), once
    with them.
    """
    symmetric = bool(getattr(world, "symmetric_values", None))
    on = symmetric and world.symmetry_on
    names = world.symmetric_names() if on else ()
    if walk == "c" or (walk == "auto" and C_WALK):
        if _cfingerprint is None:
            raise RuntimeError("the C fingerprint walk is not built")

        def c_walker(labels=None, track=False):
            w = _cfingerprint.Walker(keep_stream=stream)
            if symmetric:
                w.symmetry(labels, names, on, track)
            return w

        try:
            if on:
                labels = canonical_labels(world, c_walker)
                w = c_walker(labels)
                _walk_symmetric(w, world)
            else:
                w = c_walker()
                _walk(w, world)
        except Fallback:
            if walk == "c":
                raise
        else:
            return w.digest(), (w.stream() if stream else None)

    def py_walker(labels=None, track=False):
        return _Hasher(labels=labels, names=names, sym=on, track=track)

    if on:
        labels = canonical_labels(world, py_walker)
        h = py_walker(labels)
        if stream:
            h.stream_parts = []
        _walk_symmetric(h, world)
    else:
        h = py_walker()
        if stream:
            h.stream_parts = []
        _walk(h, world)
    digest = h.digest()
    return digest, (b"".join(h.stream_parts or []) if stream else None)


# --------------------------------------------------------------------------- where an object sits in the state


def locate(world, target: Any, limit: int = 200_000) -> str:
    """Where the state holds ``target``, for error messages: ``actor 'a', local 'h'``.

    A breadth-first search from the fingerprint's roots, in the walk's order,
    that follows the references the walk follows (plus ``gc.get_referents``
    where it cannot name them), so the path it returns is the shortest one it
    finds.  Only for reporting: it runs once, when a walk has failed.
    """
    from collections import deque as _deque

    queue: _deque = _deque()
    for actor in world.actors:
        if actor.done or actor.failed:
            continue
        queue.append((actor.coro, f"actor {actor.name!r}", ""))
    for g in world.globals_roots:
        for name, v in _global_items(g):
            queue.append((v, f"global {name!r} of module {g.get('__name__', '?')}", ""))
    queue.append((world.view, "the value the setup function returned", ""))
    for name, pred in world.invariants:
        queue.append((pred, f"invariant {name!r}", ""))
    for name, pred in world.constraints:
        queue.append((pred, f"constraint {name!r}", ""))
    for prop in world.liveness:
        queue.append((prop, f"property {getattr(prop, 'name', '?')!r}", ""))
    seen: set[int] = set()
    while queue and len(seen) < limit:
        obj, root, path = queue.popleft()
        if obj is target:
            return f"{root}, {path.lstrip('.')}" if path else root
        if id(obj) in seen or type(obj) in _ATOMS:
            continue
        seen.add(id(obj))
        for label, child in _children(obj):
            queue.append((child, root, path + label))
    return "somewhere in the state"


def _children(o: Any):
    """(label, child) pairs of ``o``: how ``locate`` names each step of a path."""
    t = type(o)
    if t in (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType):
        frame = getattr(o, "cr_frame", None) or getattr(o, "gi_frame", None) or getattr(o, "ag_frame", None)
        if frame is not None:
            where = f" of {frame.f_code.co_name}()"
            for name, v in frame.f_locals.items():
                yield f".local {name!r}{where}", v
            for v in gc.get_referents(o):
                if v is not frame.f_locals and type(v) is not types.FrameType:
                    yield f".a value on the stack{where}", v
        awaited = getattr(o, "cr_await", None) or getattr(o, "gi_yieldfrom", None) or getattr(o, "ag_await", None)
        if awaited is not None:
            yield "", awaited
        return
    if t in (list, tuple, collections.deque):
        for i, v in enumerate(o):
            yield f"[{i}]", v
        return
    if isinstance(o, dict):
        for k, v in list(o.items()):
            yield ".<a dict key>", k
            yield f"[{k!r}]" if type(k) in _ATOMS else ".<a dict value>", v
        return
    if isinstance(o, (set, frozenset)):
        for v in o:
            yield ".<a set element>", v
        return
    if t is types.FunctionType:
        names = o.__code__.co_freevars
        for name, cell in zip(names, o.__closure__ or ()):
            try:
                yield f".<closure variable {name!r} of {o.__qualname__}>", cell.cell_contents
            except ValueError:
                pass
        return
    if t is types.MethodType:
        yield ".__self__", o.__self__
        return
    d = getattr(o, "__dict__", None)
    if isinstance(d, dict):
        for k, v in list(d.items()):
            yield f".{k}", v
    for k in getattr(t, "__slots__", ()) if isinstance(getattr(t, "__slots__", ()), (tuple, list)) else ():
        if hasattr(o, k):
            yield f".{k}", getattr(o, k)
    for v in gc.get_referents(o):
        if v is not d and not isinstance(v, type):
            yield ".<inside>", v
