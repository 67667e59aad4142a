"""Settings for load benchmarks: the real ones plus a no-op API endpoint (bench/urls.py)."""

from tunedin.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
