"""One contract every provider passes, driven through the registry only.

Each provider's own API calls are checked against its host's official description
in its own test module (Prism / Stubber / documented payloads); this suite checks
what callers rely on across all of them: registration, the Protocol, capabilities
that match behaviour, and credentials that never leak into errors.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask, Response

from connect_app.errors import AppError, AuthError, HostAuthError, Unsupported
from connect_app.hosts.base import (
    AuthType,
    Capability,
    Credentials,
    GitHost,
    ProviderId,
    RemoteRepository,
)
from connect_app.hosts.registry import HostConfig, build_host, provider_info, providers
from tests.support.http_server import LoopbackServer

SECRET = "tok-very-secret-0123456789abcdef"


def _refusing_host() -> Flask:
    """Answers every request the way a host answers a bad credential."""
    app = Flask("refusing-host")

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "DELETE"])
    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
    def refuse(path: str) -> Response:
        body = f'{{"message": "Bad credentials", "echo": "{SECRET}"}}'
        return Response(body, status=401, headers={"WWW-Authenticate": 'Basic realm="x"'}, mimetype="application/json")

    return app


@pytest.fixture(scope="module")
def refusing_host() -> Any:
    server = LoopbackServer(_refusing_host()).start()
    yield server
    server.stop()


def _credentials(provider: ProviderId) -> Credentials:
    info = provider_info(provider)
    if AuthType.AWS in info.auth_types:
        return Credentials(AuthType.AWS, username="AKIAEXAMPLEKEY", password=SECRET, extra={"region": "eu-west-1"})
    if AuthType.PAT in info.auth_types:
        return Credentials(AuthType.PAT, token=SECRET, username="someone")
    return Credentials(AuthType.PASSWORD, username="someone", password=SECRET)


def _config(provider: ProviderId, url: str) -> HostConfig:
    base: str | None = url
    if provider is ProviderId.GIT:
        base = f"{url}/repo.git"
    return HostConfig(
        provider=provider,
        credentials=_credentials(provider),
        base_url=base,
        namespace="acme",
        allow_private=True,
        client_options={"max_wait_seconds": 0} if provider not in (ProviderId.GIT, ProviderId.AWS_CODECOMMIT) else {},
    )


def _host(provider: ProviderId, url: str) -> GitHost:
    return build_host(_config(provider, url))


ALL = list(ProviderId)


def test_registry_lists_every_provider_once() -> None:
    ids = [p.id for p in providers()]
    assert ids == ALL
    assert len(ALL) == 11


@pytest.mark.parametrize("provider", ALL, ids=str)
def test_info_is_complete(provider: ProviderId) -> None:
    info = provider_info(provider)
    assert info.id is provider
    assert info.name and info.auth_types
    assert info.capabilities <= frozenset(Capability)
    if Capability.OAUTH in info.capabilities:
        assert AuthType.OAUTH in info.auth_types
    expected_self_hosted = provider in {
        ProviderId.GITHUB_ENTERPRISE,
        ProviderId.GITLAB_SELF_MANAGED,
        ProviderId.BITBUCKET_DATACENTER,
        ProviderId.AZURE_DEVOPS_SERVER,
        ProviderId.GERRIT,
        ProviderId.GIT,
    }
    assert info.self_hosted is expected_self_hosted


@pytest.mark.parametrize("provider", ALL, ids=str)
def test_built_host_satisfies_the_protocol(provider: ProviderId, refusing_host: LoopbackServer) -> None:
    host = _host(provider, refusing_host.url)
    assert isinstance(host, GitHost)
    assert host.info.id is provider
    assert SECRET not in repr(host)
    assert SECRET not in repr(_credentials(provider))


@pytest.mark.parametrize("provider", ALL, ids=str)
def test_bad_credentials_are_a_clear_auth_error_without_the_secret(
    provider: ProviderId, refusing_host: LoopbackServer
) -> None:
    host = _host(provider, refusing_host.url)
    with pytest.raises(AppError) as info:
        host.validate_credentials()
    assert isinstance(info.value, HostAuthError) or info.value.status in (400, 401, 403, 502, 503), info.value
    assert SECRET not in str(info.value)
    assert SECRET not in info.value.message
    if provider is not ProviderId.AWS_CODECOMMIT:  # boto3 talks AWS's protocol, not plain HTTP 401
        assert isinstance(info.value, HostAuthError), f"{provider}: {info.value!r}"


@pytest.mark.parametrize("provider", ALL, ids=str)
def test_unsupported_operations_say_so(provider: ProviderId, refusing_host: LoopbackServer) -> None:
    host = _host(provider, refusing_host.url)
    caps = host.info.capabilities
    repo = RemoteRepository(external_id="1", name="acme/widgets", clone_url=f"{refusing_host.url}/repo.git")
    if Capability.CREATE_PULL_REQUEST not in caps:
        with pytest.raises(Unsupported):
            host.create_pull_request(repo, source="a", target="b", title="t", body="")
    if Capability.WEBHOOKS not in caps:
        with pytest.raises(Unsupported):
            host.register_webhook(repo, "https://app.example/webhooks/1/x", "s3cret")
        with pytest.raises(Unsupported):
            host.verify_webhook({}, b"{}", "s3cret")


@pytest.mark.parametrize("provider", [p for p in ALL if Capability.WEBHOOKS in provider_info(p).capabilities], ids=str)
def test_webhook_without_signature_is_refused(provider: ProviderId, refusing_host: LoopbackServer) -> None:
    host = _host(provider, refusing_host.url)
    with pytest.raises(AuthError):
        host.verify_webhook({"Content-Type": "application/json"}, b'{"zen": "hi"}', "s3cret")
    wrong = base64.b64encode(b":not-the-secret").decode()
    with pytest.raises(AuthError):
        host.verify_webhook(
            {
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
                "X-Hub-Signature": "sha256=" + "0" * 64,
                "X-Gitlab-Token": "not-the-secret",
                "Authorization": f"Basic {wrong}",
            },
            b'{"zen": "hi"}',
            "s3cret",
        )


def test_readme_host_table_matches_the_registry() -> None:
    from pathlib import Path

    from connect_app.hosts.registry import markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table() in readme
