import logging
import time

from tunedin import metrics
from tunedin.request_id import REQUEST_ID_HEADER, request_id_from_header, request_id_var

logger = logging.getLogger("tunedin.request")

# Load-balancer probes and scrapes log at DEBUG when they succeed, so they do not drown the rest.
QUIET_PATHS = frozenset({"/healthz", "/metrics"})


class RequestLogMiddleware:
    """Request id in, request id out, one structured log line and error metrics per request.

    The id comes from the X-Request-ID header when valid (else a new uuid4), is returned in the
    response's X-Request-ID header and is added to every log record of the request
    (tunedin.request_id). The log line carries method, path, route, status, duration_ms,
    user_id and request_id.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from_header(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            duration_ms = (time.perf_counter() - started) * 1000.0
            response[REQUEST_ID_HEADER] = request_id
            self._record(request, response, duration_ms, request_id)
            return response
        finally:
            request_id_var.reset(token)

    def process_exception(self, request, exception):
        # Django turns the exception into a 500 response after this; keep its type for metrics.
        request.error_type = type(exception).__name__

    def _record(self, request, response, duration_ms: float, request_id: str) -> None:
        match = getattr(request, "resolver_match", None)
        route = (match.route or "/") if match is not None else "<unmatched>"
        status = response.status_code
        if status >= 400:
            error_type = getattr(request, "error_type", None) or f"http_{status}"
            metrics.HTTP_ERRORS.labels(
                route=route, method=request.method, error_type=error_type
            ).inc()
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else None
        level = logging.DEBUG if request.path in QUIET_PATHS and status < 400 else logging.INFO
        logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": status,
                "duration_ms": round(duration_ms, 2),
                "user_id": user_id,
                "request_id": request_id,
            },
        )
