"""An atproto OAuth client, enough to get a DPoP-bound access token from the real PDS.

It does what a native app and its user's browser do, over plain HTTP, against the PDS's own
authorization server (``@atproto/oauth-provider``): pushed authorization request with PKCE and DPoP, the
authorization page's sign-in and consent API calls (with its CSRF cookie and same-origin headers), then
the token request. The client is a loopback client (``http://localhost?...``), which the PDS accepts
without fetching client metadata.

Every request goes to ``endpoint`` (the gate), while URLs in DPoP proofs and Origin/Referer headers
name the PDS's public URL: the situation of a real deployment, where clients use the public host name
and the gate sits behind it. The proofs only verify if the gate forwards method and path unchanged.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

from tests.support.tokens import DpopKey, b64url

API = "/@atproto/oauth-provider/~api"
REDIRECT_URI = "http://127.0.0.1/callback"
SCOPE = "atproto transition:generic"


def needs_nonce(response: httpx.Response) -> bool:
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    return "use_dpop_nonce" in (response.headers.get("WWW-Authenticate", "") + str(body.get("error", "")))


@dataclass
class OAuthSession:
    access_token: str
    dpop: DpopKey
    sub: str


def obtain_token(endpoint: str, public_url: str, handle: str, password: str) -> OAuthSession:
    """Run the authorization-code flow for ``handle`` and return a DPoP-bound access token."""
    dpop = DpopKey()
    client_id = "http://localhost?" + urlencode({"redirect_uri": REDIRECT_URI, "scope": SCOPE})
    verifier = secrets.token_urlsafe(48)
    cookies: dict[str, str] = {}

    with httpx.Client(base_url=endpoint, timeout=30) as http:

        def send(method: str, path: str, *, dpop_bound: bool = False, **kwargs: Any) -> httpx.Response:
            headers = dict(kwargs.pop("headers", {}) or {})
            if cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            for _ in range(2):  # a DPoP nonce challenge is answered once
                if dpop_bound:
                    headers["DPoP"] = dpop.proof(method, public_url + path)
                response = http.request(method, path, headers=headers, **kwargs)
                dpop.remember(response)
                # Secure cookies: a browser keeps them for http://localhost, httpx's jar would not.
                for raw in response.headers.get_list("set-cookie"):
                    name, _, rest = raw.partition("=")
                    cookies[name.strip()] = rest.split(";", 1)[0]
                if not (dpop_bound and response.status_code in (400, 401) and needs_nonce(response)):
                    return response
            return response

        par = send(
            "POST",
            "/oauth/par",
            dpop_bound=True,
            data={
                "client_id": client_id,
                "response_type": "code",
                "redirect_uri": REDIRECT_URI,
                "scope": SCOPE,
                "state": secrets.token_urlsafe(8),
                "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
                "code_challenge_method": "S256",
                "login_hint": handle,
            },
        )
        assert par.status_code == 201, par.text
        request_uri = par.json()["request_uri"]

        authorize_path = "/oauth/authorize?" + urlencode({"client_id": client_id, "request_uri": request_uri})
        page = send(
            "GET",
            authorize_path,
            headers={"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
        )
        assert page.status_code == 200, page.text
        assert "csrf-token" in cookies, cookies.keys()

        def api(name: str, body: dict[str, object], **extra: str) -> dict[str, object]:
            answer = send(
                "POST",
                API + name,
                json=body,
                headers={
                    "Origin": public_url,
                    "Referer": public_url + authorize_path,
                    "Sec-Fetch-Site": "same-origin",
                    "Sec-Fetch-Mode": "same-origin",
                    "Sec-Fetch-Dest": "empty",
                    "x-csrf-token": cookies["csrf-token"],
                    **extra,
                },
            )
            assert answer.status_code == 200, f"{name}: {answer.status_code} {answer.text}"
            result: dict[str, object] = answer.json()
            return result

        signed_in = api(
            "/sign-in", {"locale": "en", "username": handle, "password": password, "remember": False}
        )
        account = signed_in["account"]
        assert isinstance(account, dict)
        # Without "remember me" the page proves the sign-in with the ephemeral token it was given.
        consent = api(
            "/consent",
            {"sub": account["sub"], "scope": SCOPE},
            Authorization=f"Bearer {signed_in['ephemeralToken']}",
        )
        redirect = urlparse(str(consent["url"]))
        assert "code=" in redirect.query, consent
        code = parse_qs(redirect.query)["code"][0]

        token = send(
            "POST",
            "/oauth/token",
            dpop_bound=True,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": client_id,
            },
        )
        assert token.status_code == 200, token.text
        body = token.json()
        assert body["token_type"] == "DPoP", body
        return OAuthSession(body["access_token"], dpop, body["sub"])
