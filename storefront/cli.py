"""Flask CLI commands: init-db, seed-demo, settings-table, create-admin-token (thin wrappers)."""

from __future__ import annotations

import secrets

import click
from flask import Flask, current_app


def register_cli(app: Flask) -> None:
    app.cli.add_command(init_db_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(settings_table_command)
    app.cli.add_command(create_admin_token_command)


def _store():  # type: ignore[no-untyped-def]
    return current_app.extensions["storefront"].store.primary


@click.command("init-db")
def init_db_command() -> None:
    """Create or upgrade the schema (idempotent)."""
    applied = _store().migrate()
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Load the demo shops, products and published widgets (idempotent)."""
    from storefront.demo import seed_demo

    for line in seed_demo(_store()):
        click.echo(f"seeded {line}")


@click.command("settings-table")
def settings_table_command() -> None:
    """Print the README's configuration table."""
    from storefront.settings import settings_table

    click.echo(settings_table())


@click.command("create-admin-token")
def create_admin_token_command() -> None:
    """Print a new random admin token to add to STOREFRONT_ADMIN_TOKENS."""
    click.echo(secrets.token_urlsafe(32))
