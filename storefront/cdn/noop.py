"""The purger for no CDN: every purge succeeds at once and sends nothing."""

from __future__ import annotations

from collections.abc import Sequence

from storefront.cdn.base import Purger, checked_tags


class NoPurger(Purger):
    """Used when ``STOREFRONT_CDN_PURGE`` is unset or ``none``; it still rejects malformed tags."""

    name = "none"

    def purge(self, tags: Sequence[str]) -> None:
        checked_tags(tags)
