"""gunicorn.conf.py's worker loop (serving threads on one epoll) keeps gthread's guarantees.

Real gunicorn with the project's gunicorn.conf.py serving a small app (tests/deploy/loop_app.py),
talked to over raw sockets: silent and idle connections hold no thread and close after keepalive,
pipelined requests, a slow request beside fast ones, more connections than threads, the connection
limit, and a stop that still answers a request arriving on a kept-alive connection.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import GunicornServer

pytestmark = pytest.mark.slow


class LoopServer(GunicornServer):
    """One worker serving tests/deploy/loop_app.py; ``args``: gunicorn's, after the defaults."""

    def __init__(self, *args: str, open_files: int | None = None) -> None:
        super().__init__({}, workers=1, extra_args=args, app="tests.deploy.loop_app:app",
                         open_files=open_files)

    def worker_open_files(self) -> int:
        (worker,) = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return len(os.listdir(f"/proc/{worker}/fd"))


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[LoopServer]:
    marker = request.node.get_closest_marker("gunicorn_args")
    server = LoopServer(*(marker.args if marker else ("--threads", "2", "--keep-alive", "1")))
    yield server
    server.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def request(path: str, close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{connection}\r\n".encode()


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, bytes]:
    """One response off ``sock`` (``buffer`` keeps what was read past it): its head and body."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response; read {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        rest += chunk
    buffer[:] = rest[length:]
    return head, rest[:length]


def get(port: int, path: str) -> bytes:
    with connect(port) as sock:
        sock.sendall(request(path, close=True))
        return read_response(sock, bytearray())[1]


def closed_by_server_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def test_silent_connections_hold_no_thread_and_are_closed_after_keepalive(server: LoopServer) -> None:
    silent = [connect(server.port) for _ in range(6)]  # three times the threads, sending nothing
    started = time.monotonic()
    assert get(server.port, "/echo/through") == b"/echo/through"
    assert time.monotonic() - started < 0.5
    assert all(closed_by_server_within(sock, 5) for sock in silent)
    for sock in silent:
        sock.close()


def test_an_idle_kept_alive_connection_is_closed_after_keepalive(server: LoopServer) -> None:
    with connect(server.port) as sock:
        buffer = bytearray()
        for number in range(3):
            sock.sendall(request(f"/echo/{number}"))
            head, body = read_response(sock, buffer)
            assert b"Connection: keep-alive" in head and body == f"/echo/{number}".encode()
        started = time.monotonic()
        assert not closed_by_server_within(sock, 0.5)  # keepalive is 1 s
        assert closed_by_server_within(sock, 5)
        assert 0.8 < time.monotonic() - started < 4


def test_pipelined_requests_are_answered_in_order(server: LoopServer) -> None:
    with connect(server.port) as sock:
        sock.sendall(b"".join(request(f"/echo/{number}") for number in range(5)))
        buffer = bytearray()
        assert [read_response(sock, buffer)[1] for _ in range(5)] == [f"/echo/{n}".encode() for n in range(5)]


def test_a_slow_request_does_not_hold_back_other_connections(server: LoopServer) -> None:
    slow = connect(server.port)
    slow.sendall(request("/slow/1500"))
    time.sleep(0.1)
    with connect(server.port) as sock:
        buffer = bytearray()
        for number in range(20):
            started = time.monotonic()
            sock.sendall(request(f"/echo/{number}"))
            assert read_response(sock, buffer)[1] == f"/echo/{number}".encode()
            assert time.monotonic() - started < 0.5
    assert read_response(slow, bytearray())[1] == b"/slow/1500"
    slow.close()


@pytest.mark.gunicorn_args("--threads", "4")
def test_more_connections_than_threads_each_get_their_own_answers(server: LoopServer) -> None:
    failures: list[str] = []

    def client(number: int) -> None:
        try:
            with connect(server.port) as sock:
                buffer = bytearray()
                for sequence in range(40):
                    path = f"/echo/{number}-{sequence}"
                    sock.sendall(request(path))
                    if read_response(sock, buffer)[1] != path.encode():
                        failures.append(path)
        except OSError as error:
            failures.append(f"{number}: {error}")

    clients = [threading.Thread(target=client, args=(number,)) for number in range(40)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(60)
    assert failures == []


@pytest.mark.gunicorn_args("--threads", "1", "--worker-connections", "2", "--keep-alive", "1")
def test_at_the_connection_limit_a_new_connection_waits_for_a_free_one(server: LoopServer) -> None:
    first, second = connect(server.port), connect(server.port)
    buffer = bytearray()
    first.sendall(request("/echo/first"))
    assert read_response(first, buffer)[1] == b"/echo/first"
    second.sendall(request("/echo/second"))
    assert read_response(second, bytearray())[1] == b"/echo/second"
    # Two connections open: a third is not taken until one of them closes (the first, idle past
    # its keepalive, or the second, which gthread closes as there is no room for a kept-alive one).
    started = time.monotonic()
    third = connect(server.port)
    third.sendall(request("/echo/third"))
    assert read_response(third, bytearray())[1] == b"/echo/third"
    assert time.monotonic() - started < 5
    for sock in (first, second, third):
        sock.close()


@pytest.mark.gunicorn_args("--threads", "2", "--keep-alive", "5")
def test_a_request_on_a_kept_alive_connection_during_a_stop_is_answered(server: LoopServer) -> None:
    with connect(server.port) as sock:
        buffer = bytearray()
        sock.sendall(request("/echo/before"))
        assert read_response(sock, buffer)[1] == b"/echo/before"
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sock.sendall(request("/echo/during"))
        head, body = read_response(sock, buffer)
        assert body == b"/echo/during" and b"Connection: close" in head
        assert closed_by_server_within(sock, 5)
    assert server.process.wait(10) == 0, server.output()[-2000:]


def test_out_of_file_descriptors_the_worker_keeps_serving_once_some_close() -> None:
    """accept() failing (EMFILE) is logged and retried a second later: no serving thread dies."""
    server = LoopServer("--threads", "2", "--keep-alive", "30", open_files=64)
    try:
        held = [connect(server.port) for _ in range(90)]  # more than the worker may open
        time.sleep(1.5)
        assert "Error accepting a connection" in server.output()
        for sock in held:
            sock.close()
        time.sleep(0.5)
        for number in range(10):
            assert get(server.port, f"/echo/{number}") == f"/echo/{number}".encode()
        assert server.process.poll() is None
    finally:
        server.stop()


def test_what_loading_made_is_frozen_out_of_the_collectors_sight(server: LoopServer) -> None:
    # gunicorn and this app's modules at least; the production app adds tens of thousands more.
    assert int(get(server.port, "/gc/frozen")) > 5_000


def test_a_connection_closed_after_its_answer_is_let_go_once_the_client_closes(server: LoopServer) -> None:
    """A graceful close holds no thread, and no file either once the client has closed its side."""
    before = server.worker_open_files()
    for number in range(200):
        assert get(server.port, f"/echo/{number}") == f"/echo/{number}".encode()  # Connection: close
    time.sleep(0.3)  # far less than the 2 s a close may linger for a client that does not close
    assert server.worker_open_files() < before + 20


def test_a_client_that_does_not_close_is_let_go_after_the_linger(server: LoopServer) -> None:
    with connect(server.port) as sock:
        sock.sendall(request("/echo/x", close=True))
        assert read_response(sock, bytearray())[1] == b"/echo/x"
        assert closed_by_server_within(sock, 1)  # the end of the answer: the server shut its side
        opened = server.worker_open_files()
        sock.sendall(b"more bytes the server reads and drops")
        time.sleep(3.5)
        assert server.worker_open_files() < opened
