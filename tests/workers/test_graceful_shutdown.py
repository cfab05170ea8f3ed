"""SIGTERM to ``python -m workers`` (a real process, real Redis): the running job finishes,
no new job starts, the process exits 0; the job's log lines carry its id (JSON logs)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from rq import Queue
from rq.job import Job, JobStatus

from connect_app.config import Settings
from connect_app.extensions import redis_conn
from tests.support.process_env import app_env

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "graceful-shutdown-test"
JOB = "tests.workers.graceful_jobs.slow_job"


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _env(app: Flask, settings: Settings, tmp_path: Path) -> dict[str, str]:
    with app.app_context():
        return app_env(settings, instance_path=tmp_path / "instance", LOG_FORMAT="json", LOG_LEVEL="INFO")


@pytest.mark.slow
def test_sigterm_lets_the_running_job_finish_and_exits_0(app: Flask, settings: Settings, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with app.app_context():
        queue = Queue(QUEUE, connection=redis_conn.client)
        running = queue.enqueue(JOB, str(markers), "first", 1.5, job_id="graceful-first")
        waiting = queue.enqueue(JOB, str(markers), "second", 0.1, job_id="graceful-second")
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "--queues", QUEUE, "--no-dispatcher", "--no-scheduler"],
            cwd=ROOT,
            env=_env(app, settings, tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for(lambda: (markers / "first.started").exists()), log_path.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert (markers / "first.finished").read_text() == "ok"
    assert not (markers / "second.started").exists()  # a stopping worker takes no new job
    with app.app_context():
        assert Job.fetch(running.id, connection=redis_conn.client).get_status() == JobStatus.FINISHED
        assert Job.fetch(waiting.id, connection=redis_conn.client).get_status() == JobStatus.QUEUED

    entries = []
    for line in log_path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # RQ's own start-up banner, if any
    started = [e for e in entries if e.get("message") == "slow job first started"]
    assert started, log_path.read_text()[-3000:]
    assert started[0]["job_id"] == "graceful-first"
    assert started[0]["job_func"] == JOB
