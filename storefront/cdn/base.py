"""The Purger interface, its error, and the plain-HTTP plumbing the purgers share."""

from __future__ import annotations

import abc
import http.client
import re
import socket
import ssl
from collections.abc import Iterator, Sequence

# A surrogate key as every supported CDN accepts it: printable ASCII without spaces or commas (the
# separators in Surrogate-Key / xkey / Cache-Tag), at most 1024 bytes (Fastly's and Cloudflare's limit).
_TAG = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,1024}")
_MAX_BODY = 64 * 1024
REDACTED = "***"


class PurgeError(Exception):
    """A purge did not happen.

    ``retryable`` says whether the same request may succeed later (network errors, timeouts, 5xx, 429);
    ``retry_after`` is the server's hint in seconds, if it gave one. Messages never hold credentials.
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class Purger(abc.ABC):
    """Purges CDN copies by surrogate key (the tags the origin sends in ``Surrogate-Key``/``Cache-Tag``).

    ``purge`` returns once every tag is purged and raises :class:`PurgeError` otherwise, so the caller
    (:class:`storefront.cdn.queue.PurgeQueue`) can retry. It may send several requests to stay within
    the CDN's per-request limits; purging a tag twice is harmless, so a retry repeats all of them.
    """

    name: str = "purger"

    @abc.abstractmethod
    def purge(self, tags: Sequence[str]) -> None:
        """Purge every object tagged with any of ``tags``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def valid_tag(tag: str) -> bool:
    return isinstance(tag, str) and _TAG.fullmatch(tag) is not None


def checked_tags(tags: Sequence[str]) -> list[str]:
    """``tags`` without duplicates, in order; ValueError (never retried) on a malformed tag."""
    if isinstance(tags, str):
        raise ValueError("tags must be a sequence of strings, not one string")
    unique = list(dict.fromkeys(tags))
    for tag in unique:
        if not valid_tag(tag):
            raise ValueError(f"malformed surrogate key {tag[:80]!r}" if isinstance(tag, str)
                             else "surrogate keys must be strings")
    return unique


def batches(tags: Sequence[str], max_count: int, max_bytes: int,
            separator_bytes: int = 1) -> Iterator[list[str]]:
    """``tags`` in order, in lists of at most ``max_count`` tags whose joined length fits ``max_bytes``."""
    batch: list[str] = []
    size = 0
    for tag in tags:
        extra = len(tag) + (separator_bytes if batch else 0)
        if batch and (len(batch) >= max_count or size + extra > max_bytes):
            yield batch
            batch, size, extra = [], 0, len(tag)
        batch.append(tag)
        size += extra
    if batch:
        yield batch


def check_secret(secret: str, what: str) -> str:
    # A token goes into a header: a control character or space would break the request (and
    # http.client's complaint would quote the header value, secret included).
    if not secret or not re.fullmatch(r"[\x21-\x7e]+", secret):
        raise ValueError(f"{what} is missing or has characters a header cannot carry")
    return secret


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced, for logs and exception messages."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: rare for purge APIs, and the backoff covers it
    return seconds if seconds >= 0 else None


class HttpEndpoint:
    """One host spoken to over HTTP or HTTPS, a fresh connection per request, with a hard timeout.

    Purges are rare and small, so a kept-alive pool buys nothing and would have to survive forks.
    """

    def __init__(self, host: str, port: int | None, *, tls: bool, timeout_s: float,
                 secrets: Sequence[str] = ()) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.timeout_s = timeout_s
        self.secrets = tuple(secrets)
        self._ssl_context = ssl.create_default_context() if tls else None

    @property
    def address(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}" + (f":{self.port}" if self.port else "")

    def request(self, method: str, path: str, headers: dict[str, str],
                body: bytes = b"") -> tuple[int, bytes, dict[str, str]]:
        """Send one request: ``(status, body, headers)`` of any answer, PurgeError (retryable) if none."""
        connection: http.client.HTTPConnection
        if self._ssl_context is not None:
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s,
                                                     context=self._ssl_context)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            connection.request(method, path, body=body, headers={**headers, "Content-Length": str(len(body))})
            response = connection.getresponse()
            data = response.read(_MAX_BODY)
            return response.status, data, {name.lower(): value for name, value in response.getheaders()}
        except (OSError, http.client.HTTPException) as error:
            # socket.timeout is an OSError; neither kind of message carries headers, but scrub anyway.
            reason = "timed out" if isinstance(error, socket.timeout) else type(error).__name__
            detail = scrub(str(error), self.secrets)[:200]
            raise PurgeError(f"{method} {self.address}{path}: no answer ({reason}: {detail})",
                             retryable=True) from None
        finally:
            connection.close()

    def failure(self, method: str, path: str, status: int, body: bytes,
                headers: dict[str, str]) -> PurgeError:
        """The PurgeError for an unwanted status: 5xx, 408 and 429 are worth retrying, other 4xx are not."""
        retryable = status >= 500 or status in (408, 429)
        snippet = scrub(body[:300].decode("utf-8", "replace"), self.secrets).replace("\n", " ")
        return PurgeError(f"{method} {self.address}{path}: HTTP {status}: {snippet}", retryable=retryable,
                          status=status, retry_after=retry_after_seconds(headers.get("retry-after")))
