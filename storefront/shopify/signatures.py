"""Shopify request signatures: the webhook HMAC over the raw body, and the app proxy query signature."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

PROXY_WINDOW_S = 90

_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# Printable ASCII only: anything else cannot have come from Shopify's own URL encoding.
_RAW_QUERY = re.compile(r"[\x21-\x7e]*")


def webhook_hmac(raw_body: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-Sha256`` for ``raw_body``: base64 of HMAC-SHA256 keyed with the app secret."""
    digest = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_webhook(raw_body: bytes, hmac_header: str | None, secret: str) -> bool:
    """True when ``hmac_header`` signs exactly these bytes. A missing or garbled header is False.

    The comparison is on the decoded digests, in constant time, so the header's case of
    base64 padding or whitespace cannot leak timing. With no secret configured nothing verifies.
    """
    if not secret or not hmac_header:
        return False
    try:
        presented = base64.b64decode(hmac_header.strip(), validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text in the header
        return False
    expected = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
    return hmac.compare_digest(presented, expected)


# -- app proxy ---------------------------------------------------------------------------------------


class MalformedQuery(ValueError):
    """The query string cannot be read the way Shopify reads it (bad percent-encoding, non-ASCII)."""


def parse_proxy_query(raw_query: str) -> list[tuple[str, str]]:
    """``a=1&b=%2Fx`` -> ``[("a", "1"), ("b", "/x")]``, decoded the way Shopify (Rack) decodes it.

    ``+`` is a space, ``%XX`` sequences are UTF-8, empty pieces are skipped and a name without
    ``=`` has the empty value. Order and repeats are kept; the caller decides about them.
    """
    if not _RAW_QUERY.fullmatch(raw_query):
        raise MalformedQuery("the query string holds characters that are not printable ASCII")
    pairs = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        try:
            pairs.append((unquote_plus(name, errors="strict"), unquote_plus(value, errors="strict")))
        except UnicodeDecodeError:
            raise MalformedQuery("a percent-encoded sequence is not UTF-8") from None
    return pairs


def app_proxy_message(pairs: Iterable[tuple[str, str]]) -> str:
    """The text Shopify signs: each ``name=value`` (repeats joined by ``,`` in order of appearance),
    ``signature`` left out, sorted as whole strings, then concatenated with no separator."""
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if name != "signature":
            values.setdefault(name, []).append(value)
    # Shopify sorts the joined "name=value" strings, not the names: "a-b=" sorts before "a=".
    return "".join(sorted(f"{name}={','.join(joined)}" for name, joined in values.items()))


def app_proxy_signature(pairs: Iterable[tuple[str, str]], secret: str) -> str:
    """Hex HMAC-SHA256 of :func:`app_proxy_message` keyed with the app secret."""
    message = app_proxy_message(pairs).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


@dataclasses.dataclass(frozen=True)
class ProxyVerification:
    """The verdict on one app proxy request; true when valid. ``reason`` says why not (for logs)."""

    valid: bool
    reason: str
    # The decoded parameters, ``signature`` included, in request order (empty when unreadable).
    pairs: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return self.valid


def verify_app_proxy(raw_query: str, secret: str, now: float,
                     window_s: float = PROXY_WINDOW_S) -> ProxyVerification:
    """Check an app proxy request's ``signature`` and that its ``timestamp`` is within ``window_s``
    of ``now`` (either side: clocks drift). Repeated names are verified as Shopify signs them;
    whether they are acceptable is the endpoint's decision, taken after this one."""
    try:
        pairs = tuple(parse_proxy_query(raw_query))
    except MalformedQuery as error:
        return ProxyVerification(False, str(error))
    if not secret:
        return ProxyVerification(False, "no app secret is configured", pairs)
    signatures = [value for name, value in pairs if name == "signature"]
    if not signatures:
        return ProxyVerification(False, "signature missing", pairs)
    if len(signatures) > 1 or not _HEX_SIGNATURE.fullmatch(signatures[0]):
        return ProxyVerification(False, "signature malformed", pairs)
    expected = app_proxy_signature(pairs, secret)
    if not hmac.compare_digest(expected.encode("ascii"), signatures[0].encode("ascii")):
        return ProxyVerification(False, "signature mismatch", pairs)
    # Checked after the signature, so the timestamp judged is one Shopify actually sent.
    timestamps = [value for name, value in pairs if name == "timestamp"]
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        return ProxyVerification(False, "timestamp missing or malformed", pairs)
    if abs(now - int(timestamps[0])) > window_s:
        return ProxyVerification(False, "timestamp outside the allowed window", pairs)
    return ProxyVerification(True, "", pairs)
