"""CDN purging: the Purger interface, one purger per CDN, the off-request PurgeQueue, and the URL factory.

``STOREFRONT_CDN_PURGE`` names the purger as a URL (credentials percent-encoded where needed):

- empty, ``none`` or ``none://``: no CDN, :class:`NoPurger`;
- ``fastly://:TOKEN@SERVICE_ID`` or ``fastly://:TOKEN@api.fastly.com/SERVICE_ID``: the Fastly API,
  soft purge by surrogate key;
- ``cloudflare://:TOKEN@ZONE_ID`` or ``cloudflare://:TOKEN@api.cloudflare.com/ZONE_ID``: the
  Cloudflare API, purge by Cache-Tag;
- ``varnish://HOST[:PORT][,HOST2[:PORT2]...]`` (port 80 by default; ``varnish+http://`` is the same):
  an xkey purge to every Varnish listed, for ``deploy/varnish/default.vcl``;
- ``fastly+http://:TOKEN@HOST:PORT/SERVICE_ID``, ``cloudflare+http://:TOKEN@HOST:PORT/ZONE_ID``: that
  API spoken over plain HTTP to HOST (a local stand-in, for tests).

Options as query parameters: ``soft=1|0`` (Fastly and Varnish; default 1), ``timeout=SECONDS`` (per
request; default 5, Varnish 2), ``max_tags=N`` (Cloudflare tags per request, 1-100; default 100).
The token may also be given as the user name (``fastly://TOKEN@SERVICE_ID``). Error messages and
``repr`` never include it; :func:`redact_url` gives a URL fit for logs.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote

from storefront.cdn.base import REDACTED, PurgeError, Purger
from storefront.cdn.cloudflare import CloudflarePurger
from storefront.cdn.fastly import FastlyPurger
from storefront.cdn.noop import NoPurger
from storefront.cdn.queue import PurgeQueue
from storefront.cdn.varnish import VarnishPurger

__all__ = [
    "CloudflarePurger",
    "FastlyPurger",
    "NoPurger",
    "PurgeError",
    "PurgeQueue",
    "Purger",
    "VarnishPurger",
    "create_purger",
    "redact_url",
]

_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<netloc>[^/?#]*)(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")
_OPTIONS = {
    "fastly": {"soft", "timeout"},
    "cloudflare": {"timeout", "max_tags"},
    "varnish": {"soft", "timeout"},
}
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def redact_url(url: str) -> str:
    """``url`` with any credentials replaced by ``***``, for logs and error messages."""
    match = _URL.match(url.strip())
    if match is None or "@" not in match["netloc"]:
        return url.strip() if match is not None else REDACTED
    host = match["netloc"].rpartition("@")[2]
    rest = url.strip()[match.end("netloc"):]
    return f"{match['scheme']}://:{REDACTED}@{host}{rest}"


def create_purger(url: str) -> Purger:
    """The purger ``url`` names (see the module docs); ValueError naming what is wrong, never the token."""
    url = url.strip()
    if url in ("", "none", "none://"):
        return NoPurger()
    match = _URL.fullmatch(url)
    if match is None:
        raise ValueError(f"CDN purge URL {redact_url(url)} is not a URL such as fastly://:TOKEN@SERVICE_ID")
    scheme, plain_http = match["scheme"], False
    if scheme.endswith("+http"):
        scheme, plain_http = scheme[: -len("+http")], True
    try:
        if scheme == "varnish":
            return _varnish(match)
        if scheme in ("fastly", "cloudflare"):
            return _api(scheme, match, plain_http)
    except ValueError as error:
        raise ValueError(f"CDN purge URL {redact_url(url)}: {error}") from None
    raise ValueError(f"CDN purge URL {redact_url(url)}: unknown scheme; use fastly://, cloudflare:// or varnish://")


def _options(kind: str, query: str | None) -> dict[str, str]:
    options: dict[str, str] = {}
    for name, value in parse_qsl(query or "", keep_blank_values=True, strict_parsing=bool(query)):
        if name not in _OPTIONS[kind]:
            raise ValueError(f"unknown option {name!r}; {kind} takes {', '.join(sorted(_OPTIONS[kind]))}")
        options[name] = value
    return options


def _soft(options: dict[str, str]) -> bool:
    value = options.get("soft", "1").lower()
    if value not in _BOOLEANS:
        raise ValueError("soft must be 1 or 0")
    return _BOOLEANS[value]


def _timeout(options: dict[str, str], default: float) -> float:
    try:
        timeout = float(options.get("timeout", default))
    except ValueError:
        raise ValueError("timeout must be a number of seconds") from None
    if not 0 < timeout <= 60:
        raise ValueError("timeout must be more than 0 and at most 60 seconds")
    return timeout


def _host_port(text: str) -> tuple[str, int | None]:
    match = _HOST_PORT.fullmatch(text)
    if match is None:
        raise ValueError("a host must look like name, name:port or [ipv6]:port")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("a port must be between 1 and 65535")
    return match["host"].strip("[]"), port


def _varnish(match: re.Match[str]) -> VarnishPurger:
    if "@" in match["netloc"]:
        raise ValueError("a Varnish purge URL takes no credentials (Varnish trusts its ACL)")
    if match["path"] not in ("", "/"):
        raise ValueError("a Varnish purge URL takes no path")
    options = _options("varnish", match["query"])
    addresses = []
    for item in match["netloc"].split(","):
        host, port = _host_port(item.strip())
        addresses.append((host, port or 80))
    return VarnishPurger(addresses, soft=_soft(options), timeout_s=_timeout(options, 2.0))


def _api(kind: str, match: re.Match[str], plain_http: bool) -> Purger:
    userinfo, at, location = match["netloc"].rpartition("@")
    if not at:
        raise ValueError("the API token is missing (put it before the @, as :TOKEN@)")
    user, _, password = userinfo.partition(":")
    token = unquote(password or user)
    options = _options(kind, match["query"])
    path = match["path"].strip("/")
    if path:
        # host[:port]/ID: the API host is spelled out (always so for +http).
        host, port = _host_port(location)
        ident = path
    elif plain_http:
        raise ValueError("a +http URL needs the API host and the id: scheme+http://:TOKEN@HOST:PORT/ID")
    else:
        # Only the id: the CDN's public API. Read from the raw text, as ids are case-sensitive.
        host, port, ident = None, None, location
    if not ident:
        raise ValueError("the service or zone id is missing")
    if "/" in ident:
        raise ValueError("the path must be the service or zone id alone")
    timeout = _timeout(options, 5.0)
    if kind == "fastly":
        return FastlyPurger(token, ident, soft=_soft(options), timeout_s=timeout, tls=not plain_http,
                            port=port, **({"host": host} if host else {}))
    try:
        max_tags = int(options.get("max_tags", 100))
    except ValueError:
        raise ValueError("max_tags must be a whole number") from None
    return CloudflarePurger(token, ident, timeout_s=timeout, tls=not plain_http, port=port, max_tags=max_tags,
                            **({"host": host} if host else {}))
