"""TunedIn settings: one module, driven by the environment (see env.example and README)."""

import re
from base64 import b64encode
from datetime import timedelta
from hashlib import sha256
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off: generate one with "
            '`python -c "import secrets; print(secrets.token_urlsafe(50))"`, or run through '
            "`make run` / `make test` (`python -m devstack …`), which set a development key."
        )
    SECRET_KEY = "tunedin-insecure-development-key-do-not-use-in-production"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "web",  # first: its registration/ templates override django.contrib.admin's
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_prometheus",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "axes",
    "csp",
    "accounts",
    "catalog",
    "feedback",
    "playlists",
    "recommendations",
    "mltasks",
    "ingest",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "tunedin.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After every middleware that may log a user in: turns a lockout into a 429 (axes' order).
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "tunedin.urls"
WSGI_APPLICATION = "tunedin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL only. `make run` / `make test` start an embedded server when this is unset.
try:
    DATABASES = {"default": env.db_url("DATABASE_URL")}
except ImproperlyConfigured as missing:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Run through `make run` / `make test` (or "
        "`python -m devstack run -- …`), which start embedded PostgreSQL and Redis."
    ) from missing
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("TunedIn runs on PostgreSQL only (DATABASE_URL=postgresql://…)")
DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"
# A unix-socket URL (…?host=/path) arrives as an option; Django expects it as HOST.
DATABASES["default"]["HOST"] = (
    DATABASES["default"].get("OPTIONS", {}).pop("host", None) or DATABASES["default"]["HOST"]
)
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set. Run through `make run` / `make test`, which start embedded Redis."
    )
# The cache gets its own Redis database so that clearing it never drops queued Celery tasks.
CACHE_REDIS_URL = env("CACHE_REDIS_URL", default="") or re.sub(
    r"(/\d*)?$", "/1", REDIS_URL, count=1
)
CACHE_TTL_SECONDS = env.int("CACHE_TTL_SECONDS", default=300)
TOKEN_AUTH_CACHE_SECONDS = env.int("TOKEN_AUTH_CACHE_SECONDS", default=60)
CACHES = {
    "default": {
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_REDIS_URL,
        "TIMEOUT": CACHE_TTL_SECONDS,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="tunedin"),
        "OPTIONS": {
            # A Redis outage degrades to "no cache", never to a 5xx.
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
        },
    }
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

AUTH_USER_MODEL = "accounts.User"
# django-axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Login lockout (django-axes) for the site, the admin and POST /api/auth/token: after
# AXES_FAILURE_LIMIT failed logins one username is refused from one address, the right password
# included, until AXES_COOLOFF_MINUTES have passed without a new failure (429 with Retry-After).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "tunedin.throttling.login_lockout_response"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
# Files served at the site's root by WhiteNoise (/favicon.ico).
WHITENOISE_ROOT = BASE_DIR / "public"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


def _throttle_rates(rates: dict[str, str]) -> dict[str, str | None]:
    """DRF rates ("30/minute"); an empty one, or "off", turns that throttle off."""
    return {
        scope: None if rate.strip().lower() in ("", "off", "none") else rate.strip()
        for scope, rate in rates.items()
    }


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API call gets 401 with a WWW-Authenticate header.
        "accounts.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    # Any JSON body that cannot be parsed (too deep, bad charset) is a 400, never a 500.
    "DEFAULT_PARSER_CLASSES": [
        "tunedin.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # 429 with Retry-After past a rate; counted in the Redis cache (tunedin/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "tunedin.throttling.AnonRateThrottle",
        "tunedin.throttling.UserRateThrottle",
        "tunedin.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": _throttle_rates(
        {
            "anon": env("THROTTLE_ANON_RATE", default="300/minute"),
            "user": env("THROTTLE_USER_RATE", default="3000/minute"),
            "api-token": env("THROTTLE_API_TOKEN_RATE", default="30/minute"),
            "feedback": env("THROTTLE_FEEDBACK_RATE", default="600/minute"),
        }
    ),
    # The client address is REMOTE_ADDR, or the one this many trusted proxies in front report.
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TunedIn API",
    "DESCRIPTION": "Music recommendations, playlist continuation and listening feedback.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from the installed drf-spectacular-sidecar: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation's 4xx answers with their bodies (tunedin/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tunedin.schema.error_responses_postprocess",
    ],
}

# Celery: Redis is the broker and the result backend; beat schedules live in the database.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
# With late acks, Redis hands a task that is still unacknowledged after the visibility timeout
# to another worker (or to the same one once it is free): Kombu's default of 1 hour would run a
# training longer than that twice (the continuation at demo scale 10 takes about 66 minutes).
# A worker that shuts down returns its tasks at once; only a killed one waits this long.
CELERY_VISIBILITY_TIMEOUT_SECONDS = env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=43_200)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT_SECONDS}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Two queues: training runs (mltasks.tasks.train_*) on `training`, so that training workers can
# live on other (GPU) hosts; every other task on the default queue. A worker started without
# --queues consumes both (`make run`); docker-compose.yml and deploy/k8s/ run one kind of worker
# per queue (`--queues celery` / `--queues training`).
CELERY_TASK_DEFAULT_QUEUE = "celery"
TRAINING_QUEUE = "training"
CELERY_TASK_QUEUES = (Queue(CELERY_TASK_DEFAULT_QUEUE), Queue(TRAINING_QUEUE))
CELERY_TASK_ROUTES = {"mltasks.tasks.train_*": {"queue": TRAINING_QUEUE}}
# Workers log through LOGGING below (JSON, with request ids), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Machine learning.
ARTIFACTS_DIR = Path(env("ARTIFACTS_DIR", default=str(BASE_DIR / "var" / "artifacts")))
# Model artifacts are shared through the `artifacts` storage (mltasks/artifact_store.py): the
# trainer uploads a version's files once, every other process reads them through its local
# cache. ARTIFACT_STORAGE_URL: empty = the local filesystem (var/artifact-store, read in place),
# file:///path = a directory (e.g. a shared volume), s3://bucket[/prefix] = S3 or an
# S3-compatible store (MinIO) through django-storages.
ARTIFACT_STORAGE_URL = env("ARTIFACT_STORAGE_URL", default="")
ARTIFACT_CACHE_DIR = Path(
    env("ARTIFACT_CACHE_DIR", default=str(BASE_DIR / "var" / "artifact-cache"))
)
_artifact_store = urlsplit(ARTIFACT_STORAGE_URL)
if not ARTIFACT_STORAGE_URL or (
    _artifact_store.scheme == "file"
    and not _artifact_store.netloc
    and _artifact_store.path.startswith("/")
):
    STORAGES["artifacts"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": _artifact_store.path or str(BASE_DIR / "var" / "artifact-store")},
    }
elif _artifact_store.scheme == "s3" and _artifact_store.netloc:
    _artifact_s3_endpoint = env("ARTIFACT_S3_ENDPOINT_URL", default="") or None
    STORAGES["artifacts"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _artifact_store.netloc,
            "location": _artifact_store.path.strip("/"),
            # Empty keys: boto3's own chain (AWS_* variables, instance or pod role).
            "access_key": env("ARTIFACT_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env("ARTIFACT_S3_SECRET_ACCESS_KEY", default="") or None,
            "region_name": env("ARTIFACT_S3_REGION", default="") or None,
            "endpoint_url": _artifact_s3_endpoint,
            # MinIO and moto answer on one host name: path-style keys there.
            "addressing_style": "path" if _artifact_s3_endpoint else None,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
            # A download larger than this spools to a temporary file, not to memory.
            "max_memory_size": 16 * 1024 * 1024,
        },
    }
else:
    raise ImproperlyConfigured(
        f"ARTIFACT_STORAGE_URL={ARTIFACT_STORAGE_URL!r}: expected empty (var/artifact-store), "
        "file:///absolute/path or s3://bucket[/prefix]"
    )
RETRIEVAL_BACKEND = env("RETRIEVAL_BACKEND", default="auto")
# With RETRIEVAL_BACKEND=auto: exact search up to this many tracks, FAISS HNSW above.
RETRIEVAL_APPROXIMATE_ABOVE = env.int("RETRIEVAL_APPROXIMATE_ABOVE", default=50_000)
# maintenance_work_mem while a version's HNSW index is built (a graph that fits builds fastest).
VECTOR_INDEX_BUILD_MEMORY = env("VECTOR_INDEX_BUILD_MEMORY", default="512MB")
if not re.fullmatch(r"\d+\s*(kB|MB|GB)", VECTOR_INDEX_BUILD_MEMORY):
    raise ImproperlyConfigured(
        f"VECTOR_INDEX_BUILD_MEMORY={VECTOR_INDEX_BUILD_MEMORY!r}: expected a size such as 512MB"
    )
SESSION_GAP_MIN = env.int("SESSION_GAP_MIN", default=45)
VOCAB_MIN_FREQ = env.int("VOCAB_MIN_FREQ", default=5)
MAX_SEQ_LEN = env.int("MAX_SEQ_LEN", default=50)
LOSS_LABEL_SMOOTH = env.float("LOSS_LABEL_SMOOTH", default=0.1)
MODEL_D = env.int("MODEL_D", default=64)
RETRAIN_CRON_HOUR = env.int("RETRAIN_CRON_HOUR", default=3)

LOG_FORMAT = env("LOG_FORMAT", default="json")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "filters": {"request_id": {"()": "tunedin.request_id.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # axes: each login at INFO (the admin lists them); failures and lockouts stay at WARNING.
    "loggers": {"pgserver": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Training: a time budget per neural model, an epoch cap and the seed (see EVALUATION.md).
TRAINING_BUDGET_SECONDS = env.float("TRAINING_BUDGET_SECONDS", default=60.0)
TRAINING_MAX_EPOCHS = env.int("TRAINING_MAX_EPOCHS", default=200)
TRAINING_SEED = env.int("TRAINING_SEED", default=2020)
# The models a training run may serve, by name (empty: every model it trains, the learned
# ranker included; the best on validation serves). E.g. "SASRec,GRU4Rec" serves only models
# with vectors, so approximate search applies to every request.
SERVED_CANDIDATES = tuple(env.list("SERVED_CANDIDATES", default=[]))
# Where LightGCN, SASRec and GRU4Rec train: auto (CUDA when torch sees a GPU) | cpu | cuda.
TRAINING_DEVICE = env("TRAINING_DEVICE", default="cpu")
# Base seconds of the hyper-parameter search (optuna TPE on validation) before each LightGCN,
# SASRec and GRU4Rec fit, scaled with the number of interactions (mltasks.ml.tuning); 0 = no
# search, the settings tuned on HetRec.
TRAINING_SEARCH_SECONDS = env.float("TRAINING_SEARCH_SECONDS", default=20.0)
# A neural model that its time budget left far below the baselines on validation is dropped
# from the test pass, the blend, the ranker and the served candidates (its validation column and
# the reason stay in the version's report): LightGCN below this share of the best of ItemKNN's
# and EASE's nDCG@20, SASRec or GRU4Rec below this share of session-kNN's Recall@20. 0 = never;
# a model named in SERVED_CANDIDATES is never dropped.
TRAINING_LIGHTGCN_MIN_BASELINE_SHARE = env.float(
    "TRAINING_LIGHTGCN_MIN_BASELINE_SHARE", default=0.5
)
TRAINING_SEQUENCE_MIN_BASELINE_SHARE = env.float(
    "TRAINING_SEQUENCE_MIN_BASELINE_SHARE", default=0.25
)

# Operations: the version /healthz reports, metrics (tunedin/metrics.py) and drift monitoring.
APP_VERSION = env("APP_VERSION", default="0.1.0")
# Each Celery worker serves Prometheus metrics on this port (0 = off, e.g. in tests).
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
# When set, GET /metrics needs `Authorization: Bearer <token>` (Prometheus: `authorization`).
METRICS_BEARER_TOKEN = env("METRICS_BEARER_TOKEN", default="")
# Without a token /metrics answers 401, unless it is public (the default with DJANGO_DEBUG on).
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=DEBUG)
# Latency buckets of django-prometheus's per-view histograms: fine enough for a 5 ms p50.
PROMETHEUS_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    float("inf"),
)  # fmt: skip
DRIFT_PSI_THRESHOLD = env.float("DRIFT_PSI_THRESHOLD", default=0.2)
DRIFT_WINDOW_DAYS = env.int("DRIFT_WINDOW_DAYS", default=7)
# Listening events stamped before this moment (ISO 8601) are refused as bad timestamps.
FEEDBACK_MIN_TIMESTAMP = env("FEEDBACK_MIN_TIMESTAMP", default="2000-01-01T00:00:00Z")

# Impressions (feedback.Impression): which tracks each served list showed, for the online
# metrics. A request appends one record per list to its process's memory, which a thread
# pushes every 250 ms to a Redis list (IMPRESSIONS_REDIS_URL, by default the cache's
# database; feedback.impression_buffer); the `impressions_flush` beat task (every
# IMPRESSIONS_FLUSH_SECONDS, set when the schedule is created; editable in the admin) writes
# them in bulk, and `impressions_prune` deletes those older than IMPRESSIONS_RETENTION_DAYS.
# Feedback without a request_id links to the listener's latest impression of the track in the
# IMPRESSIONS_LINK_MINUTES before it, among their IMPRESSIONS_LINK_LISTS latest lists there (a
# bound on what one POST reads for a listener served thousands of lists). At most
# IMPRESSIONS_BUFFER_MAX lists wait in Redis (the oldest are dropped past it, e.g. while no
# worker flushes).
IMPRESSIONS_ENABLED = env.bool("IMPRESSIONS_ENABLED", default=True)
IMPRESSIONS_RETENTION_DAYS = env.int("IMPRESSIONS_RETENTION_DAYS", default=30)
IMPRESSIONS_FLUSH_SECONDS = env.int("IMPRESSIONS_FLUSH_SECONDS", default=5)
IMPRESSIONS_LINK_MINUTES = env.int("IMPRESSIONS_LINK_MINUTES", default=30)
IMPRESSIONS_LINK_LISTS = env.int("IMPRESSIONS_LINK_LISTS", default=200)
IMPRESSIONS_BUFFER_MAX = env.int("IMPRESSIONS_BUFFER_MAX", default=100_000)
IMPRESSIONS_REDIS_URL = env("IMPRESSIONS_REDIS_URL", default="") or CACHE_REDIS_URL
for _name in (
    "IMPRESSIONS_RETENTION_DAYS",
    "IMPRESSIONS_FLUSH_SECONDS",
    "IMPRESSIONS_LINK_MINUTES",
    "IMPRESSIONS_LINK_LISTS",
    "IMPRESSIONS_BUFFER_MAX",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1 (it is {globals()[_name]})")

# Several checkouts (or agents) may share one server: each can pick its own test database.
if test_database_name := env("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": test_database_name}

# Production security: each toggle from the environment (README, env.example). Behind a TLS
# proxy turn them all on; `manage.py check --deploy` is then clean (tunedin/tests/test_deploy.py).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# Probes from inside the stack (healthchecks, Prometheus) speak plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=False)
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    # Only behind a proxy that sets this header itself (and drops a client's).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content Security Policy (django-csp): scripts and styles from this site only. htmx comes from
# django-htmx's static files; the one inline style htmx 2 adds (its request indicator, this exact
# text) is allowed by its hash. The API docs relax styles for their pages (tunedin/api_docs.py).
_HTMX_INDICATOR_STYLE = (
    ".htmx-indicator{opacity:0;visibility: hidden} .htmx-request .htmx-indicator, "
    ".htmx-request.htmx-indicator{opacity:1;visibility: visible;transition: opacity 200ms ease-in}"
)
HTMX_INDICATOR_STYLE_HASH = (
    f"'sha256-{b64encode(sha256(_HTMX_INDICATOR_STYLE.encode()).digest()).decode()}'"
)
_csp_policy = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, HTMX_INDICATOR_STYLE_HASH],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
if _csp_report_uri := env("CSP_REPORT_URI", default=""):
    _csp_policy["DIRECTIVES"]["report-uri"] = [_csp_report_uri]
# CSP_REPORT_ONLY=true: browsers report violations (to CSP_REPORT_URI) instead of blocking.
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _csp_policy
else:
    CONTENT_SECURITY_POLICY = _csp_policy
