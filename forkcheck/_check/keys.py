"""What identifies a state in the visited store: a collaborator of ``Search``.

The default key is the state fingerprint the snapshot computed itself
(``Report.fingerprint``).  Pages mode (``fingerprint="pages"``, docs/pages.md)
keys states by the contents of their memory pages instead, read by the
explorer through ``/proc``: it must see each new snapshot while its parent
is alive (to reuse the parent's page hashes), so it cannot fork a child
straight from a far ancestor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .snapshots import Snapshot, SnapshotTree


class StateKey:
    """The state fingerprint: nothing to do but read it from the report."""

    #: Whether a snapshot may be forked from an ancestor other than its parent.
    direct_forks = True

    async def start(self, tree: SnapshotTree, root: Snapshot) -> None:
        """Called once with the root, before any key is asked for."""

    async def observe(self, snap: Snapshot, parent: Snapshot | None) -> None:
        """Called for each new snapshot, while ``parent`` (the process it was forked from) is alive."""

    def key(self, snap: Snapshot) -> bytes:
        # The order of an asyncio program's queues, when a bound on deviations makes it matter (Report.order).
        return snap.report.fingerprint + snap.report.order


class PageKey(StateKey):
    """Page-content fingerprints (experimental): ``PageFingerprinter`` does the reading."""

    direct_forks = False

    def __init__(self) -> None:
        from .pages import PageFingerprinter

        self.pages = PageFingerprinter()

    async def start(self, tree: SnapshotTree, root: Snapshot) -> None:
        await self.pages.calibrate(tree, root)  # noise masks, before any fingerprint
        await self.pages.fingerprint(root, None)

    async def observe(self, snap: Snapshot, parent: Snapshot | None) -> None:
        await self.pages.fingerprint(snap, parent)

    def key(self, snap: Snapshot) -> bytes:
        return self.pages.key(snap)


def state_key(fingerprint: str) -> StateKey:
    """The key for ``check(fingerprint=...)``: "state" or "pages"."""
    return PageKey() if fingerprint == "pages" else StateKey()
