"""The image's files, commands and health check, run with the pod's configuration, boot a working app.

No Docker engine here, so this is the container emulated: only the paths the Dockerfile copies, the image's
ENV, the Deployment's environment and mounts, the init container's command, then the image's CMD, asked
the probes' paths within the startup probe's budget, stopped with SIGTERM within gunicorn's graceful time.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.deploy.deploy_files import (
    ROOT,
    app_container,
    dockerfile,
    dockerfile_env,
    effective_gunicorn_config,
    filled_secret,
    healthcheck_command,
    pod_environment,
    pod_spec,
)
from tests.services import REDIS_URL, free_port, reachable, unavailable, unique_name

VENV_BIN = ROOT / ".venv" / "bin"
WIDGET = "/v1/shops/demo-coffee.myshopify.com/widgets/subscription.js?product=7001000000001"


def executable(command: list[str]) -> list[str]:
    """The container's command with its program taken from the project's virtualenv."""
    program = VENV_BIN / command[0]
    assert program.exists(), f"{command[0]} is not in .venv/bin"
    return [str(program), *command[1:]]


def build_image_tree(root: Path) -> None:
    """The image's /app: exactly what the Dockerfile COPYs (after WORKDIR)."""
    (workdir,) = dockerfile("WORKDIR")
    assert workdir.arguments == "/app"
    for instruction in dockerfile("COPY"):
        *sources, target = shlex.split(instruction.arguments)
        into = root / target
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():  # COPY dir/ target/ copies the directory's contents into target
                shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                                dirs_exist_ok=True)
                continue
            into_directory = target.endswith("/") or target == "." or len(sources) > 1
            destination = into / origin.name if into_directory else into
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)
    for run in dockerfile("RUN"):
        if "mkdir -p /app/instance" in run.arguments:
            (root / "instance").mkdir(exist_ok=True)


def snapshot(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*")}


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.slow
@pytest.mark.mysql
@pytest.mark.redis
def test_the_pod_boots_from_the_image_and_passes_its_probes(tmp_path: Path, mysql_url: str) -> None:
    if not reachable(REDIS_URL):
        unavailable(f"Redis is not reachable at {REDIS_URL}")
    image_root = tmp_path / "app"
    build_image_tree(image_root)
    before = snapshot(image_root)

    # The pod's mounts become directories here; the pod's services become the test's real ones.
    mounts = {mount["mountPath"]: tmp_path / "volumes" / mount["name"]
              for mount in app_container()["volumeMounts"]}
    for directory in mounts.values():
        directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    prefix = unique_name("sf_deploy") + ":"
    secret = filled_secret()
    secret.update({"STOREFRONT_DATABASE_URL": mysql_url, "STOREFRONT_REDIS_URL": REDIS_URL,
                   "STOREFRONT_CDN_PURGE": ""})  # no real CDN from a test
    environment = {**dockerfile_env(), **pod_environment(secret)}
    environment = {name: str(mounts.get(value, value)) for name, value in environment.items()}
    environment.update({
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "HOME": str(image_root),  # the image user's home is /app, read-only in the pod
        "TMPDIR": str(mounts["/tmp"]),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "STOREFRONT_REDIS_KEY_PREFIX": prefix,
    })
    config = effective_gunicorn_config(environment, mounts["/tmp"] / "conf-check")

    (init,) = pod_spec()["initContainers"]
    for expected in ("applied:", "up to date"):  # every pod start runs it: the second run is a no-op
        done = subprocess.run(executable(init["command"]), cwd=image_root, env=environment,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert expected in done.stdout, done.stdout
    # Something to render (an operator's step, not the pod's).
    done = subprocess.run(executable(["flask", "--app", "storefront", "seed-demo"]), cwd=image_root,
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    (cmd,) = dockerfile("CMD")
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(executable(cmd.exec_form() or []), cwd=image_root, env=environment,
                                  stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        startup = app_container()["startupProbe"]
        deadline = time.monotonic() + startup["periodSeconds"] * startup["failureThreshold"]
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, _ = get(port, startup["httpGet"]["path"])
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, f"no 200 from the startup probe in its budget:\n{log.read_text()[-3000:]}"

        status, body = get(port, app_container()["readinessProbe"]["httpGet"]["path"])
        assert (status, json.loads(body)) == (200, {"database": "ok", "cache": "ok"})
        status, _ = get(port, app_container()["livenessProbe"]["httpGet"]["path"])
        assert status == 200
        # The copied templates render, and the copied static files are served.
        status, body = get(port, WIDGET)
        assert status == 200 and body, body[:500]
        for path in sorted(p for p in (ROOT / "static").iterdir() if p.is_file()):
            assert get(port, f"/static/{path.name}") == (200, path.read_bytes()), path.name
        status, body = get(port, "/metrics")
        assert status == 200 and b"storefront_" in body

        check = executable(healthcheck_command())
        assert "127.0.0.1:8000" in check[-1]
        check[-1] = check[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        assert subprocess.run(check, env=environment, capture_output=True, timeout=30).returncode == 0, (
            "HEALTHCHECK failed against a healthy app")

        server.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert server.wait(timeout=config["graceful_timeout"] + 5) == 0, log.read_text()[-3000:]
        assert time.monotonic() - started <= config["graceful_timeout"]
        assert subprocess.run(check, env=environment, capture_output=True, timeout=30).returncode != 0, (
            "HEALTHCHECK passed with nothing listening")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()

    # A read-only root: nothing was written under /app (bytecode, SQLite, logs, sockets in $HOME).
    assert snapshot(image_root) == before
    errors = [line for line in log.read_text().splitlines() if "[ERROR]" in line or '"level":"error"' in line]
    assert not errors, "\n".join(errors)
