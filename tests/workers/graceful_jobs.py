"""Jobs for the graceful-shutdown tests, run by a real ``python -m workers`` (imported by path)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from workers.context import job_context

log = logging.getLogger("tests.workers.graceful_jobs")


def slow_job(marker_dir: str, name: str, seconds: float) -> str:
    """Marks ``<name>.started``, sleeps, then writes ``<name>.finished``."""
    with job_context():
        log.info("slow job %s started", name)
        Path(marker_dir, f"{name}.started").touch()
        time.sleep(seconds)
        Path(marker_dir, f"{name}.finished").write_text("ok")
        log.info("slow job %s finished", name)
    return "ok"
