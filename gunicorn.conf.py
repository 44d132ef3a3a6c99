"""gunicorn settings for Storefront (`gunicorn -c gunicorn.conf.py wsgi:app`); overridable by GUNICORN_*."""

import ctypes
import errno
import multiprocessing
import os
import threading
import time

from gunicorn import glogging
from gunicorn import util as gunicorn_util
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.workers.gthread import TConn, ThreadWorker


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

# Prometheus multiprocess mode: every worker writes its metrics to files in one directory and
# /metrics sums them. The directory must exist, and be emptied, before any worker imports
# prometheus_client, so it is prepared here, in the master.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if not _metrics_dir:
    import tempfile

    _metrics_dir = tempfile.mkdtemp(prefix="storefront-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):  # noqa: ARG001 - gunicorn hook signature
    os.makedirs(_metrics_dir, exist_ok=True)
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db"):
            os.unlink(os.path.join(_metrics_dir, name))


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


class StorefrontThreadWorker(ThreadWorker):
    """gthread, plus two things.

    On SIGTERM, first take every connection already waiting in the listen backlog: those clients
    have connected and sent their requests, and closing the listener would reset them. Taking them
    before accepting stops means a graceful shutdown (a deploy, a scale-in) answers every request
    that reached the host before the signal.

    A request for a URL the app has noted, and holds in this worker's in-process tier or in Redis,
    is answered from the parsed request (the app's ``answer_parsed``, storefront/web/hot_path.py),
    without the WSGI environ: building it costs about as much as the rest of a hit. Everything
    else goes through WSGI (which takes over what the app's look found), and
    so does every request when gunicorn logs or counts requests itself (an access log, a logging
    config or syslog that carries one, statsd): those are made per request from the environ.
    """

    answer_parsed = None

    def load_wsgi(self):
        super().load_wsgi()
        hot_path = getattr(self.wsgi, "wsgi_app", None)
        gunicorn_sees_requests = (type(self.log).access is not glogging.Logger.access
                                  or self.log.access_log_enabled)
        if hot_answers_before_wsgi and not gunicorn_sees_requests:
            self.answer_parsed = getattr(hot_path, "answer_parsed", None)

    def handle_request(self, req, conn):
        if self.answer_parsed is not None:
            try:
                answer = self.answer_parsed(req.method, req.uri, req.headers)
            except Exception:
                # A fault of the shortcut must not cost the request: WSGI answers it, and Flask's
                # error handling (and Sentry) sees whatever it meets there.
                self.log.exception("Error answering before WSGI; answering through WSGI")
                answer = None
            if answer is not None:
                return self.send_answer(req, conn, answer)
        return super().handle_request(req, conn)

    def send_answer(self, req, conn, answer):
        """gthread's handle_request for an answer made already; True to keep the connection.

        gunicorn's pre_request hook runs here, once the answer is made and before it is sent.
        """
        status, headers, body = answer
        resp = None
        try:
            self.cfg.pre_request(self, req)
            resp = gunicorn_wsgi.Response(req, conn.sock, self.cfg)
            self.nr += 1
            if self.nr >= self.max_requests:
                if self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
                resp.force_close()
            if not self.alive or not self.cfg.keepalive:
                resp.force_close()
            elif len(self.keepalived_conns) >= self.max_keepalived:
                resp.force_close()
            resp.start_response(status, headers)
            for item in body:
                resp.write(item)
            resp.close()
            return not resp.should_close()
        except OSError:
            raise  # the connection's: gthread's handle() deals with it
        except (Exception, SystemExit):
            if resp and resp.headers_sent:
                # As gthread does: a 500 written after a partial answer would corrupt the stream.
                self.log.exception("Error handling request")
                gunicorn_util.close_graceful(conn.sock)
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, {}, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")

    def set_accept_enabled(self, enabled):
        if not enabled and not self.alive:
            for listener in self.sockets:
                listener.setblocking(False)
                while True:
                    try:
                        client, address = listener.accept()
                    except OSError as error:
                        if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                            break
                        raise
                    self.nr_conns += 1
                    client.setblocking(True)
                    self.enqueue_req(TConn(self.cfg, client, address, listener.getsockname()))
        super().set_accept_enabled(enabled)


worker_class = StorefrontThreadWorker
