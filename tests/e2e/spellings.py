"""Spellings of the two routes the gate judges, as raw request targets (sent with ``tests.e2e.wire``).

Measured against the real PDS (``test_front_routing`` re-checks the ones it accepts): Express routes
``/xrpc/<method>`` case-insensitively with an optional trailing slash, and matches the *raw* path, so
%-escapes and doubled slashes are not uploads to the PDS itself — but a front that forwarded a
normalised path would make them so, and the gate matches them anyway (over-catching only costs a scan).
"""

from __future__ import annotations

# Spellings the real PDS routes to uploadBlob although they differ from the canonical path: any case,
# a trailing slash, an empty query, a fragment (ignored by Node), and a backslash — which Node's legacy
# URL parser reads as "/" once anything (here a "#") sends Express down that parser.
PDS_UPLOAD_SPELLINGS = [
    "/XRPC/COM.ATPROTO.REPO.UPLOADBLOB/",
    "/xrpc/com.atproto.repo.uploadblob?",
    "/xrpc/com.atproto.repo.uploadBlob#x",
    "/xrpc\\com.atproto.repo.uploadBlob#",
    "/xrpc\\com.atproto.repo.uploadBlob?a=1#",
    "http://localhost/xrpc/com.atproto.repo.uploadBlob",  # absolute form
]
# Spellings a front could turn into one of those while normalising (decoding %-escapes, merging
# slashes, resolving dot segments) if it forwarded a normalised path.
FRONT_NORMALISED_SPELLINGS = [
    "/xrpc/com.atproto.repo.uploadBl%6Fb",
    "/xrpc/com.atproto.repo.upload%42lob",
    "/%78rpc/com.atproto.repo.uploadBlob",
    "//xrpc//com.atproto.repo.uploadBlob",
    "/xrpc/./com.atproto.repo.uploadBlob",
    "/xrpc/x/../com.atproto.repo.uploadBlob",
    "/xrpc/%2E/com.atproto.repo.uploadBlob",
    "/xrpc%2Fcom.atproto.repo.uploadBlob",
    "/xrpc%5Ccom.atproto.repo.uploadBlob",
    "/xrpc\\com.atproto.repo.uploadBlob",
]
UPLOAD_SPELLINGS = ["/xrpc/com.atproto.repo.uploadBlob", *PDS_UPLOAD_SPELLINGS, *FRONT_NORMALISED_SPELLINGS]
GET_BLOB_SPELLINGS = [
    "/xrpc/com.atproto.sync.getBlob?did={did}&cid={cid}",
    "/XRPC/COM.ATPROTO.SYNC.GETBLOB/?did={did}&cid={cid}",
    "/xrpc/com.atproto.sync.getBl%6Fb?did={did}&cid={cid}",
    "//xrpc/com.atproto.sync.getBlob?did={did}&cid={cid}",
    "/xrpc\\com.atproto.sync.getBlob?did={did}&cid={cid}#",
]
# Spellings the gate judges that the PDS also routes to uploadBlob, alone and behind every front: the
# policy's refusal and a decision row.
GATE_JUDGED = [
    "/xrpc/com.atproto.repo.uploadBlob",
    "/XRPC/COM.ATPROTO.REPO.UPLOADBLOB/",
    "/xrpc/com.atproto.repo.uploadblob?",
    "http://localhost/xrpc/com.atproto.repo.uploadBlob",
]
# Spellings the gate matches too (over-catching costs a scan) that the PDS itself does not route to
# uploadBlob. Before it reveals a verdict the gate asks the PDS with an empty body on the same path; the
# PDS refuses the path, so the caller gets the PDS's own answer — as a clean picture would — and nothing
# is recorded. The other spellings above are refused by the gate's check of the request target.
GATE_MATCHED_PDS_REFUSES = [
    "/xrpc/com.atproto.repo.uploadBl%6Fb",
    "/xrpc/com.atproto.repo.upload%42lob",
    "/%78rpc/com.atproto.repo.uploadBlob",
    "//xrpc//com.atproto.repo.uploadBlob",
    "/xrpc/./com.atproto.repo.uploadBlob",
    "/xrpc/%2E/com.atproto.repo.uploadBlob",
    "/xrpc%2Fcom.atproto.repo.uploadBlob",
    "/xrpc%5Ccom.atproto.repo.uploadBlob",
]
