"""Signed, expiring preview links (itsdangerous): who may see which widget, and whether as a draft."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

PREVIEW_TTL_S = 15 * 60
_SALT = "storefront.preview.v1"


@dataclasses.dataclass(frozen=True)
class PreviewGrant:
    shop: str
    kind: str
    product_id: int | None
    locale: str | None
    draft: bool


class PreviewTokenError(Exception):
    """The token is missing, forged, expired, or for another shop or widget."""


class PreviewSigner:
    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)

    def sign(self, grant: PreviewGrant) -> tuple[str, str]:
        """The token and its expiry as an ISO-8601 UTC timestamp."""
        token = self._serializer.dumps(dataclasses.asdict(grant))
        expires = datetime.fromtimestamp(int(time.time()) + PREVIEW_TTL_S, UTC)
        return token, expires.strftime("%Y-%m-%dT%H:%M:%SZ")

    def verify(self, token: str, shop: str, kind: str) -> PreviewGrant:
        try:
            data = self._serializer.loads(token, max_age=PREVIEW_TTL_S)
        except SignatureExpired:
            raise PreviewTokenError("the preview link has expired") from None
        except BadSignature:
            raise PreviewTokenError("the preview token is not valid") from None
        try:
            grant = PreviewGrant(**data)
        except TypeError:
            raise PreviewTokenError("the preview token is not valid") from None
        if grant.shop != shop or grant.kind != kind:
            raise PreviewTokenError("the preview token is for another widget")
        return grant
