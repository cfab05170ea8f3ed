"""Request latency, labelled by Flask endpoint (never the raw path) and status class.

Label values are bounded: the endpoint is the url rule's name (``unmatched`` for a 404
or 405 that matched no rule), the method one of the usual seven or ``other``, the
status ``2xx``..``5xx``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

# Used only without PROMETHEUS_MULTIPROC_DIR; in multiprocess mode the samples go to files.
LOCAL_REGISTRY = CollectorRegistry(auto_describe=False)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_DURATION = Histogram(
    "gcj_http_request_duration_seconds",
    "Time to answer an HTTP request, by Flask endpoint, method and status class.",
    ["endpoint", "method", "status"],
    buckets=LATENCY_BUCKETS,
    registry=LOCAL_REGISTRY,
)

UNMATCHED = "unmatched"


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def method_label(method: str) -> str:
    upper = method.upper()
    return upper if upper in _METHODS else "other"


def observe_request(endpoint: str | None, method: str, status: int, seconds: float) -> None:
    REQUEST_DURATION.labels(endpoint or UNMATCHED, method_label(method), status_class(status)).observe(
        max(0.0, seconds)
    )
