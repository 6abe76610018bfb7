"""A lot reserved by a run this process holds is not free to the next run's check, on
either backend: the check and the claim name the journal alike (the owner key)."""

from __future__ import annotations

from contextlib import closing

import pytest

from cellauto.errors import MaterialRefusedError
from cellauto.protocols import Runner
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.site.view import FileSite
from tests.protocols.materials_kit import LINE, START, define, file_site, il2_protocol, lot

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_lot_reserved_by_a_live_run_is_not_free(db_location: Location) -> None:
    where = db_location.url or db_location.sqlite_path()
    file_site(where, [define(), *lot("il2/L1", quantity_ml=3.0)])  # type: ignore[arg-type]
    with Journal(db_location) as journal, closing(FileSite(where)) as site:
        runner = Runner(journal, clock_origin=START)
        runner.prepare(il2_protocol(), LINE, site=site)
        with pytest.raises(MaterialRefusedError, match=r"1 mL free \(reserved 2 by other runs\)"):
            runner.prepare(il2_protocol(), LINE, site=site)
