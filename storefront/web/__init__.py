"""The HTTP layer: the only package that reads flask.request; registers blueprints and error handlers."""

from __future__ import annotations

from flask import Flask


def register_web(app: Flask) -> None:
    from storefront.web import admin, errors, openapi, ops, preview, proxy, request_log, webhooks, widgets

    request_log.register_request_log(app)
    errors.register_error_handlers(app)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(widgets.blueprint)
    app.register_blueprint(preview.blueprint)
    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(proxy.blueprint)
    app.register_blueprint(openapi.blueprint)

    services = app.extensions["storefront"]

    @app.before_request
    def _start_request() -> None:
        services.start_request()

    @app.teardown_appcontext
    def _close_request(_exc: BaseException | None) -> None:
        services.close_request()

    @app.after_request
    def _never_set_cookie(response):  # type: ignore[no-untyped-def]
        # Responses sit in shared caches: a cookie on one would be served to everybody.
        response.headers.remove("Set-Cookie")
        return response
