"""Request throttles (DRF) and the login-lockout answer (django-axes), both a 429 with Retry-After.

DRF's throttles read their rates once, when rest_framework.throttling is imported; these read
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] on every request, so that a settings change (a test's
override) applies at once. A rate of None turns a throttle off. Counts live in the default
(Redis) cache, shared by every web worker.
"""

from axes.helpers import get_cool_off, get_lockout_message
from django.http import HttpResponse
from rest_framework import throttling
from rest_framework.settings import api_settings


class _RatesFromSettings:
    @property
    def THROTTLE_RATES(self) -> dict[str, str | None]:
        return api_settings.DEFAULT_THROTTLE_RATES


class AnonRateThrottle(_RatesFromSettings, throttling.AnonRateThrottle):
    """Anonymous requests, per client address (scope `anon`)."""


class UserRateThrottle(_RatesFromSettings, throttling.UserRateThrottle):
    """Authenticated requests, per user (scope `user`)."""


class ScopedRateThrottle(_RatesFromSettings, throttling.ScopedRateThrottle):
    """Views with a `throttle_scope` (`api-token`, `feedback`), per user or anonymous address."""


def cool_off_seconds(request=None) -> int:
    cool_off = get_cool_off(request)
    return int(cool_off.total_seconds()) if cool_off else 0


def login_lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' answer to a login attempt while locked out (AXES_LOCKOUT_CALLABLE)."""
    response = HttpResponse(
        f"{get_lockout_message()}\n", status=429, content_type="text/plain; charset=utf-8"
    )
    if seconds := cool_off_seconds(request):
        response["Retry-After"] = str(seconds)
    return response
