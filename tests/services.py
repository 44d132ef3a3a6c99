"""Real services for tests: URLs from the environment, a skip locally or a failure in CI when absent."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MYSQL_URL = os.environ.get("STOREFRONT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("STOREFRONT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required services must be running)", pytrace=False)
    pytest.skip(reason)


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


def delete_redis_keys(prefix: str, url: str = REDIS_URL) -> None:
    """Delete every key under ``prefix`` (a test's own) from the Redis at ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout}s")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop, pause or fill."""

    def __init__(self, *extra: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.port = free_port()
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def pause(self) -> None:
        self.process.send_signal(19)  # SIGSTOP

    def resume(self) -> None:
        self.process.send_signal(18)  # SIGCONT

    def restart(self) -> None:
        self.stop()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)


class TcpProxy:
    """A TCP forwarder in front of a real server, so a test can cut the network path to it.

    ``stop()`` closes the listener and every open connection: clients see refused/reset
    connections exactly as when the server host goes away.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        import threading

        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def stop(self) -> None:
        self._running = False
        try:
            # close() alone leaves a thread blocked in accept() and the port listening (Linux).
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for sock in self._connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass
            self._connections.clear()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


class GunicornServer:
    """The app as production runs it: `init-db`, `seed-demo`, then gunicorn with gunicorn.conf.py.

    ``app``: another WSGI app under the same settings (no database is made for it; it answers
    /healthz too); ``open_files``: the server's limit of open files (RLIMIT_NOFILE).
    """

    def __init__(self, env: dict[str, str], workers: int = 2, threads: int = 4, seed: bool = True,
                 extra_args: tuple[str, ...] = (), app: str = "wsgi:app",
                 open_files: int | None = None) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("STOREFRONT_", "PROMETHEUS_"))}
        self.env.update(env)
        if app == "wsgi:app":
            flask = os.path.join(VENV_BIN, "flask")
            for command in ("init-db", "seed-demo") if seed else ("init-db",):
                subprocess.run([flask, "--app", "storefront", command], cwd=ROOT, env=self.env, check=True,
                               capture_output=True, timeout=60)
        import resource
        import tempfile

        def limit_open_files() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        # A file, not a pipe: a chatty server must never block on a full pipe nobody reads.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [os.path.join(VENV_BIN, "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--threads", str(threads), *extra_args, app],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit_open_files,
        )
        try:
            wait_for_port(self.port, timeout=30)
            self._wait_until_serving(timeout=60)
        except RuntimeError:
            self.stop()
            raise

    def _wait_until_serving(self, timeout: float) -> None:
        """The master listens at once; workers take a moment to import the app. Wait for them."""
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    connection.close()
                    return
                connection.close()
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"gunicorn on port {self.port} did not answer /healthz within {timeout}s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        """Stop gracefully; returns what gunicorn wrote to stderr."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        output = self.output()
        if not self.log.closed:
            self.log.close()
        return output

    def output(self) -> str:
        """What gunicorn has written so far (all of it, once stopped)."""
        if self.log.closed:
            return ""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")
