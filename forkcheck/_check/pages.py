"""Page fingerprints: identify a snapshot by the contents of its memory pages.

The default fingerprint (``_fingerprint.py``) walks the Python object graph
inside the snapshot.  This module identifies a stopped snapshot from the
outside instead, from what the kernel shows of it:

* ``/proc/PID/maps`` lists its mappings; the writable private ones (the heap,
  anonymous memory, the data segments of the interpreter and its libraries)
  are hashed, except the C stack (see *Noise*);
* ``/proc/PID/pagemap`` says, for every page, whether it is present, its frame
  number (bits 0-54, visible with CAP_SYS_ADMIN only) and whether the process
  maps it exclusively (bit 56);
* ``/proc/PID/mem`` gives the contents of the pages that must be hashed.

The fingerprint is the sum, modulo 2**128, of one hash per page (SHA-256 of
the page address and contents, truncated; an all-zero page and an absent page
count 0).  A sum can be updated page by page: a child's fingerprint is its
parent's, minus the old hashes of the pages that changed, plus their new ones.

Which pages changed
-------------------
A snapshot is read only once it is blocked in ``recv`` waiting for the
explorer (``/proc/PID/syscall``), and its record (pagemap entries and page
hashes) is kept for its children.  A page of a child is read and hashed again
when any of these holds:

* the child maps it exclusively (bit 56).  Every page the child wrote since
  the fork is: the write either copied it (the copy belongs to the child alone)
  or, when no other process mapped it any more, was done in place on a page
  that is then exclusive anyway.  This alone makes the fingerprint follow
  every write of the child, with or without privileges;
* its frame number differs from the parent's record (when frame numbers are
  visible);
* it is swapped out, its presence differs from the parent's record, or the
  parent's record does not cover it (a new mapping, a grown heap).

Every other page is shared with another process and was not written by the
child: it keeps the parent's hash.  One caveat, measured in docs/pages.md:
between its record and the fork, the parent runs forkcheck's request handler
(it receives the ``Step`` message with the new socket and forks), which writes
a few pages of its own (allocator lists, interpreter counters).  A child that
does not write such a page again inherits it and keeps the parent's hash of it.
Nothing but that handler runs in the parent, so those bytes are forkcheck's
bookkeeping, never the model's objects: the fingerprint is that of the child's
memory with the parent's request handling left out.  The kernel offers no way
to see those writes from outside (frame numbers catch the ones that copied a
page; in-place writes leave no trace without soft-dirty bits, which this
kernel lacks).

Noise
-----
Two snapshots that reached the same state differ in memory the program cannot
observe.  The C stack is left out entirely: CPython 3.11 keeps Python frames on
the heap, and the C stack of a snapshot blocked in ``recv`` holds only the
command loop's C state.  Other words are masked by calibration:
:meth:`PageFingerprinter.calibrate` takes transitions of the root twice and
masks the words that differ between the two children (by default only in the
data segments of executables and libraries, which hold no model object).  The
masks are fixed before any fingerprint is taken.

Measured on the examples (docs/pages.md): the children of one parent differ in
hundreds of heap words, because the parent's request handler moves the
allocator's free lists between two forks, so the objects a transition creates
land elsewhere.  Page fingerprints therefore tell apart every path: they are
sound, but merge no states beyond those of identical memory.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from .._errors import ForkcheckError, InternalError

if TYPE_CHECKING:  # pragma: no cover
    from .snapshots import Snapshot, SnapshotTree

PAGE = os.sysconf("SC_PAGE_SIZE")
_SHIFT = PAGE.bit_length() - 1
_MOD = 1 << 128
_PFN = (1 << 55) - 1
_EXCLUSIVE = 1 << 56
_SWAPPED = 1 << 62
_PRESENT = 1 << 63
_ZERO_PAGE = bytes(PAGE)
_WORD = 8
_NONZERO = re.compile(rb"[^\x00]")


def _byte_class(pred) -> re.Pattern:
    """A regex matching one byte for which ``pred`` is true (to find pages at C speed)."""
    return re.compile(b"[" + b"".join(re.escape(bytes([b])) for b in range(256) if pred(b)) + b"]")


#: On the flag byte of a pagemap entry (bits 56-63): bit 56 exclusive, 62 swapped, 63 present.
_EXCLUSIVE_OR_SWAPPED = _byte_class(lambda b: b & 0x41)
_HAS_CONTENTS = _byte_class(lambda b: b & 0xC0)  # present or swapped: the page has contents
_PRESENCE = bytes((b & 0xC0) for b in range(256))  # keeps the present and swapped bits
#: Pages this close together are read with one pread.
_GAP = 4
#: Pages per piece of a record (see _pieces).
_CHUNK = 64

#: Mappings never hashed: the C stack holds no Python state (see the module
#: docstring); the others are kernel pages.
_SKIPPED = frozenset({b"[stack]", b"[vvar]", b"[vvar_vclock]", b"[vdso]", b"[vsyscall]", b"[uprobes]"})

#: The syscalls a snapshot is blocked in when it waits for the explorer:
#: ``socket.recv`` is ``recvfrom`` (or ``recvmsg``) on these architectures.
_RECV_SYSCALLS = {
    "x86_64": frozenset({45, 47}),
    "aarch64": frozenset({207, 212}),
    "arm64": frozenset({207, 212}),
    "riscv64": frozenset({207, 212}),
    "ppc64le": frozenset({337, 342}),
    "s390x": frozenset({371, 372}),
    "i686": frozenset({371, 372}),
}


class SnapshotGone(ForkcheckError):
    """The snapshot process to fingerprint has exited (killed, or out of memory)."""


@dataclass
class PageStats:
    """Counters of a :class:`PageFingerprinter`, for benchmarks and tests.

    ``pages_read`` counts pages read from ``/proc/PID/mem`` by incremental
    fingerprints (``fingerprints`` of them); ``full_pages_read`` those read by
    full reads (the root, calibration, verification, or a child whose parent
    has no record).  ``entries`` counts pagemap entries read.
    """

    fingerprints: int = 0
    pages_read: int = 0
    pages_reused: int = 0
    full_reads: int = 0
    full_pages_read: int = 0
    entries: int = 0
    calibration_pairs: int = 0
    masked_words: int = 0
    masked_pages: int = 0
    seconds: float = 0.0  # in fingerprint() and calibrate(), waits included
    wait_seconds: float = 0.0  # of which waiting for snapshots to block in recv
    verified: int = 0
    #: (pid, page address, mapping, child maps the page exclusively) of every page
    #: whose kept hash differs from its contents (verification mode only).
    mismatches: list = field(default_factory=list)

    @property
    def pages_per_fingerprint(self) -> float:
        return self.pages_read / self.fingerprints if self.fingerprints else 0.0


@dataclass
class _Region:
    """What was recorded of one hashed mapping: its pagemap entries and page hashes."""

    start: int  # page number
    end: int  # page number, exclusive
    name: bytes
    entries: bytes  # raw pagemap entries, 8 bytes per page
    hashes: bytearray | bytes  # 16 bytes per page, little endian; shared until written
    total: int  # sum of the page hashes mod 2**128


@dataclass
class _Record:
    """A stopped snapshot as the fingerprinter saw it."""

    regions: list[_Region]
    total: int
    key: bytes
    pid: int


_MAPS_LINE = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) .w.p \S+ \S+ \S+ *([^\n]*)$", re.M)


def _maps(pid: int) -> list[tuple[int, int, bytes]]:
    """The hashed mappings of ``pid`` as (first page, end page, name), in address order.

    Writable private mappings only: read-only text and shared mappings are not
    the process's private state.
    """
    with open(f"/proc/{pid}/maps", "rb") as f:
        text = f.read()
    return [(int(lo, 16) >> _SHIFT, int(hi, 16) >> _SHIFT, name)
            for lo, hi, name in _MAPS_LINE.findall(text) if name not in _SKIPPED]


_REPEATED: dict[tuple[int, int], int] = {}


def _repeated(word: int, n: int) -> int:
    """``word`` repeated in ``n`` little-endian 8-byte lanes, as one integer."""
    key = (word, n)
    v = _REPEATED.get(key)
    if v is None:
        v = int.from_bytes(word.to_bytes(8, "little") * n, "little")
        if len(_REPEATED) > 4096:
            _REPEATED.clear()
        _REPEATED[key] = v
    return v


def _changed_lanes(child: bytes, parent: bytes, frames: bool) -> list[int]:
    """Indices of the pages to re-hash, from the child's and the parent's pagemap entries.

    A page is selected when the child maps it exclusively or has it swapped
    out, or when its presence (and, with ``frames``, its frame number) differs
    from the parent's entry.  Large regions are compared as big integers, one
    C-level operation per step rather than a Python loop per page.
    """
    n = len(child) // 8
    if n <= 8:
        out = []
        for i in range(n):
            c = int.from_bytes(child[8 * i:8 * i + 8], "little")
            p = int.from_bytes(parent[8 * i:8 * i + 8], "little")
            if c & (_EXCLUSIVE | _SWAPPED) or (c ^ p) & (_PRESENT | _SWAPPED | (_PFN if frames else 0)):
                out.append(i)
        return out
    # The flag byte of each entry (bits 56-63) alone decides without frame numbers.
    selected = [m.start() for m in _EXCLUSIVE_OR_SWAPPED.finditer(child[7::8])]
    cf, pf = child[7::8].translate(_PRESENCE), parent[7::8].translate(_PRESENCE)
    if cf != pf:
        diff = (int.from_bytes(cf, "little") ^ int.from_bytes(pf, "little")).to_bytes(n, "little")
        selected += [m.start() for m in _NONZERO.finditer(diff)]
    if frames and child != parent:
        c = int.from_bytes(child, "little")
        p = int.from_bytes(parent, "little")
        d = (c ^ p) & _repeated(_PFN, n)
        if d:
            # Fold every lane onto its lowest byte; shifts below 64 bits stay within a lane.
            for s in (8, 16, 32):
                d |= d >> s
            d &= _repeated(0xFF, n)
            selected += [m.start() for m in _NONZERO.finditer(d.to_bytes(n * 8, "little")[::8])]
    return sorted(set(selected))


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Consecutive indices as (first, count) runs, to read them with one pread each."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


class PageFingerprinter:
    """Fingerprint snapshot processes by their memory pages, incrementally.

    Parameters
    ----------
    calibrate_with : int
        How many transitions of the root :meth:`calibrate` takes twice to find
        the noise words; 0 masks only the C stack.
    noise : {"static", "all"}
        Which of the words that differ between the two children are masked.
        "static" (the default) masks them only in the writable segments of
        loaded executables and libraries, where the interpreter and libraries
        keep their own counters and state and no Python object of the model
        lives: sound by construction.  "all" masks them wherever they are,
        heap included, as issue 3 proposed: a heap word that was noise during
        calibration may later hold a model object, so this is not sound by
        construction (docs/pages.md measures it).
    use_frames : bool, optional
        Compare frame numbers when the kernel shows them (the default, None,
        decides from the root's pagemap); False uses only the
        exclusively-mapped bit, as without CAP_SYS_ADMIN.
    verify : bool
        Also read every page of every child and record in
        ``stats.mismatches`` each page whose kept hash differs from its
        contents (slow; for tests).
    stop_timeout : float
        Seconds to wait for a snapshot to block in ``recv`` before failing.

    Notes
    -----
    Use: ``await fp.calibrate(tree, root)`` once after ``tree.start()``; then
    ``await fp.fingerprint(root, None)`` and, right after every
    ``child = await tree.step(parent, i)`` and before ``parent`` is released,
    ``await fp.fingerprint(child, parent)``.  ``fp.key(snap)`` returns a
    fingerprint already computed; records of released snapshots are dropped by
    :meth:`forget`, or automatically once the snapshot is closed.
    """

    def __init__(self, calibrate_with: int = 2, *, noise: str = "static", use_frames: bool | None = None,
                 verify: bool = False, stop_timeout: float = 10.0) -> None:
        if noise not in ("static", "all"):
            raise ValueError(f"noise={noise!r}: use 'static' or 'all'")
        self.calibrate_with = calibrate_with
        self.noise = noise
        self.use_frames = use_frames
        self.verify = verify
        self.stop_timeout = stop_timeout
        self.stats = PageStats()
        self.frames_visible: bool | None = None
        self._masks: dict[int, tuple[tuple[int, int], ...]] = {}  # page address -> byte ranges zeroed
        self._records: dict[Snapshot, _Record] = {}
        self._recv: frozenset[int] = _RECV_SYSCALLS.get(platform.machine(), frozenset())
        self._calibrated = False
        self._since_prune = 0

    # -- public interface ---------------------------------------------------------

    async def calibrate(self, tree: SnapshotTree, root: Snapshot) -> None:
        """Find the noise words; call once, after ``tree.start()`` and before any fingerprint.

        Takes each of the first ``calibrate_with`` transitions of the root twice,
        masks the words that differ between the two children (where ``noise``
        allows), and releases them.  Also decides whether frame numbers are
        visible.  The masks do not change afterwards, so that every fingerprint
        of a check is computed the same way.
        """
        if self._calibrated:
            raise InternalError("PageFingerprinter.calibrate() was called twice")
        start = time.perf_counter()
        await self._wait_stopped(root.pid, learn=True)
        if self.frames_visible is None:
            self.frames_visible = _frames_visible(root.pid)
        if self.use_frames is None:
            self.use_frames = self.frames_visible
        masks: dict[int, set[int]] = {}
        for i in range(min(self.calibrate_with, len(root.report.transitions))):
            a = await tree.step(root, i)
            b = await tree.step(root, i)
            try:
                if a.report.pid and b.report.pid:
                    await self._wait_stopped(a.pid)
                    await self._wait_stopped(b.pid)
                    _diff_words(a.pid, b.pid, masks, static_only=self.noise == "static")
                    self.stats.calibration_pairs += 1
            finally:
                tree.release(a)
                tree.release(b)
        self._masks = {addr: _word_runs(words) for addr, words in masks.items()}
        self.stats.masked_words = sum(len(w) for w in masks.values())
        self.stats.masked_pages = len(masks)
        self._calibrated = True
        self.stats.seconds += time.perf_counter() - start

    async def fingerprint(self, child: Snapshot, parent: Snapshot | None) -> bytes:
        """The page fingerprint of ``child`` (16 bytes), reusing ``parent``'s page hashes.

        ``child`` must have just been forked from ``parent`` (``tree.step``)
        and not yet stepped itself; ``parent`` None (the root) reads every page.
        A child without a process (a crash or timeout report, pid 0), or whose
        process has gone, gets a key derived from its report's fingerprint,
        with a prefix that keeps it apart from every page fingerprint.
        """
        if not self._calibrated:
            raise InternalError("PageFingerprinter.fingerprint() before calibrate()")
        known = self._records.get(child)
        if known is not None:
            return known.key
        rep = child.report
        if rep is None or rep.pid == 0:
            key = b"fault:" + (rep.fingerprint if rep is not None else b"")
            self._records[child] = _Record([], 0, key, 0)
            return key
        start = time.perf_counter()
        base = self._records.get(parent) if parent is not None else None
        try:
            await self._wait_stopped(child.pid)
            if base is None or not base.regions:
                rec = self._read_full(child.pid)
            else:
                rec = self._read_delta(child.pid, base)
                self.stats.fingerprints += 1
        except (SnapshotGone, FileNotFoundError, ProcessLookupError):
            # It died after its report (killed from outside): nothing to read.  Its state
            # fingerprint, kept apart from page fingerprints, still never merges states.
            key = b"gone:" + rep.fingerprint
            self._records[child] = _Record([], 0, key, child.pid)
            return key
        self._records[child] = rec
        if self.verify:
            self._verify(child.pid, rec)
        self._prune()
        self.stats.seconds += time.perf_counter() - start
        return rec.key

    def key(self, snap: Snapshot) -> bytes:
        """The fingerprint :meth:`fingerprint` computed for ``snap``."""
        return self._records[snap].key

    def forget(self, snap: Snapshot) -> None:
        """Drop what is kept of ``snap`` (its children can no longer reuse its hashes)."""
        self._records.pop(snap, None)

    # -- reading a snapshot ----------------------------------------------------------

    async def _wait_stopped(self, pid: int, learn: bool = False) -> None:
        """Wait until ``pid`` is blocked in ``recv``: only then is its memory still.

        A child sends its report and then returns to its command loop; reading
        it before it blocks would record pages it is about to write.
        """
        began = time.monotonic()
        try:
            await self._wait_stopped_loop(pid, learn, began + self.stop_timeout)
        finally:
            self.stats.wait_seconds += time.monotonic() - began

    async def _wait_stopped_loop(self, pid: int, learn: bool, deadline: float) -> None:
        last = None
        steady = 0
        while True:
            state, nr = _syscall(pid)
            if state == "gone":
                raise SnapshotGone(f"snapshot process {pid} exited before it could be fingerprinted")
            if nr is not None and nr in self._recv:
                return
            if learn and not self._recv and nr is not None:
                # Unknown architecture: the root is blocked in the same syscall on
                # several reads in a row, in sleeping state: that is its recv.
                steady = steady + 1 if nr == last and _sleeping(pid) else 0
                last = nr
                if steady >= 5:
                    self._recv = frozenset({nr})
                    return
            if state == "unavailable" and _sleeping(pid):
                # No /proc/PID/syscall (kernel without it): a sleeping snapshot
                # that the explorer has not sent anything to is in recv.
                return
            if time.monotonic() > deadline:
                raise InternalError(f"snapshot process {pid} did not block in recv within {self.stop_timeout:g}s "
                                    f"(/proc/{pid}/syscall: {state} {nr})")
            await trio.sleep(0.0002)

    def _page_hash(self, addr: int, data) -> int:
        runs = self._masks.get(addr)
        if runs:
            data = bytearray(data)
            for s, e in runs:
                data[s:e] = _ZERO_PAGE[: e - s]
        if data == _ZERO_PAGE:
            return 0  # an all-zero page hashes like an absent one: both read as zeros
        # SHA-256 is hardware-accelerated where BLAKE2 is not; the address is part
        # of what is hashed, so the same contents elsewhere hash differently.
        return int.from_bytes(hashlib.sha256(addr.to_bytes(8, "little") + data).digest()[:16], "little")

    def _hash_pages(self, mem: int, base_page: int, indices: list[int]) -> list[int]:
        """Hashes of pages ``base_page + i`` for ``i`` in ``indices`` (sorted, all present).

        Pages close together are read with one ``pread`` (a syscall costs more
        than copying a few pages that are not needed).
        """
        out = []
        k = 0
        while k < len(indices):
            j = k
            while j + 1 < len(indices) and indices[j + 1] - indices[j] <= _GAP:
                j += 1
            first, last = indices[k], indices[j]
            count = last - first + 1
            addr = (base_page + first) << _SHIFT
            try:
                data = os.pread(mem, count * PAGE, addr)
            except OSError:
                data = b""
            if len(data) < count * PAGE:  # some page cannot be read: read them one by one
                data = b"".join(_read_page(mem, (base_page + first + m) << _SHIFT) for m in range(count))
            view = memoryview(data)
            for i in indices[k:j + 1]:
                off = (i - first) * PAGE
                out.append(self._page_hash((base_page + i) << _SHIFT, view[off:off + PAGE]))
            k = j + 1
        return out

    def _read_full(self, pid: int, counted: bool = True) -> _Record:
        """Read and hash every present page of every hashed mapping."""
        regions = []
        pages = 0
        with _Proc(pid) as proc:
            for start, end, name, entries in _pieces(proc):
                n = end - start
                present = _present_lanes(entries)
                hashes = bytearray(16 * n)
                total = 0
                for i, h in zip(present, self._hash_pages(proc.mem, start, present)):
                    hashes[16 * i:16 * i + 16] = h.to_bytes(16, "little")
                    total += h
                pages += len(present)
                if counted:
                    self.stats.entries += n
                regions.append(_Region(start, end, name, entries, hashes, total % _MOD))
        if counted:
            self.stats.full_reads += 1
            self.stats.full_pages_read += pages
        return self._finish(regions, pid)

    def _read_delta(self, pid: int, base: _Record) -> _Record:
        """Re-hash only the pages that changed since ``base`` (the parent's record)."""
        regions = []
        read = reused = 0
        frames = bool(self.use_frames)
        index = {r.start: r for r in base.regions}
        with _Proc(pid) as proc:
            for start, end, name, entries in _pieces(proc):
                n = end - start
                self.stats.entries += n
                old = index.get(start)
                if old is not None and old.end == end:
                    p_entries, p_hashes, p_total = old.entries, old.hashes, old.total
                else:
                    p_entries, p_hashes, p_total = _overlay(base.regions, start, end)
                lanes = _changed_lanes(entries, p_entries, frames)
                reused += n - len(lanes)
                if not lanes:
                    # Nothing changed: share the parent's hashes (never written in place).
                    regions.append(_Region(start, end, name, p_entries if old is not None else entries,
                                           p_hashes, p_total))
                    continue
                hashes = bytearray(p_hashes)
                total = p_total
                present = [i for i in lanes if entries[8 * i + 7] & 0xC0]
                new = dict(zip(present, self._hash_pages(proc.mem, start, present)))
                read += len(present)
                for i in lanes:
                    h = new.get(i, 0)  # a page no longer present reads as zeros: hash 0
                    total += h - int.from_bytes(hashes[16 * i:16 * i + 16], "little")
                    hashes[16 * i:16 * i + 16] = h.to_bytes(16, "little")
                regions.append(_Region(start, end, name, entries, hashes, total % _MOD))
        self.stats.pages_read += read
        self.stats.pages_reused += reused
        return self._finish(regions, pid)

    @staticmethod
    def _finish(regions: list[_Region], pid: int) -> _Record:
        total = sum(r.total for r in regions) % _MOD
        return _Record(regions, total, total.to_bytes(16, "little"), pid)

    def _verify(self, pid: int, rec: _Record) -> None:
        """Compare every kept page hash with the page's current contents."""
        full = self._read_full(pid, counted=False)  # verification is not part of the cost
        self.stats.verified += 1
        mine = {r.start: r for r in rec.regions}
        with _Proc(pid) as proc:
            for r in full.regions:
                k = mine.get(r.start)
                if k is None or k.end != r.end:
                    continue
                if bytes(k.hashes) == bytes(r.hashes):
                    continue
                for i in range(r.end - r.start):
                    if k.hashes[16 * i:16 * i + 16] != r.hashes[16 * i:16 * i + 16]:
                        e = int.from_bytes(proc.entries(r.start + i, 1), "little")
                        self.stats.mismatches.append(
                            (pid, (r.start + i) << _SHIFT, r.name.decode(errors="replace"), bool(e & _EXCLUSIVE)))

    def _prune(self) -> None:
        """Every so often, drop the records of snapshots that have been released."""
        self._since_prune += 1
        if self._since_prune < 64:
            return
        self._since_prune = 0
        for snap in [s for s in self._records if s.closed]:
            del self._records[snap]

    @property
    def masked_runs(self) -> dict[int, tuple[tuple[int, int], ...]]:
        """The noise mask: page address -> (start, end) byte ranges left out of its hash."""
        return dict(self._masks)


class _Proc:
    """The pagemap and mem files of one process, opened for the duration of a read."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> _Proc:
        try:
            self.pagemap = os.open(f"/proc/{self.pid}/pagemap", os.O_RDONLY)
        except (FileNotFoundError, ProcessLookupError):
            raise SnapshotGone(f"snapshot process {self.pid} has exited") from None
        try:
            self.mem = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY)
        except BaseException:
            os.close(self.pagemap)
            raise
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.pagemap)
        os.close(self.mem)

    def entries(self, first_page: int, count: int) -> bytes:
        data = os.pread(self.pagemap, count * 8, first_page * 8)
        if len(data) != count * 8:
            raise InternalError(f"short pagemap read for process {self.pid}")
        return data


def _read_page(mem: int, addr: int) -> bytes:
    try:
        data = os.pread(mem, PAGE, addr)
    except OSError:
        return _ZERO_PAGE
    return data if len(data) == PAGE else data + _ZERO_PAGE[len(data):]


def _present_lanes(entries: bytes) -> list[int]:
    """Indices of the pages that have contents: present in memory or swapped out."""
    return [m.start() for m in _HAS_CONTENTS.finditer(entries[7::8])]


def _pieces(proc: _Proc):
    """The hashed mappings of a process cut in pieces of at most ``_CHUNK`` pages, with their pagemap entries.

    A record keeps hashes per piece, and a child shares the pieces it did not
    change with its parent: a few pages written in the 10 MiB heap then cost a
    copy of one piece, not of the whole heap's hashes.
    """
    for start, end, name in _maps(proc.pid):
        entries = proc.entries(start, end - start)
        for lo in range(start, end, _CHUNK):
            hi = min(end, lo + _CHUNK)
            yield lo, hi, name, entries[8 * (lo - start):8 * (hi - start)]


def _overlay(regions: list[_Region], start: int, end: int) -> tuple[bytes, bytearray, int]:
    """The parent's entries and hashes for pages start..end, from whatever regions cover them.

    Pages no parent region covered get an empty entry (not present) and hash 0,
    so the child re-hashes every present page there.
    """
    n = end - start
    entries = bytearray(8 * n)
    hashes = bytearray(16 * n)
    for r in regions:
        lo, hi = max(r.start, start), min(r.end, end)
        if lo >= hi:
            continue
        entries[8 * (lo - start):8 * (hi - start)] = r.entries[8 * (lo - r.start):8 * (hi - r.start)]
        hashes[16 * (lo - start):16 * (hi - start)] = r.hashes[16 * (lo - r.start):16 * (hi - r.start)]
    total = sum(int.from_bytes(hashes[i:i + 16], "little") for i in range(0, len(hashes), 16)) % _MOD
    return bytes(entries), hashes, total


def _syscall(pid: int) -> tuple[str, int | None]:
    """("blocked", nr), ("running", None), ("gone", None) or ("unavailable", None)."""
    try:
        with open(f"/proc/{pid}/syscall", "rb") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return "gone", None
    except OSError:
        return "unavailable", None
    first = text.split(None, 1)[0] if text.strip() else b""
    if first.lstrip(b"-").isdigit():
        return "blocked", int(first)
    if not text.strip():
        return "gone", None  # a zombie
    return "running", None


def _sleeping(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"S"
    except (OSError, IndexError):
        return False


def _frames_visible(pid: int) -> bool:
    """True if pagemap shows frame numbers to this process (CAP_SYS_ADMIN)."""
    with _Proc(pid) as proc:
        for start, end, _ in _maps(pid):
            raw = proc.entries(start, end - start)
            for i in range(0, len(raw), 8):
                e = int.from_bytes(raw[i:i + 8], "little")
                if e & _PRESENT:
                    return (e & _PFN) != 0
    return False


def _diff_words(a: int, b: int, masks: dict[int, set[int]], static_only: bool = False) -> None:
    """Add to ``masks`` every 8-byte word that differs between processes ``a`` and ``b``.

    With ``static_only``, only words in the writable segments of executables
    and libraries count (see :func:`_static_mappings`).
    """
    ra = {(s, e): name for s, e, name in _maps(a)}
    rb = {(s, e): name for s, e, name in _maps(b)}
    spans = sorted(set(ra) | set(rb))
    if static_only:
        spans = [sp for sp in spans if sp in _static_mappings(a) and sp in _static_mappings(b)]
    with _Proc(a) as pa, _Proc(b) as pb:
        for (start, end) in spans:
            chunk = 256
            for first in range(start, end, chunk):
                count = min(chunk, end - first)
                da = _read_span(pa, first, count) if (start, end) in ra else bytes(count * PAGE)
                db = _read_span(pb, first, count) if (start, end) in rb else bytes(count * PAGE)
                if da == db:
                    continue
                for k in range(count):
                    x, y = da[k * PAGE:(k + 1) * PAGE], db[k * PAGE:(k + 1) * PAGE]
                    if x == y:
                        continue
                    words = masks.setdefault((first + k) << _SHIFT, set())
                    wx, wy = memoryview(x).cast("Q"), memoryview(y).cast("Q")
                    words.update(i * _WORD for i in range(PAGE // _WORD) if wx[i] != wy[i])


def _static_mappings(pid: int) -> set[tuple[int, int]]:
    """(first page, end page) of the writable data segments of loaded executables and libraries.

    A file that the process also maps executable is an ELF object: its
    writable private mapping is a data segment (static C variables of the
    interpreter and libraries: counters, caches, thread state).  Python objects
    of the model live on the heap and in anonymous memory, never there.  The
    ``.bss`` continuation, an anonymous mapping, is left out: from the maps
    alone it cannot be told from an allocator arena placed next to it.
    """
    code: set[bytes] = set()
    data: list[tuple[int, int, bytes]] = []
    with open(f"/proc/{pid}/maps", "rb") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6 or not parts[5].strip().startswith(b"/"):
                continue
            name = parts[5].strip()
            lo, hi = (int(x, 16) >> _SHIFT for x in parts[0].split(b"-"))
            if parts[1][2:3] == b"x":
                code.add(name)
            elif parts[1][1:2] == b"w" and parts[1][3:4] == b"p":
                data.append((lo, hi, name))
    return {(lo, hi) for lo, hi, name in data if name in code}


def _read_span(proc: _Proc, first: int, count: int) -> bytes:
    """Contents of ``count`` pages from ``first``; pages not present read as zeros."""
    out = bytearray(count * PAGE)
    for f, c in _runs(_present_lanes(proc.entries(first, count))):
        try:
            data = os.pread(proc.mem, c * PAGE, (first + f) << _SHIFT)
        except OSError:
            data = b"".join(_read_page(proc.mem, (first + f + k) << _SHIFT) for k in range(c))
        out[f * PAGE:f * PAGE + len(data)] = data
    return bytes(out)


def _word_runs(words: set[int]) -> tuple[tuple[int, int], ...]:
    """Masked word offsets merged into (start, end) byte ranges."""
    out: list[list[int]] = []
    for w in sorted(words):
        if out and out[-1][1] == w:
            out[-1][1] = w + _WORD
        else:
            out.append([w, w + _WORD])
    return tuple((s, e) for s, e in out)
