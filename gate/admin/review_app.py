"""Wires the review queue (JSON API + page) onto an admin-listener application.

The routes go on ``GATE_ADMIN_LISTEN`` when it is set, else on the private ``GATE_METRICS_LISTEN`` —
never on the public listener (``gate.app`` serves nothing of its own).
"""

from __future__ import annotations

import logging

from aiohttp import web

from gate.admin.review import Review
from gate.admin.review_api import BODY_BYTES, REVIEW_SITE, ReviewSite, add_api_routes
from gate.admin.review_errors import review_api_errors
from gate.admin.review_page import add_page_routes
from gate.admin.signing import Signer, shared_key
from gate.admin.tokens import TokenError, TokenStore
from gate.notify.webhook import Notifier
from gate.pds_admin import PdsAdmin
from gate.policy.reload import PolicyHolder
from gate.quarantine.allowlist import Allowlist
from gate.quarantine.takedowns import Takedowns
from gate.settings import Settings
from gate.store.evidence import Evidence
from gate.store.pool import Pool, StoreUnavailable
from gate.store.retention import Retention

log = logging.getLogger(__name__)


def install_review(app: web.Application, site: ReviewSite) -> None:
    app[REVIEW_SITE] = site
    app.middlewares.append(review_api_errors)
    add_api_routes(app)
    add_page_routes(app)


def create_review_app(site: ReviewSite) -> web.Application:
    # Forms and small JSON bodies only; the API's bodies are read (and decoded, capped) by its own reader.
    app = web.Application(client_max_size=BODY_BYTES, handler_args={"auto_decompress": False})
    install_review(app, site)
    return app


async def open_review(
    settings: Settings,
    evidence: Evidence,
    db: Pool,
    policy: PolicyHolder,
    allowlist: Allowlist,
    notifier: Notifier,
) -> ReviewSite:
    """The review site for a running gate: tokens and signing key, the allowlist releases go to,
    takedowns behind the cap."""
    pds = PdsAdmin.from_settings(settings)
    takedowns = Takedowns(db, pds, settings.takedown_daily_cap)
    # Tokens and the form/link signing key live in Postgres: every replica shares them, a restart
    # keeps them (gate.admin.tokens, gate.admin.signing).
    tokens = TokenStore(db)
    try:
        await tokens.import_file(settings.admin_tokens_file)
    except (TokenError, StoreUnavailable) as exc:
        log.error("review tokens file %s not imported: %s", settings.admin_tokens_file, exc)

    async def signing_key() -> bytes:
        return await shared_key(db)

    review = Review(
        evidence,
        allowlist,
        takedowns,
        notifier,
        reveal_seconds=settings.reveal_seconds,
        max_pixels=settings.max_image_pixels,
        retention=lambda: Retention.of(policy.current.evidence),
        signer=Signer(load=signing_key),
    )
    return ReviewSite(review, tokens)
