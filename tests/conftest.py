"""Shared fixtures. Every server a test starts listens on 127.0.0.1 with an ephemeral port."""

from tests.support.postgres import fresh_dsn, pg_dsn

__all__ = ["fresh_dsn", "pg_dsn"]  # one session Postgres for every suite that needs one
