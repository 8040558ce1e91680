"""The request target: which forms the gate routes, and what it forwards for each.

Trust boundary: the gate and the PDS must agree on which route a request target names, or an upload
can slip past as "not an upload". The PDS is Node + express: ``parseurl`` takes an origin-form target
as it is *unless* it holds ``#``, whitespace or U+00A0/U+FEFF, and then falls back to Node's legacy
``url.parse``, which turns every ``\\`` before the query into ``/``, drops the fragment and reads
``//user@host/…`` as an authority; an absolute-form target (any ``scheme://``, which Node's parser
accepts) always goes through ``url.parse``, and its path is routed. Measured against express 4.22 on
Node 20, these all reach ``uploadBlob``:

    http://h/xrpc/com.atproto.repo.uploadBlob      ftp://u@h:1/xrpc/com.atproto.repo.uploadBlob
    /xrpc\\com.atproto.repo.uploadBlob#x            /xrpc/com.atproto.repo.uploadBlob#x
    //u@h/xrpc/com.atproto.repo.uploadBlob#         /xrpc/com.atproto.repo.uploadBlob\\#
    http://h/xrpc\\com.atproto.repo.uploadBlob

So: an absolute-form target is routed on its path and forwarded in origin form (path and query; the
``Host`` header is kept, as for every request). A fragment never travels on the wire from a real client
and a backslash never appears in a real path: they exist only to make two parsers disagree, and the
gate's own HTTP client would drop the fragment before the PDS saw it, so both are refused with 400
rather than guessed at. aiohttp's parser already refuses whitespace, control and non-ASCII bytes;
they are refused here too, so this module does not depend on which parser is in use.
"""

from __future__ import annotations

import re

from gate import metrics
from gate.errors import InvalidRequest

# An RFC 3986 scheme (any: Node accepts any), "//", an authority up to the first "/" or "?", the rest.
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?]*(?P<rest>.*)", re.DOTALL)


def _refuse(reason: str, message: str) -> InvalidRequest:
    """A target the gate will not guess about: 400, before anything is read or forwarded."""
    metrics.REFUSED_TARGETS.labels(reason).inc()
    return InvalidRequest(f"Unsupported request target: {message}")


def origin_form(raw_target: str) -> str:
    """The path and query to route on and forward, from the raw request target; raises 400."""
    if not (raw_target.isascii() and raw_target.isprintable()) or " " in raw_target:
        raise _refuse("characters", "only visible ASCII is allowed")
    if "#" in raw_target:
        raise _refuse("fragment", "a fragment is never sent to a server")
    if "\\" in raw_target.split("?", 1)[0]:
        raise _refuse("backslash", "backslash before the query")
    if raw_target.startswith("/"):
        return raw_target
    absolute = _ABSOLUTE.fullmatch(raw_target)
    if absolute is None:
        raise _refuse("form", "expected a path or an absolute URL")
    rest = absolute["rest"]
    return rest if rest.startswith("/") else "/" + rest
