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
* dicts and sets are canonical regardless of insertion order (as ``==``);
* hidden state is reached through ``__reduce_ex__`` (iterators expose their
  position) and through the frames of generators and coroutines;
* objects may define ``__fc_state__()`` to say what their state is.

Two walks emit the same tokens: the C walk of ``_cfingerprint.c`` (CPython
3.11, built when the package is installed), which reads the state without
writing it, and the Python walk below, which every read of an object makes
write its reference count, and so copy its page in a forked snapshot.  The C
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
import types
from typing import Any

_ATOMS = (type(None), bool, int, float, complex, str, bytes)
_BATCH = 64

try:  # _blake2 directly: hashlib would also load OpenSSL, more mappings in every snapshot to fork
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - a Python built without _blake2
    from hashlib import blake2b as _blake2b
_SKIP_GLOBAL_TYPES = (types.ModuleType,)


class Fallback(Exception):
    """Raised by the C walk for a state only the Python walk reproduces exactly."""


class Unordered:
    """Marks a list whose order does not matter (a multiset) for the hasher."""

    __slots__ = ("items",)

    def __init__(self, items) -> None:
        self.items = list(items)


class _Hasher:
    """The walk's output: tokens joined by ``\\x1f`` and hashed.

    Tokens go to the hash function in batches of about ``_BATCH``, so that a
    big state does not keep all its tokens alive at once; the digest is that
    of the whole joined stream.
    """

    __slots__ = ("out", "memo", "keep", "hash", "flushed", "stream_parts")

    def __init__(self) -> None:
        self.out: list[str] = []
        self.memo: dict[int, int] = {}
        self.keep: list = []  # keeps visited objects alive so ids stay unique during the walk
        self.hash = _blake2b(digest_size=16)
        self.flushed = False
        self.stream_parts: list[bytes] | None = None  # a list when a test asks for the stream

    def flush(self) -> None:
        data = "\x1f".join(self.out).encode("utf-8", "surrogatepass")
        if self.flushed:
            data = b"\x1f" + data
        self.hash.update(data)
        if self.stream_parts is not None:
            self.stream_parts.append(data)
        self.out.clear()
        self.flushed = True

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

    def unordered(self, tag: str, items) -> None:
        keyed = sorted(((canonical_key(x), i) for i, x in enumerate(items)))
        self.out.append(f"{tag}{len(keyed)}")
        items = list(items)
        for _, i in keyed:
            self.h(items[i])

    def h(self, o: Any) -> None:  # noqa: C901 - one dispatch, kept flat for speed
        out = self.out
        if len(out) >= _BATCH:
            self.flush()
        t = type(o)
        if t in _ATOMS:
            out.append(f"{t.__name__[0]}{o!r}")
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
            out.append(f"T{o.__module__}.{o.__qualname__}")
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
            out.append(f"@{i}")
            return
        self.memo[id(o)] = len(self.memo)
        self.keep.append(o)
        if t is list:
            out.append(f"[{len(o)}")
            for x in o:
                self.h(x)
        elif t is dict or t is collections.defaultdict or t is collections.Counter:
            if t is collections.defaultdict:
                self.h(o.default_factory)
            keys = sorted(((canonical_key(k), k) for k in o), key=lambda p: p[0])
            out.append(f"{{{t.__name__}{len(keys)}")
            for _, k in keys:
                self.h(k)
                self.h(o[k])
        elif t is set:
            self.unordered("S", o)
        elif t is collections.deque:
            out.append(f"Q{o.maxlen}:{len(o)}")
            for x in o:
                self.h(x)
        elif t is bytearray:
            out.append(f"B{bytes(o)!r}")
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
            hook = getattr(t, "__fc_state__", None)
            if hook is not None:
                out.append(f"H{t.__qualname__}")
                self.h(hook(o))
            else:
                self.reduced(o, t)

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
        except Exception:  # noqa: BLE001 - some C objects cannot be reduced: fall back to identity
            # Identity is sound (never merges different states) but may split equal ones.
            self.out.append(f"?{t.__module__}.{t.__qualname__}@{id(o):x}")
            return
        if isinstance(rv, str):
            self.out.append(f"g{rv}")
            return
        fn = rv[0]
        args = rv[1] if len(rv) > 1 else ()
        if fn is copyreg.__newobj__ or getattr(fn, "__name__", "") == "__newobj__":
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


def canonical_key(obj: Any) -> bytes:
    """A content hash of ``obj`` alone, used to order unordered containers."""
    t = type(obj)
    if t is str:
        return b"s" + obj.encode("utf-8", "surrogatepass")
    if t is int or t is bool:
        return b"i" + str(obj).encode()
    h = _Hasher()
    h.h(obj)
    return h.digest()


def _global_items(g: dict):
    for name in sorted(g):
        if name.startswith("__") and name.endswith("__"):
            continue
        v = g[name]
        if isinstance(v, _SKIP_GLOBAL_TYPES):
            continue
        if isinstance(v, type) and v.__module__ == g.get("__name__"):
            # A class of the model's own module: its mutable class attributes are state.
            attrs = {k: a for k, a in vars(v).items() if not (k.startswith("__") and k.endswith("__"))
                     and not callable(a) and not isinstance(a, (classmethod, staticmethod, property))}
            yield name, (v, attrs)
            continue
        yield name, v


def _walk(h, world) -> None:
    emit = h.emit
    emit(f"A{len(world.actors)}")
    for actor in world.actors:
        emit(f"{actor.name}|{int(actor.done)}{int(actor.failed)}")
        if not actor.done and not actor.failed:
            h.h(actor.coro)
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
    h.h(preds)
    h.h(world.liveness)


try:
    from . import _cfingerprint
except ImportError:  # not built: no C compiler at install time, or not CPython 3.11
    _cfingerprint = None
else:
    _cfingerprint.configure(Fallback, collections.deque, collections.defaultdict, collections.Counter,
                            Unordered, enum.Enum, copyreg.__newobj__)

C_WALK = _cfingerprint is not None and os.environ.get("FORKCHECK_PURE_PYTHON_WALK", "") in ("", "0")


def state_fingerprint(world, walk: str = "auto") -> bytes:
    """The canonical fingerprint of a :class:`~forkcheck._runtime.World`.

    ``walk`` is ``"auto"`` (the C walk where built and not disabled), ``"c"`` or
    ``"python"``.
    """
    return walk_stream(world, walk)[0]


def walk_stream(world, walk: str = "auto", stream: bool = False) -> tuple[bytes, bytes | None]:
    """The fingerprint and, with ``stream``, the tokens it hashes (for tests)."""
    if walk == "c" or (walk == "auto" and C_WALK):
        if _cfingerprint is None:
            raise RuntimeError("the C fingerprint walk is not built")
        w = _cfingerprint.Walker()
        try:
            _walk(w, world)
        except Fallback:
            if walk == "c":
                raise
        else:
            return w.digest(), (w.stream() if stream else None)
    h = _Hasher()
    if stream:
        h.stream_parts = []
    _walk(h, world)
    digest = h.digest()
    return digest, (b"".join(h.stream_parts) if stream else None)
