"""create_purger: every documented STOREFRONT_CDN_PURGE form, and errors that never show the token."""

from __future__ import annotations

import pytest

from storefront.cdn import CloudflarePurger, FastlyPurger, NoPurger, VarnishPurger, create_purger, redact_url
from tests.cdn.conftest import CLOUDFLARE_ZONE, FASTLY_SERVICE, TOKEN, cloudflare_reply, fastly_reply
from tests.cdn.recording_server import RecordingServer


@pytest.mark.parametrize("url", ["", "  ", "none", "none://"])
def test_no_url_means_no_purger(url: str) -> None:
    assert isinstance(create_purger(url), NoPurger)


def test_fastly_forms() -> None:
    short = create_purger(f"fastly://:{TOKEN}@{FASTLY_SERVICE}")
    assert isinstance(short, FastlyPurger)
    # The service id keeps its case (it would not survive a URL library's host lower-casing).
    assert short.service_id == FASTLY_SERVICE and short.soft
    assert short.endpoint.address == "https://api.fastly.com" and short.endpoint.timeout_s == 5.0
    spelled = create_purger(f"fastly://:{TOKEN}@api.fastly.com/{FASTLY_SERVICE}?soft=0&timeout=2.5")
    assert isinstance(spelled, FastlyPurger)
    assert spelled.service_id == FASTLY_SERVICE and not spelled.soft
    assert spelled.endpoint.address == "https://api.fastly.com" and spelled.endpoint.timeout_s == 2.5
    as_user = create_purger(f"fastly://{TOKEN}@{FASTLY_SERVICE}")
    assert isinstance(as_user, FastlyPurger) and as_user._token == TOKEN


def test_cloudflare_forms() -> None:
    short = create_purger(f"cloudflare://:{TOKEN}@{CLOUDFLARE_ZONE}")
    assert isinstance(short, CloudflarePurger)
    assert short.zone_id == CLOUDFLARE_ZONE and short.max_tags == 100
    assert short.endpoint.address == "https://api.cloudflare.com"
    spelled = create_purger(f"cloudflare://:{TOKEN}@api.cloudflare.com/{CLOUDFLARE_ZONE}?max_tags=30")
    assert isinstance(spelled, CloudflarePurger) and spelled.max_tags == 30


def test_varnish_forms() -> None:
    purger = create_purger("varnish://127.0.0.1:6081,cache-2.internal:6081,[::1]?soft=0&timeout=1")
    assert isinstance(purger, VarnishPurger) and not purger.soft
    assert [endpoint.address for endpoint in purger.endpoints] == [
        "http://127.0.0.1:6081", "http://cache-2.internal:6081", "http://[::1]:80"]
    assert all(endpoint.timeout_s == 1.0 for endpoint in purger.endpoints)
    plain = create_purger("varnish+http://10.1.2.3:6081")
    assert isinstance(plain, VarnishPurger) and plain.soft
    assert [endpoint.address for endpoint in plain.endpoints] == ["http://10.1.2.3:6081"]


def test_plain_http_forms_reach_a_local_api() -> None:
    with RecordingServer(fastly_reply) as fastly, RecordingServer(cloudflare_reply) as cloudflare:
        create_purger(f"fastly+http://:{TOKEN}@{fastly.address}/{FASTLY_SERVICE}").purge(["shop:a.myshopify.com"])
        create_purger(f"cloudflare+http://:{TOKEN}@{cloudflare.address}/{CLOUDFLARE_ZONE}").purge(["shop:b"])
        assert [call.path for call in fastly.calls] == [f"/service/{FASTLY_SERVICE}/purge"]
        assert [call.json() for call in cloudflare.calls] == [{"tags": ["shop:b"]}]


def test_a_percent_encoded_token_is_decoded() -> None:
    purger = create_purger(f"cloudflare://:ab%2Fcd%40ef{TOKEN}@{CLOUDFLARE_ZONE}")
    assert isinstance(purger, CloudflarePurger) and purger._token == f"ab/cd@ef{TOKEN}"


@pytest.mark.parametrize(("url", "complaint"), [
    (f"ftp://:{TOKEN}@host", "unknown scheme"),
    ("http://127.0.0.1:6081", "unknown scheme"),
    (f"fastly://{FASTLY_SERVICE}", "token is missing"),
    (f"fastly://:{TOKEN}@", "id is missing"),
    (f"fastly://:{TOKEN}@api.fastly.com", "alphanumeric"),
    (f"fastly://:{TOKEN}@{FASTLY_SERVICE}?soft=maybe", "soft must be"),
    (f"fastly://:{TOKEN}@{FASTLY_SERVICE}?purge_all=1", "unknown option 'purge_all'"),
    (f"fastly://:{TOKEN}@{FASTLY_SERVICE}?timeout=0", "timeout must be"),
    (f"fastly+http://:{TOKEN}@127.0.0.1:1", "needs the API host and the id"),
    (f"cloudflare://:{TOKEN}@{CLOUDFLARE_ZONE}?max_tags=500", "max_tags must be between"),
    (f"cloudflare://:{TOKEN}@api.cloudflare.com/zones/{CLOUDFLARE_ZONE}", "id alone"),
    (f"varnish://:{TOKEN}@127.0.0.1:6081", "no credentials"),
    ("varnish://127.0.0.1:99999", "port must be"),
    ("varnish://127.0.0.1:6081/purge", "no path"),
    (f"{TOKEN} is not a url", "is not a URL"),
])
def test_errors_say_what_is_wrong_without_the_token(url: str, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        create_purger(url)
    assert complaint in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_token_a_header_cannot_carry_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as caught:
        create_purger(f"fastly://:{TOKEN}%0D%0AX-Injected:%201@{FASTLY_SERVICE}")
    assert "header cannot carry" in str(caught.value) and TOKEN not in str(caught.value)


def test_redact_url() -> None:
    assert redact_url(f"fastly://:{TOKEN}@{FASTLY_SERVICE}?soft=0") == f"fastly://:***@{FASTLY_SERVICE}?soft=0"
    assert redact_url(f"cloudflare://{TOKEN}@api.cloudflare.com/Z") == "cloudflare://:***@api.cloudflare.com/Z"
    assert redact_url("varnish://127.0.0.1:6081") == "varnish://127.0.0.1:6081"
    assert redact_url(f"not a url {TOKEN}") == "***"
