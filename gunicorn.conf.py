"""gunicorn settings for Storefront (`gunicorn -c gunicorn.conf.py wsgi:app`); overridable by GUNICORN_*."""

import ctypes
import errno
import gc
import multiprocessing
import os
import select
import socket
import threading
import time

from gunicorn import glogging
from gunicorn import util as gunicorn_util
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.workers import base as base_worker
from gunicorn.workers.gthread import _DEFER, STOP_KEEPALIVE_LINGER, TConn, ThreadWorker


def usable_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """CPUs this server may use: those it may run on (its affinity: taskset, a cpuset), capped by a
    cgroup CPU quota (a container's CPU limit), rounded up.

    The machine's CPU count would size a container limited to one CPU, on a 64-CPU node, as if it
    had them all: a worker each, each with its own in-process tier, most of them idle.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = multiprocessing.cpu_count()
    for quota_file, period_file in (("cpu.max", None),  # cgroup v2: "<quota> <period>" or "max ..."
                                    ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):  # v1; -1: none
        try:
            with open(os.path.join(cgroup_root, quota_file)) as fields:
                quota, *rest = fields.read().split()
            if period_file is not None:
                with open(os.path.join(cgroup_root, period_file)) as fields:
                    rest = fields.read().split()
            if quota not in ("max", "-1"):
                return max(1, min(count, -(-int(quota) // int(rest[0]))))
        except (OSError, ValueError, IndexError, ZeroDivisionError):
            continue
    return count


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Rendering is CPU-bound and short; a few threads per worker hide database and Redis latency.
workers = int(os.environ.get("GUNICORN_WORKERS", min(usable_cpus() * 2 + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "10000"))
# Load the app in each worker, not the master: no connection or thread crosses a fork.
preload_app = False
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
# Trust no forwarding headers: the app never uses them, and gunicorn acting on a client's
# SCRIPT_NAME or X-Forwarded-* (it trusts 127.0.0.1, where a local Varnish connects from) would
# let a client change routing or provoke errors.
forwarded_allow_ips = ""
# gunicorn's control socket defaults to one path per user, which several servers on a host (or a
# read-only home in a container) cannot share; it is opt-in here.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or "gunicorn.ctl"
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
errorlog = "-"


def on_starting(server):  # noqa: ARG001 - gunicorn hook signature
    """Prometheus multiprocess mode: every worker writes its metrics to files in one directory and
    /metrics sums them. The directory must exist, and be emptied, before any worker imports
    prometheus_client, so the master prepares it (a temporary one unless named) before it forks
    them. Here, not as this file loads: reading the settings changes no environment."""
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not metrics_dir:
        import tempfile

        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="storefront-metrics-")
    os.makedirs(metrics_dir, exist_ok=True)
    for name in os.listdir(metrics_dir):
        if name.endswith(".db"):
            os.unlink(os.path.join(metrics_dir, name))


def child_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# glibc's malloc gives each thread that allocates an arena of its own (up to 8 per core), and memory
# freed in one arena is only reused by that arena. A worker's threads thus spread the churn of misses
# (bodies, compressor buffers, rows) over several arenas that each keep their freed memory. Measured
# with 5 workers x 4 threads, a 16 MiB in-process budget and 1,200 new keys per worker, RSS grew by
# 31-38 MiB per worker; 23-29 MiB with two arenas; 19-25 MiB with two arenas and free pages handed
# back every few seconds (a fixed mmap threshold would return more, but made each miss's compression
# 1 ms slower). An operator's MALLOC_ARENA_MAX (read by glibc itself at start-up) wins.
MALLOC_ARENA_MAX = 2
MALLOC_TRIM_INTERVAL_S = 5
_M_ARENA_MAX = -8  # from glibc's <malloc.h>


def post_fork(server, worker):  # noqa: ARG001 - gunicorn hook signature
    # In the new worker, before it starts any thread (the app is loaded after this hook).
    limit_malloc_arenas()


def limit_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas and return free memory to the system periodically; False if not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return False  # musl, macOS...: their allocators do not keep per-thread arenas like this
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(_M_ARENA_MAX, MALLOC_ARENA_MAX)

    def trim() -> None:
        # Free pages inside the heap stay resident until trimmed; a trim takes well under 1 ms.
        while True:
            time.sleep(MALLOC_TRIM_INTERVAL_S)
            malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()
    return True


# Hits answered from gunicorn's parsed request, before it builds the WSGI environ
# (StorefrontThreadWorker below); "0" turns that off, and every request takes the WSGI path.
hot_answers_before_wsgi = os.environ.get("GUNICORN_HOT_ANSWERS_BEFORE_WSGI", "1") != "0"

# A connection waits for its next request in the worker's epoll, armed for one event: whichever
# thread takes that event owns the connection until it re-arms it (or closes it).
_ARMED = select.EPOLLIN | select.EPOLLONESHOT
# How often an idle serving thread looks up from epoll to see whether the worker is stopping.
_SERVE_POLL_S = 0.5
# How long a connection closed after its answer stays open for reading (gunicorn's close_graceful
# lingers as long, with a thread waiting): the client reads the answer and closes first.
CLOSE_LINGER_S = 2.0


class StorefrontThreadWorker(ThreadWorker):
    """gthread's request handling (its threads, parser, WSGI and HTTP/2 paths), with its own event
    loop and two additions.

    **The event loop.** gthread's main thread polls every socket and hands each request to its thread
    pool as a future, whose completion is handed back through a pipe so the main thread can put the
    connection back in its poller: per request, two hand-offs between threads (each a GIL switch), a
    pipe write and read, two epoll registrations and two blocking-mode changes. Here every serving
    thread waits on one epoll itself, and each connection (and listener) is registered once, armed
    for one event at a time (EPOLLONESHOT): the thread that takes a connection's event reads its
    request, answers it and re-arms it, with no other thread involved. Measured on the bench (one
    CPU, a bare WSGI callable with one Redis GET), that is about a fifth of a response's server CPU.
    The main thread keeps the arbiter's heartbeat, closes connections idle past ``keepalive`` and
    runs the graceful shutdown. What gthread guarantees stays: a connection is read only once its
    request has started to arrive (no thread waits on a silent client), at most
    ``worker_connections`` connections, kept-alive ones closed when that many are idle, and on a
    stop kept-alive connections linger briefly so a request already under way is answered.

    **On SIGTERM, first take every connection already waiting in the listen backlog:** those clients
    have connected and sent their requests, and closing the listener would reset them. Taking them
    before accepting stops means a graceful shutdown (a deploy, a scale-in) answers every request
    that reached the host before the signal.

    **A request for a URL the app has noted**, and holds in this worker's in-process tier or in
    Redis, is answered from the parsed request (the app's ``answer_parsed``,
    storefront/web/hot_path.py), without the WSGI environ, and written in one send: building the
    environ and gunicorn's response object cost about as much as the rest of a hit. Everything
    else goes through WSGI (which takes over what the app's look found), and so does every
    request when gunicorn logs or counts requests itself (an access log, a logging config or
    syslog that carries one, statsd): those are made per request from the environ.
    """

    answer_parsed = None

    def init_process(self):
        # gthread's pool, poller and pipe are not used: base.Worker's set-up only (it calls run()).
        self.epoll = select.epoll()
        self.conns = {}  # fd -> TConn, every open connection
        self.keepalived_conns = set()  # the idle ones (gthread's name: its handle_request counts them)
        self.lingering = {}  # fd -> (when to close at the latest, TConn): shut for writing, last answer sent
        self.conns_lock = threading.Lock()
        self.stop_requested = threading.Event()
        self.listeners = {listener.fileno(): listener for listener in self.sockets}
        for listener in self.sockets:
            listener.setblocking(False)  # accept() takes what waits, up to EAGAIN
        self.serving = True
        self._accepting = False
        base_worker.Worker.init_process(self)

    def load_wsgi(self):
        super().load_wsgi()
        # What loading made (modules, templates, settings: some 60,000 objects) lives as long as
        # the worker: moved out of the collector's sight, a full collection no longer walks it.
        # With the in-process tier full, those collections had paused a worker for 140-240 ms
        # (the Zipf mix with both tiers: p99 58-240 ms, 12-17 ms frozen).
        gc.collect()
        gc.freeze()
        hot_path = getattr(self.wsgi, "wsgi_app", None)
        gunicorn_sees_requests = (type(self.log).access is not glogging.Logger.access
                                  or self.log.access_log_enabled)
        if hot_answers_before_wsgi and not gunicorn_sees_requests:
            self.answer_parsed = getattr(hot_path, "answer_parsed", None)

    def handle_exit(self, sig, frame):
        self.alive = False
        self.stop_requested.set()

    def handle_quit(self, sig, frame):
        base_worker.Worker.handle_quit(self, sig, frame)

    # -- the loop -------------------------------------------------------------------------------

    def run(self):
        self.set_accept_enabled(True)
        threads = [threading.Thread(target=self.serve, name=f"gunicorn-serve-{number}", daemon=True)
                   for number in range(self.cfg.threads)]
        for thread in threads:
            thread.start()
        while self.alive:
            self.notify()
            self.stop_requested.wait(1.0)
            if not self.is_parent_alive():
                break
            self.close_idle(time.monotonic())
            if self.alive and not self._accepting and self.nr_conns < self.worker_connections:
                self.set_accept_enabled(True)
        # Stopping: the backlog is taken (set_accept_enabled), requests under way are answered,
        # kept-alive connections linger briefly, then everything closes.
        self.set_accept_enabled(False)
        linger = time.monotonic() + STOP_KEEPALIVE_LINGER
        with self.conns_lock:
            for conn in self.conns.values():
                conn.timeout = min(conn.timeout, linger)
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while (self.nr_conns > 0 or self.lingering) and time.monotonic() < deadline:
            self.notify()
            time.sleep(0.05)
            self.close_idle(time.monotonic())
        self.serving = False
        for thread in threads:
            thread.join(_SERVE_POLL_S * 2)
        self.close_idle(float("inf"))
        self.epoll.close()
        for listener in self.sockets:
            listener.close()

    def serve(self):
        """A serving thread: take one ready connection (or listener) at a time, until the worker stops."""
        poll, conns, lock = self.epoll.poll, self.conns, self.conns_lock
        while self.serving:
            try:
                events = poll(_SERVE_POLL_S, 1)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return  # the epoll is closed: the worker is exiting
            for fd, _ in events:
                if fd in self.lingering:
                    try:
                        self.drain_lingering(fd)
                    except Exception:
                        self.log.exception("Error closing a connection")
                    continue
                listener = self.listeners.get(fd)
                if listener is not None:
                    try:
                        self.accept(listener)
                    except Exception:
                        # Out of file descriptors, say: the main loop re-arms the listener within a
                        # second, rather than this thread spinning on it.
                        self.log.exception("Error accepting a connection")
                        self._accepting = False
                    continue
                with lock:
                    conn = conns.get(fd)
                    if conn is None or conn not in self.keepalived_conns:
                        continue  # closed meanwhile (idle too long, or the worker stopping)
                    self.keepalived_conns.discard(conn)
                try:
                    keep = self.serve_connection(conn)
                except Exception:
                    self.log.exception("Error serving a connection")
                    keep = False
                try:
                    self.done_with(fd, conn, keep)
                except Exception:
                    self.log.exception("Error closing a connection")

    def serve_connection(self, conn):
        """Answer the request(s) waiting on ``conn``; True to keep it open."""
        # It is readable: gthread's wait for a new connection's first bytes is already over.
        conn.data_ready = True
        while True:
            keep = self.handle(conn)
            if keep is _DEFER:
                return True
            if not keep:
                return False
            # A body drain or a pipelining client can leave the next request read already: those
            # bytes no longer make the socket readable to epoll.
            if not conn.parser.unreader.buf.getvalue():
                return True

    def done_with(self, fd, conn, keep):
        """Re-arm a connection that stays open, or close it."""
        if keep and (self.alive or conn.timeout > time.monotonic()):
            timeout = time.monotonic() + self.cfg.keepalive
            with self.conns_lock:
                conn.timeout = timeout if self.alive else min(conn.timeout, timeout)
                self.keepalived_conns.add(conn)
            try:
                self.epoll.modify(fd, _ARMED)
                return
            except OSError:
                pass  # closed by close_idle meanwhile
        with self.conns_lock:
            self.keepalived_conns.discard(conn)
            if self.conns.get(fd) is not conn:
                return  # close_idle has it
            del self.conns[fd]
            self.nr_conns -= 1
        self.close_gracefully(fd, conn)

    def close_gracefully(self, fd, conn):
        """gunicorn's graceful close (RFC 9112 section 9.6) without a thread waiting for the client:
        the write side is shut now (the client reads the answer, then the end), and the socket is
        closed when the client closes its side (a serving thread sees it in epoll), or by the main
        loop ``CLOSE_LINGER_S`` later, whichever comes first. What the client sends meanwhile is
        read and dropped, so closing does not reset the connection."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.unregister_and_close(fd, conn)
            return
        with self.conns_lock:
            self.lingering[fd] = (time.monotonic() + CLOSE_LINGER_S, conn)
        try:
            self.epoll.modify(fd, _ARMED)
        except OSError:
            self.close_now(fd, conn)

    def drain_lingering(self, fd):
        """A lingering connection is readable: drop what the client sent; close it at its end."""
        with self.conns_lock:
            due, conn = self.lingering.get(fd, (None, None))
        if conn is None:
            return
        if _drain(conn.sock):
            self.close_now(fd, conn)
            return
        try:
            self.epoll.modify(fd, _ARMED)
        except OSError:
            pass  # closed by close_idle meanwhile

    def close_now(self, fd, conn):
        """Close a lingering connection, unless another thread just did (its fd may be reused)."""
        with self.conns_lock:
            if self.lingering.get(fd, (None, None))[1] is not conn:
                return
            del self.lingering[fd]
        self.unregister_and_close(fd, conn)

    def unregister_and_close(self, fd, conn):
        """For the one thread that took ``conn`` out of ``conns`` or ``lingering``."""
        try:
            self.epoll.unregister(fd)
        except (OSError, ValueError):
            pass
        conn.close()

    def close_idle(self, now):
        """Close the connections idle since ``now`` or before, and those lingering after a graceful
        close until then; at ``inf``, every idle and lingering one."""
        with self.conns_lock:
            expired = [(fd, conn) for fd, conn in self.conns.items()
                       if conn in self.keepalived_conns and conn.timeout <= now and not _has_bytes(conn)]
            for fd, conn in expired:
                del self.conns[fd]
                self.keepalived_conns.discard(conn)
                self.nr_conns -= 1
            closing = [(fd, conn) for fd, (due, conn) in self.lingering.items() if due <= now]
        for fd, conn in expired:
            self.unregister_and_close(fd, conn)
        for fd, conn in closing:
            _drain(conn.sock)  # what the client sent meanwhile, so closing does not reset
            self.close_now(fd, conn)

    # -- accepting --------------------------------------------------------------------------------

    def set_accept_enabled(self, enabled):
        if not enabled and not self.alive:
            # Stopping: what already waits in the backlog is taken first (see the class docstring).
            for listener in self.sockets:
                self.accept(listener, rearm=False)
        if enabled == self._accepting:
            return
        self._accepting = enabled
        for fd in self.listeners:
            try:
                self.epoll.modify(fd, _ARMED if enabled else 0)
            except FileNotFoundError:
                if enabled:
                    self.epoll.register(fd, _ARMED)

    def accept(self, listener, rearm=True):
        """Take every connection waiting on ``listener`` (up to worker_connections), then re-arm it."""
        while self.nr_conns < self.worker_connections:
            try:
                client, address = listener.accept()
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                    break
                raise
            conn = TConn(self.cfg, client, address, listener.getsockname())
            conn.set_timeout()
            fd = client.fileno()
            with self.conns_lock:
                self.nr_conns += 1
                self.conns[fd] = conn
                # Idle until its first bytes arrive; closed like a kept-alive one if they never do.
                self.keepalived_conns.add(conn)
            self.epoll.register(fd, _ARMED)
        if rearm:
            if self.alive and self.nr_conns < self.worker_connections:
                self.epoll.modify(listener.fileno(), _ARMED)
            else:
                self._accepting = False  # the main loop re-arms it once there is room

    # -- answers made before WSGI -----------------------------------------------------------------

    def handle_request(self, req, conn):
        if self.answer_parsed is not None:
            try:
                answer = self.answer_parsed(req.method, req.uri, req.headers)
                wire = None if answer is None else ParsedAnswer(req, answer)
            except Exception:
                # A fault of the shortcut must not cost the request: WSGI answers it, and Flask's
                # error handling (and Sentry) sees whatever it meets there.
                self.log.exception("Error answering before WSGI; answering through WSGI")
                wire = None
            if wire is not None:
                return self.send_answer(req, conn, wire)
        return super().handle_request(req, conn)

    def send_answer(self, req, conn, wire):
        """Write an answer made before WSGI, in one send; True to keep the connection.

        gthread's handle_request for it: gunicorn's pre_request and post_request hooks run (the
        latter with no environ and no response object, as gunicorn calls it when a request fails
        early), max_requests counts it, and the connection closes when gthread's would.
        """
        try:
            self.cfg.pre_request(self, req)
            self.nr += 1
            close = req.should_close()
            if self.nr >= self.max_requests:
                if self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
                close = True
            if not self.alive or not self.cfg.keepalive or len(self.keepalived_conns) >= self.max_keepalived:
                close = True
            conn.sock.sendall(wire.bytes(close))
            return not close
        finally:
            try:
                self.cfg.post_request(self, req, {}, None)
            except Exception:
                self.log.exception("Exception in post_request hook")


def _has_bytes(conn) -> bool:
    """Whether a request (or the client's close) waits on ``conn``: an idle connection past its
    keepalive that a thread is about to read is not closed under it."""
    try:
        return bool(socket.socket.recv(conn.sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (OSError, ValueError):  # nothing waiting (EAGAIN), or a socket already gone
        return False


def _drain(sock, limit=65536) -> bool:
    """Read and drop what waits on ``sock`` (up to ``limit`` bytes); True once the peer has closed."""
    try:
        while limit > 0:
            data = socket.socket.recv(sock, 4096, socket.MSG_DONTWAIT)
            if not data:
                return True
            limit -= len(data)
    except (BlockingIOError, InterruptedError):
        return False
    except (OSError, ValueError):
        return True  # reset, or closed: nothing more to wait for
    return False


_date: tuple[int, str] = (0, "")


def http_date() -> str:
    """gunicorn's Date header value, formatted once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, gunicorn_util.http_date(now))
    return _date[1]


class ParsedAnswer:
    """An answer made before WSGI as gunicorn's Response would write it for ``req``, but in one send.

    The headers are the app's own (names constant, values it made or validated), so gunicorn's
    checks on each are replaced by checks on the whole: a CR or LF inside a value would add a
    line, and raises instead, as do a hop-by-hop header and a body without Content-Length (neither
    of which the app's answers have). The body is left out where gunicorn leaves it out (HEAD, 304).
    """

    __slots__ = ("head", "headers", "body")

    def __init__(self, req, answer) -> None:
        status, headers, body = answer
        lines = [f"{name}: {value}\r\n" for name, value in headers]
        lines.append("\r\n")
        rest = "".join(lines)
        if rest.count("\n") != len(lines) or rest.count("\r") != len(lines):
            raise ValueError("a response header value holds a line break")
        for name, _ in headers:
            if name not in _CHECKED_NAMES:
                if not gunicorn_wsgi.TOKEN_RE.fullmatch(name) or gunicorn_util.is_hoppish(name):
                    raise ValueError(f"response header {name!r}: not a token, or hop-by-hop")
                _CHECKED_NAMES.add(name)
        omits_body = req.method == "HEAD" or status[:3] in ("204", "304") or status[0] == "1"
        if not omits_body and not any(name == "Content-Length" for name, _ in headers):
            raise ValueError("a body without Content-Length")
        self.head = (f"HTTP/{req.version[0]}.{req.version[1]} {status}\r\n"
                     f"Server: {gunicorn_wsgi.SERVER}\r\nDate: {http_date()}\r\n").encode("latin-1")
        self.headers = rest.encode("latin-1")
        self.body = () if omits_body else body

    def bytes(self, close: bool) -> bytes:
        """Everything, joined once (the Connection header waits for gthread's keep-alive decision)."""
        return b"".join((self.head, _CLOSE if close else _KEEP_ALIVE, self.headers, *self.body))


# Header names already found valid: the app's answers use a handful.
_CHECKED_NAMES: set[str] = set()
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"


worker_class = StorefrontThreadWorker
