"""What may reach ``git`` at all: ref names, clone URLs and the addresses git connects to.

User text never becomes a git option: :func:`validate_ref_name` and
:func:`validate_clone_url` refuse anything git could read as an option, a remote
helper (``ext::``) or a local path, and :func:`resolve_target` resolves the host
once, refuses forbidden addresses (SSRF guard) and pins git to the addresses it
checked, so a DNS answer that changes between the check and the connect
(rebinding) cannot send git elsewhere.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from connect_app.errors import HostUnavailable, UnsafeInput, ValidationError
from connect_app.hosts.netguard import DEFAULT_PORTS, check_url, forbidden_reason

NETWORK_SCHEMES = ("https", "http", "ssh")
SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_HELPER_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCP_URL = re.compile(r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/:\s\[\]]+):(?P<path>.+)$")


@dataclass(frozen=True)
class Target:
    """A validated remote: the URL plus what pins git to the addresses we checked."""

    url: str
    scheme: str
    config: tuple[str, ...] = ()  # ``-c`` items (http: curl's resolve list)
    ssh_options: tuple[str, ...] = ()  # ``-o`` items (ssh: HostName / HostKeyAlias)


def validate_ref_name(name: str) -> str:
    """Refuse what ``git check-ref-format`` refuses (one-level names allowed), and a leading ``-``."""
    reason = _ref_name_problem(name)
    if reason:
        raise ValidationError(f"invalid git ref name {name!r}: {reason}")
    return name


def _ref_name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if len(name.encode()) > 1024:
        return "it is longer than 1024 bytes"
    if name.startswith("-"):
        return "it must not start with '-'"
    if name == "@":
        return "it must not be '@' alone"
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == " " for c in name):
        return "it must not contain spaces or control characters"
    bad = sorted({c for c in name if c in "~^:?*[\\"})
    if bad:
        return f"it must not contain {' '.join(bad)}"
    for seq, why in (("..", "'..'"), ("@{", "'@{'"), ("//", "'//'")):
        if seq in name:
            return f"it must not contain {why}"
    if name.startswith("/") or name.endswith("/"):
        return "it must not start or end with '/'"
    if name.endswith("."):
        return "it must not end with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return "no part of it may start with '.'"
        if part.endswith(".lock"):
            return "no part of it may end with '.lock'"
    return None


def validate_clone_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """Return ``url`` if git may fetch from it: https/http/ssh URLs or scp-like
    ``user@host:path`` whose host passes the SSRF guard; never options, remote
    helpers (``ext::``), ``file://`` or local paths. Raises ``UnsafeInput``."""
    network_form(url, allow_private=allow_private, resolve=resolve)
    return url


def network_form(url: str, *, allow_private: bool, resolve: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of a validated clone URL."""
    if not isinstance(url, str) or not url:
        raise UnsafeInput("a clone URL is required")
    if url.startswith("-"):
        raise UnsafeInput("the clone URL must not start with '-' (git would read it as an option)")
    if _HELPER_URL.match(url):
        raise UnsafeInput("git remote-helper URLs such as 'ext::' are not allowed; use https://, http:// or ssh://")
    candidate = url
    if "://" not in url:
        m = _SCP_URL.match(url)
        if not m or url.startswith(("/", ".", "~")):
            raise UnsafeInput("local paths are not allowed; use an https://, http:// or ssh:// URL")
        if m["path"].startswith("-") or (m["user"] or "").startswith("-"):
            raise UnsafeInput("the clone URL must not contain parts starting with '-'")
        user = f"{m['user']}@" if m["user"] else ""
        candidate = f"ssh://{user}{m['host']}/{m['path'].lstrip('/')}"
    parts = check_url(candidate, allow_private=allow_private, schemes=NETWORK_SCHEMES, resolve=resolve)
    if parts.path.lstrip("/").startswith("-"):
        raise UnsafeInput("the repository path must not start with '-'")
    if (parts.username or "").startswith("-"):
        raise UnsafeInput("the user name in the clone URL must not start with '-'")
    return parts.scheme.lower(), parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme.lower()]


def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Resolve once and refuse any forbidden address; git then connects to these only."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise HostUnavailable(f"the host name {host!r} could not be resolved") from e
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = forbidden_reason(address, allow_private=allow_private)
        if reason:
            raise UnsafeInput(f"refusing to connect to {host} (resolves to {address}): the address {reason}")
    if not addresses:
        raise HostUnavailable(f"the host name {host!r} has no addresses")
    return addresses


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Validate ``url``, resolve its host once and pin git to the checked addresses."""
    scheme, host, port = network_form(url, allow_private=allow_private, resolve=False)
    try:
        literal = bool(socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host))
    except OSError:
        literal = False
    if literal:
        return Target(url, scheme)  # check_url already judged the literal address
    addresses = checked_addresses(host, port, allow_private=allow_private)
    if scheme == "ssh":
        return Target(url, scheme, ssh_options=(f"HostName={addresses[0]}", f"HostKeyAlias={host}"))
    pinned = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
    return Target(url, scheme, config=(f"http.curloptResolve={host}:{port}:{pinned}",))


def refuse_option(value: str, what: str) -> str:
    if value.startswith("-"):
        raise UnsafeInput(f"{what} must not start with '-'")
    return value
