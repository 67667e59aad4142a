from django.http import HttpResponse

from tunedin.metrics import CONTENT_TYPE, metrics_exposition


def metrics(request):
    """Prometheus scrape endpoint: every worker's metrics in multiprocess mode, else this one's."""
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE)
