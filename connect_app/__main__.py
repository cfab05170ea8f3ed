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
    from sqlalchemy import select

    from connect_app import create_app
    from connect_app.extensions import db
    from connect_app.models import Tenant
    from connect_app.runtime import runtime

    app = create_app()
    with app.app_context(), db.session_scope() as session:
        box = runtime(app).secrets
        count = 0
        for tenant in session.scalars(select(Tenant)):
            tenant.shared_secret_encrypted = box.rotate(tenant.shared_secret_encrypted)
            count += 1
    print(f"re-encrypted {count} tenant secret(s) with the first key of ENCRYPTION_KEYS")


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
    sys.exit(main())
