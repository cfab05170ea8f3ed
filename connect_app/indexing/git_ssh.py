"""The ``ssh`` command git runs, and the per-call files it needs.

Fixed options, whatever the service user's ssh setup: ``-F /dev/null`` (no user or
system ssh config, so no ProxyCommand or IdentityFile from there), ``BatchMode``
(never a prompt), ``IdentitiesOnly`` with no agent, and only the key this call was
given (``GitAuth.ssh_private_key``) or none at all: one tenant's call can never
authenticate with the service user's own keys or another tenant's.

Host keys: by default trust on first use (``StrictHostKeyChecking=accept-new``) in
``known_hosts`` (the runner's file, else the service user's ``~/.ssh/known_hosts``).
``GitAuth.ssh_known_host_key`` pins the host key instead: only the keys given there
are trusted for this call (``StrictHostKeyChecking=yes``, no other known-hosts
file), whatever any known-hosts file says.

The private key and pinned host keys are written to a fresh 0700 directory inside
the runner's sandbox (the key file 0600) and removed when the call ends, also on
error or timeout; the key is never put in argv, the environment or a log.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connect_app.errors import ValidationError
from connect_app.hosts.base import GitAuth
from connect_app.indexing.git_process import sandbox
from connect_app.indexing.git_safety import Target

_BASE = ("ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30")
_IDENTITY_ONLY = ("-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none")
_PRIVATE_KEY = re.compile(r"^-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----\n(.+?)\n-----END \1PRIVATE KEY-----$", re.S)
_HOST_KEY_TYPE = re.compile(
    r"^(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$"
)
_BAD_KEY = (
    "the SSH private key must be the whole text of an unencrypted OpenSSH or PEM private key, "
    "from its '-----BEGIN ... PRIVATE KEY-----' line to its END line"
)
_BAD_HOST_KEY = (
    "the pinned SSH host key must be one or more lines like 'ssh-ed25519 AAAA...' "
    "(as printed by ssh-keyscan or found in a known_hosts file)"
)


@contextmanager
def ssh_command(auth: GitAuth | None, target: Target | None, *, known_hosts: Path | None) -> Iterator[str]:
    """``GIT_SSH_COMMAND`` for one call; files it names exist until the ``with`` block ends."""
    key = auth.ssh_private_key if auth is not None and target is not None and target.scheme == "ssh" else None
    pins = auth.ssh_known_host_key if auth is not None and target is not None and target.scheme == "ssh" else None
    key_text = private_key_text(key) if key else None  # validate before anything is written or run
    host_keys = pinned_host_keys(pins) if pins else None
    ssh = [*_BASE, *_IDENTITY_ONLY]
    if host_keys is None:
        ssh += ["-o", "StrictHostKeyChecking=accept-new"]
        if known_hosts:
            ssh += ["-o", f"UserKnownHostsFile={known_hosts}"]
    for opt in target.ssh_options if target else ():
        ssh += ["-o", opt]
    if key_text is None and host_keys is None:
        yield shlex.join([*ssh, "-o", "IdentityFile=none"])
        return
    call_dir = Path(tempfile.mkdtemp(prefix="ssh-", dir=sandbox()))  # 0700
    try:
        if host_keys is not None:
            pinned = call_dir / "known_hosts"
            # '*': this file serves this one connection, whatever name or alias ssh looks up.
            _write_private(pinned, "".join(f"* {k}\n" for k in host_keys))
            ssh += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={pinned}"]
            ssh += ["-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no"]
        if key_text is not None:
            identity = call_dir / "id"
            _write_private(identity, key_text)
            ssh += ["-i", str(identity)]
        else:
            ssh += ["-o", "IdentityFile=none"]
        yield shlex.join(ssh)
    finally:
        shutil.rmtree(call_dir, ignore_errors=True)


def private_key_text(key: str) -> str:
    """The key as ssh reads it (LF line ends, final newline); ``ValidationError`` if it is not an
    unencrypted private key. Messages never quote the key."""
    text = key.replace("\r\n", "\n").replace("\r", "\n").strip()
    m = _PRIVATE_KEY.match(text)
    if not m:
        raise ValidationError(_BAD_KEY)
    kind, body = m[1], m[2]
    encrypted = kind == "ENCRYPTED " or "Proc-Type: 4,ENCRYPTED" in body
    if kind == "OPENSSH ":
        try:
            blob = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(_BAD_KEY) from None
        if not blob.startswith(b"openssh-key-v1\0") or len(blob) < 19:
            raise ValidationError(_BAD_KEY)
        n = int.from_bytes(blob[15:19], "big")
        encrypted = blob[19 : 19 + n] != b"none"
    if encrypted:
        raise ValidationError("the SSH private key is protected by a passphrase; use a key without one")
    return text + "\n"


def pinned_host_keys(text: str) -> list[str]:
    """``"<type> <base64>"`` for each key in ``text``: bare keys, ``ssh-keyscan`` output or
    known_hosts lines (their host field is ignored); ``#`` comments allowed."""
    keys: list[str] = []
    for line in text.replace("\r", "\n").split("\n"):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("@"):
            raise ValidationError("known_hosts markers such as @cert-authority are not supported for pinning")
        if not _HOST_KEY_TYPE.match(fields[0]) and len(fields) >= 3:
            fields = fields[1:]  # a known_hosts / ssh-keyscan line: host names first
        if len(fields) < 2 or not _HOST_KEY_TYPE.match(fields[0]) or _wire_type(fields[1]) != fields[0]:
            raise ValidationError(_BAD_HOST_KEY)
        keys.append(f"{fields[0]} {fields[1]}")
    if not keys:
        raise ValidationError(_BAD_HOST_KEY)
    return keys


def _wire_type(b64: str) -> str | None:
    """The key type named inside an SSH public key blob (it must match the line's type)."""
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    n = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + n].decode("ascii", "replace") if 4 + n <= len(blob) else None


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
