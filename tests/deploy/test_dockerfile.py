"""The Dockerfile and .dockerignore, read as text: pinned, non-root, health-checked, no secrets (static)."""

from __future__ import annotations

import importlib.metadata
import re
import shlex

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.deploy_files import (
    DOCKERIGNORE,
    ROOT,
    dockerfile,
    dockerfile_env,
    dockerfile_instructions,
    healthcheck_command,
)

REQUIREMENTS = ROOT / "requirements.txt"
BASE_IMAGE = re.compile(r"^python:(?P<version>3\.\d+\.\d+)-slim-(?P<debian>[a-z]+)(@sha256:[0-9a-f]{64})?$")
# Never in the build context, let alone the image.
NEVER_COPIED = {".", "./", ".git", ".venv", "tests", "node_modules", "instance", "docs", "deploy",
                "extensions"}
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE|CREDENTIAL|DSN", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@\"']+:[^/\s@\"']+@")


def base_image() -> re.Match[str]:
    (base,) = dockerfile("FROM")
    match = BASE_IMAGE.match(base.arguments)
    assert match, f"FROM {base.arguments}: pin python:<major.minor.patch>-slim-<debian release>"
    return match


def pins() -> dict[str, Requirement]:
    """requirements.txt as {canonical name: requirement}; every line must be an exact pin."""
    found: dict[str, Requirement] = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{line}: pin exactly (==)"
        found[canonicalize_name(requirement.name)] = requirement
    return found


def pinned_version(requirement: Requirement) -> str:
    (specifier,) = requirement.specifier
    return specifier.version


def copy_sources() -> list[str]:
    sources: list[str] = []
    for instruction in dockerfile("COPY"):
        arguments = [a for a in shlex.split(instruction.arguments) if not a.startswith("--")]
        assert "--from" not in instruction.arguments, "a multi-stage COPY: extend this test"
        sources += arguments[:-1]
    return sources


def test_the_base_image_is_a_pinned_python_slim_release() -> None:
    match = base_image()
    assert match["version"].startswith("3.11."), "the project targets Python 3.11 (pyproject.toml)"
    assert len(dockerfile("FROM")) == 1


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    instructions = dockerfile_instructions()
    users = [i for i, instruction in enumerate(instructions) if instruction.keyword == "USER"]
    commands = [i for i, instruction in enumerate(instructions)
                if instruction.keyword in ("CMD", "ENTRYPOINT")]
    assert users and commands and users[-1] < min(commands), "USER must come before CMD"
    uid, _, gid = instructions[users[-1]].arguments.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0, (
        f"USER {instructions[users[-1]].arguments}: use a numeric non-root uid:gid")
    created = " ".join(i.arguments for i in dockerfile("RUN"))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created, "the USER's ids are never created"


def test_the_healthcheck_asks_healthz_on_the_port_gunicorn_binds() -> None:
    (exposed,) = dockerfile("EXPOSE")
    port = exposed.arguments.split("/")[0]
    assert dockerfile_env()["GUNICORN_BIND"] == f"0.0.0.0:{port}"
    command = " ".join(healthcheck_command())
    assert f"127.0.0.1:{port}/healthz" in command
    (healthcheck,) = dockerfile("HEALTHCHECK")
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in healthcheck.arguments, f"HEALTHCHECK should set {option}"


def test_the_command_is_gunicorn_with_the_repositorys_config() -> None:
    (command,) = dockerfile("CMD")
    assert command.exec_form() == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], (
        "exec form, so gunicorn is PID 1 and gets SIGTERM itself")
    assert not dockerfile("ENTRYPOINT")


def test_exactly_the_pinned_requirements_are_installed() -> None:
    assert any(shlex.split(c.arguments)[0] == "requirements.txt" for c in dockerfile("COPY"))
    installs = [run.arguments for run in dockerfile("RUN") if "pip install" in run.arguments]
    assert len(installs) == 1, "one pip install, from requirements.txt only"
    (install,) = installs
    words = shlex.split(install.split("&&")[0])
    assert words[:2] == ["pip", "install"] and "--no-deps" in words, words
    assert words[words.index("-r") + 1] == "requirements.txt"
    assert [w for w in words[2:] if not w.startswith("-") and w != "requirements.txt"] == [], (
        "no package outside requirements.txt")
    assert "pip check" in install, "pip check fails the build if a pinned package lacks a dependency"
    assert pins()


def test_requirements_pin_every_runtime_dependency_for_the_images_python() -> None:
    # pip install --no-deps trusts requirements.txt to be complete: check it against the installed
    # metadata, with markers evaluated for the interpreter the image has, not the one running the tests.
    version = base_image()["version"]
    environment = {**default_environment(), "python_version": version.rsplit(".", 1)[0],
                   "python_full_version": version, "implementation_name": "cpython",
                   "platform_python_implementation": "CPython", "sys_platform": "linux",
                   "platform_system": "Linux", "os_name": "posix"}
    pinned = pins()
    problems = []
    for name, requirement in pinned.items():
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed here (make dev-venv) so its dependencies are unknown")
            continue
        if distribution.version != pinned_version(requirement):
            problems.append(f"{name}: {distribution.version} installed, {pinned_version(requirement)} pinned")
            continue
        extras = {""} | set(requirement.extras)
        for line in distribution.requires or []:
            dependency = Requirement(line)
            if dependency.marker and not any(dependency.marker.evaluate({**environment, "extra": extra})
                                             for extra in extras):
                continue
            dependency_name = canonicalize_name(dependency.name)
            if dependency_name not in pinned:
                problems.append(f"{dependency_name} (needed by {name}: {line}) is not pinned")
            elif not dependency.specifier.contains(pinned_version(pinned[dependency_name]), prereleases=True):
                problems.append(f"{dependency_name}=={pinned_version(pinned[dependency_name])} does not "
                                f"satisfy {name}'s {dependency}")
    assert not problems, "requirements.txt is not complete:\n" + "\n".join(problems)


def test_only_what_runs_is_copied() -> None:
    sources = copy_sources()
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        assert source.strip("/") not in NEVER_COPIED and source not in NEVER_COPIED, f"COPY {source}"
        assert not re.search(r"(^|/)\.env$|\.pem$|\.key$", source), f"COPY {source}: a secret file"


def test_no_secret_is_baked_into_the_image() -> None:
    for instruction in dockerfile("ENV") + dockerfile("ARG"):
        names = [item.partition("=")[0] for item in shlex.split(instruction.arguments)]
        for name in names:
            assert not SECRET_NAME.search(name), f"{instruction.keyword} {name}: secrets come at run time"
            # Settings are the deployment's: an image default would silently override nothing or hide a gap.
            assert not name.startswith("STOREFRONT_"), f"{instruction.keyword} {name}: the deployment sets it"
    for instruction in dockerfile_instructions():
        assert not URL_WITH_PASSWORD.search(instruction.arguments), f"a password in {instruction.keyword}"


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _glob(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex over a context-relative path (Go's filepath.Match plus **)."""
    regex = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex, index = regex + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
        elif pattern[index] == "*":
            regex, index = regex + "[^/]*", index + 1
        elif pattern[index] == "?":
            regex, index = regex + "[^/]", index + 1
        else:
            regex, index = regex + re.escape(pattern[index]), index + 1
    return re.compile(regex)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: it or a parent matches the last pattern that applies."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _glob(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            result = not negated
    return result


def test_dockerignore_keeps_local_state_out_and_the_copied_files_in() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv", "tests", "node_modules", "instance", ".git", "storefront/__pycache__", ".env"):
        assert ignored(path, patterns), f".dockerignore should exclude {path}"
    for source in copy_sources():
        assert not ignored(source, patterns), f".dockerignore excludes {source}, which the Dockerfile copies"
        for path in (ROOT / source).rglob("*") if (ROOT / source).is_dir() else []:
            relative = path.relative_to(ROOT).as_posix()
            if "__pycache__" not in relative and not relative.endswith(".pyc"):
                assert not ignored(relative, patterns), f".dockerignore drops {relative}, needed"
