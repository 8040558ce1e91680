"""``Identities`` against a PLC directory on a real port: a DID document is read bounded, from where the
DID says and nowhere else, and must be the document of the DID asked for; anything else is an
``Unresolvable`` with a kind the metrics count, never an exception that stops the watcher."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from yarl import URL

from gate.firehose.identity import MAX_DOCUMENT, Identities, Unresolvable
from tests.support.firehose import did_doc
from tests.support.serving import serving

PDS = "https://pds.example.com"


def _plc(asked: list[str]) -> web.Application:

    async def plc(request: web.Request) -> web.StreamResponse:
        did = request.match_info["did"]
        asked.append(did)
        match did.removeprefix("did:plc:"):
            case "good" | "elsewhere":
                return web.json_response(did_doc(did, PDS))
            case "big":
                doc = did_doc(did, PDS) | {"alsoKnownAs": ["at://" + "x" * MAX_DOCUMENT]}
                return web.json_response(doc)
            case "other":
                return web.json_response(did_doc("did:plc:good", PDS))  # another DID's document
            case "moved":
                raise web.HTTPFound("/plc/did:plc:elsewhere")
            case "garbled":
                return web.Response(text="{not json", content_type="application/json")
            case "broken":
                return web.json_response({"message": "oops"}, status=500)
            case "private":
                return web.json_response(did_doc(did, "http://10.0.0.8:2583"))
        return web.json_response({"message": "DID not registered"}, status=404)

    app = web.Application()
    app.router.add_get("/plc/{did}", plc)
    return app


@pytest.fixture
async def ids() -> AsyncIterator[tuple[Identities, list[str]]]:
    asked: list[str] = []
    async with serving(_plc(asked)) as url:
        identities = Identities(URL(url + "/plc"), timeout=5)
        try:
            yield identities, asked
        finally:
            await identities.aclose()


async def test_a_did_resolves_to_its_pds(ids: tuple[Identities, list[str]]) -> None:
    identities, asked = ids
    assert await identities.pds_of("did:plc:good") == URL(PDS)
    assert await identities.pds_of("did:plc:good") == URL(PDS)
    assert asked == ["did:plc:good"]  # cached


@pytest.mark.parametrize(
    ("did", "kind"),
    [
        ("did:plc:nobody", "not_found"),
        ("did:plc:big", "error"),  # over MAX_DOCUMENT: not read to the end
        ("did:plc:other", "error"),  # names another DID
        ("did:plc:moved", "error"),  # a redirect is not followed
        ("did:plc:garbled", "error"),
        ("did:plc:broken", "error"),
        ("did:plc:private", "unsafe_endpoint"),
        ("did:key:z6Mk", "unsupported"),
        ("did:web:example.com:users:alice", "unsupported"),  # atproto has no did:web paths
        ("did:plc:../../admin", "unsupported"),  # not DID syntax: never joined to a URL
        ("did:web:127.0.0.1", "unsafe_endpoint"),  # refused before anything is fetched
    ],
)
async def test_what_does_not_resolve_says_why(ids: tuple[Identities, list[str]], did: str, kind: str) -> None:
    identities, asked = ids
    with pytest.raises(Unresolvable) as caught:
        await identities.pds_of(did)
    assert caught.value.kind == kind
    assert "did:plc:elsewhere" not in asked
    if kind == "unsupported" or did.startswith("did:web"):
        assert asked == []


def test_the_big_document_is_big() -> None:
    """The ``big`` case above is over the limit, so it tests the limit and not something else."""
    doc = did_doc("did:plc:big", PDS) | {"alsoKnownAs": ["at://" + "x" * MAX_DOCUMENT]}
    assert len(json.dumps(doc)) > MAX_DOCUMENT
