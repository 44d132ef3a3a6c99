"""STOREFRONT_* settings: read and validated once, at start-up, into one frozen object."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

PREFIX = "STOREFRONT_"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message is one line naming it."""


def _str(value: str) -> str:
    return value.strip()


def _bool(value: str) -> bool:
    value = value.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _optional_database_url(value: str) -> str:
    return _database_url(value) if value.strip() else ""


def _sentry_dsn(value: str) -> str:
    value = value.strip()
    if value and urlsplit(value).scheme not in ("http", "https"):
        raise ValueError("must be a Sentry DSN (https://key@host/project)")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def _env(value: str) -> str:
    value = value.strip().lower()
    if value not in ("production", "development"):
        raise ValueError("must be 'production' or 'development'")
    return value


def _database_url(value: str) -> str:
    value = value.strip()
    if not value:
        return ""  # the SQLite file under instance/, filled in by load_settings
    if value.startswith("sqlite:///"):
        if len(value) == len("sqlite:///"):
            raise ValueError("needs a file path after sqlite:///")
        return value
    if value.startswith("mysql://"):
        parts = urlsplit(value)
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError("must look like mysql://user:pass@host:port/db")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value
    raise ValueError("must start with sqlite:/// or mysql://")


def _redis_url(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return value


def _key_prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9:_.-]{1,64}", value):
        raise ValueError("must be 1-64 characters of letters, digits and :_.-")
    return value


def _tokens(value: str) -> tuple[str, ...]:
    tokens = tuple(token.strip() for token in value.split(",") if token.strip())
    for token in tokens:
        if len(token) < 16:
            # Never echo the token itself: error messages end up in logs.
            raise ValueError("every token must be at least 16 characters")
    return tokens


def _secret(value: str) -> str:
    value = value.strip()
    if value and len(value) < 16:
        raise ValueError("must be at least 16 characters")
    return value


def _base_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be an absolute http(s) URL such as https://widgets.example.com")
    return value


def _purge_url(value: str) -> str:
    value = value.strip()
    if value in ("", "none"):
        return ""
    scheme = urlsplit(value).scheme
    # "+http" variants point a purger at a plain-HTTP stand-in of the CDN's API (tests, staging).
    if scheme.removesuffix("+http") not in ("fastly", "cloudflare", "varnish", "none"):
        raise ValueError("must be a fastly://, cloudflare:// or varnish:// purger URL (or none)")
    return value


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    default: str
    doc: str
    production_required: bool = False


# The one list of settings; the README's configuration table is generated from it
# (`flask --app storefront settings-table`).
SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", _env, "production", "`production` or `development` (no tokens or secrets needed, /preview open)."),
    Setting("DATABASE_URL", _database_url, "", "`sqlite:////abs/path.db`, `sqlite:///relative.db` or `mysql://user:pass@host:port/db` (add `?ssl=true` for TLS). Default: `instance/storefront.db`."),
    Setting("DATABASE_REPLICA_URL", _optional_database_url, "", "A read replica (`mysql://...`) for widget reads; admin reads and writes, and reads of a shop just changed, go to the primary."),
    Setting("REPLICA_PIN_S", _int_between(0, 3600), "10", "After a change, how long reads of that shop go to the primary (bounds replica lag for read-your-writes)."),
    Setting("DB_TIMEOUT_S", _int_between(1, 60), "2", "Database connect/read/write timeout in seconds."),
    Setting("REDIS_URL", _redis_url, "", "Shared render cache and invalidation bus. Unset: in-process cache only."),
    Setting("REDIS_CLUSTER", _bool, "false", "Treat `STOREFRONT_REDIS_URL` as a seed node of a Redis Cluster."),
    Setting("REDIS_KEY_PREFIX", _key_prefix, "sf:", "Prefix of every Redis key and channel (lets deployments share a Redis)."),
    Setting("ADMIN_TOKENS", _tokens, "", "Comma-separated bearer tokens for `/admin/v1` (each at least 16 chars).", True),
    Setting("SHOPIFY_API_SECRET", _secret, "", "Shopify app secret: webhook HMAC and app proxy signatures.", True),
    Setting("SECRET_KEY", _secret, "", "Signs preview links.", True),
    Setting("PUBLIC_BASE_URL", _base_url, "", "Absolute base URL of this service as shoppers reach it (through the CDN); the only source of absolute URLs in output. Development default: `http://127.0.0.1:8000`.", True),
    Setting("CDN_PURGE", _purge_url, "", "CDN purger URL (Fastly, Cloudflare, Varnish). Unset: no CDN purge."),
    Setting("SENTRY_DSN", _sentry_dsn, "", "Send errors to Sentry (also read from plain `SENTRY_DSN`). Off when unset."),
    Setting("BROWSER_TTL_S", _int_between(0, 31536000), "60", "`max-age` of widget responses."),
    Setting("EDGE_TTL_S", _int_between(0, 31536000), "86400", "`s-maxage` of widget responses."),
    Setting("STALE_WHILE_REVALIDATE_S", _int_between(0, 31536000), "60", "`stale-while-revalidate` of widget responses."),
    Setting("STALE_IF_ERROR_S", _int_between(0, 31536000), "86400", "`stale-if-error` of widget responses."),
    Setting("NEGATIVE_TTL_S", _int_between(0, 3600), "60", "How long unknown shops/products are remembered (and `max-age` of the 404)."),
    Setting("RENDER_TTL_S", _int_between(1, 31536000), "3600", "Soft expiry of a cached render; after it the render is refreshed."),
    Setting("STALE_TTL_S", _int_between(0, 31536000), "604800", "How long a render is kept past its soft expiry to serve when the database is down."),
    Setting("LOCAL_CACHE_BYTES", _int_between(0, 1 << 34), "67108864", "Byte budget of everything a worker keeps per key: an eighth for lookups, an eighth for hot URLs, three eighths of headroom for allocator slack, the rest (three eighths) for the in-process render tier (0 disables that tier; lookups and hot URLs then keep the default's eighths)."),
    Setting("LOCAL_CACHE_TTL_S", _int_between(0, 3600), "5", "TTL of the in-process tier, and of a worker's lookups and hot URLs while it cannot hear invalidations (Redis unreachable or not configured): the bound on staleness then."),
    Setting("LOCAL_CACHE_MAX_AGE_S", _int_between(0, 86400), "300", "How long a worker keeps lookups and hot URLs while it is subscribed to invalidations (changes then reach it at once). At least `LOCAL_CACHE_TTL_S`."),
    Setting("WARM_MAX_RENDERS", _int_between(0, 100000), "200", "After a publish or rollback, how many of the widget's renders are made again in the background (0: no warming)."),
    Setting("WARM_CONCURRENCY", _int_between(1, 16), "2", "Background renders at a time per worker while warming."),
    Setting("REDIS_CONNECT_TIMEOUT_MS", _int_between(1, 10000), "50", "Redis socket connect timeout."),
    Setting("REDIS_TIMEOUT_MS", _int_between(1, 10000), "50", "Redis socket read/write timeout."),
    Setting("BREAKER_FAILURES", _int_between(1, 1000), "3", "Consecutive Redis failures that open the circuit breaker."),
    Setting("BREAKER_RESET_S", _int_between(1, 3600), "5", "How long the open breaker skips Redis before trying again."),
    Setting("LOCK_TTL_MS", _int_between(100, 60000), "5000", "Lifetime of the one-render-per-key lock."),
    Setting("LOCK_WAIT_MS", _int_between(0, 60000), "1000", "How long a request waits for another worker's render before rendering or serving stale."),
)

DEVELOPMENT_BASE_URL = "http://127.0.0.1:8000"
_BY_NAME = {setting.name: setting for setting in SETTINGS}
_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
DEFAULT_LOCAL_CACHE_BYTES = int(_BY_NAME["LOCAL_CACHE_BYTES"].default)
# Lookups and hot URLs each get 1/IN_PROCESS_SHARE of a worker's in-process budget (see Settings).
IN_PROCESS_SHARE = 8
# Eighths of it kept free for the allocator's slack (see Settings.render_tier_bytes).
HEADROOM_SHARES = 3


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting, parsed. Attribute names are the lower-case setting names."""

    env: str
    database_url: str
    database_replica_url: str
    replica_pin_s: int
    db_timeout_s: int
    redis_url: str
    redis_cluster: bool
    redis_key_prefix: str
    admin_tokens: tuple[str, ...]
    shopify_api_secret: str
    secret_key: str
    public_base_url: str
    cdn_purge: str
    sentry_dsn: str
    browser_ttl_s: int
    edge_ttl_s: int
    stale_while_revalidate_s: int
    stale_if_error_s: int
    negative_ttl_s: int
    render_ttl_s: int
    stale_ttl_s: int
    local_cache_bytes: int
    local_cache_ttl_s: int
    local_cache_max_age_s: int
    warm_max_renders: int
    warm_concurrency: int
    redis_connect_timeout_ms: int
    redis_timeout_ms: int
    breaker_failures: int
    breaker_reset_s: int
    lock_ttl_ms: int
    lock_wait_ms: int

    @property
    def development(self) -> bool:
        return self.env == "development"

    # LOCAL_CACHE_BYTES bounds everything a worker keeps per key, shared out so that together they
    # stay within it: an eighth for lookups (WidgetLookup), an eighth for hot URLs (HotTargets),
    # three eighths left as headroom for what no cache counts and the rest (three eighths) for
    # rendered widgets (the in-process tier). The headroom is what the allocator keeps beyond the
    # live objects (freed chunks between kept bodies in its arenas, after every miss's compressor
    # buffers), SQLite's page cache and the interpreter's own growth: `make bench` measured it at
    # about half the counted bytes after 100,000 distinct keys (RSS grew 20-22.5 MiB on a 16 MiB
    # budget with an eighth of headroom, 14-16 MiB with three). With the tier off (0), lookups and
    # hot URLs keep the default budget's shares: without them every request reads the database.

    @property
    def lookup_cache_bytes(self) -> int:
        """The lookups' byte bound: an eighth of the in-process budget."""
        return (self.local_cache_bytes or DEFAULT_LOCAL_CACHE_BYTES) // IN_PROCESS_SHARE

    @property
    def hot_targets_bytes(self) -> int:
        """The hot URLs' byte bound: an eighth of the in-process budget."""
        return (self.local_cache_bytes or DEFAULT_LOCAL_CACHE_BYTES) // IN_PROCESS_SHARE

    @property
    def render_tier_bytes(self) -> int:
        """The in-process render tier's byte budget: what lookups, hot URLs and the headroom leave
        (0: no tier)."""
        if not self.local_cache_bytes:
            return 0
        headroom = self.local_cache_bytes * HEADROOM_SHARES // IN_PROCESS_SHARE
        return self.local_cache_bytes - self.lookup_cache_bytes - self.hot_targets_bytes - headroom


def load_settings(
    environ: Mapping[str, str] | None, overrides: Mapping[str, Any] | None, instance_path: str
) -> Settings:
    """Defaults, then ``STOREFRONT_*`` from ``environ``, then ``overrides`` (tests).

    Raises :class:`SettingsError` with one line naming the first bad setting.
    """
    raw: dict[str, str] = {setting.name: setting.default for setting in SETTINGS}
    if (environ or {}).get("SENTRY_DSN"):
        raw["SENTRY_DSN"] = environ["SENTRY_DSN"]  # the name Sentry's own tools use
    for key, value in (environ or {}).items():
        if key.startswith(PREFIX) and key[len(PREFIX):] in _BY_NAME:
            raw[key[len(PREFIX):]] = value
    for key, value in (overrides or {}).items():
        if key not in _BY_NAME or not _KEY.match(key):
            raise SettingsError(f"{PREFIX}{key}: unknown setting")
        raw[key] = ",".join(value) if isinstance(value, (list, tuple)) else str(value)

    parsed: dict[str, Any] = {}
    for setting in SETTINGS:
        try:
            parsed[setting.name.lower()] = setting.parse(raw[setting.name])
        except ValueError as error:
            raise SettingsError(f"{PREFIX}{setting.name} {error}") from None
    if not parsed["database_url"]:
        parsed["database_url"] = "sqlite:///" + os.path.join(instance_path, "storefront.db")

    if not parsed["public_base_url"] and parsed["env"] == "development":
        parsed["public_base_url"] = DEVELOPMENT_BASE_URL
    settings = Settings(**parsed)
    if not settings.development:
        for setting in SETTINGS:
            if setting.production_required and not raw[setting.name].strip():
                raise SettingsError(
                    f"{PREFIX}{setting.name} is required when {PREFIX}ENV=production "
                    f"(set it, or use {PREFIX}ENV=development locally)"
                )
    return settings


def settings_table() -> str:
    """The README's configuration table, in Markdown."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "(unset)"
        required = " Required in production." if setting.production_required else ""
        rows.append(f"| `{PREFIX}{setting.name}` | {default} | {setting.doc}{required} |")
    return "\n".join(rows)
