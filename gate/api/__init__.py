"""The hash/match/scan API for other services (a moderation tool, an AppView, a script), under ``/api/v1``.

Trust boundary: the API judges bytes, so it is a bank-membership oracle by design — whoever may call
it learns whether bytes (or hashes) are in the banks, which is exactly what the upload path hides from
anyone the PDS has not accepted. So it lives only on the admin listener (never the public one), it
opens only for bearer tokens of the ``service`` or ``admin`` role (a reviewer's token or the review
page's cookie does not open it), every call is written to the audit log with the token's name before
it is answered (an answer whose audit row cannot be written is not given), each token is rate limited,
and request bodies share the uploads' size limit and memory budget. It never returns evidence: hashes,
matches and decisions only, never stored bytes.

Modules: ``service`` (what the API holds), ``guard`` (who asks, how often, and errors as XRPC JSON),
``inputs`` (what a request asks about), ``routes`` (the endpoints), ``spec`` / ``openapi`` (the
OpenAPI 3.1 document, served at ``/api/v1/openapi.json`` and committed as ``docs/openapi.json``).
"""
