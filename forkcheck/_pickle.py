"""cloudpickle, keeping the source file names of code sent by value.

cloudpickle 3 replaces ``co_filename`` with ``"<dynamic-code>"`` to make its
output deterministic; forkcheck needs the real file and line in traces and
tracebacks, so this pickler puts them back.
"""

from __future__ import annotations

import io
import types
from collections import ChainMap

import cloudpickle
from cloudpickle import cloudpickle as _impl

_PLACEHOLDER = "<dynamic-code>"


def _code_reduce(code: types.CodeType):
    fn, args = _impl._code_reduce(code)
    return fn, tuple(code.co_filename if a == _PLACEHOLDER and type(a) is str else a for a in args)


class _Pickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)


def dumps(obj) -> bytes:
    """Like ``cloudpickle.dumps``, but code keeps its file name."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(obj)
    return buf.getvalue()


loads = cloudpickle.loads
