"""A ``Judge`` built in process as the gate builds its own (``gate.deps.open_judge``), without Postgres or
HMA: one local bank, ``block``, and a policy file; for the judge's unit tests and the benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gate.hashing.hasher import Hasher
from gate.judge import Judge
from gate.matching.local import LocalBanks
from gate.matching.matcher import Matcher
from gate.policy.reload import PolicyHolder
from gate.ttl_cache import TtlCache


@dataclass
class LocalJudge:
    judge: Judge
    policy: PolicyHolder
    path: Path  # the policy file: rewrite it and ``policy.reload()`` to change the policy


async def local_judge(
    tmp: Path,
    policy: str,
    block: Iterable[str],
    hasher: Hasher,
    *extra: Matcher,
    cache_size: int = 16,
    cache_ttl: float = 60.0,
) -> LocalJudge:
    """The judge of ``policy`` (its text) over the local bank ``block`` (its rows, ``signal,hash``) and
    then the ``extra`` matchers, hashing with ``hasher``; its files under ``tmp``."""
    banks_dir = tmp / "banks"
    banks_dir.mkdir()
    (banks_dir / "block.csv").write_text("".join(f"{row}\n" for row in block))
    banks = LocalBanks(banks_dir)
    banks.load()
    path = tmp / "policy.toml"
    path.write_text(policy)
    holder = PolicyHolder(path, lambda: {"local": banks.names()})
    await holder.load_initial()
    return LocalJudge(Judge(holder, hasher, [banks, *extra], TtlCache(cache_size, cache_ttl)), holder, path)
