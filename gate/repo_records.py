"""Which records of a repo reference which blobs: the repo's CAR (``com.atproto.sync.getRepo``) walked.

``listBlobs`` names a repo's blobs but not the records that use them, and a reviewer looking at a
backfill decision wants the post (``at://did/app.bsky.feed.post/…``), not only a CID. The repo itself
holds the answer: its commit points at the root of a Merkle search tree whose leaves are the records,
each a DAG-CBOR block in which a blob is a ``{"$type": "blob", "ref": <CID>}`` object (or, in records
written before that form, ``{"cid": "<CID>", "mimeType": …}``). Decoding is libipld's (the gate's one
CID and CBOR library); this module only walks the tree, so nothing in a repo can make it do more than
visit each block of the CAR once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import libipld


def blob_records(did: str, car: bytes) -> dict[str, list[str]]:
    """CID of each blob → the ``at://`` URIs of the records in ``car`` that reference it (sorted)."""
    header, blocks = libipld.decode_car(car)
    roots = header.get("roots") or []
    commit = blocks.get(roots[0]) if roots else None
    if not isinstance(commit, dict) or not isinstance(commit.get("data"), bytes):
        raise ValueError("the CAR has no repo commit at its root")
    found: dict[str, set[str]] = {}
    for path, record_cid in _leaves(blocks, commit["data"]):
        for cid in _blob_refs(blocks.get(record_cid)):
            found.setdefault(cid, set()).add(f"at://{did}/{path}")
    return {cid: sorted(uris) for cid, uris in found.items()}


def _leaves(blocks: dict[bytes, Any], root: bytes) -> Iterator[tuple[str, bytes]]:
    """(record path, record CID) of every leaf of the tree at ``root``. A node is ``{"l": left subtree,
    "e": [{"p": shared prefix length, "k": key suffix, "v": record, "t": right subtree}]}``; keys are
    prefix-compressed against the previous entry of the same node."""
    stack, seen = [root], set()
    while stack:
        cid = stack.pop()
        node = blocks.get(cid)
        if cid in seen or not isinstance(node, dict):
            continue  # a block the CAR does not hold (or a loop a hostile CAR could draw)
        seen.add(cid)
        if isinstance(node.get("l"), bytes):
            stack.append(node["l"])
        key = b""
        for entry in node.get("e") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("k"), bytes):
                continue
            key = key[: int(entry.get("p") or 0)] + entry["k"]
            if isinstance(entry.get("v"), bytes):
                yield key.decode("utf-8", "replace"), entry["v"]
            if isinstance(entry.get("t"), bytes):
                stack.append(entry["t"])


def _blob_refs(value: object) -> Iterator[str]:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("ref")
            if item.get("$type") == "blob" and isinstance(ref, bytes):
                yield libipld.encode_cid(ref)
            elif isinstance(item.get("cid"), str) and "mimeType" in item:
                yield item["cid"]  # the legacy blob form
            else:
                pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
