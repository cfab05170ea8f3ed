"""SSRF guard for every URL a user gives us (host base URLs, clone URLs).

Two layers:

* :func:`check_url` refuses a URL up front (wrong scheme, credentials in the
  URL, odd spellings, a host name that resolves to a forbidden address), so an
  admin gets a clear message when saving a form.
* :func:`guarded_session` re-checks at connect time, on the address the socket
  is actually opened to. A name that resolved to a public address during
  :func:`check_url` and to ``127.0.0.1`` a second later (DNS rebinding) is
  refused there, and so is every redirect hop, because each hop opens its own
  connection through the same guarded pool.

Loopback and private networks are allowed only with ``allow_private``
(``ALLOW_PRIVATE_HOSTS``: self-hosted servers, tests); link-local and cloud
metadata addresses never are.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
import urllib.parse
from collections.abc import Collection, Iterable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.poolmanager import PoolManager
from urllib3.util.connection import allowed_gai_family

from connect_app.errors import HostUnavailable, UnsafeInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}

# Never reachable, whatever ALLOW_PRIVATE_HOSTS says: link-local and the cloud
# metadata endpoints (AWS/GCP/Azure 169.254.169.254, AWS IPv6 fd00:ec2::254,
# Alibaba 100.100.100.200, Oracle 192.0.0.192).
_ALWAYS_FORBIDDEN = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "100.100.100.200/32", "192.0.0.192/32", "fe80::/10", "fd00:ec2::254/128")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: site-specific, treated as private
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

_HOST_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_.])?$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


def _embedded_ipv4(addr: IPAddress) -> tuple[list[ipaddress.IPv4Address], bool]:
    """IPv4 addresses an IPv6 address carries, and whether it is a pure translation
    (mapped, NAT64, IPv4-compatible) that should be judged by the IPv4 part alone."""
    if isinstance(addr, ipaddress.IPv4Address):
        return [], False
    if addr.ipv4_mapped is not None:
        return [addr.ipv4_mapped], True
    low32 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _NAT64:
        return [low32], True
    if addr in _IPV4_COMPATIBLE and int(addr) > 1:
        return [low32], True
    found: list[ipaddress.IPv4Address] = []
    if addr.sixtofour is not None:
        found.append(addr.sixtofour)
    if addr.teredo is not None:
        found.extend(addr.teredo)
    return found, False


def _non_public(addr: IPAddress) -> bool:
    if isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT:
        return True
    if isinstance(addr, ipaddress.IPv6Address) and (addr.is_site_local or addr in _LOCAL_NAT64):
        return True
    return (
        addr.is_loopback
        or addr.is_private
        or addr.is_unspecified
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_link_local
        or not addr.is_global
    )


def forbidden_reason(ip: str | IPAddress, *, allow_private: bool) -> str | None:
    """Why connecting to ``ip`` is refused, or None when it is allowed."""
    try:
        addr = ip if not isinstance(ip, str) else ipaddress.ip_address(ip)
    except ValueError:
        return "is not a valid IP address"
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        addr = ipaddress.IPv6Address(str(addr).split("%", 1)[0])
    embedded, translation_only = _embedded_ipv4(addr)
    candidates: list[IPAddress] = [addr, *embedded]
    for cand in candidates:
        if any(cand in net for net in _ALWAYS_FORBIDDEN if net.version == cand.version):
            return "is a link-local or cloud metadata address, which is never allowed"
    if allow_private:
        return None
    judged = embedded if translation_only else candidates
    if any(_non_public(c) for c in judged):
        return (
            "is a loopback, private, shared, multicast or reserved address "
            "(allowed only when ALLOW_PRIVATE_HOSTS is on)"
        )
    return None


def is_forbidden_ip(ip: str | IPAddress, *, allow_private: bool) -> bool:
    """True when the app must not connect to ``ip``."""
    return forbidden_reason(ip, allow_private=allow_private) is not None


def _has_control_or_space(text: str) -> bool:
    return any(ord(c) < 0x21 or 0x7F <= ord(c) <= 0x9F or c.isspace() for c in text)


def _check_host_spelling(host: str, netloc: str) -> None:
    if netloc.startswith("["):
        return  # urlsplit already validated the bracketed IPv6 literal
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as e:
        raise UnsafeInput(f"host name {host!r} is not a valid domain name") from e
    labels = ascii_host.rstrip(".").split(".")
    if 1 <= len(labels) <= 4 and all(_NUMERIC_LABEL.match(label) for label in labels):
        try:
            ipaddress.IPv4Address(ascii_host)
        except ValueError:
            raise UnsafeInput(
                f"host {host!r} looks like an IP address in a non-standard (decimal, octal or hex) "
                "spelling; write it as four dotted decimal numbers"
            ) from None
    if not _HOST_NAME.match(ascii_host) or ".." in ascii_host:
        raise UnsafeInput(f"host name {host!r} contains characters not allowed in a host name")


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _refuse_addresses(host: str, addresses: Iterable[str], *, allow_private: bool) -> None:
    for address in addresses:
        reason = forbidden_reason(address, allow_private=allow_private)
        if reason is not None:
            shown = host if host == address else f"{host} (resolves to {address})"
            raise UnsafeInput(f"refusing to connect to {shown}: the address {reason}")


def _resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    # Looked up on the module at call time so tests can monkeypatch socket.getaddrinfo.
    return list(socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM))


def check_url(
    url: str,
    *,
    allow_private: bool,
    schemes: Collection[str] = ("https", "http"),
    resolve: bool = True,
) -> urllib.parse.SplitResult:
    """Parse ``url`` and refuse it unless it is safe to connect to.

    Raises ``UnsafeInput`` with a message fit for the admin who typed the URL, or
    ``HostUnavailable`` when the host name does not resolve. With ``resolve=False``
    only the spelling (and a literal IP) is checked; :func:`guarded_session`
    checks the resolved address at connect time.
    """
    if not isinstance(url, str) or not url:
        raise UnsafeInput("a URL is required")
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if not match or scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise UnsafeInput(f"only {allowed} URLs are allowed (got {(scheme or 'no scheme')!r})")
    if not match.group(2):
        raise UnsafeInput(f"the URL must look like {scheme}://host/path")
    if _has_control_or_space(url) or "\\" in url:
        raise UnsafeInput("the URL contains spaces, control characters or backslashes")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsafeInput(f"the URL could not be parsed: {e}") from e
    if "@" in parts.netloc:
        if scheme != "ssh" or parts.password is not None or not parts.username:
            raise UnsafeInput(
                "the URL must not contain a user name or password; put credentials in the credentials field"
            )
    host = parts.hostname or ""
    if not host:
        raise UnsafeInput("the URL has no host name")
    if host.startswith("-"):
        raise UnsafeInput("the host name must not start with '-'")
    _check_host_spelling(host, parts.netloc.rsplit("@", 1)[-1])
    port = port or DEFAULT_PORTS.get(scheme, 443)
    literal = _literal_ip(host)
    if literal is not None:
        _refuse_addresses(host, [host], allow_private=allow_private)
    elif resolve:
        try:
            infos = _resolve(host, port)
        except (OSError, UnicodeError) as e:
            raise HostUnavailable(f"the host name {host!r} could not be resolved") from e
        if not infos:
            raise HostUnavailable(f"the host name {host!r} has no addresses")
        _refuse_addresses(host, (str(info[4][0]) for info in infos), allow_private=allow_private)
    return parts


# --- connect-time guard ------------------------------------------------------


def _connect_checked(conn: HTTPConnection, *, allow_private: bool) -> socket.socket:
    """Resolve once, refuse if any address is forbidden, then connect to exactly
    those checked addresses. The Host header and TLS SNI/certificate checks still
    use ``conn.host``, so nothing changes for the server but the address we trust."""
    host = conn._dns_host.strip("[]")
    infos = _resolve(host, conn.port)
    _refuse_addresses(host, (str(info[4][0]) for info in infos), allow_private=allow_private)
    last_error: OSError | None = None
    for family, socktype, proto, _canon, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            for opt in conn.socket_options or ():
                sock.setsockopt(*opt)
            timeout: object = conn.timeout
            if timeout is None or isinstance(timeout, int | float):
                sock.settimeout(timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            last_error = e
            sock.close()
    raise last_error or OSError(f"no address to connect to for {host}")


def _guarded_new_conn(conn: HTTPConnection, allow_private: bool) -> socket.socket:
    try:
        sock = _connect_checked(conn, allow_private=allow_private)
    except socket.gaierror as e:
        raise NameResolutionError(conn.host, conn, e) from e
    except TimeoutError as e:
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})") from e
    except OSError as e:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {e}") from e
    sys.audit("http.client.connect", conn, conn.host, conn.port)
    return sock


class _GuardedHTTPConnection(HTTPConnection):
    netguard_allow_private = False

    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self, self.netguard_allow_private)


class _GuardedHTTPSConnection(HTTPSConnection):
    netguard_allow_private = False

    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self, self.netguard_allow_private)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection
    netguard_allow_private = False

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        conn.netguard_allow_private = self.netguard_allow_private  # type: ignore[attr-defined]
        return conn


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection
    netguard_allow_private = False

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        conn.netguard_allow_private = self.netguard_allow_private  # type: ignore[attr-defined]
        return conn


class _GuardedPoolManager(PoolManager):
    def __init__(self, *, allow_private: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
        self._netguard_allow_private = allow_private

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        if not isinstance(pool, _GuardedHTTPPool | _GuardedHTTPSPool):
            raise UnsafeInput(f"no guarded connection pool for scheme {scheme!r}")
        pool.netguard_allow_private = self._netguard_allow_private
        return pool


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, *, allow_private: bool) -> None:
        self._netguard_allow_private = allow_private
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kw: Any) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = _GuardedPoolManager(
            allow_private=self._netguard_allow_private,
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            **kw,
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # A proxy would make the connect-time check judge the proxy, not the target.
        raise UnsafeInput("proxies are not supported for connections to git hosts")


def guarded_session(*, allow_private: bool) -> requests.Session:
    """A ``requests.Session`` whose every connection (redirect hops included) is
    checked against the address it actually connects to.

    ``trust_env`` is off: no proxies or ``.netrc`` credentials from the
    environment. Callers that need a check per redirect hop with credential
    stripping (``HostHttpClient``) pass ``allow_redirects=False`` and follow
    redirects themselves; automatic redirects are still address-checked.
    """
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = 5
    adapter = _GuardedAdapter(allow_private=allow_private)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
