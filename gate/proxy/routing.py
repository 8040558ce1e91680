"""Which requests are uploads. The PDS accepts many spellings of the upload route, so must we.

Measured against a real PDS: the path is matched case-insensitively, with or without one trailing
slash, with any query string. A gate that compared the exact path would be trivially bypassed by
``/XRPC/com.atproto.repo.uploadblob/?x``, so the comparison is done on the *raw* path (before any
normalisation aiohttp might do) and case-folded. Percent-encoded letters are decoded first because a
path like ``/xrpc/com.atproto.repo.uploadBl%6Fb`` is another spelling the upstream router may accept.
The path routed here is the origin form of the target (``gate.proxy.target``: absolute-form is routed
on its path; fragments and backslashes never get this far).
"""

from __future__ import annotations

from urllib.parse import unquote

UPLOAD_PATH = "/xrpc/com.atproto.repo.uploadblob"
GET_BLOB_PATH = "/xrpc/com.atproto.sync.getblob"
# The labeler's methods, which the gate serves itself when it labels (gate.labels.xrpc).
LABEL_PATHS = "/xrpc/com.atproto.label."


def normalised_path(raw_path: str) -> str:
    """Raw request target → case-folded path without query, fragment or one trailing slash."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    # A decoded %5C is a backslash, which Node's legacy URL parser reads as "/".
    path = unquote(path).lower().replace("\\", "/")
    # Over-catching is harmless (the upload is merely scanned); under-catching is a bypass.
    while "//" in path:
        path = path.replace("//", "/")
    path = path.replace("/./", "/")
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


def is_upload(method: str, raw_path: str) -> bool:
    return method.upper() == "POST" and normalised_path(raw_path) == UPLOAD_PATH


def is_get_blob(method: str, raw_path: str) -> bool:
    """``com.atproto.sync.getBlob`` in any spelling the PDS accepts (GET or HEAD)."""
    return method.upper() in ("GET", "HEAD") and normalised_path(raw_path) == GET_BLOB_PATH
