"""The production web process (``gunicorn -c python:connect_app.gunicorn_conf``): request
metrics add up over all worker processes, stale samples are wiped at start, the access log
is the app's (with request ids, without query strings), and SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from connect_app.config import Settings
from tests.support.process_env import app_env

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
REQUESTS = 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gcj_http_request_duration_seconds_count" and sample.labels["endpoint"] == (
                "health.healthz"
            ):
                return sample.value
    return 0.0


@pytest.mark.slow
def test_gunicorn_workers_share_request_metrics(app: Flask, settings: Settings, tmp_path: Path) -> None:
    port = _free_port()
    prom = tmp_path / "prometheus"
    prom.mkdir()
    (prom / "counter_999999.db").write_bytes(b"not a prometheus file")  # left by an earlier run
    with app.app_context():
        env = app_env(
            settings,
            instance_path=tmp_path / "instance",
            LOG_FORMAT="json",
            WEB_CONCURRENCY="2",
            WEB_THREADS="2",
            PROMETHEUS_MULTIPROC_DIR=str(prom),
        )
    log_path = tmp_path / "web.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [GUNICORN, "-c", "python:connect_app.gunicorn_conf", "--bind", f"127.0.0.1:{port}", "connect_app.wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/metrics", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        before = _healthz_count(requests.get(f"{base}/metrics", timeout=10).text)
        for _ in range(REQUESTS):  # a new connection each time: either worker may answer
            requests.get(f"{base}/healthz", timeout=10, headers={"Connection": "close"})
        response = requests.get(
            f"{base}/no/such/page?jwt=eyJhbGciOiJIUzI1NiJ9.e30.c2ln", headers={"X-Request-Id": "gunicorn-test"}
        )
        assert response.headers["X-Request-Id"] == "gunicorn-test"
        scraped = requests.get(f"{base}/metrics", timeout=10)
        assert scraped.status_code == 200, log_path.read_text()[-3000:]
        assert _healthz_count(scraped.text) - before == REQUESTS
        assert list(prom.glob("histogram_*.db")) and not (prom / "counter_999999.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    assert "jwt" not in output
    access = [json.loads(line) for line in output.splitlines() if line.startswith("{") and "connect_app.access" in line]
    assert any(e["request_id"] == "gunicorn-test" and e["path"] == "/no/such/page" for e in access), output[-3000:]
