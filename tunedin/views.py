import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from tunedin.health import STATUS_DOWN, health_check
from tunedin.metrics import CONTENT_TYPE, metrics_exposition


@never_cache
def healthz(request):
    """200 when ok or degraded (still serving, maybe from fallbacks), 503 when down."""
    report = health_check()
    return JsonResponse(report, status=503 if report["status"] == STATUS_DOWN else 200)


def metrics(request):
    """Prometheus scrape endpoint: every worker's metrics in multiprocess mode, else this one's.

    A scrape must send `Authorization: Bearer <METRICS_BEARER_TOKEN>`; without a token
    configured, /metrics answers only when METRICS_PUBLIC is on.
    """
    token = settings.METRICS_BEARER_TOKEN
    if token or not settings.METRICS_PUBLIC:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        authorized = scheme == "Bearer" and hmac.compare_digest(sent.encode(), token.encode())
        if not token or not authorized:
            response = HttpResponse("A bearer token is required.\n", status=401)
            response["WWW-Authenticate"] = "Bearer"
            return response
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE)
