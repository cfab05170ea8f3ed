"""`make run` on this checkout starts web + worker on embedded defaults and serves the descriptor."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_make_run_serves_the_descriptor(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "ENCRYPTION_KEYS"}}
    env.update({"PORT": str(port), "INSTANCE_PATH": str(tmp_path / "instance"), "APP_ENV": "development"})
    env.pop("BASE_URL", None)
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        descriptor = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/atlassian-connect.json", timeout=2)
                if r.status_code == 200:
                    descriptor = r.json()
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        output = (tmp_path / "run.log").read_text()
        assert descriptor is not None, output[-3000:]
        assert descriptor["baseUrl"] == f"http://127.0.0.1:{port}"
        assert f"http://127.0.0.1:{port}/atlassian-connect.json" in output  # printed for the admin
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert ready["checks"] == {"database": "ok", "redis": "ok"}
        assert (tmp_path / "instance" / "app.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # make reports Ctrl-C as its own exit by signal; what matters is that nothing is left serving.
    assert proc.returncode in (0, -signal.SIGINT, 130), (tmp_path / "run.log").read_text()[-3000:]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
