"""Cloudflare: purge by Cache-Tag through the zone purge_cache API."""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

from storefront.cdn.base import HttpEndpoint, PurgeError, Purger, batches, check_secret, checked_tags, scrub

API_HOST = "api.cloudflare.com"
# Cloudflare takes at most 100 tags in one purge request (on every plan); older accounts were held
# to 30, which ``max_tags`` allows for.
MAX_TAGS = 100
_MAX_BODY_BYTES = 256 * 1024


class CloudflarePurger(Purger):
    """``POST /client/v4/zones/{zone_id}/purge_cache`` with ``{"tags": [...]}`` and a bearer API token.

    An answer counts as done only with ``"success": true``; Cloudflare reports some refusals as HTTP
    200 with ``"success": false``.
    """

    name = "cloudflare"

    def __init__(self, token: str, zone_id: str, *, host: str = API_HOST, port: int | None = None,
                 tls: bool = True, timeout_s: float = 5.0, max_tags: int = MAX_TAGS) -> None:
        self._token = check_secret(token, "the Cloudflare API token")
        if not zone_id or not zone_id.isalnum():
            raise ValueError("the Cloudflare zone id must be alphanumeric")
        if not 1 <= max_tags <= MAX_TAGS:
            raise ValueError(f"max_tags must be between 1 and {MAX_TAGS}")
        self.zone_id = zone_id
        self.max_tags = max_tags
        self.endpoint = HttpEndpoint(host, port, tls=tls, timeout_s=timeout_s, secrets=(self._token,))

    def purge(self, tags: Sequence[str]) -> None:
        path = f"/client/v4/zones/{quote(self.zone_id)}/purge_cache"
        for batch in batches(checked_tags(tags), self.max_tags, _MAX_BODY_BYTES, separator_bytes=4):
            body = json.dumps({"tags": batch}).encode()
            headers = {
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            status, answer, response_headers = self.endpoint.request("POST", path, headers, body)
            if not 200 <= status < 300:
                raise self.endpoint.failure("POST", path, status, answer, response_headers)
            try:
                result = json.loads(answer)
            except ValueError:
                result = None
            if not isinstance(result, dict) or result.get("success") is not True:
                raise PurgeError(f"POST {self.endpoint.address}{path}: HTTP {status} but not a success: "
                                 f"{self._errors(result)}", retryable=False, status=status)

    def _errors(self, result: object) -> str:
        if not isinstance(result, dict):
            return "the answer is not Cloudflare JSON"
        errors = result.get("errors") or []
        described = [f"{error.get('code')}: {error.get('message')}"
                     for error in errors if isinstance(error, dict)]
        return scrub("; ".join(described) or "no errors listed", (self._token,))[:300]

    def __repr__(self) -> str:
        return f"<CloudflarePurger zone={self.zone_id} via {self.endpoint.address}>"
