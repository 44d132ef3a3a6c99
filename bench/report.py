"""The benchmark's verdicts and tables: each issue target checked against one run's figures, in Markdown."""

from __future__ import annotations

import statistics
from typing import Any

MIB = 1024 * 1024
SERVERS = (("project", "project"), ("bare_wsgi", "bare WSGI"), ("flask_caching", "Flask-Caching"),
           ("nginx", "nginx static"))


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _compare(project: dict[str, Any] | None, baseline: dict[str, Any] | None
             ) -> tuple[float | None, bool, list[float]]:
    """The project's throughput over the baseline's: the median of the rounds' ratios, whether they
    had to be taken per CPU-second, and the ratio of every round.

    The two ran in interleaved rounds (run.py), a round's two runs seconds apart: each round's
    ratio is under one speed of the drifting server CPU, and the median leaves out a round that
    drift or a neighbour spoiled. A run of one measurement counts as one round.

    Both servers are CPU-bound on one core. When other processes took a share of that core during
    either side's runs (a shared machine), req/s compares what each was given, not what each
    costs: the ratios are then taken from the server CPU each response used, which the others do
    not change.
    """
    if not project or not baseline or not project.get("rps") or not baseline.get("rps"):
        return None, False, []
    rounds = list(zip(project.get("rounds") or [project], baseline.get("rounds") or [baseline], strict=False))
    if _contended(project) or _contended(baseline):
        per_cpu = [theirs["cpu_us_per_response"] / mine["cpu_us_per_response"] for mine, theirs in rounds
                   if mine.get("cpu_us_per_response") and theirs.get("cpu_us_per_response")]
        if len(per_cpu) == len(rounds):
            return round(statistics.median(per_cpu), 3), True, [round(ratio, 3) for ratio in per_cpu]
    per_second = [mine["rps"] / theirs["rps"] if theirs["rps"] else 0.0 for mine, theirs in rounds]
    return round(statistics.median(per_second), 3), False, [round(ratio, 3) for ratio in per_second]


def _target(name: str, wanted: str, value: Any, holds: bool | None, shown: str, why: str = "",
            round_ratios: list[float] | None = None) -> dict[str, Any]:
    verdict = "holds" if holds else ("not measured" if holds is None else "MISSED")
    target = {"name": name, "target": wanted, "value": value, "shown": shown, "holds": holds,
              "verdict": verdict, "why": why}
    if round_ratios is not None:
        target["round_ratios"] = round_ratios
    return target


def _ratio_target(name: str, wanted: str, least: float, project: dict[str, Any] | None,
                  baseline: dict[str, Any] | None, why: str) -> dict[str, Any]:
    """A target on the project's ratio to a baseline (at ``least``): the median of the rounds, and
    their range beside it."""
    ratio, per_cpu, rounds = _compare(project, baseline)
    target = _target(name, wanted, ratio, None if ratio is None else ratio >= least,
                     _shown_ratio(ratio, per_cpu, rounds), why, rounds)
    target["per_cpu_second"] = per_cpu
    return target


def _shown_ratio(ratio: float | None, per_cpu: bool, rounds: list[float]) -> str:
    """A ratio from ``_compare`` as the table shows it: "2.10x (rounds 1.90-2.30)"."""
    if not ratio:
        return "-"
    shown = f"{ratio:.2f}x" + (" per CPU-s" if per_cpu else "")
    if len(rounds) > 1:
        shown += f" (rounds {min(rounds):.2f}-{max(rounds):.2f})"
    return shown


def _reference(name: str, results: dict[str, Any], section: str, mine: str, theirs: str
               ) -> dict[str, Any] | None:
    """A ratio measured in a target's rounds that is not a target itself (``mine`` over ``theirs``
    in ``section``), taken as the target's is; None when either side did not run."""
    ratio, per_cpu, rounds = _compare(_get(results, section, mine), _get(results, section, theirs))
    if ratio is None:
        return None
    return {"name": name, "value": ratio, "shown": _shown_ratio(ratio, per_cpu, rounds),
            "round_ratios": rounds, "per_cpu_second": per_cpu}


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the benchmark issue, from the figures of this one run."""
    targets = []

    for section, name in (("hot", "hot in-process hit vs bare WSGI"),
                          ("revalidate", "304 revalidation vs bare WSGI")):
        target = _ratio_target(name, ">= 0.90x", 0.90, _get(results, section, "project"),
                               _get(results, section, "bare_wsgi"), _per_request_gap(results, section))
        # The same project with gunicorn's shortcut for in-process hits off, in the same rounds.
        wsgi_only = _reference(f"{name}, every request through WSGI", results, section, "project_wsgi_only",
                               "bare_wsgi")
        if wsgi_only:
            target["wsgi_only"] = wsgi_only
        targets.append(target)
    cached = _get(results, "zipf", "project_keys_cached")
    keys = _get(results, "zipf", "keys")
    why = "" if not keys or cached is None or cached >= keys else (
        f"only {cached:,} of {keys:,} keys were cached before the run: it includes misses")
    # The bare callable with one Redis GET per response against Flask-Caching, in the Zipf rounds
    # both ran in: the most the shared-tier ratio of any app making that GET can reach.
    ceiling = _reference("Zipf ceiling: bare callable + one Redis GET vs Flask-Caching", results, "zipf",
                         "bare_redis_get", "flask_caching")
    why = "; ".join(part for part in (why, _shared_tier_gap(results, ceiling)) if part)
    zipf = _ratio_target("Zipf shared-tier hits vs Flask-Caching", ">= 2.5x", 2.5,
                         _get(results, "zipf", "project_shared_only"), _get(results, "zipf", "flask_caching"),
                         why)
    if ceiling:
        zipf["ceiling"] = ceiling
    targets.append(zipf)

    mysql_p50 = _get(results, "cold", "mysql", "client_ms", "p50")
    render_p50 = _get(results, "cold", "mysql", "server_timing_render_ms", "p50")
    why = ""
    if mysql_p50 is not None and render_p50 is not None:
        why = (f"render (Server-Timing) p50 {render_p50:.1f} ms; the other {mysql_p50 - render_p50:.1f} ms "
               "are the lookups, compression, the Redis lock and writes, and HTTP")
    targets.append(_target("cold miss on MySQL, p50 at the origin", "<= 5 ms", mysql_p50,
                           None if mysql_p50 is None else mysql_p50 <= 5.0,
                           "-" if mysql_p50 is None else f"{mysql_p50:.1f} ms", why))

    renders = _get(results, "purge", "renders")
    ok = _get(results, "purge", "all_ok")
    why = "" if ok or renders is None else "not every response was a 200 with the same ETag"
    targets.append(_target("purged hot key, 200 concurrent requests", "exactly 1 render", renders,
                           None if renders is None else (renders == 1 and bool(ok)),
                           "-" if renders is None else f"{renders:g} render(s)", why))

    memory = results.get("memory") or {}
    growth = memory.get("max_growth_bytes")
    budget = memory.get("budget_bytes")
    exercised = memory.get("budget_exercised")
    holds = None
    why = ""
    if growth is not None and budget:
        holds = growth <= budget * 1.2 and bool(exercised)
        if not exercised:
            why = "the sweep did not push twice the budget through each worker: the bound was not exercised"
        keys_per_worker = memory.get("keys_reached", 0) / max(1, len(memory.get("workers") or []))
        if not holds and keys_per_worker and memory.get("estimated_entry_bytes"):
            per_key = memory["mean_growth_bytes"] / keys_per_worker
            why = (why + "; " if why else "") + (
                f"each worker grew {per_key / 1024:.0f} KiB per distinct key it answered, against about "
                f"{memory['estimated_entry_bytes'] / 1024:.0f} KiB per cached render: state besides the tier "
                "grows with the keys")
        if memory.get("keys_reached", 0) < memory.get("keys_wanted", 0):
            why = (why + "; " if why else "") + (
                f"reached {memory['keys_reached']:,} of {memory['keys_wanted']:,} distinct keys in the "
                f"{memory.get('time_cap_s')} s cap")
    shown = "-" if growth is None or not budget else f"{growth / MIB:.1f} MiB of {budget / MIB:.0f} MiB"
    targets.append(_target("in-process tier memory per worker", "<= budget + 20%", growth, holds, shown, why))

    size = _get(results, "bytes", "target", "brotli")
    targets.append(_target("subscription widget (three plans), .js + .css, brotli", "<= 6 KiB", size,
                           None if size is None else size <= 6 * 1024,
                           "-" if size is None else f"{size:,} B"))
    return targets


def _per_request_gap(results: dict[str, Any], scenario: str) -> str:
    project = _get(results, scenario, "project", "cpu_us_per_response")
    bare = _get(results, scenario, "bare_wsgi", "cpu_us_per_response")
    if not project or not bare:
        return ""
    return (f"{project:.0f} us of server CPU per response against {bare:.0f} us for the bare callable: "
            f"{project - bare:.0f} us of app code (and Flask, where it runs) per response")


def _shared_tier_gap(results: dict[str, Any], ceiling: dict[str, Any] | None) -> str:
    project, flask, bare = (_get(results, "zipf", name, "cpu_us_per_response")
                            for name in ("project_shared_only", "flask_caching", "bare_redis_get"))
    if not project or not flask or not bare or not ceiling:
        return ""
    return (f"{project:.0f} us of server CPU per response against {flask:.0f} us for Flask-Caching and "
            f"{bare:.0f} us for a bare callable that only makes one Redis GET per response, which reaches "
            f"{ceiling['shown']} Flask-Caching's req/s in the same rounds: the target asks 2.5x of an app "
            "with routing, validation, decoding, headers, logs and metrics on top of that GET")


def _contended(run: dict[str, Any]) -> bool:
    """Other processes took more than a tenth of the server's CPU during the run."""
    return run.get("server_cpu_busy", 0) - run.get("server_cpu_share", 0) > 0.10


def _rps(run: dict[str, Any] | None) -> str:
    if not run:
        return "-"
    mark = " †" if _contended(run) else ""
    return f"{run['rps']:,.0f} ({run['latency_ms']['p99']:.1f}){mark}"


def _cold(cold: dict[str, Any] | None) -> str:
    if not cold or not cold.get("client_ms"):
        return "-"
    client, render = cold["client_ms"], cold.get("server_timing_render_ms") or {}
    text = f"{client['p50']:.1f} / {client['p90']:.1f} / {client['p99']:.1f}"
    if render:
        text += f" (render {render['p50']:.1f} / {render['p90']:.1f} / {render['p99']:.1f})"
    return text


def main_table(results: dict[str, Any], targets: list[dict[str, Any]]) -> str:
    by_name = {target["name"]: target for target in targets}

    def verdict(name: str) -> tuple[str, str]:
        target = by_name[name]
        return target["target"], f"{target['shown']}: **{target['verdict']}**"

    rows = ["| scenario | measure | " + " | ".join(label for _, label in SERVERS) + " | target | result |",
            "|---|---|" + "---|" * len(SERVERS) + "---|---|"]

    def row(scenario: str, measure: str, cells: list[str], target: tuple[str, str] = ("", "")) -> None:
        rows.append(f"| {scenario} | {measure} | " + " | ".join(cells) + f" | {target[0]} | {target[1]} |")

    def throughput(section: str) -> list[str]:
        return [_rps(_get(results, section, key)) for key, _ in SERVERS]

    row("one hot key (in-process hit)", "req/s (p99 ms)", throughput("hot"),
        verdict("hot in-process hit vs bare WSGI"))
    row("If-None-Match revalidation (304)", "req/s (p99 ms)", throughput("revalidate"),
        verdict("304 revalidation vs bare WSGI"))
    for section, label, name in (("hot", "one hot key", "hot in-process hit vs bare WSGI"),
                                 ("revalidate", "304", "304 revalidation vs bare WSGI")):
        wsgi_only = by_name[name].get("wsgi_only")
        if wsgi_only:
            row(f"{label}, every request through WSGI (`GUNICORN_HOT_ANSWERS_BEFORE_WSGI=0`)",
                "req/s (p99 ms)",
                [_rps(_get(results, section, "project_wsgi_only")), _rps(_get(results, section, "bare_wsgi")),
                 "-", "-"],
                ("", f"vs bare WSGI: {wsgi_only['shown']} (not a target)"))
    zipf_keys = _get(results, "zipf", "keys")
    zipf = f"Zipf over {zipf_keys:,} product keys" if zipf_keys else "Zipf over product keys"
    flask_zipf = _rps(_get(results, "zipf", "flask_caching"))
    row(f"{zipf}, in-process tier off (shared-tier hits)", "req/s (p99 ms)",
        [_rps(_get(results, "zipf", "project_shared_only")), "-", flask_zipf, "-"],
        verdict("Zipf shared-tier hits vs Flask-Caching"))
    ceiling = by_name["Zipf shared-tier hits vs Flask-Caching"].get("ceiling")
    row(f"{zipf}, ceiling: bare WSGI callable + one Redis GET per response", "req/s (p99 ms)",
        ["-", _rps(_get(results, "zipf", "bare_redis_get")), flask_zipf, "-"],
        ("", f"vs Flask-Caching: {ceiling['shown']} (not a target)" if ceiling else ""))
    row(f"{zipf}, as configured (both tiers)", "req/s (p99 ms)",
        [_rps(_get(results, "zipf", "project")), "-", flask_zipf, "-"])
    row("cold miss, SQLite", "p50 / p90 / p99 ms", [_cold(_get(results, "cold", "sqlite")), "-", "-", "-"])
    row("cold miss, MySQL", "p50 / p90 / p99 ms", [_cold(_get(results, "cold", "mysql")), "-", "-", "-"],
        verdict("cold miss on MySQL, p50 at the origin"))
    purge = results.get("purge") or {}
    row(f"purged hot key, {purge.get('concurrency', 200)} concurrent requests", "renders",
        [f"{purge['renders']:g}" if "renders" in purge else "-", "-", "-", "-"],
        verdict("purged hot key, 200 concurrent requests"))
    memory = results.get("memory") or {}
    reached = memory.get("keys_reached")
    growth = memory.get("max_growth_bytes")
    memory_row = "resident memory per worker" + (f" after {reached:,} distinct keys" if reached else "")
    row(memory_row, "RSS growth, max of workers",
        ["-" if growth is None else f"{growth / MIB:.1f} MiB", "-", "-", "-"],
        verdict("in-process tier memory per worker"))
    size = results.get("bytes") or {}
    row("subscription widget, three-plan product", ".js + .css brotli",
        [f"{size['target']['brotli']:,} B" if size.get("target") else "-", "-", "-", "-"],
        verdict("subscription widget (three plans), .js + .css, brotli"))
    return "\n".join(rows)


def bytes_table(results: dict[str, Any]) -> str:
    report = _get(results, "bytes", "report") or {}
    rows = ["| widget | case | .js raw | .js gzip | .js brotli | .css raw | .css gzip | .css brotli |"
            " .js+.css brotli |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, cases in report.items():
        for case, entry in cases.items():
            js, css, both = entry["js"], entry["css"], entry["js+css"]
            cells = [js["raw"], js["gzip"], js["brotli"], css["raw"], css["gzip"], css["brotli"],
                     both["brotli"]]
            rows.append(f"| {kind} | {case} | " + " | ".join(f"{cell:,}" for cell in cells) + " |")
    return "\n".join(rows)


def notes(results: dict[str, Any], targets: list[dict[str, Any]]) -> list[str]:
    """Facts from this run that explain the table (tier mix, per-response cost, what limited a miss)."""
    lines = []
    meta = results.get("meta") or {}
    if meta:
        pinned = "pinned" if meta.get("pinned") else "NOT pinned: one CPU"
        lines.append(
            f"gunicorn: {meta.get('workers')} workers x {meta.get('threads')} threads "
            f"({meta.get('worker_class', 'gthread')}, gunicorn.conf.py) for the project, the bare callable "
            f"and Flask-Caching alike; server CPU {meta.get('server_cpus')}, "
            f"wrk CPU {meta.get('client_cpus')} ({pinned}); wrk {meta.get('wrk_threads')} threads, "
            f"{meta.get('connections')} connections, {meta.get('duration_s')} s measured per server and "
            f"scenario after {meta.get('warmup_s')} s of warm-up; "
            f"`Accept-Encoding: {meta.get('accept_encoding')}`; {meta.get('redis_where')}.")
    if (meta.get("rounds") or 1) > 1:
        lines.append(
            f"hot key, 304 and Zipf shared-tier: each target ratio is the median of {meta['rounds']} "
            f"interleaved rounds, a round being one {meta.get('round_s'):g} s run of the project and one of "
            "its baseline, in turn first (the server CPU's speed drifts on a shared machine: a round's "
            "runs share it), with the range of the rounds' ratios beside it; the Zipf rounds also run the "
            "ceiling (bare callable + one Redis GET), its ratio to Flask-Caching taken the same way; each "
            "side's req/s is its requests over its seconds in all rounds, its p99 the median of the "
            "rounds' p99.")
    compress = _get(results, "cold", "compress_ms")
    if compress is not None:
        size = _get(results, "meta", "hot_key", "body_bytes")
        lines.append(f"a miss also compresses its render once, gzip -9 and brotli -6 (window sized to the "
                     f"body): the project's "
                     f"`CachedRender.build` takes {compress:.1f} ms for the hot key's script (timed on the "
                     f"load generator's CPU; {size:,} B gzip); `Server-Timing` shows the render alone.")
    for section, label in (("hot", "hot key"), ("zipf", "Zipf as configured"),
                           ("zipf_shared_only", "Zipf, in-process tier off")):
        tiers = _get(results, "tiers", section)
        if tiers:
            mix = ", ".join(f"{name} {share:.1%}" for name, share in tiers.items() if share >= 0.0005)
            lines.append(f"{label}: answered from {mix} (project /metrics, deltas over all its measured "
                         "runs).")
    for section in ("hot", "revalidate", "zipf"):
        for name, run in (results.get(section) or {}).items():
            if isinstance(run, dict) and run.get("redis_errors"):
                lines.append(
                    f"{section} / {name}: {run['redis_errors']:g} Redis calls failed (timeouts under CPU "
                    "saturation); after a few the worker's breaker skips Redis and the worker renders "
                    "itself, which the answering tiers above show as renders.")
    runs = [run for section in ("hot", "revalidate", "zipf") for run in (results.get(section) or {}).values()
            if isinstance(run, dict)]
    if any(_contended(run) for run in runs):
        lines.append("† other processes used more than 10% of the server's CPU during those runs (all "
                     "rounds together): its req/s is low by about that much, so a target ratio with such a "
                     "side is taken per CPU-second, round by round (server CPU per response, "
                     "`cpu_us_per_response` in the JSON).")
    for target in targets:
        if target["why"]:
            lines.append(f"{target['name']}: {target['why']}.")
    for line in results.get("warnings") or []:
        lines.append(f"warning: {line}")
    return lines


def markdown(results: dict[str, Any], targets: list[dict[str, Any]]) -> str:
    parts = [main_table(results, targets), ""]
    parts += [f"- {line}" for line in notes(results, targets)]
    if _get(results, "bytes", "report"):
        parts += ["", bytes_table(results)]
    return "\n".join(parts) + "\n"
