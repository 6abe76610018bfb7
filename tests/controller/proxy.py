"""A small TCP proxy in front of the test's PostgreSQL server, to cut a controller's link.

iptables is not available in the tests: a controller is pointed at the proxy instead of
the server. :meth:`TcpProxy.cut` closes every connection and the listening socket (new
connections are refused: the link is dead); :meth:`TcpProxy.drop` closes the
connections whose first bytes (the startup packet, which names the
``application_name``) contain a marker, and keeps serving: a connection dropped and
made again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target`` (host, port), one thread pair a connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket, bytes]] = []
        self._closed = False
        threading.Thread(target=self._accept, name="proxy accept", daemon=True).start()

    def url(self, url: str) -> str:
        """``url`` (of the target server) pointed at this proxy."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._start, args=(client, server), daemon=True).start()

    def _start(self, client: socket.socket, server: socket.socket) -> None:
        head = b""
        try:
            while True:  # SSL/GSS requests (answered by one byte), then the startup packet
                packet = _read_packet(client)
                server.sendall(packet)
                if len(packet) == 8 and packet[4:6] == b"\x04\xd2":
                    client.sendall(server.recv(1))
                    continue
                head = packet
                break
        except OSError:
            _close(client, server)
            return
        with self._lock:
            if self._closed:
                _close(client, server)
                return
            self._pairs.append((client, server, head))
        threading.Thread(target=_pump, args=(server, client), daemon=True).start()
        _pump(client, server)

    def drop(self, marker: bytes) -> int:
        """Close the connections whose startup packet holds ``marker``; how many."""
        with self._lock:
            chosen = [pair for pair in self._pairs if marker in pair[2]]
            self._pairs = [pair for pair in self._pairs if marker not in pair[2]]
        for client, server, _ in chosen:
            _close(client, server)
        return len(chosen)

    def cut(self) -> None:
        """The link dies: every connection closed, new ones refused."""
        with self._lock:
            self._closed = True
            pairs, self._pairs = self._pairs, []
        self._listener.close()
        for client, server, _ in pairs:
            _close(client, server)


def _read_packet(sock: socket.socket) -> bytes:
    data = _read(sock, 4)
    return data + _read(sock, int.from_bytes(data, "big") - 4)


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise OSError("closed")
        data += more
    return data


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    while True:
        try:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
        except OSError:
            break
    _close(source, sink)
