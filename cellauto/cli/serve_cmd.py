"""``cellauto serve``: the operator and QA web app over a journal.

Binds 127.0.0.1 unless told otherwise. Another host is served only over HTTPS
(``--cert`` and ``--key``, PEM files): a plant network never sees passwords in plain
text; ``--plain-http`` overrides that for a network the site has secured otherwise.
Behind a reverse proxy that serves HTTPS to the browsers, ``--behind-proxy ADDR`` names
it: its ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are trusted (from it alone), so the
browser's address is journaled and the cookies are ``Secure``; the proxy must pass the
``Host`` header on. ``--port 0`` takes a free port. Once it listens, the first line on
standard output is ``serving URL``. Runs until interrupted (SIGINT or SIGTERM). Exit 2:
bad input (no such journal, a certificate without its key, a non-loopback host over
plain HTTP, a proxy not named by its address, the ``[web]`` extra not installed).
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any

from cellauto.cli._db import add_db_argument, journal_exists
from cellauto.errors import BadInputError

__all__ = ["add_parser", "serve_command"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="the operator and QA web app", description=__doc__)
    add_db_argument(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0: a free one; default 8000)")
    p.add_argument("--cert", type=Path, metavar="PEM", help="TLS certificate (HTTPS)")
    p.add_argument("--key", type=Path, metavar="PEM", help="TLS private key (HTTPS)")
    p.add_argument(
        "--plain-http",
        action="store_true",
        help="serve another host than this machine without HTTPS (not recommended)",
    )
    p.add_argument(
        "--behind-proxy",
        metavar="ADDR[,ADDR]",
        default="",
        help="the addresses of the HTTPS reverse proxy in front: their X-Forwarded-For and"
        " X-Forwarded-Proto are trusted (the browser's address is journaled; cookies Secure)",
    )
    p.add_argument(
        "--poll-ms",
        type=int,
        default=100,
        metavar="MS",
        help="how often the journal is looked at for new records (default 100 ms; 10-5000)",
    )
    p.set_defaults(handler=serve_command)


def _proxies(text: str) -> tuple[str, ...]:
    """The proxies' addresses of ``--behind-proxy`` (IP addresses only)."""
    found = tuple(part.strip() for part in text.split(",") if part.strip())
    for address in found:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise BadInputError(
                f"--behind-proxy {address!r} is not an IP address; give the reverse proxy's"
                " address(es), comma-separated"
            ) from None
    return found


def _checked(args: argparse.Namespace) -> bool:
    """Whether HTTPS is served; BadInputError for what cannot be served."""
    from cellauto.web.config import is_loopback

    if (args.cert is None) != (args.key is None):
        raise BadInputError("give --cert and --key together (HTTPS), or neither")
    for path in (args.cert, args.key):
        if path is not None and not path.is_file():
            raise BadInputError(f"{path} is not a file")
    if args.key is not None and args.key.stat().st_mode & 0o077:
        raise BadInputError(
            f"{args.key} may be read by other accounts: a TLS private key is kept readable"
            f" only by the account that serves (chmod 600 {args.key})"
        )
    secure = args.cert is not None
    if not secure and not is_loopback(args.host) and not args.plain_http:
        raise BadInputError(
            f"--host {args.host} is reachable from other machines: serve it over HTTPS"
            " (--cert PEM --key PEM), or give --plain-http if the network is secured otherwise"
        )
    if not 10 <= args.poll_ms <= 5000:
        raise BadInputError(f"--poll-ms {args.poll_ms} is out of range: give 10 to 5000 ms")
    if not 0 <= args.port <= 65535:
        raise BadInputError(f"--port {args.port} is not a port (0-65535)")
    if not journal_exists(args.db):
        raise BadInputError(f"no journal at {args.db}; give --db PATH or --db postgresql://…")
    return secure


def serve_command(args: argparse.Namespace) -> int:
    from cellauto.web import require_web_extra

    require_web_extra()
    secure = _checked(args)
    import uvicorn

    from cellauto.web.app import create_app
    from cellauto.web.config import WebConfig

    proxies = _proxies(args.behind_proxy)
    web_config = WebConfig(
        db=args.db,
        secure=secure or bool(proxies),  # the proxy serves HTTPS to the browsers
        poll_s=args.poll_ms / 1000,
        behind_proxy=proxies,
    )
    app = create_app(web_config)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=None if args.cert is None else str(args.cert),
        ssl_keyfile=None if args.key is None else str(args.key),
        # X-Forwarded-* only from the named proxies (uvicorn would trust 127.0.0.1 by
        # default: a local process could then forge the journaled address)
        proxy_headers=bool(proxies),
        forwarded_allow_ips=list(proxies) or None,
        server_header=False,
        date_header=False,
        log_config=None,
        lifespan="on",
    )
    scheme = "https" if secure else "http"  # where this process listens (not the proxy)

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            for listener in self.servers:
                for sock in listener.sockets:
                    host, port = sock.getsockname()[:2]
                    shown = f"[{host}]" if ":" in host else host
                    print(f"serving {scheme}://{shown}:{port}", flush=True)
                    return

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            app.state.services.hub.end_streams()  # else the server waits for open streams
            await super().shutdown(sockets=sockets)

    Announcing(config).run()
    sys.stdout.flush()
    return 0
