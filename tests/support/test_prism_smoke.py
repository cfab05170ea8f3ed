"""The Prism harness works: mocks of the official descriptions answer valid requests with
schema-shaped data and flag requests that break the description."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from tests.support.prism import (
    PrismMock,
    assert_request_valid,
    github_spec_path,
    prefer,
    pruned_spec,
    request_violations,
    shared_spec_path,
)

pytestmark = pytest.mark.slow

GITHUB = {"Authorization": "Bearer ghp_test", "Accept": "application/vnd.github+json"}
BITBUCKET = {"Authorization": "Bearer bb-test"}
AZURE_PAT = {"Authorization": "Basic " + base64.b64encode(b":azure-pat").decode()}


# ------------------------------------------------------------------------------------- GitHub


def test_github_get_repository_is_schema_shaped(prism_github: PrismMock) -> None:
    r = requests.get(prism_github.url("/repos/octo-org/hello"), headers=GITHUB, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert_request_valid(r)
    repo = r.json()
    for key in ("id", "name", "full_name", "owner", "default_branch", "private", "clone_url", "html_url"):
        assert key in repo, key
    assert isinstance(repo["owner"]["login"], str)


def test_github_flags_a_request_missing_a_required_field(prism_github: PrismMock) -> None:
    # POST /repos/{owner}/{repo}/git/refs requires "ref" and "sha".
    r = requests.post(prism_github.url("/repos/o/r/git/refs"), headers=GITHUB, json={"sha": "a" * 40}, timeout=30)
    assert r.status_code == 422
    found = request_violations(r)
    assert any("ref" in v["message"] and v["code"] == "required" for v in found), found
    with pytest.raises(AssertionError, match="required property 'ref'"):
        assert_request_valid(r)

    ok = requests.post(
        prism_github.url("/repos/o/r/git/refs"),
        headers=GITHUB,
        json={"ref": "refs/heads/ABC-1-fix", "sha": "a" * 40},
        timeout=30,
    )
    assert ok.status_code == 201
    assert_request_valid(ok)


def test_github_unknown_route_is_a_violation(prism_github: PrismMock) -> None:
    r = requests.get(prism_github.url("/repos/o/r/no-such-thing"), headers=GITHUB, timeout=30)
    assert r.status_code == 404
    assert request_violations(r)[0]["code"] == "NO_PATH_MATCHED_ERROR"


def test_github_prefer_header_and_recording(prism_github: PrismMock) -> None:
    with prism_github.recording() as rec:
        session = requests.Session()
        r = session.get(prism_github.url("/repos/o/r"), headers={**GITHUB, **prefer(code=404)}, timeout=30)
        assert r.status_code == 404
        session.get(prism_github.url("/repos/o/r/pulls?state=bogus"), headers=GITHUB, timeout=30)
    assert len(rec.exchanges) == 2
    assert [e.status for e in rec.invalid] == [422]
    with pytest.raises(AssertionError, match="state"):
        rec.assert_all_valid()


# --------------------------------------------------------------------------- Bitbucket Cloud


def test_bitbucket_cloud_base_path_and_validation(prism_bitbucket_cloud: PrismMock) -> None:
    assert prism_bitbucket_cloud.base_url.endswith("/2.0")
    r = requests.get(prism_bitbucket_cloud.url("/repositories/ws/repo/pullrequests"), headers=BITBUCKET, timeout=30)
    assert r.status_code == 200
    assert_request_valid(r)
    assert "values" in r.json()

    bad = requests.get(
        prism_bitbucket_cloud.url("/repositories/ws/repo/pullrequests?state=BOGUS"), headers=BITBUCKET, timeout=30
    )
    assert bad.status_code == 422
    assert any(v["code"] == "enum" for v in request_violations(bad))

    no_auth = requests.get(prism_bitbucket_cloud.url("/repositories/ws/repo"), timeout=30)
    assert no_auth.status_code == 401
    assert request_violations(no_auth)

    # The description's create-branch has no requestBody; the fixture declares the documented one.
    branch = requests.post(
        prism_bitbucket_cloud.url("/repositories/ws/repo/refs/branches"),
        headers=BITBUCKET,
        json={"name": "ABC-1-fix", "target": {"hash": "a" * 40}},
        timeout=30,
    )
    assert branch.status_code == 201, branch.text[:300]
    assert_request_valid(branch)


# ----------------------------------------------------------------------- Bitbucket Data Center


def test_bitbucket_dc_latest_and_1_0(prism_bitbucket_dc: PrismMock) -> None:
    assert prism_bitbucket_dc.base_url == prism_bitbucket_dc.root_url + "/rest"
    for version in ("latest", "1.0"):
        r = requests.get(
            prism_bitbucket_dc.url(f"/api/{version}/projects/PRJ/repos/repo/pull-requests"),
            headers={"Authorization": "Bearer bbdc"},
            timeout=30,
        )
        assert r.status_code == 200, (version, r.text[:300])
        assert_request_valid(r)


# ------------------------------------------------------------------------------ Azure DevOps


def test_azure_devops_refs_load_and_validate(prism_azure_devops: PrismMock) -> None:
    url = prism_azure_devops.url("/fabrikam/proj/_apis/git/repositories")
    r = requests.get(url, params={"api-version": "7.1"}, headers=AZURE_PAT, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert_request_valid(r)
    listing = r.json()
    assert isinstance(listing["count"], int)  # the {count, value} envelope the service sends
    assert isinstance(listing["value"], list)
    assert "remoteUrl" in listing["value"][0]

    missing_version = requests.get(url, headers=AZURE_PAT, timeout=30)
    assert missing_version.status_code in (400, 422)
    assert any("api-version" in v["message"] for v in request_violations(missing_version))


def test_azure_devops_create_pull_request_body_checked(prism_azure_devops: PrismMock) -> None:
    url = prism_azure_devops.url("/fabrikam/proj/_apis/git/repositories/repo-id/pullrequests")
    r = requests.post(url, params={"api-version": "7.1"}, headers=AZURE_PAT, data="not json", timeout=30)
    assert request_violations(r)
    ok = requests.post(
        url,
        params={"api-version": "7.1"},
        headers=AZURE_PAT,
        json={"sourceRefName": "refs/heads/ABC-1", "targetRefName": "refs/heads/main", "title": "ABC-1"},
        timeout=30,
    )
    assert ok.status_code in (200, 201), ok.text[:300]
    assert_request_valid(ok)


# -------------------------------------------------------------------------------------- Jira


def test_jira_platform_accepts_connect_jwt_and_decodes_examples(prism_jira_platform: PrismMock) -> None:
    r = requests.get(
        prism_jira_platform.root_url + "/rest/api/3/mypermissions",
        params={"permissions": "ADMINISTER"},
        headers={"Authorization": "JWT a.b.c"},
        timeout=30,
    )
    assert r.status_code == 200
    assert_request_valid(r)
    assert isinstance(r.json(), dict), "string examples must be decoded"
    assert "permissions" in r.json()


def test_jira_software_devinfo_under_rest(prism_jira_software: PrismMock) -> None:
    body = {
        "repositories": [
            {
                "id": "1",
                "name": "repo",
                "url": "https://example.com/repo",
                "updateSequenceId": 1,
                "commits": [],
            }
        ]
    }
    url = prism_jira_software.root_url + "/rest/devinfo/0.10/bulk"
    r = requests.post(url, headers={"Authorization": "JWT a.b.c"}, json=body, timeout=30)
    assert r.status_code == 202, r.text[:300]
    assert_request_valid(r)
    bad = requests.post(url, headers={"Authorization": "JWT a.b.c"}, json={"repositories": "nope"}, timeout=30)
    assert request_violations(bad)


# ------------------------------------------------------------------------------ PrismMock API


def test_pruned_spec_and_context_manager(tmp_path) -> None:
    spec = pruned_spec(github_spec_path(), ["/repos/{owner}/{repo}"], out_dir=tmp_path)
    doc = json.loads(spec.read_text())
    assert list(doc["paths"]) == ["/repos/{owner}/{repo}"]
    plain = {"Authorization": "Bearer ghp_test", "Accept": "application/json"}  # no media-type transform here
    with PrismMock(spec) as mock:
        assert requests.get(mock.url("/repos/o/r"), headers=plain, timeout=30).status_code == 200
        assert requests.get(mock.url("/user"), headers=plain, timeout=30).status_code == 404
        process = mock.process
        assert process is not None
    assert process.poll() is not None, "Prism must be stopped on exit"


def test_bad_spec_fails_with_prisms_output(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "openapi": "3.0.0",
                "info": {"title": "x", "version": "1"},
                "paths": {
                    "/x": {
                        "get": {
                            "responses": {
                                "200": {
                                    "description": "ok",
                                    "content": {
                                        "application/json": {"schema": {"$ref": "#/components/schemas/Missing"}}
                                    },
                                }
                            }
                        }
                    }
                },
            }
        )
    )
    with pytest.raises(Exception, match="Missing"), PrismMock(bad, timeout=30):
        pass


def test_shared_spec_lookup() -> None:
    assert shared_spec_path("bitbucket-cloud").name == "bitbucket-cloud.openapi.json"
    with pytest.raises(FileNotFoundError):
        shared_spec_path("nope")
