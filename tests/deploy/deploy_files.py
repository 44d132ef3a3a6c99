"""Readers for the deployment files under test: Kubernetes manifests, Dockerfile, docker-compose.yml."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
VCL = ROOT / "deploy" / "varnish" / "default.vcl"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
PLACEHOLDER = "CHANGE-ME"

# --- Kubernetes -----------------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    """Every manifest kustomize could list: the YAML files beside kustomization.yaml."""
    return sorted(path for path in KUBERNETES.glob("*.y*ml") if path.name != "kustomization.yaml")


@cache
def _documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    found = []
    for path in manifest_files():
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                found.append((path.name, document))
    return tuple(found)


def documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, parsed document) for every document of every manifest."""
    return list(_documents())


def the_one(kind: str) -> dict[str, Any]:
    """The single manifest of ``kind``; fails when there is none or more than one."""
    found = [document for _, document in _documents() if document.get("kind") == kind]
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))


def pod_spec() -> dict[str, Any]:
    return the_one("Deployment")["spec"]["template"]["spec"]


def app_container() -> dict[str, Any]:
    """The serving container: the one that declares the http port."""
    containers = [c for c in pod_spec()["containers"]
                  if any(port.get("name") == "http" for port in c.get("ports", []))]
    assert len(containers) == 1, "exactly one container must declare the port named http"
    return containers[0]


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number, or the name of one of the container's ports) as a number."""
    if isinstance(port, int):
        declared = [p["containerPort"] for p in container.get("ports", [])]
        assert port in declared, f"port {port} is not one the container declares ({declared})"
        return port
    by_name = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    assert port in by_name, f"no container port is named {port!r} ({sorted(by_name)})"
    return by_name[port]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects an object with ``labels``."""
    if not selector:
        return False  # an empty selector in these kinds selects nothing or everything: neither is meant
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def filled_secret() -> dict[str, str]:
    """The example Secret's data with each placeholder replaced by a fresh random value, as an operator
    would fill it in."""
    data = the_one("Secret").get("stringData") or {}
    return {name: value.replace(PLACEHOLDER, secrets.token_hex(16)) for name, value in data.items()}


def pod_environment(secret: Mapping[str, str] | None = None) -> dict[str, str]:
    """The serving container's environment as Kubernetes builds it: envFrom in order, then env."""
    container = app_container()
    config_maps = {document["metadata"]["name"]: document.get("data") or {}
                   for _, document in _documents() if document.get("kind") == "ConfigMap"}
    secret_name = the_one("Secret")["metadata"]["name"]
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment.update(config_maps[source["configMapRef"]["name"]])
        elif "secretRef" in source:
            assert source["secretRef"]["name"] == secret_name, "envFrom names a Secret that is not here"
            environment.update(filled_secret() if secret is None else secret)
    for variable in container.get("env", []):
        assert "value" in variable, f"{variable['name']}: only literal env values are expected here"
        environment[variable["name"]] = variable["value"]
    return environment


_QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTORS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity ("500m", "1", "768Mi") as a number (cores or bytes)."""
    match = _QUANTITY.match(str(value))
    assert match, f"not a resource quantity: {value!r}"
    return float(match.group(1)) * _FACTORS[match.group(2)]


# --- gunicorn --------------------------------------------------------------------------------------

GUNICORN_NAMES = ("bind", "workers", "threads", "timeout", "graceful_timeout", "max_requests")


def gunicorn_environment_names() -> set[str]:
    """The GUNICORN_* variables gunicorn.conf.py reads."""
    return set(re.findall(r"""os\.environ\.get\(\s*["'](GUNICORN_[A-Z_]+)["']""", GUNICORN_CONF.read_text()))


def effective_gunicorn_config(environment: Mapping[str, str], metrics_dir: Path) -> dict[str, Any]:
    """gunicorn.conf.py evaluated, in a child process, under ``environment``: the values gunicorn uses.

    A child process, so that ``environment`` is all the file sees."""
    env = {"PATH": os.environ.get("PATH", ""), **environment, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    script = ("import json, runpy, sys; config = runpy.run_path(sys.argv[1]); "
              f"print(json.dumps({{name: config[name] for name in {GUNICORN_NAMES!r}}}))")
    done = subprocess.run([sys.executable, "-c", script, str(GUNICORN_CONF)], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    return json.loads(done.stdout)


# --- Dockerfile -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str  # continuation lines joined, comment lines dropped

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for the shell form."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        parsed = json.loads(text)
        assert isinstance(parsed, list) and all(isinstance(item, str) for item in parsed)
        return parsed


def dockerfile_instructions(text: str | None = None) -> list[Instruction]:
    """The Dockerfile as its instructions, the way the builder reads them (the default escape char)."""
    text = DOCKERFILE.read_text(encoding="utf-8") if text is None else text
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comment lines are dropped even inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        pending += stripped
        if pending.strip():
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending.strip(), "the Dockerfile ends inside a continued line"
    return instructions


def dockerfile(keyword: str) -> list[Instruction]:
    return [instruction for instruction in dockerfile_instructions() if instruction.keyword == keyword]


def dockerfile_env() -> dict[str, str]:
    """The ENV the image sets (the key=value form)."""
    environment: dict[str, str] = {}
    for instruction in dockerfile("ENV"):
        for item in shlex.split(instruction.arguments):
            key, equals, value = item.partition("=")
            assert equals, f"ENV {instruction.arguments!r}: use the KEY=value form"
            environment[key] = value
    return environment


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's command (exec form), its --options dropped."""
    (instruction,) = dockerfile("HEALTHCHECK")
    _, marker, command = instruction.arguments.partition("CMD ")
    assert marker, "HEALTHCHECK needs a CMD"
    parsed = Instruction("CMD", command).exec_form()
    assert parsed, "HEALTHCHECK CMD should use the exec form (no shell needed in the image)"
    return parsed


# --- docker-compose.yml -----------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                            r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's variable interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}, $NAME and $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        operator, argument = match.group("op"), match.group("arg") or ""
        if operator == ":-":
            return environ.get(name) or argument
        if operator == "-":
            return environ.get(name, argument)
        if operator in (":?", "?"):
            assert environ.get(name), f"${{{name}}} must be set: {argument}"
        return environ.get(name, "")

    return _INTERPOLATION.sub(replace, value)


def compose_environment(service: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A service's environment after interpolation (an empty shell environment unless given)."""
    raw = compose()["services"][service].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)
    return {name: interpolate(str(value), environ or {}) for name, value in raw.items()}
