"""Timing helpers and result output shared by the benchmarks."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    name: str
    ours_ms: float
    baseline_ms: float
    baseline: str
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.baseline_ms if self.baseline_ms else float("inf")


def per_call_ms(fn: Callable[[], object], *, repeat: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def write(figures: list[Figure], suite: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{suite}.json"
    payload = {
        "suite": suite,
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "figures": [asdict(f) | {"ratio": round(f.ratio, 3)} for f in figures],
    }
    path.write_text(json.dumps(payload, indent=2))
    return path


def table(figures: list[Figure]) -> str:
    rows = ["| figure | ours (ms) | baseline | baseline (ms) | ratio |", "|---|---:|---|---:|---:|"]
    for f in figures:
        rows.append(f"| {f.name} | {f.ours_ms:.3f} | {f.baseline} | {f.baseline_ms:.3f} | {f.ratio:.2f}x |")
    return "\n".join(rows)
