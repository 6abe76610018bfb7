"""Opening a journal's site store with the people projections, and who is acting where."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable

from cellauto.records.backend import Location
from cellauto.records.signing import Signer
from cellauto.records.site_payloads import Terminal
from cellauto.records.site_store import SiteStore
from cellauto.site.projection import apply_projection

__all__ = ["open_site_store", "this_terminal"]


def open_site_store(
    path: str | os.PathLike[str] | Location,
    *,
    create: bool = False,
    signing_key: Signer | str | os.PathLike[str] | None = None,
    any_thread: bool = False,
) -> SiteStore:
    """The journal at ``path`` opened to write site records, projected by
    :func:`~cellauto.site.projection.apply_projection`."""
    return SiteStore(
        path if isinstance(path, Location) else Location.parse(path),
        project=apply_projection,
        signing_key=signing_key,
        create=create,
        any_thread=any_thread,
    )


def _tty() -> str | None:
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.ttyname(fd)
        except OSError:
            continue
    return None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a container)
        return str(os.getuid())


def this_terminal(
    *, tty: Callable[[], str | None] = _tty, remote_address: str | None = None
) -> Terminal:
    """Where this process runs: Part 11's "workstation" of an act."""
    return Terminal(
        host=socket.gethostname(),
        pid=os.getpid(),
        tty=tty(),
        os_user=_os_user(),
        remote_address=remote_address,
    )
