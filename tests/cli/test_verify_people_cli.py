"""`cellauto verify` covers accounts: an edited accounts row or credential is named."""

from __future__ import annotations

from contextlib import closing

from tests.cli.people import People, people, staffed
from tests.raw_sql import raw_connect

__all__ = ["people", "staffed"]  # fixtures


def test_a_staffed_site_verifies_intact(staffed: People) -> None:
    result = staffed.cli("verify", "--db", staffed.db)
    assert result.code == 0, result.out + result.err
    assert "site: intact" in result.out


def test_roles_edited_in_the_file_are_reported(staffed: People) -> None:
    with closing(raw_connect(staffed.db)) as conn:
        conn.execute("UPDATE accounts SET roles = '[\"operator\", \"qa\"]' WHERE name = 'alice'")
    result = staffed.cli("verify", "--db", staffed.db)
    assert result.code == 1
    assert "site: BROKEN" in result.out
    assert "alice" in result.out and "accounts" in result.out


def test_a_swapped_credential_is_reported(staffed: People) -> None:
    with closing(raw_connect(staffed.db)) as conn:
        conn.execute(
            "UPDATE credentials SET argon2 = (SELECT argon2 FROM credentials c2"
            " WHERE c2.name = 'carol' ORDER BY set_seq DESC LIMIT 1) WHERE name = 'alice'"
        )
    result = staffed.cli("verify", "--db", staffed.db)
    assert result.code == 1
    assert "site: BROKEN" in result.out and "alice" in result.out
