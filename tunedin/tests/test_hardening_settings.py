"""Production-safe defaults: settings from the environment pass `check --deploy`, a secret key is
required, CSP on every page, /metrics closed without its token, one-line `manage.py` errors,
`make seed` / `make train` migrate first, and a favicon."""

import os
import secrets
import subprocess
import sys

import pytest

from conftest import ROOT

PRODUCTION_LIKE = {
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "tunedin.example.org",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://tunedin.example.org",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_SESSION_COOKIE_SECURE": "true",
    "DJANGO_CSRF_COOKIE_SECURE": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
    "METRICS_BEARER_TOKEN": "a-scrape-token",
    # Nothing listens on port 9: these commands must not need a database or Redis.
    "DATABASE_URL": "postgresql://tunedin@127.0.0.1:9/tunedin",
    "REDIS_URL": "redis://127.0.0.1:9/0",
}


def _manage(*arguments: str, environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT, env={"PATH": os.environ.get("PATH", ""), **environment},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_check_deploy_is_clean_with_production_settings_from_the_environment():
    environment = {**PRODUCTION_LIKE, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    completed = _manage("check", "--deploy", "--fail-level", "WARNING", environment=environment)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no issues" in completed.stdout
    assert "WARNING" not in completed.stderr


def test_settings_refuse_to_start_without_a_secret_key_unless_debugging():
    refused = _manage("check", environment=PRODUCTION_LIKE)
    debugging = _manage("check", environment={**PRODUCTION_LIKE, "DJANGO_DEBUG": "true"})

    assert refused.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off" in refused.stderr
    assert debugging.returncode == 0, debugging.stderr


def test_manage_py_without_a_reachable_database_says_in_one_line_how_to_run_it():
    environment = {**PRODUCTION_LIKE, "DJANGO_SECRET_KEY": "x" * 50}
    completed = _manage("migrate", "--noinput", environment=environment)

    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert completed.returncode != 0
    assert len(lines) == 1, completed.stderr
    assert "no database at DATABASE_URL" in lines[0]
    assert "python -m devstack run -- python manage.py" in lines[0]


def test_manage_py_without_a_database_url_says_so_in_one_line():
    environment = {"DJANGO_SECRET_KEY": "x" * 50, "REDIS_URL": "redis://127.0.0.1:9/0"}
    completed = _manage("migrate", "--noinput", environment=environment)

    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert completed.returncode != 0
    assert len(lines) == 1 and "DATABASE_URL is not set" in lines[0], completed.stderr


@pytest.mark.parametrize("target, command", [("seed", "seed_demo"), ("train", "train")])
def test_make_seed_and_train_migrate_first(target, command):
    dry_run = subprocess.run(
        ["make", "--dry-run", "--always-make", target],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dry_run.returncode == 0, dry_run.stderr
    manage_commands = [
        line.split("manage.py", 1)[1].split()[0]
        for line in dry_run.stdout.splitlines()
        if "manage.py" in line
    ]
    assert manage_commands == ["migrate", command]


@pytest.mark.django_db
def test_pages_carry_a_csp_that_allows_scripts_from_the_site_only(client):
    policy = client.get("/")["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )

    assert directives["script-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in directives["style-src"]


@pytest.mark.django_db
def test_the_api_docs_pages_relax_styles_but_not_scripts(client):
    for url in ("/api/docs/", "/api/redoc/"):
        response = client.get(url)
        assert response.status_code == 200
        policy = response["Content-Security-Policy"]
        assert "script-src 'self';" in policy + ";"
        assert "style-src 'self' 'unsafe-inline'" in policy
        assert "cdn" not in response.content.decode().lower()  # everything from the sidecar


@pytest.mark.django_db
def test_metrics_are_closed_without_a_token_unless_public(client, settings):
    settings.METRICS_BEARER_TOKEN = ""
    settings.METRICS_PUBLIC = False
    closed = client.get("/metrics")
    settings.METRICS_PUBLIC = True
    public = client.get("/metrics")

    assert closed.status_code == 401 and closed["WWW-Authenticate"] == "Bearer"
    assert public.status_code == 200


def test_metrics_are_public_by_default_only_when_debugging():
    script = "import django; django.setup(); from django.conf import settings; "
    script += "print(settings.METRICS_PUBLIC)"
    answers = {}
    for debug in ("false", "true"):
        completed = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={"PATH": os.environ.get("PATH", ""), **PRODUCTION_LIKE, "DJANGO_DEBUG": debug,
                 "DJANGO_SECRET_KEY": "x" * 50, "DJANGO_SETTINGS_MODULE": "tunedin.settings"},
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        answers[debug] = completed.stdout.strip()
    assert answers == {"false": "False", "true": "True"}


@pytest.mark.django_db
def test_probes_are_not_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/").status_code == 301
    assert client.get("/healthz").status_code in (200, 503)


def test_the_site_has_a_favicon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/")
    icon = b"".join(response.streaming_content)
    assert icon[:4] == b"\x00\x00\x01\x00"  # an ICO file
