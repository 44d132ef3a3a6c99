"""Varnish: xkey purges (``PURGE`` with an ``xkey`` or ``xkey-softpurge`` header) sent to every Varnish."""

from __future__ import annotations

from collections.abc import Sequence

from storefront.cdn.base import HttpEndpoint, PurgeError, Purger, batches, checked_tags

# Varnish refuses request header lines over http_req_hdr_len (8 KiB by default): stay well inside it.
MAX_HEADER_BYTES = 4000
MAX_KEYS = 1000


class VarnishPurger(Purger):
    """``PURGE /`` to each Varnish with the keys in ``xkey-softpurge`` (soft, the default) or ``xkey``.

    The shipped ``deploy/varnish/default.vcl`` accepts both from its ``purgers`` ACL. Soft-purged copies
    stay in grace: that VCL serves them only while the origin cannot answer. Every address must accept
    the purge; a failure on any raises, and the retry repeats the purge everywhere (which is harmless).
    """

    name = "varnish"

    def __init__(self, addresses: Sequence[tuple[str, int]], *, soft: bool = True, tls: bool = False,
                 timeout_s: float = 2.0) -> None:
        if not addresses:
            raise ValueError("at least one Varnish address is needed")
        self.soft = soft
        self.endpoints = [HttpEndpoint(host, port, tls=tls, timeout_s=timeout_s) for host, port in addresses]

    def purge(self, tags: Sequence[str]) -> None:
        header = "xkey-softpurge" if self.soft else "xkey"
        failures: list[PurgeError] = []
        for batch in batches(checked_tags(tags), MAX_KEYS, MAX_HEADER_BYTES):
            for endpoint in self.endpoints:
                try:
                    status, body, headers = endpoint.request("PURGE", "/", {header: " ".join(batch)})
                except PurgeError as error:
                    failures.append(error)
                    continue
                if status != 200:
                    error = endpoint.failure("PURGE", "/", status, body, headers)
                    if status == 405:
                        error = PurgeError(f"{error} (is this host in the VCL's purgers ACL?)",
                                           retryable=False, status=status)
                    failures.append(error)
        if failures:
            # Retry when any failure may pass; the message names every Varnish that failed.
            hints = [error.retry_after for error in failures if error.retry_after is not None]
            raise PurgeError("; ".join(str(error) for error in failures),
                             retryable=any(error.retryable for error in failures),
                             status=failures[0].status, retry_after=max(hints, default=None))

    def __repr__(self) -> str:
        addresses = ",".join(endpoint.address for endpoint in self.endpoints)
        return f"<VarnishPurger {addresses} soft={self.soft}>"
