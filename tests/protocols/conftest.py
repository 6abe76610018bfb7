"""Fixtures of the protocols tests."""

from tests.raw_sql import close_pg_pools_after_test  # noqa: F401  (autouse)
