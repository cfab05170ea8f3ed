"""JWT / qsh fuzzing through the whole app: random strings and mutated tokens never authenticate.

Four targets, each with a control (the unmutated token authenticates, so every refusal below
is the mutation's doing): an API route (``GET /api/me``, context qsh), an admin API route
(``GET /api/integrations``), an iframe page (``GET /user/settings``, request qsh) and the
lifecycle hooks (``POST /lifecycle/enabled``, HS256 with the shared secret;
``POST /lifecycle/installed``, RS256 signed-install). Each token travels in the
``Authorization`` header or the ``jwt`` query parameter. Every answer is 401 or 403 -- never
a 2xx, never a 5xx. Hypothesis runs derandomized with a bounded number of examples.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from connect_app.jira.jwt import CONTEXT_QSH, query_string_hash
from tests.support.connect import Jira, JiraSite
from tests.support.jira_stub import JiraStub

ADMIN = "acct-admin"
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REFUSED = (401, 403)
_ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(header: dict[str, Any], claims: dict[str, Any], key: bytes | rsa.RSAPrivateKey | None) -> str:
    """A compact JWS built by hand: any header, any claims, HMAC of the header's alg (or RS256
    with an RSA key, or no signature), so headers PyJWT would refuse to write can be sent."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}".encode()
    alg = str(header.get("alg", ""))
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif key is None or alg.lower() == "none":
        signature = b""
    else:
        digest = {"HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg, hashlib.sha256)
        signature = hmac.new(key, signing_input, digest).digest()
    return f"{signing_input.decode()}.{b64(signature)}"


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    path: str
    context: bool  # the route wants qsh "context-qsh"
    ok: int  # what the control answers
    body: dict[str, Any] | None = None


def claims_for(site: JiraSite, target: Target, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    qsh = CONTEXT_QSH if target.context else query_string_hash(target.method, target.path, "")
    claims: dict[str, Any] = {"iss": site.client_key, "iat": now, "exp": now + 180, "qsh": qsh, "sub": ADMIN}
    claims.update(extra)
    return claims


def call(client: Any, target: Target, token: str, in_query: bool) -> TestResponse:
    headers = {} if in_query else {"Authorization": f"JWT {token}"}
    query = {"jwt": token} if in_query else None
    return client.open(target.path, method=target.method, query_string=query, json=target.body, headers=headers)


def refused(response: TestResponse, what: str) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code in REFUSED, f"{what}: HTTP {response.status_code}: {text[:300]}"
    assert "Traceback" not in text


# --- mutations of a valid HS256 token ---------------------------------------------------------

Mutation = Callable[[dict[str, Any], dict[str, Any], bytes, "Ctx"], str]


@dataclass
class Ctx:
    site: JiraSite
    other: JiraSite
    target: Target
    flip: int  # a position for the bit flip


def flip_signature(token: str, flip: int) -> str:
    head, _, signature = token.rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[flip % len(raw)] ^= 1 << (flip % 8)
    return f"{head}.{b64(bytes(raw))}"


def _flip_signature(h: dict[str, Any], c: dict[str, Any], k: bytes, ctx: Ctx) -> str:
    return flip_signature(sign(h, c, k), ctx.flip)


def _flip_payload(h: dict[str, Any], c: dict[str, Any], k: bytes, ctx: Ctx) -> str:
    token = sign(h, c, k)
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[ctx.flip % len(raw)] ^= 1 << (ctx.flip % 7)
    return f"{head}.{b64(bytes(raw))}.{signature}"


def _swap_payload_of_other_tenant(h: dict[str, Any], c: dict[str, Any], k: bytes, ctx: Ctx) -> str:
    # B's genuine token, with A's claims pasted in: the signature no longer covers them.
    mine = sign(h, c, k)
    theirs = sign(h, {**c, "iss": ctx.other.client_key}, ctx.other.shared_secret.encode())
    return ".".join([theirs.split(".")[0], mine.split(".")[1], theirs.split(".")[2]])


def _other_request_qsh(h: dict[str, Any], c: dict[str, Any], k: bytes, ctx: Ctx) -> str:
    return sign(h, {**c, "qsh": query_string_hash(ctx.target.method, "/admin/repositories", "")}, k)


def _flipped_qsh_mode(h: dict[str, Any], c: dict[str, Any], k: bytes, ctx: Ctx) -> str:
    # a context token on a page, a page (request) token on the API
    if ctx.target.context:
        return sign(h, {**c, "qsh": query_string_hash(ctx.target.method, ctx.target.path, "")}, k)
    return sign(h, {**c, "qsh": CONTEXT_QSH}, k)


MUTATIONS: dict[str, Mutation] = {
    "alg none": lambda h, c, k, ctx: sign({**h, "alg": "none"}, c, None),
    "alg None": lambda h, c, k, ctx: sign({**h, "alg": "None"}, c, None),
    "alg HS512": lambda h, c, k, ctx: sign({**h, "alg": "HS512"}, c, k),
    "alg HS384": lambda h, c, k, ctx: sign({**h, "alg": "HS384"}, c, k),
    "alg hs256": lambda h, c, k, ctx: sign({**h, "alg": "hs256"}, c, k),
    "alg missing": lambda h, c, k, ctx: sign({"typ": "JWT"}, c, k),
    "alg RS256 attacker key": lambda h, c, k, ctx: sign({**h, "alg": "RS256", "kid": "x"}, c, _ATTACKER_KEY),
    "RS256 kid injection": lambda h, c, k, ctx: sign({"alg": "RS256", "kid": "../../etc/passwd"}, c, _ATTACKER_KEY),
    "empty hmac key": lambda h, c, k, ctx: sign(h, c, b""),
    "wrong secret": lambda h, c, k, ctx: sign(h, c, b"not-the-shared-secret-of-anyone-at-all"),
    "other tenant's secret": lambda h, c, k, ctx: sign(h, c, ctx.other.shared_secret.encode()),
    "iss other tenant": lambda h, c, k, ctx: sign(h, {**c, "iss": ctx.other.client_key}, k),
    "iss unknown": lambda h, c, k, ctx: sign(h, {**c, "iss": "client-nobody"}, k),
    "iss missing": lambda h, c, k, ctx: sign(h, {x: v for x, v in c.items() if x != "iss"}, k),
    "iss not a string": lambda h, c, k, ctx: sign(h, {**c, "iss": [c["iss"]]}, k),
    "exp missing": lambda h, c, k, ctx: sign(h, {x: v for x, v in c.items() if x != "exp"}, k),
    "expired": lambda h, c, k, ctx: sign(h, {**c, "iat": c["iat"] - 7200, "exp": c["iat"] - 3600}, k),
    "exp string": lambda h, c, k, ctx: sign(h, {**c, "exp": str(c["exp"])}, k),
    "exp bool": lambda h, c, k, ctx: sign(h, {**c, "exp": True}, k),
    "iat in the future": lambda h, c, k, ctx: sign(h, {**c, "iat": c["iat"] + 3600, "exp": c["iat"] + 7200}, k),
    "nbf in the future": lambda h, c, k, ctx: sign(h, {**c, "nbf": c["iat"] + 3600, "exp": c["iat"] + 7200}, k),
    "iat after exp": lambda h, c, k, ctx: sign(h, {**c, "iat": c["exp"] + 1}, k),
    "qsh missing": lambda h, c, k, ctx: sign(h, {x: v for x, v in c.items() if x != "qsh"}, k),
    "qsh random": lambda h, c, k, ctx: sign(h, {**c, "qsh": hashlib.sha256(b"x").hexdigest()}, k),
    "qsh of another request": _other_request_qsh,
    "qsh kind swapped": _flipped_qsh_mode,
    "qsh not a string": lambda h, c, k, ctx: sign(h, {**c, "qsh": 1}, k),
    "signature bit flip": _flip_signature,
    "payload bit flip": _flip_payload,
    "other tenant's signature": _swap_payload_of_other_tenant,
    "signature stripped": lambda h, c, k, ctx: sign(h, c, k).rpartition(".")[0] + ".",
    "two segments": lambda h, c, k, ctx: sign(h, c, k).rpartition(".")[0],
    "padding added": lambda h, c, k, ctx: sign(h, c, k) + "==",
    "extra segment": lambda h, c, k, ctx: sign(h, c, k) + ".e30",
}


@dataclass
class Env:
    app: Flask
    jira: Jira
    site: JiraSite
    other: JiraSite


@pytest.fixture
def env(app: Flask, jira: Jira, installed_site: JiraSite, other_site: JiraSite, jira_stub: JiraStub) -> Env:
    jira_stub.admins.add(ADMIN)
    return Env(app, jira, installed_site, other_site)


def hs256_targets(site: JiraSite) -> list[Target]:
    return [
        Target("api", "GET", "/api/me", True, 200),
        Target("admin api", "GET", "/api/integrations", True, 200),
        Target("page", "GET", "/user/settings", False, 200),
        Target("lifecycle", "POST", "/lifecycle/enabled", False, 204, {"clientKey": site.client_key}),
    ]


def test_the_unmutated_tokens_authenticate(env: Env) -> None:
    """The control for every fuzz test below."""
    header = {"alg": "HS256", "typ": "JWT"}
    for target in hs256_targets(env.site):
        for in_query in (False, True):
            token = sign(header, claims_for(env.site, target), env.site.shared_secret.encode())
            response = call(env.jira.client, target, token, in_query)
            assert response.status_code == target.ok, (target, in_query, response.get_data(as_text=True))
    install = env.jira.install(env.site)
    assert install.status_code == 204, install.get_data(as_text=True)


@FUZZ
@given(
    mutation=st.sampled_from(sorted(MUTATIONS)),
    target_index=st.integers(0, 3),
    in_query=st.booleans(),
    flip=st.integers(0, 10_000),
)
def test_mutated_tokens_never_authenticate(
    env: Env, mutation: str, target_index: int, in_query: bool, flip: int
) -> None:
    target = hs256_targets(env.site)[target_index]
    header = {"alg": "HS256", "typ": "JWT"}
    ctx = Ctx(env.site, env.other, target, flip)
    token = MUTATIONS[mutation](header, claims_for(env.site, target), env.site.shared_secret.encode(), ctx)
    refused(call(env.jira.client, target, token, in_query), f"{mutation} on {target.name}")


def test_every_mutation_is_refused_on_every_target(env: Env) -> None:
    """Each mutation at least once everywhere (Hypothesis samples; this enumerates)."""
    header = {"alg": "HS256", "typ": "JWT"}
    for target in hs256_targets(env.site):
        for name, mutate in MUTATIONS.items():
            token = mutate(
                header,
                claims_for(env.site, target),
                env.site.shared_secret.encode(),
                Ctx(env.site, env.other, target, 5),
            )
            for in_query in (False, True):
                refused(call(env.jira.client, target, token, in_query), f"{name} on {target.name}")


_CLAIM_VALUE = st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.booleans(), st.none())
_SEGMENT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60)


@FUZZ
@given(
    token=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=120).map(lambda b: base64.urlsafe_b64encode(b).decode()),
        st.tuples(_SEGMENT, _SEGMENT, _SEGMENT).map(".".join),
        st.tuples(_SEGMENT, _SEGMENT).map(lambda p: "eyJhbGciOiJIUzI1NiJ9." + ".".join(p)),
        st.dictionaries(st.sampled_from(["iss", "exp", "qsh", "sub", "iat", "nbf"]), _CLAIM_VALUE).map(
            lambda c: sign({"alg": "HS256"}, c, b"guess")
        ),
    ),
    target_index=st.integers(0, 3),
    in_query=st.booleans(),
)
def test_random_tokens_never_authenticate(env: Env, token: str, target_index: int, in_query: bool) -> None:
    target = hs256_targets(env.site)[target_index]
    if not in_query and any(ch in token for ch in "\r\n\x00"):
        token = token.replace("\r", "").replace("\n", "").replace("\x00", "")  # not a legal header value
    refused(call(env.jira.client, target, token, in_query), f"random token on {target.name}")


# --- the signed install (RS256) ------------------------------------------------------------


@FUZZ
@given(
    mutation=st.sampled_from(
        [
            "hs256 with the public key",
            "attacker key",
            "alg none",
            "unknown kid",
            "bad kid",
            "aud other",
            "aud missing",
            "iss other tenant",
            "expired",
            "qsh other path",
            "signature bit flip",
        ]
    ),
    in_query=st.booleans(),
    flip=st.integers(0, 10_000),
)
def test_forged_signed_installs_are_refused(env: Env, mutation: str, in_query: bool, flip: int) -> None:
    path = "/lifecycle/installed"
    jira = env.jira
    now = int(time.time())
    claims = {
        "iss": env.site.client_key,
        "aud": jira.app_base_url,
        "iat": now,
        "exp": now + 180,
        "qsh": query_string_hash("POST", path, ""),
    }
    header = {"alg": "RS256", "typ": "JWT", "kid": jira.kid}
    public_pem = jira.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if mutation == "hs256 with the public key":  # the classic algorithm confusion
        token = sign({**header, "alg": "HS256"}, claims, public_pem)
    elif mutation == "attacker key":
        token = sign(header, claims, _ATTACKER_KEY)
    elif mutation == "alg none":
        token = sign({**header, "alg": "none"}, claims, None)
    elif mutation == "unknown kid":
        token = sign({**header, "kid": "kid-unknown-0"}, claims, jira.private_key)
    elif mutation == "bad kid":
        token = sign({**header, "kid": "../" + jira.kid}, claims, jira.private_key)
    elif mutation == "aud other":
        token = sign(header, {**claims, "aud": "https://evil.example"}, jira.private_key)
    elif mutation == "aud missing":
        token = sign(header, {k: v for k, v in claims.items() if k != "aud"}, jira.private_key)
    elif mutation == "iss other tenant":  # the body still names the site being installed
        token = sign(header, {**claims, "iss": env.other.client_key}, jira.private_key)
    elif mutation == "expired":
        token = sign(header, {**claims, "iat": now - 7200, "exp": now - 3600}, jira.private_key)
    elif mutation == "qsh other path":
        token = sign(
            header, {**claims, "qsh": query_string_hash("POST", "/lifecycle/uninstalled", "")}, jira.private_key
        )
    else:
        token = flip_signature(sign(header, claims, jira.private_key), flip)
    body = env.site.install_body(jira.app_key, sharedSecret="taken-over-secret-0123456789")
    headers = {} if in_query else {"Authorization": f"JWT {token}"}
    response = jira.client.post(path, json=body, headers=headers, query_string={"jwt": token} if in_query else None)
    refused(response, f"install: {mutation}")
    # the site still answers to its own secret, not the one in the forged body
    assert jira.api(env.site, "GET", "/api/me").status_code == 200
