"""Background work for imports: one task runs a whole dry run or import, in batches."""

from __future__ import annotations

from django.utils import timezone
from django_tasks import task

from .models import ImportJob


@task()
def preview_import(job_id: int) -> dict:
    from .pipeline import preview

    job = ImportJob.objects.get(pk=job_id)
    try:
        result = preview(job)
    except Exception as exc:
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportJob.Status.UPLOADED, message=str(exc)[:300]
        )
        raise
    ImportJob.objects.filter(pk=job_id).update(
        status=ImportJob.Status.PREVIEWED,
        preview=result,
        total_rows=result["total"],
        rows_done=0,
        heartbeat_at=timezone.now(),
    )
    return result["counts"]


@task()
def run_import(job_id: int) -> dict:
    from .pipeline import run

    job = run(job_id)
    return {"status": job.status, "rows": job.rows_done}


@task()
def send_double_opt_in(job_id: int) -> int:
    from .pipeline import send_pending_double_opt_in

    return send_pending_double_opt_in(job_id)
