"""The security headers of every response, and the terminal an act from the web came from.

A strict Content-Security-Policy (no inline script or style, nothing from elsewhere, no
framing), no MIME sniffing, no referrer, no caching of pages that show batch data, and
HSTS when served over HTTPS. The referrer goes to this server's own pages only
(``same-origin``, not ``no-referrer``: under ``no-referrer`` Chromium posts forms with
``Origin: null``, and the origin check could not tell this app's forms from others').
Applied by a plain ASGI middleware so that every response, errors and static files
included, carries them.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cellauto.records.site_payload_base import Terminal

__all__ = ["CSP", "SecurityHeaders", "headers_for", "web_terminal"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def headers_for(*, secure: bool) -> list[tuple[bytes, bytes]]:
    """The headers every response gets (HSTS only over HTTPS)."""
    headers = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cache-control", b"no-store"),
    ]
    if secure:
        headers.append((b"strict-transport-security", b"max-age=31536000"))
    return headers


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP response (set, never doubled:
    a header the app set itself, such as a static file's cache policy, is kept)."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.headers = headers_for(secure=secure)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.headers if n not in have]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def web_terminal(remote_address: str | None) -> Terminal:
    """The terminal of an act from the web: this server's host and process, and the
    browser's address (Part 11's "workstation" is the client here)."""
    return Terminal(
        host=socket.gethostname(),
        pid=os.getpid(),
        tty=None,
        os_user=getpass.getuser(),
        remote_address=remote_address,
    )
