"""What the end-to-end tests talk to, and users created there with the real ``atproto`` SDK."""

from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from atproto import Client, Session, models
from atproto_client.request import Request

# Where clients connect: the gate itself, and nginx and Caddy with the shipped configs — the defaults
# (only uploads and blob reads through the gate) and the whole-site variants.
FRONTS = ("gate", "nginx", "nginx-whole-site", "caddy", "caddy-whole-site")


@dataclass(frozen=True)
class Images:
    clean: list[bytes]
    banned: bytes
    banned_near: bytes
    held: bytes
    folder: Path


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    verify: bool | ssl.SSLContext

    def client(self) -> Client:
        return Client(self.url, request=Request(verify=self.verify, timeout=30))


@dataclass
class User:
    client: Client
    did: str
    handle: str
    password: str

    @property
    def access_jwt(self) -> str:
        jwt = Session.decode(self.client.export_session_string()).access_jwt
        assert isinstance(jwt, str)  # the SDK ships no type marker: its names are Any
        return jwt

    def post_image(self, image: bytes, text: str = "shapes") -> models.AppBskyFeedPost.CreateRecordResponse:
        """``send_image`` as an app does: upload the blob, then create a post embedding it."""
        return self.client.send_image(
            text=text, image=image, image_alt="coloured shapes", profile_identify=self.did
        )


def new_user(endpoint: Endpoint) -> User:
    """Create an account and log in, both through ``endpoint``, as a Bluesky client would."""
    client = endpoint.client()
    handle = f"u{secrets.token_hex(4)}.test"
    password = secrets.token_urlsafe(12)
    try:
        created = client.com.atproto.server.create_account(
            {"handle": handle, "email": f"{handle}@example.com", "password": password}
        )
        # No app view here: the Bluesky profile lookup is skipped (posts name the repo explicitly).
        client.login(handle, password, fetch_bsky_profile=False)
    except BaseException:
        client.request.close()
        raise
    # After login the SDK switches to the PDS endpoint named in the account's DID document. In
    # production that is the public host name, which *is* the front; here the PDS's own loopback URL
    # stands in for it, so point the client back at the front under test (public API, no patching).
    # Every test also checks that the gate saw its uploads, so a client that slipped past it would fail.
    client.update_base_url(endpoint.url)
    return User(client, created.did, handle, password)
