"""Real Redis Clusters for tests: masters on free ports joined by redis-cli, with faults on demand."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from tests.services import free_port, unavailable, wait_for_port

# Redis 7 lets the cluster bus use a port of its own; the default (port + 10000) may not be free.
MIN_VERSION = (7, 0)


class PrivateCluster:
    """``masters`` redis-server processes in cluster mode, joined by ``redis-cli --cluster create``.

    ``cluster-require-full-coverage no`` as a cache cluster should run: losing a master costs its own
    slots, not the whole cluster (the default makes every node answer CLUSTERDOWN).
    """

    def __init__(self, directory: Path, masters: int = 3, *, require_full_coverage: bool = False) -> None:
        self.server_binary = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if self.server_binary is None or cli is None:
            unavailable("redis-server and redis-cli are needed for a Redis Cluster")
        version = subprocess.run([self.server_binary, "--version"], capture_output=True, text=True).stdout
        found = re.search(r"v=(\d+)\.(\d+)", version)
        if found is None or (int(found[1]), int(found[2])) < MIN_VERSION:
            unavailable(f"Redis Cluster tests need redis-server >= 7.0, found {version.strip()!r}")
        self.directory = directory
        self.require_full_coverage = require_full_coverage
        self.ports = [free_port() for _ in range(masters)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        try:
            for port in self.ports:
                self._start(port)
            for port in self.ports:
                wait_for_port(port)
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )
            self.wait_until_ok(self.ports)
        except BaseException:
            self.stop()
            raise

    def _start(self, port: int) -> None:
        self.processes[port] = subprocess.Popen(
            [self.server_binary, "--port", str(port), "--cluster-enabled", "yes",
             "--cluster-port", str(free_port()),
             "--cluster-config-file", str(self.directory / f"nodes-{port}.conf"),
             "--cluster-node-timeout", "1000",
             "--cluster-require-full-coverage", "yes" if self.require_full_coverage else "no",
             "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--daemonize", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    # -- addresses --------------------------------------------------------------------------------

    @property
    def seed_url(self) -> str:
        return self.url(self.ports[0])

    @staticmethod
    def url(port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def alive_ports(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.poll() is None]

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node (close it after use)."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def owner_of(self, key: str | bytes) -> int:
        """The port of the master that serves ``key``'s slot."""
        return self.slot_owner(_slot(key))

    def owners_of(self, keys: list[str] | list[bytes]) -> list[int]:
        """The ports of the masters that serve each key's slot (one CLUSTER SLOTS for all)."""
        table = self._slot_table()
        return [self.slot_owner(_slot(key), table) for key in keys]

    def slot_owner(self, slot: int, table: list | None = None) -> int:
        """The port of the master that serves ``slot`` (asked of a live node)."""
        for start, end, master, *_replicas in table or self._slot_table():
            if start <= slot <= end:
                return int(master[1])
        raise LookupError(f"no master serves slot {slot}")

    def _slot_table(self) -> list:
        with self.node(self.alive_ports()[0]) as client:
            return client.execute_command("CLUSTER SLOTS")

    def key_on(self, port: int, template: str) -> str:
        """``template`` with ``{n}`` replaced by the first number that puts it on ``port``."""
        table = self._slot_table()
        for number in range(10_000):
            key = template.replace("{n}", str(number))
            if self.slot_owner(_slot(key), table) == port:
                return key
        raise LookupError(f"no key of {template!r} lands on {port}")

    # -- faults -----------------------------------------------------------------------------------

    def kill(self, port: int) -> None:
        process = self.processes[port]
        process.kill()
        process.wait(10)

    def pause(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        if self.processes[port].poll() is None:
            self.processes[port].send_signal(signal.SIGCONT)

    def wait_until_ok(self, ports: list[int], timeout: float = 20.0) -> None:
        """Until every node in ``ports`` reports ``cluster_state:ok`` and knows every other node."""
        deadline = time.monotonic() + timeout
        pending = list(ports)
        while pending:
            port = pending[0]
            try:
                with self.node(port) as client:
                    info = client.execute_command("CLUSTER INFO")
                ready = info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == len(self.ports)
            except redis.RedisError:
                ready = False
            if ready:
                pending.pop(0)
            elif time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not become ok on port {port} within {timeout}s")
            else:
                time.sleep(0.05)

    def wait_until_refusing(self, ports: list[int], timeout: float = 10.0) -> None:
        """Until every node in ``ports`` reports ``cluster_state:fail`` (it answers keys with CLUSTERDOWN)."""
        deadline = time.monotonic() + timeout
        for port in ports:
            while True:
                with self.node(port) as client:
                    if client.execute_command("CLUSTER INFO")["cluster_state"] == "fail":
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {port} did not report cluster_state:fail within {timeout}s")
                time.sleep(0.05)

    def wait_until_failed(self, port: int, timeout: float = 10.0) -> None:
        """Until every surviving node flags ``port`` as failed (after cluster-node-timeout)."""
        deadline = time.monotonic() + timeout
        survivors = [alive for alive in self.alive_ports() if alive != port]
        while survivors:
            with self.node(survivors[0]) as client:
                nodes = client.execute_command("CLUSTER NODES")  # {"host:port": {"flags": ...}}
            flags = nodes.get(f"127.0.0.1:{port}", {}).get("flags", "").split(",")
            if "fail" in flags:
                survivors.pop(0)
            elif time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not mark {port} as failed within {timeout}s")
            else:
                time.sleep(0.05)

    def stop(self) -> None:
        for port, process in self.processes.items():
            self.resume(port)  # a SIGSTOPped server would never act on SIGTERM
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def cluster_client(url: str) -> RedisCluster:
    """A plain cluster client, to look behind the cache's back."""
    return RedisCluster.from_url(url, socket_timeout=5, socket_connect_timeout=5, require_full_coverage=False)


def close_cluster_client(client: RedisCluster) -> None:
    client.disconnect_connection_pools()  # close() alone leaves the nodes' sockets open
    client.close()


def delete_prefixed(client: RedisCluster, prefix: str) -> None:
    for key in client.scan_iter(match=prefix + "*", count=500):
        client.delete(key)


def _slot(key: str | bytes) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)
