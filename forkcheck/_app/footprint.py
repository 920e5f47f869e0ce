"""Footprints for the reductions: what each actor can touch, and what a step wrote.

Runs inside the snapshot process, only when the check uses a reduction
(``Load.footprints``, ``Fork.footprints``).  The explorer's side,
``_check/reduction.py``, decides from these which transitions commute; the
rules and why they are sound are in docs/reductions.md.

For every *root* (each live actor, each lossy network, and the invariants
together) :func:`compute` walks what the root can reach: an actor's
coroutine chain (frames, locals, cells, the evaluation stack, the request it
awaits), the functions it reaches (their closures, defaults and the globals
their code names), and everything those objects hold.  It collects

* the *mutable objects* reached: lists, dicts, sets, instances, frames, and
  the closure cells, module globals and class attributes that some reachable
  code can rebind (a cell no code stores to, a global no code assigns, are
  read-only and are walked through);
* the *primitives* reached (mailboxes, networks, locks, semaphores, events),
  whose operations a table decides; the messages inside them are walked;
* flags: ``WORLD`` when the root can spawn actors or make primitives (which
  changes the world's actor list and name counters), ``UNKNOWN`` when its code
  reaches state by names the walk cannot follow (``eval``, ``exec``,
  ``globals()``, ``sys.modules``, ``sys._getframe``, ...).

Only what two roots share matters, so each root's sets are cut to the objects
and primitives another root reaches too.  The shared objects get a shallow
digest each, kept in this process (:data:`_TABLE`, never sent): a child
forked from this state recomputes them after its step, and the keys whose
digest changed are what the step *wrote* (:func:`effects`).  What the step did
to primitives comes from the runtime's log (``World.log``).

Everything sent is builtins only (tuples of ints and strings), for marshal.
"""

from __future__ import annotations

import collections
import dis
import gc
import os
import sys
import types
from typing import Any

from .fingerprint import _ATOMS, _MISSING, _REDUCER_CACHE, _Hasher, resolve_reducer
from . import primitives as _prims
from . import runtime as _runtime

try:
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover
    from hashlib import blake2b as _blake2b

#: Root flags.
UNKNOWN = 1  # reaches state by names the walk cannot follow: depends on everything
WORLD = 2  # may spawn actors or make primitives (the world's actor list, name counters)

_PACKAGE_DIR = _runtime._PACKAGE_DIR
_STDLIB = _runtime._STDLIB

#: Names in code that reach state the walk cannot follow: a root whose code names one depends on everything.
_UNKNOWN_NAMES = frozenset({
    "eval", "exec", "compile", "globals", "__import__", "import_module", "_getframe", "f_globals", "f_locals",
    "f_back", "f_builtins", "get_objects", "get_referrers", "get_referents", "modules", "__builtins__", "tb_frame",
    "gi_frame", "cr_frame", "ag_frame", "cell_contents", "__closure__", "__globals__", "__code__",
    "__defaults__", "__kwdefaults__",
})
#: Names with which code reads or writes attributes it does not name: every attribute of the modules reached
#: is followed, and every binding (globals, class attributes) counts as writable.
_DYNAMIC_NAMES = frozenset({"getattr", "setattr", "delattr", "vars", "__dict__", "__setattr__", "__delattr__"})

_PRIM_KINDS = ((_prims.Mailbox, "M"), (_prims.Network, "N"), (_prims.Lock, "L"), (_prims.Semaphore, "S"),
               (_prims.Event, "E"))
_PRIM_EXACT = {cls: kind for cls, kind in _PRIM_KINDS}
#: The attributes of the primitives themselves (their operations are logged, not digested).
_PRIM_FIELDS = frozenset({"name", "_items", "_flight", "lossy", "duplicating", "_owner", "_value", "_set"})
#: Objects whose use changes the world: spawning, making primitives (names from counters, lossy networks).
_WORLD_OBJECTS = (_runtime.spawn, _prims.Mailbox, _prims.Network, _prims.Lock, _prims.Semaphore, _prims.Event)

_CODE_INFO: dict[types.CodeType, tuple] = {}


def _code_info(code: types.CodeType) -> tuple:
    """What ``code`` (and the code nested in it) names and stores.

    ``(names, STORE_GLOBAL names, STORE_ATTR names, STORE_ATTR names on the
    first argument, STORE_DEREF names, flags)``.  A store on the first argument
    (``self.x = v``) is kept apart: in a method it sets an instance attribute,
    not a class attribute (``_Context.stored_attrs``).  Only the code's own
    instructions count as such; nested code's stores all count as others.
    """
    info = _CODE_INFO.get(code)
    if info is not None:
        return info
    names = set(code.co_names)
    sglobal: set[str] = set()
    sattr: set[str] = set()
    sself: set[str] = set()
    sderef: set[str] = set()
    first = code.co_varnames[0] if code.co_argcount + code.co_posonlyargcount > 0 and code.co_varnames else None
    prev = None
    for ins in dis.get_instructions(code):
        op = ins.opname
        if op in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            sglobal.add(ins.argval)
        elif op in ("STORE_ATTR", "DELETE_ATTR"):
            if first is not None and prev is not None and prev.opname == "LOAD_FAST" and prev.argval == first:
                sself.add(ins.argval)
            else:
                sattr.add(ins.argval)
        elif op in ("STORE_DEREF", "DELETE_DEREF"):
            sderef.add(ins.argval)
        prev = ins
    flags = 0
    for c in code.co_consts:
        if type(c) is types.CodeType:
            n, g, a, a_self, d, f = _code_info(c)
            names |= n
            sglobal |= g
            sattr |= a | a_self
            sderef |= d
            flags |= f
    if not names.isdisjoint(_UNKNOWN_NAMES):
        flags |= UNKNOWN
    info = (frozenset(names), frozenset(sglobal), frozenset(sattr), frozenset(sself), frozenset(sderef), flags)
    _CODE_INFO[code] = info
    return info


def _skipped_code(code: types.CodeType) -> bool:
    """Code of forkcheck itself or of the standard library: it holds no model state of its own."""
    f = code.co_filename
    return f.startswith(_PACKAGE_DIR) or f.startswith(_STDLIB)


_SKIPPED_MODULES: dict[str, bool] = {}


def _skipped_module(name: str) -> bool:
    """forkcheck's own modules, the standard library's and built-in ones: no model state lives there.

    A module this process does not know (a model module sent by value) is not skipped.
    """
    skip = _SKIPPED_MODULES.get(name)
    if skip is None:
        m = sys.modules.get(name)
        if name.split(".")[0] == "forkcheck":
            skip = True
        elif m is None:
            skip = False
        else:
            f = getattr(m, "__file__", None)
            skip = f is None or f.startswith(_PACKAGE_DIR) or f.startswith(_STDLIB)
        _SKIPPED_MODULES[name] = skip
    return skip


def _foreign(name: Any, probe: Any) -> bool:
    """Whether a namespace (``probe`` a globals dict) or a class (``probe`` the class) belongs to a module
    of forkcheck or the standard library.

    By the module that is really there: a model sent by value from a script
    or a notebook names ``__main__`` (in a snapshot, forkcheck's own), and is
    the model's all the same.
    """
    if not isinstance(name, str) or not _skipped_module(name):
        return False
    m = sys.modules.get(name)
    if m is None:
        return False
    if isinstance(probe, dict):
        return getattr(m, "__dict__", None) is probe
    return getattr(m, getattr(probe, "__name__", ""), None) is probe or name.split(".")[0] == "forkcheck"


# --------------------------------------------------------------------------- the walk


class _Context:
    """What the walks of one state share: the model's namespaces, what any reachable code stores."""

    def __init__(self, world) -> None:
        self.model_ns = {id(g) for g in world.globals_roots}
        self.model_modules = {g.get("__name__") for g in world.globals_roots}
        self.sglobal: set[str] = set()
        self.sattr: set[str] = set()
        self.sderef: set[str] = set()
        self.self_stores: dict[types.CodeType, frozenset] = {}  # code -> its stores on its first argument
        self.methods: set[types.CodeType] = set()  # code of the methods of the classes reached
        self.dynamic_write = False
        self.keep: list = []  # keeps what the walks made (reduced states) alive, so that ids stay unique
        self.cell_names: dict[int, set[str]] = {}
        self.class_names: dict[int, frozenset] = {}
        self._stored: set[str] | None = None

    def stored_attrs(self) -> set[str]:
        """Attribute names some reachable code may store on a class or a module.

        Every STORE_ATTR, except the stores on the first argument of a method
        of a class (``self.x = v`` sets an instance attribute); a classmethod's
        first argument is its class, so its stores count.
        """
        out = self._stored
        if out is None:
            out = set(self.sattr)
            for code, names in self.self_stores.items():
                if code not in self.methods:
                    out |= names
            self._stored = out
        return out


#: Binding keys: (id of a model namespace, name) -> a negative number, stable in this process and its forks.
_BINDINGS: dict[tuple[int, str], int] = {}


def _binding_key(g: dict, name: str) -> int:
    k = (id(g), name)
    key = _BINDINGS.get(k)
    if key is None:
        key = _BINDINGS[k] = -1 - len(_BINDINGS)
    return key


class _Reach:
    """The walk of one root."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.seen: set[int] = set()
        self.cands: dict[int, tuple[str, Any]] = {}  # key -> (digest kind, object)
        self.prims: dict[int, str] = {}
        self.flags = 0
        self.names: set[str] = set()
        self.dynamic = False  # getattr & co: follow every attribute of the modules reached
        self.namespaces: dict[int, list] = {}  # id(g) -> [g, names already followed]
        self.modules: dict[int, list] = {}  # id(module) -> [module, names already followed]
        self.stack: list = []
        self.forkcheck = False  # reached the forkcheck module: the names its code uses on it decide WORLD

    def code(self, code: types.CodeType) -> None:
        names, g, a, a_self, d, f = _code_info(code)
        self.names |= names
        ctx = self.ctx
        ctx.sglobal |= g
        ctx.sattr |= a
        if a_self:
            ctx.self_stores[code] = a_self
        ctx.sderef |= d
        self.flags |= f
        if not names.isdisjoint(_DYNAMIC_NAMES):
            self.dynamic = True
            ctx.dynamic_write = True

    def namespace(self, g: dict) -> None:
        if id(g) in self.namespaces:
            return
        if id(g) not in self.ctx.model_ns and _foreign(g.get("__name__"), g):
            return
        self.namespaces[id(g)] = [g, set()]

    def run(self, roots) -> None:
        self.stack.extend(roots)
        while True:
            self.drain()
            if not self.follow_names():
                break
        if self.forkcheck:
            for obj in _WORLD_OBJECTS:
                if getattr(obj, "__name__", "") in self.names:
                    self.flags |= WORLD

    def follow_names(self) -> bool:
        """Push what the names of the code reached name in the namespaces and modules reached; False if nothing."""
        grew = False
        for entry in list(self.namespaces.values()):
            g, done = entry
            todo = (set(g) if self.dynamic else (self.names & g.keys())) - done
            if not todo:
                continue
            done |= todo
            model = id(g) in self.ctx.model_ns
            for name in sorted(todo):
                if name.startswith("__") and name.endswith("__"):
                    continue
                v = g.get(name, _MISSING)
                if v is _MISSING:
                    continue
                if model:
                    self.cands[_binding_key(g, name)] = ("G", (g, name))
                self.stack.append(v)
                grew = True
        for entry in list(self.modules.values()):
            m, done = entry
            d = getattr(m, "__dict__", {})
            todo = (set(d) if self.dynamic else (self.names & d.keys())) - done
            if not todo:
                continue
            done |= todo
            for name in sorted(todo):
                self.stack.append(d[name])
                grew = True
        return grew

    def drain(self) -> None:  # noqa: C901 - one dispatch
        stack, seen, cands, keep = self.stack, self.seen, self.cands, self.ctx.keep
        push = stack.append
        while stack:
            o = stack.pop()
            t = type(o)
            if t in _ATOMS:
                continue
            i = id(o)
            if i in seen:
                continue
            seen.add(i)
            if t is tuple or t is frozenset:
                stack.extend(o)
            elif t is range:
                continue  # immutable, and holds only ints
            elif t is slice:
                push(o.start)
                push(o.stop)
                push(o.step)
            elif t is list or t is collections.deque:
                cands[i] = ("L", o)
                stack.extend(o)
            elif t is dict or t is collections.defaultdict or t is collections.Counter or t is collections.OrderedDict:
                cands[i] = ("D", o)
                for k, v in o.items():
                    push(k)
                    push(v)
                if t is collections.defaultdict:
                    push(o.default_factory)
            elif t is set:
                cands[i] = ("S", o)
                stack.extend(o)
            elif t is bytearray:
                cands[i] = ("B", o)
            elif t is types.CoroutineType or t is types.GeneratorType or t is types.AsyncGeneratorType:
                cands[i] = ("F", o)
                frame = getattr(o, "cr_frame", None) or getattr(o, "gi_frame", None) or getattr(o, "ag_frame", None)
                code = getattr(o, "cr_code", None) or getattr(o, "gi_code", None) or getattr(o, "ag_code", None)
                if code is not None:
                    self.code(code)
                if frame is not None:
                    self.namespace(frame.f_globals)
                    names = set(frame.f_code.co_cellvars) | set(frame.f_code.co_freevars)
                    for x in gc.get_referents(o):
                        if type(x) is types.FrameType:
                            continue
                        if type(x) is types.CellType:
                            self.ctx.cell_names.setdefault(id(x), set()).update(names)
                        push(x)
                awaited = getattr(o, "cr_await", None) if t is types.CoroutineType else (
                    getattr(o, "gi_yieldfrom", None) if t is types.GeneratorType else getattr(o, "ag_await", None))
                if awaited is not None:
                    push(awaited)
            elif t is types.FunctionType:
                code = o.__code__
                if _skipped_code(code):
                    if o in _WORLD_OBJECTS:
                        self.flags |= WORLD
                    continue
                cands[i] = ("U", o)  # its attributes, defaults and closure: read-only unless some code sets them
                self.code(code)
                self.namespace(o.__globals__)
                if o.__closure__:
                    for name, cell in zip(code.co_freevars, o.__closure__):
                        self.ctx.cell_names.setdefault(id(cell), set()).add(name)
                        push(cell)
                push(o.__defaults__)
                push(o.__kwdefaults__)
                fd = getattr(o, "__dict__", None)
                if fd:
                    push(fd)
            elif t is types.CellType:
                cands[i] = ("C", o)
                try:
                    push(o.cell_contents)
                except ValueError:
                    pass
            elif t is types.MethodType:
                push(o.__func__)
                push(o.__self__)
            elif t is types.BuiltinFunctionType or t is types.MethodWrapperType:
                s = getattr(o, "__self__", None)
                if s is not None and type(s) is not types.ModuleType:
                    push(s)
            elif t is types.CodeType:
                self.code(o)
            elif t is types.ModuleType:
                name = o.__name__
                if name.split(".")[0] == "forkcheck":
                    self.forkcheck = True
                    continue
                if _skipped_module(name):
                    continue
                self.modules[i] = [o, set()]
            elif t is types.FrameType or t is types.TracebackType:
                continue
            elif isinstance(o, type):
                self.klass(o, i)
            elif isinstance(o, _runtime.Request):
                for klass in t.__mro__:
                    for slot in klass.__dict__.get("__slots__", ()):
                        v = getattr(o, slot, None)
                        if v is not None:
                            push(v)
            elif isinstance(o, (_prims.Mailbox, _prims.Network, _prims.Lock, _prims.Semaphore, _prims.Event)):
                kind = _PRIM_EXACT.get(t)
                if kind is None:
                    kind = next(k for c, k in _PRIM_KINDS if isinstance(o, c))
                    cands[i] = ("P", o)  # a subclass: its own attributes are ordinary state
                    for k, v in vars(o).items():
                        if k not in _PRIM_FIELDS:
                            push(v)
                self.prims[i] = kind
                if isinstance(o, _prims.Mailbox):
                    stack.extend(o._items)
                elif isinstance(o, _prims.Network):
                    stack.extend(o._flight)
            elif isinstance(o, _enum_type()):
                continue
            else:
                self.instance(o, t, i)

    def klass(self, cls: type, i: int) -> None:
        module = getattr(cls, "__module__", "")
        if not (_TYPE_FLAGS(cls) & _HEAPTYPE) or module == "builtins" or _foreign(module, cls):
            if cls in _WORLD_OBJECTS:
                self.flags |= WORLD
            return
        self.cands[i] = ("K", cls)
        d = cls.__dict__
        self.ctx.class_names[i] = frozenset(d)
        push = self.stack.append
        for k, v in d.items():
            if type(v) is types.FunctionType:
                self.ctx.methods.add(v.__code__)  # its stores on self set instance attributes
                push(v)
            elif k.startswith("__") and k.endswith("__"):
                continue  # __module__, __dict__, __weakref__, __doc__, dataclass metadata, ...
            elif isinstance(v, (staticmethod, classmethod)):
                push(v.__func__)
            elif isinstance(v, property):
                push(v.fget)
                push(v.fset)
                push(v.fdel)
            else:
                push(v)
        for base in cls.__mro__[1:]:
            push(base)

    def instance(self, o: Any, t: type, i: int) -> None:
        push = self.stack.append
        push(t)
        if _plain(t):
            self.cands[i] = ("I", o)
            d = getattr(o, "__dict__", None)
            if isinstance(d, dict):
                self.seen.add(id(d))  # the instance and its __dict__ are one object
                for k, v in d.items():
                    push(k)
                    push(v)
            for name in _slots(t):
                v = getattr(o, name, _MISSING)
                if v is not _MISSING:
                    push(v)
            return
        self.cands[i] = ("X", o)
        try:
            fn: Any = _REDUCER_CACHE.get(t, _MISSING)
            if fn is _MISSING:
                fn = resolve_reducer(t)
            if fn is not None:
                state = fn(o)
            elif getattr(t, "__fc_state__", None) is not None:
                state = o.__fc_state__()
            else:
                state = o.__reduce_ex__(4)
        except Exception:  # noqa: BLE001 - an object the walk cannot see into: its digest is unknown
            return
        self.ctx.keep.append(state)
        push(state)
        d = getattr(o, "__dict__", None)
        if isinstance(d, dict):
            push(d)


_enum = None


def _enum_type():
    global _enum
    if _enum is None:
        import enum

        _enum = enum.Enum
    return _enum


_TYPE_FLAGS = type.__dict__["__flags__"].__get__
_HEAPTYPE = 1 << 9
_PLAIN: dict[type, bool] = {}
_SLOTS: dict[type, tuple] = {}


def _plain(t: type) -> bool:
    """Instances whose whole state is their ``__dict__`` and slots: every class in the MRO is a class statement's."""
    p = _PLAIN.get(t)
    if p is None:
        p = _PLAIN[t] = all(b is object or bool(_TYPE_FLAGS(b) & _HEAPTYPE) for b in t.__mro__) and \
            _REDUCER_CACHE.get(t) is None and resolve_reducer(t) is None
    return p


def _slots(t: type) -> tuple:
    s = _SLOTS.get(t)
    if s is None:
        names = []
        for klass in t.__mro__:
            slots = klass.__dict__.get("__slots__", ())
            if isinstance(slots, str):
                slots = (slots,)
            for name in slots:
                if name not in ("__dict__", "__weakref__") and name not in names:
                    names.append(name)
        s = _SLOTS[t] = tuple(names)
    return s


# --------------------------------------------------------------------------- digests


def _tok(x: Any, depth: int = 0) -> str:
    t = type(x)
    if t in _ATOMS:
        return f"{t.__name__[0]}{x!r}"
    if depth < 20:
        if t is tuple:
            return "(" + ",".join([_tok(y, depth + 1) for y in x]) + ")"
        if t is frozenset:
            return "F{" + ",".join(sorted([_tok(y, depth + 1) for y in x])) + "}"
    return f"@{id(x)}"


def _digest(kind: str, o: Any) -> bytes | None:
    """A digest of what ``o`` holds itself: atoms by value, other objects by identity (None: unknown)."""
    parts: list[str]
    if kind == "L":
        parts = [_tok(x) for x in o]
        if type(o) is collections.deque:
            parts.append(f"maxlen={o.maxlen}")
    elif kind == "D":
        parts = [type(o).__name__]
        for k, v in o.items():
            parts.append(_tok(k))
            parts.append(_tok(v))
        if type(o) is collections.defaultdict:
            parts.append(_tok(o.default_factory))
    elif kind == "S":
        parts = sorted([_tok(x) for x in o])
    elif kind == "B":
        parts = [repr(bytes(o))]
    elif kind == "C":
        try:
            parts = [_tok(o.cell_contents)]
        except ValueError:
            parts = ["<empty>"]
    elif kind == "G":
        g, name = o
        v = g.get(name, _MISSING)
        parts = ["<unbound>" if v is _MISSING else _tok(v)]
    elif kind == "K":
        parts = []
        for k, v in list(o.__dict__.items()):
            parts.append(k)
            parts.append(_tok(v))
    elif kind == "U":
        parts = [f"@{id(o.__code__)}", _tok(o.__defaults__), _tok(o.__closure__)]
        kw = o.__kwdefaults__
        if kw:
            for k, v in kw.items():
                parts.append(k)
                parts.append(_tok(v))
        fd = getattr(o, "__dict__", None)
        if fd:
            for k, v in fd.items():
                parts.append(k)
                parts.append(_tok(v))
    elif kind == "F":
        frame = getattr(o, "cr_frame", None) or getattr(o, "gi_frame", None) or getattr(o, "ag_frame", None)
        if frame is None:
            parts = ["<finished>"]
        else:
            parts = [str(frame.f_lasti)]
            for x in gc.get_referents(o):
                if type(x) is not types.FrameType:
                    parts.append(_tok(x))
            aw = getattr(o, "cr_await", None) or getattr(o, "gi_yieldfrom", None) or getattr(o, "ag_await", None)
            parts.append(_tok(aw))
    elif kind == "I" or kind == "P":
        parts = [f"@{id(type(o))}"]
        d = getattr(o, "__dict__", None)
        if isinstance(d, dict):
            for k, v in d.items():
                if kind == "P" and k in _PRIM_FIELDS:
                    continue
                parts.append(_tok(k))
                parts.append(_tok(v))
        for name in _slots(type(o)):
            v = getattr(o, name, _MISSING)
            parts.append(name)
            parts.append("<unset>" if v is _MISSING else _tok(v))
    else:  # "X": the fingerprint's walk of the object alone (everything below it)
        try:
            h = _Hasher()
            h.h(o)
            return h.digest()
        except Exception:  # noqa: BLE001 - cannot be seen into: counted as written by every step
            return None
    return _blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).digest()


#: The shared objects of this state and their digests: (key, kind, object, digest).  A child forked
#: from this state compares them after its step (effects); compute() replaces it with the child's own.
_TABLE: list[tuple[int, str, Any, bytes | None]] | None = None


#: The process that computed _TABLE: a child compares only with its own parent's digests.
_TABLE_PID = 0


def effects() -> tuple | None:
    """The keys of the shared objects of the parent state that the step just taken changed (None: no table).

    The table must be the parent's: a process that never answered a Footprint
    request holds its own parent's table, which a child of it must not use.
    """
    table = _TABLE
    if table is None or _TABLE_PID != os.getppid():
        return None
    written = []
    for key, kind, obj, digest in table:
        try:
            now = _digest(kind, obj)
        except Exception:  # noqa: BLE001 - an object that cannot be read any more: changed
            now = None
        if digest is None or now != digest:
            written.append(key)
    return tuple(written)


def compute(world) -> tuple[list, tuple]:
    """The footprint of every root of this state, cut to what roots share; fills :data:`_TABLE`.

    Returns ``(roots, invariants)``: ``roots[k]`` for the k-th actor (None once
    it has returned or failed) and then each environment (lossy network) is
    ``(objects, primitives, flags, guard, read_only)``; ``invariants`` is
    ``(objects, primitives, flags, read_only)``.  ``objects`` are keys of the
    shared mutable objects some reachable code can change, ``read_only`` those
    that no reachable code can (cells never stored to, globals never assigned,
    class and function attributes never set): a step still may, through what
    the scan of the code does not see, so their digests are checked too.
    ``primitives`` are ``(id, kind)`` pairs, ``guard`` the operations the
    actor's enabling test made in this state (``World.guards``).
    """
    global _TABLE
    ctx = _Context(world)
    walks: list[_Reach | None] = []
    for actor in world.actors:
        if actor.done or actor.failed or actor.coro is None:
            walks.append(None)
            continue
        r = _Reach(ctx)
        r.run([actor.coro])
        walks.append(r)
    for env in world.environments:
        r = _Reach(ctx)
        r.run([env])
        walks.append(r)
    inv = _Reach(ctx)
    preds = [pred for _, pred in world.invariants] + list(world.liveness)
    inv.run(preds)
    every = [w for w in walks if w is not None] + [inv]
    count: dict[int, int] = {}
    pcount: dict[int, int] = {}
    for w in every:
        for key in w.cands:
            count[key] = count.get(key, 0) + 1
        for key in w.prims:
            pcount[key] = pcount.get(key, 0) + 1
    writable: dict[int, bool] = {}
    table: list = []
    out: list = []
    guards = world.guards
    for k, walk in enumerate(walks):
        if walk is None:
            out.append(None)
            continue
        w = walk
        objs, ro = _shared(ctx, w, count, writable, table)
        prims = tuple(sorted((p, kind) for p, kind in w.prims.items() if pcount[p] > 1))
        guard = guards[k] if k < len(guards) else ()
        out.append((objs, prims, w.flags, guard, ro))
    objs, ro = _shared(ctx, inv, count, writable, table)
    inv_out = (objs, tuple(sorted((p, kind) for p, kind in inv.prims.items() if pcount[p] > 1)), inv.flags, ro)
    global _TABLE_PID
    _TABLE = table
    _TABLE_PID = os.getpid()
    return out, inv_out


def _shared(ctx: _Context, w: _Reach, count: dict[int, int], writable: dict[int, bool], table: list) -> tuple:
    """The root's shared objects, split into those some code can change and the read-only ones."""
    objs: list[int] = []
    ro: list[int] = []
    for key, (kind, obj) in w.cands.items():
        if count[key] < 2:
            continue
        can = writable.get(key)
        if can is None:
            can = writable[key] = _writable(ctx, key, kind, obj)
            table.append((key, kind, obj, _digest(kind, obj)))
        (objs if can else ro).append(key)
    objs.sort()
    ro.sort()
    return tuple(objs), tuple(ro)


def _writable(ctx: _Context, key: int, kind: str, obj: Any) -> bool:
    if kind == "C":
        names = ctx.cell_names.get(key, ())
        return not ctx.sderef.isdisjoint(names)
    if kind == "G":
        name = obj[1]
        return ctx.dynamic_write or name in ctx.sglobal or name in ctx.stored_attrs()
    if kind == "K":
        return ctx.dynamic_write or not ctx.stored_attrs().isdisjoint(ctx.class_names.get(key, ()))
    if kind == "U":
        return ctx.dynamic_write or not ctx.stored_attrs().isdisjoint(getattr(obj, "__dict__", {}))
    return True


def transition_keys(world, enabled) -> tuple[list, list]:
    """Each enabled transition's root (actor index, then environments) and a name that is the same in
    every state where the same transition is enabled: ``"root|label"``; None when two read alike."""
    index = {id(a): k for k, a in enumerate(world.actors)}
    envs = {id(e): len(world.actors) + k for k, e in enumerate(world.environments)}
    owners: list[int] = []
    keys: list[str | None] = []
    seen: dict[str, int] = {}
    for t in enabled:
        owner = index[id(t.actor)] if t.actor is not None else envs[id(t.request)]
        owners.append(owner)
        key = f"{owner}|{t.label}"
        seen[key] = seen.get(key, 0) + 1
        keys.append(key)
    for k, name in enumerate(keys):
        if name is not None and seen[name] > 1:
            keys[k] = None
    return owners, keys
