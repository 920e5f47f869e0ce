"""``file:line`` locations as people read them: the one place that shortens them.

A transition's or a frame's ``where`` travels as the full ``path:line``;
reports shorten it here, in the snapshot (messages it writes) and in the
explorer (traces, the notebook, the CLI) alike.  Imports only the standard
library, so a snapshot process can load it.
"""

from __future__ import annotations

import os


def short(where: str) -> str:
    """``file:line`` with the file's base name only; ``"?"`` for an unknown place.

    Examples
    --------
    >>> short("/home/me/models/jugs.py:12")
    'jugs.py:12'
    >>> short("")
    '?'
    """
    if not where:
        return "?"
    path, _, line = where.rpartition(":")
    return f"{os.path.basename(path)}:{line}" if path else where


def relative(where: str) -> str:
    """``path:line`` with the path relative to the current directory when the file is under it.

    Examples
    --------
    >>> import os
    >>> relative(os.path.join(os.getcwd(), "models", "jugs.py") + ":12")
    'models/jugs.py:12'
    >>> relative("<stdin>:3")
    '<stdin>:3'
    """
    path, sep, line = where.rpartition(":")
    if not sep or not path or path.startswith("<"):
        return where
    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = path
    return f"{path if rel.startswith('..') else rel}:{line}"
