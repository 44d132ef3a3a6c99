vcl 4.1;
# Storefront's edge cache for Varnish 7 with vmod xkey (varnish-modules). See README.md next to this file.

import std;
import xkey;

# The Storefront origin (gunicorn). EDIT: the address and port the app listens on.
backend storefront {
    .host = "127.0.0.1";
    .port = "8000";
    .connect_timeout = 1s;
    .first_byte_timeout = 15s;
    .between_bytes_timeout = 5s;
    # While the probe fails, copies past their TTL are served for as long as stale-if-error allows.
    .probe = {
        .url = "/healthz";
        .interval = 2s;
        .timeout = 1s;
        .window = 3;
        .threshold = 2;
        .initial = 2;
    }
}

# Who may purge. EDIT: add the network the app servers send purges from, for example
#     "10.0.0.0"/8;
# Anyone else gets 405, as if PURGE did not exist.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    # The X-Edge-* request headers carry this VCL's own state across restarts; a client never sets them.
    if (req.restarts == 0) {
        unset req.http.X-Edge-Cache;
        unset req.http.X-Edge-Stale-Held;
        unset req.http.X-Edge-Allow-Stale;
        unset req.http.X-Edge-Purged;
    }

    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(405, "Method Not Allowed"));
        }
        # The app sends the surrogate keys of what changed; a soft purge keeps the old copy for grace
        # (served only while the origin cannot answer, see vcl_hit).
        if (req.http.xkey-softpurge) {
            set req.http.X-Edge-Purged = xkey.softpurge(req.http.xkey-softpurge);
        } elsif (req.http.xkey) {
            set req.http.X-Edge-Purged = xkey.purge(req.http.xkey);
        } else {
            return (synth(400, "PURGE needs an xkey or xkey-softpurge header"));
        }
        return (synth(200, "Purged " + req.http.X-Edge-Purged));
    }

    # Only the public widget endpoints are cached here; admin, preview, webhooks, proxy and ops go through.
    if (req.url !~ "^/v1/shops/[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com/widgets/(subscription|bundle|loyalty)\.(js|html|json|css)(\?|$)") {
        return (pass);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # The origin answers 400 to a GET with a body; that answer is not cached.
    if (req.http.Content-Length || req.http.Transfer-Encoding) {
        return (pass);
    }
    # The origin's allow-list: product, locale and v, each at most once, literal values. Anything else
    # (unknown, repeated, malformed, percent-encoded, empty) goes to the origin uncached and gets its 400,
    # so junk never creates objects here.
    if (req.url ~ "\?" && req.url !~ "\?(product=[0-9]{1,20}|locale=[a-z]{2}(-[A-Z]{2})?|v=[A-Za-z0-9._-]{1,32})(&(product=[0-9]{1,20}|locale=[a-z]{2}(-[A-Z]{2})?|v=[A-Za-z0-9._-]{1,32}))*$") {
        return (pass);
    }
    if (req.url ~ "[?&]product=.*&product=" || req.url ~ "[?&]locale=.*&locale=" || req.url ~ "[?&]v=.*&v=") {
        return (pass);
    }
    # The output never depends on cookies or credentials: drop them so every shopper shares one copy.
    unset req.http.Cookie;
    unset req.http.Authorization;
    # Only gzip is stored (Varnish asks the origin for gzip and unzips for the rare client without it).
    if (req.http.Accept-Encoding ~ "(?i)\bgzip\b") {
        set req.http.Accept-Encoding = "gzip";
    } else {
        unset req.http.Accept-Encoding;
    }
    # Restarts from vcl_hit and vcl_deliver/vcl_synth: first look for a fresh copy only; if fetching one
    # fails, take the stale copy (req.grace survives a restart, so it is set either way).
    if (req.http.X-Edge-Allow-Stale) {
        set req.grace = 3650d;
    } elsif (req.http.X-Edge-Stale-Held) {
        set req.grace = 0s;
    }
    return (hash);
}

sub vcl_hash {
    # The key is the path plus product and locale, whatever their order. Not the Host (the output never
    # depends on it), and not v: an opaque cache-buster for browsers that never changes the output, so
    # keying on it would only let anyone mint edge objects; purges keep this cache current instead.
    hash_data(regsub(req.url, "\?.*$", ""));
    if (req.url ~ "[?&]product=") {
        hash_data("product=" + regsub(req.url, "^.*[?&]product=([0-9]+).*$", "\1"));
    }
    if (req.url ~ "[?&]locale=") {
        hash_data("locale=" + regsub(req.url, "^.*[?&]locale=([A-Za-z-]+).*$", "\1"));
    }
    return (lookup);
}

sub vcl_hit {
    if (obj.ttl >= 0s) {
        set req.http.X-Edge-Cache = "HIT";
        return (deliver);
    }
    # Past its TTL: naturally expired, or soft-purged by a change. While the origin is sick (or a fresh
    # fetch just failed) any copy within grace is better than an error.
    if (req.http.X-Edge-Allow-Stale || !std.healthy(req.backend_hint)) {
        set req.http.X-Edge-Cache = "STALE";
        return (deliver);
    }
    # With a healthy origin a soft-purged copy is never served (the next request after a change gets the
    # new bytes), and an expired one only within stale-while-revalidate. Otherwise look again for a fresh
    # copy only; if that fetch fails, vcl_synth/vcl_deliver come back here allowing the stale one.
    if (now + obj.ttl < std.time(obj.http.X-Edge-Expires, now) - 2s
        || obj.ttl + std.duration(obj.http.X-Edge-SWR, 0s) < 0s) {
        set req.http.X-Edge-Stale-Held = "1";
        return (restart);
    }
    set req.http.X-Edge-Cache = "STALE";
    return (deliver);
}

sub vcl_miss {
    set req.http.X-Edge-Cache = "MISS";
}

sub vcl_pass {
    set req.http.X-Edge-Cache = "PASS";
}

sub vcl_backend_response {
    if (bereq.uncacheable) {
        return (deliver);
    }
    if (beresp.status >= 500) {
        # Never replace a copy we hold with an error: the client side serves the stale copy instead.
        if (bereq.is_bgfetch || bereq.http.X-Edge-Stale-Held) {
            return (abandon);
        }
        set beresp.ttl = 0s;
        set beresp.grace = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # Set-Cookie, no-store/private and friends: never stored (a short hit-for-miss, as the builtin does).
    call vcl_beresp_cookie;
    call vcl_beresp_control;
    call vcl_beresp_vary;
    if (beresp.status != 200 && beresp.status != 404) {
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # beresp.ttl already honours s-maxage. stale-while-revalidate bounds serving an expired copy while it
    # is refreshed; stale-if-error bounds serving it while the origin fails. Grace covers the longer one.
    set beresp.http.X-Edge-SWR = "0s";
    set beresp.grace = 0s;
    if (beresp.http.Cache-Control ~ "stale-while-revalidate=[0-9]+") {
        set beresp.http.X-Edge-SWR = regsub(beresp.http.Cache-Control, "^.*stale-while-revalidate=([0-9]+).*$", "\1s");
        set beresp.grace = std.duration(beresp.http.X-Edge-SWR, 0s);
    }
    if (beresp.http.Cache-Control ~ "stale-if-error=[0-9]+"
        && std.duration(regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1s"), 0s) > beresp.grace) {
        set beresp.grace = std.duration(regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1s"), 0s);
    }
    # When this copy is due to expire: an earlier expiry seen in vcl_hit means a soft purge.
    set beresp.http.X-Edge-Expires = now + beresp.ttl;
    # Index the copy under the origin's surrogate keys for PURGE (vmod xkey reads the xkey header). A 404
    # carries none: key it by its shop (and product) so creating that shop or product clears it at once.
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    } elsif (!beresp.http.xkey) {
        set beresp.http.xkey = "shop:" + regsub(bereq.url, "^/v1/shops/([^/]+)/.*$", "\1");
        if (bereq.url ~ "[?&]product=") {
            set beresp.http.xkey = beresp.http.xkey + " product:"
                + regsub(bereq.url, "^/v1/shops/([^/]+)/.*$", "\1") + ":"
                + regsub(bereq.url, "^.*[?&]product=([0-9]+).*$", "\1");
        }
    }
    return (deliver);
}

sub vcl_backend_error {
    if (bereq.is_bgfetch || bereq.http.X-Edge-Stale-Held) {
        return (abandon);
    }
    set beresp.http.Content-Type = "application/json";
    set beresp.http.Cache-Control = "no-store";
    set beresp.http.Retry-After = "5";
    set beresp.body = """{"error": "unavailable", "message": "the origin did not answer"}""";
    return (deliver);
}

sub vcl_deliver {
    # A fresh fetch failed while a stale copy is held: go back for the stale copy.
    if (resp.status >= 500 && req.http.X-Edge-Stale-Held && !req.http.X-Edge-Allow-Stale) {
        set req.http.X-Edge-Allow-Stale = "1";
        return (restart);
    }
    set resp.http.X-Edge-Cache = req.http.X-Edge-Cache;
    unset resp.http.xkey;
    unset resp.http.X-Edge-SWR;
    unset resp.http.X-Edge-Expires;
}

sub vcl_synth {
    if (resp.status == 503 && req.http.X-Edge-Stale-Held && !req.http.X-Edge-Allow-Stale) {
        set req.http.X-Edge-Allow-Stale = "1";
        return (restart);
    }
    set resp.http.Cache-Control = "no-store";
    set resp.http.Content-Type = "application/json";
    if (resp.status == 503) {
        set resp.http.Retry-After = "5";
    }
    if (req.method == "PURGE" && resp.status == 200) {
        set resp.http.X-Edge-Purged = req.http.X-Edge-Purged;
    }
    set resp.body = {"{"status": "} + resp.status + {", "message": ""} + resp.reason + {"""} + "}";
    return (deliver);
}
