"""deploy/kubernetes: the manifests parse, fit together, and configure the app the way it needs (static)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from flask import Flask

from storefront.cdn import create_purger
from storefront.settings import PREFIX, SETTINGS, SettingsError, load_settings
from tests.deploy.deploy_files import (
    KUBERNETES,
    PLACEHOLDER,
    app_container,
    container_port,
    dockerfile,
    dockerfile_env,
    documents,
    effective_gunicorn_config,
    filled_secret,
    gunicorn_environment_names,
    kustomization,
    manifest_files,
    pod_environment,
    pod_spec,
    quantity,
    selects,
    the_one,
)

API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "ConfigMap": "v1",
    "Secret": "v1",
}
# Settings that carry credentials (tokens, keys, passwords inside URLs): the Secret's, never a ConfigMap's.
CREDENTIAL_SETTINGS = {"ADMIN_TOKENS", "SHOPIFY_API_SECRET", "SECRET_KEY", "DATABASE_URL",
                       "DATABASE_REPLICA_URL", "REDIS_URL", "CDN_PURGE", "SENTRY_DSN"}
# The credentials the app itself accepts: a placeholder for one of these must never be usable.
ACCEPTED_CREDENTIALS = {"ADMIN_TOKENS", "SHOPIFY_API_SECRET", "SECRET_KEY"}
SETTING_NAMES = {setting.name for setting in SETTINGS}


def deployment() -> dict:
    return the_one("Deployment")


def pod_labels() -> dict[str, str]:
    return deployment()["spec"]["template"]["metadata"]["labels"]


def all_containers() -> list[dict]:
    return pod_spec().get("initContainers", []) + pod_spec()["containers"]


def gunicorn_config(tmp_path: Path) -> dict:
    return effective_gunicorn_config(pod_environment(), tmp_path / "metrics")


def prestop_seconds() -> int:
    pre_stop = app_container()["lifecycle"]["preStop"]
    if "sleep" in pre_stop:  # the native sleep action (Kubernetes 1.30+)
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, f"preStop should be a plain sleep, not {command}"
    return int(command[1])


# --- files and kinds ---------------------------------------------------------------------------------


def test_every_manifest_parses_with_a_known_kind_and_api_version() -> None:
    found = documents()
    assert found, "no manifests under deploy/kubernetes"
    for name, document in found:
        kind = document.get("kind")
        assert kind in API_VERSIONS, f"{name}: unexpected kind {kind!r}"
        assert document.get("apiVersion") == API_VERSIONS[kind], (
            f"{name}: {kind} should be {API_VERSIONS[kind]}, not {document.get('apiVersion')}")
        assert document.get("metadata", {}).get("name"), f"{name}: {kind} has no metadata.name"
    assert sorted(document["kind"] for _, document in found) == sorted(API_VERSIONS), (
        "expected exactly one manifest of each kind")


def test_kustomization_lists_every_manifest_and_names_the_image() -> None:
    listed = kustomization()["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    assert sorted(listed) == [path.name for path in manifest_files()], (
        "kustomization.yaml must list exactly the manifests in deploy/kubernetes")
    images = {image["name"] for image in kustomization().get("images", [])}
    for container in all_containers():
        assert container["image"] in images, f"{container['name']}: image not set by kustomization.yaml"


def test_kustomize_builds_the_whole_set() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the build by kustomize itself is not checked")
    done = subprocess.run([kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    built = [document for document in yaml.safe_load_all(done.stdout) if document]
    assert sorted(document["kind"] for document in built) == sorted(API_VERSIONS)
    (image,) = kustomization()["images"]
    built_deployment = next(document for document in built if document["kind"] == "Deployment")
    for container in (built_deployment["spec"]["template"]["spec"]["initContainers"]
                      + built_deployment["spec"]["template"]["spec"]["containers"]):
        assert container["image"] == f"{image['newName']}:{image['newTag']}"


def test_manifest_strings_are_strings() -> None:
    # The API server rejects a number or boolean where a string belongs (GUNICORN_WORKERS: 2, "on").
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    for kind, values in (("ConfigMap", the_one("ConfigMap").get("data", {})),
                         ("Secret", the_one("Secret").get("stringData", {})),
                         ("Deployment annotations", annotations)):
        for name, value in values.items():
            assert isinstance(value, str), f"{kind} {name}: {value!r} must be quoted as a string"
    for container in all_containers():
        for variable in container.get("env", []):
            assert isinstance(variable.get("value", ""), str), f"env {variable['name']} must be a string"


# --- selectors and targets ---------------------------------------------------------------------------


def test_the_deployment_selects_its_own_pods_and_everything_targets_them() -> None:
    labels = pod_labels()
    assert selects(deployment()["spec"]["selector"], labels), "the Deployment's selector misses its pods"
    service_selector = the_one("Service")["spec"]["selector"]
    assert selects({"matchLabels": service_selector}, labels), "the Service does not select the pods"
    assert selects(the_one("PodDisruptionBudget")["spec"]["selector"], labels), "the PDB misses the pods"
    target = the_one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1", "Deployment", deployment()["metadata"]["name"])
    for constraint in pod_spec()["topologySpreadConstraints"]:
        assert selects(constraint["labelSelector"], labels), f"{constraint['topologyKey']}: selects no pod"


def test_the_service_routes_port_80_to_the_port_gunicorn_binds(tmp_path: Path) -> None:
    service = the_one("Service")["spec"]
    assert service.get("type", "ClusterIP") == "ClusterIP"
    (port,) = service["ports"]
    assert port["port"] == 80
    target = container_port(app_container(), port["targetPort"])
    assert target == 8000
    assert gunicorn_config(tmp_path)["bind"] == f"0.0.0.0:{target}", "gunicorn must listen on the pod IP"


# --- rollout, probes and shutdown --------------------------------------------------------------------


def test_rolling_update_never_drops_below_capacity() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": "25%"}


def test_probes_hit_readyz_and_healthz_on_the_container_port(sqlite_app: Flask) -> None:
    container = app_container()
    expected = {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"}
    routes = sqlite_app.url_map.bind("localhost")
    for probe_name, path in expected.items():
        probe = container[probe_name]["httpGet"]
        assert probe["path"] == path, f"{probe_name} should ask {path}"
        assert container_port(container, probe["port"]) == 8000
        routes.match(path, method="GET")  # raises NotFound if the app has no such route
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    # Readiness reacts first; liveness only restarts a pod that stays dead well after that.
    assert (liveness["periodSeconds"] * liveness["failureThreshold"]
            > readiness["periodSeconds"] * readiness["failureThreshold"])
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30, "give the app time to start"


def test_termination_grace_outlasts_the_prestop_sleep_and_gunicorns_graceful_timeout(tmp_path: Path) -> None:
    graceful_timeout = gunicorn_config(tmp_path)["graceful_timeout"]
    sleep = prestop_seconds()
    assert sleep >= 5, "the preStop sleep should let endpoint removal propagate before SIGTERM"
    # The grace period counts from the start of preStop; SIGKILL comes when it runs out.
    assert pod_spec()["terminationGracePeriodSeconds"] >= sleep + graceful_timeout + 5, (
        f"terminationGracePeriodSeconds must exceed preStop ({sleep}s) + graceful_timeout "
        f"({graceful_timeout}s)")


def test_the_init_container_migrates_with_the_same_image_and_configuration() -> None:
    (init,) = pod_spec()["initContainers"]
    assert init["command"] == ["flask", "--app", "storefront", "init-db"]
    assert init["image"] == app_container()["image"]
    assert init["envFrom"] == app_container()["envFrom"]


# --- security and writable paths ---------------------------------------------------------------------


def test_pods_run_as_the_images_non_root_user_with_a_read_only_root() -> None:
    pod = pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0 and pod["runAsGroup"] != 0
    (user,) = dockerfile("USER")
    assert user.arguments == f"{pod['runAsUser']}:{pod['runAsGroup']}", "the pod and the image disagree"
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod_spec()["automountServiceAccountToken"] is False
    for container in all_containers():
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert not context.get("privileged"), container["name"]
        assert context.get("runAsUser", pod["runAsUser"]) != 0, container["name"]


def test_writable_paths_are_empty_dirs_and_the_metrics_dir_is_one() -> None:
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    for volume in volumes.values():
        assert "emptyDir" in volume, f"{volume['name']}: only emptyDir volumes are expected"
        assert volume["emptyDir"].get("sizeLimit"), f"{volume['name']}: an emptyDir needs a sizeLimit"
    for container in all_containers():
        mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
        assert mounts.get("/tmp") in volumes, f"{container['name']}: /tmp must be a writable emptyDir"
    mounts = {mount["mountPath"]: mount["name"] for mount in app_container()["volumeMounts"]}
    metrics_dir = pod_environment()["PROMETHEUS_MULTIPROC_DIR"]
    assert metrics_dir in mounts and mounts[metrics_dir] != mounts["/tmp"], (
        "PROMETHEUS_MULTIPROC_DIR must be an emptyDir of its own (gunicorn empties it at start)")


def test_service_links_are_off_so_nothing_else_lands_in_the_settings_namespace() -> None:
    # A Service named storefront would inject STOREFRONT_SERVICE_HOST, STOREFRONT_PORT, ...
    assert (the_one("Service")["metadata"]["name"].upper() + "_").startswith(PREFIX)
    assert pod_spec()["enableServiceLinks"] is False


# --- resources and scaling ---------------------------------------------------------------------------


def test_every_container_has_requests_and_limits_in_order() -> None:
    for container in all_containers():
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            limit = quantity(resources["limits"][resource])
            assert 0 < request <= limit, f"{container['name']} {resource}: request {request} > limit {limit}"


def test_workers_are_explicit_and_their_caches_fit_the_memory_limit(tmp_path: Path) -> None:
    environment = pod_environment()
    # Memory is sized per worker: the count is fixed, not derived from the CPU limit by gunicorn.conf.py.
    assert "GUNICORN_WORKERS" in environment
    workers = gunicorn_config(tmp_path)["workers"]
    limits = app_container()["resources"]["limits"]
    cache_bytes = int(environment.get(f"{PREFIX}LOCAL_CACHE_BYTES", "67108864"))
    assert workers * cache_bytes <= quantity(limits["memory"]) / 2, (
        "each worker's in-process cache is full in steady state: leave half the limit for Python itself")
    assert workers <= 2 * quantity(limits["cpu"]), "more workers than the CPU limit can run"


def test_the_autoscaler_scales_on_cpu_between_3_and_30_with_a_calm_scale_down() -> None:
    hpa = the_one("HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 30)
    assert hpa["minReplicas"] >= deployment()["spec"]["replicas"]
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    # Utilization is relative to requests: without a CPU request the autoscaler cannot work.
    assert quantity(app_container()["resources"]["requests"]["cpu"]) > 0
    behavior = hpa["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 120, "scale-down should not flap"
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] <= 60, "scale-up should react quickly"
    for direction in ("scaleUp", "scaleDown"):
        assert behavior[direction]["policies"], f"{direction} needs at least one policy"


def test_the_disruption_budget_lets_exactly_one_pod_go_at_a_time() -> None:
    spec = the_one("PodDisruptionBudget")["spec"]
    minimum = the_one("HorizontalPodAutoscaler")["spec"]["minReplicas"]
    if "maxUnavailable" in spec:
        assert spec["maxUnavailable"] == 1
    else:
        # minAvailable must leave room for a drain at the smallest scale, or node drains hang.
        assert spec["minAvailable"] == minimum - 1


def test_prometheus_scrapes_the_metrics_route_on_the_container_port(sqlite_app: Flask) -> None:
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert container_port(app_container(), int(annotations["prometheus.io/port"])) == 8000
    assert annotations["prometheus.io/path"] == "/metrics"
    sqlite_app.url_map.bind("localhost").match("/metrics", method="GET")


def test_topology_spread_covers_zones_and_nodes() -> None:
    keys = {constraint["topologyKey"] for constraint in pod_spec()["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in pod_spec()["topologySpreadConstraints"]:
        assert constraint["maxSkew"] == 1


# --- settings ------------------------------------------------------------------------------------------


def test_every_storefront_variable_is_a_real_setting() -> None:
    names = set(pod_environment())
    for container in all_containers():
        names |= {variable["name"] for variable in container.get("env", [])}
    unknown = sorted(n for n in names if n.startswith(PREFIX) and n[len(PREFIX):] not in SETTING_NAMES)
    assert not unknown, f"not settings of storefront/settings.py: {unknown}"
    gunicorn = sorted(name for name in names if name.startswith("GUNICORN_"))
    assert set(gunicorn) <= gunicorn_environment_names(), "a GUNICORN_* variable gunicorn.conf.py never reads"


def test_every_setting_production_requires_is_provided() -> None:
    environment = pod_environment()
    assert environment.get(f"{PREFIX}ENV", "production") == "production"
    for setting in SETTINGS:
        if setting.production_required:
            assert environment.get(PREFIX + setting.name, "").strip(), f"{PREFIX}{setting.name} is not set"


def test_credentials_live_only_in_the_secret() -> None:
    assert CREDENTIAL_SETTINGS <= SETTING_NAMES, "a credential setting was renamed: update this test"
    config = the_one("ConfigMap").get("data", {})
    leaked = sorted(name for name in config if name[len(PREFIX):] in CREDENTIAL_SETTINGS)
    assert not leaked, f"credentials in the ConfigMap: {leaked}"
    for container in all_containers():
        literal = [v["name"] for v in container.get("env", [])
                   if v["name"][len(PREFIX):] in CREDENTIAL_SETTINGS]
        assert not literal, f"{container['name']}: credentials as literal env: {literal}"
    secret = the_one("Secret")
    assert "data" not in secret, "the example Secret should use stringData, readable placeholders"
    for name in secret["stringData"]:
        assert name[len(PREFIX):] in CREDENTIAL_SETTINGS, f"{name} is not a credential: the ConfigMap's"


def test_the_example_secret_holds_only_marked_placeholders() -> None:
    for name, value in the_one("Secret")["stringData"].items():
        assert PLACEHOLDER in value, f"{name}: every example value must be a {PLACEHOLDER} placeholder"


def test_an_unedited_example_secret_stops_the_app_instead_of_running_with_known_credentials() -> None:
    example = the_one("Secret")["stringData"]
    provided = sorted(name[len(PREFIX):] for name in example if name[len(PREFIX):] in ACCEPTED_CREDENTIALS)
    assert provided == sorted(ACCEPTED_CREDENTIALS)
    for name in provided:
        secret = filled_secret()
        secret[PREFIX + name] = example[PREFIX + name]  # this one left as shipped
        with pytest.raises(SettingsError, match=re.escape(PREFIX + name)):
            load_settings(pod_environment(secret), None, "/nonexistent-instance")


def test_the_configuration_once_filled_in_is_valid(tmp_path: Path) -> None:
    settings = load_settings(pod_environment(), None, str(tmp_path))
    assert not settings.development
    assert settings.database_url.startswith("mysql://"), (
        "pods have a read-only root and several replicas: SQLite under instance/ cannot work")
    assert settings.redis_url, "without Redis each pod renders and caches alone"
    create_purger(settings.cdn_purge)  # raises ValueError on a malformed purger URL
    assert dockerfile_env()["GUNICORN_BIND"] == pod_environment()["GUNICORN_BIND"]
