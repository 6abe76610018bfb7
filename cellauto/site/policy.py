"""The site policy in force: the last ``policy_set`` record, as the projection holds it.

``meta.site_policy`` (JSON), ``meta.site_policy_seq`` and ``meta.site_policy_hash`` are
written by the projection with each ``policy_set`` record; :func:`current_policy`
confirms them against that record (stored hash, recomputed hash, same policy) before
anything relies on them.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from cellauto.errors import BadInputError, JournalError
from cellauto.records.backend import Conn
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import PolicySet, SitePolicy
from cellauto.site._chain import VERIFY_HINT, stored_site_record

__all__ = [
    "NoSitePolicyError",
    "current_policy",
    "end_of_day_ns",
    "load_policy_file",
    "site_date",
    "start_of_day_ns",
    "utc_datetime",
    "zone_of",
]

BOOTSTRAP_HINT = (
    "the journal has no accounts yet; create the first administrator with "
    "`cellauto users add NAME --role administrator --full-name TEXT`"
)


class NoSitePolicyError(BadInputError):
    """The journal has no site policy: no account was ever created in it."""


def zone_of(policy: SitePolicy) -> ZoneInfo:
    try:
        return ZoneInfo(policy.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadInputError(
            f"site policy time zone {policy.time_zone!r} is not an IANA time zone "
            "(e.g. 'Europe/Berlin', 'UTC')"
        ) from exc


def site_date(policy: SitePolicy, wall_time_ns: int) -> date:
    """The calendar date at ``wall_time_ns`` in the site's time zone."""
    return utc_datetime(wall_time_ns).astimezone(zone_of(policy)).date()


def utc_datetime(wall_time_ns: int) -> datetime:
    """``wall_time_ns`` as an aware UTC datetime (µs, exact: no float on the way)."""
    seconds, rest_ns = divmod(wall_time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=rest_ns // 1000)


def start_of_day_ns(policy: SitePolicy, day: date) -> int:
    """Wall time (ns) of 00:00 of ``day`` in the site's time zone."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone_of(policy))
    return int(start.timestamp()) * 1_000_000_000


def end_of_day_ns(policy: SitePolicy, day: date) -> int:
    """Wall time (ns) when ``day`` ends in the site's time zone (00:00 of the next day)."""
    return start_of_day_ns(policy, day + timedelta(days=1))


def current_policy(conn: Conn) -> tuple[SitePolicy, SiteRef]:
    """The policy in force and the ``policy_set`` record it comes from, confirmed."""
    rows = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN"
            " ('site_policy', 'site_policy_seq', 'site_policy_hash')"
        ).fetchall()
    )
    if "site_policy" not in rows:
        raise NoSitePolicyError(f"no site policy: {BOOTSTRAP_HINT}")
    try:
        policy = SitePolicy.model_validate_json(rows["site_policy"])
        ref = SiteRef(seq=int(rows["site_policy_seq"]), hash=rows["site_policy_hash"])
    except (KeyError, ValueError, ValidationError) as exc:
        raise JournalError(f"the stored site policy cannot be read: {exc}; {VERIFY_HINT}") from exc
    record = stored_site_record(conn, ref.seq)
    if (
        record is None
        or record.hash != ref.hash
        or not isinstance(record.payload, PolicySet)
        or record.payload.new != policy
    ):
        raise JournalError(
            f"the stored site policy does not match site record {ref.seq}; {VERIFY_HINT}"
        )
    return policy, ref


def load_policy_file(path: Path) -> SitePolicy:
    """A site policy from a JSON file (missing fields take their defaults)."""
    try:
        policy = SitePolicy.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise BadInputError(f"cannot read the policy file {str(path)!r}: {exc}") from exc
    except ValidationError as exc:
        raise BadInputError(f"policy file {str(path)!r} is not a site policy: {exc}") from exc
    zone_of(policy)
    return policy


def site_zone(conn: Conn) -> tzinfo:
    """The site's time zone, in which a lot's expiry day and an instrument's calibration
    day are read (UTC for a site without a policy: a simulated one)."""
    try:
        policy, _ = current_policy(conn)
    except (BadInputError, sqlite3.Error):
        return UTC
    return zone_of(policy)
