"""Request ids, structured logs and the health endpoint for load balancers."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Takes X-Request-ID from the load balancer (or makes one), logs it, echoes it back."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = rid
        token = request_id_var.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = rid
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Database reachable, migrations applied, age of the oldest waiting task."""
    checks: dict[str, Any] = {}
    ok = True
    try:
        connection = connections[DEFAULT_DB_ALIAS]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
        plan = MigrationExecutor(connection).migration_plan(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )
        checks["migrations"] = "ok" if not plan else f"{len(plan)} unapplied"
        ok &= not plan
        # Logging loads this module before the app registry is ready: models only in here.
        from django_tasks_db.models import DBTaskResult

        oldest = (
            DBTaskResult.objects.filter(status="READY")
            .order_by("enqueued_at")
            .values_list("enqueued_at", flat=True)
            .first()
        )
        checks["queue_age_seconds"] = (
            round((timezone.now() - oldest).total_seconds(), 1) if oldest else 0
        )
    except Exception as exc:  # the endpoint reports failure, it must not raise
        checks["database"] = f"error: {type(exc).__name__}"
        ok = False
    return JsonResponse({"status": "ok" if ok else "fail", **checks}, status=200 if ok else 503)
