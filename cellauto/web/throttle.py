"""How often one address may fail to sign in before it must wait.

Lockout protects each account; this protects the server and the journal from a
stranger: after :data:`MAX_FAILURES` failed sign-ins from one address within
:data:`WINDOW_S`, that address's sign-ins are refused for :data:`WINDOW_S` without a
password being checked or anything journaled (429, in the server log). Signing in has
a lane of its own, so a flood of attempts never delays a signed act of the line.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["MAX_FAILURES", "WINDOW_S", "SignInThrottle"]

MAX_FAILURES = 10
WINDOW_S = 300.0
_MAX_ADDRESSES = 10_000


class SignInThrottle:
    """Failed sign-ins per address in a sliding window (memory bounded)."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures, self.window_s = max_failures, window_s
        self._now = monotonic
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        seen = self._failures.get(address, deque())
        while seen and now - seen[0] > self.window_s:
            seen.popleft()
        return seen

    def wait_s(self, address: str | None) -> float:
        """Seconds ``address`` must wait before trying again (0: it may try now)."""
        now = self._now()
        with self._lock:
            seen = self._recent(address or "?", now)
            if len(seen) < self.max_failures:
                return 0.0
            return max(0.0, self.window_s - (now - seen[0]))

    def failed(self, address: str | None) -> None:
        now = self._now()
        with self._lock:
            if len(self._failures) >= _MAX_ADDRESSES:  # forget the oldest addresses
                for key in list(self._failures)[: _MAX_ADDRESSES // 10]:
                    del self._failures[key]
            seen = self._recent(address or "?", now)
            seen.append(now)
            self._failures[address or "?"] = seen

    def succeeded(self, address: str | None) -> None:
        with self._lock:
            self._failures.pop(address or "?", None)
