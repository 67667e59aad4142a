import json
import logging
import uuid

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from tunedin.celery import app
from tunedin.request_id import (
    REQUEST_ID_HEADER,
    RequestIdFilter,
    request_id_from_header,
    request_id_var,
)
from tunedin.tests.test_healthz import DEAD_REDIS

pytestmark = pytest.mark.django_db


@app.task(name="tunedin.tests.echo_request_id")
def echo_request_id() -> str | None:
    logging.getLogger("tunedin.tests").info("inside the task")
    return request_id_var.get()


def _is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


def test_a_valid_request_id_is_returned_unchanged(client):
    response = client.get(reverse("healthz"), headers={"X-Request-ID": "lb-7f3a.2_B"})
    assert response[REQUEST_ID_HEADER] == "lb-7f3a.2_B"


def test_a_request_without_an_id_gets_a_new_uuid4(client):
    first = client.get(reverse("healthz"))[REQUEST_ID_HEADER]
    second = client.get(reverse("healthz"))[REQUEST_ID_HEADER]
    assert _is_uuid4(first) and _is_uuid4(second) and first != second


@pytest.mark.parametrize(
    "header", ["has space", "semi;colon", "a" * 129, "ünïcode", "", "new\nline"]
)
def test_an_invalid_request_id_is_replaced(header):
    replaced = request_id_from_header(header)
    assert replaced != header and _is_uuid4(replaced)


def test_the_longest_valid_request_id_is_kept():
    assert request_id_from_header("a" * 128) == "a" * 128


def test_each_request_logs_one_json_line(client, caplog, django_user_model):
    user = django_user_model.objects.create_user(username="logger", password="x-x-x-x-x-9")
    client.force_login(user)

    with caplog.at_level(logging.INFO, logger="tunedin.request"):
        response = client.get("/?page=1", headers={"X-Request-ID": "req-123"})

    lines = [record for record in caplog.records if record.name == "tunedin.request"]
    assert len(lines) == 1
    record = lines[0]
    line = json.loads(_json_formatter().format(record))
    assert line["message"] == f"GET / {response.status_code}"
    assert line["level"] == "INFO"
    assert line["method"] == "GET"
    assert line["path"] == "/"
    assert line["status"] == response.status_code
    assert line["user_id"] == user.pk
    assert line["request_id"] == "req-123"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0


def test_anonymous_requests_log_no_user_and_probes_log_at_debug(client, caplog):
    with caplog.at_level(logging.DEBUG, logger="tunedin.request"):
        client.get(reverse("healthz"))
        client.get("/no-such-page")
    probe, missing = [r for r in caplog.records if r.name == "tunedin.request"]
    assert (probe.levelno, probe.user_id, probe.status) == (logging.DEBUG, None, 200)
    assert (missing.levelno, missing.status, missing.route) == (logging.INFO, 404, "<unmatched>")


def test_every_log_record_of_a_request_carries_its_id(client):
    records = []
    handler = logging.Handler()
    handler.addFilter(RequestIdFilter())
    handler.emit = records.append
    logging.getLogger("tunedin.health").addHandler(handler)
    try:
        with override_settings(CACHES=DEAD_REDIS):  # makes /healthz log a warning
            response = client.get(reverse("healthz"))
    finally:
        logging.getLogger("tunedin.health").removeHandler(handler)
    assert records, "the health check should have logged the cache failure"
    assert {record.request_id for record in records} == {response[REQUEST_ID_HEADER]}


def test_records_outside_a_request_have_no_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "message", None, None)
    assert RequestIdFilter().filter(record)
    assert not hasattr(record, "request_id")


def test_the_console_handler_adds_request_ids():
    handler = settings.LOGGING["handlers"]["console"]
    assert handler["filters"] == ["request_id"]
    assert settings.LOGGING["filters"]["request_id"]["()"] == "tunedin.request_id.RequestIdFilter"
    assert settings.MIDDLEWARE.index("tunedin.middleware.RequestLogMiddleware") == 1


def test_an_eager_task_keeps_the_request_id_and_restores_it_after():
    token = request_id_var.set("outer-request")
    try:
        assert echo_request_id.apply().get() == "outer-request"
        assert request_id_var.get() == "outer-request"
    finally:
        request_id_var.reset(token)


def test_a_task_started_outside_a_request_logs_under_its_task_id():
    result = echo_request_id.apply(task_id="task-42")
    assert result.get() == "task-42"
    assert request_id_var.get() is None


def test_the_request_id_travels_to_a_worker_through_the_broker():
    from celery.contrib.testing.worker import start_worker

    queue = f"tunedin-test-{uuid.uuid4().hex[:8]}"
    with start_worker(app, pool="solo", perform_ping_check=False, queues=[queue]):
        token = request_id_var.set("from-the-web-request")
        try:
            result = echo_request_id.apply_async(queue=queue)
        finally:
            request_id_var.reset(token)
        assert result.get(timeout=30) == "from-the-web-request"
        # Nothing to propagate: the worker uses the task id.
        plain = echo_request_id.apply_async(queue=queue)
        assert plain.get(timeout=30) == plain.id


def _json_formatter() -> logging.Formatter:
    config = dict(settings.LOGGING["formatters"]["json"])
    factory = config.pop("()")
    module, _, name = factory.rpartition(".")
    import importlib

    return getattr(importlib.import_module(module), name)(**config)
