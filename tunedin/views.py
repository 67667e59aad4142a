import hmac

from django.conf import settings
from django.http import HttpResponse

from tunedin.metrics import CONTENT_TYPE, metrics_exposition


def metrics(request):
    """Prometheus scrape endpoint: every worker's metrics in multiprocess mode, else this one's.

    With METRICS_BEARER_TOKEN set, a scrape must send `Authorization: Bearer <token>`.
    """
    token = settings.METRICS_BEARER_TOKEN
    if token:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(sent.encode(), token.encode()):
            response = HttpResponse("A bearer token is required.\n", status=401)
            response["WWW-Authenticate"] = "Bearer"
            return response
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE)
