"""Firehose frames as the watcher needs them: which blobs each commit's new records reference.

Decoding is the atproto SDK's (``atproto_subscription``'s frame reader, the generated
``com.atproto.sync.subscribeRepos`` models, ``atproto_core``'s CAR reader over libipld); nothing here
parses CBOR or CAR itself. Every record created or updated in a commit is walked for blob references —
``{"$type": "blob", "ref": <link>, "mimeType", "size"}`` anywhere in it, whatever its collection: post
images, video, external thumbnails, avatars and banners, list and feed-generator avatars, and record
types this code has never heard of. Deleted records carry no blocks.

Trust boundary: frames come from a relay or PDS and their records from any account on the network;
everything is bounded (a record's depth, the blobs taken from one commit) and a frame that does not
decode is one ``Malformed`` event, counted, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import libipld
from atproto_client.models.com.atproto.sync.subscribe_repos import Commit
from atproto_core.car import CAR
from atproto_firehose import parse_subscribe_repos_message
from atproto_subscription.frames import ErrorFrame, Frame, MessageFrame

MAX_DEPTH = 32  # records nest a few levels; an adversarial one is not followed further
MAX_BLOBS_PER_COMMIT = 256
BSKY_COLLECTIONS = (
    "app.bsky.",
    "chat.bsky.",
)  # record types every AppView knows; the rest count as "other"  # a post has at most 4 images; a commit may batch many records


@dataclass(frozen=True, slots=True)
class BlobRef:
    uri: str  # at://DID/COLLECTION/RKEY of the record that references it
    cid: str
    mime_type: str | None
    size: int | None
    record_cid: str | None = None  # the version of the record that references it (a report's strongRef)


@dataclass(frozen=True, slots=True)
class CommitEvent:
    seq: int
    repo: str  # the author's DID
    time: datetime | None  # when the PDS made the commit (the lag is measured from it)
    blobs: tuple[BlobRef, ...]
    truncated: bool = False  # more blobs than MAX_BLOBS_PER_COMMIT: the rest were not taken
    records: dict[str, int] = field(default_factory=dict)  # records created/updated, by collection family


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """A frame with a sequence number and nothing to judge (#identity, #account, #sync, a tooBig commit…)."""

    seq: int | None
    kind: str


@dataclass(frozen=True, slots=True)
class StreamError:
    """The firehose's own error frame (FutureCursor, ConsumerTooSlow…): the connection ends after it."""

    error: str
    message: str | None


@dataclass(frozen=True, slots=True)
class Malformed:
    why: str  # bounded: "frame" | "body" | "car" | "record"
    seq: int | None = None


Event = CommitEvent | OtherEvent | StreamError | Malformed


def walk_blobs(value: Any, depth: int = 0) -> Iterator[tuple[str, str | None, int | None]]:
    """``(cid, mimeType, size)`` of every blob reference in a decoded record, in document order."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        if value.get("$type") == "blob":
            ref = value.get("ref")
            if isinstance(ref, bytes | str):
                cid = libipld.encode_cid(ref) if isinstance(ref, bytes) else ref
                mime = value.get("mimeType")
                size = value.get("size")
                yield (
                    str(cid),
                    mime if isinstance(mime, str) else None,
                    size if isinstance(size, int) and not isinstance(size, bool) else None,
                )
            return
        for item in value.values():
            yield from walk_blobs(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from walk_blobs(item, depth + 1)


def _time(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def commit_event(commit: Commit) -> CommitEvent | Malformed:
    wanted = [op for op in commit.ops if op.action in ("create", "update") and op.cid is not None]
    if not wanted or commit.too_big:
        return CommitEvent(commit.seq, commit.repo, _time(commit.time), ())
    try:
        blocks = CAR.from_bytes(commit.blocks).blocks
    except Exception:
        return Malformed("car", commit.seq)
    found: list[BlobRef] = []
    seen: set[tuple[str, str]] = set()
    truncated = False
    families: dict[str, int] = {}
    for op in wanted:
        family = "bsky" if op.path.startswith(BSKY_COLLECTIONS) else "other"
        families[family] = families.get(family, 0) + 1
        record = blocks.get(op.cid)
        if not isinstance(record, dict):
            continue  # a block the commit did not carry: nothing to walk
        uri = f"at://{commit.repo}/{op.path}"
        for cid, mime, size in walk_blobs(record):
            if (uri, cid) in seen:
                continue
            seen.add((uri, cid))
            if len(found) >= MAX_BLOBS_PER_COMMIT:
                truncated = True
                break
            found.append(BlobRef(uri, cid, mime, size, str(op.cid)))
    return CommitEvent(commit.seq, commit.repo, _time(commit.time), tuple(found), truncated, families)


def decode(raw: bytes | str) -> Event:
    """One websocket message → one event."""
    if isinstance(raw, str):
        return Malformed("frame")
    try:
        frame = Frame.from_bytes(raw)
    except Exception:
        return Malformed("frame")
    if isinstance(frame, ErrorFrame):
        return StreamError(str(frame.body.error), frame.body.message)
    if not isinstance(frame, MessageFrame):
        return Malformed("frame")
    raw_seq = frame.body.get("seq") if isinstance(frame.body, dict) else None
    seq = raw_seq if isinstance(raw_seq, int) and not isinstance(raw_seq, bool) else None
    if frame.type != "#commit":
        return OtherEvent(seq, str(frame.type))  # #identity, #account, #sync, #info, and any new kind
    try:
        commit = parse_subscribe_repos_message(frame)
    except Exception:
        return Malformed("body", seq)
    if not isinstance(commit, Commit):
        return Malformed("body", seq)
    return commit_event(commit)
