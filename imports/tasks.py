"""Background work for imports: one task runs a whole dry run or import, in batches."""

from __future__ import annotations

from django.utils import timezone
from django_tasks import task

from .models import ImportJob
from .pipeline import preview, run, send_pending_double_opt_in


@task()
def preview_import(job_id: int) -> dict:
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
    job = run(job_id, on_completed=schedule_double_opt_in)
    return {"status": job.status, "rows": job.rows_done}


@task()
def send_double_opt_in(job_id: int) -> int:
    return send_pending_double_opt_in(job_id)


def schedule_double_opt_in(job: ImportJob) -> None:
    """Schedule the deferred double opt-in texts when the user chose a time."""
    if job.double_opt_in == ImportJob.DoubleOptIn.SCHEDULED and job.double_opt_in_at:
        send_double_opt_in.using(run_after=job.double_opt_in_at).enqueue(job.pk)
