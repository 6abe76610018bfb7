"""Security: Basic256Sha256 SignAndEncrypt, a trust list and passwords; the rest refused."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from pydantic import SecretStr

from cellauto.clock import VirtualTimeEventLoop
from cellauto.errors import InstrumentError
from cellauto.instruments.bioreactor import Setpoints
from cellauto.instruments.opcua import OpcUaBioreactor
from cellauto.instruments.opcua.security import application_uri_of
from cellauto.sim.opcua import ServerSecurity, create_certificates, serve_bioreactor, trust
from tests.wire.test_opcua_support import leftover_tasks, make_bioreactor

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pki")
    server = create_certificates(folder, "bioreactor-sim", usage="server")
    client = create_certificates(folder, "runner", usage="client")
    rogue = create_certificates(folder / "rogue", "runner", usage="client")
    trust(folder / "trusted", client.certificate)
    security = ServerSecurity(
        certificate=server.certificate,
        private_key=server.private_key,
        trust_dir=folder / "trusted",
        users={"operator": SecretStr("s3cret")},
    )
    return {"server": server, "client": client, "rogue": rogue, "security": security}


def _options(pki: dict[str, Any], **changes: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "security": "Basic256Sha256",
        "certificate": pki["client"].certificate,
        "private_key": pki["client"].private_key,
        "server_certificate": pki["server"].certificate,
        "user": "operator",
        "password": "s3cret",
    }
    options.update(changes)
    return {key: value for key, value in options.items() if value is not None}


def test_create_certificates_names_the_application_and_keeps_existing_files(
    pki: dict[str, Any], tmp_path: Path
) -> None:
    files = pki["client"]
    assert files.certificate.name == "runner.der" and files.private_key.name == "runner.key.pem"
    assert application_uri_of(files.certificate) == "urn:cellauto:runner" == files.application_uri
    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError, match="overwrite=True"):
        create_certificates(files.certificate.parent, "runner")
    with pytest.raises(ValueError, match="common name"):
        create_certificates(tmp_path, "../escape")


async def test_a_trusted_client_with_a_password_works_encrypted(pki: dict[str, Any]) -> None:
    sim = make_bioreactor()
    async with serve_bioreactor(sim, security=pki["security"]) as server:
        adapter = await OpcUaBioreactor.connect(server.url, clock=sim.world.clock, **_options(pki))
        async with adapter:
            assert adapter.identity.serial == "BR-0001"
            policy = adapter._link.conn.client.security_policy
            assert policy.URI.endswith("#Basic256Sha256") and policy.Mode.name == "SignAndEncrypt"
            assert (await adapter.set_setpoints(Setpoints(ph=7.1))).ph == 7.1


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"certificate": "rogue", "private_key": "rogue"}, "BadCertificateUntrusted"),
        ({"password": "guess"}, "BadUserAccessDenied"),
        ({"user": None, "password": None}, "BadIdentityTokenRejected"),
        (
            {"security": "none", "certificate": None, "private_key": None},
            "BadSecurityPolicyRejected",
        ),
    ],
    ids=["untrusted certificate", "wrong password", "anonymous", "security policy None"],
)
async def test_refused_connections_name_the_reason(
    pki: dict[str, Any], changes: dict[str, Any], refusal: str
) -> None:
    rogue = pki["rogue"]
    if changes.get("certificate") == "rogue":
        changes = {"certificate": rogue.certificate, "private_key": rogue.private_key}
    sim = make_bioreactor()
    async with serve_bioreactor(sim, security=pki["security"]) as server:
        with pytest.raises(InstrumentError, match=refusal) as caught:
            await OpcUaBioreactor.connect(
                server.url, clock=sim.world.clock, timeout_s=2.0, **_options(pki, **changes)
            )
        assert f"cannot connect to {server.url}" in str(caught.value)
    assert leftover_tasks() == []


async def test_an_unsecured_channel_serves_discovery_only(pki: dict[str, Any]) -> None:
    """asyncua's server would serve a session on a None channel; ours answers discovery only."""
    sim = make_bioreactor()
    async with serve_bioreactor(sim, security=pki["security"]) as server:
        client = Client(server.url, watchdog_intervall=3600.0)
        offered = await _real_time(client.connect_and_get_server_endpoints())
        assert [(e.SecurityPolicyUri.split("#")[1], e.SecurityMode.name) for e in offered] == [
            ("Basic256Sha256", "SignAndEncrypt")
        ]
        client.set_user("operator")
        client.set_password("s3cret")
        with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
            await _real_time(client.connect())


async def _real_time(awaitable: Any) -> Any:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeEventLoop)
    with loop.real_time():
        return await awaitable
