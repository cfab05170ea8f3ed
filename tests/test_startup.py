"""A misconfigured or cut-off process says what is wrong in one line and exits, at the start
of every entry point: the CLI, the worker and the web app under gunicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connect_app.errors import ConfigError
from connect_app.startup import EXIT_CONFIG, EXIT_UNAVAILABLE, ServiceUnavailable, clear_startup_errors

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def _bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {"PATH", "HOME", "LANG", "SYSTEMROOT"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"INSTANCE_PATH": str(tmp_path / "instance"), **extra})
    return env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ENTRY_POINTS = {
    "cli": [sys.executable, "-m", "connect_app", "migrate"],
    "worker": [sys.executable, "-m", "workers", "--no-dispatcher"],
    "web": [GUNICORN, "-c", "python:connect_app.gunicorn_conf", "--bind", "127.0.0.1:0", "connect_app.wsgi:app"],
}


@pytest.mark.slow
@pytest.mark.parametrize("process", sorted(ENTRY_POINTS))
def test_production_without_its_services_is_one_clear_line(process: str, tmp_path: Path) -> None:
    result = subprocess.run(
        ENTRY_POINTS[process],
        cwd=ROOT,
        env=_bare_env(tmp_path, APP_ENV="production"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_CONFIG, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert (
        f"git-connect-for-jira {process}: configuration error: production mode (APP_ENV=production) "
        "needs ENCRYPTION_KEYS, DATABASE_URL, REDIS_URL to be set"
    ) in result.stderr


@pytest.mark.slow
def test_a_worker_that_cannot_reach_redis_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        ENTRY_POINTS["worker"],
        cwd=ROOT,
        env=_bare_env(tmp_path, REDIS_URL=f"redis://:hunter22@127.0.0.1:{_closed_port()}/0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "git-connect-for-jira worker: cannot start: Redis cannot be reached" in result.stderr
    assert "hunter22" not in result.stderr


def test_clear_startup_errors_turns_config_errors_into_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as config:
        with clear_startup_errors("web"):
            raise ConfigError("LOG_FORMAT must be text or json")
    assert config.value.code == EXIT_CONFIG
    with pytest.raises(SystemExit) as unavailable:
        with clear_startup_errors("worker"):
            raise ServiceUnavailable("the database at postgresql://app:***@db/app cannot be reached")
    assert unavailable.value.code == EXIT_UNAVAILABLE
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "git-connect-for-jira web: configuration error: LOG_FORMAT must be text or json",
        "git-connect-for-jira worker: cannot start: the database at postgresql://app:***@db/app cannot be reached",
    ]
    with pytest.raises(ValueError):  # anything else is not a startup error: left alone
        with clear_startup_errors("web"):
            raise ValueError("bug")
