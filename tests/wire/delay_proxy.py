"""A TCP relay on loopback that holds every reply for a fixed real time (no tests here).

It runs in threads with blocking sockets, so its delay is real time whatever the test's
event loop does with its clock.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class DelayProxy:
    """Relays 127.0.0.1:``port`` to ``upstream``; data from upstream waits ``delay_s``."""

    def __init__(self, upstream_port: int, delay_s: float) -> None:
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()

    def __enter__(self) -> DelayProxy:
        self._spawn(self._accept)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed.set()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, 0.0)
            self._spawn(self._pump, upstream, client, self.delay_s)

    def _pump(self, source: socket.socket, target: socket.socket, delay_s: float) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    break
                if delay_s:
                    time.sleep(delay_s)
                target.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
