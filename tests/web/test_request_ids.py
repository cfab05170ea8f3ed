"""X-Request-Id: kept when safe, made when absent or unsafe, on every response and log line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connect_app import log_context
from connect_app.logging_setup import JsonFormatter, ScrubSecretsFilter
from connect_app.web.request_ids import HEADER, accepted_request_id

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture()
def access_lines() -> Iterator[io.StringIO]:
    """The app's access log as JSON lines, formatted when written (while the request's ids are set)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubSecretsFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("connect_app.access")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_a_request_without_an_id_gets_a_new_one(client: FlaskClient) -> None:
    first = client.get("/healthz").headers[HEADER]
    second = client.get("/healthz").headers[HEADER]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second)
    assert first != second


@pytest.mark.parametrize("incoming", ["abc-123", "1-67891233-abcdef0123456789", "a" * 64, "req_1.2-3"])
def test_a_short_safe_incoming_id_is_kept(client: FlaskClient, incoming: str) -> None:
    assert client.get("/healthz", headers={HEADER: incoming}).headers[HEADER] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["a" * 65, "", "Root=1-2", "has space", "line\nbreak", 'quote"d', "semi;colon", "ünïcode", "<script>", "x/../y"],
)
def test_an_unsafe_incoming_id_is_replaced(incoming: str) -> None:
    assert GENERATED.fullmatch(accepted_request_id(incoming))


def test_an_unsafe_header_is_replaced_on_the_response(client: FlaskClient) -> None:
    rid = client.get("/healthz", headers={HEADER: "x" * 200}).headers[HEADER]
    assert GENERATED.fullmatch(rid)


def test_errors_carry_the_id_too(client: FlaskClient) -> None:
    response = client.get("/no/such/page", headers={HEADER: "trace-404"})
    assert response.status_code == 404
    assert response.headers[HEADER] == "trace-404"
    assert client.post("/healthz").headers.get(HEADER)  # 405


def test_an_unexpected_error_answers_500_with_the_id(app: Flask) -> None:
    broken = Flask("broken")
    from connect_app.web.errors import register_error_handlers
    from connect_app.web.request_ids import init_app

    register_error_handlers(broken)
    init_app(broken)

    @broken.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaput")

    response = broken.test_client().get("/boom", headers={HEADER: "trace-500"})
    assert response.status_code == 500
    assert response.headers[HEADER] == "trace-500"
    assert b"kaput" not in response.data


def test_the_access_log_line_names_the_request_and_leaves_the_query_out(
    client: FlaskClient, access_lines: io.StringIO
) -> None:
    client.get("/no/such/page?jwt=eyJhbGciOiJIUzI1NiJ9.e30.sig&x=1", headers={HEADER: "trace-log"})
    (entry,) = [json.loads(line) for line in access_lines.getvalue().splitlines()]
    assert entry["request_id"] == "trace-log"
    assert entry["logger"] == "connect_app.access"
    assert (entry["method"], entry["path"], entry["status"], entry["endpoint"]) == (
        "GET",
        "/no/such/page",
        404,
        "unmatched",
    )
    assert "jwt" not in access_lines.getvalue()


def test_the_id_does_not_leak_past_the_request(client: FlaskClient) -> None:
    client.get("/healthz", headers={HEADER: "only-inside"})
    assert log_context.request_id.get() is None


def test_the_webhook_token_in_a_path_is_not_logged(client: FlaskClient, access_lines: io.StringIO) -> None:
    client.post("/webhooks/424242/tok-AbC123xyz", data=b"{}")
    (entry,) = [json.loads(line) for line in access_lines.getvalue().splitlines()]
    assert entry["path"] == "/webhooks/424242/[redacted]"
    assert entry["endpoint"] == "webhooks.receive"
    assert "tok-AbC123xyz" not in access_lines.getvalue()
