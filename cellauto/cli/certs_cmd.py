"""``cellauto certs create``: certificates for OPC UA servers and clients (Basic256Sha256)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cellauto.errors import BadInputError


def add_parser(sub: Any) -> None:
    certs = sub.add_parser("certs", help="OPC UA certificates", description=__doc__)
    certs_sub = certs.add_subparsers(dest="certs_command", required=True)
    p = certs_sub.add_parser(
        "create",
        help="create a self-signed certificate and private key",
        description="Write NAME.der and NAME.key.pem into DIR (an application instance "
        "certificate for OPC UA Basic256Sha256). Trust it on the other side by copying "
        "the .der file into that side's trust list.",
    )
    p.add_argument("directory", type=Path, metavar="DIR")
    p.add_argument("--name", required=True, help="common name, e.g. runner or bioreactor-1")
    p.add_argument("--usage", choices=["server", "client", "both"], default="both")
    p.add_argument("--hostname", action="append", default=[], help="SubjectAltName DNS name")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.set_defaults(handler=create_command)


def create_command(args: argparse.Namespace) -> int:
    from cellauto.sim.opcua import create_certificates

    try:
        files = create_certificates(
            args.directory,
            args.name,
            usage=args.usage,
            hostnames=args.hostname or ("localhost",),
            days=args.days,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError) as exc:
        raise BadInputError(str(exc)) from None
    for path in (files.certificate, files.private_key):
        print(path)
    return 0
