from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.django_db


def test_health_reports_database_migrations_and_queue(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ok" and data["database"] == "ok" and data["migrations"] == "ok"
    assert data["queue_age_seconds"] == 0


def test_request_id_is_echoed_and_generated(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-123").headers["X-Request-ID"] == "lb-123"
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="<bad id>").headers["X-Request-ID"]
    assert len(generated) == 32 and generated.isalnum()


def test_json_log_lines_carry_the_request_id():
    from pythonjsonlogger.json import JsonFormatter

    from config.observability import RequestIdFilter, request_id_var

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    token = request_id_var.set("abc")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = JsonFormatter("%(levelname)s %(request_id)s %(message)s").format(record)
    assert '"request_id": "abc"' in line and '"message": "hello"' in line
