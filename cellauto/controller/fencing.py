"""A controller's self-fence: it stops itself when it cannot reach the journal.

On PostgreSQL a controller cut off from the server (a dead link, a partition) could go
on driving its instruments while its peers, seeing its presence end, take its runs
over. So the writer's heartbeat commits at least every ``self_fence_s / 4`` while runs
are held, the control connection's heartbeat as often, and a watchdog thread checks
the time since the last *successful* commit of each: past ``self_fence_s`` the
controller fences itself: it starts no further physical action (every action waits for
its durable intent, which cannot commit; the process ends at once, so none starts
later), its runs stay where they are (held here, resumed by a peer), and it exits with
:data:`EXIT_FENCED` for its supervisor (systemd, ``Restart=on-failure``) to start it
again.

The timing (design §4.3): a link dying at t0 fences the controller by t0 +
``self_fence_s``; the server ends its session no earlier than t0 + :data:`KEEPALIVE_S`
(TCP keepalives of the control session) and peers take over ``grace_s`` later. Hence
the checks at start: ``self_fence_s < KEEPALIVE_S + grace_s`` and ``< stale_s``.

The watchdog is a thread, not a task of the event loop: the loop may itself be blocked
in a call on the dead link (libpq's ``tcp_user_timeout`` makes such a call fail after
:data:`TCP_USER_TIMEOUT_MS`, but the fence must not wait for it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cellauto.errors import CellautoError

__all__ = [
    "EXIT_FENCED",
    "KEEPALIVE_S",
    "TCP_USER_TIMEOUT_MS",
    "SelfFence",
    "check_self_fence",
    "with_user_timeout",
]

log = logging.getLogger(__name__)

KEEPALIVE_S = 5 + 3 * 2
"""The server ends a vanished controller's control session at the earliest this long
after the link died (``tcp_keepalives_idle`` 5 s + ``count`` 3 x ``interval`` 2 s, set by
:mod:`cellauto.controller.presence`)."""

TCP_USER_TIMEOUT_MS = 8000
"""libpq ``tcp_user_timeout``: a call whose data is not acknowledged this long fails
(rather than hang on a dead link)."""

EXIT_FENCED = 3
"""The exit status of a controller that fenced itself."""


def check_self_fence(self_fence_s: float, *, grace_s: float, stale_s: float) -> None:
    """Refuse settings under which peers could take runs over before this controller
    fenced itself."""
    if not self_fence_s > 0:
        raise CellautoError(f"--self-fence-s must be more than 0 s, not {self_fence_s:g}")
    if not self_fence_s < KEEPALIVE_S + grace_s:
        raise CellautoError(
            f"--self-fence-s {self_fence_s:g} must be less than {KEEPALIVE_S} s (the server's "
            f"keepalive ending a dead controller's session) + --grace-s {grace_s:g}: peers "
            "could take this controller's runs over before it stops driving them. Lower "
            "--self-fence-s or raise --grace-s"
        )
    if not self_fence_s < stale_s:
        raise CellautoError(
            f"--self-fence-s {self_fence_s:g} must be less than --stale-s {stale_s:g}: a "
            "peer could take a run over as stale before this controller stops driving it. "
            "Lower --self-fence-s or raise --stale-s"
        )


def with_user_timeout(url: str) -> str:
    """``url`` with libpq's ``tcp_user_timeout`` (unless it names one already)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "tcp_user_timeout" for key, _ in query):
        return url
    query.append(("tcp_user_timeout", str(TCP_USER_TIMEOUT_MS)))
    return urlunsplit(parts._replace(query=urlencode(query)))


class SelfFence:
    """The watchdog thread (see the module doc).

    ``commit_age_s()``: real seconds since the journal writer's last successful commit,
    None while no run is held. :meth:`presence_ok` is called after each successful
    heartbeat of the control connection. ``on_fence(reason)`` is called once, from the
    watchdog thread, when either is older than ``limit_s``; it does not return (it ends
    the process) in the service.
    """

    def __init__(
        self,
        limit_s: float,
        *,
        commit_age_s: Callable[[], float | None],
        on_fence: Callable[[str], None],
    ) -> None:
        self.limit_s = limit_s
        self._commit_age_s = commit_age_s
        self._on_fence = on_fence
        self._presence_at = time.monotonic()
        self._held_since: float | None = None
        self._stop = threading.Event()
        self.fenced: str | None = None
        self._thread = threading.Thread(target=self._watch, name="self-fence", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def presence_ok(self) -> None:
        self._presence_at = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def check(self) -> str | None:
        """Why this controller must fence itself now, or None."""
        now = time.monotonic()
        presence_age_s = now - self._presence_at
        if presence_age_s > self.limit_s:
            return f"no heartbeat of its control connection for {presence_age_s:.1f} s"
        age_s = self._commit_age_s()
        if age_s is None:
            self._held_since = None
            return None
        if self._held_since is None:  # runs held from now: the writer beats at once
            self._held_since = now
        age_s = min(age_s, now - self._held_since)
        if age_s > self.limit_s:
            return f"no commit of its journal writer for {age_s:.1f} s"
        return None

    def _watch(self) -> None:
        period_s = max(self.limit_s / 8, 0.01)
        while not self._stop.wait(period_s):
            why = self.check()
            if why is not None:
                self.fenced = why
                log.error("self-fence: %s", why)
                self._on_fence(why)
                return


def exit_fenced() -> None:
    """End the process at once with :data:`EXIT_FENCED` (nothing more runs: no cleanup
    that could touch an instrument or wait on the dead link)."""
    logging.shutdown()
    os._exit(EXIT_FENCED)
