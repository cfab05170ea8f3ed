"""Prism mock servers for contract tests against the hosts' official API descriptions.

``PrismMock`` runs ``node_modules/.bin/prism mock`` (``@stoplight/prism-cli`` 5.14.2, see
package.json) on 127.0.0.1 and a free port, waits until it listens, and stops the whole process
group on exit::

    with PrismMock(github_spec_path()) as mock:
        r = requests.get(mock.url("/repos/o/r"), headers={"Authorization": "token x"})
        assert_request_valid(r)

How Prism 5.14 behaves (read this before writing a contract test)
-----------------------------------------------------------------
* A request that does not fit the description (unknown path or method, missing required body
  field, wrong type or enum, no credentials when the operation declares ``security``, a body
  where none is declared) always gets a 4xx: the spec's own 400/422 response when it declares
  one (details in the ``sl-violations`` header), else an ``application/problem+json`` made by
  Prism (401/404/405/415/422; a 422's details are in its body). This happens with and without
  ``--errors``; :func:`request_violations` reads all of these.
* ``--errors`` (``errors=True``) *only* adds response checking: Prism validates the response it
  is about to send and answers 500 when its own example breaks the schema. The published
  descriptions are not self-consistent (GitHub ``GET /repos/{owner}/{repo}`` example lacks
  ``language``; Bitbucket Cloud has no examples and its recursive ``repository`` schema fails
  in static and dynamic mode; Azure's ``format: byte`` integers always fail; Jira's
  ``project/search``), so the default here is ``errors=False``: responses always come back,
  and their schema problems are listed (informationally) by :func:`response_violations`.
* Prism ignores the path of the spec's server URL (``/2.0``, ``/rest``, ``/api/v3``). By default
  we serve a rewritten copy of the spec whose paths carry that prefix, so ``base_url`` is
  ``http://127.0.0.1:<port>`` + the server path -- the mock's ``https://api.bitbucket.org/2.0``
  -- and ``root_url`` is ``http://127.0.0.1:<port>`` (what an admin types as the server URL of
  a self-hosted instance, or a Jira site's baseUrl).
* Path parameters match one path segment: GitHub ``GET /repos/o/r/git/ref/heads/main`` is a
  404 in Prism; ``heads%2Fmain`` works.
* Per request, the header ``Prefer: code=404`` / ``example=<name>`` / ``dynamic=true`` picks
  the response (see :func:`prefer`).
* No GitHub operation declares a 429 -- write stub servers for rate-limit tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "node_modules"
PRISM_BIN = NODE_MODULES / ".bin" / "prism"
OCTOKIT_GENERATED = NODE_MODULES / "@octokit" / "openapi" / "generated"
ENSURE_NODE_DEPS = REPO_ROOT / "scripts" / "ensure-node-deps.sh"

# Short names for the descriptions in ../shared/data/specs.
SHARED_SPECS = {
    "bitbucket-cloud": "bitbucket-cloud.openapi.json",
    "bitbucket-datacenter": "bitbucket-datacenter-9.2.openapi.json",
    "jira-platform": "jira-platform.openapi.json",
    "jira-software": "jira-software.openapi.json",
    "azure-devops-git": "azure-devops-7.1/specification/git/7.1/git.json",
    "azure-devops-hooks": "azure-devops-7.1/specification/hooks/7.1/serviceHooks.json",
}

VIOLATIONS_HEADER = "sl-violations"
PRISM_ERROR_PREFIX = "https://stoplight.io/prism/errors#"


class PrismError(RuntimeError):
    """Prism could not be started (missing node/npm, bad spec, timeout)."""


# --------------------------------------------------------------------------- spec locations


def shared_specs_dir() -> Path:
    """``../shared/data/specs`` relative to the repository, else ``/work/shared/data/specs``."""
    env = os.environ.get("SHARED_SPECS_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared" / "data" / "specs", Path("/work/shared/data/specs")]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"shared specs not found in any of: {', '.join(map(str, candidates))}")


def shared_spec_path(name: str) -> Path:
    """A description from the shared data: a short name from ``SHARED_SPECS`` or a relative path."""
    path = shared_specs_dir() / SHARED_SPECS.get(name, name)
    if not path.is_file():
        raise FileNotFoundError(f"no spec {name!r} at {path} (known: {', '.join(SHARED_SPECS)})")
    return path


def github_spec_path(ghes_version: str | None = None, *, variant: str | None = None) -> Path:
    """GitHub's description from ``@octokit/openapi``.

    ``github_spec_path()`` is api.github.com, ``github_spec_path("3.19")`` is GitHub Enterprise
    Server 3.19 (served under ``/api/v3``), ``variant="ghec"`` is Enterprise Cloud.
    """
    ensure_node_deps()
    if ghes_version and variant:
        raise ValueError("give either ghes_version or variant")
    stem = f"ghes-{ghes_version}" if ghes_version else (variant or "api.github.com")
    path = OCTOKIT_GENERATED / f"{stem}.json"
    if not path.is_file():
        known = sorted(p.stem for p in OCTOKIT_GENERATED.glob("*.json") if ".deref" not in p.name)
        raise FileNotFoundError(f"no GitHub description {path.name}; @octokit/openapi has: {', '.join(known)}")
    return path


def ghes_versions() -> list[str]:
    """GHES versions shipped by the installed ``@octokit/openapi``, oldest first."""
    ensure_node_deps()
    found = [
        m.group(1) for p in OCTOKIT_GENERATED.glob("ghes-*.json") if (m := re.fullmatch(r"ghes-([\d.]+)\.json", p.name))
    ]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


_deps_lock = threading.Lock()


def ensure_node_deps() -> None:
    """Run ``scripts/ensure-node-deps.sh`` (``npm ci`` when needed) if Prism is not installed."""
    with _deps_lock:
        if PRISM_BIN.exists() and OCTOKIT_GENERATED.is_dir():
            return
        result = subprocess.run(
            ["sh", str(ENSURE_NODE_DEPS)], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or not PRISM_BIN.exists():
            raise PrismError(
                f"Node test tools are not installed and {ENSURE_NODE_DEPS.name} failed "
                f"(exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            )


# --------------------------------------------------------------------------- spec rewriting


def load_spec(spec: Path | str) -> dict[str, Any]:
    """Parse a JSON description (tolerates the UTF-8 BOM the Azure files carry)."""
    return json.loads(Path(spec).read_text(encoding="utf-8-sig"))


def spec_base_path(doc: dict[str, Any]) -> str:
    """The path part of the first server URL (OpenAPI 3) or ``basePath`` (Swagger 2), no trailing /."""
    if "swagger" in doc:
        path = str(doc.get("basePath") or "").strip("/")
        return "/" + path if path else ""
    servers = doc.get("servers") or []
    if not servers:
        return ""
    url = str(servers[0].get("url", ""))
    for name, var in (servers[0].get("variables") or {}).items():
        url = url.replace("{" + name + "}", str(var.get("default", "")))
    path = urlsplit(url).path if "://" in url else url
    return "/" + path.strip("/") if path.strip("/") else ""


def _ci_resolve(base: Path, rel: str) -> Path | None:
    """Resolve ``rel`` under ``base`` ignoring letter case (one unambiguous match per segment)."""
    current = base
    for part in rel.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        exact = current / part
        if exact.exists():
            current = exact
            continue
        if not current.is_dir():
            return None
        matches = [entry for entry in current.iterdir() if entry.name.lower() == part.lower()]
        if len(matches) != 1:
            return None
        current = matches[0]
    return current


def _rewrite_external_refs(node: Any, spec_dir: Path) -> int:
    """Point relative file ``$ref``s at absolute, correctly cased paths. Returns how many changed."""
    changed = 0
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#") and "://" not in ref:
            file_part, hash_, fragment = ref.partition("#")
            if file_part:
                target = _ci_resolve(spec_dir, file_part)
                if target is not None:
                    node["$ref"] = target.as_posix() + hash_ + fragment
                    changed += 1
        for value in node.values():
            changed += _rewrite_external_refs(value, spec_dir)
    elif isinstance(node, list):
        for value in node:
            changed += _rewrite_external_refs(value, spec_dir)
    return changed


def _prefix_paths(doc: dict[str, Any], prefix: str) -> None:
    # Paths that already carry the prefix stay as they are (Jira Software mixes both).
    doc["paths"] = {
        (path if path.startswith(prefix + "/") else prefix + path): item for path, item in doc.get("paths", {}).items()
    }
    if "swagger" in doc:
        doc["basePath"] = "/"


def _collect_local_refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            out.add(ref)
        for value in node.values():
            _collect_local_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _collect_local_refs(value, out)


def _json_pointer_get(doc: Any, pointer: str) -> Any:
    node = doc
    for raw in pointer.lstrip("#/").split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _prune(doc: dict[str, Any], keep: Iterable[str]) -> dict[str, Any]:
    """Keep only the given paths and the components/definitions they reach through ``$ref``."""
    keep = list(keep)
    missing = [p for p in keep if p not in doc.get("paths", {})]
    if missing:
        raise KeyError(f"paths not in the description: {missing}")
    dropped = ("paths", "components", "definitions", "parameters", "responses", "webhooks", "x-webhooks")
    pruned = {k: v for k, v in doc.items() if k not in dropped}
    pruned["paths"] = {p: doc["paths"][p] for p in keep}
    # Walk $refs transitively from everything kept.
    seen: set[str] = set()
    todo: set[str] = set()
    _collect_local_refs(pruned, todo)
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _collect_local_refs(_json_pointer_get(doc, ref), todo)
    # Rebuild the containers holding what is referenced (plus security schemes, always kept).
    containers = ("components",) if "openapi" in doc else ("definitions", "parameters", "responses")
    for container in containers:
        if container not in doc:
            continue
        if container == "components":
            comps: dict[str, Any] = {}
            if "securitySchemes" in doc["components"]:
                comps["securitySchemes"] = doc["components"]["securitySchemes"]
            for ref in seen:
                parts = ref.lstrip("#/").split("/")
                if parts[0] == "components" and len(parts) >= 3:
                    kind, name = parts[1], parts[2].replace("~1", "/").replace("~0", "~")
                    comps.setdefault(kind, {})[name] = doc["components"][kind][name]
            pruned["components"] = comps
        else:
            kept = {}
            for ref in seen:
                parts = ref.lstrip("#/").split("/")
                if parts[0] == container and len(parts) >= 2:
                    name = parts[1].replace("~1", "/").replace("~0", "~")
                    kept[name] = doc[container][name]
            pruned[container] = kept
    if "swagger" in doc and "securityDefinitions" in doc:
        pruned["securityDefinitions"] = doc["securityDefinitions"]
    return pruned


def _iter_operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    for path, item in (doc.get("paths") or {}).items():
        for method, op in item.items():
            if method in methods and isinstance(op, dict):
                yield path, method, op


def _decode_string_examples(node: Any) -> int:
    """Atlassian's Jira descriptions give JSON examples as *strings* (``"{\"id\": ...}"``),
    which Prism would send as a JSON string. Decode them where the media type is JSON."""
    changed = 0
    if isinstance(node, dict):
        content = node.get("content")
        if isinstance(content, dict):
            for media_type, media in content.items():
                if not isinstance(media, dict) or "json" not in media_type:
                    continue
                example = media.get("example")
                schema_type = (media.get("schema") or {}).get("type")
                if isinstance(example, str) and example.lstrip()[:1] in ("{", "[") and schema_type != "string":
                    try:
                        media["example"] = json.loads(example)
                        changed += 1
                    except ValueError:
                        pass
        for value in node.values():
            changed += _decode_string_examples(value)
    elif isinstance(node, list):
        for value in node:
            changed += _decode_string_examples(value)
    return changed


# Transforms for known gaps between a description and the real service. Pass one as
# ``PrismMock(..., transform=...)``; the fixtures in prism_fixtures.py already do.


def allow_connect_jwt(doc: dict[str, Any]) -> None:
    """Jira descriptions know basic auth and OAuth 2 only; a Connect app sends
    ``Authorization: JWT <token>``, which Prism would refuse with 401. Add it as an alternative."""
    doc.setdefault("components", {}).setdefault("securitySchemes", {})["atlassianConnectJwt"] = {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Atlassian Connect JWT (added for tests)",
    }
    for _, _, op in _iter_operations(doc):
        if op.get("security"):
            op["security"].append({"atlassianConnectJwt": []})
    if doc.get("security"):
        doc["security"].append({"atlassianConnectJwt": []})


GITHUB_MEDIA_TYPES = ("application/vnd.github+json",)


def accept_github_media_types(doc: dict[str, Any]) -> None:
    """GitHub asks clients to send ``Accept: application/vnd.github+json``, but its description
    lists ``application/json`` responses only, and Prism's strict negotiation answers 406.
    Offer every JSON response under GitHub's media types too."""
    responses: list[dict[str, Any]] = [
        r for _, _, op in _iter_operations(doc) for r in (op.get("responses") or {}).values()
    ]
    responses += list((doc.get("components") or {}).get("responses", {}).values())
    for response in responses:
        content = response.get("content") if isinstance(response, dict) else None
        if isinstance(content, dict) and "application/json" in content:
            for media_type in GITHUB_MEDIA_TYPES:
                content.setdefault(media_type, content["application/json"])


def wrap_azure_lists(doc: dict[str, Any]) -> None:
    """Azure DevOps' Swagger describes list results as bare arrays; the service wraps them as
    ``{"count": n, "value": [...]}``. Describe (and so mock) what the service really sends."""
    for _, _, op in _iter_operations(doc):
        for response in (op.get("responses") or {}).values():
            schema = response.get("schema") if isinstance(response, dict) else None
            if isinstance(schema, dict) and schema.get("type") == "array":
                response["schema"] = {
                    "type": "object",
                    "properties": {"count": {"type": "integer", "format": "int32"}, "value": schema},
                    "required": ["count", "value"],
                }


def azure_devops_fixes(doc: dict[str, Any]) -> None:
    """Both Azure DevOps gaps: PAT basic auth and ``{count, value}`` list envelopes."""
    allow_azure_pat_basic(doc)
    wrap_azure_lists(doc)


def allow_azure_pat_basic(doc: dict[str, Any]) -> None:
    """Azure DevOps operations declare only ``oauth2`` (Bearer), overriding the global
    ``accessToken`` (basic auth with a PAT) that the real service accepts everywhere. Allow both."""
    for _, _, op in _iter_operations(doc):
        security = op.get("security")
        if security and {"accessToken": []} not in security:
            security.append({"accessToken": []})


def fix_bitbucket_cloud(doc: dict[str, Any]) -> None:
    """Bitbucket Cloud's create-branch and create-tag operations describe their JSON body only in
    prose (no ``requestBody``), so Prism answers 415 to any body. Declare the documented body."""
    target = {"type": "object", "properties": {"hash": {"type": "string"}}, "required": ["hash"]}
    for path in (
        "/repositories/{workspace}/{repo_slug}/refs/branches",
        "/repositories/{workspace}/{repo_slug}/refs/tags",
    ):
        for key, op in doc.get("paths", {}).items():
            if key.endswith(path) and "post" in op and "requestBody" not in op["post"]:
                op["post"]["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "target": target,
                                    "message": {"type": "string"},
                                },
                                "required": ["name", "target"],
                            }
                        }
                    },
                }


def alias_bitbucket_dc_versions(doc: dict[str, Any]) -> None:
    """Bitbucket Data Center's description says ``/api/latest/...``; clients usually call
    ``/api/1.0/...`` (same resource). Serve every ``/<name>/latest/`` path under ``1.0`` too."""
    extra = {}
    for path, item in doc.get("paths", {}).items():
        aliased = re.sub(r"/latest(/|$)", r"/1.0\1", path, count=1)
        if aliased != path and aliased not in doc["paths"]:
            extra[aliased] = item
    doc["paths"].update(extra)


@dataclass
class PreparedSpec:
    """A description ready for Prism: the file to serve and the base path its paths carry."""

    path: Path
    base_path: str
    source: Path
    temp_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None


def prepare_spec(
    spec: Path | str,
    *,
    keep_base_path: bool = True,
    base_path: str | None = None,
    paths: Iterable[str] | None = None,
    transform: Callable[[dict[str, Any]], None] | None = None,
    fix_string_examples: bool = True,
    out_dir: Path | None = None,
) -> PreparedSpec:
    """Work around Prism's quirks, writing a rewritten copy to a temp dir only when needed.

    * ``keep_base_path``: prefix every path with the server URL's path (``/2.0``, ``/rest``,
      ``/api/v3``) so requests to ``base_url + "/repositories/..."`` route as on the real host.
    * relative file ``$ref``s (Azure's ``httpExamples``) are rewritten to absolute paths with
      the letter case the files really have; the shared data is never modified.
    * ``base_path``: use this prefix instead of the server URL's path (Jira Software's
      description lists ``/devinfo/0.10/bulk`` for what Jira serves at ``/rest/devinfo/...``).
    * ``paths``: keep only these paths (see :func:`pruned_spec`).
    * ``transform``: edits the parsed description in place before it is written (fix a spec
      gap for a test); forces a copy.
    * ``fix_string_examples``: decode JSON examples that the description stores as strings
      (all of Jira's), so Prism answers with an object, not a JSON string.
    """
    source = Path(spec).resolve()
    raw = source.read_bytes()
    doc = json.loads(raw.decode("utf-8-sig"))
    base_path = (
        spec_base_path(doc) if base_path is None else ("/" + base_path.strip("/") if base_path.strip("/") else "")
    )
    notes: list[str] = []
    needs_copy = raw.startswith(b"\xef\xbb\xbf")
    if keep_base_path and base_path:
        _prefix_paths(doc, base_path)
        notes.append(f"paths prefixed with {base_path}")
        needs_copy = True
    has_external = re.search(rb'"\$ref"\s*:\s*"(?!#)', raw) is not None
    if has_external:
        n = _rewrite_external_refs(doc, source.parent)
        notes.append(f"{n} external $refs made absolute with the files' real letter case")
        needs_copy = True
    if fix_string_examples:
        n = _decode_string_examples(doc.get("paths"))
        n += _decode_string_examples(doc.get("components"))
        if n:
            notes.append(f"{n} JSON examples given as strings decoded")
            needs_copy = True
    if transform is not None:
        transform(doc)
        notes.append("transformed")
        needs_copy = True
    if paths is not None:
        wanted = [
            base_path + p if keep_base_path and base_path and not p.startswith(base_path + "/") else p for p in paths
        ]
        doc = _prune(doc, wanted)
        notes.append(f"pruned to {len(wanted)} paths")
        needs_copy = True
    if not needs_copy:
        return PreparedSpec(path=source, base_path="", source=source, notes=notes)
    temp_dir = out_dir or Path(tempfile.mkdtemp(prefix="prism-spec-"))
    temp_dir.mkdir(parents=True, exist_ok=True)
    out = temp_dir / source.name
    out.write_text(json.dumps(doc), encoding="utf-8")
    return PreparedSpec(
        path=out,
        base_path=base_path if keep_base_path else "",
        source=source,
        temp_dir=None if out_dir else temp_dir,
        notes=notes,
    )


def pruned_spec(spec: Path | str, paths: list[str], *, out_dir: Path | None = None) -> Path:
    """Write a copy of ``spec`` holding only ``paths`` (spec-relative, e.g. ``/repos/{owner}/{repo}``)
    and the components they reference; returns the new file (in a temp dir unless ``out_dir``).

    Base paths are kept as in the source (no prefixing) so the result can be given to
    ``PrismMock`` like any other description. Use it when a whole description is too slow or
    fails to load.
    """
    source = Path(spec).resolve()
    doc = _prune(load_spec(source), paths)
    temp_dir = out_dir or Path(tempfile.mkdtemp(prefix="prism-pruned-"))
    temp_dir.mkdir(parents=True, exist_ok=True)
    if re.search(r'"\$ref"\s*:\s*"(?!#)', json.dumps(doc)):
        _rewrite_external_refs(doc, source.parent)
    out = temp_dir / source.name
    out.write_text(json.dumps(doc), encoding="utf-8")
    return out


# --------------------------------------------------------------------------- violations


def violations(response: Any) -> list[dict[str, Any]]:
    """Prism's ``sl-violations`` of one response (``requests``/``httpx`` response or a headers map).

    Each item: ``{"location": ["request"|"response", ...], "severity": "Error"|"Warning"|...,
    "code": ..., "message": ...}``. Prism truncates a very long header; then one synthetic item
    with code ``truncated`` is returned.
    """
    headers = getattr(response, "headers", response)
    value = headers.get(VIOLATIONS_HEADER) if headers is not None else None
    if not value:
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        return [{"location": ["request"], "severity": "Error", "code": "truncated", "message": value[:500]}]
    return list(parsed)


def request_violations(response: Any, *, include_warnings: bool = False) -> list[dict[str, Any]]:
    """Violations of the *request* against the description, plus Prism's own routing refusals
    (path or method not in the description, security requirements not met, bad content type)."""
    found = [
        v
        for v in violations(response)
        if v.get("location", [""])[0] == "request" and (include_warnings or v.get("severity") == "Error")
    ]
    problem = _prism_problem(response)
    if problem and not problem["type"].endswith("#VIOLATIONS") and not found:
        details = [v for v in problem.get("validation") or [] if isinstance(v, dict)]
        if details:  # 422 made by Prism: the details are in the body, not the header
            found += [{**v, "location": ["request", *v.get("location", [])]} for v in details]
        else:  # 401 / 404 / 405 / 415 made by Prism: the request does not fit the description
            found.append(
                {
                    "location": ["request"],
                    "severity": "Error",
                    "code": problem["type"].removeprefix(PRISM_ERROR_PREFIX),
                    "message": problem.get("detail") or problem.get("title", ""),
                }
            )
    return found


def response_violations(response: Any) -> list[dict[str, Any]]:
    """Where Prism's own response broke the schema (bad examples in the description)."""
    return [v for v in violations(response) if v.get("location", [""])[0] == "response"]


def _prism_problem(response: Any) -> dict[str, Any] | None:
    headers = getattr(response, "headers", None)
    if headers is None or "problem+json" not in (headers.get("content-type") or ""):
        return None
    try:
        body = response.json() if callable(getattr(response, "json", None)) else None
    except ValueError:
        return None
    if isinstance(body, dict) and str(body.get("type", "")).startswith(PRISM_ERROR_PREFIX):
        return body
    return None


def _describe(response: Any, found: list[dict[str, Any]]) -> str:
    request = getattr(response, "request", None)
    what = f"{getattr(request, 'method', '?')} {getattr(request, 'url', '?')}" if request is not None else "request"
    lines = [f"{what} -> {getattr(response, 'status_code', '?')} violates the API description:"]
    lines += [f"  - {'.'.join(map(str, v.get('location', [])))}: {v.get('message')} [{v.get('code')}]" for v in found]
    return "\n".join(lines)


def is_request_valid(response: Any) -> bool:
    return not request_violations(response)


def assert_request_valid(response: Any) -> None:
    """Fail with a readable list when Prism says the request broke the description."""
    found = request_violations(response)
    if found:
        raise AssertionError(_describe(response, found))


def prefer(*, code: int | None = None, example: str | None = None, dynamic: bool | None = None) -> dict[str, str]:
    """The ``Prefer`` header that makes Prism answer with a given status / named example / mode."""
    parts = []
    if code is not None:
        parts.append(f"code={code}")
    if example is not None:
        parts.append(f"example={example}")
    if dynamic is not None:
        parts.append(f"dynamic={'true' if dynamic else 'false'}")
    return {"Prefer": ", ".join(parts)} if parts else {}


# --------------------------------------------------------------------------- recording


@dataclass
class Exchange:
    method: str
    url: str
    status: int
    request_violations: list[dict[str, Any]]
    response_violations: list[dict[str, Any]]
    response: Any


class Recorder:
    """Responses from one mock seen by ``requests`` while recording (see ``PrismMock.recording``)."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def add(self, response: Any) -> None:
        url = str(getattr(response, "url", "") or getattr(getattr(response, "request", None), "url", ""))
        if not url.startswith(self.root_url):
            return
        request = getattr(response, "request", None)
        with self._lock:
            self.exchanges.append(
                Exchange(
                    method=getattr(request, "method", "?"),
                    url=url,
                    status=response.status_code,
                    request_violations=request_violations(response),
                    response_violations=response_violations(response),
                    response=response,
                )
            )

    @property
    def invalid(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.request_violations]

    def assert_all_valid(self, *, min_requests: int = 1) -> None:
        """Every recorded request was valid per the description (and there were some)."""
        if len(self.exchanges) < min_requests:
            raise AssertionError(
                f"expected at least {min_requests} request(s) to {self.root_url}, saw {len(self.exchanges)}"
            )
        bad = self.invalid
        if bad:
            raise AssertionError("\n".join(_describe(e.response, e.request_violations) for e in bad))


# --------------------------------------------------------------------------- the server


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class PrismMock:
    """A running ``prism mock`` for one description. Use as a context manager or start()/stop()."""

    HOST = "127.0.0.1"

    def __init__(
        self,
        spec_path: Path | str,
        *,
        port: int | None = None,
        errors: bool = False,
        dynamic: bool = False,
        ignore_examples: bool = False,
        seed: str | int | None = None,
        keep_base_path: bool = True,
        base_path: str | None = None,
        paths: Iterable[str] | None = None,
        transform: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = 60.0,
        verbose_level: str = "info",
    ) -> None:
        self.spec_path = Path(spec_path)
        self.requested_port = port
        self.errors = errors
        self.dynamic = dynamic
        self.ignore_examples = ignore_examples
        self.seed = seed
        self.keep_base_path = keep_base_path
        self.base_path_override = base_path
        self.transform = transform
        self.paths = list(paths) if paths is not None else None
        self.timeout = timeout
        self.verbose_level = verbose_level
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.prepared: PreparedSpec | None = None
        self.startup_seconds: float | None = None
        self._log_dir: Path | None = None
        self.log_path: Path | None = None

    # -- urls
    @property
    def root_url(self) -> str:
        if self.port is None:
            raise RuntimeError("Prism is not running")
        return f"http://{self.HOST}:{self.port}"

    @property
    def base_path(self) -> str:
        return self.prepared.base_path if self.prepared else ""

    @property
    def base_url(self) -> str:
        """Root URL plus the description's server path: the mock's ``https://api.bitbucket.org/2.0``."""
        return self.root_url + self.base_path

    def url(self, path: str) -> str:
        """``base_url`` + a spec-relative path like ``/repositories/ws/repo``."""
        return self.base_url + ("" if path.startswith("/") else "/") + path

    # -- lifecycle
    def command(self) -> list[str]:
        assert self.prepared is not None and self.port is not None
        cmd = [str(PRISM_BIN), "mock", "-h", self.HOST, "-p", str(self.port), "-v", self.verbose_level]
        if self.errors:
            cmd.append("--errors")
        if self.dynamic:
            cmd.append("--dynamic")
        if self.ignore_examples:
            cmd.append("--ignoreExamples")
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        cmd.append(str(self.prepared.path))
        return cmd

    def start(self) -> PrismMock:
        if self.process is not None:
            return self
        ensure_node_deps()
        if shutil.which("node") is None:
            raise PrismError("`node` is not on PATH; install Node.js 20 (Prism 5.14.2 needs it)")
        self.prepared = prepare_spec(
            self.spec_path,
            keep_base_path=self.keep_base_path,
            base_path=self.base_path_override,
            paths=self.paths,
            transform=self.transform,
        )
        self._log_dir = Path(tempfile.mkdtemp(prefix="prism-log-"))
        started = time.monotonic()
        attempts = 1 if self.requested_port else 3
        last_error: PrismError | None = None
        for _ in range(attempts):
            self.port = self.requested_port or free_port(self.HOST)
            try:
                self._spawn_and_wait(started)
                self.startup_seconds = time.monotonic() - started
                return self
            except PrismError as exc:
                last_error = exc
                self._kill()
                if "EADDRINUSE" not in str(exc):
                    break
        self.stop()
        assert last_error is not None
        raise last_error

    def _spawn_and_wait(self, started: float) -> None:
        assert self._log_dir is not None and self.port is not None
        self.log_path = self._log_dir / f"prism-{self.port}.log"
        log = self.log_path.open("wb")
        env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
        try:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole in stop()
                env=env,
            )
        finally:
            log.close()
        listening = f"listening on {self.root_url}"
        deadline = started + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrismError(
                    f"Prism exited with {self.process.returncode} while loading {self.spec_path}:\n{self.log_tail()}"
                )
            if listening in self.log_text(tail_bytes=4096) and _port_open(self.HOST, self.port):
                return
            time.sleep(0.1)
        raise PrismError(f"Prism did not listen on {self.root_url} within {self.timeout:.0f}s:\n{self.log_tail()}")

    def _kill(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        else:
            # The leader exited; reap anything left in its group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        self._kill()
        if self.prepared is not None:
            self.prepared.cleanup()
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
            self.log_path = None

    def __enter__(self) -> PrismMock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- diagnostics
    def log_text(self, *, tail_bytes: int | None = None) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            if tail_bytes is not None:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - tail_bytes))
            return fh.read().decode("utf-8", "replace")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_text(tail_bytes=64 * 1024)
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        return "\n".join(text.splitlines()[-lines:])

    @contextlib.contextmanager
    def recording(self) -> Iterator[Recorder]:
        """Record every ``requests`` response from this mock (whatever session sent it)::

        with prism_github.recording() as rec:
            client.list_branches(repo)
        rec.assert_all_valid()
        """
        import requests.adapters

        recorder = Recorder(self.root_url)
        original = requests.adapters.HTTPAdapter.send

        def send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            response = original(adapter, request, *args, **kwargs)
            recorder.add(response)
            return response

        requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
        try:
            yield recorder
        finally:
            requests.adapters.HTTPAdapter.send = original  # type: ignore[method-assign]

    def __repr__(self) -> str:
        state = f"on {self.base_url}" if self.process else "stopped"
        return f"<PrismMock {self.spec_path.name} {state}>"
