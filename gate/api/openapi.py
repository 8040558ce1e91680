"""The OpenAPI 3.1 document of the admin listener's JSON APIs, served at ``/api/v1/openapi.json`` and
committed as ``docs/openapi.json`` (a test keeps the two equal). After changing ``gate.api.spec``,
its schemas or ``gate.admin.review_spec``:

    python -m gate.api.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from gate.admin import review_spec
from gate.api import decision_schemas, schemas, spec

DESCRIPTION = """\
The JSON APIs of upload-gate's admin listener (GATE_ADMIN_LISTEN, else GATE_METRICS_LISTEN): never \
served on the public listener.

**/api/v1** lets other services (a moderation tool, an AppView, a script) hash bytes, look hashes up in \
the gate's banks and judge bytes under the policy in force, with the same judge as uploads. It answers \
whether bytes are banked, so it opens only for tokens of the `service` role (or `admin`): \
`upload-gate admin token add NAME --role service`, sent as `Authorization: Bearer <token>`. Every call \
is written to the audit log with the token's name before it is answered; each token may make \
GATE_API_RATE requests a second (GATE_API_BURST at once); bodies have the upload limit \
(GATE_MAX_UPLOAD_BYTES) and share the uploads' memory budget. It never returns evidence (stored bytes).

**/admin/api** is the review queue's JSON API: the same tokens as the review page (`reviewer`, and \
`admin` for takedowns, legal holds and the audit trail), as bearer tokens. Every access is audited \
before it is answered.

Errors are XRPC's: a JSON object `{"error": "Name", "message": "what went wrong"}` with the status."""


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "upload-gate admin APIs", "version": "1", "description": DESCRIPTION},
        "tags": [
            {"name": "api", "description": "Hash, match and scan for other services (service role)"},
            {"name": "review", "description": "The review queue (reviewer role; some actions admin)"},
        ],
        "security": [{"bearer": []}],
        "paths": {
            **spec.PATHS,
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "tags": ["api"],
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {"description": "The OpenAPI document.", "content": {"application/json": {}}}
                    },
                }
            },
            **review_spec.PATHS,
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from `upload-gate admin token add NAME --role service` (the "
                    "API) or `--role reviewer` / `--role admin` (the review API)",
                }
            },
            "schemas": {**schemas.SCHEMAS, **decision_schemas.SCHEMAS, **review_spec.SCHEMAS},
            "responses": spec.RESPONSES,
            "headers": spec.HEADERS,
        },
    }


def render() -> bytes:
    return (json.dumps(document(), indent=2, ensure_ascii=False) + "\n").encode()


DOCUMENT_BYTES = render()


def main() -> int:
    sys.stdout.buffer.write(DOCUMENT_BYTES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
