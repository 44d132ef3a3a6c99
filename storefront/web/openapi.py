"""GET /openapi.json: the repository's openapi.yaml, parsed once and served as JSON."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, request

blueprint = Blueprint("openapi", __name__)

# The description lives at the repository root, next to the code it describes.
SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
CACHE_CONTROL = "public, max-age=300"

# The C loader is several times faster; PyYAML wheels ship it, a source build may not.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    """The OpenAPI document at ``path`` as plain JSON-compatible data."""
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_Loader)
    if not isinstance(document, dict):
        raise ValueError(f"{path} does not hold an OpenAPI document")
    return document


@functools.cache
def _served() -> tuple[bytes, str]:
    # Parsed and serialized on first use, not per request: the document only changes with a deploy.
    body = json.dumps(load_spec(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return body, hashlib.sha256(body).hexdigest()[:32]


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    body, etag = _served()
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.set_etag(etag)
    return response.make_conditional(request)
