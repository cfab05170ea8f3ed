"""Prometheus metrics served at ``/metrics`` (``connect_app.web.metrics``).

Two kinds:

* measured in the process: HTTP request latency (:mod:`.http`). gunicorn runs several
  worker processes, so with ``PROMETHEUS_MULTIPROC_DIR`` set (``connect_app.gunicorn_conf``
  sets it) every process writes its samples there and a scrape adds them up;
* read at scrape time from the shared state every process and machine sees, so any web
  process answers the same: RQ queue depth (:mod:`.queues`, Redis), index run durations
  (:mod:`.index_runs`, the ``index_run`` table) and hosts' remaining rate budgets
  (:mod:`.rate_limits`, Redis).

:mod:`.exposition` puts both into one registry per scrape.
"""
