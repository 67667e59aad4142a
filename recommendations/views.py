from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from tunedin.health import STATUS_DOWN, health_check


@never_cache
def healthz(request):
    """200 when ok or degraded (still serving, maybe from fallbacks), 503 when down."""
    report = health_check()
    return JsonResponse(report, status=503 if report["status"] == STATUS_DOWN else 200)
