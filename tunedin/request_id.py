"""The request id: one per HTTP request, in every log record and in the Celery tasks it starts.

`tunedin.middleware.RequestLogMiddleware` takes it from the X-Request-ID header (or makes one)
and sets `request_id_var`; `RequestIdFilter` (on the console handler in settings.LOGGING) copies
it into each log record; the Celery signal handlers below carry it in a message header from the
web process to the worker, where the task's log records get it too. A task started outside a
request (beat, shell) logs under its own task id.

No Django import here: tunedin.celery connects these handlers before settings are configured.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar, Token

REQUEST_ID_HEADER = "X-Request-ID"
TASK_HEADER = "request_id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_task_tokens: dict[str, Token] = {}


def request_id_from_header(value: str | None) -> str:
    """The client's id if it is 1–128 characters of [A-Za-z0-9._-], else a new uuid4."""
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return str(uuid.uuid4())


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record logged while a request (or task) is being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def request_id_to_task_headers(headers: dict | None = None, **kwargs) -> None:
    """Celery `before_task_publish`: send the current request id along with the task."""
    request_id = request_id_var.get()
    if request_id is not None and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


def request_id_from_task(task_id: str | None = None, task=None, **kwargs) -> None:
    """Celery `task_prerun`: restore the publishing request's id (else use the task id)."""
    request = getattr(task, "request", None)
    propagated = getattr(request, TASK_HEADER, None) or (
        (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    )
    # An eager task runs inside the request: it keeps that request's id.
    request_id = propagated or request_id_var.get() or task_id
    if task_id is not None:
        _task_tokens[task_id] = request_id_var.set(request_id)


def request_id_task_finished(task_id: str | None = None, **kwargs) -> None:
    """Celery `task_postrun`: put back the id that was current before the task ran."""
    token = _task_tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        try:
            request_id_var.reset(token)
        except ValueError:  # set in another context (should not happen); just clear it
            request_id_var.set(None)
