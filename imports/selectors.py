"""Reads for imports: what the history page and the services look up without writing."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from .models import ImportJob


def stale_jobs() -> list[int]:
    """Running jobs whose worker stopped heart-beating (killed): to be resumed."""
    limit = timezone.now() - dt.timedelta(seconds=settings.IMPORTS_STALE_SECONDS)
    return list(
        ImportJob.objects.filter(
            status=ImportJob.Status.RUNNING, heartbeat_at__lt=limit
        ).values_list("pk", flat=True)
    )
