"""Where one hot response's CPU goes: the project's WSGI app called in-process against simpler apps, profiled.

``.venv/bin/python -m bench.inprocess`` builds the app exactly as gunicorn's workers do (production
settings, SQLite with the demo data, Prometheus in multiprocess mode, JSON request logs to a file),
then calls it with the WSGI environ gunicorn would pass, with no HTTP and no server around it:

- microseconds per response for an in-process hit (200), a revalidation (304), a minimal Flask
  view sending the same bytes and headers, and a bare WSGI callable;
- the hit's cProfile, summed by package (Flask and Werkzeug, logging, Prometheus, storefront...)
  and the functions with the most time of their own.

It complements ``bench.run``: a figure here does not depend on gunicorn, the kernel or the load
generator, so it shows what a change to the app's code buys, per response, within seconds.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SHOP = "demo-coffee.myshopify.com"
PATH = f"/v1/shops/{SHOP}/widgets/subscription.js"
QUERY = "product=7001000000001"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ(headers: dict[str, str]) -> dict[str, Any]:
    """The environ gunicorn's gthread worker builds for ``GET PATH?QUERY`` (keep-alive, no body)."""
    env = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": PATH, "QUERY_STRING": QUERY,
        "RAW_URI": f"{PATH}?{QUERY}", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "bench", "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.errors": sys.stderr,
    }
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(app: WsgiApp, env: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen[:] = [status, headers]

    request = dict(env, **{"wsgi.input": io.BytesIO(b"")})
    result = app(request, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen[0], seen[1], body


def per_call_us(app: WsgiApp, env: dict[str, Any], count: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean time per call, in microseconds."""
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            call(app, env)
        timings.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(timings)


def build_project(work: Path) -> WsgiApp:
    os.environ.update({
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        "STOREFRONT_ENV": "production",
        "STOREFRONT_DATABASE_URL": f"sqlite:///{work}/storefront.db",
        "STOREFRONT_ADMIN_TOKENS": "bench-admin-token-000000",
        "STOREFRONT_SHOPIFY_API_SECRET": "bench-shopify-secret-000",
        "STOREFRONT_SECRET_KEY": "bench-secret-key-0000000",
        "STOREFRONT_PUBLIC_BASE_URL": "https://widgets.example.com",
    })
    os.environ.pop("STOREFRONT_REDIS_URL", None)
    (work / "metrics").mkdir()
    import logging

    from storefront import create_app
    from storefront.demo import seed_demo
    from storefront.web.request_log import JsonLineHandler

    # As under gunicorn: the app's own JSON line handler, on the process's stderr (here a file).
    handler = JsonLineHandler()
    handler.setStream(open(work / "requests.log", "w"))  # noqa: SIM115
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    app = create_app()
    store = app.extensions["storefront"].store
    store.migrate()
    seed_demo(store)
    store.close()
    return app


def minimal_flask(body: bytes, headers: list[tuple[str, str]]) -> WsgiApp:
    from flask import Flask, Response

    app = Flask("minimal")

    @app.get("/v1/shops/<shop>/widgets/<filename>")
    def widget(shop: str, filename: str) -> Response:
        return Response(body, headers=headers)

    return app


def bare_callable(body: bytes, headers: list[tuple[str, str]]) -> WsgiApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", headers)
        return [body]

    return app


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time summed by where the code lives."""
    groups: collections.Counter[str] = collections.Counter()
    total = 0.0
    for (filename, _line, _name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += own
        groups[_package(filename)] += own
    return [(name, own / total) for name, own in groups.most_common()]


def _package(filename: str) -> str:
    path = filename.replace("\\", "/")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/storefront/" in path:
        parts = path.split("/storefront/", 1)[1].split("/")
        return "storefront/" + ("/".join(parts[:2]) if len(parts) > 1 else parts[0])
    if "/bench/" in path:
        return "bench (the calling loop)"
    if filename.startswith("<") or filename == "~":
        return "builtins (C)"
    stem = Path(path)
    return "stdlib/" + (stem.parent.name if stem.stem == "__init__" else stem.stem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="calls per timing round (3000)")
    parser.add_argument("--top", type=int, default=25, help="functions listed from the profile (25)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="storefront-inprocess-") as folder:
        work = Path(folder)
        project = build_project(work)
        hit_env = environ({"Accept-Encoding": "gzip"})
        for _ in range(200):
            status, headers, body = call(project, hit_env)
        if not status.startswith("200"):
            raise SystemExit(f"the hot key answered {status}")
        etag = dict(headers)["ETag"]
        revalidate_env = environ({"Accept-Encoding": "gzip", "If-None-Match": etag})
        figures = {
            "project, in-process hit (200)": per_call_us(project, hit_env, args.count),
            "project, revalidation (304)": per_call_us(project, revalidate_env, args.count),
            "minimal Flask view, same bytes and headers": per_call_us(minimal_flask(body, headers), hit_env,
                                                                       args.count),
            "bare WSGI callable, same bytes and headers": per_call_us(bare_callable(body, headers), hit_env,
                                                                       args.count),
        }
        print("| app (no server, no HTTP) | us per response |\n|---|---:|")
        for name, value in figures.items():
            print(f"| {name} | {value:.0f} |")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.count):
            call(project, hit_env)
        profiler.disable()
        stats = pstats.Stats(profiler)
        print("\nOwn time of the in-process hit, by package:\n\n| where | share |\n|---|---:|")
        for name, share in by_package(stats):
            if share >= 0.005:
                print(f"| {name} | {share:.1%} |")
        print(f"\nFunctions with the most own time ({args.count} hits, cProfile):\n")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
