"""Command line: ``python -m connect_app {run,migrate,generate-key,rotate-secrets}``."""

from __future__ import annotations

import argparse
import sys

from cryptography.fernet import Fernet


def _migrate() -> None:
    from connect_app import create_app, migrate
    from connect_app.extensions import db

    create_app()
    migrate.upgrade(db.engine)
    print("database schema is up to date")


def _rotate_secrets() -> None:
    from connect_app import create_app
    from connect_app.extensions import db
    from connect_app.runtime import runtime
    from connect_app.security.key_rotation import rotate_all

    app = create_app()
    with app.app_context(), db.session_scope() as session:
        counts = rotate_all(session, runtime(app).secrets)
    done = ", ".join(f"{n} in {table}" for table, n in counts.items())
    print(f"re-encrypted with the first key of ENCRYPTION_KEYS: {done}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connect_app")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="web + worker with scheduler on embedded defaults (what `make run` starts)")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("generate-key", help="print a new Fernet key for ENCRYPTION_KEYS")
    sub.add_parser("rotate-secrets", help="re-encrypt stored secrets with the first ENCRYPTION_KEYS key")
    sub.add_parser("providers-table", help="print the README's host x auth x capabilities table")
    args = parser.parse_args(argv)

    if args.command == "run":
        from connect_app.devserver import run

        return run()
    if args.command == "migrate":
        _migrate()
    elif args.command == "generate-key":
        print(Fernet.generate_key().decode())
    elif args.command == "providers-table":
        from connect_app.hosts.registry import markdown_table

        print(markdown_table())
    elif args.command == "rotate-secrets":
        _rotate_secrets()
    return 0


if __name__ == "__main__":
    from connect_app.startup import clear_startup_errors

    with clear_startup_errors("cli"):
        sys.exit(main())
