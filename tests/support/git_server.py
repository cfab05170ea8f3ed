"""Real git repositories served over HTTP on 127.0.0.1, for tests and benchmarks.

:class:`GitHttpServer` runs ``git http-backend`` (the CGI program git ships) behind
a small WSGI app on a threaded werkzeug server bound to loopback, with optional
HTTP basic auth and pushes enabled. It records every request, including whether
an upload-pack request asked for a ``filter`` (blobless clones), so tests can
assert what the client really did.

Builders: :class:`RepoBuilder` / :func:`make_repo` create small, deterministic
repositories with ordinary git commands (branches, merges, tags, issue keys in
messages); :func:`make_bulk_repo` writes N commits through ``git fast-import``.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import io
import os
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self, cast

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from connect_app.hosts.base import GitAuth

StartResponse = Callable[..., Any]
HTTP_BACKEND = "git-http-backend"
BASE_TIME = 1_700_000_000  # fixed commit dates make shas reproducible


def git_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """An environment for test-side git: no user/system config, fixed identity."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home or Path(tempfile.gettempdir())),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Ada Lovelace",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada Lovelace",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
    }
    env.update(extra)
    return env


def run_git(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, stdin: bytes | None = None
) -> str:
    """Run test-side git; raise with stderr on failure."""
    res = subprocess.run(
        ["git", *args], cwd=cwd, env=dict(env or git_env()), input=stdin, capture_output=True, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {res.stderr.decode(errors='replace')}")
    return res.stdout.decode(errors="replace")


def _exec_path() -> Path:
    return Path(run_git("--exec-path").strip())


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str
    user: str | None
    status: int
    sent_filter: bool = False  # an upload-pack request that asked for "filter ..."
    gzip: bool = False  # the request body was gzip-compressed
    chunked: bool = False  # the request body came with Transfer-Encoding: chunked


class QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class GitHttpServer:
    """``git http-backend`` on ``http://127.0.0.1:<random port>/<name>.git``."""

    def __init__(
        self,
        root: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        allow_filter: bool = True,
        allow_push: bool = True,
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = password
        self._home = root / ".home"  # empty HOME for http-backend: no user config
        self._home.mkdir(exist_ok=True)
        config = {
            "http.receivepack": str(allow_push).lower(),
            "uploadpack.allowFilter": str(allow_filter).lower(),
            "uploadpack.allowAnySHA1InWant": "true",
            "receive.denyDeletes": "false",
        }
        self._backend_env = git_env(
            self._home, GIT_PROJECT_ROOT=str(root), GIT_HTTP_EXPORT_ALL="1", GIT_CONFIG_COUNT=str(len(config))
        )
        for i, (k, v) in enumerate(config.items()):
            self._backend_env[f"GIT_CONFIG_KEY_{i}"] = k
            self._backend_env[f"GIT_CONFIG_VALUE_{i}"] = v
        self._backend = str(_exec_path() / HTTP_BACKEND)
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> Self:
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="git-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def auth(self) -> GitAuth:
        """The credentials this server accepts, as the app hands them to git."""
        return GitAuth(username=self.username, password=self.password)

    # -- repositories
    def url_for(self, name: str) -> str:
        return f"{self.base_url}/{name}.git"

    def path_for(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def add_repo(self, name: str, builder: Callable[[Path], object] | None = None) -> Path:
        """Create ``<root>/<name>.git``; ``builder(path)`` fills it (a bare repo)."""
        path = self.path_for(name)
        if builder is None:
            run_git("init", "--quiet", "--bare", "-b", "main", str(path))
        else:
            builder(path)
        return path

    # -- what clients did
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def filter_requested(self) -> bool:
        return any(r.sent_filter for r in self.requests)

    # -- WSGI
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        user = self._authenticate(environ)
        if user is False:
            self._record(environ, None, 401)
            start_response(
                "401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")]
            )
            return [b"authentication required\n"]
        body = _read_body(environ)
        sent_filter = "git-upload-pack" in environ.get("PATH_INFO", "") and b"filter " in body
        env = dict(self._backend_env)
        env.update(
            {
                "PATH_INFO": environ.get("PATH_INFO", ""),
                "QUERY_STRING": environ.get("QUERY_STRING", ""),
                "REQUEST_METHOD": environ.get("REQUEST_METHOD", "GET"),
                "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": environ.get("REMOTE_ADDR", "127.0.0.1"),
            }
        )
        if isinstance(user, str):
            env["REMOTE_USER"] = user
        if "HTTP_GIT_PROTOCOL" in environ:
            env["GIT_PROTOCOL"] = environ["HTTP_GIT_PROTOCOL"]
        proc = subprocess.Popen(
            [self._backend], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert proc.stdin is not None and proc.stdout is not None
        writer = threading.Thread(target=_feed, args=(proc.stdin, body), daemon=True)
        writer.start()
        status, headers = _read_cgi_headers(proc.stdout)
        self._record(environ, user if isinstance(user, str) else None, int(status.split()[0]), sent_filter)

        start_response(status, headers)
        return _stream(proc, writer)

    def _authenticate(self, environ: Mapping[str, Any]) -> str | bool:
        if self.username is None:
            return True
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), self.username.encode())
        ok_pw = hmac.compare_digest(pw.encode(), (self.password or "").encode())
        return user if ok_user and ok_pw else False

    def _record(self, environ: Mapping[str, Any], user: str | None, status: int, sent_filter: bool = False) -> None:
        rec = RequestRecord(
            environ.get("REQUEST_METHOD", ""),
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
            user,
            status,
            sent_filter,
            gzip=environ.get("HTTP_CONTENT_ENCODING", "").lower() in {"gzip", "x-gzip"},
            chunked=bool(environ.get("wsgi.input_terminated"))
            and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", ""),
        )
        with self._lock:
            self._requests.append(rec)


def _read_body(environ: Mapping[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug de-chunks and ends the stream
        body: bytes = b"".join(iter(lambda: stream.read(65536), b""))
    else:
        body = stream.read(int(length)) if length.isdigit() else b""
    encoding = environ.get("HTTP_CONTENT_ENCODING", "").lower()
    if encoding in {"gzip", "x-gzip"}:
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    return body


def _feed(pipe: IO[bytes], body: bytes) -> None:
    try:
        pipe.write(body)
    except BrokenPipeError:
        pass
    finally:
        pipe.close()


def _read_cgi_headers(out: IO[bytes]) -> tuple[str, list[tuple[str, str]]]:
    status, headers = "200 OK", []
    while True:
        line = out.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
        if name.lower() == "status":
            status = value.strip()
        else:
            headers.append((name.strip(), value.strip()))
    return status, headers


def _stream(proc: subprocess.Popen[bytes], writer: threading.Thread) -> Iterator[bytes]:
    out = cast(io.BufferedReader, proc.stdout)
    try:
        yield from iter(lambda: out.read1(65536), b"")
    finally:
        out.close()
        proc.wait()
        writer.join()


# --------------------------------------------------------------------------- builders


@dataclass
class CommitSpec:
    """One commit for :func:`make_repo`. ``merge`` merges that branch into ``branch``."""

    message: str
    branch: str = "main"
    files: Mapping[str, str] | None = None  # default: one file named after the commit
    merge: str | None = None
    tags: Sequence[str] = ()  # "v1" lightweight, "v1:message" annotated
    author: tuple[str, str] | None = None


@dataclass
class RepoBuilder:
    """Builds history in a work tree and publishes it to a bare repository."""

    bare: Path
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gcj-work-")))
    clock: int = BASE_TIME
    default_branch: str = "main"

    def __post_init__(self) -> None:
        if not (self.bare / "HEAD").exists():
            run_git("init", "--quiet", "--bare", "-b", self.default_branch, str(self.bare))
        if not (self.work / ".git").exists():
            self.work.mkdir(parents=True, exist_ok=True)
            run_git("init", "--quiet", "-b", self.default_branch, str(self.work))
            self.git("remote", "add", "origin", str(self.bare))
            if run_git("for-each-ref", cwd=self.bare).strip():
                self.git("fetch", "--quiet", "origin", "+refs/*:refs/*", "--update-head-ok")
                self.git("reset", "--quiet", "--hard", self.default_branch)

    def git(self, *args: str, author: tuple[str, str] | None = None) -> str:
        self.clock += 60
        date = f"{self.clock} +0000"
        extra = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        if author:
            extra.update(GIT_AUTHOR_NAME=author[0], GIT_AUTHOR_EMAIL=author[1])
        return run_git(*args, cwd=self.work, env=git_env(self.work, **extra))

    def checkout(self, branch: str) -> None:
        existing = self.git("branch", "--list", branch).strip()
        self.git("checkout", "--quiet", *([] if existing else ["-b"]), branch)

    def commit(
        self,
        message: str,
        *,
        branch: str | None = None,
        files: Mapping[str, str] | None = None,
        author: tuple[str, str] | None = None,
    ) -> str:
        if branch:
            self.checkout(branch)
        for name, content in (files or {f"file-{self.clock}.txt": message}).items():
            target = self.work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            self.git("add", "--", name)
        self.git("commit", "--quiet", "--allow-empty", "--allow-empty-message", "-m", message, author=author)
        return self.head()

    def merge(self, source: str, *, into: str, message: str) -> str:
        self.checkout(into)
        self.git("merge", "--quiet", "--no-ff", "-m", message, source)
        return self.head()

    def tag(self, name: str, message: str | None = None) -> None:
        self.git("tag", *(["-a", "-m", message] if message else []), name)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def apply(self, specs: Iterable[CommitSpec]) -> None:
        for spec in specs:
            if spec.merge:
                self.merge(spec.merge, into=spec.branch, message=spec.message)
            else:
                self.commit(spec.message, branch=spec.branch, files=spec.files, author=spec.author)
            for t in spec.tags:
                name, _, msg = t.partition(":")
                self.tag(name, msg or None)

    def publish(self) -> None:
        """Push every branch and tag to the bare repository (forced; branches made elsewhere stay)."""
        self.git("push", "--quiet", "--force", "origin", "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")


DEFAULT_HISTORY: tuple[CommitSpec, ...] = (
    CommitSpec("ABC-1 initial import", files={"README.md": "hello\n", "src/app.py": "print(1)\n"}),
    CommitSpec("ABC-2 add docs\n\nLonger body mentioning XYZ-9.", files={"docs/index.md": "# docs\n"}),
    CommitSpec("ABC-12 start the fix", branch="feature/ABC-12-fix", files={"src/app.py": "print(2)\n"}),
    CommitSpec("More work on [ABC-12]", branch="feature/ABC-12-fix", author=("Bob", "bob@example.com")),
    CommitSpec("Unrelated change on main", files={"README.md": "hello world\n"}, tags=("v0.1",)),
    CommitSpec("Merge branch 'feature/ABC-12-fix'", merge="feature/ABC-12-fix", tags=("v1.0:release 1.0",)),
    CommitSpec("DEF-7: a message with unicode \u00e9\u00e8 and\ttabs", branch="release/1.x"),
)


def make_repo(path: Path, commits: Iterable[CommitSpec] = DEFAULT_HISTORY) -> RepoBuilder:
    """A bare repository at ``path`` holding ``commits``; returns the builder for more pushes."""
    builder = RepoBuilder(path, work=path.parent / ".work" / path.name)
    builder.apply(commits)
    builder.publish()
    return builder


def make_bulk_repo(
    path: Path, n_commits: int, *, branches: int = 1, files: int = 512, keys: Sequence[str] = ("ABC", "DEF")
) -> None:
    """A bare repository with ``n_commits`` linear-ish commits, via ``git fast-import``.

    Commit i lands on one of ``branches`` branches (main, then ``feature/…`` forked
    from main early on), mentions an issue key, and changes exactly one file: each
    branch cycles through its own ``files`` paths, flipping between two blobs.
    """
    run_git("init", "--quiet", "--bare", "-b", "main", str(path))
    proc = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"],
        cwd=path,
        env=git_env(path),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    w = proc.stdin.write
    w(b"blob\nmark :1\ndata 6\nalpha\n\nblob\nmark :2\ndata 5\nbeta\n\n")
    tips: dict[str, int] = {}
    mark = 2
    buf: list[bytes] = []
    for i in range(n_commits):
        j = i % branches if branches > 1 else 0
        branch = "main" if j == 0 else f"feature/{keys[0]}-{j}-work"
        mark += 1
        key = f"{keys[i % len(keys)]}-{i % 997 + 1}"
        msg = f"{key} change {i}\n".encode()
        k = i // max(branches, 1)  # this branch's own commit counter: cycles through its paths
        path_i = f"src/b{j}/d{k % 16}/f{k % files}.txt"
        blob = 1 + (k // files) % 2
        parent = tips.get(branch, tips.get("main"))
        buf.append(
            b"commit refs/heads/%s\nmark :%d\ncommitter Ada Lovelace <ada@example.com> %d +0000\n"
            b"data %d\n%s" % (branch.encode(), mark, BASE_TIME + i * 60, len(msg), msg)
        )
        if parent is not None:
            buf.append(b"from :%d\n" % parent)
        buf.append(b"M 100644 :%d %s\n\n" % (blob, path_i.encode()))
        tips[branch] = mark
        if len(buf) > 3000:
            w(b"".join(buf))
            buf.clear()
    buf.append(b"done\n")
    w(b"".join(buf))
    proc.stdin.close()
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise RuntimeError(f"git fast-import failed: {err.decode(errors='replace')}")
