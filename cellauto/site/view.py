"""What a run reads the site through: a plant's journal file, or a simulation's own site.

A run checks its bill of materials against lots and its instruments against the
equipment registry before it starts and at each use. Where those come from is a
:class:`SiteView`: :class:`FileSite` reads the journal file's site tables (a plant's
line; many controllers share them), a :class:`~cellauto.sim.site.SimSite` a
simulation's private site. Both yield a ``Conn`` holding a consistent
snapshot, read through :mod:`cellauto.site.materials_read`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, Protocol

from cellauto.records import backend as db
from cellauto.records.backend import Conn

__all__ = ["FileSite", "SiteView"]


class SiteView(Protocol):
    """A site as a run reads it."""

    @property
    def kind(self) -> Literal["file", "simulated"]: ...

    def reading(self) -> contextlib.AbstractContextManager[Conn]: ...


class FileSite:
    """The site tables of a journal file, read on a read-only connection of their own."""

    kind: Literal["file"] = "file"

    def __init__(self, path: str | Path | db.Location) -> None:
        self.path = db.Location.parse(path).resolve()  # a file, or a PostgreSQL journal
        self._conn: Conn | None = None

    @contextlib.contextmanager
    def reading(self) -> Iterator[Conn]:
        """A consistent snapshot of the file (the connection opens on first use)."""
        if self._conn is None:
            self._conn = db.open_backend(self.path).connect_read_only(any_thread=True)
        conn = self._conn
        db.begin_read(conn)
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
