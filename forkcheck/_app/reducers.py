"""The state of standard-library objects that cannot be pickled: what their behaviour depends on.

Runs inside the snapshot process, for the fingerprint walk (``_fingerprint.py``).
The walk reaches hidden state through ``__reduce_ex__``; the types below
cannot be reduced (or, like ``itertools`` objects, will not be in Python 3.14),
so each gets a function that returns exactly what its future behaviour depends
on.  A type whose state cannot be read exactly (a compressor's window, a
cursor's pending rows, ``itertools.cycle``'s saved items) gets no partial
view: :func:`refuse` raises :class:`~forkcheck._app.fingerprint.Opaque`, which the
snapshot turns into an error naming the object (or, with
``opaque="distinct"``, a state that is never merged).

The table is keyed by ``module.qualname`` and resolved on first use, so that
no module is imported to build it (a snapshot maps fewer pages).
"""

from __future__ import annotations

import gc
import re
from typing import Any, Callable

from .fingerprint import Opaque


def refuse(why: str) -> Callable[[Any], Any]:
    """A reducer for a type whose state cannot be read exactly: it raises Opaque."""

    def reducer(obj: Any) -> Any:
        raise Opaque(obj, why)

    reducer.refuses = why  # type: ignore[attr-defined]
    return reducer


def _hash(h: Any) -> Any:
    # A hash object's future digests depend on its algorithm and internal state; the digest
    # (computed on a copy: the object is not finalised) stands for that state.
    size = h.digest_size
    return ("hash", h.name, h.digest() if size else h.digest(64))


def _mmap(m: Any) -> Any:
    if m.closed:
        return ("mmap", "closed")
    if _shared_mapping(m):
        raise Opaque(m, "it is a shared mapping (MAP_SHARED, the default of mmap.mmap): every snapshot process "
                        "writes the same memory, so states cannot be kept apart; map it with "
                        "flags=mmap.MAP_PRIVATE")
    return ("mmap", len(m), m.tell(), m[:])


def _shared_mapping(m: Any) -> bool:
    """Whether a writable mmap is MAP_SHARED, read from /proc/self/maps (mmap does not say)."""
    import ctypes

    try:
        buf = ctypes.c_char.from_buffer(m)
    except TypeError:  # read-only: no writes through it can reach another snapshot
        return False
    addr = ctypes.addressof(buf)
    del buf
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split(None, 2)[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= addr < hi:
                return perms[3] == "s"
    return False


def _sqlite(conn: Any) -> Any:
    try:
        files = [row[2] for row in conn.execute("PRAGMA database_list")]
    except Exception as exc:  # noqa: BLE001 - a closed connection
        return ("sqlite3", "unusable", type(exc).__name__)
    if any(files):
        raise Opaque(conn, "it is connected to a database file, which is outside the snapshot process "
                           "(every state would share it): connect to ':memory:' in the model")
    # iterdump runs SELECTs only: reading the contents changes nothing a model can observe.
    return ("sqlite3", conn.in_transaction, conn.isolation_level, conn.row_factory, conn.text_factory,
            conn.total_changes, list(conn.iterdump()))


def _lock(lock: Any) -> Any:
    return ("lock", lock.locked())


_RLOCK_COUNT = re.compile(r"count=(\d+)")


def _rlock(lock: Any) -> Any:
    count = getattr(lock, "_recursion_count", None)
    # An RLock's repr always shows its count (Python 3.11 has no _recursion_count).
    n = count() if count is not None else int(_RLOCK_COUNT.search(repr(lock)).group(1))  # type: ignore[union-attr]
    return ("rlock", lock._is_owned(), n)


def _weakref(ref: Any) -> Any:
    # The referent, walked with identity, and the callback; a subclass's own attributes
    # (weakref.KeyedRef's key) are added by fingerprint.resolve_reducer.
    return ("weakref", ref(), ref.__callback__)


def _dict_view(view: Any) -> Any:
    # The view's only state is its dict (its referent), walked with identity.
    return (type(view).__name__, gc.get_referents(view))


def _count(c: Any) -> Any:
    # repr(itertools.count) shows its next value and step: exact, without __reduce__.
    return ("count", repr(c))


def _memoryview(m: Any) -> Any:
    if m.c_contiguous:
        data = m.tobytes()
    else:
        data = m.tobytes("A")
    return ("memoryview", m.obj, m.format, m.itemsize, m.shape, m.strides, m.readonly, data)


def _match(m: Any) -> Any:
    return ("match", m.re, m.string, m.pos, m.endpos, m.regs)


_NO_DEFAULT = ("contextvar", "no default")


def _contextvar(var: Any) -> Any:
    # A variable is walked with identity; its name and default never change.  The default is what
    # get() gives in an empty context.
    import contextvars

    try:
        default = contextvars.Context().run(var.get)
    except LookupError:
        return ("contextvar", var.name, _NO_DEFAULT)
    return ("contextvar", var.name, default)


def _context(ctx: Any) -> Any:
    # The variables it holds and their values: a mapping whose iteration order follows the variables'
    # hashes (their addresses), so a multiset of pairs.
    from .fingerprint import Unordered

    return ("context", Unordered(list(ctx.items())))


def _token(tok: Any) -> Any:
    # What var.reset(token) depends on: the variable, the value to restore, the context it was made in
    # and whether it was used already.  The last two have no Python accessor: read from the object
    # (PyContextToken: head, tok_ctx, tok_var, tok_oldval, int tok_used), checked against .var.
    import contextvars
    import ctypes

    base = id(tok)
    if ctypes.c_void_p.from_address(base + 24).value != id(tok.var):  # pragma: no cover - another layout
        raise Opaque(tok, "this Python lays out contextvars.Token differently, so whether it was used cannot be read")
    ctx = ctypes.cast(ctypes.c_void_p.from_address(base + 16).value or 0, ctypes.py_object).value
    used = ctypes.c_int.from_address(base + 40).value
    old = tok.old_value
    missing = old is contextvars.Token.MISSING  # a marker of its own type, which cannot be walked
    return ("token", tok.var, missing, None if missing else old, ctx, bool(used))


def _agen_awaitable(aw: Any) -> Any:
    # What `await agen.__anext__()` (asend), `agen.aclose()` and `agen.athrow(...)` (athrow) await: the async
    # generator (walked through its frame), the value or exception they carry, and how far they got (init,
    # iterating, closed), which has no Python accessor: read from the object (head, gen, value, int state),
    # checked against the generator gc.get_referents() names.
    import ctypes

    refs = gc.get_referents(aw)
    if not refs or ctypes.c_void_p.from_address(id(aw) + 16).value != id(refs[0]):  # pragma: no cover - another layout
        raise Opaque(aw, "this Python lays out the awaitables of async generators differently, so how far one got "
                         "cannot be read")
    return (type(aw).__name__, tuple(refs), ctypes.c_int.from_address(id(aw) + 32).value)


def _traceback(tb: Any) -> Any:
    # The frames and lines it shows (a future keeps the traceback of its exception to raise it again);
    # the frames' locals are not state, as for any frame held outside a coroutine (docs/design.md).
    entries = []
    while tb is not None:
        entries.append((tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    return ("traceback", tuple(entries))


_ITERTOOLS_WHY = ("forkcheck cannot see its position without __reduce__, which Python 3.12 deprecates and 3.14 "
                  "removes: iterate over a list (list(itertools....)), or write a generator function "
                  "(forkcheck walks generators through their frames)")

_TABLE: dict[str, Callable[[Any], Any]] = {
    "_thread.lock": _lock,
    "_thread.RLock": _rlock,
    "mmap.mmap": _mmap,
    "sqlite3.Connection": _sqlite,
    "sqlite3.Cursor": refuse("a cursor's pending rows cannot be read without consuming them: fetch the rows "
                             "(cursor.fetchall()) before the next await"),
    "sqlite3.Blob": refuse("an open blob handle is outside what forkcheck can read: close it before the next await"),
    "weakref.ReferenceType": _weakref,
    "builtins.memoryview": _memoryview,
    "re.Match": _match,
    "builtins.dict_keys": _dict_view,
    "builtins.dict_values": _dict_view,
    "builtins.dict_items": _dict_view,
    "builtins.odict_keys": _dict_view,
    "builtins.odict_values": _dict_view,
    "builtins.odict_items": _dict_view,
    "itertools.count": _count,
    "_contextvars.Context": _context,
    "_contextvars.ContextVar": _contextvar,
    "_contextvars.Token": _token,
    "builtins.traceback": _traceback,
    "builtins.async_generator_asend": _agen_awaitable,
    "builtins.async_generator_athrow": _agen_awaitable,
    "functools._lru_cache_wrapper": refuse(
        "its cache and hit counts are hidden state: if the function is pure, register what matters, e.g. "
        "fc.register_state(functools._lru_cache_wrapper, lambda f: f.__wrapped__)"),
    "zlib.Compress": refuse("a compressor's internal window cannot be read"),
    "zlib.Decompress": refuse("a decompressor's internal window cannot be read"),
    "_bz2.BZ2Compressor": refuse("a compressor's internal state cannot be read"),
    "_bz2.BZ2Decompressor": refuse("a decompressor's internal state cannot be read"),
    "_lzma.LZMACompressor": refuse("a compressor's internal state cannot be read"),
    "_lzma.LZMADecompressor": refuse("a decompressor's internal state cannot be read"),
}
for _name in ("accumulate", "batched", "chain", "combinations", "combinations_with_replacement", "compress",
              "cycle", "dropwhile", "filterfalse", "groupby", "_grouper", "islice", "pairwise", "permutations",
              "product", "repeat", "starmap", "takewhile", "_tee", "_tee_dataobject", "zip_longest"):
    _TABLE[f"itertools.{_name}"] = refuse(_ITERTOOLS_WHY)

_HASH_MODULES = {"_hashlib", "_blake2", "_md5", "_sha1", "_sha256", "_sha512", "_sha2", "_sha3"}


def builtin_reducer(t: type) -> Callable[[Any], Any] | None:
    """The table's function for exactly the type ``t`` (no base classes), or None."""
    module = getattr(t, "__module__", None)
    if not isinstance(module, str):
        return None
    if module in _HASH_MODULES and hasattr(t, "digest") and hasattr(t, "copy"):
        return _hash
    return _TABLE.get(f"{module}.{t.__qualname__}")

