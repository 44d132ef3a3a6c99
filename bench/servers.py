"""Processes under test: a private Redis, gunicorn (the project, the baselines) and nginx, pinned to CPUs."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclasses.dataclass(frozen=True)
class Cpus:
    """Which CPUs the origin and the load generator run on."""

    server: frozenset[int]
    client: frozenset[int]
    pinned: bool

    @property
    def everything(self) -> frozenset[int]:
        return self.server | self.client

    @classmethod
    def split(cls) -> Cpus:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            # One CPU: nothing to separate; results then include the load generator's cost.
            return cls(frozenset(available), frozenset(available), False)
        return cls(frozenset(available[:1]), frozenset(available[1:2]), True)


def cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout:.0f}s")


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (from /proc)."""
    found = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found.append(child)
        found.extend(descendants(child))
    return found


def pinned(command: list[str], cpus: frozenset[int]) -> list[str]:
    """``command`` run under ``taskset`` on ``cpus`` (as it is when there is no taskset, or no CPUs)."""
    if shutil.which("taskset") and cpus:
        return ["taskset", "-c", cpu_list(cpus), *command]
    return command


def pin(pids: list[int], cpus: frozenset[int]) -> None:
    """Move every thread of ``pids`` onto ``cpus`` (threads started later inherit it)."""
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                os.sched_setaffinity(int(task), cpus)
            except OSError:
                pass  # the thread ended meanwhile


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Server:
    """A process started under ``taskset``, its output in a log file, stopped by its own pid."""

    name = "server"

    def __init__(self, command: list[str], *, cpus: frozenset[int], log_dir: Path,
                 env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.cpus = cpus
        self.log_path = log_dir / f"{self.name}-{int(time.time() * 1000)}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(pinned(command, cpus), cwd=cwd, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pin(self, cpus: frozenset[int]) -> None:
        pin([self.pid, *descendants(self.pid)], cpus)

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}:\n"
                               + self.log_tail())

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


class RedisServer(Server):
    name = "redis"

    def __init__(self, *, cpus: frozenset[int], log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        super().__init__([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], cpus=cpus, log_dir=log_dir)
        wait_for_port(self.port, 15)
        self.prioritised = _prioritise(self.pid)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _prioritise(pid: int) -> bool:
    """Let Redis preempt the load generator it shares a CPU with; True if that was allowed.

    Redis stands in for a host of its own. Sharing CPU 1 with wrk at full tilt at equal priority,
    it would answer a GET only when wrk's time slice ends, tens of milliseconds later: past
    the origin's Redis timeouts, which then open the breaker for reasons no deployment has.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, pid, -15)
    except OSError:
        return False
    return True


class Gunicorn(Server):
    """``gunicorn -c gunicorn.conf.py <app>``: the project (``wsgi:app``) or a baseline, same settings."""

    def __init__(self, name: str, app: str, env: dict[str, str], *, cpus: frozenset[int], log_dir: Path,
                 workers: int | None = None, threads: int | None = None, probe: str = "/") -> None:
        self.name = name
        self.port = free_port()
        self.env = dict(env)
        if workers is not None:
            self.env["GUNICORN_WORKERS"] = str(workers)
        if threads is not None:
            self.env["GUNICORN_THREADS"] = str(threads)
        self.workers, self.threads = gunicorn_settings(self.env, cpus)
        super().__init__([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
                          app], cpus=cpus, log_dir=log_dir, env=self.env)
        try:
            self._wait_ready(probe)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        return descendants(self.pid)

    def _wait_ready(self, probe: str) -> None:
        deadline = time.monotonic() + 60
        wait_for_port(self.port, 60)
        # Every worker forked and the app answering (workers import the app after the fork).
        while time.monotonic() < deadline:
            self.check_running()
            if len(self.worker_pids()) >= self.workers:
                try:
                    with urllib.request.urlopen(self.url + probe, timeout=5) as response:
                        response.read()
                    return
                except urllib.error.HTTPError as error:
                    if error.code < 500:
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready within 60s; see {self.log_path}:\n{self.log_tail()}")


def gunicorn_settings(env: dict[str, str], cpus: frozenset[int] = frozenset()) -> tuple[int, int]:
    """(workers, threads) exactly as gunicorn.conf.py computes them in ``env`` on ``cpus`` (its
    worker count follows the CPUs it may run on)."""
    code = "import runpy; c = runpy.run_path('gunicorn.conf.py'); print(c['workers'], c['threads'])"
    out = subprocess.run(pinned([sys.executable, "-c", code], cpus), cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True, timeout=30).stdout.split()
    return int(out[0]), int(out[1])


class Nginx(Server):
    """nginx sending one captured response as a static file with the project's headers: the physical limit."""

    name = "nginx"

    def __init__(self, *, path: str, body: bytes, headers: list[tuple[str, str]], etag: str,
                 cpus: frozenset[int], work_dir: Path, log_dir: Path) -> None:
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if binary is None:
            raise FileNotFoundError("nginx is not installed")
        self.port = free_port()
        prefix = work_dir / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "body").write_bytes(body)
        content_type = "application/octet-stream"
        extra = []
        for name, value in headers:
            lower = name.lower()
            if lower == "content-type":
                content_type = value
            elif lower not in ("content-length", "date", "server", "connection"):
                extra.append(f"add_header {name} {_nginx_quote(value)};")
        config = "\n".join([
            # One process, no privilege drop: one core's worth of nginx reading a file it owns.
            "daemon off;", "master_process off;", "worker_processes 1;",
            f"pid {prefix}/nginx.pid;", f"error_log {prefix}/error.log warn;",
            "events { worker_connections 4096; }",
            "http {",
            "  access_log off; server_tokens off; sendfile on; tcp_nopush on; tcp_nodelay on;",
            "  keepalive_requests 10000000; keepalive_timeout 75s; etag off; gzip off;",
            f"  client_body_temp_path {prefix}/body-tmp; proxy_temp_path {prefix}/proxy-tmp;",
            f"  fastcgi_temp_path {prefix}/fastcgi-tmp; uwsgi_temp_path {prefix}/uwsgi-tmp;",
            f"  scgi_temp_path {prefix}/scgi-tmp;",
            "  types { }",
            f"  server {{ listen 127.0.0.1:{self.port};",
            f"    location = {path} {{",
            f"      default_type {_nginx_quote(content_type)};",
            *(f"      {line}" for line in extra),
            # The same revalidation the project answers: the captured ETag gets a bodiless 304.
            f"      if ($http_if_none_match = {_nginx_quote(etag)}) {{ return 304; }}",
            f"      alias {prefix}/body;",
            "    }",
            "  }",
            "}",
        ])
        conf = prefix / "nginx.conf"
        conf.write_text(config + "\n")
        super().__init__([binary, "-p", str(prefix), "-c", str(conf)], cpus=cpus, log_dir=log_dir)
        try:
            wait_for_port(self.port, 15)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _nginx_quote(value: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"cannot quote {value!r} for nginx")
    return f"'{value}'"


def _process_ticks(root: int) -> int:
    """CPU clock ticks used so far by ``root``, its live descendants and the children it reaped.

    gunicorn replaces a worker after max_requests: the old one's time then moves into the master's
    cutime/cstime as it is reaped, and the new one's counts from its start, so a worker replaced
    during a run neither drops out of the run's figure nor makes it negative.
    """
    ticks = 0
    for pid in (root, *descendants(root)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        if pid == root:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
    return ticks


def _cpu_ticks(cpus: frozenset[int]) -> tuple[int, int]:
    """(busy, total) clock ticks of ``cpus`` since boot."""
    busy = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(value) for value in values[:8]]
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]  # less idle and iowait
    return busy, total


class CpuUsage:
    """How much of its CPUs a server used over a run, and how busy those CPUs were with anything.

    The gap between the two is other processes' work on the server's CPUs: on a shared machine
    it says whether a figure can be trusted.
    """

    def __init__(self, server: Server, cpus: frozenset[int]) -> None:
        self.root = server.pid
        self.cpus = cpus
        self.started = time.monotonic()
        self.process_ticks = _process_ticks(self.root)
        self.cpu_ticks = _cpu_ticks(cpus)

    def finish(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        hertz = os.sysconf("SC_CLK_TCK")
        used = (_process_ticks(self.root) - self.process_ticks) / hertz
        busy, total = _cpu_ticks(self.cpus)
        busy, total = busy - self.cpu_ticks[0], total - self.cpu_ticks[1]
        # The wall time lets figures of several runs be added up (run.py's rounds), weighted by it.
        return {"server_cpu_s": used, "wall_s": round(wall, 3),
                "server_cpu_share": round(used / wall / max(1, len(self.cpus)), 3),
                "server_cpu_busy": round(busy / total, 3) if total else 0.0}
