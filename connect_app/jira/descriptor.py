"""The Connect descriptor: ``atlassian-connect.json`` with baseUrl and key filled in."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify

from connect_app.config import Settings
from connect_app.runtime import runtime

TEMPLATE = Path(__file__).resolve().parents[2] / "atlassian-connect.json"

bp = Blueprint("descriptor", __name__)


@lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TEMPLATE.read_text())
    return data


def build_descriptor(settings: Settings) -> dict[str, Any]:
    descriptor = copy.deepcopy(_template())
    descriptor["baseUrl"] = settings.base_url
    descriptor["key"] = settings.app_key
    descriptor["name"] = settings.app_name
    # ENABLE_LICENSING: Jira then appends lic=active|none to our iframe URLs (connect_app.jira.licensing).
    descriptor["enableLicensing"] = settings.enable_licensing
    return descriptor


def module_urls(descriptor: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(module key, url) for every page and action URL the descriptor declares."""
    for value in descriptor["lifecycle"].values():
        yield "lifecycle", value
    for kind, modules in descriptor["modules"].items():
        for module in modules if isinstance(modules, list) else [modules]:
            if kind == "jiraDevelopmentTool":
                for action in module.get("actions", {}).values():
                    yield module["key"], action["templateUrl"]
                continue
            if "url" in module:
                yield module["key"], module["url"]


@bp.get("/atlassian-connect.json")
def descriptor() -> Response:
    response = jsonify(build_descriptor(runtime().settings))
    response.headers["Cache-Control"] = "no-cache"
    return response
