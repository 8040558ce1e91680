"""Postgres for the gate's parts: the one error they raise when it cannot answer."""

from __future__ import annotations

import asyncpg

from gate.errors import Unavailable

# What "Postgres cannot answer now" looks like from asyncpg: retried later, never a verdict.
DB_ERRORS = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError)


class StoreUnavailable(Unavailable):
    """Postgres could not take or give what was asked (down, slow, or refusing); nothing changed."""
