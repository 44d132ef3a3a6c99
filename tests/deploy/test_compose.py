"""docker-compose.yml: the app with MySQL, Redis and a Varnish edge running the shipped VCL (static)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from storefront.cdn import VarnishPurger, create_purger
from storefront.settings import PREFIX, SETTINGS, load_settings
from tests.deploy.deploy_files import (
    ROOT,
    VCL,
    compose,
    compose_environment,
    dockerfile,
    dockerfile_env,
    interpolate,
)
from tests.services import unavailable

SETTING_NAMES = {setting.name for setting in SETTINGS}


def service(name: str) -> dict:
    return compose()["services"][name]


def varnish_script() -> tuple[list[str], Path, str, list[str]]:
    """The varnish service's start script as (sed command, the VCL file it reads on this machine, the file
    it writes, varnishd command)."""
    command = service("varnish")["command"]
    assert command[:2] == ["sh", "-c"], "expected sh -c '<edit the VCL> && exec varnishd ...'"
    edit, _, start = interpolate(command[2], {}).partition("&&")
    words = shlex.split(edit)
    assert words[0] == "sed" and ">" in words, f"expected sed ... VCL > copy, not {edit}"
    redirect = words.index(">")
    sed, written = words[:redirect], words[redirect + 1]
    mounts = {}
    for volume in service("varnish")["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = (ROOT / source).resolve()
    read = sed[-1]
    assert read in mounts, f"sed reads {read}, which no volume provides"
    return sed[:-1], mounts[read], written, shlex.split(start)


def edited_vcl() -> str:
    sed, source, _, _ = varnish_script()
    assert source == VCL.resolve(), "varnish should run deploy/varnish/default.vcl"
    done = subprocess.run([*sed, str(source)], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


def published(service_name: str, container_port: int) -> tuple[str, int]:
    """(host address, host port) a service's container port is published on."""
    for mapping in service(service_name).get("ports", []):
        parts = str(mapping).split(":")
        if int(parts[-1]) == container_port:
            host = parts[0] if len(parts) == 3 else "0.0.0.0"
            return host, int(parts[-2])
    raise AssertionError(f"{service_name} does not publish port {container_port}")


def varnish_listen_port() -> int:
    _, _, _, start = varnish_script()
    listens = [start[i + 1] for i, word in enumerate(start) if word == "-a"]
    (http,) = [address for address in listens if address.endswith(",HTTP") or "," not in address]
    return int(http.split(",")[0].rsplit(":", 1)[1])


def test_compose_has_the_app_its_backing_services_and_a_varnish_edge() -> None:
    services = compose()["services"]
    assert {"app", "mysql", "redis", "varnish"} <= set(services)
    assert service("app")["build"] == "."


def test_every_storefront_variable_is_a_real_setting_and_production_has_its_own(tmp_path: Path) -> None:
    environment = compose_environment("app")
    unknown = sorted(n for n in environment if n.startswith(PREFIX) and n[len(PREFIX):] not in SETTING_NAMES)
    assert not unknown, f"not settings of storefront/settings.py: {unknown}"
    assert environment[f"{PREFIX}ENV"] == "production"
    for setting in SETTINGS:
        if setting.production_required:
            assert environment.get(PREFIX + setting.name, "").strip(), f"{PREFIX}{setting.name} is not set"
    load_settings(environment, None, str(tmp_path))  # raises SettingsError naming a bad value


def test_secrets_can_come_from_the_shell_instead_of_the_defaults() -> None:
    for name in ("ADMIN_TOKENS", "SECRET_KEY", "SHOPIFY_API_SECRET"):
        value = f"from-the-shell-{name.lower()}-0123456789"
        assert compose_environment("app", {PREFIX + name: value})[PREFIX + name] == value


def test_the_app_reaches_mysql_and_redis_by_service_name_once_they_are_healthy() -> None:
    environment = compose_environment("app")
    database = urlsplit(environment[f"{PREFIX}DATABASE_URL"])
    mysql = compose_environment("mysql")
    assert (database.scheme, database.hostname, database.port or 3306) == ("mysql", "mysql", 3306)
    assert database.username == mysql["MYSQL_USER"] and database.password == mysql["MYSQL_PASSWORD"]
    assert database.path.strip("/") == mysql["MYSQL_DATABASE"]
    assert urlsplit(environment[f"{PREFIX}REDIS_URL"]).hostname == "redis"
    for backing in ("mysql", "redis"):
        assert service("app")["depends_on"][backing]["condition"] == "service_healthy"
        assert service(backing)["healthcheck"]["test"], f"{backing} needs a healthcheck to be waited for"


def test_the_app_can_log_in_to_the_compose_mysql() -> None:
    # MySQL 8 creates users with caching_sha2_password. PyMySQL answers its first (full) authentication
    # over a plain connection only with the RSA code of the `cryptography` package.
    image = service("mysql")["image"]
    match = re.match(r"mysql:(\d+)", image)
    if not match or int(match.group(1)) < 8:
        return
    if "--mysql-native-password=ON" in service("mysql").get("command", []):
        return
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^cryptography==", requirements, re.MULTILINE), (
        f"{image} authenticates with caching_sha2_password: PyMySQL needs cryptography pinned in "
        "requirements.txt (or TLS to the server)")


def test_the_app_migrates_before_it_serves() -> None:
    command = service("app")["command"]
    assert command.index("flask --app storefront init-db") < command.index("gunicorn -c gunicorn.conf.py")


def test_varnish_is_a_7_image_with_xkey_in_front_of_a_healthy_app() -> None:
    match = re.fullmatch(r"varnish:7\.(\d+)(\.\d+)?", service("varnish")["image"])
    # Official varnish images bundle varnish-modules (vmod xkey, which the VCL imports) from 7.1 on.
    assert match and int(match.group(1)) >= 1, "use varnish:7.x (x >= 1): the VCL needs vmod xkey"
    assert re.search(r"^import xkey;", VCL.read_text(), re.MULTILINE)
    dependency = service("varnish")["depends_on"]["app"]
    assert dependency["condition"] == "service_healthy"
    # Varnish resolves `app` when it compiles the VCL: a recreated app must restart it.
    assert dependency.get("restart") is True
    assert dockerfile("HEALTHCHECK") or service("app").get("healthcheck"), "the app has no healthcheck"
    tmpfs = service("varnish").get("tmpfs", [])
    assert any(entry.startswith("/var/lib/varnish") and entry.endswith(":exec") for entry in tmpfs), (
        "varnishd loads the compiled VCL from its working directory: it must be an exec tmpfs")


def test_varnish_runs_the_shipped_vcl_changing_only_the_backend_and_the_purgers() -> None:
    original = VCL.read_text(encoding="utf-8")
    edited = edited_vcl()
    backend = re.search(r"^backend \w+ \{(.*?)^\}", edited, re.MULTILINE | re.DOTALL)
    assert backend, "no backend in the VCL"
    host = re.search(r'\.host = "([^"]+)";', backend.group(1))
    port = re.search(r'\.port = "([^"]+)";', backend.group(1))
    assert host and host.group(1) == "app", "the backend must be the app service"
    assert port and port.group(1) == dockerfile_env()["GUNICORN_BIND"].rsplit(":", 1)[1]
    purgers = re.search(r"^acl purgers \{(.*?)^\}", edited, re.MULTILINE | re.DOTALL)
    assert purgers and re.search(r'^\s*"app";$', purgers.group(1), re.MULTILINE), "the app must be a purger"
    # Nothing else differs from deploy/varnish/default.vcl.
    undone = edited.replace(f'.host = "{host.group(1)}";', '.host = "127.0.0.1";')
    undone = re.sub(r'^\s*"app";\n', "", undone, count=1, flags=re.MULTILINE)
    assert undone == original


def test_the_edited_vcl_compiles(tmp_path: Path) -> None:
    varnishd = shutil.which("varnishd") or shutil.which("varnishd", path="/usr/sbin")
    if varnishd is None:
        unavailable("varnishd is not installed (apt-get install varnish varnish-modules)")
    # `app` resolves only inside compose; localhost stands in for it here.
    vcl = tmp_path / "storefront.vcl"
    vcl.write_text(edited_vcl().replace('"app"', '"localhost"'))
    done = subprocess.run([varnishd, "-C", "-j", "none", "-n", str(tmp_path / "varnish"), "-f", str(vcl)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "xkey" in done.stderr and "VMOD" in done.stderr:
        unavailable("vmod xkey is missing (apt-get install varnish-modules)")
    assert done.returncode == 0, done.stderr[-3000:]


def test_varnish_starts_from_the_edited_copy_on_the_port_the_app_purges() -> None:
    _, _, written, start = varnish_script()
    assert start[:2] == ["exec", "varnishd"] and "-F" in start, "varnishd in the foreground, as PID 1"
    assert start[start.index("-f") + 1] == written
    environment = compose_environment("app")
    purger = create_purger(environment[f"{PREFIX}CDN_PURGE"])
    assert isinstance(purger, VarnishPurger)
    assert environment[f"{PREFIX}CDN_PURGE"] == f"varnish://varnish:{varnish_listen_port()}"


def test_absolute_urls_point_at_the_varnish_edge() -> None:
    host, port = published("varnish", varnish_listen_port())
    base = urlsplit(compose_environment("app")[f"{PREFIX}PUBLIC_BASE_URL"])
    assert base.port == port
    assert base.hostname in ("localhost", "127.0.0.1") and host in ("127.0.0.1", "0.0.0.0", "localhost")
