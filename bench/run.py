"""`make bench`: the project and its baselines under load on pinned CPUs; a Markdown table and a JSON file.

Run from the repository root with the project's virtualenv: ``.venv/bin/python -m bench.run``
(``--help`` lists the knobs; ``--quick`` is a smoke run of about 90 seconds). bench/README.md
says what each scenario measures and why it is set up the way it is.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import catalog, drivers, report
from bench.drivers import Client, metric_sum
from bench.servers import BIN, ROOT, Cpus, CpuUsage, Gunicorn, Nginx, RedisServer, Server, cpu_list, rss_bytes
from storefront.metrics import HotPathMetrics

SHOP = catalog.SHOP
HOT_PATH = f"/v1/shops/{SHOP}/widgets/subscription.js?product={catalog.FIXTURE_ID}"
PRODUCT_PATH = f"/v1/shops/{SHOP}/widgets/subscription.js?product=%s"
PUBLIC_BASE_URL = "https://widgets.example.com"
# Products the Zipf mix and the memory sweep use start at catalog.FIRST_ID; cold misses use their
# own range, so no key they ask for was ever cached.
COLD_FIRST_ID = 8100000000001
# Requests of the hot key on the cold-miss connection before its samples (see cold_scenario).
COLD_WARM_UP = 20
# Other keys of one product for the memory sweep: format and locale (en is the shop's default).
MEMORY_VARIANTS = (("js", ""), ("js", "fr"), ("html", ""), ("html", "fr"), ("json", ""), ("json", "fr"))
# Products per variant rendered before the memory run's first reading (5 workers: a few each).
MEMORY_WARM_UP_KEYS = 40
MIB = 1024 * 1024
MEASURED_CODE = ("storefront", "templates", "wsgi.py", "gunicorn.conf.py", "requirements.txt")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10,
                        help="measured wrk seconds per server and scenario (10)")
    parser.add_argument("--rounds", type=int,
                        help="interleaved rounds of the paired runs behind a target ratio (hot, 304, Zipf "
                        "shared-tier), each --duration / --rounds seconds per server (5; --quick: 3)")
    parser.add_argument("--warmup", type=float, default=2,
                        help="unmeasured wrk seconds per server before its runs (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--workers", type=int, help="gunicorn workers for every gunicorn server "
                        "(default: what gunicorn.conf.py computes)")
    parser.add_argument("--threads", type=int, help="gunicorn threads per worker (default: gunicorn.conf.py)")
    parser.add_argument("--accept-encoding", default="gzip",
                        help="Accept-Encoding of every request (gzip: what a CDN sends to its origin)")
    parser.add_argument("--products", type=int, default=10_000, help="product keys of the Zipf mix (10000)")
    parser.add_argument("--zipf-s", type=float, default=1.0, help="Zipf exponent (1.0)")
    parser.add_argument("--warm-seconds", type=float, default=180,
                        help="time cap for caching every Zipf key before the Zipf runs (180)")
    parser.add_argument("--cold-samples", type=int, default=200, help="cold misses per database (200)")
    parser.add_argument("--burst", type=int, default=200, help="concurrent requests on the purged key (200)")
    parser.add_argument("--memory-keys", type=int, default=100_000, help="distinct keys for the memory run")
    parser.add_argument("--memory-budget-mib", type=int, default=16,
                        help="STOREFRONT_LOCAL_CACHE_BYTES of the memory run, in MiB (16)")
    parser.add_argument("--memory-seconds", type=float, default=90, help="time cap of the memory sweep (90)")
    parser.add_argument("--mysql-url", default=os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
                        help="MySQL/MariaDB of the MySQL cold misses (a database is created, then dropped)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""),
                        help="this Redis (keys under a unique prefix, deleted after) instead of a private "
                        "redis-server on the load generator's CPU")
    parser.add_argument("--skip-mysql", action="store_true", help="no MySQL cold-miss run")
    parser.add_argument("--skip-nginx", action="store_true", help="no nginx baseline")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: small sizes, short runs")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases, logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.products, args.cold_samples = 3, 1, 1000, 60
        args.memory_keys, args.memory_seconds, args.warm_seconds = 6000, 20, 60
    args.rounds = args.rounds or (3 if args.quick else 5)
    round_s = args.duration / args.rounds
    if round_s < 1 or round_s != int(round_s):
        # wrk runs for whole seconds: anything else would measure another total than asked for.
        parser.error(f"--duration / --rounds must be a whole number of seconds, at least 1 "
                     f"({args.duration:g} / {args.rounds} = {round_s:g})")
    return args


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    """One run: servers started and stopped in turn, every figure collected into ``results``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cpus = Cpus.split()
        self.run_id = secrets.token_hex(4)
        self.work = Path(tempfile.mkdtemp(prefix="storefront-bench-"))
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self.sqlite_url = f"sqlite:///{self.work}/storefront.db"
        self.admin_token = secrets.token_urlsafe(24)
        self.headers = {"Accept-Encoding": args.accept_encoding}
        self.wrk_headers = [f"Accept-Encoding: {args.accept_encoding}"]
        self.servers: list[Server] = []
        self.redis: RedisServer | None = None
        self.redis_url = args.redis_url
        self.prefixes: list[str] = []
        self.mysql_database = ""
        self.capture: dict[str, Any] = {}
        self.results: dict[str, Any] = {"hot": {}, "revalidate": {}, "zipf": {}, "cold": {}, "tiers": {},
                                        "warnings": []}

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.results["meta"] = self.meta()
        if not self.cpus.pinned:
            self.warn("fewer than two CPUs: server and load generator share one, figures include wrk's cost")
        self.start_redis()
        self.prepare_sqlite()
        self.hot_scenarios()
        self.shared_tier_scenarios()
        self.nginx_scenarios()
        self.mysql_scenario()
        self.memory_scenario()
        self.bytes_scenario()
        self.results["meta"]["load_after"] = os.getloadavg()[0]
        self.results["elapsed_s"] = round(time.monotonic() - started, 1)
        self.results["targets"] = report.evaluate(self.results)
        return self.results

    def warn(self, message: str) -> None:
        log(f"warning: {message}")
        self.results["warnings"].append(message)

    def meta(self) -> dict[str, Any]:
        args = self.args
        workers, threads = self.gunicorn_shape()
        load = os.getloadavg()[0]
        if load > 0.5:
            self.warn(f"load average {load:.2f} at the start: other processes share these CPUs")
        return {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit": _output(["git", "rev-parse", "--short", "HEAD"]),
            # The code measured: a dirty tree is named file by file (storefront/, wsgi.py, the config).
            "uncommitted_changes": (_output(["git", "status", "--porcelain", "--", *MEASURED_CODE])
                                    or "").splitlines(),
            "cpu": _cpu_model(), "cpus_online": os.cpu_count(), "python": platform.python_version(),
            "gunicorn": _output([str(BIN / "gunicorn"), "--version"]),
            "wrk": (_output(["wrk", "-v"]) or "").split("\n")[0],
            "nginx": _output(["nginx", "-v"]) if shutil.which("nginx") else None,
            "redis": _output(["redis-server", "--version"]) if shutil.which("redis-server") else None,
            "server_cpus": cpu_list(self.cpus.server), "client_cpus": cpu_list(self.cpus.client),
            "pinned": self.cpus.pinned, "workers": workers, "threads": threads,
            "worker_class": "StorefrontThreadWorker",
            "connections": args.connections, "wrk_threads": args.wrk_threads, "duration_s": args.duration,
            "rounds": args.rounds, "round_s": args.duration / args.rounds, "warmup_s": args.warmup,
            "accept_encoding": args.accept_encoding, "zipf_s": args.zipf_s, "quick": args.quick,
            "load_before": load,
        }

    def gunicorn_shape(self) -> tuple[int, int]:
        from bench.servers import gunicorn_settings

        env = self.base_env()
        if self.args.workers:
            env["GUNICORN_WORKERS"] = str(self.args.workers)
        if self.args.threads:
            env["GUNICORN_THREADS"] = str(self.args.threads)
        return gunicorn_settings(env, self.cpus.server)

    # -- environment and servers --------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        # Nothing of the caller's STOREFRONT_* or metrics settings leaks into a server under test.
        return {key: value for key, value in os.environ.items()
                if not key.startswith(("STOREFRONT_", "PROMETHEUS_", "BENCH_"))}

    def metrics_dir(self, name: str) -> str:
        path = self.work / f"metrics-{name}-{len(self.servers)}"
        path.mkdir()
        return str(path)

    def project_env(self, database_url: str, prefix: str, **settings: Any) -> dict[str, str]:
        env = self.base_env()
        env.update({
            "STOREFRONT_ENV": "production",
            "STOREFRONT_DATABASE_URL": database_url,
            "STOREFRONT_REDIS_URL": self.redis_url,
            "STOREFRONT_REDIS_KEY_PREFIX": prefix,
            "STOREFRONT_ADMIN_TOKENS": self.admin_token,
            "STOREFRONT_SHOPIFY_API_SECRET": "bench-" + secrets.token_hex(16),
            "STOREFRONT_SECRET_KEY": "bench-" + secrets.token_hex(16),
            "STOREFRONT_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        })
        env.update({f"STOREFRONT_{name}": str(value) for name, value in settings.items()})
        return env

    def prefix(self, name: str) -> str:
        prefix = f"bench-{self.run_id}-{name}:"
        self.prefixes.append(prefix)
        return prefix

    def gunicorn(self, name: str, app: str, env: dict[str, str], probe: str) -> Gunicorn:
        env = dict(env, PROMETHEUS_MULTIPROC_DIR=self.metrics_dir(name))
        log(f"starting {name} ({app}) on CPU {cpu_list(self.cpus.server)}")
        server = Gunicorn(name, app, env, cpus=self.cpus.server, log_dir=self.logs, workers=self.args.workers,
                          threads=self.args.threads, probe=probe)
        self.servers.append(server)
        return server

    def project(self, name: str, database_url: str, prefix: str, **settings: Any) -> Gunicorn:
        return self.gunicorn(name, "wsgi:app", self.project_env(database_url, prefix, **settings), "/healthz")

    def stop(self, server: Server) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def start_redis(self) -> None:
        if self.redis_url:
            log(f"using Redis at {self.redis_url} (not pinned)")
            self.results["meta"]["redis_where"] = "external, not pinned"
            return
        # Redis stands in for a separate host: on the load generator's CPU, it takes nothing from the
        # origin's (both Redis users, the project and Flask-Caching, are treated alike).
        self.redis = RedisServer(cpus=self.cpus.client, log_dir=self.logs)
        self.servers.append(self.redis)
        self.redis_url = self.redis.url
        self.results["meta"]["redis_where"] = f"private redis-server on CPU {cpu_list(self.cpus.client)}" + (
            ", ahead of wrk (nice -15)" if self.redis.prioritised else "")
        if not self.redis.prioritised:
            self.warn("could not raise redis-server's priority (not root?): it shares its CPU with wrk "
                      "at equal priority, and its replies may come late enough to time out")

    def flask_cli(self, env: dict[str, str], *command: str) -> None:
        subprocess.run([str(BIN / "flask"), "--app", "storefront", *command], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)

    def prepare_sqlite(self) -> None:
        env = self.project_env(self.sqlite_url, "unused:")
        self.flask_cli(env, "init-db")
        self.flask_cli(env, "seed-demo")
        started = time.monotonic()
        memory_products = -(-self.args.memory_keys // len(MEMORY_VARIANTS))
        count = max(self.args.products, memory_products)
        catalog.seed_products(self.sqlite_url, catalog.FIRST_ID, count)
        catalog.seed_products(self.sqlite_url, COLD_FIRST_ID, self.args.cold_samples)
        log(f"SQLite: demo data and {count + self.args.cold_samples:,} bench products in "
            f"{time.monotonic() - started:.0f}s")
        self.results["meta"]["bench_products"] = count

    # -- load ---------------------------------------------------------------------------------------

    def wrk(self, url: str, script: str, *script_args: str, duration: float | None = None) -> drivers.WrkRun:
        return drivers.wrk(url, script=script, args=script_args, headers=self.wrk_headers,
                           duration_s=duration or self.args.duration, connections=self.args.connections,
                           threads=self.args.wrk_threads, cpus=self.cpus.client)

    def measured(self, server: Gunicorn | Nginx, script: str, *script_args: str, path: str = "",
                 tiers: str | None = None) -> dict[str, Any]:
        """One server alone: a warm-up run, then one measured run of --duration seconds."""
        (result,) = self.measure((server,), script, script_args, path=path, tiers=tiers, rounds=1)
        return result

    def measure(self, servers: tuple[Gunicorn | Nginx, ...], script: str, script_args: tuple[str, ...], *,
                path: str, tiers: str | None, rounds: int, keys_per_round: bool = False
                ) -> list[dict[str, Any]]:
        """A warm-up run per server, then ``rounds`` rounds of one run per server, --duration / ``rounds``
        seconds each; for the first server (the project) also the answering tiers from /metrics.

        The server CPU's speed drifts on a shared VM (up to 1.5x within a minute): interleaved short
        runs put both sides of a ratio under the same drift, and the order reverses each round (AB,
        BA, AB...; ABC, CBA... for three) so that of any two servers neither always runs first. Each
        server's figures are over all its rounds (see ``_over_rounds``), with every round's own under
        ``rounds`` when there are several. ``keys_per_round``: the script draws its keys from a
        sequence number (zipf.lua), the round's: every server of a round gets the same keys, and
        each round fresh ones.
        """
        urls = [server.url + path for server in servers]
        if self.args.warmup > 0:
            for url in urls:
                self.wrk(url, script, *script_args, duration=self.args.warmup)
        before = drivers.metrics(servers[0].url) if tiers else None
        seconds = self.args.duration / rounds
        runs: list[list[dict[str, Any]]] = [[] for _ in servers]
        for number in range(1, rounds + 1):
            order = list(range(len(servers)))
            if number % 2 == 0:
                order.reverse()
            round_args = (*script_args, str(number)) if keys_per_round else script_args
            for position, index in enumerate(order):
                figures = self.timed_run(servers[index], urls[index], script, round_args, seconds)
                figures["ran_first"] = position == 0
                runs[index].append(figures)
            if rounds > 1:
                log(f"  round {number}: " + ", ".join(
                    f"{server.name} {server_runs[-1]['rps']:,.0f} req/s"
                    for server, server_runs in zip(servers, runs, strict=True)))
        results = [_over_rounds(server_runs) for server_runs in runs]
        if tiers and before is not None:
            # Workers move their answer and cache-lookup counts to Prometheus each second
            # (storefront/metrics.py): wait for every worker's last batch before reading them.
            time.sleep(HotPathMetrics.FLUSH_S + 0.25)
            after = drivers.metrics(servers[0].url)
            self.results["tiers"][tiers] = _tier_shares(before, after, results[0]["requests"])
            redis_errors = _delta(before, after, "storefront_backend_errors_total", backend="redis")
            results[0]["redis_errors"] = redis_errors
            if redis_errors:
                self.warn(f"{servers[0].name} {script}: {redis_errors:g} Redis errors (timeouts?) during "
                          "its runs")
        for server, result in zip(servers, results, strict=True):
            self.check_run(server, script, result)
        return results

    def timed_run(self, server: Gunicorn | Nginx, url: str, script: str, script_args: tuple[str, ...],
                  seconds: float) -> dict[str, Any]:
        """One measured wrk run: what wrk saw and the server CPU it cost."""
        usage = CpuUsage(server, self.cpus.server)
        run = self.wrk(url, script, *script_args, duration=seconds)
        figures = run.as_json()
        figures.update(usage.finish())
        # Robust to a shared machine: what one response cost the server, whatever share it got.
        figures["cpu_us_per_response"] = round(figures["server_cpu_s"] / max(1, run.requests) * 1e6, 1)
        return figures

    def check_run(self, server: Gunicorn | Nginx, script: str, result: dict[str, Any]) -> None:
        """Warn of wrk errors and of other processes on the server's CPU; log the figures."""
        errors = sum(result["errors"].values())
        if errors:
            self.warn(f"{server.name} {script}: {errors} wrk errors {result['errors']}")
        if self.cpus.pinned and result["server_cpu_busy"] - result["server_cpu_share"] > 0.1:
            self.warn(f"{server.name} {script}: other processes used "
                      f"{result['server_cpu_busy'] - result['server_cpu_share']:.0%} of the server CPU")
        log(f"  {server.name} {script}: {result['rps']:,.0f} req/s, p99 {result['latency_ms']['p99']:.1f} "
            f"ms, {result['bytes_per_response']:,.0f} B/response, server {result['server_cpu_share']:.0%} of "
            f"its CPU (CPU busy {result['server_cpu_busy']:.0%})")

    def sweep(self, server: Gunicorn, paths: Iterator[str], seconds: float) -> dict[str, Any]:
        """Each path once from 8 connections, the server on every CPU (this is setup, not a measurement)."""
        server.pin(self.cpus.everything)
        try:
            return drivers.sweep(server.url, paths, self.headers, threads=8,
                                 deadline=time.monotonic() + seconds, reconnect_every=25)
        finally:
            server.pin(self.cpus.server)

    def zipf_args(self) -> tuple[str, ...]:
        return (PRODUCT_PATH, str(self.args.products), str(self.args.zipf_s), str(catalog.FIRST_ID))

    def zipf_paths(self) -> Iterator[str]:
        return (PRODUCT_PATH % (catalog.FIRST_ID + i) for i in range(self.args.products))

    def warm_zipf(self, server: Gunicorn) -> int:
        """Request every Zipf key once (within the time cap); returns how many were."""
        swept = self.sweep(server, self.zipf_paths(), self.args.warm_seconds)
        log(f"  {server.name}: {swept['requests']:,} Zipf keys cached in {swept['elapsed_s']:.0f}s "
            f"({swept['responses']})")
        if swept["requests"] < self.args.products:
            rate = swept["requests"] / max(swept["elapsed_s"], 0.001)
            self.warn(f"{server.name}: only {swept['requests']:,} of {self.args.products:,} Zipf keys were "
                      f"cached within {self.args.warm_seconds:.0f}s ({rate:.0f} renders/s on both CPUs): "
                      "its Zipf run includes misses")
        if any(not key.startswith("200") for key in swept["responses"]):
            self.warn(f"{server.name}: warming the Zipf keys gave {swept['responses']}")
        return swept["requests"]

    # -- scenarios ----------------------------------------------------------------------------------

    def hot_scenarios(self) -> None:
        """The project on SQLite: hot key and 304 (each in rounds interleaved with the bare callable's),
        purge, the Zipf mix as configured, cold misses."""
        server = self.project("project", self.sqlite_url, self.prefix("sqlite"))
        self.sqlite_prefix = server.env["STOREFRONT_REDIS_KEY_PREFIX"]
        self.results["meta"]["workers"] = len(server.worker_pids())
        self.capture_responses(server)
        # Both up at once, so their runs interleave a few seconds apart: whatever else the machine
        # does, and the drift of its CPU's speed, then weigh on both figures of a ratio alike.
        env = dict(self.base_env(), BENCH_CAPTURE=str(self.capture_path))
        bare = self.gunicorn("bare-wsgi", "bench.baselines.bare_wsgi:app", env, HOT_PATH)
        self.check_same_bytes(bare)
        # The project again with gunicorn's shortcut for in-process hits off (every request through
        # WSGI), in the same rounds: what the app's own WSGI path costs, for the record.
        wsgi_only = self.gunicorn("project-wsgi-only", "wsgi:app", dict(
            self.project_env(self.sqlite_url, self.sqlite_prefix), GUNICORN_HOT_ANSWERS_BEFORE_WSGI="0"),
            "/healthz")
        etag = self.capture["etag"]
        rounds = self.args.rounds
        scenarios = (("hot", "fixed.lua", (), "hot key"),
                     ("revalidate", "revalidate.lua", (etag,), "revalidation (304)"))
        for section, script, script_args, label in scenarios:
            log(f"{label}: the project, the bare WSGI callable and the project through WSGI only, "
                f"{rounds} interleaved rounds")
            results = self.results[section]
            results["project"], results["bare_wsgi"], results["project_wsgi_only"] = self.measure(
                (server, bare, wsgi_only), script, script_args, path=HOT_PATH, tiers=section, rounds=rounds)
        self.stop(wsgi_only)
        self.stop(bare)
        self.results["purge"] = self.purge_scenario(server)
        log(f"Zipf over {self.args.products:,} keys, project as configured (every key cached first)")
        self.results["zipf"]["keys"] = self.args.products
        self.results["zipf"]["project_keys_cached"] = self.warm_zipf(server)
        self.results["zipf"]["project"] = self.measured(server, "zipf.lua", *self.zipf_args(), tiers="zipf")
        log(f"cold misses on SQLite: {self.args.cold_samples} never-requested products")
        self.results["cold"]["sqlite"] = self.cold_scenario(server)
        self.results["cold"]["compress_ms"] = self.compression_ms()
        self.stop(server)

    def capture_responses(self, server: Gunicorn) -> None:
        """The project's 200 and 304 for the hot key: what every baseline must send, byte for byte."""
        client = Client(server.url)
        client.get(HOT_PATH, self.headers)
        ok = client.get(HOT_PATH, self.headers)
        if ok.status != 200 or ok.headers.get("x-cache") != "HIT":
            raise RuntimeError(f"the hot key answered {ok.status} {ok.headers}")
        etag = ok.headers["etag"]
        not_modified = client.get(HOT_PATH, dict(self.headers, **{"If-None-Match": etag}))
        client.close()
        if not_modified.status != 304:
            raise RuntimeError(f"If-None-Match answered {not_modified.status}, not 304")
        hop = ("server", "date", "connection", "keep-alive", "transfer-encoding")
        self.capture = {
            "path": HOT_PATH, "etag": etag,
            "ok": {"headers": [(k, v) for k, v in ok.header_list if k.lower() not in hop],
                   "body": base64.b64encode(ok.body).decode()},
            "not_modified": {"headers": [(k, v) for k, v in not_modified.header_list
                                         if k.lower() not in hop]},
        }
        self.capture_path = self.work / "capture.json"
        self.capture_path.write_text(json.dumps(self.capture))
        self.capture_body = ok.body
        self.results["meta"]["hot_key"] = {"path": HOT_PATH, "status": ok.status, "body_bytes": len(ok.body),
                                           "content_encoding": ok.headers.get("content-encoding", "identity"),
                                           "headers": [k for k, _ in self.capture["ok"]["headers"]]}

    def purge_scenario(self, server: Gunicorn) -> dict[str, Any]:
        log(f"purged hot key under {self.args.burst} concurrent requests")
        client = Client(server.url)
        client.get(HOT_PATH, self.headers)
        before = drivers.metrics(server.url)
        purged = client.request(
            "POST", f"/admin/v1/shops/{SHOP}/purge",
            {"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"},
            json.dumps({"kind": "subscription", "product_id": catalog.FIXTURE_ID}).encode())
        client.close()
        if purged.status != 202:
            raise RuntimeError(f"purge answered {purged.status}: {purged.body[:300]!r}")
        # The other workers drop their in-process copy when the invalidation reaches them (pub/sub).
        time.sleep(0.5)
        result = drivers.burst(server.url, HOT_PATH, self.headers, self.args.burst)
        after = drivers.metrics(server.url)
        result["renders"] = _delta(before, after, "storefront_renders_total")
        result["redis_errors"] = _delta(before, after, "storefront_backend_errors_total", backend="redis")
        result["concurrency"] = self.args.burst
        result["origin_keys_deleted"] = json.loads(purged.body).get("origin_keys_deleted")
        result["all_ok"] = (result["distinct_etags"] == 1
                            and all(key.startswith("200 ") for key in result["responses"]))
        log(f"  {result['renders']:g} render(s); responses {result['responses']}")
        return result

    def cold_scenario(self, server: Gunicorn) -> dict[str, Any]:
        before = drivers.metrics(server.url)
        paths = [PRODUCT_PATH % (COLD_FIRST_ID + i) for i in range(self.args.cold_samples)]
        # A miss of a key never asked for, on a worker that has answered before: its first request
        # (templates compiled, its threads' connections opened) is not a miss's cost. The SQLite
        # server has answered every earlier scenario; the MySQL one is new. Then a pause, so the
        # database's own work after the run's set-up (tables made, rows written) is done too.
        result = drivers.cold_latencies(server.url, paths, self.headers, warm_up=[HOT_PATH] * COLD_WARM_UP,
                                        settle_s=1.0)
        after = drivers.metrics(server.url)
        result["renders"] = _delta(before, after, "storefront_renders_total")
        result["redis_errors"] = _delta(before, after, "storefront_backend_errors_total", backend="redis")
        client, render = result["client_ms"], result["server_timing_render_ms"]
        log(f"  client p50 {client.get('p50')} ms p99 {client.get('p99')} ms; "
            f"render p50 {render.get('p50')} ms; {result['responses']}")
        return result

    def shared_tier_scenarios(self) -> None:
        """Flask-Caching's hot key, then the Zipf mix as shared-tier hits: the project with its
        in-process tier off, Flask-Caching and the ceiling of any app making one Redis GET per
        response (the bare callable plus that GET), all up, in interleaved rounds on the same keys."""
        zipf = self.results["zipf"]
        flask = self.flask_caching_server()
        server = self.project("project-shared-only", self.sqlite_url, self.sqlite_prefix, LOCAL_CACHE_BYTES=0)
        if flask is None:
            log("Zipf, shared-tier hits: the project with its in-process tier off")
            zipf["project_shared_only"] = self.measured(server, "zipf.lua", *self.zipf_args(),
                                                        tiers="zipf_shared_only")
            self.stop(server)
            return
        log("hot key: Flask-Caching")
        self.results["hot"]["flask_caching"] = self.measured(flask, "fixed.lua", path=HOT_PATH)
        zipf["flask_caching_keys_cached"] = self.warm_zipf(flask)
        # The same for the project: Redis holds every key already, but each worker also keeps what it
        # looked up; every key once through this server, as through Flask-Caching, treats both alike.
        zipf["project_shared_only_keys_seen"] = self.warm_zipf(server)
        ceiling = self.bare_redis_get_server(server)
        log(f"Zipf, shared-tier hits: the project with its in-process tier off, Flask-Caching and the bare "
            f"callable with one Redis GET, {self.args.rounds} interleaved rounds")
        # The ceiling in the same rounds as the other two: its ratio to Flask-Caching is under the
        # same drift of the CPU's speed as the target's.
        zipf["project_shared_only"], zipf["flask_caching"], zipf["bare_redis_get"] = self.measure(
            (server, flask, ceiling), "zipf.lua", self.zipf_args(), path="", tiers="zipf_shared_only",
            rounds=self.args.rounds, keys_per_round=True)
        self.stop(ceiling)
        self.stop(flask)
        self.stop(server)

    def bare_redis_get_server(self, project: Gunicorn) -> Gunicorn:
        """The bare callable plus one Redis GET of a value the size of ``project``'s entry for the hot key."""
        import redis

        from storefront.cache.entry import MAGIC
        from storefront.widget_renders import WidgetRenders

        client = Client(project.url)
        client.get(HOT_PATH, self.headers)  # in Redis now, if it had expired since
        client.close()
        prefix = project.env["STOREFRONT_REDIS_KEY_PREFIX"]
        store = redis.Redis.from_url(self.redis_url)
        # The hot key's renders (its lock and last-good pointer live under their own namespaces);
        # only an encoded render, as a hit reads it, has the magic bytes.
        pattern = prefix + WidgetRenders.purge_pattern(SHOP, "subscription", catalog.FIXTURE_ID)
        values = [value for key in store.scan_iter(match=pattern, count=1000)
                  if (value := store.get(key)) and value.startswith(MAGIC)]
        if not values:
            raise RuntimeError(f"no render of the hot key under {pattern!r} in Redis")
        # Copied under a key of the bench's own, with no TTL: the project's entry may expire during
        # the rounds (and is deleted with the run's prefix).
        key = prefix + "bench-ceiling"
        value = max(values, key=len)
        store.set(key, value)
        store.close()
        self.results["zipf"]["bare_redis_get_value_bytes"] = len(value)
        env = dict(self.base_env(), BENCH_CAPTURE=str(self.capture_path), BENCH_REDIS_GET_URL=self.redis_url,
                   BENCH_REDIS_GET_KEY=key)
        server = self.gunicorn("bare-redis-get", "bench.baselines.bare_redis_get:app", env, HOT_PATH)
        self.check_same_bytes(server)
        return server

    def flask_caching_server(self) -> Gunicorn | None:
        try:
            import flask_caching  # noqa: F401 - only checks that bench/requirements.txt is installed
        except ImportError:
            self.warn("Flask-Caching is missing (pip install -r bench/requirements.txt): no such baseline")
            return None
        env = dict(self.base_env(), BENCH_FC_DATABASE_URL=self.sqlite_url, BENCH_FC_REDIS_URL=self.redis_url,
                   BENCH_FC_KEY_PREFIX=self.prefix("flask-caching"), BENCH_FC_PUBLIC_BASE_URL=PUBLIC_BASE_URL)
        server = self.gunicorn("flask-caching", "bench.baselines.flask_caching_app:app", env, HOT_PATH)
        self.check_same_bytes(server)
        return server

    def nginx_scenarios(self) -> None:
        if self.args.skip_nginx:
            return
        log("hot key and revalidation: nginx serving the captured bytes as a static file")
        try:
            server = Nginx(path=urlsplit(HOT_PATH).path, body=self.capture_body,
                           headers=self.capture["ok"]["headers"], etag=self.capture["etag"],
                           cpus=self.cpus.server, work_dir=self.work, log_dir=self.logs)
        except FileNotFoundError:
            self.warn("nginx is not installed: no static-file baseline (apt-get install nginx)")
            return
        self.servers.append(server)
        self.check_same_bytes(server)
        self.results["hot"]["nginx"] = self.measured(server, "fixed.lua", path=HOT_PATH)
        self.results["revalidate"]["nginx"] = self.measured(server, "revalidate.lua", self.capture["etag"],
                                                            path=HOT_PATH)
        self.stop(server)

    def check_same_bytes(self, server: Server) -> None:
        """A baseline must send the project's body and header names, or its figure compares nothing."""
        client = Client(server.url)  # type: ignore[attr-defined]
        client.get(HOT_PATH, self.headers)
        reply = client.get(HOT_PATH, self.headers)
        revalidated = client.get(HOT_PATH, dict(self.headers, **{"If-None-Match": self.capture["etag"]}))
        client.close()
        wanted = {name.lower() for name, _ in self.capture["ok"]["headers"]}
        got = {name.lower() for name, _ in reply.header_list} - {"server", "date", "connection"}
        if reply.body != self.capture_body:
            self.warn(f"{server.name} does not send the project's body ({len(reply.body)} B against "
                      f"{len(self.capture_body)} B)")
        if wanted - got:
            self.warn(f"{server.name} lacks headers the project sends: {sorted(wanted - got)}")
        if server.name != "flask-caching" and revalidated.status != 304:
            self.warn(f"{server.name} answered the revalidation with {revalidated.status}")
        self.results.setdefault("baselines", {})[server.name] = {
            "same_body": reply.body == self.capture_body, "missing_headers": sorted(wanted - got),
            "extra_headers": sorted(got - wanted), "revalidation_status": revalidated.status}

    def mysql_scenario(self) -> None:
        if self.args.skip_mysql:
            return
        try:
            import pymysql
        except ImportError:
            self.warn("PyMySQL is not installed: no MySQL cold misses")
            return
        parts = urlsplit(self.args.mysql_url)
        self.mysql_database = f"bench_{self.run_id}"
        try:
            connection = _mysql(self.args.mysql_url)
        except pymysql.err.OperationalError as error:
            self.warn(f"MySQL at {parts.hostname}:{parts.port} is unreachable ({error.args[-1]}): "
                      "no MySQL cold misses")
            self.mysql_database = ""
            return
        with connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.mysql_database}` CHARACTER SET utf8mb4")
            cursor.execute("SELECT VERSION()")
            self.results["meta"]["mysql"] = cursor.fetchone()[0]
        url = f"{self.args.mysql_url.rstrip('/')}/{self.mysql_database}"
        env = self.project_env(url, "unused:")
        self.flask_cli(env, "init-db")
        self.flask_cli(env, "seed-demo")
        catalog.seed_products(url, COLD_FIRST_ID, self.args.cold_samples)
        log(f"cold misses on MySQL: {self.args.cold_samples} never-requested products")
        server = self.project("project-mysql", url, self.prefix("mysql"))
        self.results["cold"]["mysql"] = self.cold_scenario(server)
        self.stop(server)

    def memory_scenario(self) -> None:
        args = self.args
        budget = args.memory_budget_mib * MIB
        log(f"memory: {args.memory_keys:,} distinct keys (cap {args.memory_seconds:.0f}s), in-process budget "
            f"{args.memory_budget_mib} MiB")
        server = self.project("project-memory", self.sqlite_url, self.sqlite_prefix, LOCAL_CACHE_BYTES=budget)
        # Every worker imported, served and rendered each variant (templates compiled, locale data
        # and compressors loaded) before the first reading: what grows after it grows per key.
        # Fresh connections land on different workers; the warm-up keys are left out of the sweep.
        for _ in range(server.workers * 20):
            client = Client(server.url)
            client.get(HOT_PATH, self.headers)
            client.close()
        for path in self.memory_paths(warm_up=True):
            client = Client(server.url)
            client.get(path, self.headers)
            client.close()
        time.sleep(1)
        workers = server.worker_pids()
        before = {pid: rss_bytes(pid) for pid in workers}
        swept = self.sweep(server, self.memory_paths(), args.memory_seconds)
        time.sleep(1)
        after_workers = server.worker_pids()
        after = {pid: rss_bytes(pid) for pid in after_workers if pid in before}
        if set(after_workers) != set(workers):
            self.warn("a worker restarted during the memory run (GUNICORN_MAX_REQUESTS?): it is left out")
        growth = {pid: after[pid] - before[pid] for pid in after}
        # Every response put one new entry in the tier of the worker that answered it. An entry holds
        # the identity, gzip and brotli bodies; the hot key's sizes scale the gzip bytes we received.
        hot = self.results["meta"]["hot_key"]["body_bytes"]
        entry_per_gzip_byte = self.entry_bytes_per_body_byte()
        pushed_per_worker = swept["body_bytes"] * entry_per_gzip_byte / max(1, len(workers))
        self.results["memory"] = {
            "budget_bytes": budget, "keys_wanted": args.memory_keys, "keys_reached": swept["requests"],
            "time_cap_s": args.memory_seconds, "elapsed_s": swept["elapsed_s"],
            "responses": swept["responses"],
            "workers": [{"pid": pid, "rss_before": before[pid], "rss_after": after[pid],
                         "growth": growth[pid]} for pid in sorted(after)],
            "max_growth_bytes": max(growth.values()) if growth else None,
            "mean_growth_bytes": round(sum(growth.values()) / len(growth)) if growth else None,
            "estimated_entry_bytes_pushed_per_worker": round(pushed_per_worker),
            "estimated_entry_bytes": round(swept["body_bytes"] * entry_per_gzip_byte
                                           / max(1, swept["requests"])),
            "budget_exercised": pushed_per_worker >= 2 * budget,
            "hot_key_body_bytes": hot,
        }
        log(f"  {swept['requests']:,} keys in {swept['elapsed_s']}s; RSS growth per worker (MiB): "
            + ", ".join(f"{value / MIB:.1f}" for value in growth.values()))
        self.stop(server)

    def hot_identity(self) -> bytes:
        """The hot key's uncompressed body, from the captured response."""
        body = base64.b64decode(self.capture["ok"]["body"])
        encoding = self.results["meta"]["hot_key"]["content_encoding"]
        if encoding == "gzip":
            import gzip

            return gzip.decompress(body)
        if encoding == "br":
            import brotli

            return brotli.decompress(body)
        return body

    def entry_bytes_per_body_byte(self) -> float:
        """Bytes a cache entry holds per body byte received, from the hot key's three encodings."""
        from storefront.cache.entry import CachedRender

        entry = CachedRender.build(self.hot_identity(), "application/javascript; charset=utf-8", 1.0, 60)
        encoding = self.results["meta"]["hot_key"]["content_encoding"]
        received = {"gzip": len(entry.gzip), "br": len(entry.br)}.get(encoding, len(entry.identity))
        return (entry.nbytes + 600) / received  # + the tier's per-entry and per-tag overheads

    def compression_ms(self) -> float:
        """What the project's entry building (gzip and brotli, once per render) costs for the hot key.

        Timed here, on the load generator's CPU, with the project's own ``CachedRender.build``:
        the part of a miss that ``Server-Timing`` (the render alone) does not show.
        """
        from storefront.cache.entry import CachedRender

        identity = self.hot_identity()
        timings = []
        for _ in range(7):
            started = time.perf_counter()
            CachedRender.build(identity, "application/javascript; charset=utf-8", 1.0, 60)
            timings.append((time.perf_counter() - started) * 1000)
        return round(sorted(timings)[len(timings) // 2], 2)

    def memory_paths(self, warm_up: bool = False) -> Iterator[str]:
        """The sweep's distinct keys, or (``warm_up``) the few kept apart to warm every worker."""
        count = self.results["meta"]["bench_products"]
        reserved = MEMORY_WARM_UP_KEYS
        products = range(count - reserved, count) if warm_up else range(count - reserved)
        for fmt, locale in MEMORY_VARIANTS:
            suffix = f"&locale={locale}" if locale else ""
            for i in products:
                yield f"/v1/shops/{SHOP}/widgets/subscription.{fmt}?product={catalog.FIRST_ID + i}{suffix}"

    def bytes_scenario(self) -> None:
        from storefront.render.assets import size_report

        sizes = size_report()
        handle = catalog.fixture()["handle"]
        target = (sizes.get("subscription") or {}).get(handle, {}).get("js+css")
        self.results["bytes"] = {"report": sizes, "target_case": f"subscription/{handle}", "target": target}

    # -- cleanup ------------------------------------------------------------------------------------

    def cleanup(self, keep: bool) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        self.servers.clear()
        if self.args.redis_url and self.prefixes:
            with contextlib.suppress(Exception):
                _delete_prefixes(self.args.redis_url, self.prefixes)
        if self.mysql_database:
            with contextlib.suppress(Exception):
                with _mysql(self.args.mysql_url) as connection, connection.cursor() as cursor:
                    cursor.execute(f"DROP DATABASE IF EXISTS `{self.mysql_database}`")
        if keep:
            log(f"work directory kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def _delta(before: dict, after: dict, name: str, **labels: str) -> float:
    return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)


def _over_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's figures over all its measured runs, in the shape of one run's, plus ``rounds``.

    Throughput, bytes and CPU per response are totals over totals; the CPU shares are weighted by
    each run's wall time. wrk's latency histograms do not add up across runs: each percentile is the
    median of the runs' (p99: the median of the rounds' p99), the mean is weighted by requests and
    the max is the largest.
    """
    requests = sum(run["requests"] for run in runs)
    seconds = sum(run["duration_s"] for run in runs)
    wall = sum(run["wall_s"] for run in runs) or 1.0
    errors: collections.Counter[str] = collections.Counter()
    for run in runs:
        errors.update(run["errors"])
    latency = {key: round(statistics.median(run["latency_ms"][key] for run in runs), 3)
               for key in ("p50", "p90", "p99")}
    latency["mean"] = round(sum(run["latency_ms"]["mean"] * run["requests"] for run in runs)
                            / max(1, requests), 3)
    latency["max"] = max(run["latency_ms"]["max"] for run in runs)
    result = {
        "rps": round(requests / seconds, 1) if seconds else 0.0, "requests": requests,
        "duration_s": round(seconds, 2),
        "bytes_per_response": round(sum(run["bytes_per_response"] * run["requests"] for run in runs)
                                    / max(1, requests), 1),
        "errors": {name: errors[name] for name in runs[0]["errors"]}, "latency_ms": latency,
        "connections": runs[0]["connections"], "threads": runs[0]["threads"],
        "server_cpu_share": round(sum(run["server_cpu_share"] * run["wall_s"] for run in runs) / wall, 3),
        "server_cpu_busy": round(sum(run["server_cpu_busy"] * run["wall_s"] for run in runs) / wall, 3),
        "cpu_us_per_response": round(sum(run["server_cpu_s"] for run in runs) / max(1, requests) * 1e6, 1),
    }
    if len(runs) > 1:
        # Connections and threads are the same in every round: said once, above.
        result["rounds"] = [{key: value for key, value in run.items()
                             if key not in ("connections", "threads")} for run in runs]
    return result


def _tier_shares(before: dict, after: dict, requests: int) -> dict[str, float]:
    """Where the project's answers came from during its measured runs, as shares of the requests wrk sent."""
    if not requests:
        return {}
    counts = {
        "in-process": _delta(before, after, "storefront_cache_requests_total", tier="local", result="hit"),
        "Redis": _delta(before, after, "storefront_cache_requests_total", tier="redis", result="hit"),
        "another thread's render": _delta(before, after, "storefront_cache_requests_total", tier="wait",
                                          result="hit"),
        "a render": _delta(before, after, "storefront_renders_total"),
    }
    # Requests still in flight when a wrk run stopped were counted by the app but not by wrk.
    total = max(requests, sum(counts.values()))
    return {name: round(count / total, 4) for name, count in counts.items() if count}


def _delete_prefixes(url: str, prefixes: list[str]) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for prefix in prefixes:
        batch = []
        for key in client.scan_iter(match=prefix.replace("*", r"\*") + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)


def _mysql(url: str) -> Any:
    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                           user=parts.username or "root", password=parts.password or "", connect_timeout=3)


def _output(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return (done.stdout or done.stderr).strip() or None


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A stopped `make bench` (SIGTERM) still stops its servers and drops its database, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    bench = Bench(args)
    # The runner and its Python clients live on the load generator's CPU, never on the server's.
    os.sched_setaffinity(0, bench.cpus.client)
    try:
        results = bench.run()
    except Exception:
        # Kept for its server logs; an interrupted run (Ctrl-C, SIGTERM) leaves nothing behind.
        bench.cleanup(keep=True)
        raise
    except BaseException:
        bench.cleanup(keep=args.keep)
        raise
    bench.cleanup(keep=args.keep)
    table = report.markdown(results, results["targets"])
    results["markdown"] = table
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table)
    log(f"{results['elapsed_s']:.0f}s in all; every figure in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
