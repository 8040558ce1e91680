"""``upload-gate check-policy NEW.toml --against-log [--since 30d]``: the back-test, on the gate's Postgres
(DATABASE_URL, or the embedded one of GATE_DATA_DIR) and the local banks the check used."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gate.matching.bank_set import BankError
from gate.matching.local import LocalBanks
from gate.policy.backtest import back_test
from gate.policy.model import Policy
from gate.store.command import with_pool
from gate.store.pool import Pool
from gate.store.query import parse_when


def run_back_test(args: argparse.Namespace, policy: Policy, banks_dir: Path) -> int:
    try:
        since = parse_when(args.since)
    except ValueError as exc:
        print(f"--since: {exc}", file=sys.stderr)
        return 2
    banks = LocalBanks(banks_dir)
    try:
        banks.load()
    except BankError as exc:
        print(f"banks {banks_dir}: {exc}", file=sys.stderr)
        return 1

    async def work(pool: Pool) -> int:
        report = await back_test(pool, policy, banks, since, examples=args.examples)
        sys.stdout.write(json.dumps(report.to_json(), sort_keys=True) + "\n" if args.json else report.text())
        return 0

    return with_pool(args, work)
