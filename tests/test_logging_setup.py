"""Log lines: JSON or text, ids from the request/job context, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, g

from connect_app import log_context
from connect_app.config import Settings
from connect_app.logging_setup import (
    AppLogHandler,
    JsonFormatter,
    ScrubSecretsFilter,
    TextFormatter,
    configure,
    scrub,
)

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqaXJhIn0.c2lnbmF0dXJlLXZhbHVl"


class Captured:
    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.addFilter(ScrubSecretsFilter())
        self.handler.setFormatter(formatter)
        self.logger = logging.getLogger(f"tests.logging_setup.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture()
def as_json() -> Iterator[Captured]:
    captured = Captured(JsonFormatter())
    yield captured
    captured.logger.removeHandler(captured.handler)


@pytest.fixture()
def as_text() -> Iterator[Captured]:
    captured = Captured(TextFormatter())
    yield captured
    captured.logger.removeHandler(captured.handler)


def test_a_json_line_has_time_level_logger_and_message(as_json: Captured) -> None:
    as_json.logger.info("indexed %d commits", 42)
    (entry,) = as_json.entries()
    assert entry["level"] == "INFO"
    assert entry["logger"] == as_json.logger.name
    assert entry["message"] == "indexed 42 commits"
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert "request_id" not in entry and "job_id" not in entry and "exception" not in entry


def test_one_object_per_line_even_for_multiline_messages_and_tracebacks(as_json: Captured) -> None:
    try:
        raise RuntimeError("first\nsecond")
    except RuntimeError:
        as_json.logger.exception("it broke:\nbadly")
    lines = as_json.text.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "it broke:\nbadly"
    assert "RuntimeError: first" in entry["exception"] and "Traceback" in entry["exception"]


def test_request_job_and_tenant_ids_from_the_context(as_json: Captured) -> None:
    with log_context.bind(request_id="req-1", tenant_id=7):
        as_json.logger.info("in a request")
    with log_context.bind(job_id="index-3", job_func="workers.jobs.index_repository"):
        as_json.logger.info("in a job")
    as_json.logger.info("outside")
    request_line, job_line, outside = as_json.entries()
    assert (request_line["request_id"], request_line["tenant_id"]) == ("req-1", 7)
    assert (job_line["job_id"], job_line["job_func"]) == ("index-3", "workers.jobs.index_repository")
    assert not {"request_id", "job_id", "tenant_id"} & outside.keys()


def test_the_tenant_of_the_authenticated_jira_request(as_json: Captured) -> None:
    app = Flask(__name__)
    with app.test_request_context("/"):
        g.jira_auth = SimpleNamespace(tenant_id=12)
        as_json.logger.info("panel")
    assert as_json.entries()[0]["tenant_id"] == 12


def test_extra_fields_are_added_without_overriding_the_core_ones(as_json: Captured) -> None:
    as_json.logger.info("GET /x 200", extra={"fields": {"status": 200, "level": "spoofed", "path": "/x?token=abc"}})
    (entry,) = as_json.entries()
    assert entry["status"] == 200 and entry["level"] == "INFO"
    assert entry["path"] == "/x?token=[redacted]"


@pytest.mark.parametrize(
    "message",
    [
        f"calling GitHub with {GITHUB_TOKEN}",
        "Authorization: Bearer s3cr3t-value",
        "url https://api.example.com/x?jwt=" + JWT,
        'payload {"sharedSecret": "s3cr3t-value"}',
        "clone https://user:s3cr3t-value@git.example.com/repo.git",
        f"context token {JWT}",
    ],
)
def test_a_secret_in_the_message_is_redacted_in_both_formats(
    as_json: Captured, as_text: Captured, message: str
) -> None:
    for captured in (as_json, as_text):
        captured.logger.warning("%s", message)
        assert "[redacted]" in captured.text
        for secret in (GITHUB_TOKEN, "s3cr3t-value", JWT):
            assert secret not in captured.text


def test_a_secret_in_an_exception_is_redacted_in_both_formats(as_json: Captured, as_text: Captured) -> None:
    for captured in (as_json, as_text):
        try:
            raise ValueError(f"host refused token={GITHUB_TOKEN} with password=hunter22")
        except ValueError:
            captured.logger.exception("request failed")
        assert GITHUB_TOKEN not in captured.text and "hunter22" not in captured.text
        assert "ValueError" in captured.text
    assert "[redacted]" in as_json.entries()[0]["exception"]


def test_an_unscrubbed_traceback_cached_by_another_formatter_is_still_scrubbed(as_json: Captured) -> None:
    try:
        raise ValueError(f"token={GITHUB_TOKEN}")
    except ValueError as e:
        record = as_json.logger.makeRecord(
            as_json.logger.name,
            logging.ERROR,
            __file__,
            1,
            "boom",
            (),
            (
                type(e),
                e,
                e.__traceback__,
            ),
        )
    logging.Formatter().format(record)  # a plain formatter caches record.exc_text
    assert GITHUB_TOKEN in str(record.exc_text)
    assert GITHUB_TOKEN not in JsonFormatter().format(record)
    assert GITHUB_TOKEN not in TextFormatter().format(record)


def test_the_text_format_appends_the_ids(as_text: Captured) -> None:
    with log_context.bind(request_id="abc"):
        as_text.logger.info("hello")
    assert as_text.text.strip().endswith("hello [request_id=abc]")


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "indexed 12 commits of team/repo in 3.2s (ABC-123)"
    assert scrub(text) == text


def test_bind_refuses_unknown_fields_and_restores_values() -> None:
    with pytest.raises(TypeError):
        with log_context.bind(user="x"):
            pass
    with log_context.bind(request_id="outer"):
        with log_context.bind(request_id="inner"):
            assert log_context.request_id.get() == "inner"
        assert log_context.request_id.get() == "outer"
    assert log_context.request_id.get() is None


def test_job_meta_carries_the_request_and_tenant_only() -> None:
    assert log_context.job_meta() == {}
    with log_context.bind(request_id="r1", tenant_id=3, job_id="j"):
        assert log_context.job_meta() == {"request_id": "r1", "tenant_id": 3}


def test_configure_installs_one_handler_and_switches_its_format() -> None:
    root = logging.getLogger()
    before_handlers, before_level = list(root.handlers), root.level
    try:
        configure(Settings(log_format="json", log_level="WARNING"))
        configure(Settings(log_format="text", log_level="INFO"))
        ours = [h for h in root.handlers if isinstance(h, AppLogHandler)]
        assert len(ours) == 1
        assert isinstance(ours[0].formatter, TextFormatter)
        assert any(isinstance(f, ScrubSecretsFilter) for f in ours[0].filters)
        configure(Settings(log_format="json"))
        assert isinstance(ours[0].formatter, JsonFormatter)
    finally:
        for handler in list(root.handlers):
            if handler not in before_handlers:
                root.removeHandler(handler)
        for handler in before_handlers:
            if isinstance(handler, AppLogHandler):
                handler.setFormatter(TextFormatter())
        root.setLevel(before_level)
