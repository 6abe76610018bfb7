"""The site policy: read from the projection, confirmed, loaded from a file."""

from __future__ import annotations

from contextlib import closing
from datetime import date
from pathlib import Path

import pytest

from cellauto.errors import BadInputError
from cellauto.records.backend import Location
from cellauto.records.site_payloads import PolicySet, SitePolicy
from cellauto.site.policy import (
    NoSitePolicyError,
    current_policy,
    load_policy_file,
    site_date,
    start_of_day_ns,
)

from .chain import POLICY, T0_NS, TERMINAL, append, site_db


def test_no_policy_names_the_bootstrap(db_location: Location) -> None:
    with (
        closing(site_db(db_location)) as conn,
        pytest.raises(NoSitePolicyError, match="users add NAME --role administrator"),
    ):
        current_policy(conn)


def test_the_last_policy_set_is_in_force(db_location: Location) -> None:
    with closing(site_db(db_location)) as conn:
        append(conn, PolicySet(by="bootstrap", old=None, new=POLICY, terminal=TERMINAL))
        berlin = POLICY.model_copy(update={"time_zone": "Europe/Berlin"})
        ref = append(conn, PolicySet(by="root", old=POLICY, new=berlin, terminal=TERMINAL))
        assert current_policy(conn) == (berlin, ref)


def test_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"time_zone": "Europe/Berlin", "max_failures": 5}')
    assert load_policy_file(path) == SitePolicy(time_zone="Europe/Berlin", max_failures=5)
    path.write_text('{"time_zone": "Mars/Olympus"}')
    with pytest.raises(BadInputError, match="not an IANA time zone"):
        load_policy_file(path)
    path.write_text('{"max_failures": 0}')
    with pytest.raises(BadInputError, match="is not a site policy"):
        load_policy_file(path)
    with pytest.raises(BadInputError, match="cannot read the policy file"):
        load_policy_file(tmp_path / "missing.json")


def test_days_are_counted_in_the_site_time_zone() -> None:
    tokyo = SitePolicy(time_zone="Asia/Tokyo")
    assert site_date(POLICY, T0_NS - 1) == date(2025, 12, 31)
    assert site_date(tokyo, T0_NS - 1) == date(2026, 1, 1)
    assert start_of_day_ns(tokyo, date(2026, 1, 1)) == T0_NS - 9 * 3600 * 10**9
