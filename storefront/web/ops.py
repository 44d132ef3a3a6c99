"""Operations endpoints: liveness, readiness (database and cache), Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from storefront import metrics
from storefront.store import StoreUnavailable

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    response = jsonify({"status": "ok"})
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    services = current_app.extensions["storefront"]
    try:
        services.store.ping()
        database = "ok"
    except StoreUnavailable:
        database = "down"
    cache = services.cache_status()
    # With the database down the service still serves cached renders, but a load balancer should
    # prefer instances that can also render; "cannot serve" is database down with no cache at all.
    ready = database == "ok" or cache == "ok"
    response = jsonify({"database": database, "cache": cache})
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if ready else 503


@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
