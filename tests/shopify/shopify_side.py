"""What Shopify's servers do, written independently of storefront.shopify: sign webhooks and proxy URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote


def sign_webhook(body: bytes, secret: str) -> str:
    """The X-Shopify-Hmac-Sha256 header Shopify sends with ``body``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def proxy_signature(params: list[tuple[str, str]], secret: str) -> str:
    """Shopify's documented Ruby, transcribed: ``query_hash.collect { |k, v| "#{k}=#{Array(v).join(',')}" }
    .sort.join``, hex HMAC-SHA256; ``params`` are decoded and hold no ``signature``."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    message = "".join(sorted(f"{name}={','.join(values)}" for name, values in grouped.items()))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def encode(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params)


def proxy_query(params: list[tuple[str, str]], secret: str) -> str:
    """The query string Shopify forwards: the shopper's and Shopify's parameters, then the signature."""
    return encode(params + [("signature", proxy_signature(params, secret))])
