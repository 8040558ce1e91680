"""Blobs the gate withholds from ``com.atproto.sync.getBlob``: everything it rejected, quarantined or
confirmed, so a blob that reached the PDS by another path (an older upload, a direct connection, a
migration) cannot be served through the gate.

The set holds SHA-256 digests, not CID strings: the PDS parses the ``cid`` parameter (base32, base58btc,
base36, a v0 ``Qm…`` CID), so one blob has many spellings. Any CID whose multihash is a blocked SHA-256
is withheld whatever its codec or version — over-withholding is harmless, under-withholding is a bypass.
The set is in memory (a lookup costs one dict probe), filled by the pipeline as it blocks and refreshed
from Postgres (``gate.store.blocked``) in the background. The answer for a withheld blob is the PDS's own
for a missing one (``gate.answers.blob_not_found``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

import libipld

from gate import metrics
from gate.watch import every

log = logging.getLogger(__name__)

SHA2_256 = 0x12  # the multihash code of SHA-256


def cid_sha256(cid: str) -> str | None:
    """The SHA-256 digest (hex) a CID string names, or None when it names none / does not parse.

    Parsed by libipld (the atproto SDK's IPLD library, Rust's ``cid`` and ``multibase`` crates): every
    multibase the PDS's parser knows and more (base32 in either case, base58btc, base36, base16, a v0
    ``Qm…``), whatever the codec."""
    try:
        parsed = libipld.decode_cid(cid.strip())
    except ValueError:
        return None
    multihash = parsed["hash"]
    digest = multihash["digest"]
    if multihash["code"] != SHA2_256 or len(digest) != 32:
        return None
    return bytes(digest).hex()


class WithheldBlobs:
    def __init__(self) -> None:
        self._blocked: set[str] = set()
        # Blocked here but not yet seen in Postgres (the decision row is written after the answer): a
        # refresh keeps them until a load contains them, so a refresh racing the write cannot drop one.
        self._recent: set[str] = set()

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._blocked

    def __len__(self) -> int:
        return len(self._blocked)

    def add(self, sha256: str) -> None:
        self._blocked.add(sha256)
        self._recent.add(sha256)
        metrics.WITHHELD_BLOBS.set(len(self._blocked))

    def discard(self, sha256: str) -> None:
        """A release: the blob may be served again (until the next refresh says otherwise)."""
        self._blocked.discard(sha256)
        self._recent.discard(sha256)
        metrics.WITHHELD_BLOBS.set(len(self._blocked))

    def withholds(self, cids: Iterable[str]) -> bool:
        """True when any of a getBlob request's ``cid`` parameters names a blocked blob."""
        return any((sha := cid_sha256(v)) is not None and sha in self._blocked for v in cids)

    async def refresh(self, load: Callable[[], Awaitable[set[str]]]) -> None:
        fresh = await load()
        self._recent -= fresh  # durable now: the database speaks for them from here on
        self._blocked = fresh | self._recent
        metrics.WITHHELD_BLOBS.set(len(self._blocked))

    async def watch(self, load: Callable[[], Awaitable[set[str]]], interval: float) -> None:
        """Refresh until cancelled. A failing database keeps the last set (never an empty one)."""
        failing = False

        async def step() -> None:
            nonlocal failing
            try:
                await self.refresh(load)
                if failing:
                    log.info("withheld blobs: refreshed again (%d blocked)", len(self._blocked))
                failing = False
            except Exception as exc:  # keep serving the last known set
                if not failing:
                    log.error(
                        "withheld blobs: refresh failed (%s); keeping %d", type(exc).__name__, len(self)
                    )
                failing = True

        await every(interval, step, what="withheld blobs refresh", now=True)
