"""cloudpickle, keeping the source file names of code sent by value.

cloudpickle 3 replaces ``co_filename`` with ``"<dynamic-code>"`` to make its
output deterministic; forkcheck needs the real file and line in traces and
tracebacks, so this pickler puts them back.  It also ships a
``contextvars.ContextVar`` (which cannot be pickled) as a new variable of the
same name and default: the module-level variables of a program sent by value.
"""

from __future__ import annotations

import contextvars
import io
import types
from collections import ChainMap

import cloudpickle
from cloudpickle import cloudpickle as _impl

_PLACEHOLDER = "<dynamic-code>"


def _code_reduce(code: types.CodeType):
    fn, args = _impl._code_reduce(code)
    return fn, tuple(code.co_filename if a == _PLACEHOLDER and type(a) is str else a for a in args)


def _contextvar_reduce(var: contextvars.ContextVar):
    # A module-level ContextVar of a model shipped by value (asyncio programs have them): a new
    # variable of the same name and default in the snapshot process, one per variable (the memo).
    try:
        default = contextvars.Context().run(var.get)
    except LookupError:
        return contextvars.ContextVar, (var.name,)
    return _contextvar_with_default, (var.name, default)


def _contextvar_with_default(name: str, default: object) -> contextvars.ContextVar:
    return contextvars.ContextVar(name, default=default)


class _Pickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _code_reduce, contextvars.ContextVar: _contextvar_reduce},
                              cloudpickle.Pickler.dispatch_table)


def dumps(obj) -> bytes:
    """Like ``cloudpickle.dumps``, but code keeps its file name."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(obj)
    return buf.getvalue()


loads = cloudpickle.loads
