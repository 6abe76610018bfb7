"""The named write locks of the journal and their order (design of issue 15, §2.3).

SQLite has one write lock, taken by ``BEGIN IMMEDIATE``; the reasoning of the fence, the
site chain, the materials and the ledger rests on it. A backend without a single write
lock (PostgreSQL) names what each exclusive section protects instead, and takes those
locks in one fixed order, ``FENCE < SITE < MATERIALS < ASSET < LEDGER``, so that they
cannot deadlock. On SQLite every name is covered by the one lock: :func:`check_order`
is all that runs.
"""

from __future__ import annotations

from enum import IntEnum


class Lock(IntEnum):
    """A named write lock; the value is its place in the order (and its lock number)."""

    FENCE = 1
    """Run epochs vs commits of run records (shared by commits, exclusive by takeovers)."""
    SITE = 2
    """The site chain's head."""
    MATERIALS = 3
    """Lots, reservations and uses."""
    ASSET = 4
    """One asset's hold queue."""
    LEDGER = 5
    """The ledger chain and its head."""


LOCK_SPACE = 0x63656C6C
"""The first key of every advisory lock of cellauto ("cell")."""

ALL = (Lock.FENCE, Lock.SITE, Lock.MATERIALS, Lock.ASSET, Lock.LEDGER)


def check_order(held: tuple[Lock, ...], wanted: tuple[Lock, ...]) -> None:
    """Refuse locks asked out of order (a bug): each must come after every lock held."""
    last = max(held, default=0)
    for lock in wanted:
        if lock < last:
            raise RuntimeError(
                f"lock {lock.name} asked after {Lock(last).name}: locks are taken in the "
                f"order {' < '.join(name.name for name in ALL)} (a bug)"
            )
        last = lock
