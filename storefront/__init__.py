"""Storefront: the application factory that wires settings, store, cache and the web layer together."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from storefront.services import Services, build_services
from storefront.settings import SettingsError, load_settings
from storefront.web.errors import MAX_BODY_BYTES

__all__ = ["create_app", "Services", "SettingsError"]


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings -> services (store, cache, purger) -> blueprints -> errors -> CLI.

    ``test_config`` holds setting names without the ``STOREFRONT_`` prefix; when it is given the
    environment is not read, so a test never picks up a developer's shell settings.
    """
    app = Flask(__name__, instance_relative_config=True, template_folder="../templates",
                static_folder="../static")
    environ = os.environ if test_config is None else {}
    settings = load_settings(environ, test_config, app.instance_path)
    app.config.update(
        # Werkzeug's own limit turns an oversized body into a 413 before a view reads it.
        # One byte over the limit: werkzeug cuts a chunked body at the limit instead of refusing
        # it, so views read up to one byte more and refuse anything longer (read_body_limited).
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES + 1,
        JSON_SORT_KEYS=False,
        SECRET_KEY=settings.secret_key or None,
    )
    # "//" in a path must not become a redirect whose Location is built from the Host header.
    app.url_map.merge_slashes = False
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["storefront"] = build_services(settings)

    from storefront.web import register_web
    from storefront.web.hot_path import HotPath
    from storefront.web.widgets import render_hot_miss, resolve_hot_target

    register_web(app)
    services = app.extensions["storefront"]
    app.wsgi_app = HotPath(  # type: ignore[method-assign]
        app.wsgi_app, services.hot_targets, functools.partial(resolve_hot_target, services),
        functools.partial(render_hot_miss, services))

    from storefront.cli import register_cli

    register_cli(app)
    _configure_logging(app)
    if settings.sentry_dsn:
        _configure_sentry(settings.sentry_dsn, settings.env)
    return app


def _configure_logging(app: Flask) -> None:
    """JSON lines on stderr, unless the host process (a test runner, say) configured logging already."""
    root = logging.getLogger()
    if root.handlers:
        return
    from storefront.web.request_log import JsonLineHandler

    root.addHandler(JsonLineHandler())
    root.setLevel(logging.INFO)


def _configure_sentry(dsn: str, environment: str) -> None:
    """Errors to Sentry when a DSN is configured; no personal data, no request bodies or headers."""
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(dsn=dsn, environment=environment, integrations=[FlaskIntegration()],
                    send_default_pii=False, max_request_body_size="never", traces_sample_rate=0.0)
