from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from connect_app.errors import HostUnavailable, UnsafeInput
from connect_app.hosts.netguard import check_url, guarded_session, is_forbidden_ip
from tests.support.stub_host import Reply, Seen, StubHost, fake_resolver, loopback_only

PUBLIC_IP = "140.82.112.3"  # never connected to: every test that resolves to it stops before connecting


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture
def stub() -> Iterator[StubHost]:
    host = StubHost(lambda seen: Reply(200, {"host": seen.headers.get("host")}))
    yield host
    host.close()


# --- check_url: spelling -------------------------------------------------------

REFUSED_ALWAYS = [
    ("file:///etc/passwd", "only https://, http:// URLs"),
    ("ext::sh -c touch% /tmp/pwned", "got 'ext'"),
    ("git://github.com/acme/widgets.git", "got 'git'"),
    ("ssh://git@github.com/acme/widgets.git", "got 'ssh'"),
    ("gopher://example.com/", "got 'gopher'"),
    ("https:github.com/acme", "must look like https://host/path"),
    ("//github.com/acme", "no scheme"),
    ("github.com/acme", "no scheme"),
    ("https://user:secret@github.com/acme", "must not contain a user name or password"),
    ("https://token@github.com/acme", "must not contain a user name or password"),
    ("https:///acme", "no host name"),
    ("https://:443/acme", "no host name"),
    ("https://-oProxyCommand=calc/acme", "must not start with '-'"),
    ("https://github.com /acme", "spaces, control characters"),
    ("https://github.com/a\tb", "spaces, control characters"),
    ("https://github.com/a\nHost: evil", "spaces, control characters"),
    ("https://github.com\x00.evil.com/", "spaces, control characters"),
    ("https://github.com\\@evil.com/", "backslashes"),
    ("https://exa%6dple.com/", "characters not allowed"),
    ("https://a..b.com/", "not a valid domain name"),
    ("https://github.com:99999/", "could not be parsed"),
    ("https://[::1/", "could not be parsed"),
    # metadata and link-local, in every spelling
    ("http://169.254.169.254/latest/meta-data/", "never allowed"),
    ("http://169.254.0.1/", "never allowed"),
    ("http://100.100.100.200/", "never allowed"),
    ("http://[fe80::1]/", "never allowed"),
    ("http://[fe80::1%25eth0]/", "never allowed"),
    ("http://[fd00:ec2::254]/", "never allowed"),
    ("http://[::ffff:169.254.169.254]/", "never allowed"),
    ("http://[::ffff:a9fe:a9fe]/", "never allowed"),
    ("http://[64:ff9b::169.254.169.254]/", "never allowed"),
    ("http://[::169.254.169.254]/", "never allowed"),
    ("http://2852039166/", "non-standard"),  # 169.254.169.254 as one decimal number
    ("http://0xa9fea9fe/", "non-standard"),
    ("http://0251.0376.0251.0376/", "non-standard"),
    ("http://0x7f.1/", "non-standard"),
    ("http://127.1/", "non-standard"),
    ("http://017700000001/", "non-standard"),
    ("http://0x7f.0.0.1/", "non-standard"),
]


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(("url", "says"), REFUSED_ALWAYS)
def test_refused_whatever_allow_private_says(url: str, says: str, allow_private: bool) -> None:
    with pytest.raises(UnsafeInput) as exc:
        check_url(url, allow_private=allow_private)
    assert says in str(exc.value)


PRIVATE_URLS = [
    "http://127.0.0.1:8080/",
    "http://127.8.9.10/",
    "http://[::1]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.251/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_addresses_refused_unless_allowed(url: str) -> None:
    with pytest.raises(UnsafeInput, match="ALLOW_PRIVATE_HOSTS"):
        check_url(url, allow_private=False)
    assert check_url(url, allow_private=True).hostname


def test_ssh_allows_a_user_name_but_never_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_resolver(monkeypatch, {"github.com": [PUBLIC_IP]})
    schemes = ("https", "ssh")
    assert check_url("ssh://git@github.com/acme/w.git", allow_private=False, schemes=schemes).username == "git"
    with pytest.raises(UnsafeInput, match="password"):
        check_url("ssh://git:pw@github.com/acme/w.git", allow_private=False, schemes=schemes)
    with pytest.raises(UnsafeInput, match="password"):
        check_url("https://git@github.com/acme/w.git", allow_private=False, schemes=schemes)


# --- check_url: resolution -----------------------------------------------------


def test_public_host_allowed_and_every_address_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = fake_resolver(monkeypatch, {"git.example.com": [PUBLIC_IP, "2606:50c0:8000::154"]})
    parts = check_url("https://git.example.com/acme/widgets.git", allow_private=False)
    assert (parts.hostname, parts.path) == ("git.example.com", "/acme/widgets.git")
    assert lookups == ["git.example.com"]


@pytest.mark.parametrize("bad", ["10.0.0.7", "127.0.0.1", "::1", "169.254.169.254", "fe80::1"])
def test_one_forbidden_address_among_public_ones_refuses(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    fake_resolver(monkeypatch, {"git.example.com": [PUBLIC_IP, bad]})
    with pytest.raises(UnsafeInput) as exc:
        check_url("https://git.example.com/", allow_private=False)
    assert f"resolves to {bad}" in str(exc.value)


def test_allow_private_admits_loopback_but_never_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_resolver(
        monkeypatch,
        {"git.internal": ["127.0.0.1"], "metadata.google.internal": ["169.254.169.254"]},
    )
    assert check_url("http://127.0.0.1:7990/", allow_private=True).port == 7990
    assert check_url("http://git.internal/", allow_private=True).hostname == "git.internal"
    for url in ("http://169.254.169.254/", "http://metadata.google.internal/computeMetadata/v1/"):
        with pytest.raises(UnsafeInput, match="never allowed"):
            check_url(url, allow_private=True)


def test_unresolvable_name_is_unavailable_not_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_resolver(monkeypatch, lambda name: [] if name == "nowhere.example" else None)
    with pytest.raises(HostUnavailable, match=r"nowhere\.example"):
        check_url("https://nowhere.example/", allow_private=False)


def test_resolve_false_checks_only_the_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = fake_resolver(monkeypatch, {"git.example.com": ["127.0.0.1"]})
    assert check_url("https://git.example.com/", allow_private=False, resolve=False)
    assert lookups == []


@pytest.mark.parametrize(
    ("ip", "private_ok", "never"),
    [
        ("8.8.8.8", True, False),
        ("2606:4700::1111", True, False),
        ("::ffff:8.8.8.8", True, False),
        ("64:ff9b::808:808", True, False),  # NAT64 of a public address
        ("64:ff9b::7f00:1", False, False),  # NAT64 of loopback
        ("127.0.0.1", False, False),
        ("10.0.0.1", False, False),
        ("100.64.0.1", False, False),
        ("192.0.2.1", False, False),  # documentation range
        ("169.254.169.254", False, True),
        ("::ffff:169.254.169.254", False, True),
        ("fe80::abcd", False, True),
        ("fd00:ec2::254", False, True),
        ("100.100.100.200", False, True),
        ("2002:a9fe:a9fe::1", False, True),  # 6to4 wrapping the metadata address
        ("not-an-ip", False, True),
    ],
)
def test_is_forbidden_ip(ip: str, private_ok: bool, never: bool) -> None:
    assert is_forbidden_ip(ip, allow_private=False) is (not private_ok)
    assert is_forbidden_ip(ip, allow_private=True) is never
    if ip != "not-an-ip":
        assert is_forbidden_ip(ipaddress.ip_address(ip), allow_private=True) is never


# --- guarded_session: the address actually connected to ---------------------------


def test_session_refuses_loopback_at_connect_time_without_allow_private(stub: StubHost) -> None:
    with pytest.raises(UnsafeInput, match="ALLOW_PRIVATE_HOSTS"):
        guarded_session(allow_private=False).get(stub.url + "/", timeout=5)
    assert stub.seen == []


def test_session_keeps_the_host_name_and_connects_to_the_checked_address(
    stub: StubHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = fake_resolver(monkeypatch, {"git.internal.test": ["127.0.0.1"]})
    resp = guarded_session(allow_private=True).get(stub.url_for("git.internal.test") + "/x", timeout=5)
    assert resp.json() == {"host": f"git.internal.test:{stub.port}"}
    assert lookups == ["git.internal.test"]  # resolved once, by the guard, for this connection


def test_dns_rebinding_between_check_and_connect_is_refused(stub: StubHost, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([[PUBLIC_IP], ["127.0.0.1"]])
    fake_resolver(monkeypatch, lambda name: next(answers) if name == "rebind.example" else None)
    url = stub.url_for("rebind.example") + "/"
    assert check_url(url, allow_private=False).hostname == "rebind.example"  # public at check time
    with pytest.raises(UnsafeInput, match=r"rebind\.example \(resolves to 127\.0\.0\.1\)"):
        guarded_session(allow_private=False).get(url, timeout=5)
    assert stub.seen == []


def test_automatic_redirect_to_metadata_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    target = "http://169.254.169.254/latest/meta-data/iam/"
    host = StubHost(lambda seen: Reply(302, headers={"Location": target}))
    try:
        with pytest.raises(UnsafeInput, match="never allowed"):
            guarded_session(allow_private=True).get(host.url + "/start", timeout=5)
        assert [s.path for s in host.seen] == ["/start"]
    finally:
        host.close()


def test_session_ignores_environment_proxies(stub: StubHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://169.254.169.254:3128")
    monkeypatch.setenv("http_proxy", "http://169.254.169.254:3128")
    session = guarded_session(allow_private=True)
    assert session.get(stub.url + "/", timeout=5).status_code == 200
    with pytest.raises(UnsafeInput, match="proxies"):
        session.get(stub.url + "/", timeout=5, proxies={"http": "http://127.0.0.1:1"})


# --- TLS: certificate and SNI still checked against the host name ------------------


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_sni_and_certificate_verified_for_the_host_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path, "git.internal.test")
    server_names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def remember_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        server_names.append(name)

    context.sni_callback = remember_sni

    def answer(seen: Seen) -> Reply:
        return Reply(200, {"ok": True})

    host = StubHost(answer, tls=context)
    fake_resolver(monkeypatch, {"git.internal.test": ["127.0.0.1"], "other.internal.test": ["127.0.0.1"]})
    try:
        session = guarded_session(allow_private=True)
        resp = session.get(host.url_for("git.internal.test") + "/", timeout=5, verify=str(cert))
        assert resp.json() == {"ok": True}
        assert server_names == ["git.internal.test"]
        with pytest.raises(requests.exceptions.SSLError):
            session.get(host.url_for("other.internal.test") + "/", timeout=5, verify=str(cert))
    finally:
        host.close()
