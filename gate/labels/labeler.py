"""``Labeler``: the labels as the gate serves them — signed, and a process-wide signal when new ones exist.

Signing happens here, in the process that serves labels (``serve``), the only one that holds the key: a
row is signed the first time it is served and its signature stored, so every later reader (and every
replica) hands out the same bytes. A row signed by an older key is signed again with the current one,
since verifiers look up the key the labeler's DID document names now.

New labels reach subscribers through Postgres, whichever process wrote them (the firehose watcher is its
own process): ``watch`` polls the log's head every ``GATE_LABELS_POLL_INTERVAL`` and wakes every
subscriber waiting beyond it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gate import metrics
from gate.labels.key import LabelerKey
from gate.labels.label import Label, reads_as_link
from gate.labels.store import LabelRow, LabelStore
from gate.watch import every

SIGN_ATTEMPTS = 16  # one signature in ~1100 reads as a link: sixteen in a row never happen


class Labeler:
    def __init__(
        self,
        did: str,
        key: LabelerKey,
        store: LabelStore,
        *,
        poll_interval: float = 1.0,
        max_subscribers: int = 100,
    ) -> None:
        self.did = did
        self.key = key
        self.store = store
        self.poll_interval = poll_interval
        self.max_subscribers = max_subscribers
        self.head = 0  # the highest seq known written
        self._changed = asyncio.Condition()
        self.subscribers = 0

    async def signed(self, rows: Sequence[LabelRow]) -> list[Label]:
        """The rows' labels, each with a signature by the current key."""
        signer = self.key.did_key
        fresh = [r for r in rows if r.signed_by != signer]
        todo = [(r.seq, self.sign(r.label)) for r in fresh]
        stored = await self.store.store_signatures(todo, signer) if todo else {}
        for r in fresh:
            metrics.LABELS_SIGNED.labels("negated" if r.label.neg else "applied").inc()
        return [r.label.signed(stored[r.seq]) if r.seq in stored else r.label for r in rows]

    def sign(self, label: Label) -> bytes:
        """A signature of ``label`` that travels as bytes in a DAG-CBOR frame: ECDSA signatures are
        randomised, so one libipld would mistake for a CID link (``reads_as_link``) is made again."""
        data = label.signing_bytes()
        for _ in range(SIGN_ATTEMPTS):
            sig = self.key.sign(data)
            if not reads_as_link(sig):
                return sig
        raise RuntimeError("every signature read as a CID link: the key's signatures are not randomised")

    async def refresh(self) -> None:
        """Read the log's head; wake the subscribers when it moved."""
        head = await self.store.head()
        if head != self.head:
            self.head = head
            async with self._changed:
                self._changed.notify_all()

    async def wait_beyond(self, seq: int) -> None:
        """Return once a label after ``seq`` is known to exist."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.head > seq)

    async def watch(self) -> None:
        await every(self.poll_interval, self.refresh, what="reading the labels log's head", now=True)
