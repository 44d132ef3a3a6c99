"""Real processes for the edge tests: varnishd with the shipped VCL, and the app under gunicorn."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.services import free_port, unavailable, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
VCL = ROOT / "deploy" / "varnish" / "default.vcl"
# The one line of the shipped VCL a user edits to point it at the app.
BACKEND_PORT_LINE = re.compile(r'^(\s*\.port = )"8000";$', re.MULTILINE)
SYSTEM_PACKAGES = "varnish varnish-modules"


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def edge(self) -> str | None:
        """What the VCL says it did: HIT, MISS, STALE or PASS."""
        return self.headers.get("x-edge-cache")

    def json(self) -> Any:
        return json.loads(self.body)


def request(port: int, method: str, target: str, headers: dict[str, str] | None = None,
            body: bytes | None = None, timeout: float = 10.0) -> Response:
    """One request with the target sent byte for byte (no client-side URL normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def varnishd_binary() -> str:
    for candidate in (shutil.which("varnishd"), "/usr/sbin/varnishd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    unavailable(f"varnishd is not installed (apt-get install {SYSTEM_PACKAGES})")
    raise AssertionError("unreachable")


class Varnish:
    """varnishd in the foreground on free ports, running ``deploy/varnish/default.vcl`` as shipped except
    for the backend port. A second listener speaks the PROXY protocol, so a test can purge "from" an
    address outside the ACL."""

    def __init__(self, workdir: Path, backend_port: int, port: int | None = None) -> None:
        self.binary = varnishd_binary()
        self.workdir = workdir
        self.port = port or free_port()
        self.proxy_port = free_port()
        self.admin_port = free_port()
        self.name = str(workdir / "varnish")
        vcl, count = BACKEND_PORT_LINE.subn(rf'\g<1>"{backend_port}";', VCL.read_text())
        assert count == 1, "the shipped VCL must have exactly one backend .port line"
        self.vcl_path = workdir / "storefront.vcl"
        self.vcl_path.write_text(vcl)
        self.log_path = workdir / "varnishd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Varnish:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "-F", "-j", "none",
                 "-a", f"127.0.0.1:{self.port}", "-a", f"127.0.0.1:{self.proxy_port},PROXY",
                 "-T", f"127.0.0.1:{self.admin_port}", "-n", self.name, "-f", str(self.vcl_path),
                 "-s", "malloc,32m",
                 # A small worker pool: this instance serves one test at a time.
                 "-p", "thread_pools=1", "-p", "thread_pool_min=10", "-p", "thread_pool_max=100"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log_path.read_text(errors="replace")
                if "xkey" in output and "VMOD" in output:
                    unavailable(f"vmod xkey is missing (apt-get install {SYSTEM_PACKAGES})")
                raise RuntimeError(f"varnishd exited with {self.process.returncode}:\n{output[-3000:]}")
            try:
                wait_for_port(self.port, timeout=0.2)
                return self
            except RuntimeError:
                continue
        self.stop()
        raise RuntimeError("varnishd did not listen within 60s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def get(self, target: str, headers: dict[str, str] | None = None) -> Response:
        return request(self.port, "GET", target, headers)

    def request(self, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> Response:
        return request(self.port, method, target, headers, body)

    def request_from(self, source_ip: str, method: str, target: str, headers: dict[str, str]) -> Response:
        """A request that Varnish sees as coming from ``source_ip`` (PROXY protocol v1)."""
        with socket.create_connection(("127.0.0.1", self.proxy_port), timeout=10) as sock:
            lines = [f"{method} {target} HTTP/1.1", "Host: edge.test", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            sock.sendall(f"PROXY TCP4 {source_ip} 127.0.0.1 40000 {self.port}\r\n".encode()
                         + ("\r\n".join(lines) + "\r\n\r\n").encode())
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
            headers = {k.lower(): v for k, v in response.getheaders()}
            return Response(response.status, headers, response.read())

    def counter(self, name: str) -> int:
        """A varnishstat counter, e.g. ``MAIN.n_object``."""
        done = subprocess.run(["varnishstat", "-1", "-n", self.name, "-f", name], capture_output=True,
                              text=True, timeout=20, check=True)
        match = re.search(rf"^{re.escape(name)}\s+(\d+)", done.stdout, re.MULTILINE)
        assert match, done.stdout
        return int(match.group(1))

    def purges_received(self) -> list[str]:
        """The key headers of every PURGE this Varnish has received, oldest first (from its log)."""
        done = subprocess.run(["varnishlog", "-d", "-n", self.name, "-q", 'ReqMethod eq "PURGE"',
                               "-i", "ReqHeader"], capture_output=True, text=True, timeout=20, check=True)
        return re.findall(r"ReqHeader\s+xkey(?:-softpurge)?: (.*)$", done.stdout, re.MULTILINE)

    def backend_health(self) -> str:
        """``healthy`` or ``sick``, as the probe on /healthz sees the origin."""
        done = subprocess.run(["varnishadm", "-n", self.name, "backend.list"], capture_output=True, text=True,
                              timeout=20, check=True)
        match = re.search(r"^\S*storefront\s+\S+\s+\S+\s+(healthy|sick)", done.stdout, re.MULTILINE)
        assert match, done.stdout
        return match.group(1)

    def wait_for_health(self, wanted: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.backend_health() != wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"the probe did not call the origin {wanted} within {timeout}s")
            time.sleep(0.2)


class AppOrigin:
    """The real app under gunicorn (2 workers) on SQLite, seeded with the demo shops, purging through
    ``STOREFRONT_CDN_PURGE=varnish://...``: the origin a user puts Varnish in front of."""

    def __init__(self, workdir: Path, edge_port: int, admin_token: str, **settings: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("STOREFRONT_", "GUNICORN_"))}
        self.env.update({
            "STOREFRONT_ENV": "development",
            "STOREFRONT_DATABASE_URL": f"sqlite:///{workdir / 'storefront.db'}",
            "STOREFRONT_ADMIN_TOKENS": admin_token,
            "STOREFRONT_PUBLIC_BASE_URL": f"http://127.0.0.1:{edge_port}",
            "STOREFRONT_CDN_PURGE": f"varnish://127.0.0.1:{edge_port}",
        })
        self.env.update({f"STOREFRONT_{name}": value for name, value in settings.items()})
        self.log_path = workdir / "gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None

    def prepare(self) -> AppOrigin:
        for command in ("init-db", "seed-demo"):
            subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "storefront", command], cwd=ROOT,
                           env=self.env, check=True, capture_output=True, timeout=120)
        return self

    def start(self) -> AppOrigin:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py",
                 "--bind", f"127.0.0.1:{self.port}", "-w", "2", "wsgi:app"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                if request(self.port, "GET", "/healthz", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not answer /healthz within 60s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def kill(self) -> None:
        """Gone at once, as after a crash (a graceful stop waits out kept-alive connections)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def admin(self, method: str, path: str, token: str, payload: Any = None) -> Response:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return request(self.port, method, path, headers, body)
