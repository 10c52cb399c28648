"""Background work for flows: a batch of runs per task; a wake-up task for waiting runs."""

from __future__ import annotations

from django_tasks import task


@task()
def run_flow_batch(run_ids: list[int]) -> int:
    from .engine import advance_batch

    return advance_batch(run_ids)


@task()
def wake_runs() -> int:
    from .engine import resume_due, resume_stalled

    resume_stalled()
    return resume_due()


@task()
def enroll_matching(flow_id: int, persona_ids: list[int]) -> int:
    from django.db import transaction

    from .engine import enroll
    from .models import Flow

    flow = Flow.objects.select_related("current_version").get(pk=flow_id)
    total = 0
    for start in range(0, len(persona_ids), 1000):
        with transaction.atomic():
            total += len(
                enroll(flow, persona_ids[start : start + 1000], trigger={"type": "manual"})
            )
    return total
