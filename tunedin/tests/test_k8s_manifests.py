"""deploy/k8s/: every manifest is valid against the Kubernetes schemas (kubernetes-validate,
strict: an unknown or misspelled field fails), and the rules that keep the deployment sound
hold (one beat, the autoscaler on the web Deployment, migrations by a Job, probes and
resources everywhere, workers on the queues the settings route to)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

from conftest import ROOT

K8S = Path(ROOT) / "deploy" / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
# The oldest Kubernetes the manifests are meant for, and the newest the pinned package knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
SECRET_TEMPLATE = "secret.example.yaml"


def _documents() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path.name, document))
    return documents


DOCUMENTS = _documents()


def _named(kind: str, name: str) -> dict:
    (found,) = [d for _, d in DOCUMENTS if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _of_kind(kind: str) -> list[dict]:
    return [document for _, document in DOCUMENTS if document["kind"] == kind]


def _pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def _containers(workload: dict, *, init: bool = True) -> list[dict]:
    spec = _pod_spec(workload)
    return spec["containers"] + (spec.get("initContainers", []) if init else [])


def _env_example_variables() -> set[str]:
    text = (Path(ROOT) / "env.example").read_text()
    return set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, re.M))


def _command_option(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


def test_there_are_manifests_for_every_part_of_the_deployment():
    kinds = {(document["kind"], document["metadata"]["name"]) for _, document in DOCUMENTS}
    assert {
        ("Deployment", "tunedin-web"),
        ("Service", "tunedin-web"),
        ("HorizontalPodAutoscaler", "tunedin-web"),
        ("Deployment", "tunedin-worker"),
        ("Deployment", "tunedin-worker-training"),
        ("Deployment", "tunedin-beat"),
        ("Job", "tunedin-migrate"),
        ("ConfigMap", "tunedin-config"),
        ("Secret", "tunedin-secrets"),
    } <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("filename", "document"),
    DOCUMENTS,
    ids=[f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in DOCUMENTS],
)
def test_every_manifest_is_valid_against_the_kubernetes_schema(filename, document, version):
    kubernetes_validate.validate(document, version, strict=True)


def test_the_validation_catches_a_misspelled_field_and_a_wrong_type():
    """The check above can fail: strict validation refuses what Kubernetes would refuse."""
    misspelled = copy.deepcopy(_named("Deployment", "tunedin-web"))
    misspelled["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    wrong_type = copy.deepcopy(_named("Deployment", "tunedin-beat"))
    wrong_type["spec"]["replicas"] = "one"
    for broken in (misspelled, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_applies_every_manifest_but_the_secret_template():
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == on_disk - {SECRET_TEMPLATE}
    images = {image["name"] for image in KUSTOMIZATION["images"]}
    for _, document in DOCUMENTS:
        if "template" in document.get("spec", {}):
            for container in _containers(document):
                assert container["image"].split(":")[0] in images, container["name"]


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_directory():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    kinds = [document["kind"] for document in yaml.safe_load_all(rendered.stdout)]
    assert sorted(kinds) == sorted(
        document["kind"] for name, document in DOCUMENTS if name != SECRET_TEMPLATE
    )


def test_beat_runs_exactly_once_and_is_replaced_not_rolled():
    beat = _named("Deployment", "tunedin-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = _pod_spec(beat)["containers"]
    assert container["command"][:4] == ["celery", "-A", "tunedin", "beat"]
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in _of_kind("HorizontalPodAutoscaler")}
    assert "tunedin-beat" not in targets
    beats = [
        d for d in _of_kind("Deployment") if "beat" in _pod_spec(d)["containers"][0]["command"]
    ]
    assert beats == [beat]


def test_the_autoscaler_scales_the_web_deployment_on_cpu_it_requests():
    (hpa,) = _of_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "tunedin-web",
    )
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    web = _named("Deployment", "tunedin-web")
    assert "replicas" not in web["spec"]  # the autoscaler owns it; an apply would reset it
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    for container in _pod_spec(web)["containers"]:
        assert container["resources"]["requests"]["cpu"]  # utilization is relative to it


def test_the_service_reaches_the_web_pods_on_their_http_port():
    service, web = _named("Service", "tunedin-web"), _named("Deployment", "tunedin-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert web["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = _pod_spec(web)["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in ports
    bind = {e["name"]: e["value"] for e in container["env"]}["GUNICORN_BIND"]
    assert bind == f"0.0.0.0:{ports[service_port['targetPort']]}"


def test_the_migrate_job_runs_the_migrations_and_every_other_pod_waits_for_them():
    (job,) = _of_kind("Job")
    (container,) = _pod_spec(job)["containers"]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert _pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"]["backoffLimit"] >= 1
    for deployment in _of_kind("Deployment"):
        (waits,) = _pod_spec(deployment)["initContainers"]
        assert "manage.py migrate --check" in " ".join(waits["command"]), deployment["metadata"]


def test_every_container_has_resources_and_every_long_running_one_has_probes():
    for filename, document in DOCUMENTS:
        if "template" not in document.get("spec", {}):
            continue
        for container in _containers(document):
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"], filename
            assert resources["limits"]["memory"], filename  # a leak is killed, not the node
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert _pod_spec(document)["securityContext"]["runAsNonRoot"] is True
        if document["kind"] != "Deployment":
            continue
        for container in _containers(document, init=False):
            assert container["livenessProbe"], (filename, container["name"])
            assert container.get("startupProbe") or container.get("readinessProbe"), filename


def test_the_web_pods_report_ready_through_healthz_with_a_host_django_allows():
    (container,) = _pod_spec(_named("Deployment", "tunedin-web"))["containers"]
    allowed = _named("ConfigMap", "tunedin-config")["data"]["DJANGO_ALLOWED_HOSTS"].split(",")
    ports = {port["name"] for port in container["ports"]}
    for probe_name in ("readinessProbe", "startupProbe"):
        probe = container[probe_name]["httpGet"]
        assert probe["path"] == "/healthz"
        assert probe["port"] in ports
        # The kubelet sends the pod's IP as Host otherwise: Django would answer 400.
        headers = {header["name"]: header["value"] for header in probe["httpHeaders"]}
        assert headers["Host"] in allowed
    # Liveness does not depend on the database (/healthz is 503 while it is unreachable).
    assert container["livenessProbe"]["tcpSocket"]["port"] in ports


def test_the_workers_consume_every_queue_the_settings_route_to_and_each_one_once():
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    consumed = {}
    for deployment in _of_kind("Deployment"):
        (container,) = _pod_spec(deployment)["containers"]
        if container["command"][:4] == ["celery", "-A", "tunedin", "worker"]:
            queues = _command_option(container["command"], "--queues").split(",")
            consumed[deployment["metadata"]["name"]] = queues
            # The liveness ping goes to this worker's own node name.
            node = _command_option(container["command"], "--hostname").split("@")[0]
            assert (
                f"--destination {node}@$HOSTNAME"
                in container["livenessProbe"]["exec"]["command"][-1]
            )
    assert consumed == {
        "tunedin-worker": [default],
        "tunedin-worker-training": [settings.TRAINING_QUEUE],
    }
    assert routed == {settings.TRAINING_QUEUE}


def test_the_training_worker_runs_one_training_at_a_time_in_a_fresh_process():
    (container,) = _pod_spec(_named("Deployment", "tunedin-worker-training"))["containers"]
    assert _command_option(container["command"], "--concurrency") == "1"
    assert _command_option(container["command"], "--max-tasks-per-child") == "1"
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    config = _named("ConfigMap", "tunedin-config")["data"]
    assert {config["ARTIFACTS_DIR"], config["ARTIFACT_CACHE_DIR"]} <= mounts


def test_every_pod_reads_the_config_map_and_the_secret_that_exist():
    config, secret = _named("ConfigMap", "tunedin-config"), _named("Secret", "tunedin-secrets")
    for _, document in DOCUMENTS:
        if "template" not in document.get("spec", {}):
            continue
        for container in _containers(document):
            sources = container["envFrom"]
            assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources
            assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources


def test_config_and_secret_hold_only_documented_settings_and_secrets_stay_in_the_secret():
    documented = _env_example_variables()
    config = _named("ConfigMap", "tunedin-config")["data"]
    secret = _named("Secret", "tunedin-secrets")["stringData"]
    assert set(config) <= documented, sorted(set(config) - documented)
    assert set(secret) <= documented, sorted(set(secret) - documented)
    assert not set(config) & set(secret)
    for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "ARTIFACT_S3_SECRET_ACCESS_KEY"):
        assert name in secret and name not in config
    assert all(isinstance(value, str) for value in config.values())  # env values are strings
    assert config["DJANGO_DEBUG"] == "false"
    assert config["ARTIFACT_STORAGE_URL"].startswith("s3://")  # every pod, one store
