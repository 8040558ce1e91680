"""The lean client's request bytes (gate.proxy.lane_pass.request_head): what the PDS reads."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gate.errors import InvalidRequest
from gate.proxy.lane_pass import request_head


def test_a_get_is_its_line_the_host_first_then_the_headers_in_order() -> None:
    headers = CIMultiDict([("Accept", "*/*"), ("host", "pds.example"), ("X-Forwarded-For", "192.0.2.1")])
    assert request_head("/xrpc/x?a=1", "127.0.0.1:2583", headers) == (
        b"GET /xrpc/x?a=1 HTTP/1.1\r\nhost: pds.example\r\nAccept: */*\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/xrpc/x", [("X-A", "1\r\nX-Injected: 1")]),
        ("/xrpc/x", [("X-A", "1\nX-Injected: 1")]),
        ("/xrpc/x", [("X-A\r\nX-Injected", "1")]),
        ("/xrpc/x HTTP/1.1\r\nX-Injected: 1\r\nX:", []),
        ("/xrpc/x", [("X-A", "1\r")]),
    ],
)
def test_a_line_break_in_any_part_is_refused_not_sent(target: str, headers: list[tuple[str, str]]) -> None:
    # aiohttp's server parser lets none through; this is the check where they would split the request.
    with pytest.raises(InvalidRequest):
        request_head(target, "127.0.0.1:2583", CIMultiDict(headers))
