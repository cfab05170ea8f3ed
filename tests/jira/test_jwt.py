"""Incoming HS256 tokens, signed installs (RS256) with their key fetcher, outgoing app tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import jwt as pyjwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from connect_app.errors import AuthError
from connect_app.jira.jwt import (
    CONTEXT_QSH,
    MAX_TOKEN_LENGTH,
    InstallKeyFetcher,
    QshMode,
    VerifiedToken,
    encode_app_token,
    encode_install_token,
    encode_request_token,
    query_string_hash,
    unverified_issuer,
    verify_install_token,
    verify_request_token,
)

SECRET = "tenant-shared-secret-0123456789abcdefghijklmnop"
OTHER_SECRET = "another-tenant-secret-0123456789abcdefghijklmno"
ISSUER = "a1b2c3d4-client-key"
ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"
NOW = 1_700_000_000
BASE_URL = "https://app.example.com"
PANEL = ("GET", "/panel", "issueKey=PROJ-1&projectKey=PROJ")
INSTALL = ("POST", "/lifecycle/installed", "")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], key: bytes = b"") -> str:
    """A token built by hand, for headers and keys PyJWT refuses to produce."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{_b64(signature)}"


def _claims(**extra: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "iat": NOW, "exp": NOW + 180, "qsh": query_string_hash(*PANEL)}
    claims.update(extra)
    return claims


def request_token(**kw: Any) -> str:
    method, path, query = PANEL
    args: dict[str, Any] = {
        "issuer": ISSUER,
        "secret": SECRET,
        "method": method,
        "path": path,
        "query": query,
        "subject": ACCOUNT,
        "now": NOW,
    }
    args.update(kw)
    return encode_request_token(**args)


def verify(token: str, mode: QshMode = QshMode.REQUEST, **kw: Any) -> VerifiedToken:
    method, path, query = PANEL
    args: dict[str, Any] = {"secret": SECRET, "method": method, "path": path, "query": query, "now": NOW + 5}
    args.update(kw)
    return verify_request_token(token, qsh_mode=mode, **args)


def assert_rejected(code: str, fn: Any, *args: Any, **kw: Any) -> AuthError:
    with pytest.raises(AuthError) as err:
        fn(*args, **kw)
    assert err.value.code == code, err.value.message
    assert err.value.status == 401
    return err.value


# ------------------------------------------------------------- HS256 requests


def test_request_token_verifies() -> None:
    verified = verify(request_token(extra_claims={"context": {"jira": {"issue": {"key": "PROJ-1"}}}}))
    assert verified.issuer == ISSUER
    assert verified.subject == ACCOUNT
    assert verified.used_context_qsh is False
    assert verified.context == {"jira": {"issue": {"key": "PROJ-1"}}}
    assert verified.claims["qsh"] == query_string_hash(*PANEL)


def test_query_order_and_jwt_param_do_not_matter() -> None:
    verify(request_token(), query="projectKey=PROJ&issueKey=PROJ-1&jwt=whatever")
    verify(request_token(), query={"projectKey": ["PROJ"], "issueKey": ["PROJ-1"]})


def test_context_token_verifies_in_context_mode() -> None:
    verified = verify(request_token(qsh=CONTEXT_QSH), QshMode.CONTEXT, method="POST", path="/api/x", query="")
    assert verified.used_context_qsh is True


def test_request_or_context_mode_takes_either_but_nothing_else() -> None:
    assert verify(request_token(), QshMode.REQUEST_OR_CONTEXT).used_context_qsh is False
    assert verify(request_token(qsh=CONTEXT_QSH), QshMode.REQUEST_OR_CONTEXT).used_context_qsh is True
    assert_rejected("jwt_bad_qsh", verify, request_token(path="/other"), QshMode.REQUEST_OR_CONTEXT)


def test_alg_none_is_rejected() -> None:
    assert_rejected("jwt_bad_algorithm", verify, _forge({"alg": "none", "typ": "JWT"}, _claims()))
    assert_rejected("jwt_bad_algorithm", verify, _forge({"alg": "None", "typ": "JWT"}, _claims()))


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_rejected(alg: str) -> None:
    assert_rejected("jwt_bad_algorithm", verify, pyjwt.encode(_claims(), SECRET * 2, algorithm=alg))


def test_rs256_token_is_rejected_on_request_routes(rsa_key: rsa.RSAPrivateKey) -> None:
    token = pyjwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert_rejected("jwt_bad_algorithm", verify, token)


def test_expired_token_is_rejected_after_leeway() -> None:
    token = request_token()  # exp = NOW + 180
    verify(token, now=NOW + 180 + 30)  # inside the leeway
    assert_rejected("jwt_expired", verify, token, now=NOW + 180 + 31)
    assert_rejected("jwt_expired", verify, token, now=NOW + 181, leeway=0)


def test_token_issued_in_the_future_is_rejected() -> None:
    assert_rejected("jwt_not_yet_valid", verify, request_token(now=NOW + 120))


def test_missing_exp_is_rejected() -> None:
    claims = _claims()
    del claims["exp"]
    assert_rejected("jwt_missing_claim", verify, _forge({"alg": "HS256", "typ": "JWT"}, claims, SECRET.encode()))


@pytest.mark.parametrize("bad_exp", ["9999999999", True, float("nan"), float("inf")])
def test_exp_must_be_a_finite_number(bad_exp: Any) -> None:
    # json.loads takes NaN and Infinity; a NaN exp would compare false and never expire.
    token = _forge({"alg": "HS256", "typ": "JWT"}, _claims(exp=bad_exp), SECRET.encode())
    assert_rejected("jwt_malformed", verify, token)


def test_missing_issuer_is_rejected() -> None:
    claims = _claims()
    del claims["iss"]
    token = pyjwt.encode(claims, SECRET, algorithm="HS256")
    assert_rejected("jwt_missing_claim", verify, token)


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/admin", PANEL[2]),
        ("POST", "/panel", PANEL[2]),
        ("GET", "/panel", "issueKey=PROJ-2&projectKey=PROJ"),
    ],
    ids=["other-path", "other-method", "other-query"],
)
def test_qsh_for_another_request_is_rejected(method: str, path: str, query: str) -> None:
    assert_rejected("jwt_bad_qsh", verify, request_token(), method=method, path=path, query=query)


def test_context_token_is_rejected_where_a_request_token_is_needed() -> None:
    err = assert_rejected("jwt_bad_qsh", verify, request_token(qsh=CONTEXT_QSH), QshMode.REQUEST)
    assert "context" in err.message


def test_request_token_is_rejected_where_a_context_token_is_needed() -> None:
    assert_rejected("jwt_bad_qsh", verify, request_token(), QshMode.CONTEXT)


def test_missing_qsh_is_rejected() -> None:
    assert_rejected("jwt_bad_qsh", verify, request_token(extra_claims={"qsh": None}), QshMode.CONTEXT)


def test_token_signed_with_another_tenants_secret_is_rejected() -> None:
    assert_rejected("jwt_bad_signature", verify, request_token(secret=OTHER_SECRET))


def test_empty_secret_never_verifies() -> None:
    forged = _forge({"alg": "HS256", "typ": "JWT"}, _claims())  # "signed" with an empty key
    assert_rejected("jwt_bad_signature", verify, forged, secret="")


def _signed_raw(header: bytes, payload: bytes) -> str:
    """Correctly HS256-signed segments whose *content* is wrong."""
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    return f"{signing_input}.{_b64(hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.###.$$$",
        "eyJhbGciOiJIUzI1NiJ9=.e30.c2ln",  # "=" padding is not base64url
        _signed_raw(b"not json", json.dumps(_claims()).encode()),
        _signed_raw(b"[1]", json.dumps(_claims()).encode()),
        _signed_raw(b'{"alg":"HS256"}', b"not json"),
        _signed_raw(b'{"alg":"HS256"}', b"[1, 2]"),
    ],
    ids=[
        "empty",
        "one-part",
        "two-parts",
        "four-parts",
        "not-base64",
        "padded",
        "header-not-json",
        "header-not-object",
        "payload-not-json",
        "payload-not-object",
    ],
)
def test_malformed_token_is_rejected(token: str) -> None:
    assert_rejected("jwt_malformed", verify, token)
    assert_rejected("jwt_malformed", unverified_issuer, token)


def test_oversized_token_is_rejected() -> None:
    token = request_token(extra_claims={"padding": "x" * MAX_TOKEN_LENGTH})
    assert_rejected("jwt_too_large", verify, token)
    assert_rejected("jwt_too_large", unverified_issuer, token)


def test_non_canonical_base64_signature_is_rejected() -> None:
    token = request_token()
    head, _, signature = token.rpartition(".")
    # A 32-byte signature is 43 base64 characters; the last one carries 2 unused bits.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(signature[-1]) ^ 1]
    mutated = f"{head}.{signature[:-1]}{twin}"
    assert base64.urlsafe_b64decode(twin_padded(signature)) == base64.urlsafe_b64decode(twin_padded(mutated))
    # Same bytes, different string: rejected here whatever the PyJWT version (before 2.10
    # PyJWT accepted it; the project allows PyJWT>=2.8).
    assert_rejected("jwt_malformed", verify, mutated)


def twin_padded(token_or_segment: str) -> str:
    segment = token_or_segment.rpartition(".")[2]
    return segment + "=" * (-len(segment) % 4)


def test_errors_never_contain_the_secret_or_the_token() -> None:
    token = request_token()
    failures: list[Callable[[], object]] = [
        lambda: verify(token, secret=OTHER_SECRET),
        lambda: verify(token, now=NOW + 10_000),
        lambda: verify(token, path="/elsewhere"),
        lambda: verify(token, QshMode.CONTEXT),
        lambda: verify(token[:-3]),
    ]
    for failure in failures:
        with pytest.raises(AuthError) as err:
            failure()
        text = f"{err.value} {err.value.message} {err.value.to_dict()}"
        for secret in (SECRET, OTHER_SECRET, token, token.split(".")[2]):
            assert secret not in text


def test_unverified_issuer() -> None:
    assert unverified_issuer(request_token(secret=OTHER_SECRET)) == ISSUER
    no_issuer = pyjwt.encode({"exp": NOW}, SECRET, algorithm="HS256")
    assert_rejected("jwt_missing_claim", unverified_issuer, no_issuer)


# ------------------------------------------------------------ hypothesis


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
VALID = request_token()


def _mutate(token: str, data: st.DataObject) -> str:
    segments = token.split(".")
    which = data.draw(st.integers(0, 2), label="segment")
    segment = segments[which]
    kind = data.draw(st.sampled_from(["replace", "insert", "delete"]), label="kind")
    if kind == "delete" or not segment:
        i = data.draw(st.integers(0, max(len(segment) - 1, 0)))
        segments[which] = segment[:i] + segment[i + 1 :]
    else:
        i = data.draw(st.integers(0, len(segment) - (1 if kind == "replace" else 0)))
        char = data.draw(st.sampled_from(ALPHABET + ".=+/ !%\n"))
        rest = segment[i + 1 :] if kind == "replace" else segment[i:]
        segments[which] = segment[:i] + char + rest
    mutated = ".".join(segments)
    return mutated


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_request_tokens_never_verify(data: st.DataObject) -> None:
    mutated = _mutate(VALID, data)
    if mutated == VALID:
        return
    with pytest.raises(AuthError):
        verify(mutated)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400) | st.from_regex(r"[A-Za-z0-9_-]{0,60}\.[A-Za-z0-9_-]{0,60}\.[A-Za-z0-9_-]{0,60}"))
def test_random_text_only_ever_raises_auth_error(text: str) -> None:
    with pytest.raises(AuthError):
        verify(text)
    try:
        unverified_issuer(text)
    except AuthError:
        pass


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_install_tokens_never_verify(data: st.DataObject, rsa_key: rsa.RSAPrivateKey) -> None:
    valid = install_token(rsa_key)
    mutated = _mutate(valid, data)
    if mutated == valid:
        return
    with pytest.raises(AuthError):
        verify_install(mutated, StaticKeys({"k1": rsa_key.public_key()}))


# --------------------------------------------------------- signed installs


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class StaticKeys:
    keys: dict[str, rsa.RSAPublicKey]
    asked: list[str] = field(default_factory=list)

    def get(self, kid: str) -> rsa.RSAPublicKey:
        self.asked.append(kid)
        try:
            return self.keys[kid]
        except KeyError:
            raise AuthError("no such key", code="install_key_unavailable") from None


def install_token(private_key: rsa.RSAPrivateKey, **kw: Any) -> str:
    method, path, query = INSTALL
    args: dict[str, Any] = {
        "private_key": private_key,
        "kid": "k1",
        "issuer": ISSUER,
        "audience": BASE_URL,
        "method": method,
        "path": path,
        "query": query,
        "now": NOW,
    }
    args.update(kw)
    return encode_install_token(**args)


def verify_install(token: str, keys: Any, **kw: Any) -> VerifiedToken:
    method, path, query = INSTALL
    args: dict[str, Any] = {
        "audience": BASE_URL,
        "method": method,
        "path": path,
        "query": query,
        "now": NOW + 5,
    }
    args.update(kw)
    return verify_install_token(token, key_fetcher=keys, **args)


# A tiny key server on loopback -------------------------------------------------


@dataclass
class KeyServer:
    url: str
    keys: dict[str, bytes] = field(default_factory=dict)
    delay: float = 0.0
    redirect_to: str | None = None
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def _loopback_key_server() -> Iterator[KeyServer]:
    state: KeyServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests.append(self.path)
            if state.delay:
                time.sleep(state.delay)
            if state.redirect_to is not None:
                self.send_response(302)
                self.send_header("Location", state.redirect_to)
                self.end_headers()
                return
            body = state.keys.get(self.path.lstrip("/"))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/x-pem-file")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = KeyServer(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def key_server(_loopback_key_server: KeyServer) -> KeyServer:
    state = _loopback_key_server
    with state.lock:
        state.keys.clear()
        state.requests.clear()
        state.delay = 0.0
        state.redirect_to = None
    return state


class LoopbackOnlySession(requests.Session):
    """Fails the test if the fetcher ever talks to anything but 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no proxies from the environment
        self.urls: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kw: Any) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        assert urlsplit(url).hostname == "127.0.0.1", url
        assert kw.get("timeout") is not None
        self.urls.append(url)
        return super().request(method, url, *args, **kw)


def fetcher(server: KeyServer, **kw: Any) -> InstallKeyFetcher:
    kw.setdefault("timeout", 2.0)
    return InstallKeyFetcher(server.url, session=LoopbackOnlySession(), **kw)


def test_signed_install_verifies_with_the_served_key(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    key_server.keys["k1"] = pem(rsa_key.public_key())
    keys = fetcher(key_server)
    verified = verify_install(install_token(rsa_key), keys)
    assert verified.issuer == ISSUER
    assert key_server.requests == ["/k1"]


@pytest.mark.parametrize("aud", [BASE_URL + "/", [BASE_URL], ["https://other.example", BASE_URL + "/"]])
def test_audience_may_be_a_list_and_trailing_slash_is_ignored(rsa_key: rsa.RSAPrivateKey, aud: Any) -> None:
    keys = StaticKeys({"k1": rsa_key.public_key()})
    verify_install(install_token(rsa_key, extra_claims={"aud": aud}), keys)
    verify_install(install_token(rsa_key, extra_claims={"aud": aud}), keys, audience=BASE_URL + "/")


@pytest.mark.parametrize("aud", ["https://evil.example", "https://app.example.com.evil", [], None, 42])
def test_wrong_audience_is_rejected(rsa_key: rsa.RSAPrivateKey, aud: Any) -> None:
    keys = StaticKeys({"k1": rsa_key.public_key()})
    token = install_token(rsa_key, extra_claims={"aud": aud})
    assert_rejected("jwt_bad_audience", verify_install, token, keys)


def test_hs256_install_token_is_rejected_without_fetching_a_key(rsa_key: rsa.RSAPrivateKey) -> None:
    keys = StaticKeys({"k1": rsa_key.public_key()})
    public_pem = pem(rsa_key.public_key())
    # The classic algorithm-confusion attack: HMAC "signed" with the public key as secret.
    token = _forge({"alg": "HS256", "typ": "JWT", "kid": "k1"}, _claims(aud=BASE_URL), public_pem)
    assert_rejected("jwt_bad_algorithm", verify_install, token, keys)
    shared = pyjwt.encode(_claims(aud=BASE_URL), SECRET, algorithm="HS256", headers={"kid": "k1"})
    assert_rejected("jwt_bad_algorithm", verify_install, shared, keys)
    assert keys.asked == []


def test_install_token_with_alg_none_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    token = _forge({"alg": "none", "kid": "k1"}, _claims(aud=BASE_URL, qsh=query_string_hash(*INSTALL)))
    assert_rejected("jwt_bad_algorithm", verify_install, token, StaticKeys({"k1": rsa_key.public_key()}))


def test_kid_serving_another_key_is_rejected(
    key_server: KeyServer, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    key_server.keys["k1"] = pem(other_rsa_key.public_key())
    assert_rejected("jwt_bad_signature", verify_install, install_token(rsa_key), fetcher(key_server))


def test_install_token_for_another_path_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    token = install_token(rsa_key, path="/lifecycle/uninstalled")
    assert_rejected("jwt_bad_qsh", verify_install, token, StaticKeys({"k1": rsa_key.public_key()}))


def test_install_context_token_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    token = install_token(rsa_key, extra_claims={"qsh": CONTEXT_QSH})
    assert_rejected("jwt_bad_qsh", verify_install, token, StaticKeys({"k1": rsa_key.public_key()}))


def test_expired_install_token_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    token = install_token(rsa_key)
    assert_rejected("jwt_expired", verify_install, token, StaticKeys({"k1": rsa_key.public_key()}), now=NOW + 500)


def test_install_token_without_kid_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    token = pyjwt.encode(_claims(aud=BASE_URL, qsh=query_string_hash(*INSTALL)), rsa_key, algorithm="RS256")
    assert_rejected("jwt_bad_kid", verify_install, token, StaticKeys({}))


@pytest.mark.parametrize(
    "kid",
    [
        "../k1",
        "a/b",
        "/k1",
        ".",
        "..",
        "",
        "k" * 201,
        "k1?x=1",
        "k1#f",
        "%2e%2e",
        "k1\n",
        "@evil.example",
        "k 1",
    ],
)
def test_unsafe_kid_is_rejected_without_a_request(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey, kid: str) -> None:
    keys = fetcher(key_server)
    assert_rejected("jwt_bad_kid", keys.get, kid)
    assert_rejected("jwt_bad_kid", verify_install, install_token(rsa_key, kid=kid), keys)
    assert key_server.requests == []


# ------------------------------------------------------ InstallKeyFetcher


def test_fetcher_caches_per_kid(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    key_server.keys["k1"] = pem(rsa_key.public_key())
    keys = fetcher(key_server)
    first = keys.get("k1")
    second = keys.get("k1")
    assert first.public_numbers() == rsa_key.public_key().public_numbers()
    assert second is first
    assert key_server.requests == ["/k1"]


def test_fetcher_refetches_after_ttl(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    key_server.keys["k1"] = pem(rsa_key.public_key())
    clock = [1000.0]
    keys = fetcher(key_server, ttl_seconds=60, clock=lambda: clock[0])
    keys.get("k1")
    clock[0] += 59
    keys.get("k1")
    assert len(key_server.requests) == 1
    clock[0] += 2
    keys.get("k1")
    assert len(key_server.requests) == 2


def test_fetcher_cache_is_bounded(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    for kid in ("a", "b", "c"):
        key_server.keys[kid] = pem(rsa_key.public_key())
    keys = fetcher(key_server, max_entries=2)
    for kid in ("a", "b", "c", "c", "a"):
        keys.get(kid)
    assert key_server.requests == ["/a", "/b", "/c", "/a"]


def test_fetcher_404_is_auth_error_and_not_cached(key_server: KeyServer) -> None:
    keys = fetcher(key_server)
    assert_rejected("install_key_unavailable", keys.get, "missing")
    assert_rejected("install_key_unavailable", keys.get, "missing")
    assert key_server.requests == ["/missing", "/missing"]


def test_fetcher_honours_its_timeout(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    key_server.keys["slow"] = pem(rsa_key.public_key())
    key_server.delay = 3.0
    keys = fetcher(key_server, timeout=0.3)
    started = time.monotonic()
    assert_rejected("install_key_unavailable", keys.get, "slow")
    assert time.monotonic() - started < 2.0


def test_fetcher_unreachable_server_is_auth_error() -> None:
    import socket

    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    keys = InstallKeyFetcher(f"http://127.0.0.1:{port}", timeout=1.0, session=LoopbackOnlySession())
    assert_rejected("install_key_unavailable", keys.get, "k1")


def test_fetcher_does_not_follow_redirects(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    key_server.keys["k2"] = pem(rsa_key.public_key())
    key_server.redirect_to = f"{key_server.url}/k2"
    assert_rejected("install_key_unavailable", fetcher(key_server).get, "k1")
    assert key_server.requests == ["/k1"]


@pytest.mark.parametrize("body", ["garbage", "ec", "rsa1024", "huge"])
def test_fetcher_refuses_what_is_not_a_strong_rsa_public_key(key_server: KeyServer, body: str) -> None:
    served: dict[str, Callable[[], bytes]] = {
        "garbage": lambda: b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
        "ec": lambda: pem(ec.generate_private_key(ec.SECP256R1()).public_key()),
        "rsa1024": lambda: pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()),
        "huge": lambda: b"A" * (64 * 1024),
    }
    key_server.keys["k1"] = served[body]()
    assert_rejected("install_key_unavailable", fetcher(key_server).get, "k1")


def test_fetcher_is_thread_safe(key_server: KeyServer, rsa_key: rsa.RSAPrivateKey) -> None:
    key_server.keys["k1"] = pem(rsa_key.public_key())
    key_server.delay = 0.05
    keys = fetcher(key_server)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(keys.get("k1").public_numbers())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [rsa_key.public_key().public_numbers()] * 8
    before = len(key_server.requests)
    keys.get("k1")
    assert len(key_server.requests) == before  # cached from now on


# ------------------------------------------------------------ outgoing


def test_app_token_binds_the_request_relative_to_the_tenant() -> None:
    token = encode_app_token(
        app_key="git-connect-for-jira",
        secret=SECRET,
        method="post",
        url="https://acme.jira.com/jira/rest/api/3/permissions/check?x=a+b",
        tenant_base_url="https://acme.jira.com/jira/",
        now=NOW,
    )
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == "git-connect-for-jira"
    assert claims["exp"] - claims["iat"] == 180
    assert claims["qsh"] == query_string_hash("POST", "/rest/api/3/permissions/check", {"x": ["a b"]})
    assert pyjwt.get_unverified_header(token)["alg"] == "HS256"


def test_app_token_for_a_relative_url() -> None:
    token = encode_app_token(
        app_key="app",
        secret=SECRET,
        method="GET",
        url="/rest/api/3/myself",
        tenant_base_url="https://a.atlassian.net",
    )
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["qsh"] == query_string_hash("GET", "/rest/api/3/myself", "")


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/rest/api/3/myself",
        "http://acme.jira.com/jira/x",
        "https://acme.jira.com/other/x",
    ],
)
def test_app_token_refuses_urls_outside_the_tenant(url: str) -> None:
    with pytest.raises(ValueError):
        encode_app_token(
            app_key="app", secret=SECRET, method="GET", url=url, tenant_base_url="https://acme.jira.com/jira"
        )
