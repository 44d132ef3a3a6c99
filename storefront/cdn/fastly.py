"""Fastly: soft purge by surrogate key through the batch purge API."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from storefront.cdn.base import HttpEndpoint, PurgeError, Purger, batches, check_secret, checked_tags

API_HOST = "api.fastly.com"
# Fastly's batch purge takes up to 256 keys a request. The header is also kept within 16 KiB, the
# size Fastly allows a Surrogate-Key response header, so no proxy on the way balks at its length.
MAX_KEYS = 256
MAX_HEADER_BYTES = 16 * 1024


class FastlyPurger(Purger):
    """``POST /service/{service_id}/purge`` with ``Surrogate-Key: k1 k2 ...``.

    Soft by default (``Fastly-Soft-Purge: 1``): objects are marked stale instead of evicted, so Fastly
    can still serve them under stale-if-error while the origin is down; with stale-while-revalidate the
    first request after a change may get the old copy while Fastly refetches.
    """

    name = "fastly"

    def __init__(self, token: str, service_id: str, *, soft: bool = True, host: str = API_HOST,
                 port: int | None = None, tls: bool = True, timeout_s: float = 5.0) -> None:
        self._token = check_secret(token, "the Fastly API token")
        if not service_id or not service_id.isalnum():
            raise ValueError("the Fastly service id must be alphanumeric")
        self.service_id = service_id
        self.soft = soft
        self.endpoint = HttpEndpoint(host, port, tls=tls, timeout_s=timeout_s, secrets=(self._token,))

    def purge(self, tags: Sequence[str]) -> None:
        path = f"/service/{quote(self.service_id)}/purge"
        for batch in batches(checked_tags(tags), MAX_KEYS, MAX_HEADER_BYTES):
            headers = {
                "Fastly-Key": self._token,
                "Surrogate-Key": " ".join(batch),
                "Accept": "application/json",
            }
            if self.soft:
                headers["Fastly-Soft-Purge"] = "1"
            status, body, response_headers = self.endpoint.request("POST", path, headers)
            if status != 200:
                raise self.endpoint.failure("POST", path, status, body, response_headers)
            if not body.lstrip().startswith(b"{"):
                raise PurgeError(f"POST {self.endpoint.address}{path}: HTTP 200 without a JSON answer",
                                 retryable=True, status=status)

    def __repr__(self) -> str:
        return f"<FastlyPurger service={self.service_id} soft={self.soft} via {self.endpoint.address}>"
