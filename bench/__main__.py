"""``python -m bench [name ...]``: run benchmarks, write bench/results/<name>.json, print a table."""

from __future__ import annotations

import argparse
import importlib

from bench.common import table, write

SUITES = ["auth_overhead", "indexing", "panel", "panel_gunicorn", "webhook_intake", "host_api"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suites", nargs="*", help=f"any of {SUITES} (default: all)")
    args = parser.parse_args()
    for name in args.suites or SUITES:
        if name not in SUITES:
            parser.error(f"unknown suite {name!r}; choose from {SUITES}")
        figures = importlib.import_module(f"bench.{name}").run()
        path = write(figures, name)
        print(f"\n## {name}  ({path})\n")
        print(table(figures))


if __name__ == "__main__":
    main()
