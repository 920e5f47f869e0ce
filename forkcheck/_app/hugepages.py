"""Huge pages for the root snapshot process: cheap forks of big heaps.

Forking copies the page tables of the process's anonymous memory: one entry
per 4 KiB page, so the fork of a 512 MiB heap of small objects costs about
131,000 entries, 20 to 40 times the fork of a small interpreter.  A
transparent huge page maps 2 MiB with one entry, and copy-on-write of a huge
page shared with a child still copies only the 4 KiB that was written (the
kernel splits the mapping in the writer), so private memory does not grow.

Two things put the root's heap on huge pages (``CheckOptions.huge_pages``, on by
default):

* before the root interpreter starts, its environment asks glibc's malloc for
  transparent huge pages (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``) and sends
  Python's small objects to malloc (``PYTHONMALLOC=malloc``), instead of
  pymalloc's 1 MiB arenas, which are never 2 MiB aligned;
* after the model's setup, :func:`collapse` asks the kernel to collapse every
  2 MiB-aligned stretch of anonymous memory that is mostly resident
  (``madvise(MADV_COLLAPSE)``, Linux 6.1 and later).

Both are hints: without transparent huge page support, on an older kernel or
another libc, they do nothing and the check runs as before.
"""

from __future__ import annotations

import ctypes
import os
import struct

HUGE = 2 * 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MADV_COLLAPSE = 25


def root_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a root interpreter that allocates on transparent huge pages.

    A ``PYTHONMALLOC`` the user set (a debug allocator, say) is kept.
    """
    env = dict(env)
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.malloc.hugetlb=")]
    env["GLIBC_TUNABLES"] = ":".join(tunables + ["glibc.malloc.hugetlb=1"])
    env.setdefault("PYTHONMALLOC", "malloc")
    return env


def _regions() -> list[tuple[int, int]]:
    """Anonymous writable private mappings (malloc's heap, arenas, big blocks) of this process."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            start = (start + HUGE - 1) & ~(HUGE - 1)
            end &= ~(HUGE - 1)
            if end > start:
                out.append((start, end))
    return out


def collapse(min_resident: float = 0.5) -> tuple[int, int]:
    """Collapse this process's resident anonymous memory into huge pages.

    Only 2 MiB-aligned stretches of which at least ``min_resident`` is resident
    are collapsed: collapsing makes the whole 2 MiB resident.  Returns
    ``(collapsed, failed)`` counts of huge pages.

    Examples
    --------
    >>> collapsed, failed = collapse()   # a hint: 0, 0 without THP support
    >>> collapsed >= 0 and failed >= 0
    True
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):  # pragma: no cover - not Linux/glibc
        return 0, 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    per_huge = HUGE // _PAGE
    collapsed = failed = 0
    try:
        regions = _regions()
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:  # no /proc, or out of file descriptors: a hint, skip it
        return 0, 0
    try:
        for start, end in regions:
            for addr in range(start, end, HUGE):
                entries = os.pread(pagemap, per_huge * 8, addr // _PAGE * 8)
                present = sum(1 for (e,) in struct.iter_unpack("<Q", entries) if e >> 63)
                if present < min_resident * per_huge:
                    continue
                if madvise(addr, HUGE, _MADV_COLLAPSE) == 0:
                    collapsed += 1
                else:
                    failed += 1  # EINVAL before Linux 6.1; EAGAIN/ENOMEM when no huge page is free
    finally:
        os.close(pagemap)
    return collapsed, failed
